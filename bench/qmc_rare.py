"""QMC where an activation's feature is rarer than its points: the worst |z| over seeds, with and without the floor.

    python bench/qmc_rare.py                      # 40 seeds at 2^12 points, sigma 1e2 .. 1e6, mu -30 and 30
    python bench/qmc_rare.py --seeds 10 --no-floor  # the replicas' own SEs (estimators/unseen.py switched off)

z = (estimate - truth) / SE for the mean and the std; the truth is the certified value (quadrature where
certified declines). Prints per spec the runs, how many took a floor, and the worst |z|; the cross-check
allows 4.5, tests/test_domain.py 5. Before the floor, tanh at sigma = 1e6 had its std off by 14.7 SEs.
"""

from __future__ import annotations

import argparse

from momentcalc.estimators import NotApplicable, certified, qmc, quadrature, unseen
from momentcalc.estimators.program import compile_program
from momentcalc.settings import RunSettings
from momentcalc.spec import parse

SPECS = (
    "sigmoid",
    "tanh",
    "hardsigmoid",
    "softsign",
    "erf",
    "relu6",
    "hardtanh",
    "elu",
    "gelu",
    "softplus",
    "tanh | maxpool(k=2)",
    "sigmoid | avgpool(k=2)",
)


def truth(spec: str, mu: float, sigma: float) -> tuple[float, float]:
    try:
        found = certified.estimate(parse(spec), mu, sigma, None)
        return found["mean"].value, found["std"].value
    except NotApplicable:
        return quadrature.estimate_moments(parse(spec), mu, sigma)[:2]


def worst(spec: str, seeds: int, samples: int) -> tuple[int, int, float]:
    runs = floored = 0
    top = 0.0
    for sigma in (1e2, 1e3, 1e4, 1e5, 1e6):
        for mu in (-30.0, 30.0):
            mean, std = truth(spec, mu, sigma)
            program = compile_program(parse(spec), mu, sigma)
            for seed in range(seeds):
                s = qmc.run(program, RunSettings("qmc", samples, None, seed))
                runs, floored = runs + 1, floored + bool(s.notes)
                top = max(top, _z(s.mean - mean, s.mean_se), _z(s.std - std, s.std_se))
    return runs, floored, top


def _z(error: float, se: float) -> float:
    return abs(error) / se if se > 0.0 else (0.0 if error == 0.0 else float("inf"))  # an SE of 0: all equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--samples", type=int, default=1 << 12)
    parser.add_argument("--no-floor", action="store_true", help="the replicas' SEs alone")
    args = parser.parse_args()
    if args.no_floor:
        unseen.floored = lambda summary, program, per_replica: summary
    print(f"{'spec':24s} {'runs':>5s} {'floored':>8s} {'max|z|':>7s}")
    for spec in SPECS:
        runs, floored, top = worst(spec, args.seeds, args.samples)
        print(f"{spec:24s} {runs:5d} {floored:8d} {top:7.2f}", flush=True)


if __name__ == "__main__":
    main()
