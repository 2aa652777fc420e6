"""Fuzzing (issue 13): whatever text, numbers and methods come in, only MomentcalcError comes out.

The parser gets random text and grammar-shaped specs; the engine gets near-valid specs at the domain's
edges and every method (sampling methods with few samples); the CLI gets random arguments and must exit
0, 2, or 1 for a disagreement it reports, never with a traceback. The example counts are fixed and the
runs derandomized, so CI sees the same examples every time (a few seconds each).
"""

import json
import math

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import momentcalc
from momentcalc import MomentcalcError, catalog
from momentcalc.cli import app
from momentcalc.spec import parse, parse_layer

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
# The engine's examples compile kernels for pipelines no other test runs (about 0.12 s of CPU each, cold), a CLI
# example runs a whole command (about 0.1 s), a parser example a few ms: the main suite runs a third of each,
# tests_long/test_long_fuzz.py the full counts (the suite's 3-minute budget).
PARSER_EXAMPLES, ENGINE_EXAMPLES, CLI_EXAMPLES = 100, 30, 20

OP_NAMES = sorted(o.name for o in catalog.all_ops())
# Values that broke the parser or the methods once, values at the domain's edges, and plain ones.
TRICKY = [
    "0", "-0", "1", "-1", "2", "3", "0.5", "2.5", "1e6", "1000000", "1000001", "1e-6", "1e-3", "1e3", "1e200",
    "1e300", "1e308", "1e-320", "5e-324", "nan", "inf", "-inf", "9" * 40, "true", "false", "none", "sqrt",
    "inverse", "tanh", "", "x", " 3 ", "+3", "3.0", "0x10", "1_0",
]  # fmt: skip
_names = st.sampled_from(OP_NAMES + ["relu6x", "conv", "", "NORMALIZE"])
_keys = st.sampled_from(["k", "n", "dims", "s", "p", "alpha", "beta", "slope", "min_val", "max_val", "scale",
                         "approximate", "count_include_pad", "cin", "cout", "q"])  # fmt: skip
