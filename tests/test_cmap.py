"""Correlation maps: closed-form kernels checked by derivation (Price's theorem, orthant probabilities) and by
mpmath after conditioning on X; the quadrature method against mpmath; Monte Carlo within z * SE; the `cmap` command."""

import json
import math

import mpmath as mp
import numpy as np
import pytest
from typer.testing import CliRunner

from momentcalc import cmap
from momentcalc.cli import app
from momentcalc.spec import parse

Z = 4.5


def kernel(spec, c):
    """The closed-form kernel's value (its declaration gives (value, bound))."""
    op = parse(spec).last
    return op.info.kernel(op, c)[0]


def phi(t):
    return mp.exp(-t * t / 2) / mp.sqrt(2 * mp.pi)


# E[g(m + s Z)] in closed form (Gaussian integrals): the inner expectation of K(c) = E[f(X) E[f(c X + s Z) | X]].
def relu_mean(m, s):
    return m * mp.ncdf(m / s) + s * phi(m / s)


def erf_mean(m, s):
    return mp.erf(m / mp.sqrt(1 + 2 * s * s))


def gelu_mean(m, s):
    # E[X Phi(X)] = mu E[Phi(X)] + s^2 E[phi(X)] (Stein), E[Phi(X)] = Phi(mu / r), E[phi(X)] = phi(mu / r) / r
    r = mp.sqrt(1 + s * s)
    return m * mp.ncdf(m / r) + s * s * phi(m / r) / r


def mp_kernel(f, inner_mean, c):
    """K(c) = int f(x) E[f(c x + s Z)] phi(x) dx with s = sqrt(1 - c^2): one mpmath integral (split at 0)."""
    with mp.workdps(25):
        c = mp.mpf(c)
        s = mp.sqrt(1 - c * c)
        return mp.quad(lambda x: f(x) * inner_mean(c * x, s) * phi(x), [-mp.inf, 0, mp.inf])


def mp_relu(x):
    return x if x > 0 else mp.mpf(0)


def mp_gelu(x):
    return x * mp.ncdf(x)


@pytest.mark.parametrize("c", [-1.0, -0.999, -0.6, 0.0, 0.3, 0.97, 1.0])
def test_relu_arccos_kernel_by_price_and_orthant(c):
    # Price's theorem: dK/dc = E[relu'(X) relu'(Y)] = P(X > 0, Y > 0) = 1/4 + asin(c) / (2 pi) (Sheppard 1899);
    # and K(-1) = E[relu(X) relu(-X)] = 0. So K(c) = int_{-1}^{c} (1/4 + asin(t) / (2 pi)) dt, in closed form
    # ((c + 1) / 4 + (c asin c + sqrt(1 - c^2) - pi / 2) / (2 pi)), evaluated here in mpmath.
    with mp.workdps(40):
        t = mp.mpf(c)
        want = (t + 1) / 4 + (t * mp.asin(t) + mp.sqrt(1 - t * t) - mp.pi / 2) / (2 * mp.pi)
    assert kernel("relu", c) == pytest.approx(float(want), rel=4e-16, abs=1e-300)


@pytest.mark.parametrize("c", [-0.9, 0.0, 0.5, 1.0])
def test_erf_arcsine_kernel_by_price(c):
    # dK/dc = E[erf'(X) erf'(Y)] = (4/pi) E[exp(-X^2 - Y^2)] = (4/pi) / sqrt(det(I + 2 Sigma))
    # = (4/pi) / sqrt(9 - 4c^2),
    # and K(0) = E[erf]^2 = 0: K(c) = int_0^c (4/pi) / sqrt(9 - 4t^2) dt.
    with mp.workdps(30):
        want = mp.quad(lambda t: 4 / mp.pi / mp.sqrt(9 - 4 * t * t), [0, c])
    assert kernel("erf", c) == pytest.approx(float(want), rel=1e-15, abs=1e-17)


