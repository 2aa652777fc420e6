"""What an estimate returns: one Estimate per method, and the cross-checked Result."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass

# Most exact first: the value of record of each quantity is the first estimate in this order that gives it.
PRECEDENCE = ("certified", "closed", "quadrature", "qmc", "montecarlo")
EXACT_METHODS = ("certified", "closed", "quadrature")
# Quasi-Monte Carlo's independent scramblings (estimators/qmc.py): its SE is their spread.
QMC_REPLICAS = 16
# Fewer (quasi-)Monte Carlo samples than this give no usable standard error (see informative()).
MIN_SAMPLES = 32


def half_width(lo: float, hi: float) -> float:
    """(hi - lo) / 2 rounded up: a bound from an interval's ends never rounds to less (between subnormals
    (hi - lo) / 2 would round to 0 and claim an exact value)."""
    half = (hi - lo) / 2.0
    return half if 2.0 * half >= hi - lo else math.nextafter(half, math.inf)


def informative(e: Estimate, quantity: str) -> bool:
    """Does the estimate state a usable uncertainty for quantity ('mean', 'std' or 'grad_sq')?

    Exact methods always do (their bound). A statistical estimate does not when it has fewer than
    MIN_SAMPLES samples (its SE is then noise itself: from 2 samples SE(std) is always 0), or when its
    SE is 0: all its samples were equal (moments.Summary.estimate makes the SE exactly 0 then), and
    equal samples bound nothing about the mean (by the rule of three the mass of other values is
    below ~3/N at 95%, but how far those values lie is unbounded). Such a quantity is never
    cross-checked (crosscheck.compare) and never the value of record while another method gives it.
    """
    if getattr(e, quantity) is None:
        return False
    if e.exact:
        return True
    if e.samples is not None and e.samples < MIN_SAMPLES:
        return False
    return bool(getattr(e, quantity + "_se"))


def to_json(value):
    """A value as JSON takes it: a record by its own to_dict(), another dataclass by record_dict, tuples and lists
    item by item, dicts value by value, numpy arrays and scalars by tolist()."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return record_dict(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value.tolist() if hasattr(value, "tolist") else value


def record_dict(obj, keys: tuple[str, ...] | None = None, **computed) -> dict:
    """The JSON form of a result record, each value by to_json: its dataclass fields in declaration order, mu and
    sigma (where it has both) as one "input": {mu, sigma} in mu's place, then the computed keys; or the keys
    given, in their order. A key's value is computed[key] where given, else the attribute (a property too)."""
    if keys is None:
        names = [f.name for f in fields(obj)]
        pair = "mu" in names and "sigma" in names
        keys = tuple("input" if pair and k == "mu" else k for k in names if not (pair and k == "sigma"))
        keys += tuple(k for k in computed if k not in keys)
    out = {}
    for key in keys:
        if key in computed:
            value = computed[key]
        elif key == "input":
            value = {"mu": obj.mu, "sigma": obj.sigma}
        else:
            value = getattr(obj, key)
        out[key] = to_json(value)
    return out


@dataclass(frozen=True)
class Moments:
    """A closed form's answer: the mean, and the std where it is known too, each with a bound on its error.

    The bounds are those of the formula's evaluation in doubles (ops/fperr.py); 0 only for a value exact by
    construction (0 by symmetry, 1/2, the input's own mu).
    """

    mean: float
    std: float | None  # None where only the mean has a closed form
    mean_err: float | None = None  # None: not derived; estimators/closed.py then states a generic bound
    std_err: float | None = None


@dataclass(frozen=True)
class Estimate:
    """Mean and std of a layer's output by one method.

    The uncertainties are 0 for closed forms, half the enclosure's width for
    certified, the integration error bound for quadrature, and one standard
    error for (quasi-)Monte Carlo.
    """

    method: str
    mean: float
    std: float | None  # None where the method gives only the mean
    mean_se: float
    std_se: float | None
    samples: int | None = None
    seed: int | None = None
    seconds: float = 0.0
    # The backward constant E[f'(X)^2] by the same method, and its uncertainty; None where not computed.
    grad_sq: float | None = None
    grad_sq_se: float | None = None
    notes: tuple[str, ...] = ()  # e.g. 'numerical derivative'
    # certified: [lo, hi] (doubles, rounded outward) that holds the true value; None for other methods.
    mean_interval: tuple[float, float] | None = None
    std_interval: tuple[float, float] | None = None
    grad_sq_interval: tuple[float, float] | None = None
    # certified with digits=N: the N significant digits, correctly rounded, as text; None otherwise.
    mean_digits: str | None = None
    std_digits: str | None = None
    grad_sq_digits: str | None = None

    @property
    def exact(self) -> bool:
        return self.method in EXACT_METHODS

    @property
    def dof(self) -> int | None:
        """Degrees of freedom of the SE's estimate where few: quasi-Monte Carlo's replicas less one (its z-score
        follows Student's t); None for an SE from millions of samples (normal)."""
        return QMC_REPLICAS - 1 if self.method == "qmc" else None

    def to_dict(self) -> dict:
        found = asdict(self)
        for name in ("mean_interval", "std_interval", "grad_sq_interval"):
            found[name] = None if found[name] is None else list(found[name])
        return found


