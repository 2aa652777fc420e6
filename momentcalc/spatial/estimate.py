"""estimate_map: per-position moments of a spec on a map, exact values per kind where they exist and whole-map
Monte Carlo everywhere, cross-checked position by position."""

from __future__ import annotations

import numpy as np

from ..errors import MomentcalcError
from ..estimators import vectorized
from ..result import MIN_SAMPLES
from ..settings import RunSettings
from ..spec import Spec
from .geometry import PositionGroup, group_positions, layers_of, map_work
from .kinds import exact_for
from .maps import maps_within_budget, simulate
from .results import MapCheck, SpatialResult, WindowKind, family_z

MAX_MAP_VALUES = 1 << 18  # one map at most this many inputs: 512 x 512 peaks at 720 MB (positions, rows, JSON)
MAX_KINDS = 256  # kinds of output position, each an exact computation (a quadrature of up to a second)
MAX_GEOMETRY = 1 << 24  # window reads listed per axis to find the kinds: sum over window ops of outputs x k


def estimate_map(
    spec: Spec, size: int, mu: float = 0.0, sigma: float = 1.0, settings: RunSettings = RunSettings()
) -> SpatialResult:
    """Per-position mean and std of the spec's output on a map of side `size` of iid N(mu, sigma^2) inputs.

    settings.method: 'auto' or 'all' (exact values per kind where they exist,
    and Monte Carlo over whole maps everywhere, cross-checked per position),
    'montecarlo' (maps only), 'closed' or 'quadrature' (exact values only: an
    error where a kind has none). settings.samples: the number of simulated maps.
    """
    method = settings.method
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise MomentcalcError(f"size must be a whole number >= 1 (the side of the input feature map), got {size!r}")
    if method == "qmc":
        raise MomentcalcError("qmc does not run on feature maps; with size= use auto, montecarlo or quadrature")
    if vectorized.needs_numpy(spec):
        raise MomentcalcError("size= does not take expr(...) specs")
    dims, layers = layers_of(spec, size)
    if size**dims > MAX_MAP_VALUES:
        raise MomentcalcError(
            f"size={size} gives maps of {size**dims:,} values, more than the {MAX_MAP_VALUES:,} allowed; "
            "without size the moments are those of an interior window"
        )
    per_map = map_work(layers, dims, size)
    if method in ("auto", "all", "montecarlo"):
        settings = maps_within_budget(settings, per_map, size, dims)
    geometry = sum(layer.size_out * layer.k for layer in layers)
    if geometry > MAX_GEOMETRY:
        raise MomentcalcError(
            f"size={size}: finding the kinds of output position of '{spec}' lists {geometry:,} window reads per "
            f"axis, more than the {MAX_GEOMETRY:,} allowed; use a smaller size"
        )
    width = layers[-1].size_out if layers else size
    out_shape = (width,) * dims
    groups = group_positions(layers, dims, size)
    if method != "montecarlo" and len(groups) > MAX_KINDS:
        raise MomentcalcError(
            f"size={size}: '{spec}' has {len(groups)} kinds of output position, each an exact computation, more "
            f"than the {MAX_KINDS} allowed; use --method montecarlo, or a smaller size"
        )

    exact = {}
    if method != "montecarlo":
        for g in groups:
            exact[g.key] = exact_for(spec, layers, g.real_inputs, mu, sigma)
        missing = [g for g in groups if isinstance(exact[g.key], str)]
        if method in ("closed", "quadrature") and missing:
            raise MomentcalcError(
                f"no exact method for the {missing[0].label} of '{spec}' on size={size}: "
                f"{exact[missing[0].key]}; use montecarlo or auto"
            )
    mc, z = None, settings.z
    if method in ("auto", "all", "montecarlo"):
        mc = simulate(spec, dims, size, mu, sigma, settings, out_shape)

    maps = [np.zeros(out_shape) for _ in range(4)]
    kinds, checks = [], []
    for g in groups:
        found = exact.get(g.key)
        index = tuple(np.array(g.positions).T)
        if isinstance(found, tuple):
            mean, std, mean_err, std_err, how, exact_spec = found
            note = None
            if mc is not None:
                for quantity, value, err, mc_values, mc_se in (
                    ("mean", mean, mean_err, mc.mean[index], mc.mean_se[index]),
                    ("std", std, std_err, mc.std[index], mc.std_se[index]),
                ):
                    check = _check(g, len(kinds), quantity, value, err, mc_values, mc_se, mc.samples, z)
                    if check is not None:
                        checks.append(check)
        else:  # Monte Carlo only: the positions of a kind are identically distributed, so average them
            how, exact_spec, note = "montecarlo", None, found
            mean, std = float(mc.mean[index].mean()), float(mc.std[index].mean())
            mean_err, std_err = float(mc.mean_se[index].mean()), float(mc.std_se[index].mean())
        for target, value in zip(maps, (mean, std, mean_err, std_err)):
            target[index] = value
        kinds.append(
            WindowKind(
                g.label,
                g.real_inputs,
                g.positions,
                float(mean),
                float(std),
                float(mean_err),
                float(std_err),
                how,
                exact_spec,
                note,
            )
        )
    return SpatialResult(str(spec), mu, sigma, dims, size, width, *maps, tuple(kinds), mc, tuple(checks))


def _check(
    group: PositionGroup,
    kind_index: int,
    quantity: str,
    value: float,
    err: float,
    mc_values: np.ndarray,
    mc_se: np.ndarray,
    maps: int,
    z: float,
) -> MapCheck | None:
    """The worst |Monte Carlo - exact| / combined SE over the positions of one kind; None where no position's
    Monte Carlo SE is usable (all its maps gave the same value, or too few maps: see result.informative)."""
    usable = (mc_se > 0.0) & (maps >= MIN_SAMPLES)
    if not usable.any():
        return None
    zs = np.where(usable, np.abs(mc_values - value) / np.sqrt(mc_se**2 + err**2), 0.0)
    worst = int(np.argmax(zs))
    limit = family_z(z, int(usable.sum()))
    return MapCheck(group.label, kind_index, quantity, float(zs[worst]), group.positions[worst], z, limit)
