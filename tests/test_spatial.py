"""Per-position moments of pooled feature maps (momentcalc.spatial): border kinds, stride, padding.

Reference values: the max of n iid standard normals in closed form for
n <= 4 (David & Nagaraja, Order Statistics, sec. 3.2):
E[M2] = 1/sqrt(pi), E[M2^2] = 1; E[M3] = 3/(2 sqrt(pi)), E[M3^2] = 1 + sqrt(3)/(2 pi);
E[M4] = 6 atan(sqrt 2)/pi^1.5, E[M4^2] = 1 + sqrt(3)/pi; for larger n the
integral of x^j n phi(x) Phi(x)^(n-1) by mpmath. Averages: a sum of r iid
N(mu, sigma^2) over d has mean r mu / d and std sqrt(r) sigma / d. Positions
of each kind are counted by hand in the comments.
"""

import json
import math

import mpmath
import numpy as np
import pytest
import reference_conv
from rich.console import Console

from momentcalc import engine, spatial
from momentcalc.cli.render_map import render_map
from momentcalc.errors import MomentcalcError
from momentcalc.spec import canonical

Z = 4.5
SQRT_PI = math.sqrt(math.pi)
# (E[M_n], E[M_n^2]) in closed form.
MAX_CLOSED = {
    1: (0.0, 1.0),
    2: (1.0 / SQRT_PI, 1.0),
    3: (3.0 / (2.0 * SQRT_PI), 1.0 + math.sqrt(3.0) / (2.0 * math.pi)),
    4: (6.0 * math.atan(math.sqrt(2.0)) / math.pi**1.5, 1.0 + math.sqrt(3.0) / math.pi),
}


def max_moments(n: int) -> tuple[float, float]:
    """(mean, std) of the max of n iid N(0, 1): closed form for n <= 4, else mpmath."""
    if n in MAX_CLOSED:
        m1, m2 = MAX_CLOSED[n]
    else:
        with mpmath.workdps(30):
            dens = lambda x: n * mpmath.npdf(x) * mpmath.ncdf(x) ** (n - 1)  # noqa: E731
            m1 = float(mpmath.quad(lambda x: x * dens(x), [-mpmath.inf, 0, mpmath.inf]))
            m2 = float(mpmath.quad(lambda x: x * x * dens(x), [-mpmath.inf, 0, mpmath.inf]))
    return m1, math.sqrt(m2 - m1 * m1)


def positions_of(result, label):
    kinds = [k for k in result.kinds if k.label == label]
    assert len(kinds) == 1, [k.label for k in result.kinds]
    return set(kinds[0].positions)


# 3x3 windows, stride 1, padding 1 on a 4x4 map (4x4 outputs). Output (i, j) reads inputs
# i-1..i+1 x j-1..j+1: rows/columns 0 and 3 lose one input on that axis.
CORNERS_4 = {(0, 0), (0, 3), (3, 0), (3, 3)}  # 2 x 2 = 4 real inputs
EDGES_4 = {(0, 1), (0, 2), (1, 0), (2, 0), (1, 3), (2, 3), (3, 1), (3, 2)}  # 2 x 3 = 6
INTERIOR_4 = {(1, 1), (1, 2), (2, 1), (2, 2)}  # 3 x 3 = 9


def test_maxpool_border_kinds_are_max_of_their_real_inputs():
    r = engine.estimate("maxpool(k=3,s=1,p=1)", size=4, method="quadrature")
    assert r.output_size == 4 and r.mean_map.shape == (4, 4)
    assert positions_of(r, "corners") == CORNERS_4
    assert positions_of(r, "edges") == EDGES_4
    assert positions_of(r, "interior") == INTERIOR_4
    for where, n in ((CORNERS_4, 4), (EDGES_4, 6), (INTERIOR_4, 9)):
        mean, std = max_moments(n)
        for pos in where:
            assert r.mean_map[pos] == pytest.approx(mean, abs=1e-10)
            assert r.std_map[pos] == pytest.approx(std, abs=1e-10)
    assert {k.label: k.real_inputs for k in r.kinds} == {"corners": 4, "edges": 6, "interior": 9}


