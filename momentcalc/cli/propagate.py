"""`momentcalc propagate`: signal propagation through a deep conv net, NormProp beside plain (He) and BatchNorm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape

from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..settings import check_depth
from ._extras import PLOTS, TORCH, require
from ._fit import Column, fitted
from ._util import _console, _examples, _LazyBar, app

# torch loads when the command runs (momentcalc.torch imports it), so `momentcalc --help` stays fast.
mtorch = lazy_module("momentcalc.torch", needs=TORCH.module)
by_model = lazy_module("momentcalc.cli.propagate_model", needs=TORCH.module)  # --model: predict() per block

PROPAGATE_WIDTH = 200  # piped output: the ten columns of three variants, unwrapped


@app.command(
    "propagate",
    epilog=_examples(
        "propagate",
        "propagate --depth 50 --block 'conv3x3 | relu' --pool 'maxpool(k=2)' --pool-every 25 --plot prop.png",
        "propagate --block 'conv3x3 | gelu' --pool none --variant normprop --json",
        "propagate --model timm:nf_resnet26 --block-depth 2 --autoinit",
        "propagate --model mypackage.models:build --input-shape 8,3,32,32",
    ),
)
def propagate_command(
    depth: Annotated[int, typer.Option("--depth", help="Number of blocks.")] = 50,
    block: Annotated[
        str, typer.Option("--block", help="One block: convKxK, activations and pools joined by '|'.")
    ] = "conv3x3 | relu",
    pool: Annotated[
        str, typer.Option("--pool", help="A pool added after every --pool-every blocks; 'none' for no pool.")
    ] = "maxpool(k=2)",
    pool_every: Annotated[int, typer.Option("--pool-every", help="Blocks between the pools.")] = 25,
    width: Annotated[int, typer.Option("--width", help="Channels of every conv (wide nets drift less).")] = 64,
    size: Annotated[int, typer.Option("--size", help="Side of the square input.")] = 8,
    batch: Annotated[int, typer.Option("--batch", help="Inputs per batch (>= 2: BatchNorm needs them).")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights, the input and the injected gradient.")] = 0,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="normprop, plain or batchnorm (repeatable; default all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-block numbers as JSON.")] = False,
    plot: Annotated[str | None, typer.Option("--plot", help="Also draw the plot into this .png or .svg file.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="MODULE:CALLABLE returning an nn.Module, or timm:NAME: predict() beside measurement, per block. "
            "Imports only the module named (its code runs), never from the working folder.",
        ),
    ] = None,
    input_shape: Annotated[
        str | None, typer.Option("--input-shape", help="With --model: batch first, e.g. 8,3,224,224.")
    ] = None,
    block_depth: Annotated[int, typer.Option("--block-depth", help="With --model: module depth of a block.")] = 1,
    eval_mode: Annotated[bool, typer.Option("--eval", help="With --model: run it in eval mode.")] = False,
    target: Annotated[float, typer.Option("--target", help="With --model: the design variance.")] = 1.0,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="With --model: flag prediction off by more than this.")
    ] = 0.05,
    autoinit: Annotated[bool, typer.Option("--autoinit", help="With --model: also after autoinit.")] = False,
) -> None:
    """Mean, std and gradient RMS after each block for N(0, 1) input, per variant, beside momentcalc's prediction;
    with --model, any model's prediction beside its measurement."""
    if model is not None:
        require(TORCH, "propagate --model")
        if plot is not None:
            raise MomentcalcError("--plot draws the built-in variants; with --model use --json for the numbers")
        by_model.run(model, input_shape, block_depth, seed, not eval_mode, target, tolerance, autoinit, as_json)
        return

    check_depth(depth)  # before torch loads (seconds, hundreds of MB): a refusal costs nothing
    require(TORCH, "propagate")
    signal = mtorch.signal
    variants = tuple(variant) if variant else signal.VARIANTS
    unknown = [v for v in variants if v not in signal.VARIANTS]
    if unknown:
        raise MomentcalcError(f"unknown variant {unknown[0]!r}; use {', '.join(signal.VARIANTS)}")
    if plot is not None and not plot.lower().endswith((".png", ".svg")):
        raise MomentcalcError(f"--plot writes a .png or .svg file, not {plot!r}")
    drawing = None
    if plot is not None:
        require(PLOTS, "propagate --plot")  # now, before the long run
        drawing = mtorch.plot
    if plot is not None and not Path(plot).parent.is_dir():
        raise MomentcalcError(f"--plot: no directory {str(Path(plot).parent)!r} to write into; create it first")
    with _LazyBar("propagating") as bar:
        result = signal.compare(
            depth, block, None if pool.strip().lower() == "none" else pool, pool_every, width, size, batch, seed,
            variants, progress=bar,
        )  # fmt: skip
    if drawing is not None:
        drawing.draw(result, plot)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return
    _render(result, plot)


def _render(result, plot: str | None) -> None:
    pool = f", {result.pool} after every {result.pool_every} blocks" if result.pool else ""
    title = (
        f"{result.depth} blocks of '{escape(result.block)}'{escape(pool)}: width {result.width}, "
        f"{result.size}x{result.size} input, batch {result.batch}, seed {result.seed}"
    )
    columns = [Column("depth")]
    columns += [Column(f"{v} {what}") for v in result.runs for what in ("mean", "std", "grad RMS")]
    columns.append(Column("predicted grad RMS"))
    rows = []
    for pred, *layers in zip(result.prediction.layers, *(run.layers for run in result.runs.values())):
        cells = [str(pred.depth)]
        for s in layers:
            cells += [f"{s.mean:.3f}", f"{s.std:.3f}", f"{s.grad_rms:.3g}"]
        rows.append([*cells, f"{pred.grad_rms:.3g}"])
    console = _console(min_width=PROPAGATE_WIDTH, highlight=False)
    console.print(fitted(console, title, columns, rows, table_box=box.HEAVY_HEAD))  # no digit cut in a terminal
    console.print(
        "depth 0 is the input. Gradient: N(0, 1) injected at the output. Prediction (NormProp): mean 0, std 1; "
        "gradient RMS from the backward constants E[f'^2] / std^2 and the pools' exact backward maps.",
        markup=False,
    )
    if plot:
        console.print(f"plot written to {plot}")
