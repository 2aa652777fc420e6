"""Backward variance maps: hand-counted exact maps, simulation cross-checks, parser errors."""

from fractions import Fraction

import numpy as np
import pytest

import momentcalc as mc
from momentcalc.backward import (
    Layer,
    backward_map,
    check_by_simulation,
    exact_map,
    parse_layer,
    simulate_map,
)
from momentcalc.errors import MomentcalcError

Z = 4.5


def _outer(per_axis, scale=1):
    """Exact map from hand-counted per-axis factors, kept as fractions until the end."""
    return np.array([[float(scale * a * b) for b in per_axis] for a in per_axis])


# ---- parser ---------------------------------------------------------------------------


def test_parse_defaults():
    assert parse_layer("conv(k=3)") == Layer("conv", k=3, s=1, p=0, cin=1, cout=1)
    assert parse_layer("maxpool(k=3)") == Layer("maxpool", k=3, s=3, p=0)
    assert parse_layer(" avgpool( k = 2 , p=1 ) ") == Layer("avgpool", k=2, s=2, p=1)
    assert parse_layer("avgpool(k=3,p=1,count_include_pad=false)").count_include_pad is False


def test_canonical_spelling_round_trips():
    layer = parse_layer("conv(cout=4,k=3,s=2,p=1,cin=2)")
    assert str(layer) == "conv(k=3,s=2,p=1,cin=2,cout=4)"
    assert parse_layer(str(layer)) == layer


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("dense(k=3)", "unknown op 'dense'"),
        ("conv(k=3,d=2)", "it accepts k, s, p, cin, cout"),
        ("maxpool(k=3,cin=2)", "it accepts k, dims, n, s, p"),
        ("conv(k=three)", r"conv\(k=three\): expected an integer"),
        ("conv(k=0)", r"within \[1, 1000000\]"),
        ("conv(k=3,p=-1)", r"within \[0, 1000000\]"),
        ("conv(k=3,s=1.5)", "expected an integer"),
        ("conv(s=2)", r"conv needs k=<an integer in \[1, 1000000\]>, e.g. conv\(k=3\)"),
        ("conv(k=3,k=5)", "given twice"),
        ("conv(k 3)", "write key=value"),
        ("conv(k=3", "unbalanced"),
        ("avgpool(k=2,count_include_pad=maybe)", "true or false"),
        # The spec parser's rules hold here too: what estimate rejects, backward rejects.
        ("avgpool(k=2,count_include_pad=1)", "true or false"),
        ("maxpool(k=3,p=2)", "padding must be <= k/2"),
        ("maxpool(n=4)", "2-D windows given by k="),
        ("relu", "backward takes one layer"),
        ("conv(k=3) | maxpool(k=2)", "backward takes one layer"),
    ],
)
def test_parse_errors_say_what_is_accepted(text, fragment):
    with pytest.raises(MomentcalcError, match=fragment):
        parse_layer(text)


def test_layer_validates_direct_construction():
    with pytest.raises(MomentcalcError, match="cin must be an integer >= 1"):
        Layer("conv", k=3, s=1, cin=0)
    with pytest.raises(MomentcalcError, match="accepted: conv"):
        Layer("pool", k=3, s=1)


# ---- exact maps, counted by hand -----------------------------------------------------


def test_conv_k3_s2_checkerboard_has_ratio_4():
    # conv(k=3,s=2,p=1) on 7: windows over padded rows start at -1, 1, 3, 5. Row u is
    # read by one tap if u is even, by two (the edges of neighbouring windows) if odd.
    counts = [1, 2, 1, 2, 1, 2, 1]
    result = backward_map("conv(k=3,s=2,p=1)", 7)
    np.testing.assert_allclose(result.map, _outer(counts, Fraction(1, 9)), rtol=0, atol=1e-15)
    assert result.min == pytest.approx(1 / 9) and result.max == pytest.approx(4 / 9)
    assert result.ratio == pytest.approx(4.0)
    # mean = (sum of counts)^2 / (49 * 9) = 100/441, so the constant is 21/10
    assert result.mean == pytest.approx(100 / 441)
    assert result.backward_constant == pytest.approx(2.1)
    assert result.unreached == 0 and result.output_size == 4


