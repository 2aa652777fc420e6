"""Per-position moments of a pooled feature map: what borders, stride and padding do.

Without a size, a window op means an interior window of n iid inputs, and
stride and padding change nothing. On a map of side I (I x I for dims=2,
I for dims=1, I^3 for dims=3) border windows hold r < n real inputs:

* max pooling pads with -inf, so a window with r real inputs is the max of
  r iid copies of its input;
* average pooling divides the sum of its r real inputs by n
  (count_include_pad=true: the padding zeros count, mean r m / n, variance
  r v / n^2) or by r (false: an average of r iid copies).

Output positions fall into window kinds. A kind is the shape of a position's
receptive field, one axis at a time: for each window op, which inputs below
each window reads, up to translation and mirroring, and up to swapping axes.
Positions of one kind are identically distributed (the inputs are iid and
the pooling is symmetric), so each kind has one mean and one std.

Exact values, where the last window op sees iid inputs (every earlier window
op has s >= k and p = 0, so its windows neither overlap nor touch padding):
the spec's prefix followed by ``maxpool(n=r)`` or ``avgpool(n=r)`` and the
rest of the spec, or the scaled moments above. Also exact:
avgpool(k1, s1 < k1) | f | avgpool(k2) without padding, f piecewise polynomial
(relu, leaky_relu, abs, ...): the overlapping first averages are jointly
normal, with correlations from their overlaps, so the last average's variance
follows from the certified correlation map K(c) of f (correlated.py).
Elsewhere (overlapping earlier
windows correlate the inputs of later ones; a normalize after the last window
uses the interior constants, not the border ones) Monte Carlo over whole
simulated maps gives the values; it also runs as the independent check of the
exact values, position by position. The maps run through the Monte Carlo
driver (estimators/driver.py): chunk j of the maps draws from
``driver.chunk_generator(seed, j)`` and chunks merge in order, so results
have the same bits on any machine and any number of threads.

The package, one job per module: results (the result types), geometry (output positions and their
kinds), exact (the most exact method for a spec of iid inputs), correlated (the correlated-window
pipeline), kinds (exact values per kind of output position), maps (numpy whole-map Monte Carlo) and
estimate (estimate_map, which puts them together and cross-checks them).
"""

from .estimate import MAX_GEOMETRY, MAX_KINDS, MAX_MAP_VALUES, estimate_map
from .geometry import Layer, PositionGroup, axis_signature, group_positions, layers_of, map_work
from .maps import CHUNK_VALUES, DEFAULT_VALUES, MAP_BATCH, MIN_DEFAULT_MAPS, MapSummary, pool_nd, simulate
from .results import MapCheck, MapEstimate, SpatialResult, WindowKind, family_z

__all__ = [
    "CHUNK_VALUES",
    "DEFAULT_VALUES",
    "MAP_BATCH",
    "MAX_GEOMETRY",
    "MAX_KINDS",
    "MAX_MAP_VALUES",
    "MIN_DEFAULT_MAPS",
    "Layer",
    "MapCheck",
    "MapEstimate",
    "MapSummary",
    "PositionGroup",
    "SpatialResult",
    "WindowKind",
    "axis_signature",
    "estimate_map",
    "family_z",
    "group_positions",
    "layers_of",
    "map_work",
    "pool_nd",
    "simulate",
]
