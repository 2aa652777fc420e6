"""The transformer preset's plot: per block, the RMS of the stream and of chosen ops, forward and backward, and
each variant's largest distance from its target, one colour per variant."""

from __future__ import annotations

from pathlib import Path

from .plot import plt, save
from .transformer import Profile, deviations

_COLORS = {"unit-scaling": "tab:orange", "exact": "tab:blue", "standard": "tab:red"}
_STYLES = {"stream": "-", "attention": "--", "glu": ":", "q": "--", "v": ":"}
_CAPTION = (
    "Colours: unit-scaling = unit-scaling 0.3.5's ops (fitted scales); exact = momentcalc.torch.unit's ops "
    "(exact scales; each attention's per row and per key, for the covariance across positions momentcalc "
    "propagates through the blocks); standard = torch's ops, nn.Linear's default init, x + f(x). "
    "Left: RMS of the residual stream entering each block (solid), of the attention output before its output "
    "linear (dashed) and of the SwiGLU output (dotted). Middle: RMS of the gradient reaching the stream (solid), "
    "the attention's query (dashed) and value (dotted), for an N(0, 1) gradient injected at the last block. "
    "Right: the largest |RMS - 1| over every op's output (solid) and |gradient RMS / prediction - 1| over every "
    "gradient (dashed) in each block; the grey band is the target 0.05. Input N(0, 1); one seed."
)


def figure(profiles: list[Profile]):
    """The three panels, axes labelled, the caption under them. The caller closes it."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 6), constrained_layout=True)
    for p in profiles:
        blocks = range(1, p.config.depth + 1)
        color = _COLORS.get(p.variant)
        for op in ("stream", "attention", "glu"):
            axes[0].plot(blocks, p.rms[op], _STYLES[op], color=color, label=f"{p.variant}: {op}")
        for op in ("stream", "q", "v"):
            axes[1].plot(blocks, p.grad_rms[op], _STYLES[op], color=color, label=f"{p.variant}: {op}")
        worst = deviations(p)
        axes[2].plot(blocks, [w[1] for w in worst], "-", color=color, label=f"{p.variant}: outputs")
        axes[2].plot(blocks, [w[3] for w in worst], "--", color=color, label=f"{p.variant}: gradients")
    labels = (
        ("RMS of the op's output", "forward"),
        ("RMS of dL/d(tensor)", "backward"),
        ("largest distance from target", "worst op per block"),
    )
    for ax, (ylabel, title) in zip(axes, labels):
        ax.set_xlabel("block")
        ax.set_ylabel(f"{ylabel} (log)")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    axes[2].axhspan(1e-4, 0.05, color="0.85")
    c = profiles[0].config
    fig.suptitle(
        f"{c.depth}-block causal transformer at init: width {c.width}, {c.heads} heads, sequence {c.seq}, "
        f"batch {c.batch}, float32"
    )
    fig.text(0.01, 0.0, _CAPTION, ha="left", va="bottom", fontsize="small", wrap=True)
    fig.get_layout_engine().set(rect=(0, 0.13, 1, 0.87))
    return fig


def draw(profiles: list[Profile], path: str | Path) -> Path:
    """Write the plot to path (.png or .svg), atomically."""
    return save(figure(profiles), path)
