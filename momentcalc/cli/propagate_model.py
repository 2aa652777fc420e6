"""`momentcalc propagate --model MODULE:CALLABLE`: predict() beside one measured run, per block of any model.

The model is built by calling what the user names (its module is imported: that runs its code, by design, and
nothing is imported from the working folder: momentcalc.torch.predict.loading). One N(0, 1) batch of
--input-shape from --seed is measured with the model in its own mode (train unless --eval)."""

from __future__ import annotations

import json
import math

from rich import box
from rich.markup import escape

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ._extras import TORCH
from ._fit import Column, fitted
from ._util import _console

# torch loads when the command runs with --model, so that this module imports without it
mp = lazy_module("momentcalc.torch.predict", needs=TORCH.module)

PREDICT_WIDTH = 160


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(s < 1 for s in shape) or shape[0] < 2 or math.prod(shape) > 50_000_000:
        raise MomentcalcError(f"--input-shape is a batch of 2 or more first, e.g. 8,3,224,224; got {text!r}")
    return shape


def run(
    model_name, input_shape, block_depth, seed, train, target, tolerance, do_autoinit, as_json, plot=(None, None),
    measured=False,
):  # fmt: skip
    """The table (or JSON) per run; plot: (the drawing module, the file) draws prediction beside measurement."""
    shape = parse_shape(input_shape)
    for name, value in (("--block-depth", block_depth),):
        if value < 1:
            raise MomentcalcError(f"{name} must be a whole number >= 1, got {value}")
    if not (target > 0 and math.isfinite(target)) or not (0 < tolerance < 1):
        raise MomentcalcError("--target must be > 0 and --tolerance in (0, 1)")
    model = mp.loading.load_model(model_name)
    shape = shape or mp.loading.input_shape_of(model, 8)
    if shape is None:
        raise MomentcalcError(f"{model_name} declares no input size: give --input-shape, e.g. 8,3,32,32")
    model.train(train)
    x = mp.loading.normal_input(shape, seed)
    runs = {"before": mp.predict(model, x, seed)}
    if do_autoinit:
        report = mp.autoinit(model, x, target=target, seed=seed, measured=measured, tolerance=tolerance)
        runs["after autoinit"] = report.after
    drawing, path = plot
    if drawing is not None:
        title = f"{model_name}: input {shape}, seed {seed}, {'train' if train else 'eval'} mode"
        drawing.draw(runs, path, title, block_depth, target, tolerance)
    if as_json:
        out = {k: {"blocks": [_block_dict(n) for n in p.blocks(block_depth)], **p.to_dict()} for k, p in runs.items()}
        if measured:
            out["corrected by measurement"] = [{"node": n, "measured over target": r} for n, r in report.corrections]
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
        return
    for label, p in runs.items():
        _render(model_name, label, p, block_depth, seed, target, tolerance)
    if measured:
        fixed = ", ".join(f"{node} ({ratio:.3f} x target)" for node, ratio in report.corrections) or "none"
        _console(highlight=False).print(f"corrected by measurement after autoinit's prediction: {fixed}", markup=False)
    if path is not None:
        _console(highlight=False).print(f"plot written to {path}", markup=False)


def _block_dict(n) -> dict:
    return {"module": n.module, "node": n.name, "std": n.std, "measured_std": n.measured_std}


def _render(model_name, label, p, block_depth, seed, target, tolerance) -> None:
    console = _console(min_width=PREDICT_WIDTH, highlight=False)
    title = f"{escape(model_name)} ({label}): input {tuple(p.input_shape)}, seed {seed}, blocks at depth {block_depth}"
    columns = [Column("block", numeric=False, justify="left"), Column("output of", numeric=False, justify="left")]
    columns += [Column(h) for h in ("pred std", "meas std", "pred/meas var", "pred grad RMS", "meas grad RMS")]
    columns.append(Column("flag", numeric=False, justify="left"))
    rows = []
    for n in p.blocks(block_depth):
        ratio = n.variance_ratio
        flags = ("P" if abs(ratio - 1) > tolerance else "") + (
            "T" if not 0.9 <= n.measured_std**2 / target <= 1.1 else ""
        )
        rows.append([
            n.module, n.kind, f"{n.std:.4g}", f"{n.measured_std:.4g}", f"{ratio:.3f}", f"{n.grad_rms:.3g}",
            f"{n.measured_grad_rms:.3g}", flags,
        ])  # fmt: skip
    console.print(fitted(console, title, columns, rows, table_box=box.HEAVY_HEAD))
    console.print(
        f"P: prediction and measurement of the variance differ by more than {tolerance:.0%}; T: measured variance "
        f"outside [0.9, 1.1] x {target:g}. Gradient: N(0, 1) injected at the output.",
        markup=False,
    )
    for n in p.unmodeled:
        console.print(
            f"not modeled: {n.name} ({n.kind}) {n.note}; continued from its measured statistics", markup=False
        )