def test_closed_kernels_against_mpmath_conditioning():
    leaky = lambda x: x if x > 0 else x / 5  # noqa: E731
    leaky_mean = lambda m, s: m / 5 + mp.mpf(4) / 5 * relu_mean(m, s)  # noqa: E731 (leaky = x/5 + (4/5) relu)
    assert kernel("relu", 0.4) == pytest.approx(float(mp_kernel(mp_relu, relu_mean, 0.4)), rel=1e-14)
    assert kernel("leaky_relu(slope=0.2)", -0.7) == pytest.approx(float(mp_kernel(leaky, leaky_mean, -0.7)), rel=1e-14)
    assert kernel("erf", 0.6) == pytest.approx(float(mp_kernel(mp.erf, erf_mean, 0.6)), rel=1e-14)


@pytest.mark.parametrize("spec, f, inner", [("gelu", mp_gelu, gelu_mean), ("relu", mp_relu, relu_mean)])
def test_quadrature_and_montecarlo_against_mpmath(spec, f, inner):
    c = -0.45
    want = float(mp_kernel(f, inner, c))
    r = cmap.cmap(spec, c, methods=("quadrature", "montecarlo"), samples=1 << 15, seed=7)
    quad, mc = r.estimates
    assert abs(quad.mean - want) <= quad.mean_se + 4 * math.ulp(want)
    assert quad.mean_se < 1e-10
    assert abs(mc.mean - want) <= Z * mc.mean_se
    assert r.agree and {ch.quantity for ch in r.checks} == {"kernel"}


def test_derived_quantities_relu():
    r = cmap.cmap("relu", 0.5, q=3.0, methods=("closed",))
    m2, var = 1 / (2 * math.pi), 0.5 - 1 / (2 * math.pi)  # E[relu]^2, Var relu at N(0, 1)
    assert r.corr == pytest.approx((kernel("relu", 0.5) - m2) / var, rel=1e-14)
    assert r.c0 == pytest.approx(1 / math.pi, rel=1e-14)  # (1/(2 pi)) / (1/2)
    assert r.slope1 == pytest.approx(math.pi / (math.pi - 1), rel=1e-14)  # E[relu'^2] = 1/2 over Var
    assert r.dks_slope1 == pytest.approx(1.0, rel=1e-14)
    assert r.qmap == pytest.approx(1.5, rel=1e-14)  # E[relu(sqrt(q) Z)^2] = q / 2


def test_cmap_at_one_is_one_for_every_method():
    r = cmap.cmap("erf", 1.0, methods=("closed", "quadrature"))
    assert r.agree and r.corr == pytest.approx(1.0, rel=1e-14)


runner = CliRunner()


def test_cli_json_plot_and_bad_input(tmp_path):
    out = tmp_path / "c.png"
    result = runner.invoke(app, ["cmap", "erf", "--c", "0.25", "--method", "closed", "--json", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["method"] == "closed" and doc["kernel"] == pytest.approx(2 / math.pi * math.asin(0.5 / 3), rel=1e-15)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args, says in (
        (["cmap", "relu", "--c", "1.5"], "in [-1, 1]"),
        (["cmap", "relu | maxpool(k=2)", "--c", "0.1"], "one elementwise op"),
        (["cmap", "relu", "--c", "0.1", "--q", "0"], "variance"),
    ):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and says in bad.output and "Traceback" not in bad.output, bad.output


def test_montecarlo_in_chunks_merges_to_the_plain_mean_and_tells_progress(monkeypatch):
    """Monte Carlo draws CHUNK pairs at a time (memory bounded whatever --samples is): the merged mean and
    standard error equal numpy's over the same draws taken at once, and progress reaches the total."""
    monkeypatch.setattr(cmap, "CHUNK", 1000)
    told = []
    r = cmap.cmap("tanh", 0.4, methods=("montecarlo",), samples=4500, seed=3, progress=lambda d, t: told.append((d, t)))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(3)))
    prods = []
    for n in (1000, 1000, 1000, 1000, 500):  # each chunk: its Z1, then its Z2
        z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
        prods.append(np.tanh(z1) * np.tanh(0.4 * z1 + math.sqrt(1 - 0.16) * z2))
    prod = np.concatenate(prods)
    e = r.record
    assert e.mean == pytest.approx(prod.mean(), rel=1e-13)
    assert e.mean_se == pytest.approx(prod.std(ddof=1) / math.sqrt(4500), rel=1e-12)
    assert told[-1] == (4500, 4500) and len(told) == 5


def mp_float_and_enclosed(found, want):
    """The certified estimate is the correctly rounded double of the mpmath value, and its interval holds it."""
    lo, hi = found.mean_interval
    assert found.mean == float(want) and lo <= want <= hi