_expressions = st.recursive(
    st.sampled_from(["x", "1", "2.5", "pi", "e", "1e308", "-x"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "<"]), inner).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"
        ),
        st.tuples(st.sampled_from(["exp", "log", "sqrt", "tanh", "erf", "sigmoid", "abs", "softplus"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
        st.tuples(inner, inner).map(lambda t: f"maximum({t[0]},{t[1]})"),
    ),
    max_leaves=5,
)


@st.composite
def _stage(draw):
    name = draw(_names)
    if name == "expr":
        return f"expr({draw(_expressions)})"
    items = draw(st.lists(st.tuples(_keys, st.sampled_from(TRICKY)), max_size=3))
    if not items and draw(st.booleans()):
        return name
    return f"{name}({','.join(f'{k}={v}' for k, v in items)})"


_specs = st.lists(_stage(), min_size=1, max_size=4).map(" | ".join)


TEXTS = st.one_of(st.text(max_size=80), st.text(alphabet="relumaxpo()=,|.0123456789e+-_ kndsx*", max_size=60))


@settings(FUZZ, max_examples=PARSER_EXAMPLES)
@given(TEXTS)
@example("(" * 500)
@example("relu" + " | relu" * 2000)
@example("expr(" + "-" * 400 + "x)")
def test_parser_on_random_text(text):
    for reader in (parse, parse_layer):
        try:
            reader(text)
        except MomentcalcError:
            pass


@settings(FUZZ, max_examples=PARSER_EXAMPLES)
@given(_specs)
@example("avgpool(k=1e200)")
@example("dropout(p=5e-324,scale=inverse)")
def test_parser_on_grammar_shaped_specs(text):
    try:
        spec = parse(text)
    except MomentcalcError:
        return
    assert parse(str(spec)) == spec  # what it accepts, it prints in a spelling it accepts again


# --- the engine: near-valid specs, the domain's edges, every method ------------------------------------

_EDGE_PARAMS = {
    "alpha": ["0.001", "1000", "1", "0.5"],
    "beta": ["0.001", "1000", "2"],
    "slope": ["0", "1000", "0.1"],
    "min_val": ["-1e6", "-1", "0.5"],
    "max_val": ["1e6", "1", "2"],
}
_WINDOW = ["k=1", "k=2", "k=3,dims=1", "n=1", "n=2", "n=5", "n=64", "k=2,dims=3"]
_ACTIVATIONS = [o for o in catalog.all_ops() if o.kind == catalog.ELEMENTWISE and o.name != "expr"]


@st.composite
def _engine_stage(draw):
    kind = draw(st.sampled_from(["act", "act", "act", "window", "dropout", "normalize", "expr"]))
    if kind == "window":
        return f"{draw(st.sampled_from(['maxpool', 'minpool', 'avgpool']))}({draw(st.sampled_from(_WINDOW))})"
    if kind == "dropout":
        p = draw(st.sampled_from(["1e-6", "0.5", "1"]))
        return f"dropout(p={p},scale={draw(st.sampled_from(['none', 'sqrt', 'inverse']))})"
    if kind == "normalize":
        return "normalize"
    if kind == "expr":
        return f"expr({draw(_expressions)})"
    op = draw(st.sampled_from(_ACTIVATIONS))
    values = [f"{p.name}={draw(st.sampled_from(_EDGE_PARAMS[p.name]))}" for p in op.params if p.name in _EDGE_PARAMS]
    return f"{op.name}({','.join(values)})" if values and draw(st.booleans()) else op.name


# The domain's edges and just beyond, typical inputs, and anything inside the domain.
_mus = st.one_of(
    st.sampled_from([0.0, -1e6, 1e6, 30.0, -40.0, 1e-300, 5e-324, -8.0, 2e6, 1e300]),
    st.floats(-5.0, 5.0),
    st.floats(-1e6, 1e6),
)
_sigmas = st.one_of(
    st.sampled_from([1.0, 1e-6, 1e6, 0.1, 1e-7, 2e6, 0.0, -1.0]),
    st.floats(0.1, 10.0),
    st.floats(1e-6, 1e6),
)
METHODS = ["closed", "quadrature", "certified", "montecarlo", "qmc"]


def _assert_finite(result):
    for e in result.estimates:
        for name in ("mean", "std", "mean_se", "std_se", "grad_sq", "grad_sq_se"):
            value = getattr(e, name)
            assert value is None or math.isfinite(value), (e.method, name, value)


# A spec of one to three stages, mu, sigma and a method.
ENGINE_INPUTS = (
    st.lists(_engine_stage(), min_size=1, max_size=3).map(" | ".join),
    _mus,
    _sigmas,
    st.sampled_from(METHODS),
)


@settings(FUZZ, max_examples=ENGINE_EXAMPLES)
@given(*ENGINE_INPUTS)
@example("relu | normalize", -40.0, 1.0, "quadrature")
@example("relu6 | normalize", 30.0, 1.0, "montecarlo")
@example("celu(alpha=0.001)", 1e6, 1e-6, "closed")
@example("hardswish", -1e6, 1e6, "certified")
def test_engine_gives_finite_numbers_or_a_clear_error(text, mu, sigma, method):
    try:
        result = momentcalc.estimate(text, mu=mu, sigma=sigma, method=method, samples=_samples(method))
    except MomentcalcError:
        event(f"{method}: refused")
        return
    event(f"{method}: answered")
    _assert_finite(result)


def _samples(method):
    return 1 << 10 if method in ("montecarlo", "qmc") else None


# --- the command line ------------------------------------------------------------------------------------

runner = CliRunner()
_odd_numbers = st.sampled_from(["-40", "1e308", "1e-320", "nan", "inf", "-inf", "abc", "", "-0", "1e6", "-1", "0"])
# Mostly numbers inside the domain (so that most runs compute something), sometimes odd ones.
_mu_texts = st.one_of(st.floats(-50, 50).map(repr), st.sampled_from(["0", "1", "-3", "30"]), _odd_numbers)
_sigma_texts = st.one_of(st.floats(0.01, 100).map(repr), st.sampled_from(["1", "1e-6", "1e6"]), _odd_numbers)


@st.composite
def _cli_args(draw):
    engine_specs = st.lists(_engine_stage(), min_size=1, max_size=3).map(" | ".join)
    spec = draw(st.one_of(engine_specs, engine_specs, _specs))
    args = ["estimate", spec, "--mu", draw(_mu_texts), "--sigma", draw(_sigma_texts)]
    method = draw(st.sampled_from(["auto", "all", *METHODS, *METHODS, "bogus"]))
    args += ["--method", method]
    budget = draw(st.sampled_from(["samples", "tol", "none"]))
    if budget == "samples" or (budget == "none" and method in ("auto", "all", "montecarlo", "qmc")):
        args += ["--samples", draw(st.sampled_from(["1024", "1024", "4096", "0", "-5", "1e3"]))]
    elif budget == "tol":
        args += ["--tol", draw(st.sampled_from(["0.05", "0.05", "1e-300", "1e-101", "0", "-1", "nan"]))]
    if draw(st.booleans()):
        args += ["--z", draw(st.sampled_from(["4.5", "6", "0", "1e308", "nan"]))]
    if draw(st.booleans()):
        args.append("--json")
    return args


def _assert_clean_exit(args):
    result = runner.invoke(app, args)
    output = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert "Traceback" not in output, args
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, output)
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    return result


