"""`momentcalc solve`: SELU's constants and another fixed point against mpmath findroot; alpha dropout derived."""

import json
import math

import mpmath as mp
import pytest
from typer.testing import CliRunner

from momentcalc import solve
from momentcalc.cli import app

# Klambauer et al. 2017, "Self-Normalizing Neural Networks", eq. 14, and the SNNs notebook getSELUparameters.
PAPER_ALPHA = "1.6732632423543772848170429916717"
PAPER_LAMBDA = "1.0507009873554804934193349852946"


def selu_moments(alpha, lam, nu, tau):
    """Mean and variance of lam * (x if x > 0 else alpha (e^x - 1)), x ~ N(nu, tau): the SNNs notebook's closed
    form (getSELUparameters), derived by completing the square, in mpmath."""
    s2 = mp.sqrt(2 * tau)
    e = mp.erfc(nu / s2)
    mean = (
        lam
        / 2
        * (
            nu
            + mp.exp(-(nu**2) / (2 * tau)) * mp.sqrt(2 / mp.pi) * mp.sqrt(tau)
            + nu * mp.erf(nu / s2)
            - alpha * e
            + mp.exp(nu + tau / 2) * alpha * mp.erfc((nu + tau) / s2)
        )
    )
    second = (
        lam**2
        / 2
        * (
            mp.exp(-(nu**2) / (2 * tau)) * mp.sqrt(2 / mp.pi * tau) * nu
            + (nu**2 + tau) * (1 + mp.erf(nu / s2))
            + alpha**2 * e
            - alpha**2 * 2 * mp.exp(nu + tau / 2) * mp.erfc((nu + tau) / s2)
            + alpha**2 * mp.exp(2 * (nu + tau)) * mp.erfc((nu + 2 * tau) / s2)
        )
    )
    return mean, second - mean**2


def findroot(target_mean, target_var, nu, tau):
    with mp.workdps(50):
        return mp.findroot(
            lambda a, lam: (
                [m - target_mean for m in [selu_moments(a, lam, nu, tau)[0]]]
                + [selu_moments(a, lam, nu, tau)[1] - target_var]
            ),
            (mp.mpf("1.67"), mp.mpf("1.05")),
        )


@pytest.fixture(scope="module")
def selu_default():
    return solve.solve("selu(alpha=?,scale=?)", mean=0, var=1)


def test_selu_constants_to_the_last_double(selu_default):
    (found,) = selu_default.solutions
    root = findroot(0, 1, mp.mpf(0), mp.mpf(1))
    with mp.workdps(50):  # the paper's 32 digits are the root's
        assert abs(root[0] - mp.mpf(PAPER_ALPHA)) < mp.mpf("1e-30")
        assert abs(root[1] - mp.mpf(PAPER_LAMBDA)) < mp.mpf("1e-30")
    assert found.values == {"alpha": float(PAPER_ALPHA), "scale": float(PAPER_LAMBDA)}
    assert found.last_double == {"alpha": True, "scale": True}
    assert found.method == "certified (Krawczyk)"
    assert found.spec == "selu"  # the defaults are the paper's constants
    assert_box_holds(found, dict(zip(("alpha", "scale"), root)))


def assert_box_holds(found, root):
    """The Krawczyk box holds the mpmath root, is narrow (relative radius 2^-80, outward doubles: two ulps at most),
    and the stated bound covers the distance from the double to the root."""
    for name, want in root.items():
        lo, hi = found.box[name]
        assert lo <= want <= hi
        assert hi - lo <= 2 * math.ulp(found.values[name])
        # The stated bound is the distance rounded up to a double, so it can be tight to its last digit: subtract at
        # 50 digits whatever precision another test module left mpmath at (several set mp.dps = 20 at import).
        with mp.workdps(50):
            assert abs(mp.mpf(found.values[name]) - mp.mpf(want)) <= found.errors[name]