@pytest.mark.parametrize("c", [-0.999, -0.6, 0.0, 0.3, 0.97])
def test_certified_relu_kernel_is_the_correctly_rounded_arccos_kernel(c):
    # Price's theorem and Sheppard's orthant probability, as in the closed-form test above.
    with mp.workdps(40):
        t = mp.mpf(c)
        want = (t + 1) / 4 + (t * mp.asin(t) + mp.sqrt(1 - t * t) - mp.pi / 2) / (2 * mp.pi)
    r = cmap.cmap("relu", c, methods=("certified", "closed"))
    assert r.record.method == "certified" and r.agree
    mp_float_and_enclosed(r.record, want)


@pytest.mark.parametrize(
    "spec, f, inner",
    [
        # hardtanh(y) = -1/2 + relu(y + 1/2) - relu(y - 2); |y| = 2 relu(y) - y; leaky = t y + (1 - t) relu(y) with
        # t the double 0.2 (the op's slope), not 1/5
        (
            "hardtanh(min_val=-0.5,max_val=2.0)",
            lambda x: min(max(x, mp.mpf(-0.5)), mp.mpf(2)),
            lambda m, s: -mp.mpf(0.5) + relu_mean(m + mp.mpf(0.5), s) - relu_mean(m - 2, s),
        ),
        ("abs", abs, lambda m, s: 2 * relu_mean(m, s) - m),
        (
            "leaky_relu(slope=0.2)",
            lambda x: x if x > 0 else mp.mpf(0.2) * x,
            lambda m, s: mp.mpf(0.2) * m + (1 - mp.mpf(0.2)) * relu_mean(m, s),
        ),
    ],
)
def test_certified_piecewise_kernels_against_mpmath_conditioning(spec, f, inner):
    c = -0.35
    with mp.workdps(30):
        s = mp.sqrt(1 - mp.mpf(c) ** 2)
        want = mp.quad(lambda x: f(x) * inner(mp.mpf(c) * x, s) * phi(x), [-mp.inf, -0.5, 0, 2, mp.inf])
    r = cmap.cmap(spec, c, methods=("certified", "quadrature"))
    assert r.agree
    mp_float_and_enclosed(r.record, want)


def ramp_moment(k, m, s, t):
    """E[(Y - t)_+^k] for Y ~ N(m, s^2), k = 1, 2 (Gaussian integrals of a ramp), d = (m - t) / s."""
    d = (m - t) / s
    if k == 1:
        return (m - t) * mp.ncdf(d) + s * phi(d)
    return ((m - t) ** 2 + s * s) * mp.ncdf(d) + (m - t) * s * phi(d)


def test_certified_quadratic_pieces_hardswish():
    # hardswish(y) = ((y + 3)_+^2 - 3 (y + 3)_+ - (y - 3)_+^2 - 3 (y - 3)_+) / 6 (ramps: check y < -3, |y| < 3,
    # y > 3), so E[f(c x + s W)] is a sum of ramp moments; K(c) is then one mpmath integral over x.
    hs = lambda y: 0 if y < -3 else (y if y > 3 else y * (y + 3) / 6)  # noqa: E731

    def inner(m, s):
        r = lambda k, t: ramp_moment(k, m, s, t)  # noqa: E731
        return (r(2, -3) - 3 * r(1, -3) - r(2, 3) - 3 * r(1, 3)) / 6

    c = 0.6
    with mp.workdps(30):
        s = mp.sqrt(1 - mp.mpf(c) ** 2)
        want = mp.quad(lambda x: hs(x) * inner(mp.mpf(c) * x, s) * phi(x), [-mp.inf, -3, 3, mp.inf])
    r = cmap.cmap("hardswish", c, methods=("certified", "quadrature"))
    assert r.agree
    mp_float_and_enclosed(r.record, want)


def test_certified_declines_what_it_does_not_treat():
    r = cmap.cmap("tanh", 0.5, methods=("certified", "quadrature"))
    assert [e.method for e in r.estimates] == ["quadrature"]
    r = cmap.cmap("relu", 1.0, methods=("certified", "closed"))
    assert [e.method for e in r.estimates] == ["closed"]