@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(_cli_args())
@example(["estimate", "relu | normalize", "--mu", "-40", "--samples", "1024"])
@example(["estimate", "celu(alpha=0.001)", "--method", "closed", "--json"])
def test_cli_exits_0_1_or_2_without_a_traceback(args):
    result = _assert_clean_exit(args)
    event(f"exit {result.exit_code}")
    output = result.stdout + result.stderr
    if result.exit_code == 1:  # a disagreement, reported as such
        assert "DISAGREE" in result.stdout or json.loads(result.stdout)["agree"] is False, (args, output)
    if result.exit_code != 2 and "--json" in args:
        json.loads(result.stdout, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))


# --- the other commands -------------------------------------------------------------------------------------
# backward, gains, shape and cmap get random arguments from pools of plain and odd values; solve and propagate
# (seconds per valid run) get the odd inputs that once escaped as tracebacks or could exhaust memory.

_ints = st.sampled_from(["-1", "0", "1", "2", "3", "5", "8", "1000000", "1e3", "x", "9" * 30])
_corr = st.sampled_from(["-1", "-0.5", "0", "0.3", "1", "1.5", "nan", "-inf"])
_op_texts = st.one_of(st.sampled_from(["relu", "tanh", "erf", "expr(x*0)", "expr(x*x)", "maxpool(k=2)", "rellu"]),
                      _specs)  # fmt: skip


@st.composite
def _other_args(draw):
    command = draw(st.sampled_from(["backward", "gains", "shape", "cmap"]))
    if command == "backward":
        layer = draw(st.sampled_from(["maxpool(k=3,s=2)", "avgpool(k=2)", "conv(k=3,s=2,p=1,cin=1,cout=1)", "relu"]))
        args = [command, layer, "--size", draw(_ints), "--trials", draw(st.sampled_from(["0", "2", "50", "-1"]))]
        args += ["--seed", draw(_ints)]
    elif command == "gains":
        args = [command, "--spec", draw(_op_texts)]
    elif command == "shape":
        args = [command, "--i", draw(_ints), "--k", draw(_ints), "--s", draw(_ints), "--d", draw(_ints)]
        args += draw(st.sampled_from([[], ["--pool"], ["--padding", "same"], ["--padding", "odd"], ["--p", "9"]]))
    else:
        args = [command, draw(_op_texts), "--c", draw(_corr), "--q", draw(st.sampled_from(["1", "0", "-2", "1e300"]))]
        args += ["--method", draw(st.sampled_from(["closed", "quadrature", "montecarlo", "bogus"]))]
        args += ["--samples", draw(st.sampled_from(["2", "4096", "0", str(1 << 40)])), "--seed", draw(_ints)]
    if draw(st.booleans()):
        args.append("--json")
    return args


@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(_other_args())
def test_other_commands_exit_0_1_or_2_without_a_traceback(args):
    event(f"{args[0]}: exit {_assert_clean_exit(args).exit_code}")


@pytest.mark.parametrize(
    "args, words",
    [
        (["backward", "maxpool(k=2)", "--size", "4", "--seed", "-1"], "seed must be a whole number >= 0"),
        (["gains", "--spec", "expr(x*0)"], "puts out a constant"),
        (["cmap", "relu", "--c", "0.5", "--samples", str(10**13)], "samples must be a whole number in"),
        (["cmap", "relu", "--c", "0.5", "--seed", "-1"], "seed must be"),
        (["cmap", "relu", "--c", "0.5", "--plot", "no-such-directory/x.png"], "no directory"),
        (["cmap", "relu", "--c", "0.5", "--plot", "x.txt"], ".png or .svg"),
        (["propagate", "--width", "100000", "--size", "1000"], "use a smaller --width"),
        (["propagate", "--depth", "1000000", "--pool", "none"], "blocks allowed"),
        (["propagate", "--seed", "-1"], "seed must be"),
        (["propagate", "--plot", "no-such-directory/x.png"], "no directory"),
        (["solve", "selu(alpha=?,scale=?)", "--mean", "nan", "--var", "1"], "finite"),
        (["solve", "elu(alpha=?)", "--mean", "0", "--mu", "1e300"], "input domain"),
    ],
)
def test_inputs_that_once_escaped_get_one_line(args, words):
    result = _assert_clean_exit(args)
    assert result.exit_code == 2 and words in result.stderr, (args, result.stderr)