def test_the_notebooks_other_fixed_point():
    # The SNNs notebook's example: fixed point mean -0.1, variance 2 (the input N(-0.1, 2) maps to itself).
    sigma = math.sqrt(2.0)  # the input's sigma is this double; tau below is its exact square
    result = solve.solve("selu(alpha=?,scale=?)", mean=-0.1, var=2.0, mu=-0.1, sigma=sigma)
    (found,) = result.solutions
    with mp.workdps(50):
        root = findroot(mp.mpf(-0.1), mp.mpf(2), mp.mpf(-0.1), mp.mpf(sigma) ** 2)
        alpha, lam = float(root[0]), float(root[1])
    assert found.values == {"alpha": alpha, "scale": lam}
    assert all(found.last_double.values())
    assert found.method == "certified (Krawczyk)"
    assert_box_holds(found, {"alpha": root[0], "scale": root[1]})
    # The notebook prints (1.9769021954241999, 1.073851239616047) from sympy's nsolve on numpy doubles: a few ulps
    # from the root (and (1.6732632423543774, 1.0507009873554802) at (0, 1), 1-2 ulps from the paper's).
    assert abs(1.9769021954241999 - alpha) <= 4 * math.ulp(alpha) and abs(1.073851239616047 - lam) <= 8 * math.ulp(lam)


def test_no_solution_is_an_empty_list():
    # elu's mean at N(0, 1): 1/sqrt(2 pi) + alpha (e^(1/2) Phi(-1) - 1/2) = 0.399 - 0.238 alpha, never 5 (alpha > 0).
    assert solve.solve("elu(alpha=?)", mean=5.0).solutions == ()


def test_elu_alpha_for_zero_mean_against_its_linear_closed_form():
    with mp.workdps(30):
        want = (1 / mp.sqrt(2 * mp.pi)) / (mp.mpf(1) / 2 - mp.exp(mp.mpf(1) / 2) * mp.ncdf(-1))
    (found,) = solve.solve("elu(alpha=?)", mean=0.0).solutions
    assert abs(found.values["alpha"] - float(want)) <= found.errors["alpha"] + 1e-16 * float(want)


def test_progress_counts_the_starts_then_the_roots_to_the_end():
    told = []
    result = solve.solve("elu(alpha=?)", mean=0.0, progress=lambda done, total: told.append((done, total)))
    done = [d for d, _ in told]
    assert done == sorted(done) and told[0][0] == 0
    assert told[-1] == (result.starts + len(result.solutions),) * 2 and len(result.solutions) == 1


def test_alpha_dropout_keeps_mean_and_variance_by_derivation():
    q, alpha, lam = 0.9, float(PAPER_ALPHA), float(PAPER_LAMBDA)
    found = solve.alpha_dropout(q, alpha, lam)
    ap = -lam * alpha
    # The paper's closed form at the fixed point (0, 1).
    assert found.a == pytest.approx((q + ap**2 * q * (1 - q)) ** -0.5, rel=1e-15)
    assert found.b == pytest.approx(-found.a * (1 - q) * ap, rel=1e-15)
    # Derivation: x of mean 0, variance 1, d ~ Bernoulli(q); z = x d + ap (1 - d); by total expectation and variance
    # E[z] = (1 - q) ap, E[z^2] = q + (1 - q) ap^2.
    mean_z = (1 - q) * ap
    var_z = q + (1 - q) * ap**2 - mean_z**2
    assert found.a * mean_z + found.b == pytest.approx(0.0, abs=1e-15)
    assert found.a**2 * var_z == pytest.approx(1.0, rel=1e-14)
    # Another fixed point (mean 0.2, variance 1.5): the same derivation with E[x^2] = nu + mu^2.
    g = solve.alpha_dropout(q, alpha, lam, mean=0.2, var=1.5)
    mean_z = q * 0.2 + (1 - q) * ap
    var_z = q * (1.5 + 0.04) + (1 - q) * ap**2 - mean_z**2
    assert g.a * mean_z + g.b == pytest.approx(0.2, rel=1e-14)
    assert g.a**2 * var_z == pytest.approx(1.5, rel=1e-14)


runner = CliRunner()


