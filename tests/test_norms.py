"""rmsnorm and layernorm: one normalized coordinate of d iid normals, against the Beta and chi-square laws (scipy)."""

import pytest
from scipy import stats

import momentcalc as mc
from momentcalc import MomentcalcError


def beta_chi_truth(d: int, sigma: float, centered: bool) -> tuple[float, float]:
    """(E[y^2], backward constant) at eps = 0 from the laws, by scipy: y^2 = d B (d / (d - 1) for layernorm's
    coordinate of a (d-1)-dimensional vector scaled by sqrt((d-1)/d)), B ~ Beta(1/2, (dof-1)/2), independent of
    |c|^2 ~ sigma^2 chi^2_dof; the gradient d / |c|^2 (1 - [1/d] - c_1^2 / |c|^2)."""
    dof = d - 1 if centered else d
    share = (dof / d) if centered else 1.0  # c_1^2 / |c|^2 = share * B
    beta = stats.beta(0.5, (dof - 1) / 2)
    second = d * share * beta.mean()
    inverse = stats.chi2(dof).expect(lambda r: 1 / r) / sigma**2
    grad = d * inverse * (1 - (1 / d if centered else 0) - share * beta.mean())
    return second, grad


CASES = [("rmsnorm", 64, 0.0, 1.0), ("rmsnorm", 5, 0.0, 2.5), ("layernorm", 768, 3.0, 0.5), ("layernorm", 6, -1.0, 2.0)]


@pytest.mark.parametrize("name, d, mu, sigma", CASES)
def test_exact_methods_match_the_beta_and_chi_square_laws(name, d, mu, sigma):
    second, grad = beta_chi_truth(d, sigma, name == "layernorm")
    found = mc.estimate(f"{name}(d={d})", mu=mu, sigma=sigma, methods=("certified", "closed"))
    assert [e.method for e in found.estimates] == ["certified", "closed"]
    for e in found.estimates:
        assert e.mean == 0.0 and e.std == pytest.approx(second**0.5, rel=1e-12)
        assert e.grad_sq == pytest.approx(grad, rel=1e-9)


@pytest.mark.parametrize("name, d, mu, sigma", CASES)
def test_monte_carlo_samples_the_vector(name, d, mu, sigma):
    second, grad = beta_chi_truth(d, sigma, name == "layernorm")
    e = mc.estimate(f"{name}(d={d})", mu=mu, sigma=sigma, method="montecarlo", samples=1 << 14, seed=11)
    e = e.estimates[0]
    assert abs(e.mean) <= 4.5 * e.mean_se and abs(e.std - second**0.5) <= 4.5 * e.std_se
    assert abs(e.grad_sq - grad) <= 4.5 * e.grad_sq_se and e.grad_sq_se < 0.05 * grad


def test_eps_and_a_shifted_small_rmsnorm_leave_only_monte_carlo():
    for spec, mu in (("rmsnorm(d=8,eps=0.5)", 0.0), ("rmsnorm(d=4)", 0.5)):  # quadrature takes d >= 5
        found = mc.estimate(spec, mu=mu, samples=1 << 12)
        assert [e.method for e in found.estimates] == ["montecarlo"]
    e = mc.estimate("rmsnorm(d=8,eps=0.5)", samples=1 << 14).estimates[0]
    assert e.std < 1.0  # eps only shrinks the output: |y| <= |x_1| / sqrt(mean(x^2))


def test_where_the_backward_constant_is_infinite_it_is_not_given():
    assert mc.estimate("rmsnorm(d=2)", method="closed").estimates[0].grad_sq is None
    assert mc.estimate("rmsnorm(d=1)", method="certified").estimates[0].grad_sq == 0.0  # y = sign(x)
    with pytest.raises(MomentcalcError, match="d >= 2"):
        mc.estimate("layernorm(d=1)")
