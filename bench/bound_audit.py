"""Audit of the exact methods' stated bounds: |value - truth| / bound for certified, closed and quadrature.

    python bench/bound_audit.py            # the tail scan and a cross-section of the domain (a few minutes)
    python bench/bound_audit.py --quick    # a dozen cases

The truth: for relu, leaky_relu, relu6, hardtanh, hardswish, celu and elu mpmath's exact truncated-normal
formulas at 60 digits (tests/mp_tails.py); for the others certified at 30 digits (a rigorous enclosure), else
mpmath quadrature at 30 digits (tests/mp_activations.py). A ratio above 1 is a false
bound (a ratio of inf: a value off while claiming +- 0). Prints one line per case and method whose ratio
exceeds 0.5, then, per method, the worst ratio and where it occurred; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

import mp_activations  # noqa: E402
import mp_tails  # noqa: E402

from momentcalc import engine  # noqa: E402
from momentcalc.errors import MomentcalcError  # noqa: E402

TAILS = [-5.0, -10.0, -30.0, -38.0, -40.0, -45.0, -47.0, -50.0, -53.0, -54.0]
OPS = {  # spec -> (mp_activations name, params)
    "relu": ("relu", ()),
    "leaky_relu(slope=0)": ("leaky_relu", (("slope", "0"),)),
    "leaky_relu": ("leaky_relu", ()),
    "relu6": ("relu6", ()),
    "hardtanh": ("hardtanh", ()),
    "celu(alpha=0.5)": ("celu", (("alpha", "0.5"),)),
    "elu": ("elu", ()),
    "celu(alpha=1)": ("celu", ()),
    "selu": ("selu", ()),
    "gelu": ("gelu", ()),
    "erf": ("erf", ()),
    "hardswish": ("hardswish", ()),
    "abs": ("abs", ()),
}


def cases(quick: bool):
    if quick:
        yield from [("relu", m, 1.0) for m in (-5.0, -10.0, -50.0)]
        yield from [("relu6", 56.0, 1.0), ("hardtanh", -49.0, 1.0), ("gelu", -10.0, 1.0), ("erf", 0.5, 1.0)]
        return
    for spec in ("relu", "leaky_relu(slope=0)", "hardtanh", "hardswish", "celu(alpha=0.5)", "elu"):
        for mu in TAILS:
            yield spec, mu, 1.0
    for mu in TAILS:
        yield "relu6", 6.0 - mu, 1.0
    for spec in OPS:
        for mu, sigma in ((0.0, 1.0), (1.5, 0.5), (-2.0, 3.0), (0.3, 1e-3), (-10.0, 1.0), (20.0, 7.0), (0.0, 1e-4)):
            yield spec, mu, sigma
    yield "celu(alpha=0.5)", -356.023, 0.221069
    yield "celu(alpha=1)", 0.0, 0.000107103


def reference(spec: str, mu: float, sigma: float) -> tuple[float, float, float]:
    name, params = OPS[spec]
    if name in ("relu", "leaky_relu", "relu6", "hardtanh", "hardswish", "celu", "elu"):
        return tuple(float(v) for v in mp_tails.moments(name, mu, sigma, **dict(params)))
    try:
        found = engine.estimate(spec, mu, sigma, method="certified", digits=30).estimates[0]
        return tuple(float(getattr(found, q + "_digits")) for q in ("mean", "std", "grad_sq"))
    except (MomentcalcError, TypeError):
        return mp_activations.moments(name, mu, sigma, params)


def audit(spec: str, mu: float, sigma: float) -> dict:
    truth = dict(zip(("mean", "std", "grad_sq"), reference(spec, mu, sigma)))
    try:
        result = engine.estimate(spec, mu, sigma, methods=("certified", "closed", "quadrature"))
    except MomentcalcError as why:
        return {"error": str(why)}
    out = {"agree": result.agree}
    for e in result.estimates:
        for q in ("mean", "std", "grad_sq"):
            value, bound = getattr(e, q), getattr(e, q + "_se")
            if value is None or bound is None:
                continue
            err = abs(value - truth[q])
            out[f"{e.method}.{q}"] = 0.0 if err == 0.0 else (math.inf if bound == 0.0 else err / bound)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    worst: dict[str, tuple[float, str]] = {}
    disagree = []
    for spec, mu, sigma in cases(args.quick):
        found = audit(spec, mu, sigma)
        where = f"{spec} N({mu:g}, {sigma:g}^2)"
        if not found.get("agree", True):
            disagree.append(where)
        for key, ratio in found.items():
            if key in ("agree", "error"):
                continue
            method = key.split(".")[0]
            if ratio > 0.5:
                print(f"{where:40s} {key:20s} error / bound = {ratio:.3g}")
            if ratio > worst.get(method, (-1.0, ""))[0]:
                worst[method] = (ratio, f"{where} {key.split('.')[1]}")
    for method, (ratio, where) in worst.items():
        print(f"worst {method:10s} {ratio:10.3g}  at {where}")
    print(f"self-disagreements: {len(disagree)} {disagree}")
    print(
        json.dumps(
            {"worst": {m: [r if math.isfinite(r) else "inf", w] for m, (r, w) in worst.items()}, "disagree": disagree}
        )
    )


if __name__ == "__main__":
    main()