def test_max_of_two_and_three_on_one_axis_with_mu_sigma():
    mu, sigma = 0.5, 2.0
    # k=2, s=1, p=1 on 3 inputs: windows -1..0, 0..1, 1..2, 2..3 hold 1, 2, 2, 1 real inputs.
    r = engine.estimate("maxpool(k=2,s=1,p=1,dims=1)", mu, sigma, size=3, method="quadrature")
    m2, s2 = max_moments(2)
    np.testing.assert_allclose(r.mean_map, [mu, mu + sigma * m2, mu + sigma * m2, mu], rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.std_map, [sigma, sigma * s2, sigma * s2, sigma], rtol=0, atol=1e-10)
    # k=3, s=1, p=1 on 3 inputs: windows -1..1, 0..2, 1..3 hold 2, 3, 2.
    r = engine.estimate("maxpool(k=3,s=1,p=1,dims=1)", mu, sigma, size=3, method="quadrature")
    m3, s3 = max_moments(3)
    np.testing.assert_allclose(r.mean_map, [mu + sigma * m2, mu + sigma * m3, mu + sigma * m2], rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.std_map, [sigma * s2, sigma * s3, sigma * s2], rtol=0, atol=1e-10)
    assert {k.label for k in r.kinds} == {"ends", "interior"}


@pytest.mark.parametrize("include", [True, False])
def test_avgpool_divides_as_count_include_pad_says(include):
    mu, sigma = 1.0, 2.0
    flag = "" if include else ",count_include_pad=false"
    r = engine.estimate(f"avgpool(k=3,s=1,p=1{flag})", mu, sigma, size=4, method="quadrature")
    for where, real in ((CORNERS_4, 4), (EDGES_4, 6), (INTERIOR_4, 9)):
        divisor = 9 if include else real
        for pos in where:
            assert r.mean_map[pos] == pytest.approx(real * mu / divisor, abs=1e-12)
            assert r.std_map[pos] == pytest.approx(math.sqrt(real) * sigma / divisor, abs=1e-12)


def test_trailing_normalize_uses_interior_constants():
    # avgpool then normalize: (sum / 9 - 0) / (1/3), so a window of r real inputs has std sqrt(r)/3.
    r = engine.estimate("avgpool(k=3,s=1,p=1) | normalize", size=4, method="quadrature")
    for where, real in ((CORNERS_4, 4), (EDGES_4, 6), (INTERIOR_4, 9)):
        for pos in where:
            assert r.mean_map[pos] == pytest.approx(0.0, abs=1e-12)
            assert r.std_map[pos] == pytest.approx(math.sqrt(real) / 3.0, abs=1e-12)


@pytest.mark.parametrize(
    "spec",
    [
        "maxpool(k=3,s=1,p=1)",
        "relu | maxpool(k=3,s=2,p=1)",
        "avgpool(k=3,s=1,p=1)",
        "sigmoid | avgpool(k=2,p=1,count_include_pad=false)",
    ],
)
def test_whole_map_montecarlo_agrees_with_exact_at_every_position(spec):
    r = engine.estimate(spec, size=5, samples=1 << 15, seed=3)
    mc = r.montecarlo
    assert mc is not None and mc.samples == 1 << 15
    assert all(k.method in ("closed", "quadrature") for k in r.kinds)
    assert r.checks and r.agree, r.disagreements
    assert np.all(np.abs(mc.mean - r.mean_map) <= Z * np.hypot(mc.mean_se, r.mean_se_map))
    assert np.all(np.abs(mc.std - r.std_map) <= Z * np.hypot(mc.std_se, r.std_se_map))


