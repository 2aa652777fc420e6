"""The plot of `momentcalc propagate --model`: per block, predict()'s std and gradient RMS beside the measured ones,
and their variance ratio, one colour per run (before and after autoinit)."""

from __future__ import annotations

from pathlib import Path

from .plot import plt, save
from .predict.report import Prediction

_COLORS = {"before": "tab:red", "after autoinit": "tab:blue"}
_CAPTION = (
    "Solid: measured on one N(0, 1) batch (forward hooks; an N(0, 1) gradient injected at the output). Dashed: "
    "predicted by momentcalc.torch.predict from the model's weights and momentcalc's exact constants. Each point is a "
    "block's output (the last node of each module at the chosen depth). Right: predicted over measured variance; "
    "the grey band is +-{tol:.0%}. Red: the model as built; blue: after momentcalc.torch.autoinit (target variance "
    "{target:g})."
)


def figure(runs: dict[str, Prediction], title: str, block_depth: int, target: float = 1.0, tolerance: float = 0.05):
    """Three panels against the block's index: std (log), gradient RMS (log), predicted/measured variance; axes
    labelled and a caption under them saying what each curve is. The caller closes it."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 6), constrained_layout=True)
    for label, p in runs.items():
        blocks = p.blocks(block_depth)
        x = range(1, len(blocks) + 1)
        color = _COLORS.get(label)
        axes[0].plot(x, [n.measured_std for n in blocks], "-", color=color, label=f"{label}: measured")
        axes[0].plot(x, [n.std for n in blocks], "--", color=color, label=f"{label}: predicted")
        axes[1].plot(x, [n.measured_grad_rms for n in blocks], "-", color=color, label=f"{label}: measured")
        axes[1].plot(x, [n.grad_rms for n in blocks], "--", color=color, label=f"{label}: predicted")
        axes[2].plot(x, [n.variance_ratio for n in blocks], "o-", ms=3, color=color, label=label)
    axes[2].axhspan(1 - tolerance, 1 + tolerance, color="0.85", zorder=0)
    panels = (
        ("std of block output", "std over batch, channels, positions (log)"),
        ("gradient RMS at block output", "RMS of dL/d(output) (log)"),
        ("prediction / measurement", "predicted / measured variance"),
    )
    for ax, (name, ylabel) in zip(axes, panels):
        ax.set_title(name)
        ax.set_xlabel(f"block (module depth {block_depth}, in the order they run)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    fig.suptitle(title)
    fig.text(
        0.01, 0.0, _CAPTION.format(tol=tolerance, target=target), ha="left", va="bottom", fontsize="small", wrap=True
    )
    fig.get_layout_engine().set(rect=(0, 0.12, 1, 0.88))  # room for the caption under the panels
    return fig


def draw(runs: dict[str, Prediction], path: str | Path, title: str, block_depth: int, target=1.0, tolerance=0.05):
    """Write the plot to path (.png or .svg) atomically; return the path."""
    return save(figure(runs, title, block_depth, target, tolerance), path)
