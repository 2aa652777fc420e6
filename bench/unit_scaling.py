"""unit-scaling 0.3.5's fitted scales beside momentcalc's exact ones, op by op (not a test): a markdown table.

    PYTHONPATH=. python bench/unit_scaling.py

Installs torch 2.13.0 and unit-scaling 0.3.5 into the running interpreter's environment if they are missing.
unit-scaling's scales are read by calling its ops with constraint=None (forward and backward scales apart) and
dividing its output and input gradients by those of the plain function at the same points; momentcalc's come
from momentcalc.torch.unit_scales. The relative difference is unit-scaling's over momentcalc's, minus 1.
"""

from __future__ import annotations

import os
import subprocess
import sys

# This file's name is the package's: without its folder on the path, `import unit_scaling` finds the package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

MULTS = (0.25, 0.5, 1.0, 2.0, 4.0)
DIMS = (16, 64, 256, 1024, 4096)
POINTS = (0.7, -1.3, 2.1)  # where the ratios are read: away from zeros of f and f'


def _ensure_installed() -> None:
    try:
        import unit_scaling  # noqa: F401

        return
    except ImportError:
        pass
    # torch first, pinned, so that unit-scaling's torch>=2.2 does not pull another build
    for requirement in ("torch==2.13.0", "unit-scaling==0.3.5"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement], check=True)


def _ratio(scaled, plain, *shape_args):
    """(output ratio, gradient ratio per input) of a scaled op to its plain function at the same inputs."""
    import torch

    def run(fn):
        inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in shape_args]
        y = fn(*inputs)
        weights = torch.zeros_like(y)
        weights.view(-1)[0] = 1.0  # the gradient of the first output: a softmax's entries are coupled
        y.backward(weights)
        return y.detach().view(-1)[0], [x.grad.view(-1)[0] for x in inputs]

    y_s, g_s = run(scaled)
    y_p, g_p = run(plain)
    return (y_s / y_p).item(), [(a / b).item() for a, b in zip(g_s, g_p)]


def _rows():
    """(op, parameter, us forward, mc forward, us backward, mc backward), forward None where it is no scale."""
    import torch
    import torch.nn.functional as F
    import unit_scaling.functional as US

    from momentcalc import MomentcalcError
    from momentcalc.torch import unit_scales as MC

    for m in MULTS:
        fwd, (bwd,) = _ratio(lambda x, m=m: US.gelu(x, m, None), lambda x, m=m: F.gelu(x * m) / m, POINTS)
        mc = MC.gelu(m)
        yield "gelu", f"mult={m:g}", fwd, mc.forward, bwd, mc.backward[0]
    for m in MULTS:
        fwd, (bwd,) = _ratio(lambda x, m=m: US.silu(x, m, None), lambda x, m=m: x * torch.sigmoid(m * x), POINTS)
        mc = MC.silu(m)
        yield "silu", f"mult={m:g}", fwd, mc.forward, bwd, mc.backward[0]
    for m in MULTS:
        fwd, (bwd_v, bwd_g) = _ratio(
            lambda v, g, m=m: US.silu_glu(v, g, m), lambda v, g, m=m: v * g * torch.sigmoid(m * g), POINTS, POINTS[::-1]
        )
        mc = MC.silu_glu(m)
        yield "silu_glu (value)", f"mult={m:g}", fwd, mc.forward, bwd_v, mc.backward[0]
        yield "silu_glu (gate)", f"mult={m:g}", None, None, bwd_g, mc.backward[1]
    logits = [0.3 * ((7 * i) % 11 - 5) for i in range(max(DIMS))]
    for n in DIMS:
        for m in MULTS if n == 256 else (1.0,):
            fwd, (bwd,) = _ratio(
                lambda x, m=m: US.softmax(x, 0, constraint=None, mult=m), lambda x, m=m: F.softmax(m * x, 0), logits[:n]
            )
            try:
                mc = MC.softmax(n, m)
            except MomentcalcError as refusal:  # shown as a row: the exact methods could not give it
                yield "softmax", f"dim={n}, mult={m:g}", fwd, str(refusal), bwd, None
                continue
            yield "softmax", f"dim={n}, mult={m:g}", fwd, mc.forward, bwd, mc.backward[0]
    yield from _layer_rows(US, MC, logits)
    yield from _algebra_rows(US)
    for p in (0.1, 0.5):
        torch.manual_seed(0)
        y = US.dropout(torch.ones(64, dtype=torch.float64), p)
        kept = y[y != 0]
        fwd = (kept[0] * (1 - p)).item()  # torch's inverted dropout divides kept values by 1 - p
        mc = MC.dropout(p)
        yield "dropout", f"p={p:g}", fwd, mc.forward, fwd, mc.backward[0]  # one scale both ways there


