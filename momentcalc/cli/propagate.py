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
# the plotting modules, by name: the layers test reads lazy_module's targets as literals or module-level names
PREDICT_PLOT = "momentcalc.torch.predict_plot"
TRANSFORMER_PLOT = "momentcalc.torch.transformer_plot"

PROPAGATE_WIDTH = 200  # piped output: the ten columns of three variants, unwrapped
PRESETS = {"conv": (50, 64, 4), "transformer": (24, 256, 8)}  # default depth, width, batch


@app.command(
    "propagate",
    epilog=_examples(
        "propagate",
        "propagate --depth 50 --block 'conv3x3 | relu' --pool 'maxpool(k=2)' --pool-every 25 --plot prop.png",
        "propagate --block 'conv3x3 | gelu' --pool none --variant normprop --json",
        "propagate --model timm:nf_resnet26 --block-depth 2 --autoinit",
        "propagate --model mypackage.models:build --input-shape 8,3,32,32",
        "propagate --preset transformer --depth 24 --width 256 --seq 128 --plot transformer.png",
    ),
)
def propagate_command(
    preset: Annotated[
        str, typer.Option("--preset", help="conv (a deep conv net) or transformer (a causal decoder at init).")
    ] = "conv",
    depth: Annotated[
        int | None, typer.Option("--depth", help="Number of blocks [default: conv 50, transformer 24].")
    ] = None,
    block: Annotated[
        str, typer.Option("--block", help="One block: convKxK, activations and pools joined by '|'.")
    ] = "conv3x3 | relu",
    pool: Annotated[
        str, typer.Option("--pool", help="A pool added after every --pool-every blocks; 'none' for no pool.")
    ] = "maxpool(k=2)",
    pool_every: Annotated[int, typer.Option("--pool-every", help="Blocks between the pools.")] = 25,
    width: Annotated[
        int | None, typer.Option("--width", help="Channels of every conv, or the transformer's width [64, 256].")
    ] = None,
    heads: Annotated[int, typer.Option("--heads", help="transformer: attention heads.")] = 4,
    seq: Annotated[int, typer.Option("--seq", help="transformer: sequence length.")] = 128,
    positions: Annotated[
        str,
        typer.Option(
            "--positions",
            help="transformer, exact variant: attention scales for the predicted covariance across positions "
            "(propagated) or for independent positions (independent, the op's default).",
        ),
    ] = "propagated",
    size: Annotated[int, typer.Option("--size", help="Side of the square input.")] = 8,
    batch: Annotated[
        int | None, typer.Option("--batch", help="Inputs per batch (conv: >= 2, BatchNorm needs them) [4, 8].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights, the input and the injected gradient.")] = 0,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="conv: normprop, plain, batchnorm; transformer: unit-scaling, exact, standard (repeatable; "
            "default all, unit-scaling where installed).",
        ),
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
    measured: Annotated[
        bool, typer.Option("--measured", help="With --autoinit: correct by measurement what is off by --tolerance.")
    ] = False,
) -> None:
    """Mean, std and gradient RMS after each block for N(0, 1) input, per variant, beside momentcalc's prediction;
    with --model, any model's prediction beside its measurement."""
    if model is not None:
        require(TORCH, "propagate --model")
        drawing = _check_plot(plot, lazy_module(PREDICT_PLOT))
        if measured and not autoinit:
            raise MomentcalcError("--measured corrects autoinit's result: give --autoinit with it")
        by_model.run(
            model,
            input_shape,
            block_depth,
            seed,
            not eval_mode,
            target,
            tolerance,
            autoinit,
            as_json,
            (drawing, plot),
            measured,
        )
        return

    if preset not in PRESETS:
        raise MomentcalcError(f"--preset is one of {', '.join(PRESETS)}, not {preset!r}")
    depth, width, batch = (
        PRESETS[preset][i] if given is None else given for i, given in enumerate((depth, width, batch))
    )
    check_depth(depth)  # before torch loads (seconds, hundreds of MB): a refusal costs nothing
    require(TORCH, "propagate")
    if preset == "transformer":
        if (block, pool, pool_every, size) != ("conv3x3 | relu", "maxpool(k=2)", 25, 8):
            raise MomentcalcError("--block, --pool, --pool-every and --size belong to --preset conv")
        _transformer(depth, width, heads, seq, batch, seed, variant, as_json, plot, positions)
        return
    if (heads, seq, positions) != (4, 128, "propagated"):
        raise MomentcalcError("--heads, --seq and --positions belong to --preset transformer")
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


