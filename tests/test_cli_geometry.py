"""The ``shape`` and ``backward`` commands, driven through typer's CliRunner."""

import json

import pytest
from typer.testing import CliRunner

import momentcalc.cli


@pytest.fixture(scope="module")
def app():
    return momentcalc.cli.app  # the whole command group: commands are named


def run(app, *args):
    return CliRunner().invoke(app, list(args))


def test_help_lists_both_commands(app):
    result = run(app, "--help")
    assert result.exit_code == 0
    assert "shape" in result.output and "backward" in result.output


def test_shape_text(app):
    result = run(app, "shape", "--i", "5", "--k", "3", "--s", "2", "--p", "1")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines() if line.strip()}
    assert lines["output"] == "3" and lines["padding"] == "1"


def test_shape_json_same_padding(app):
    result = run(app, "shape", "--i", "7", "--k", "3", "--padding", "same", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"output": 7, "padding": 1, "warning": None}


def test_shape_json_full_padding_and_dilation(app):
    # full padding for k_eff = 2*(3-1)+1 = 5 is 4: o = 6 + 8 - 5 + 1 = 10
    result = run(app, "shape", "--i", "6", "--k", "3", "--d", "2", "--padding", "full", "--json")
    assert json.loads(result.stdout) == {"output": 10, "padding": 4, "warning": None}


def test_shape_pool_defaults(app):
    result = run(app, "shape", "--i", "6", "--k", "2", "--pool", "--json")
    assert json.loads(result.stdout)["output"] == 3  # stride defaults to k, no padding


def test_shape_warns_about_unread_inputs(app):
    result = run(app, "shape", "--i", "7", "--k", "2", "--s", "3")
    assert result.exit_code == 0
    assert "warning" in result.stdout and "never read" in result.stdout
    data = json.loads(run(app, "shape", "--i", "7", "--k", "2", "--s", "3", "--json").stdout)
    assert "never read" in data["warning"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--i", "2", "--k", "3"], "does not fit"),
        (["--i", "5", "--k", "3", "--s", "0"], "s must be >= 1"),
        (["--i", "5", "--k", "3", "--d", "0"], "d must be >= 1"),
        (["--i", "5", "--k", "0"], "k must be >= 1"),
        (["--i", "0", "--k", "1"], "i must be >= 1"),
        (["--i", "5", "--k", "3", "--p", "-1"], "p must be >= 0"),
        (["--i", "5", "--k", "3", "--p", "2", "--pool"], "more than half"),
        (["--i", "5", "--k", "3", "--p", "1", "--padding", "same"], "not both"),
        (["--i", "5", "--k", "3", "--padding", "reflect"], "valid, same"),
    ],
)
def test_shape_errors_are_one_line_exit_2(app, args, fragment):
    result = run(app, "shape", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_backward_json_checkerboard(app):
    result = run(app, "backward", "conv(k=3,s=2,p=1,cin=1,cout=1)", "--size", "7", "--json", "--trials", "0")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"map", "min", "max", "mean", "ratio", "backward_constant"} <= set(data)
    # hand count: per-axis taps 1,2,1,2,1,2,1 -> ratio 4, mean 100/441, constant 21/10
    assert data["ratio"] == pytest.approx(4.0)
    assert data["backward_constant"] == pytest.approx(2.1)
    assert len(data["map"]) == 7 and data["map"][1][1] == pytest.approx(4 / 9)


def test_backward_json_with_simulation(app):
    result = run(app, "backward", "avgpool(k=2,s=2)", "--size", "4", "--json", "--trials", "400", "--seed", "5")
    data = json.loads(result.stdout)
    assert data["simulation"]["trials"] == 400 and data["simulation"]["passed"] is True
    assert data["mean"] == pytest.approx(1 / 16)


def test_backward_small_map_as_table(app):
    result = run(app, "backward", "maxpool(k=2)", "--size", "4", "--trials", "200")
    assert result.exit_code == 0, result.output
    assert "0.25" in result.stdout and "ratio" in result.stdout
    assert "backward constant" in result.stdout and "simulation" in result.stdout


def test_backward_large_map_as_distinct_values(app):
    result = run(app, "backward", "conv(k=3,s=2,p=1)", "--size", "40", "--trials", "0")
    assert result.exit_code == 0, result.output
    # per-axis tap counts: 1 for even rows and for row 39 (only the last window's
    # edge reaches it), 2 for odd rows 1..37; so 21 ones and 19 twos per axis
    assert "3 distinct values" in result.stdout
    rows = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines() if line.count("│") == 3}
    assert rows == {"0.111111": "441", "0.222222": "798", "0.444444": "361"}


def test_backward_reports_unreached_positions(app):
    result = run(app, "backward", "conv(k=1,s=2)", "--size", "5", "--json", "--trials", "0")
    assert json.loads(result.stdout)["unreached"] == 16


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["dense(k=3)", "--size", "5"], "unknown op 'dense'"),
        (["conv(k=3,q=1)", "--size", "5"], "it accepts k, s, p, cin, cout"),
        (["conv(k=5)", "--size", "3"], "does not fit"),
        (["maxpool(k=2,p=2)", "--size", "8"], "padding must be <= k/2"),
        (["conv(k=3)", "--size", "5", "--trials", "1"], "trials"),
        (["conv(k=3)", "--size", "5", "--trials", "-3"], "trials"),
    ],
)
def test_backward_errors_are_one_line_exit_2(app, args, fragment):
    result = run(app, "backward", *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert fragment in result.stderr


def test_backward_exits_1_when_simulation_disagrees(app, monkeypatch):
    import momentcalc.backward as backward

    true_map = backward.exact_map
    monkeypatch.setattr(backward, "exact_map", lambda layer, size: 2 * true_map(layer, size))
    result = run(app, "backward", "avgpool(k=2)", "--size", "4", "--trials", "500")
    assert result.exit_code == 1
    assert "DISAGREES" in result.stdout
