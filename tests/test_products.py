"""The op model's products: an op of named independent inputs declared by its factors only, derived by every method."""

import math

import pytest
from throwaway_ops import unregister

import momentcalc as mc
from momentcalc import MomentcalcError, catalog
from momentcalc.catalog import PRODUCT, OpInfo, Param


@pytest.fixture
def throwaway_products():
    """x * g declared by its factors; one whose factor is a window op; one with no factors."""
    wrt = Param("wrt", str, "value", choices=("value", "gate"))
    infos = [
        OpInfo("xg_test", PRODUCT, "x * g", (wrt,), inputs=("value", "gate"), factors=lambda op: ("identity",) * 2),
        OpInfo(
            "bad_factor",
            PRODUCT,
            "x * max",
            (wrt,),
            inputs=("value", "gate"),
            factors=lambda op: ("identity", "maxpool(k=2)"),
        ),
        OpInfo("no_factors", PRODUCT, "nothing declared", (wrt,), inputs=("value", "gate")),
    ]
    for info in infos:
        catalog.register(info)
    yield
    for info in infos:
        unregister(info.name)


def test_a_product_declared_by_its_factors_is_derived_by_every_method(throwaway_products):
    mu, sigma = 0.75, 1.5
    second = mu * mu + sigma * sigma  # E[x^2]
    # y = x g, x and g iid N(mu, sigma^2): E[y] = mu^2, E[y^2] = E[x^2]^2, dy/dx = g, dy/dg = x.
    want = {"mean": mu * mu, "std": (second * second - mu**4) ** 0.5, "grad_sq": second}
    for wrt in ("value", "gate"):
        found = mc.estimate(f"xg_test(wrt={wrt})", mu=mu, sigma=sigma, samples=1 << 18)
        assert [e.method for e in found.estimates] == ["certified", "closed", "quadrature", "montecarlo"]
        assert found.agree
        for e in found.estimates:
            for quantity, value in want.items():
                bound = 4.5 * getattr(e, quantity + "_se") if e.method == "montecarlo" else 1e-14 * value
                assert abs(getattr(e, quantity) - value) <= bound, (e.method, quantity)


@pytest.mark.parametrize("spec", ["bad_factor", "no_factors"])
def test_a_product_without_usable_factors_is_refused_by_every_method(throwaway_products, spec):
    with pytest.raises(MomentcalcError, match="no method applies"):
        mc.estimate(spec, samples=64)
    for method in ("certified", "closed", "quadrature", "montecarlo", "qmc"):
        with pytest.raises(MomentcalcError):
            mc.estimate(spec, method=method, samples=64)


def test_list_shows_what_each_method_does_for_a_product(throwaway_products):
    from momentcalc.cli.list_ops import _op_rows

    rows = {name: methods for name, _, _, methods in _op_rows()}
    assert rows["xg_test"] == "certified, closed¹, quadrature, montecarlo"  # no qmc: it samples one input
    assert rows["no_factors"] == "none"


@pytest.fixture
def throwaway_joint():
    """y = x_1 of 3 iid inputs, declared by a sampler and a law in balls only."""
    info = OpInfo(
        "first_of_three",
        catalog.JOINT,
        "the first of three inputs",
        size=lambda op: 3,
        sample=lambda op, x: (x[:, 0], 0 * x[:, 0] + 1),
        ball_law=lambda op, mu, sigma, lib: (lib.arb(mu), lib.arb(sigma) ** 2, lib.arb(1)),
    )
    catalog.register(info)
    yield info.name
    unregister(info.name)


def test_an_op_declaring_its_law_is_estimated_by_the_methods_it_declares(throwaway_joint):
    found = mc.estimate(throwaway_joint, mu=0.25, sigma=3.0, samples=1 << 16, seed=3)
    assert [e.method for e in found.estimates] == ["certified", "montecarlo"] and found.agree
    cert, sampled = found.estimates
    assert (cert.mean, cert.std, cert.grad_sq) == (0.25, 3.0, 1.0)
    assert abs(sampled.mean - 0.25) <= 4.5 * sampled.mean_se and abs(sampled.std - 3.0) <= 4.5 * sampled.std_se
    assert sampled.grad_sq == 1.0 and sampled.samples == 1 << 16
    for method in ("closed", "quadrature", "qmc"):
        with pytest.raises(MomentcalcError):
            mc.estimate(throwaway_joint, method=method)
    with pytest.raises(MomentcalcError, match="comes first"):
        mc.estimate(f"{throwaway_joint} | relu")
    # after an elementwise op only its sampler applies, through relu: y = relu(x_1), of mean 1/sqrt(2 pi), and the
    # squared gradient reaching x_1 is 1 * relu'(x_1)^2, of mean 1/2
    (e,) = mc.estimate(f"relu | {throwaway_joint}", samples=1 << 14, seed=1).estimates
    assert e.method == "montecarlo" and abs(e.mean - 1 / math.sqrt(2 * math.pi)) <= 4.5 * e.mean_se
    assert abs(e.grad_sq - 0.5) <= 4.5 * e.grad_sq_se
    with pytest.raises(MomentcalcError, match="allowed"):
        mc.estimate(throwaway_joint, method="montecarlo", samples=1 << 35)


@pytest.mark.parametrize("spec", ["glu", "lppool(p=2,k=2)", "softmax(n=4)", "residual(f=relu,tau=0.5)"])
def test_ops_of_several_inputs_refuse_maps_and_backward_in_one_line(spec):
    from typer.testing import CliRunner

    from momentcalc.cli import app

    runner = CliRunner()
    for args in (["estimate", spec, "--size", "4"], ["backward", spec, "--size", "4"]):
        outcome = runner.invoke(app, args)
        assert outcome.exit_code == 2 and "Traceback" not in outcome.output, (args, outcome.output)


def test_the_compiled_product_kernel_gives_the_same_bits_on_any_thread_count():
    from momentcalc.estimators import driver

    found, before = [], driver.threads()
    for count in (1, 2):
        driver.use_threads(count)
        try:
            found.append(mc.estimate("swiglu(wrt=gate)", mu=0.3, method="montecarlo", samples=300_000).estimates[0])
        finally:
            driver.use_threads(before)
    one, two = found
    assert (one.mean, one.std, one.grad_sq) == (two.mean, two.std, two.grad_sq)
    assert one.notes == ("compiled kernel of the inputs",)


def test_a_factor_without_a_compiled_function_is_sampled_in_numpy(throwaway_products):
    catalog.register(
        OpInfo(
            "x_sq_test",
            PRODUCT,
            "x * g^2",
            (Param("wrt", str, "value", choices=("value", "gate")),),
            inputs=("value", "gate"),
            factors=lambda op: ("identity", "expr(x*x)"),
        )
    )
    try:
        # E[x g^2] = mu (mu^2 + sigma^2) at x, g iid N(mu, sigma^2); the value's gradient E[g^4]
        found = mc.estimate("x_sq_test", mu=0.5, samples=1 << 16)
        by = {e.method: e for e in found.estimates}
        assert by["montecarlo"].notes == ("numpy sampling of each input",) and found.agree
        assert abs(by["montecarlo"].mean - 0.625) <= 4.5 * by["montecarlo"].mean_se
    finally:
        unregister("x_sq_test")
