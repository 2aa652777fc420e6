import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from momentcalc import MomentcalcError, parse
from momentcalc.spec import canonical


@pytest.mark.parametrize(
    "spelling, expected",
    [
        ("relu", "relu"),
        ("  relu|normalize |maxpool( k = 3 ) ", "relu | normalize | maxpool(k=3)"),
        ("maxpool(dims=2, k=3)", "maxpool(k=3)"),
        ("maxpool(k=3,dims=1)", "maxpool(k=3,dims=1)"),
        ("avgpool(n=16)", "avgpool(n=16)"),
        ("dropout(scale=sqrt, p=0.80)", "dropout(p=0.8)"),
        ("dropout(scale=none,p=1.0)", "dropout(p=1,scale=none)"),
    ],
)
def test_canonical_spelling(spelling, expected):
    assert canonical(spelling) == expected


def test_window_size():
    assert parse("maxpool(k=3)").last.window_size == 9
    assert parse("maxpool(k=3,dims=3)").last.window_size == 27
    assert parse("maxpool(k=5,dims=1)").last.window_size == 5
    assert parse("avgpool(n=10000)").last.window_size == 10000


@pytest.mark.parametrize(
    "bad, words",
    [
        ("", "empty spec"),
        ("relu ||", "empty stage"),
        ("relu |", "empty stage"),
        ("normalize | relu", "needs something before it"),
        ("maxpol(k=3)", "did you mean 'maxpool'"),
        ("maxpool(kk=3)", "accepts k, dims, n"),
        ("maxpool(k=0)", "within [1, 1000000]"),
        ("maxpool(k=2.5)", "an integer"),
        ("maxpool", "needs a window"),
        ("maxpool(k=3,n=9)", "either n=N or k=K"),
        ("maxpool(k=3,dims=4)", "1, 2 or 3"),
        ("dropout(p=0)", "within [1e-06, 1]"),
        ("dropout(p=1.5)", "within [1e-06, 1]"),
        ("dropout", "needs p="),
        ("dropout(p=0.5,scale=half)", "none, sqrt, inverse"),
        ("dropout(p=nan)", "finite number"),
        ("relu(", "unbalanced"),
        ("relu)", "unbalanced"),
        ("maxpool(k)", "key=value"),
        ("maxpool(k=2,k=3)", "given twice"),
    ],
)
def test_bad_specs_say_what_is_wrong(bad, words):
    with pytest.raises(MomentcalcError, match=None) as info:
        parse(bad)
    assert words in str(info.value)


_stage = st.one_of(
    st.sampled_from(["relu", "sigmoid", "normalize"]),
    st.builds(
        lambda op, k, dims: f"{op}(k={k},dims={dims})",
        st.sampled_from(["maxpool", "avgpool"]),
        st.integers(1, 9),
        st.integers(1, 3),
    ),
    st.builds(
        lambda p, s: f"dropout(p={p},scale={s})", st.floats(0.01, 1.0), st.sampled_from(["none", "sqrt", "inverse"])
    ),
)


@given(st.lists(_stage, min_size=1, max_size=5).filter(lambda s: s[0] != "normalize"))
@example(["relu", "normalize", "maxpool(k=3,dims=2)"])
def test_canonical_form_is_a_fixed_point(stages):
    text = " | ".join(stages)
    once = canonical(text)
    assert canonical(once) == once
    assert parse(once) == parse(text)
