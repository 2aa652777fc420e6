"""What an estimate returns: one Estimate per method, and the cross-checked Result."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Most exact first: the value of record is the first complete estimate in this order.
PRECEDENCE = ("certified", "closed", "quadrature", "qmc", "montecarlo")
EXACT_METHODS = ("certified", "closed", "quadrature")


@dataclass(frozen=True)
class Moments:
    """A closed form's answer: the mean, and the std where it is known too."""

    mean: float
    std: float | None  # None where only the mean has a closed form


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

    @property
    def record(self) -> Estimate:
        complete = [e for e in self.estimates if e.std is not None]
        pool = complete or list(self.estimates)
        return min(pool, key=lambda e: PRECEDENCE.index(e.method))

    @property
    def mean(self) -> float:
        return self.record.mean

    @property
    def std(self) -> float | None:
        return self.record.std

    @property
    def mean_se(self) -> float:
        return self.record.mean_se

    @property
    def std_se(self) -> float | None:
        return self.record.std_se

    @property
    def method(self) -> str:
        return self.record.method

    @property
    def grad_sq_record(self) -> Estimate | None:
        """The most exact estimate that carries E[f'(X)^2]."""
        pool = [e for e in self.estimates if e.grad_sq is not None]
        return (
            min(pool, key=lambda e: PRECEDENCE.index(e.method) if e.method in PRECEDENCE else len(PRECEDENCE))
            if pool
            else None
        )

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
        return {
            "spec": self.spec,
            "input": {"mu": self.mu, "sigma": self.sigma},
            "mean": self.mean,
            "std": self.std,
            "mean_se": self.mean_se,
            "std_se": self.std_se,
            "method": self.method,
            "grad_sq": self.grad_sq,
            "grad_sq_se": self.grad_sq_se,
            "agree": self.agree,
            "disagreements": self.disagreements,
            "estimates": [e.to_dict() for e in self.estimates],
        }