def test_cli_json_and_bad_input():
    result = runner.invoke(app, ["solve", "selu", "--alpha-dropout", "0.95", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["keep"] == 0.95 and doc["alpha_prime"] == -float(PAPER_LAMBDA) * float(PAPER_ALPHA)
    for args, says in (
        (["solve", "selu(alpha=?,scale=?)", "--mean", "0"], "need as many targets"),
        (["solve", "selu", "--mean", "0"], "no unknowns"),
        (["solve", "relu", "--alpha-dropout", "0.9"], "selu spec"),
        (["solve", "selu(p=?)", "--mean", "0"], "unknown parameter"),
    ):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and says in bad.output and "Traceback" not in bad.output, bad.output


def test_several_roots_are_all_listed():
    # swish's variance at N(0, 1) rises from 1/4 (beta -> 0) above relu's 1/2 - 1/(2 pi) = 0.3408 (beta -> inf), with a
    # maximum near beta = 4 (0.3525): a target between them has two roots. Each against mpmath's findroot.
    target = 0.345
    found = solve.solve("swish(beta=?)", var=target).solutions
    assert len(found) == 2

    def var(beta):
        f = lambda x: x / (1 + mp.exp(-beta * x))  # noqa: E731
        phi = lambda x: mp.exp(-x * x / 2) / mp.sqrt(2 * mp.pi)  # noqa: E731
        m1 = mp.quad(lambda x: f(x) * phi(x), [-mp.inf, 0, mp.inf])
        m2 = mp.quad(lambda x: f(x) ** 2 * phi(x), [-mp.inf, 0, mp.inf])
        return m2 - m1 * m1 - mp.mpf(target)

    with mp.workdps(25):
        for s in found:
            beta = s.values["beta"]
            want = mp.findroot(var, (mp.mpf(beta) * (1 - mp.mpf("1e-6")), mp.mpf(beta) * (1 + mp.mpf("1e-6"))))
            assert abs(beta - want) <= s.errors["beta"] + math.ulp(beta)
            assert s.method == "certified (Krawczyk)"
            assert_box_holds(s, {"beta": want})
    assert found[0].values["beta"] < 4 < found[1].values["beta"]


@pytest.mark.parametrize("command", ["solve", "cmap"])
def test_help_has_examples(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and "Example" in result.output


def test_affine_wrap_dks_style_relu_against_mpmath():
    # DKS (Martens et al. 2021) for relu: y = a relu(b x + 1) + d with E[y] = 0, E[y^2] = 1 and C'(1) = E[y'^2] = zeta.
    # relu(b X + 1), X ~ N(0, 1), has mean Phi(1/b) + b phi(1/b), second moment (1 + b^2) Phi(1/b) + b phi(1/b), and
    # E[relu'^2] = Phi(1/b) (the Gaussian integrals of a ramp); solved here by mpmath's findroot.
    zeta = 1.0027709658495370201
    solutions = solve.solve("relu", mean=0, var=1, grad_sq=zeta, affine="a=?,b=?,c=1,d=?").solutions
    # (a, b, d), its a-mirror (-a, b, d + 2 a E[f]) and both b-mirrors (b -> -b: X is symmetric, c is fixed)
    assert len(solutions) == 4 and sum(s.mirror_of is None for s in solutions) == 1
    (found,) = [s for s in solutions if s.mirror_of is None]

    def equations(a, b, d):
        p, q = mp.ncdf(1 / b), mp.npdf(1 / b)
        m, m2 = p + b * q, (1 + b * b) * p + b * q
        return [a * m + d, a * a * (m2 - m * m) - 1, a * a * b * b * p - mp.mpf(zeta)]

    with mp.workdps(30):
        want = mp.findroot(equations, (mp.mpf(found.values["a"]), mp.mpf(found.values["b"]), mp.mpf(found.values["d"])))
    for name, w in zip("abd", want):
        assert abs(found.values[name] - float(w)) <= found.errors[name] + 2 * math.ulp(found.values[name])
    bad = runner.invoke(app, ["solve", "relu", "--affine", "a=?,e=1", "--mean", "0"])
    assert bad.exit_code == 2 and "bad --affine item" in bad.output


def test_where_interval_newton_cannot_run_it_says_so():
    # relu(b x): E[(b relu'(b X))^2] = b^2 / 2 = 1 at b = sqrt 2. Its derivative in b has a boundary term (relu' jumps
    # at the kink, which moves with b), which the enclosures do not treat: the linearized bound is kept, and said.
    mirror, found = solve.solve("relu", grad_sq=1.0, affine="b=?").solutions  # b = -sqrt 2 mirrors b = sqrt 2
    assert mirror.mirror_of == 2 and mirror.values["b"] == -found.values["b"]
    assert found.box is None and found.method == "certified residual"
    assert "interval Newton not applied" in found.proof and "linearization" in found.proof
    assert abs(found.values["b"] - math.sqrt(2)) <= found.errors["b"] + math.ulp(math.sqrt(2))
    result = runner.invoke(app, ["solve", "relu", "--affine", "b=?", "--grad-sq", "1"])
    assert result.exit_code == 0 and "interval Newton not applied" in result.output


def test_affine_unknowns_certified_against_closed_form_relu():
    # a relu(x / 2 + c), X ~ N(0, 1): relu(Z) with Z ~ N(c, 1/4) has mean c Phi(2c) + phi(2c) / 2 and second moment
    # (c^2 + 1/4) Phi(2c) + c phi(2c) / 2 (Gaussian integrals of a ramp); mean 0.5 and variance 1 by mpmath findroot.
    (found,) = solve.solve("relu", mean=0.5, var=1.0, affine="a=?,b=0.5,c=?").solutions

    def equations(a, c):
        p, q = mp.ncdf(2 * c), mp.npdf(2 * c)
        m, m2 = c * p + q / 2, (c * c + mp.mpf(1) / 4) * p + c * q / 2
        return [a * m - mp.mpf("0.5"), a * a * (m2 - m * m) - 1]

    with mp.workdps(50):
        want = mp.findroot(equations, (mp.mpf(found.values["a"]), mp.mpf(found.values["c"])))
        assert found.method == "certified (Krawczyk)"
        assert_box_holds(found, {"a": want[0], "c": want[1]})


def mp_gauss(h):
    """E[h(X)], X ~ N(0, 1), by mpmath quadrature split at 0."""
    return mp.quad(lambda x: h(x) * mp.npdf(x), [-mp.inf, 0, mp.inf])


def test_q_slope_target_certified_against_mpmath():
    # DKS's local Q-map slope Q'(1) = d E[y(sqrt(q) Z)^2] / dq at q = 1 = E[y(X) y'(X) X] (Stein). For
    # y = a elu_alpha(x): mean 0 fixes alpha (E[elu_alpha] = 0 is linear in alpha), then a^2 E[f f' X] = 1.
    # a's sign is searched (Q'(1) = a^2 E[f f' X] and mean 0 hold for -a too, with no d to mirror): two roots.
    # Told apart by a's sign: the roots are listed in order of their doubles, and their alphas differ by an ulp.
    negative, found = sorted(solve.solve("elu(alpha=?)", mean=0.0, q_slope=1.0, affine="a=?").solutions,
                             key=lambda s: s.values["a"])  # fmt: skip
    with mp.workdps(40):
        alpha = mp_gauss(lambda x: x if x > 0 else 0) / -mp_gauss(lambda x: 0 if x > 0 else mp.expm1(x))
        f = lambda x: x if x > 0 else alpha * mp.expm1(x)  # noqa: E731
        df = lambda x: 1 if x > 0 else alpha * mp.exp(x)  # noqa: E731
        a = 1 / mp.sqrt(mp_gauss(lambda x: f(x) * df(x) * x))
    assert found.method == negative.method == "certified (Krawczyk)"
    assert_box_holds(found, {"alpha": alpha, "a": a})
    # -a exactly: mpmath rounds a negation to its global precision, which other test modules set (to 20 digits in
    # tests/test_several_pipelines.py), and the bound holds the root with a margin of 1e-24 here.
    assert_box_holds(negative, {"alpha": alpha, "a": mp.fneg(a, exact=True)})


def test_q_slope_alone_and_its_cli():
    # softplus scaled by a: a^2 E[softplus(X) sigmoid(X) X] = 1.
    with mp.workdps(40):
        a = 1 / mp.sqrt(mp_gauss(lambda x: mp.log1p(mp.exp(x)) / (1 + mp.exp(-x)) * x))
        minus_a = -a  # negated at 40 digits: at the global precision (20 digits in some modules) it would round
    negative, found = solve.solve("softplus", q_slope=1.0, affine="a=?").solutions  # a^2: both signs
    assert found.method == negative.method == "certified (Krawczyk)"
    assert_box_holds(found, {"a": a})
    assert_box_holds(negative, {"a": minus_a})
    result = runner.invoke(app, ["solve", "softplus", "--affine", "a=?", "--q-slope", "1", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["targets"] == {"q_slope": 1.0} and doc["solutions"][1]["values"]["a"] == found.values["a"]
    bad = runner.invoke(app, ["solve", "softplus | normalize", "--affine", "a=?", "--q-slope", "1"])
    assert bad.exit_code == 2 and "--q-slope takes one elementwise activation" in bad.output


def test_negative_affine_scale_is_searched():
    # a relu(x) with mean -0.3: a = -0.3 / E[relu(X)] = -0.3 sqrt(2 pi) < 0 (d is fixed: no symmetry maps it to a > 0)
    (found,) = solve.solve("relu", mean=-0.3, affine="a=?").solutions
    with mp.workdps(40):
        want = -mp.mpf(0.3) * mp.sqrt(2 * mp.pi)
    assert found.method == "certified (Krawczyk)" and found.mirror_of is None
    assert_box_holds(found, {"a": want})


def test_mirrored_roots_are_listed_as_mirrors():
    # a tanh(b x): variance a^2 E[tanh(bX)^2] = 1/2 and E[y'^2] = a^2 b^2 E[sech(bX)^4] = 0.8 depend on a^2 and on the
    # law of bX only: (+-A, +-B) are four roots. a's sign is searched (d is fixed); b -> -b is a symmetry (mu = 0).
    found = solve.solve("tanh", var=0.5, grad_sq=0.8, affine="a=?,b=?", certify=False).solutions
    assert len(found) == 4

    def equations(a, b):
        t = mp_gauss(lambda x: mp.tanh(b * x) ** 2)
        g = mp_gauss(lambda x: mp.sech(b * x) ** 4)
        return [a * a * t - mp.mpf(0.5), a * a * b * b * g - mp.mpf(0.8)]

    with mp.workdps(20):
        a, b = mp.findroot(equations, (mp.mpf(0.9), mp.mpf(2)))
    signs = sorted((math.copysign(1, s.values["a"]), math.copysign(1, s.values["b"])) for s in found)
    assert signs == [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for s in found:
        assert (
            abs(abs(s.values["a"]) - a) <= s.errors["a"] + 1e-15
            and abs(abs(s.values["b"]) - b) <= s.errors["b"] + 1e-15
        )
        if s.values["b"] < 0:  # the b-mirror of the root with the same a and b > 0
            (source,) = [t for t in found if t.values == {"a": s.values["a"], "b": -s.values["b"]}]
            assert found[s.mirror_of - 1] is source and "b -> -b" in s.mirror
        else:
            assert s.mirror_of is None


@pytest.mark.parametrize(
    "spec, affine, values",
    [
        ("tanh", "a=?,b=?", [0.9, 2.0]),
        ("tanh", "a=?,b=?", [-1.3, 7.0]),
        ("tanh", "a=?,b=?", [0.7, 20.0]),
        ("softplus", "a=?,b=?,c=?,d=?", [1.0, 0.5, 8.0, 0.0]),
        ("softplus", "a=?,b=?,c=?,d=?", [-8.9, 0.19, 0.41, 8.2]),
        ("elu(alpha=?)", "a=?", [1.3, -0.7]),
        ("swish(beta=?)", None, [9.4]),
    ],
)
def test_the_fast_search_moments_agree_with_the_exact_ones(spec, affine, values):
    # The search's fast moments (a fixed Gauss-Legendre rule) against the exact method's (closed form or quadrature
    # with tracked errors), kinks (elu at 0), narrow poles (tanh at b = 7 and 20) and f's input 0 beyond |z| = 12
    # (softplus with c = 8, b = 0.5) included: the refinement from a fast root is then a few steps.
    fixed, wrap = solve.parse_affine(affine)
    unknowns = solve.find_unknowns(spec, required=not wrap) + wrap
    targets = {"mean": 0.0, "var": 1.0, "grad_sq": 1.0, "q_slope": 1.0}
    problem = solve._Problem(spec, unknowns, targets, 0.0, 1.0, fixed)
    exact, _, _ = problem.moments(values)
    fast = problem._fast_moments(values)
    for key, want in exact.items():
        assert fast[key] == pytest.approx(want, rel=1e-9, abs=1e-10), key
