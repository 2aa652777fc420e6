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


def draw(comparison: Comparison, path: str | Path) -> Path:
    """Write the plot to path (.png or .svg), atomically; return the path."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise MomentcalcError(f"the plot is written as .png or .svg, not {path.name!r}")
    if not path.parent.is_dir():
        raise MomentcalcError(f"no directory {str(path.parent)!r} to write the plot into")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    pred = comparison.prediction.layers
    depths = [s.depth for s in pred]
    for variant, run in comparison.runs.items():
        for ax, field in zip(axes, ("mean", "std", "grad_rms")):
            ax.plot(depths, [getattr(s, field) for s in run.layers], color=_COLORS.get(variant), label=variant)
    for ax, field, title in zip(
        axes,
        ("mean", "std", "grad_rms"),
        ("mean of block output", "std of block output", "gradient RMS at block output"),
    ):
        ax.plot(depths, [getattr(s, field) for s in pred], "k--", lw=1, label="momentcalc (NormProp)")
        ax.set_title(title)
        ax.set_xlabel("depth (blocks)")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize="small")
    pool = f", {comparison.pool} every {comparison.pool_every}" if comparison.pool else ""
    fig.suptitle(
        f"{comparison.depth} blocks of '{comparison.block}'{pool}; width {comparison.width}, "
        f"{comparison.size}x{comparison.size} input, batch {comparison.batch}, seed {comparison.seed}"
    )
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
