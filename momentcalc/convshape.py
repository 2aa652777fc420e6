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

Everything is integer arithmetic in constant memory, including which inputs no
window reads (read_count, a floor sum), so any size up to settings.SHAPE_MAX
answers at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import MomentcalcError
from .settings import SHAPE_MAX

PADDING_MODES = ("valid", "same", "full")
UNREAD_SHOWN = 8  # never-read positions listed in ShapeResult and the warning


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
    unread_count: int  # input positions per axis that no window reads
    unread_first: tuple[int, ...]  # the first UNREAD_SHOWN of them
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
    _check_range("p", p)
    k_eff = effective_kernel(k, d)
    if k_eff > i + 2 * p:
        raise MomentcalcError(
            f"kernel does not fit: effective kernel {k_eff} (k={k}, d={d}) "
            f"is larger than the padded input i + 2p = {i + 2 * p}"
        )
    return (i + 2 * p - k_eff) // s + 1


def read_count(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, lo: int = 0, hi: int | None = None) -> int:
    """How many input indices u with lo <= u < hi (hi defaults to i) at least one window reads.

    Closed form, in O(log) integer operations for any sizes (Python ints): window j's tap t reads the
    padded index v = j s + t d (0 <= j < o, 0 <= t < k). With g = gcd(s, d), two pairs give the same v
    exactly when they differ by a multiple of (d/g, -s/g), so each read index has one representative
    with the least t: the pairs with t < s/g, or with j >= o - d/g (where the step would leave the
    box). Counting those below a bound is a floor sum.
    """
    o = output_size(i, k, s, p, d)
    hi = i if hi is None else hi
    lo, hi = max(lo, 0), min(hi, i)
    if hi <= lo:
        return 0
    return _representatives_below(hi + p, o, k, s, d) - _representatives_below(lo + p, o, k, s, d)


def unread_positions(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, first: int = 8) -> tuple[int, ...]:
    """The first `first` input indices that no window reads, each found by bisection on read_count."""
    found: list[int] = []
    total_unread = i - read_count(i, k, s, p, d)
    for rank in range(1, min(first, total_unread) + 1):
        low, high = found[-1] + 1 if found else 0, i - 1  # the rank-th unread index is in [low, high]
        while low < high:
            mid = (low + high) // 2
            if mid + 1 - read_count(i, k, s, p, d, 0, mid + 1) >= rank:
                high = mid
            else:
                low = mid + 1
        found.append(low)
    return tuple(found)


def _representatives_below(x: int, o: int, k: int, s: int, d: int) -> int:
    """Distinct padded indices v < x read by some window: representatives (j, t) with j s + t d < x."""
    g = math.gcd(s, d)
    narrow = min(k, s // g)  # t below this: always the representative
    return _pairs_below(x, 0, o, 0, narrow, s, d) + _pairs_below(x, max(0, o - d // g), o, narrow, k, s, d)


def _pairs_below(x: int, j0: int, j1: int, t0: int, t1: int, s: int, d: int) -> int:
    """Pairs (j, t) in [j0, j1) x [t0, t1) with j s + t d < x.

    For fixed t the count of j is clamp(ceil((x - t d) / s), j0, j1) - j0, which falls as t grows:
    all j1 - j0 up to t_full, a floor sum up to t_some, none beyond.
    """
    if j0 >= j1 or t0 >= t1:
        return 0
    t_full = (x + s - 1 - j1 * s) // d  # the largest t with ceil((x - t d) / s) >= j1
    t_some = (x - 1 - j0 * s) // d  # the largest t with ceil((x - t d) / s) > j0
    count = max(0, min(t_full, t1 - 1) - t0 + 1) * (j1 - j0)
    first, last = max(t_full + 1, t0), min(t_some, t1 - 1)
    if last >= first:
        n = (
            last - first + 1
        )  # t = last - r for r = 0 .. n-1: ceil((x - t d) / s) = floor((x + s - 1 - last d + r d) / s)
        count += _floor_sum(n, s, d, x + s - 1 - last * d) - n * j0
    return count


def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """sum of floor((a r + b) / m) for r = 0 .. n-1, for a, b >= 0, m >= 1, in O(log) steps (AtCoder Library)."""
    total = 0
    while True:
        if a >= m:
            total += n * (n - 1) // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        y_max = a * n + b
        if y_max < m:
            return total
        n, b = divmod(y_max, m)
        m, a = a, m


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
    unread_count = i - read_count(i, k, s, pad, d)
    unread = unread_positions(i, k, s, pad, d, UNREAD_SHOWN)
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
        unread_count=unread_count,
        unread_first=unread,
        warning=_warning(i, k, s, pad, d, o, unread_count, unread),
    )


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise MomentcalcError(f"{name} must be >= 1, got {value}")
        _check_range(name, value)


def _check_range(name: str, value: int) -> None:
    if value > SHAPE_MAX:
        raise MomentcalcError(f"{name} must be at most 10**{len(str(SHAPE_MAX)) - 1} (shape arithmetic), got {value}")


def _warning(i: int, k: int, s: int, p: int, d: int, o: int, count: int, first: tuple[int, ...]) -> str | None:
    """Say which inputs are never read and why, or that some windows see only padding."""
    k_eff = effective_kernel(k, d)
    notes = []
    if count:
        last_read = (o - 1) * s - p + k_eff - 1
        causes = []
        if min(last_read, i) - read_count(i, k, s, p, d, 0, last_read) > 0:  # unread indices before the last read
            if s > k_eff:
                causes.append(f"stride {s} is larger than the kernel span {k_eff}, so windows leave gaps")
            else:
                causes.append(f"dilation {d} with stride {s} leaves gaps between taps")
        if last_read < i - 1:
            causes.append(f"the floor in the output size drops the last {i - 1 - last_read} input(s)")
        shown = ", ".join(map(str, first)) + (", ..." if count > len(first) else "")
        notes.append(f"{count} of {i} input positions per axis are never read ({shown}): " + "; ".join(causes))
    if p > k_eff - 1:
        notes.append(f"padding {p} exceeds full padding {k_eff - 1}, so some windows see only padding")
    return "; ".join(notes) or None
