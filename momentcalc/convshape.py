"""Output-size arithmetic for one spatial axis of a convolution or pooling window.

Follows Dumoulin & Visin, "A guide to convolution arithmetic for deep learning"
(arXiv 1603.07285), Relationship 6 extended with dilation:

    k_eff = d * (k - 1) + 1
    o     = floor((i + 2p - k_eff) / s) + 1

Padding is symmetric: p zeros before and p after. The named padding modes are

- ``valid``: p = 0.
- ``same`` (a.k.a. *half*): p = floor(k_eff / 2). For odd k_eff and s = 1 this
  gives o = i. For even k_eff it gives o = i + 1, because symmetric padding
  cannot add the odd total k_eff - 1 that o = i needs; TensorFlow's 'SAME'
  instead pads asymmetrically (the extra zero after), which this module does
  not model. (The source slides write ceil(k/2); the paper's floor(k/2) is the
  one that yields o = i for odd k, so that is what is used.)
- ``full``: p = k_eff - 1, the largest padding for which no window sees only
  padding. For s = 1 it gives o = i + k_eff - 1.

Pooling takes no padding unless given, and like PyTorch it refuses
p > floor(k / 2) (PyTorch checks the undilated kernel size).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MomentcalcError

PADDING_MODES = ("valid", "same", "full")


@dataclass(frozen=True)
class ShapeResult:
    """Output size of one axis, the padding used and any never-read inputs."""

    input: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    effective_kernel: int
    output: int
    pool: bool
    mode: str | None
    unread: tuple[int, ...]
    warning: str | None

    def as_dict(self) -> dict:
        """The JSON form: ``output``, ``padding`` and ``warning`` (None if none)."""
        return {"output": self.output, "padding": self.padding, "warning": self.warning}


def effective_kernel(k: int, d: int = 1) -> int:
    """Span of a kernel of k taps spaced d apart: d(k - 1) + 1."""
    return d * (k - 1) + 1


def padding_for(mode: str, k: int, d: int = 1) -> int:
    """Padding of a named mode (valid, same/half, full) for kernel k, dilation d."""
    mode = mode.lower()
    k_eff = effective_kernel(k, d)
    if mode == "valid":
        return 0
    if mode in ("same", "half"):
        return k_eff // 2
    if mode == "full":
        return k_eff - 1
    raise MomentcalcError(f"unknown padding mode {mode!r}; accepted: valid, same (or half), full")


def output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """o = floor((i + 2p - k_eff)/s) + 1, after checking the shape is possible."""
    _check_positive(i=i, k=k, s=s, d=d)
    if p < 0:
        raise MomentcalcError(f"padding p must be >= 0, got {p}")
    k_eff = effective_kernel(k, d)
    if k_eff > i + 2 * p:
        raise MomentcalcError(
            f"kernel does not fit: effective kernel {k_eff} (k={k}, d={d}) "
            f"is larger than the padded input i + 2p = {i + 2 * p}"
        )
    return (i + 2 * p - k_eff) // s + 1


def read_positions(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> set[int]:
    """Input indices (0..i-1) that at least one window reads."""
    o = output_size(i, k, s, p, d)
    read = set()
    for start in range(-p, -p + o * s, s):
        read.update(start + t * d for t in range(k))
    return {u for u in read if 0 <= u < i}


def conv_shape(
    i: int,
    k: int,
    s: int | None = None,
    p: int | None = None,
    d: int = 1,
    padding: str | None = None,
    pool: bool = False,
) -> ShapeResult:
    """Output size and padding of a conv (or, with ``pool``, a pooling) axis.

    ``s`` defaults to 1 for a conv and to k for a pool (PyTorch's default).
    ``p`` and ``padding`` (a mode name) are exclusive; with neither, p = 0.
    """
    if p is not None and padding is not None:
        raise MomentcalcError("give either an explicit padding p or a padding mode, not both")
    if s is None:
        s = k if pool else 1
    _check_positive(i=i, k=k, s=s, d=d)
    pad = padding_for(padding, k, d) if padding is not None else (p or 0)
    if pad < 0:
        raise MomentcalcError(f"padding p must be >= 0, got {pad}")
    if pool and 2 * pad > k:
        raise MomentcalcError(
            f"pooling padding {pad} is more than half the kernel size {k} "
            f"(PyTorch requires p <= k/2, here at most {k // 2})"
        )
    o = output_size(i, k, s, pad, d)
    unread = tuple(sorted(set(range(i)) - read_positions(i, k, s, pad, d)))
    return ShapeResult(
        input=i,
        kernel=k,
        stride=s,
        padding=pad,
        dilation=d,
        effective_kernel=effective_kernel(k, d),
        output=o,
        pool=pool,
        mode=None if padding is None else padding.lower(),
        unread=unread,
        warning=_warning(i, k, s, pad, d, o, unread),
    )


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise MomentcalcError(f"{name} must be >= 1, got {value}")


def _warning(i: int, k: int, s: int, p: int, d: int, o: int, unread: tuple[int, ...]) -> str | None:
    """Say which inputs are never read and why, or that some windows see only padding."""
    k_eff = effective_kernel(k, d)
    notes = []
    if unread:
        last_read = (o - 1) * s - p + k_eff - 1
        causes = []
        if any(u < last_read for u in unread):
            if s > k_eff:
                causes.append(f"stride {s} is larger than the kernel span {k_eff}, so windows leave gaps")
            else:
                causes.append(f"dilation {d} with stride {s} leaves gaps between taps")
        if last_read < i - 1:
            causes.append(f"the floor in the output size drops the last {i - 1 - last_read} input(s)")
        shown = ", ".join(map(str, unread[:8])) + (", ..." if len(unread) > 8 else "")
        notes.append(f"{len(unread)} of {i} input positions per axis are never read ({shown}): " + "; ".join(causes))
    if p > k_eff - 1:
        notes.append(f"padding {p} exceeds full padding {k_eff - 1}, so some windows see only padding")
    return "; ".join(notes) or None
