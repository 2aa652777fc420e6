"""How an estimate runs: one frozen, validated RunSettings passed from engine.estimate to every estimator.

Light on purpose (standard library and momentcalc.errors only), so that
anything may import it without loading numba or scipy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from .errors import MomentcalcError

METHODS = ("auto", "all", "certified", "closed", "quadrature", "montecarlo", "qmc")
DEFAULT_SAMPLES = 1 << 22  # Monte Carlo samples when neither samples nor tol is given
MAX_SAMPLES = 1 << 36  # the most samples (or values, for whole maps) one run may draw
DEFAULT_Z = 4.5  # crosscheck.DEFAULT_Z: the z-score bound of the cross-check
Z_MAX = 1e3  # z * SE must stay finite; a bound of 1000 standard errors already checks nothing
# The least target standard error: tol**2 must not underflow (tol 1e-300 made the samples needed infinite);
# far below anything 2**36 samples can reach, so such a tol is refused by the sample limit, with its cost.
TOL_MIN = 1e-100

# The input domain every exact method is made right for (README, "Input domain"); engine.estimate refuses the rest.
MU_MAX = 1e6  # |mu| <= MU_MAX
SIGMA_MIN, SIGMA_MAX = 1e-6, 1e6
WINDOW_MAX = 10**6  # values in one window (n, or k ** dims)
INT_MAX = 10**6  # the most any integer parameter may be (window side, stride, padding, channels)
# Ranges of op parameters, (least, most), both included: the op declarations (momentcalc.ops) take theirs from
# here, the spec parser refuses the rest, and `momentcalc list` and the README show them.
PARAM_RANGES = {
    "alpha": (1e-3, 1e3),  # elu, celu, selu
    "scale": (1e-3, 1e3),  # selu
    "beta": (1e-3, 1e3),  # softplus, swish
    "slope": (0.0, 1e3),  # leaky_relu
    "min_val": (-1e6, 1e6),  # hardtanh
    "max_val": (-1e6, 1e6),
    "keep": (1e-6, 1.0),  # dropout's p: the variance grows like 1/p, and p * p must not underflow
    "count": (1, INT_MAX),  # window side k, window size n, stride s, channels
    "padding": (0, INT_MAX),
}

# Limits on the cost of one command (issue 13: no argument may exhaust the machine or run unannounced for hours).
SHAPE_MAX = 10**40  # i, k, s, p, d of `momentcalc shape`: closed-form integer arithmetic, any size up to this
# A sampling run draws samples x (normals per output) standard normals; MAX_SAMPLES bounds that product too.
# A run of the default size that would draw more than DEFAULT_WORK (seconds of kernel work) draws fewer
# outputs, at least MIN_CUT_SAMPLES, and says so: the exact methods give the value, sampling the check.
DEFAULT_WORK = 1 << 28
# Stages of one pipeline: quadrature follows every stage at each of its ~10^5 points (64 relus: ~20 s).
PIPELINE_MAX = 64
# `momentcalc backward`: the map is size x size floats (as a list, ~40 MB at 1024), and its simulation
# cross-check touches trials x (one trial's values); one trial's arrays stay within a few hundred MB.
BACKWARD_SIZE_MAX = 1024
BACKWARD_WORK_MAX = 1 << 31  # values all trials touch: about a minute
BACKWARD_TRIAL_MAX = 1 << 24  # values one trial touches
# `momentcalc propagate`: each variant's weights plus the activations autograd keeps (float32), and its
# conv multiply-adds (forward; backward costs about twice that). The defaults use 1e7 values and 5e8 madds.
PROPAGATE_VALUES_MAX = 1 << 28  # 1 GiB of float32 per variant
PROPAGATE_WORK_MAX = 2 * 10**10  # about a minute for the three variants on 2 cores
# Blocks of `momentcalc propagate`: past this, building the net alone (a module per stage) takes minutes.
PROPAGATE_DEPTH_MAX = 10_000
MIN_CUT_SAMPLES = 64

Progress = Callable[[int, int], None]  # progress(done, total), in samples, after each batch of work


@dataclass(frozen=True)
class RunSettings:
    """Method, sample count or target standard error, seed, z of the cross-check and progress callback.

    Checked when made, so an estimator never sees bad settings. samples and
    tol exclude each other; with neither, each method has its default count.
    """

    method: str = "auto"
    samples: int | None = None
    tol: float | None = None
    seed: int = 0
    z: float = DEFAULT_Z
    progress: Progress | None = None
    max_samples: int = MAX_SAMPLES  # the most samples a tol run may reach (fewer when each costs many normals)

    def __post_init__(self):
        _check(self)
        # numpy scalars (np.int64, np.float32 ...) are numbers too; estimators see plain ints and floats.
        for name, convert in (("samples", int), ("tol", float), ("seed", int), ("z", float)):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, convert(value))


def _check(s: RunSettings) -> None:
    if s.method not in METHODS:
        raise MomentcalcError(f"unknown method {s.method!r}; use one of {', '.join(METHODS)}")
    if s.samples is not None and (not is_int(s.samples) or s.samples <= 0):
        raise MomentcalcError(f"samples must be a whole number > 0, got {shown(s.samples)}")
    if s.samples is not None and s.samples > MAX_SAMPLES:
        raise MomentcalcError(f"samples must be at most {MAX_SAMPLES}, got {shown(s.samples)}")
    if s.tol is not None and (not is_finite(s.tol) or s.tol <= 0):
        raise MomentcalcError(f"tol must be a finite number > 0, got {shown(s.tol)}")
    if s.tol is not None and s.tol < TOL_MIN:
        raise MomentcalcError(
            f"tol must be at least {TOL_MIN:g} (a standard error no run of at most {MAX_SAMPLES} samples reaches), "
            f"got {shown(s.tol)}; for exact values use --method certified, closed or quadrature"
        )
    if s.samples is not None and s.tol is not None:
        raise MomentcalcError("give either samples or tol, not both")
    check_seed(s.seed)
    if s.progress is not None and not callable(s.progress):
        raise MomentcalcError(f"progress must be a callable progress(done, total) or None, got {shown(s.progress)}")
    if not is_finite(s.z) or not 0 < s.z <= Z_MAX:
        raise MomentcalcError(f"z must be a number > 0 and <= {Z_MAX:g}, got {shown(s.z)}")


def check_seed(seed, most: int | None = None) -> None:
    """A seed is a whole number >= 0 (numpy's SeedSequence refuses negatives; torch's take at most 2**63 - 1)."""
    if not is_int(seed) or seed < 0 or (most is not None and seed > most):
        limit = "" if most is None else f" and <= {most}"
        raise MomentcalcError(f"seed must be a whole number >= 0{limit}, got {shown(seed)}")


def check_depth(depth: int) -> None:
    """Refuse a `propagate` deeper than PROPAGATE_DEPTH_MAX blocks: a comparison of integers, before torch loads."""
    if is_int(depth) and depth > PROPAGATE_DEPTH_MAX:
        raise MomentcalcError(f"--depth {depth} is more than the {PROPAGATE_DEPTH_MAX:,} blocks allowed")


def shown(value) -> str:
    """repr of a value for an error message, cut to 60 characters (a 400-digit int is not echoed whole)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:45] + "..." + text[-12:]


def is_finite(x) -> bool:
    """A finite real number: int, float or a numpy scalar (numbers.Real), not a bool."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an int beyond the doubles, e.g. 10**400
        return False


def is_int(x) -> bool:
    """A whole number: int or a numpy integer (numbers.Integral), not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
