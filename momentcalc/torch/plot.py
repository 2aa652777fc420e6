"""The signal-propagation plot of a Comparison: mean, std and gradient RMS against depth, one line per variant."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402

from ..errors import MomentcalcError, WriteError  # noqa: E402
from .signal import Comparison  # noqa: E402

FORMATS = (".png", ".svg")
_COLORS = {"normprop": "tab:blue", "plain": "tab:red", "batchnorm": "tab:green"}
_PANELS = (  # field, title, y-axis label
    ("mean", "mean of block output", "mean over batch, channels, positions"),
    ("std", "std of block output", "std over batch, channels, positions (log)"),
    ("grad_rms", "gradient RMS at block output", "RMS of dL/d(output) (log)"),
)
# What each curve is: drawn under the panels, so the figure explains itself.
_CURVES = {
    "normprop": "normprop: NormProp modules (unit-norm convs, exact constants), no batch statistics",
    "plain": "plain: He-initialised convs, bare activations and pools",
    "batchnorm": (
        "batchnorm: BatchNorm2d after every conv sets the conv's output to mean 0, std 1 with the batch's own "
        "statistics; the block's output is the activation (and pool) of that, not normalized again, so its mean "
        "and std are those of the activation (and pool) of N(0, 1) values (relu: 0.399, 0.584), not 0 and 1"
    ),
}
_PREDICTION = "dashed: momentcalc's prediction for normprop (mean 0, std 1, the gradient RMS from backward constants)"


def caption(comparison: Comparison) -> str:
    """What each curve of the plot is, one line per variant drawn and one for the prediction."""
    return "\n".join([*(_CURVES[v] for v in comparison.runs if v in _CURVES), _PREDICTION])


def figure(comparison: Comparison):
    """The plot as a matplotlib Figure: mean, std and gradient RMS against depth, each axis labelled, and a
    caption saying what each curve is. The caller closes it (plt.close)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), constrained_layout=True)
    pred = comparison.prediction.layers
    depths = [s.depth for s in pred]
    for variant, run in comparison.runs.items():
        for ax, field in zip(axes, ("mean", "std", "grad_rms")):
            ax.plot(depths, [getattr(s, field) for s in run.layers], color=_COLORS.get(variant), label=variant)
    for ax, (field, title, ylabel) in zip(axes, _PANELS):
        ax.plot(depths, [getattr(s, field) for s in pred], "k--", lw=1, label="momentcalc (NormProp)")
        ax.set_title(title)
        ax.set_xlabel("depth (blocks)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize="small")
    pool = f", {comparison.pool} every {comparison.pool_every}" if comparison.pool else ""
    fig.text(0.01, 0.0, caption(comparison), ha="left", va="bottom", fontsize="small", wrap=True)
    fig.get_layout_engine().set(rect=(0, 0.2, 1, 0.8))  # room for the caption under the panels
    fig.suptitle(
        f"{comparison.depth} blocks of '{comparison.block}'{pool}; width {comparison.width}, "
        f"{comparison.size}x{comparison.size} input, batch {comparison.batch}, seed {comparison.seed}"
    )
    return fig


def draw(comparison: Comparison, path: str | Path) -> Path:
    """Write the plot to path (.png or .svg), atomically; return the path."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise MomentcalcError(f"the plot is written as .png or .svg, not {path.name!r}")
    if not path.parent.is_dir():
        raise MomentcalcError(f"no directory {str(path.parent)!r} to write the plot into")
    return save(figure(comparison), path)


def save(fig, path: str | Path) -> Path:
    """Write a matplotlib Figure to path (.png or .svg) atomically, with fixed metadata; close it; return path."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        plt.close(fig)
        raise MomentcalcError(f"the plot is written as .png or .svg, not {path.name!r}")
    if not path.parent.is_dir():
        plt.close(fig)
        raise MomentcalcError(f"no directory {str(path.parent)!r} to write the plot into")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as why:
        plt.close(fig)
        raise WriteError(f"cannot write the plot to {str(path)!r}: {why.strerror or why}") from None
    os.close(fd)
    try:
        # Fixed metadata: the same comparison gives the same bytes (no date or version stamps).
        metadata = {"Software": None} if path.suffix.lower() == ".png" else {"Date": None, "Creator": None}
        fig.savefig(tmp, dpi=100, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a plot is for others to read, as tables.write does
        os.replace(tmp, path)
    except OSError as why:  # a full disk, a file size limit: no plot, and none half-written
        raise WriteError(f"cannot write the plot to {str(path)!r}: {why.strerror or why}") from None
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