def _check_plot(plot: str | None, drawing):
    """The plotting module `drawing` (lazy), or None without --plot; refusals before the long run."""
    if plot is None:
        return None
    if not plot.lower().endswith((".png", ".svg")):
        raise MomentcalcError(f"--plot writes a .png or .svg file, not {plot!r}")
    require(PLOTS, "propagate --plot")
    if not Path(plot).parent.is_dir():
        raise MomentcalcError(f"--plot: no directory {str(Path(plot).parent)!r} to write into; create it first")
    return drawing


def _transformer(depth, width, heads, seq, batch, seed, variant, as_json, plot, positions) -> None:
    tf = lazy_module("momentcalc.torch.transformer")
    config = tf.Config(depth=depth, width=width, heads=heads, seq=seq, batch=batch, positions=positions)
    variants = tuple(variant) if variant else tf.available_variants()
    unknown = [v for v in variants if v not in tf.VARIANTS]
    if unknown:
        raise MomentcalcError(f"unknown variant {unknown[0]!r} for the transformer; use {', '.join(tf.VARIANTS)}")
    if "unit-scaling" in variants:
        tf.unit_scaling_functional()  # not installed: one line now, not after the other variants ran
    drawing = _check_plot(plot, lazy_module(TRANSFORMER_PLOT))
    profiles = []
    for v in variants:
        with _LazyBar(f"{v}: scales and one pass" if v == "exact" else v) as bar:
            profiles.append(tf.measure(config, v, seed, progress=bar))
    if drawing is not None:
        drawing.draw(profiles, plot)
    if as_json:
        typer.echo(json.dumps({p.variant: p.to_dict() for p in profiles}, indent=2, sort_keys=True))
        return
    _render_transformer(config, profiles, tf, plot)


def _render_transformer(config, profiles, tf, plot: str | None) -> None:
    title = (
        f"{config.depth} blocks, width {config.width}, {config.heads} heads, sequence {config.seq}, "
        f"batch {config.batch}, seed: per block, the op farthest from its target"
    )
    columns = [Column("block")]
    for p in profiles:
        columns += [Column(f"{p.variant} stream"), Column(f"{p.variant} worst out"), Column(f"{p.variant} worst grad")]
    rows = []
    worst = [tf.deviations(p) for p in profiles]
    for b in range(config.depth):
        cells = [str(b + 1)]
        for p, w in zip(profiles, worst):
            out_op, out_dev, grad_op, grad_dev = w[b]
            cells += [f"{p.rms['stream'][b]:.3f}", f"{out_op} {p.rms[out_op][b] - 1:+.3f}"]
            cells.append(f"{grad_op} {grad_dev:+.3f}" if grad_op != "-" else "-")
        rows.append(cells)
    console = _console(min_width=PROPAGATE_WIDTH, highlight=False)
    console.print(fitted(console, title, columns, rows, table_box=box.HEAVY_HEAD))
    console.print(
        "worst out: the op whose output RMS is farthest from 1, as RMS - 1; worst grad: the op whose gradient RMS "
        "is farthest from momentcalc's prediction (1; the query sqrt((seq - 1) / seq)), as |RMS / prediction - 1|. "
        "Input and injected gradient N(0, 1).",
        markup=False,
    )
    if plot:
        console.print(f"plot written to {plot}")


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