def test_conv_map_scales_with_channels():
    # k=3, s=1, p=1 on 5: per-axis tap counts 2, 3, 3, 3, 2; Var = cout * count / (cin * 9)
    expected = _outer([2, 3, 3, 3, 2], Fraction(3, 2 * 9))
    np.testing.assert_allclose(exact_map("conv(k=3,s=1,p=1,cin=2,cout=3)", 5), expected, rtol=0, atol=1e-15)


def test_strided_conv_leaves_unreached_positions():
    # k=1, s=2 on 5 reads rows/cols 0, 2, 4 only: 9 positions get variance 1, 16 get none
    result = backward_map("conv(k=1,s=2)", 5)
    assert result.unreached == 16
    assert (result.min, result.max, result.ratio) == (1.0, 1.0, 1.0)
    assert result.mean == pytest.approx(9 / 25)


def test_maxpool_with_padding_uses_real_inputs_per_window():
    # maxpool(k=3,s=2,p=1) on 4: row windows {0,1} (2 real inputs) and {1,2,3} (3 real),
    # so 2-D windows hold 4, 6, 6 or 9 real inputs and the argmax is uniform over them.
    result = exact_map("maxpool(k=3,s=2,p=1)", 4)
    assert result[0, 0] == pytest.approx(1 / 4)
    assert result[1, 1] == pytest.approx(1 / 4 + 1 / 6 + 1 / 6 + 1 / 9)
    assert result[0, 2] == pytest.approx(1 / 6)
    assert result[3, 3] == pytest.approx(1 / 9)


def test_maxpool_non_overlapping_is_uniform():
    result = backward_map("maxpool(k=2,s=2)", 6)
    np.testing.assert_allclose(result.map, np.full((6, 6), 1 / 4), rtol=0, atol=1e-15)
    assert result.backward_constant == pytest.approx(2.0)


def test_avgpool_maps_by_hand():
    # k=3, s=1 on 5: windows covering row u: 1, 2, 3, 2, 1; each gives 1/9^2
    np.testing.assert_allclose(exact_map("avgpool(k=3,s=1)", 5), _outer([1, 2, 3, 2, 1], Fraction(1, 81)), atol=1e-15)
    result = backward_map("avgpool(k=2,s=2)", 4)
    assert result.map == [[1 / 16] * 4] * 4 and result.backward_constant == pytest.approx(4.0)


def test_avgpool_without_padding_in_the_count():
    # same windows as the maxpool case above; a window of m real inputs passes g/m
    result = exact_map("avgpool(k=3,s=2,p=1,count_include_pad=false)", 4)
    assert result[0, 0] == pytest.approx(1 / 16)
    assert result[1, 1] == pytest.approx(1 / 16 + 2 / 36 + 1 / 81)
    assert exact_map("avgpool(k=3,s=2,p=1)", 4)[0, 0] == pytest.approx(1 / 81)


def test_to_dict_has_the_documented_keys():
    data = backward_map("maxpool(k=2)", 4).to_dict()
    assert {"map", "min", "max", "mean", "ratio", "backward_constant"} <= set(data)
    assert data["simulation"] is None


@pytest.mark.parametrize(
    "layer, size, fragment",
    [
        ("conv(k=5)", 3, "does not fit"),
        ("conv(k=3)", 0, "must be >= 1"),
    ],
)
def test_impossible_shapes_raise(layer, size, fragment):
    with pytest.raises(MomentcalcError, match=fragment):
        backward_map(layer, size)


# ---- simulation cross-checks ---------------------------------------------------------


@pytest.mark.parametrize(
    "layer, size, trials",
    [
        ("conv(k=3,s=2,p=1)", 7, 10000),
        ("conv(k=3,s=1,p=1,cin=2,cout=3)", 5, 10000),
        ("conv(k=2,s=3,p=1)", 6, 10000),
        ("conv(k=4,s=2,p=2,cin=3,cout=2)", 6, 10000),
        ("maxpool(k=3,s=2,p=1)", 7, 20000),
        ("maxpool(k=2,s=1,p=1)", 5, 20000),
        ("avgpool(k=3,s=2,p=1)", 7, 20000),
        ("avgpool(k=3,s=2,p=1,count_include_pad=false)", 6, 20000),
    ],
)
def test_exact_map_agrees_with_simulation(layer, size, trials):
    check = check_by_simulation(layer, size, trials, seed=20240601, z=Z)
    assert check.max_abs_z <= Z, check
    if layer.startswith("conv"):
        assert check.adjoint_max_diff <= 1e-12
    assert check.passed