@dataclass(frozen=True)
class Check:
    """One pairwise comparison of a quantity ('mean', 'std' or 'grad_sq') between two methods."""

    a: str
    b: str
    quantity: str
    diff: float
    tolerance: float
    ok: bool

    @property
    def pair(self) -> str:
        return f"{self.a} vs {self.b} ({self.quantity})"


class Verdict:
    """The cross-check verdict of anything holding `checks` (each with `ok` and `pair`)."""

    @property
    def agree(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def disagreements(self) -> list[str]:
        return [c.pair for c in self.checks if not c.ok]


@dataclass(frozen=True)
class Result(Verdict):
    spec: str
    mu: float
    sigma: float
    estimates: tuple[Estimate, ...]
    checks: tuple[Check, ...]
    # Seconds spent apart from the estimates' own: "imports" (scipy, python-flint: on first use in a
    # process), "kernels" (loading compiled kernels from the disk cache, or compiling them on a first
    # run). Not in to_dict(): they say how the process was set up, not what was measured.
    overheads: dict = field(default_factory=dict, compare=False)
    # The methods that method='auto' did not run because the estimates before them already checked each other
    # (engine.methods.cross_checked); in to_dict() only where some were left out.
    not_run: tuple[str, ...] = ()

    # The value of record is chosen per quantity: the most exact estimate that gives it, skipping
    # uninformative ones (see informative()) while another gives it. So a closed form that gives only
    # the mean (0 for tanh by symmetry, 1/2 for sigmoid) is the mean of record, exactly, and the std
    # comes from quadrature. A value that disagrees with a more exact one is never chosen: the more
    # exact one always comes first.
    def record_of(self, quantity: str) -> Estimate | None:
        """The estimate of record of 'mean', 'std' or 'grad_sq'; None where no estimate gives it."""
        pool = [e for e in self.estimates if getattr(e, quantity) is not None]
        pool = [e for e in pool if informative(e, quantity)] or pool
        return min(pool, key=_rank) if pool else None

    @property
    def record(self) -> Estimate:
        """The estimate of record of the std (of the mean where none gives a std): the one `method` names."""
        return self.record_of("std") or self.mean_record

    @property
    def mean_record(self) -> Estimate:
        return self.record_of("mean")

    @property
    def mean(self) -> float:
        return self.mean_record.mean

    @property
    def std(self) -> float | None:
        return self.record.std

    @property
    def mean_se(self) -> float:
        return self.mean_record.mean_se

    @property
    def std_se(self) -> float | None:
        return self.record.std_se

    @property
    def method(self) -> str:
        """The method of record of the std (as before the mean was chosen on its own: tables keep their meaning).

        The mean's may be more exact: mean_record.method.
        """
        return self.record.method

    @property
    def grad_sq_record(self) -> Estimate | None:
        """The most exact estimate that carries E[f'(X)^2]."""
        return self.record_of("grad_sq")

    @property
    def grad_sq(self) -> float | None:
        """E[f'(X)^2] for a chain of elementwise ops (chain rule through normalize and dropout); None otherwise."""
        record = self.grad_sq_record
        return None if record is None else record.grad_sq

    @property
    def grad_sq_se(self) -> float | None:
        record = self.grad_sq_record
        return None if record is None else record.grad_sq_se

    def to_dict(self) -> dict:
        # "method" is the std's method of record; mean_method is added only where the mean's differs,
        # so the documents of results with one method of record keep their exact shape.
        extra = {} if self.mean_record is self.record else {"mean_method": self.mean_record.method}
        return {
            "spec": self.spec,
            "input": {"mu": self.mu, "sigma": self.sigma},
            "mean": self.mean,
            "std": self.std,
            "mean_se": self.mean_se,
            "std_se": self.std_se,
            "method": self.method,
            **extra,
            "grad_sq": self.grad_sq,
            "grad_sq_se": self.grad_sq_se,
            "agree": self.agree,
            "disagreements": self.disagreements,
            "estimates": [e.to_dict() for e in self.estimates],
            **({"not_run": list(self.not_run)} if self.not_run else {}),
        }


def _rank(e: Estimate) -> int:
    return PRECEDENCE.index(e.method) if e.method in PRECEDENCE else len(PRECEDENCE)