def _layer_rows(US, MC, logits):
    """Rows of the norms (unit-scaling scales neither), cross entropy's logits' gradient and embedding's table's."""
    import torch
    import torch.nn.functional as F

    from momentcalc import MomentcalcError

    for name, plain in (("layer_norm", F.layer_norm), ("rms_norm", F.rms_norm)):
        for n in DIMS:
            fwd, (bwd,) = _ratio(
                lambda x, n=n, op=getattr(US, name): op(x, (n,), eps=1e-5),
                lambda x, n=n, op=plain: op(x, (n,), eps=1e-5),
                logits[:n],
            )
            mc = MC.norm(name, n)
            yield name, f"d={n}", fwd, mc.forward, bwd, mc.backward[0]
    for n in DIMS:
        for m in MULTS if n == 256 else (1.0,):
            target = torch.tensor([n // 3])
            _, (bwd,) = _ratio(
                lambda x, m=m, t=target: US.cross_entropy(x[None], t, mult=m),
                # unit-scaling multiplies the logits by mult with scale_fwd: the gradient does not carry mult
                lambda x, m=m, t=target: F.cross_entropy(m * x[None], t, reduction="sum") / m,
                logits[:n],
            )
            try:
                mc = MC.cross_entropy(n, m).backward[0]
            except MomentcalcError as refusal:
                mc = str(refusal)
            yield "cross_entropy (logits)", f"vocab={n}, mult={m:g}", None, None, bwd, mc
    # the table's gradient: (vocab / tokens)^(1/2) in both, the mean square of Binomial(tokens, 1 / vocab) counts
    vocab, tokens = 1000, torch.arange(256) % 1000
    _, (bwd,) = _ratio(lambda w: US.embedding(tokens, w), lambda w: F.embedding(tokens, w), [[1.0] * 4] * vocab)
    yield "embedding (table)", "vocab=1000, tokens=256", None, None, bwd, (vocab / 256) ** 0.5


# (length, kernel, stride, padding) of 8 -> 16 channels: the scales are counts, so only the window's geometry matters
CONVS = ((16, 7, 1, 3), (16, 3, 2, 0), (64, 3, 1, 1), (256, 7, 1, 3), (256, 4, 2, 1), (4096, 3, 1, 1))


def _algebra_rows(US):
    """Rows of the ops whose scales are closed forms (counts): conv1d (over the whole tensor here, the interior in
    unit-scaling), linear_readout and mse_loss (the same algebra in both)."""
    import torch
    import torch.nn.functional as F

    from momentcalc.torch import unit as U

    for length, kernel, stride, padding in CONVS:
        w = torch.ones(16, 8, kernel, dtype=torch.float64)
        x = [[[0.1 * ((5 * i + c) % 7 - 3) for i in range(length)] for c in range(8)]]
        plain = lambda x, w=w, s=stride, p=padding: F.conv1d(x, w, None, s, p)  # noqa: E731
        us = _ratio(lambda x, w=w, s=stride, p=padding: US.conv1d(x, w, None, s, p, constraint=None), plain, x)
        mc = _ratio(lambda x, w=w, s=stride, p=padding: U.conv1d(x, w, None, s, p, constraint=None), plain, x)
        yield "conv1d", f"length={length}, k={kernel}, s={stride}, p={padding}", us[0], mc[0], us[1][0], mc[1][0]
    w = torch.ones(64, 256, dtype=torch.float64)
    x = [[0.01 * (i % 13 - 6) for i in range(256)]]
    us = _ratio(lambda x: US.linear_readout(x, w, None), lambda x: F.linear(x, w), x)
    mc = _ratio(lambda x: U.linear_readout(x, w, None), lambda x: F.linear(x, w), x)
    yield "linear_readout", "fan_in=256, fan_out=64", us[0], mc[0], us[1][0], mc[1][0]
    pair = ([0.3, -1.1, 0.8], [1.2, 0.4, -0.5])
    plain = lambda x, t: F.mse_loss(x, t, reduction="sum")  # noqa: E731
    _, (us_x, us_t) = _ratio(lambda x, t: US.mse_loss(x, t, reduction="sum"), plain, *pair)
    _, (mc_x, mc_t) = _ratio(lambda x, t: U.mse_loss(x, t, reduction="sum"), plain, *pair)
    yield "mse_loss (input)", "any shape", None, None, us_x, mc_x
    yield "mse_loss (target)", "any shape", None, None, us_t, mc_t


def _cell(x):
    return "" if x is None else x if isinstance(x, str) else f"{x:.6f}"


def _diff(us, mc):
    if us is None or not isinstance(mc, float):
        return ""
    return f"{round(100 * (us / mc - 1), 2) + 0.0:+.2f} %"  # + 0.0: a rounded -0.0 prints as +0.00


def main() -> None:
    _ensure_installed()
    from importlib.metadata import version

    print(f"unit-scaling {version('unit-scaling')}, torch {version('torch')}\n")
    print(
        "| op | parameter | forward, unit-scaling | forward, exact | difference | backward, unit-scaling |"
        " backward, exact | difference |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for op, param, us_f, mc_f, us_b, mc_b in _rows():
        print(
            f"| {op} | {param} | {_cell(us_f)} | {_cell(mc_f)} | {_diff(us_f, mc_f)} | {_cell(us_b)} |"
            f" {_cell(mc_b)} | {_diff(us_b, mc_b)} |"
        )


if __name__ == "__main__":
    main()