def test_simulation_rejects_the_naive_maxpool_map():
    """Power check: ignoring that -inf padding shrinks border windows is detected."""
    layer, size = "maxpool(k=3,s=2,p=1)", 5
    sim = simulate_map(layer, size, 20000, seed=7)
    # windows {-1,0,1}, {1,2,3}, {3,4,5} cover rows 1, 2, 1, 2, 1 times; naive: 1/9 each
    naive = _outer([1, 2, 1, 2, 1], Fraction(1, 9))
    z = np.abs(sim.mean - naive) / sim.se
    assert z[0, 0] > Z  # corner: exact 1/4, naive 1/9
    exact_z = np.abs(sim.mean - exact_map(layer, size)) / sim.se
    assert exact_z[0, 0] < Z


def test_simulation_is_reproducible_from_the_seed():
    first = simulate_map("maxpool(k=3,s=2,p=1)", 5, 50, seed=3)
    second = simulate_map("maxpool(k=3,s=2,p=1)", 5, 50, seed=3)
    np.testing.assert_array_equal(first.mean, second.mean)


def test_backward_map_attaches_the_simulation_check():
    result = backward_map("conv(k=3,s=2,p=1)", 5, trials=500, seed=1)
    assert result.simulation.trials == 500 and result.simulation.passed
    assert result.to_dict()["simulation"]["passed"] is True


def test_too_few_trials_is_an_error():
    with pytest.raises(MomentcalcError, match="trials"):
        simulate_map("conv(k=3)", 5, 1)


# ---- optional oracle: torch autograd ------------------------------------------------


def test_reference_gradients_match_torch_autograd():
    torch = pytest.importorskip("torch")
    from momentcalc import input_grads as ref

    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 2, 7, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    tx = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.conv2d(tx, torch.tensor(w), stride=2, padding=1)
    g = rng.standard_normal(tuple(out.shape))
    out.backward(torch.tensor(g))
    expected = tx.grad.numpy()[0]
    np.testing.assert_allclose(ref.conv2d_input_grad_scatter(g[0], w, 7, 2, 1), expected, atol=1e-12)
    np.testing.assert_allclose(ref.conv2d_input_grad_rot180(g[0], w, 7, 2, 1), expected, atol=1e-12)

    for pool, ours in (
        (
            lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1),
            lambda xx, gg: ref.maxpool2d_input_grad(xx, gg, 3, 2, 1),
        ),
        (lambda t: torch.nn.functional.avg_pool2d(t, 3, 2, 1), lambda xx, gg: ref.avgpool2d_input_grad(gg, 7, 3, 2, 1)),
        (
            lambda t: torch.nn.functional.avg_pool2d(t, 3, 2, 1, count_include_pad=False),
            lambda xx, gg: ref.avgpool2d_input_grad(gg, 7, 3, 2, 1, count_include_pad=False),
        ),
    ):
        tx = torch.tensor(x[:, :1], requires_grad=True)
        out = pool(tx)
        g = rng.standard_normal(tuple(out.shape))
        out.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x[0, 0], g[0, 0]), tx.grad.numpy()[0, 0], atol=1e-12)


def test_minpool_routes_the_gradient_like_maxpool():
    # The window's argmin, like its argmax, is uniform over its real inputs: the same exact map.
    np.testing.assert_array_equal(exact_map("minpool(k=3,s=2,p=1)", 7), exact_map("maxpool(k=3,s=2,p=1)", 7))
    assert backward_map("minpool(k=3,s=2,p=1)", 7, trials=4000, seed=3).simulation.passed


def test_a_layer_is_not_a_spec_op():
    with pytest.raises(MomentcalcError, match="layer for `momentcalc backward`"):
        mc.estimate("conv(k=3)")