def _brute_force_two_pools(first_p: int, size: int, maps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-position mean and its SE by plain numpy and reference_conv, no code from spatial."""
    x = np.random.default_rng(seed).standard_normal((maps, size, size))
    y = reference_conv.maxpool2d(reference_conv.maxpool2d(x, 3, stride=1, padding=first_p), 2, stride=2)
    return y.mean(axis=0), y.std(axis=0) / math.sqrt(maps)


@pytest.mark.parametrize("first_p", [0, 1])
def test_correlated_two_pool_pipeline_against_brute_force(first_p):
    spec = f"maxpool(k=3,s=1,p={first_p}) | maxpool(k=2,s=2)"
    r = engine.estimate(spec, size=8, samples=1 << 14, seed=5)
    assert all(k.method == "montecarlo" and k.note for k in r.kinds)  # overlapping first windows: no exact values
    assert not r.checks and r.agree
    assert np.all(r.mean_se_map > 0) and np.all(r.std_se_map > 0)
    mc = r.montecarlo
    mean, se = _brute_force_two_pools(first_p, 8, 1 << 14, seed=12345)
    assert mc.mean.shape == mean.shape
    assert np.all(np.abs(mc.mean - mean) <= Z * np.hypot(mc.mean_se, se))
    if first_p == 1:
        # 8 -> 8 -> 4 outputs; output 0 reads first-layer 0..1, which touch the padding; 3 reads 6..7, likewise.
        assert positions_of(r, "interior") == {(i, j) for i in (1, 2) for j in (1, 2)}
        assert positions_of(r, "corners") == {(0, 0), (0, 3), (3, 0), (3, 3)}
        assert len(positions_of(r, "edges")) == 8
    else:
        assert [k.label for k in r.kinds] == ["interior"]


def test_non_overlapping_windows_give_the_iid_exact_value():
    # 2x2 then 2x2, both s = k, no padding: each output is the max of 16 iid inputs.
    r = engine.estimate("maxpool(k=2) | maxpool(k=2)", size=8, samples=1 << 14, seed=7)
    mean, std = max_moments(16)
    assert [k.method for k in r.kinds] == ["quadrature"]
    np.testing.assert_allclose(r.mean_map, mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.std_map, std, rtol=0, atol=1e-9)
    mc = r.montecarlo
    assert np.all(np.abs(mc.mean - mean) <= Z * mc.mean_se) and np.all(np.abs(mc.std - std) <= Z * mc.std_se)


def test_same_seed_same_bits_and_no_window_spec():
    a = engine.estimate("relu | maxpool(k=2,s=1,p=1)", size=3, samples=3000, seed=11)
    b = engine.estimate("relu | maxpool(k=2,s=1,p=1)", size=3, samples=3000, seed=11)
    assert np.array_equal(a.montecarlo.mean, b.montecarlo.mean) and np.array_equal(
        a.montecarlo.std_se, b.montecarlo.std_se
    )
    plain = engine.estimate("relu", size=3, method="quadrature")  # no window: every position is relu of N(0, 1)
    relu_mean = 1.0 / math.sqrt(2.0 * math.pi)
    np.testing.assert_allclose(plain.mean_map, np.full((3, 3), relu_mean), rtol=0, atol=1e-12)
    np.testing.assert_allclose(plain.std_map, math.sqrt(0.5 - relu_mean**2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 1), (4, 3, 2)])
@pytest.mark.parametrize("include", [True, False])
def test_pool_nd_equals_reference_conv(k, s, p, include):
    x = np.random.default_rng(k * 100 + s * 10 + p).standard_normal((3, 7, 7))
    np.testing.assert_array_equal(
        spatial.pool_nd(x, 2, k, s, p, "maximum", -np.inf), reference_conv.maxpool2d(x, k, s, p)
    )
    np.testing.assert_allclose(
        spatial.pool_nd(x, 2, k, s, p, "add", 0.0, include),
        reference_conv.avgpool2d(x, k, s, p, include),
        rtol=1e-14,
        atol=1e-14,
    )


def test_pool_nd_one_axis_by_hand():
    x = np.array([1.0, -2.0, 3.0, 0.5, 4.0])
    # k=3, s=2, p=1: windows -1..1, 1..3, 3..5 (indices -1 and 5 are padding).
    np.testing.assert_array_equal(spatial.pool_nd(x, 1, 3, 2, 1, "maximum", -np.inf), [1.0, 3.0, 4.0])
    np.testing.assert_allclose(spatial.pool_nd(x, 1, 3, 2, 1, "add", 0.0, True), [-1.0 / 3, 1.5 / 3, 4.5 / 3])
    np.testing.assert_allclose(spatial.pool_nd(x, 1, 3, 2, 1, "add", 0.0, False), [-1.0 / 2, 1.5 / 3, 4.5 / 2])


def test_without_size_window_means_interior():
    r = engine.estimate("maxpool(k=2,s=1,p=1)", method="closed")  # 2 x 2 interior window: max of 4
    assert r.mean == pytest.approx(MAX_CLOSED[4][0], abs=1e-14)
    assert r.spec == "maxpool(k=2,s=1,p=1)"


def test_canonical_spellings():
    assert canonical("maxpool(k=3,s=3)") == "maxpool(k=3)"
    assert canonical("maxpool(p=1, s=1, k=3)") == "maxpool(k=3,s=1,p=1)"
    assert canonical("avgpool(k=2,p=0,count_include_pad=false)") == "avgpool(k=2)"
    assert canonical("avgpool(k=2,count_include_pad=false,p=1)") == "avgpool(k=2,p=1,count_include_pad=false)"
    assert canonical("avgpool(k=2,count_include_pad=true,p=1)") == "avgpool(k=2,p=1)"


@pytest.mark.parametrize(
    "spec,size,words",
    [
        ("maxpool(k=3,s=0)", None, "s=0"),
        ("maxpool(k=3,p=-1)", None, "p=-1"),
        ("maxpool(k=3,p=2)", None, "k/2"),
        ("avgpool(k=2,p=2)", None, "k/2"),
        ("maxpool(n=9,s=1)", None, "only with a window shape k="),
        ("avgpool(n=4,p=1)", None, "only with a window shape k="),
        ("maxpool(k=3,count_include_pad=false)", None, "unknown parameter"),
        ("avgpool(k=3,p=1,count_include_pad=maybe)", None, "true or false"),
        ("maxpool(k=5)", 2, "does not fit"),
        ("maxpool(k=2) | maxpool(k=3)", 4, "stage 2"),
        ("maxpool(n=9)", 4, "k="),
        ("maxpool(k=2)", 0, "size must be"),
        ("maxpool(k=2,dims=1) | maxpool(k=2)", 8, "same dims"),
    ],
)
def test_bad_input_says_what_is_wrong(spec, size, words):
    with pytest.raises(MomentcalcError, match=words.replace("(", r"\(").replace("=", "=")):
        engine.estimate(spec, size=size) if size is not None else canonical(spec)


def test_bad_methods_with_size():
    with pytest.raises(MomentcalcError, match="qmc"):
        engine.estimate("maxpool(k=2)", size=4, method="qmc")
    with pytest.raises(MomentcalcError, match="no exact method"):
        engine.estimate("maxpool(k=3,s=1) | maxpool(k=2)", size=8, method="quadrature")


def test_render_and_json():
    r = engine.estimate("maxpool(k=3,s=1,p=1)", size=4, samples=2000, seed=1)
    console = Console(record=True, width=160)
    render_map(r, console)
    text = console.export_text()
    for word in ("corners", "edges", "interior", "layout", "agree"):
        assert word in text
    data = json.loads(json.dumps(r.to_dict()))
    assert data["output_size"] == 4 and len(data["mean_map"]) == 4
    assert {k["label"]: k["count"] for k in data["kinds"]} == {"corners": 4, "edges": 8, "interior": 4}
    assert data["agree"] is True and data["montecarlo"]["samples"] == 2000


def test_positions_whose_maps_all_agree_are_not_cross_checked():
    # Far below relu's kink every simulated output is 0: an SE of 0 there bounds nothing (result.informative),
    # so it must not turn the exact values into a false DISAGREE.
    result = engine.estimate("relu | avgpool(k=2)", mu=-6.0, size=4, samples=512)
    assert result.agree
    assert all(kind.mean == pytest.approx(0.0, abs=1e-8) for kind in result.kinds)


@pytest.mark.parametrize("count", [1, 2, 100, 262_144])
def test_the_map_limit_keeps_one_checks_false_alarm_rate(count):
    # Bonferroni: count positions, each held to the limit, together alarm at most as often as one |Z| > z.
    limit = spatial.family_z(4.5, count)
    with mpmath.workdps(30):
        one = mpmath.erfc(mpmath.mpf(4.5) / mpmath.sqrt(2))
        each = mpmath.erfc(mpmath.mpf(limit) / mpmath.sqrt(2))
    assert float(count * each) == pytest.approx(float(one), rel=1e-9)
    assert limit >= 4.5


def test_a_map_is_judged_against_its_corrected_limit():
    # 5.0 is a one-in-1.7-million |z| for one comparison, the expected worst of a few hundred thousand positions
    many = spatial.MapCheck("interior", 0, "mean", 5.0, (0, 0), 4.5, spatial.family_z(4.5, 262_144))
    one = spatial.MapCheck("corner", 1, "mean", 5.0, (0, 0), 4.5, spatial.family_z(4.5, 1))
    assert many.ok and not one.ok
    r = engine.estimate("maxpool(k=2,s=1)", size=12, samples=4096, seed=3)
    assert r.checks and all(c.limit >= c.z and c.ok == (c.max_z <= c.limit) for c in r.checks)


def test_overlapping_averages_then_relu_then_average_exact_by_the_correlation_map():
    # avgpool(k=2,s=1) on iid N(0, 1): W_u ~ N(0, 1/4), jointly normal; W_u and W_v share (2 - |du|)(2 - |dv|) of their
    # 4 inputs, so corr(W_u, W_v) = prod (2 - |d|) / 2 over the axes. relu(W) = relu(Z) / 2; the last 2x2 average
    # holds 4 same-position pairs (c = 1), 8 neighbours on one axis (c = 1/2) and 4 diagonal pairs (c = 1/4), so
    # Var = (1/16)(1/4) [4 (1/2 - 1/(2 pi)) + 8 (K(1/2) - 1/(2 pi)) + 4 (K(1/4) - 1/(2 pi))], with relu's arc-cosine
    # kernel K(c) = (sqrt(1 - c^2) + (pi - acos c) c) / (2 pi) (Cho & Saul 2009), in mpmath.
    with mpmath.workdps(40):
        pi = mpmath.pi
        k = lambda c: (mpmath.sqrt(1 - c * c) + (pi - mpmath.acos(c)) * c) / (2 * pi)  # noqa: E731
        m2 = 1 / (2 * pi)
        var = (4 * (mpmath.mpf(1) / 2 - m2) + 8 * (k(mpmath.mpf(1) / 2) - m2) + 4 * (k(mpmath.mpf(1) / 4) - m2)) / 64
        mean, std = 1 / (2 * mpmath.sqrt(2 * pi)), mpmath.sqrt(var)
    spec = "avgpool(k=2,s=1) | relu | avgpool(k=2)"
    exact = engine.estimate(spec, size=5, method="quadrature")
    (kind,) = exact.kinds
    assert kind.method == "closed + certified K(c)" and "correlation map" in kind.exact_spec
    assert abs(kind.mean - mean) <= kind.mean_se + 1e-16 and abs(kind.std - std) <= kind.std_se + 1e-16
    assert kind.std_se < 1e-14
    # the whole-map Monte Carlo agrees with it position by position (the engine's own cross-check)
    checked = engine.estimate(spec, size=5, samples=1 << 14, seed=3)
    assert checked.agree and checked.checks and checked.kinds[0].std == kind.std
