"""What an estimate returns: one Estimate per method, and the cross-checked Result."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Most exact first: the value of record is the first complete estimate in this order.
PRECEDENCE = ("closed", "quadrature", "qmc", "montecarlo")
EXACT_METHODS = ("closed", "quadrature")


@dataclass(frozen=True)
class Estimate:
    """Mean and std of a layer's output by one method.

    The uncertainties are 0 for closed forms, the integration error bound for
    quadrature, and one standard error for (quasi-)Monte Carlo.
    """

    method: str
    mean: float
    std: float | None  # None where the method gives only the mean
    mean_se: float
    std_se: float | None
    samples: int | None = None
    seed: int | None = None
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return self.method in EXACT_METHODS

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One pairwise comparison of a quantity ('mean' or 'std') between two methods."""

    a: str
    b: str
    quantity: str
    diff: float
    tolerance: float
    ok: bool

    @property
    def pair(self) -> str:
        return f"{self.a} vs {self.b} ({self.quantity})"


@dataclass(frozen=True)
class Result:
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
    def agree(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def disagreements(self) -> list[str]:
        return [c.pair for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {
            "spec": self.spec,
            "input": {"mu": self.mu, "sigma": self.sigma},
            "mean": self.mean,
            "std": self.std,
            "mean_se": self.mean_se,
            "std_se": self.std_se,
            "method": self.method,
            "agree": self.agree,
            "disagreements": self.disagreements,
            "estimates": [e.to_dict() for e in self.estimates],
        }
