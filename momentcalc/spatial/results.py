"""The result types of a per-position map (SpatialResult, WindowKind, MapEstimate, MapCheck) and the threshold
family_z that a map's checks are held to."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from ..result import Verdict, record_dict


@dataclass(frozen=True)
class WindowKind:
    """Output positions whose values are identically distributed, and their moments."""

    label: str  # where they are: 'interior', 'edges', 'corners', 'faces', 'ends', or several joined by ' + '
    real_inputs: int | None  # real (non-padding) inputs of the last window; None without a window op
    positions: tuple[tuple[int, ...], ...]
    mean: float
    std: float
    mean_se: float  # exact: the error bound (0 for closed forms); Monte Carlo: a standard error
    std_se: float
    method: str  # 'closed', 'quadrature', 'montecarlo', or '... + certified K(c)' (correlated windows)
    exact_spec: str | None = None  # what the exact values are the moments of, e.g. 'relu | maxpool(n=4)'
    note: str | None = None  # why there is no exact value, where there is none

    @property
    def count(self) -> int:
        return len(self.positions)

    def to_dict(self) -> dict:
        keys = ("label", "real_inputs", "count", "positions", "mean", "std", "mean_se", "std_se", "method")
        return record_dict(self, keys + ("exact_spec", "note"))


@dataclass(frozen=True)
class MapEstimate:
    """Monte Carlo over whole maps: per-position moments and their standard errors."""

    mean: np.ndarray
    std: np.ndarray
    mean_se: np.ndarray
    std_se: np.ndarray
    samples: int  # simulated maps
    seed: int
    seconds: float

    def to_dict(self) -> dict:
        maps = {"mean_map": self.mean, "std_map": self.std, "mean_se_map": self.mean_se, "std_se_map": self.std_se}
        return record_dict(self, (*maps, "samples", "seed", "seconds"), **maps)


@dataclass(frozen=True)
class MapCheck:
    """Exact value of one kind vs Monte Carlo at each of its positions: the worst z-score."""

    kind: str
    kind_index: int  # into SpatialResult.kinds
    quantity: str  # 'mean' or 'std'
    max_z: float
    worst: tuple[int, ...]
    z: float  # the z asked for, as for one comparison
    limit: float  # what max_z is held to: z corrected for the number of positions (family_z)

    @property
    def ok(self) -> bool:
        return self.max_z <= self.limit

    @property
    def pair(self) -> str:
        return f"{self.kind} ({self.quantity}) at {self.worst}"


@dataclass(frozen=True)
class SpatialResult(Verdict):
    """Moments of every output position of a spec applied to a map of iid N(mu, sigma^2) inputs.

    The maps hold the value of record per position: the exact value of its
    kind where there is one, else the Monte Carlo mean over the positions of
    its kind (with the mean of their standard errors, an upper bound for the
    SE of that average).
    """

    spec: str
    mu: float
    sigma: float
    dims: int
    size: int
    output_size: int
    mean_map: np.ndarray
    std_map: np.ndarray
    mean_se_map: np.ndarray
    std_se_map: np.ndarray
    kinds: tuple[WindowKind, ...]
    montecarlo: MapEstimate | None
    checks: tuple[MapCheck, ...]

    @property
    def input(self) -> dict:
        return {"mu": self.mu, "sigma": self.sigma}

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(sorted({k.method for k in self.kinds}))

    def to_dict(self) -> dict:
        checks = [record_dict(c, ok=c.ok) for c in self.checks]
        return record_dict(self, checks=checks, agree=self.agree, disagreements=self.disagreements)


def family_z(z: float, count: int) -> float:
    """The threshold for the largest of count |z|-scores with the false-alarm rate of one |z| > z.

    A 512 x 512 map compares 262,144 positions: held to z = 4.5 each, a few exceed it by chance (6.8e-6 each),
    and a correct map would be called a disagreement. Bonferroni (the rate split evenly over the positions; the
    positions of a map are not independent, which only makes this conservative): 4.5 for one position, 5.6
    for 100, 6.7 for 262,144."""
    if count <= 1:
        return z
    per = math.erfc(z / math.sqrt(2.0)) / count  # P(|Z| > limit) for each position
    return -statistics.NormalDist().inv_cdf(per / 2.0)
