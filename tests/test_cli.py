"""The momentcalc command: output, exit codes, one-line errors, and a fast --help."""

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from table_refs import default_doc
from typer.testing import CliRunner

from momentcalc import __version__, tablefile, tables
from momentcalc.cli import app
from momentcalc.cli._util import _se, _value
from momentcalc.cli.estimate import Method
from momentcalc.settings import METHODS

REPO = Path(__file__).resolve().parent.parent
CLI_DIR = REPO / "momentcalc" / "cli"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def fast_build(monkeypatch):
    """tables build/check in the CLI use the session's one build instead of a fresh one."""
    doc = default_doc()
    monkeypatch.setattr(tables, "build", lambda progress=None, **kw: doc)
    return doc


# ---------------------------------------------------------------- help and version


def _command_paths(command=None, path=()):
    """(path, click command) of the app and of every command and group under it."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


COMMAND_PATHS = {path: command for path, command in _command_paths()}
BRACKETED = re.compile(r"[^\s\[\]]*\[[^\[\]]*\][^\s\[\]]*")  # E[f'(X)^2], momentcalc[dask], [default: 1, ...]


@pytest.mark.parametrize("path", list(COMMAND_PATHS), ids=lambda p: " ".join(p) or "momentcalc")
def test_every_command_has_help_with_examples_that_keeps_every_bracket(path):
    command = COMMAND_PATHS[path]
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "Example" in result.stdout
    sources = [command.help or "", command.epilog or ""] + [getattr(p, "help", None) or "" for p in command.params]
    terms = {term for text in sources for term in BRACKETED.findall(text)}
    shown = "".join(result.stdout.split())  # the help is wrapped to the terminal: compare without the spaces
    assert not [term for term in terms if "".join(term.split()) not in shown], result.stdout
    assert "<bool>" not in result.stdout  # a flag is shown as a flag: `--json`, not `--json <bool>`


@pytest.mark.parametrize(
    "path, term",
    [(("solve",), "E[f'(X)^2]"), (("estimate",), "momentcalc[dask]"), (("shape",), "[default: 1, or k with --pool]")],
)
def test_the_help_texts_that_rich_markup_used_to_eat(path, term):
    assert term in " ".join(invoke(*path, "--help").stdout.split())


@pytest.mark.parametrize("option", ["--version", "-V"])
def test_version(option):
    result = invoke(option)
    assert result.exit_code == 0 and result.stdout.strip() == f"momentcalc {__version__}"


def test_shell_completion_completes_commands_and_options():
    def complete(words: str) -> list[str]:
        env = {"_MOMENTCALC_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        done = console_script(**env)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("momentcalc est") == ["estimate"]
    assert "--method" in complete("momentcalc estimate relu --me")
    assert "--install-completion" in invoke("--help").stdout


def test_help_runs_without_importing_numba():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "momentcalc", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0 and "Usage:" in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "numba" not in imported and "scipy" not in imported and "momentcalc.engine" not in imported


def console_script(*args, **env):
    """`python -m momentcalc ARGS` in a process of its own, with env added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "momentcalc", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, **env},
    )


def test_the_console_script_leaves_at_once_with_all_its_output_and_its_exit_code():
    # main() skips the interpreter's teardown (os._exit): what a command printed must still all arrive.
    listed = console_script("list")
    assert listed.returncode == 0 and listed.stderr == ""
    assert listed.stdout == invoke("list").stdout and len(listed.stdout) > 4096  # more than one buffer's worth
    bad = console_script("estimate", "relu", "--mu", "nan")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == ["error: mu must be a finite number, got nan"]


@pytest.mark.parametrize("threads", ["0", "-3"])
def test_numba_threads_below_one_is_one_line_not_numbas_traceback(threads):
    # numba raises a bare ValueError when a command first imports it with NUMBA_NUM_THREADS < 1.
    done = console_script("estimate", "relu", NUMBA_NUM_THREADS=threads)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: NUMBA_NUM_THREADS={threads} is below 1: set it to a whole number of threads from 1 to "
        f"{len(os.sched_getaffinity(0))} (this machine's CPUs), or unset it to use them all"
    ]


# relu of N(0, 1): E[max(X, 0)] = phi(0) = 1/sqrt(2 pi), E[max(X, 0)^2] = 1/2.
RELU_MEAN, RELU_STD = 1 / math.sqrt(2 * math.pi), math.sqrt(0.5 - 1 / (2 * math.pi))


@pytest.mark.parametrize(
    "method, sampled",
    # auto: relu's certified value is checked by its closed form, and nothing samples (test_engine.py).
    [("closed", False), ("certified", False), ("quadrature", False), ("auto", False), ("montecarlo", True)],
)
def test_only_runs_that_sample_import_numba(method, sampled):
    # numba costs 0.5-0.7 s to import and its kernels 0.3 s to load: an exact method never pays for them.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "momentcalc", "estimate", "relu", "--method", method, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert ("numba" in imported) == sampled and "dask" not in imported and "distributed" not in imported
    out = json.loads(done.stdout)
    methods = [e["method"] for e in out["estimates"]]
    assert methods == (["certified", "closed"] if method == "auto" else [method])
    exact = 1e-15 if method != "montecarlo" else 4.5 * max(out["mean_se"], out["std_se"])  # its own SE, alone
    assert out["agree"] and out["mean"] == pytest.approx(RELU_MEAN, abs=exact)
    assert out["std"] == pytest.approx(RELU_STD, abs=exact)
    for e in out["estimates"]:  # Monte Carlo within 4.5 SE of the truth (fixed seed), exact ones to rounding
        assert abs(e["mean"] - RELU_MEAN) <= 4.5 * e["mean_se"] + 1e-15
        assert abs(e["std"] - RELU_STD) <= 4.5 * e["std_se"] + 1e-15


def test_method_choices_are_the_engines():
    assert {m.value for m in Method} == set(METHODS)


def test_there_is_one_error_path():
    sources = {path.name: path.read_text() for path in CLI_DIR.glob("*.py")}
    assert [name for name, text in sources.items() if "def _fail" in text] == ["_util.py"]
    assert [name for name, text in sources.items() if "except MomentcalcError" in text] == ["_util.py"]


# ---------------------------------------------------------------- estimate


def test_estimate_json_has_the_documented_keys():
    result = invoke("estimate", "relu", "--samples", "65536", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"spec", "input", "mean", "std", "mean_se", "std_se", "method", "agree", "estimates"} <= set(out)
    assert out["input"] == {"mu": 0.0, "sigma": 1.0} and out["agree"] is True
    assert out["mean"] == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-15)  # E[relu X] = 1/sqrt(2 pi)


def test_estimate_accepts_a_negative_mu():
    result = invoke("estimate", "relu", "--mu", "-1", "--samples", "65536", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    # E[relu X] for X ~ N(mu, 1) is mu Phi(mu) + phi(mu).
    mu = -1.0
    expected = mu * 0.5 * math.erfc(-mu / math.sqrt(2)) + math.exp(-mu * mu / 2) / math.sqrt(2 * math.pi)
    assert out["input"]["mu"] == -1.0 and out["mean"] == pytest.approx(expected, abs=1e-14)


def test_estimate_table_shows_every_method_and_the_verdict():
    result = invoke("estimate", "maxpool(k=2)", "--samples", "65536")
    assert result.exit_code == 0, result.stderr
    for method in ("closed", "quadrature", "montecarlo"):
        assert method in result.stdout
    assert "agree" in result.stdout and "1.029375373" in result.stdout


@pytest.mark.parametrize(
    "value, se, text",
    [
        (0.398812, 3e-4, "0.3988"),  # the last digit at the SE's first: one guard digit
        (0.39881, 2.8e-5, "0.39881"),
        (1.0293753730039643, 1.2e-14, "1.02937537300396"),  # quadrature: the digits its bound supports
        (0.99996, 3e-4, "1.000"),  # trailing zeros are digits too
        (123.4, 7.0, "123"),
        (2.5e-9, 1e-12, "2.500e-09"),
        (1.42661289e-17, 6.2e-15, "0"),  # below its uncertainty: 0 at the SE's place
        (-1.23e-4, 4.8e-4, "-0.0001"),
        (0.3989422804014327, 0.0, "0.3989422804014327"),  # exact: every digit (repr)
        (0.0, 0.0, "0.0"),
        (1e-100, 0.0, "1e-100"),
        (None, 0.1, "—"),
    ],
)
def test_values_print_with_the_digits_their_uncertainty_supports(value, se, text):
    assert _value(value, se) == text


def test_a_value_without_a_usable_uncertainty_prints_three_digits():
    assert _value(0.2598540343, 0.18, known=False) == "0.26" and _se(0.18, known=False) == "n/a"


def test_the_estimate_table_prints_monte_carlo_to_its_standard_error():
    result = invoke("estimate", "relu", "--samples", "65536", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.strip().startswith("montecarlo")]
    mean, se = row.split()[1:3]
    # SE ~ sqrt(0.34 / 65536) ~ 2.3e-3: the mean has 3 decimals (1 guard digit), not 10 digits.
    assert float(se) == pytest.approx(2.3e-3, rel=0.1) and re.fullmatch(r"0\.\d{3}", mean), row
    assert "0.3989422804014327" in result.stdout  # the closed form in full


@pytest.mark.parametrize("samples", ["1", "2"])
def test_one_or_two_samples_do_not_disagree(samples):
    result = invoke("estimate", "relu", "--samples", samples)
    assert result.exit_code == 0, result.stdout
    assert "DISAGREE" not in result.stdout and f"only {samples} samples" in result.stdout


def test_equal_samples_far_in_the_tail_do_not_disagree_with_the_closed_form():
    result = invoke("estimate", "relu", "--mu", "-5", "--samples", "65536", "--json")
    out = json.loads(result.stdout)
    assert not [pair for pair in out["disagreements"] if "montecarlo" in pair]
    assert out["method"] == "certified" and out["mean"] > 0.0  # mu Phi(mu) + phi(mu) = 5.3e-8
    assert out["estimates"][-1]["mean_se"] == 0.0 and "rule of three" in out["estimates"][-1]["notes"][0]


def test_tanh_prints_the_exact_zero_as_the_mean_of_record():
    # Quadrature's mean is rounding noise (about 1e-17); the exact methods say 0 by symmetry.
    result = invoke("estimate", "tanh", "--samples", "65536")
    assert result.exit_code == 0, result.stdout
    (row,) = [line for line in result.stdout.splitlines() if line.strip().startswith("certified")]
    assert row.split()[:2] == ["certified*", "0.0"]
    (row,) = [line for line in result.stdout.splitlines() if line.strip().startswith("closed")]
    assert row.split()[1] == "0.0"
    out = json.loads(invoke("estimate", "tanh", "--samples", "65536", "--json").stdout)
    assert (out["mean"], out["mean_se"], out["method"]) == (0.0, 0.0, "certified")


def test_disagreement_exits_1_and_names_the_pairs():
    # A z bound of 1e-9 makes any Monte Carlo noise a disagreement.
    result = invoke("estimate", "relu", "--samples", "65536", "--z", "1e-9")
    assert result.exit_code == 1
    assert "DISAGREE" in result.stdout and "closed vs montecarlo (mean)" in result.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["estimate", "maxpol(k=3)"], "did you mean 'maxpool'"),
        (["estimate", "maxpool(k=0)"], "out of range"),
        (["estimate", "relu |"], "empty stage"),
        (["estimate", "relu", "--sigma", "0"], "sigma must be"),
        (["estimate", "relu", "--samples", "abc"], "--samples"),
        (["estimate", "relu", "--samples", "0"], "samples must be"),
        (["estimate", "relu", "--method", "guess"], "--method"),
        (["estimate", "relu", "--tol", "1e-3", "--samples", "10"], "not both"),
        (["estimate", "relu", "--bogus"], "--bogus"),
        (["estimate"], "Missing argument"),
        (["nonsense"], "nonsense"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    assert_one_line_error(invoke(*args), fragment)


# ---------------------------------------------------------------- list


def test_list_names_every_op_with_its_methods():
    from momentcalc import catalog

    result = invoke("list")
    assert result.exit_code == 0
    for op in catalog.all_ops():
        assert re.search(rf"^\s*\S?\s*{re.escape(op.name)}\s", result.stdout, re.M), op.name
    assert "scale=sqrt" in result.stdout and "quadrature" in result.stdout and "montecarlo" in result.stdout


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize("command", ["build", "check"])
def test_tables_jobs_must_be_at_least_one(command, tmp_path):
    assert_one_line_error(
        invoke("tables", command, "--dir", str(tmp_path), "--jobs", "0"), "--jobs", "0 is not in the range x>=1"
    )


def test_tables_build_check_show(tmp_path, fast_build):
    assert invoke("tables", "build", "--dir", str(tmp_path)).exit_code == 0
    assert (tmp_path / "normprop.json").exists() and (tmp_path / "schema.json").exists()
    again = invoke("tables", "build", "--dir", str(tmp_path))
    assert again.exit_code == 0 and "unchanged" in again.stdout
    check = invoke("tables", "check", "--dir", str(tmp_path))
    assert check.exit_code == 0, check.stdout
    show = invoke("tables", "show", "--dir", str(tmp_path))
    assert show.exit_code == 0
    assert "maxpool(k=3)" in show.stdout and "1.4850131622" in show.stdout


def test_tables_show_prints_certified_values_to_the_last_double(monkeypatch):
    """The README's main command ends in `tables show`: a certified entry's mean and std print with every
    digit of the correctly rounded double (they read back as the file's doubles), not a fixed 10 decimals."""
    monkeypatch.chdir(REPO)
    show = invoke("tables", "show")
    assert show.exit_code == 0
    doc = json.loads((REPO / "tables" / "normprop.json").read_text())
    certified = [e for e in doc["entries"] if e["method"] == "certified"]
    assert certified
    for e in certified:
        row = re.search(rf"^\s*{re.escape(e['spec'])}\s+(\S+)\s+\S+\s+(\S+)\s", show.stdout, re.M)
        assert float(row[1]) == e["mean"] and float(row[2]) == e["std"], (e["spec"], row[0])
    std = re.search(r"^\s*maxpool\(k=3\)\s+\S+\s+\S+\s+(\S+)\s", show.stdout, re.M)[1]
    assert len(std.replace(".", "").lstrip("0")) == 17  # every significant digit, the guard digit included


def test_tables_check_prints_the_diff_and_the_command(tmp_path, fast_build):
    invoke("tables", "build", "--dir", str(tmp_path))
    path = tmp_path / "normprop.json"
    path.write_text(path.read_text().replace("0.5838193701035489", "0.5839193701035489"))  # 4th digit
    result = invoke("tables", "check", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert "'relu'" in result.stdout and "std: file has 0.5839193701035489" in result.stdout
    assert "its content does not match its content_sha256 (edited by hand?)" in result.stdout
    assert f"momentcalc tables build --dir {tmp_path}" in result.stdout


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"format_version": 3, "entries": [', "not valid JSON"),
        ('{"format_version": 7, "entries": []}', "format version 7"),
        ('{"format_version": 2, "entries": []}', "format version 2; this momentcalc"),
        ('{"format_version": 3, "entries": []}', "its header holds no content_sha256"),
        (tablefile.dumps({"format_version": 3, "entries": []}), "schema violation"),
    ],
)
def test_tables_show_rejects_a_corrupt_file(tmp_path, content, fragment):
    (tmp_path / "normprop.json").write_text(content)
    assert_one_line_error(invoke("tables", "show", "--dir", str(tmp_path)), fragment)


def test_tables_check_rejects_a_corrupt_file(tmp_path, fast_build):
    (tmp_path / "normprop.json").write_text('{"format_version": 3, "entr')
    assert_one_line_error(invoke("tables", "check", "--dir", str(tmp_path)), "not valid JSON")


def test_tables_in_a_missing_or_unwritable_place(tmp_path, fast_build):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(invoke("tables", "build", "--dir", str(blocker / "tables")), "cannot write tables")
    assert_one_line_error(invoke("tables", "check", "--dir", str(tmp_path / "none")), "no table directory")
    assert_one_line_error(invoke("tables", "show", "--dir", str(tmp_path / "none")), "no table at")


# ---------------------------------------------------------------- the console script


def _console_script() -> str:
    script = shutil.which("momentcalc", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the momentcalc console script is not installed in this environment (pip install -e .)")
    return script


def test_console_script_reports_bad_input_in_one_line():
    done = subprocess.run([_console_script(), "estimate", "maxpol(k=3)"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: unknown op 'maxpol' in 'maxpol(k=3)'; did you mean 'maxpool' or 'minpool' or 'avgpool'?"
    ]


def test_python_m_momentcalc_estimates():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "momentcalc", "estimate", "avgpool(k=4)", "--samples", "65536", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["std"] == 0.25  # 1/k, exactly


def test_ci_script_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci" / "run").read_text()
    command = re.search(r'^TEST_COMMAND="(.+)"$', ci, re.M).group(1)
    readme_lines = [line.strip() for line in (REPO / "README.md").read_text().splitlines()]
    assert command in readme_lines
    assert "momentcalc tables check" in ci


def test_the_progress_bar_waits_about_a_second_unless_the_run_is_big(monkeypatch):
    from momentcalc.cli import _util as cli

    clock = [100.0]
    monkeypatch.setattr(cli.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    with cli._LazyBar("Monte Carlo") as bar:
        bar(1 << 14, 1 << 22)
        assert bar.progress is None  # short so far: nothing drawn
        clock[0] += 1.5
        bar(1 << 15, 1 << 22)
        assert bar.progress is not None
    with cli._LazyBar("Monte Carlo") as big:
        big(1 << 14, cli.BIG_RUN_SAMPLES)
        assert big.progress is not None
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: False)
    with cli._LazyBar("Monte Carlo") as piped:  # piped stderr: no bar, which would leave a blank line behind
        piped(1 << 14, cli.BIG_RUN_SAMPLES)
        assert piped.progress is None


@pytest.mark.parametrize("command", [[], ["tables"]])
def test_no_subcommand_shows_the_help(command):
    result = invoke(*command)
    assert result.exit_code == 0 and "Usage:" in result.stdout and result.stderr == ""


def test_estimate_with_size_shows_the_window_kinds_and_json_maps():
    runner = CliRunner()
    shown = runner.invoke(app, ["estimate", "maxpool(k=3,s=1,p=1)", "--size", "4", "--samples", "4096"])
    assert shown.exit_code == 0, shown.output
    assert "corners" in shown.output and "interior" in shown.output
    as_json = runner.invoke(app, ["estimate", "maxpool(k=3,s=1,p=1)", "--size", "4", "--samples", "4096", "--json"])
    doc = json.loads(as_json.output)
    # Corner windows hold 4 real inputs: the max of 4 normals, 6 arctan(sqrt 2) / pi^1.5 (closed form).
    assert doc["mean_map"][0][0] == pytest.approx(6 * math.atan(math.sqrt(2)) / math.pi**1.5, abs=1e-12)
    bad = runner.invoke(app, ["estimate", "maxpool(k=3,p=2)", "--size", "4"])
    assert bad.exit_code == 2


def test_list_shows_stride_and_padding_of_windows():
    out = CliRunner().invoke(app, ["list"]).output
    assert "s=k (stride)" in " ".join(out.replace("│", " ").split()) and "count_include_pad" in out


def test_estimate_says_how_each_estimate_was_made():
    out = invoke("estimate", "maxpool(k=3)", "--method", "montecarlo", "--samples", "20000")
    assert out.exit_code == 0, out.stdout
    assert "montecarlo: antithetic pairs (z, -z)" in out.stdout
    plain = invoke("estimate", "relu", "--method", "montecarlo", "--samples", "20000")
    assert "antithetic" not in plain.stdout


def test_timings_are_printed_apart_from_the_methods_times():
    shown = invoke("estimate", "relu", "--method", "closed", "--timings")
    assert shown.exit_code == 0
    assert "set-up, not in the methods' times: imports" in shown.output
    as_json = json.loads(invoke("estimate", "relu", "--method", "closed", "--timings", "--json").output)
    assert set(as_json["overheads"]) == {"imports", "kernels"}
    assert "overheads" not in json.loads(invoke("estimate", "relu", "--method", "closed", "--json").output)


# ---------------------------------------------------------------- --json and --csv


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_list_prints_json_and_csv():
    doc = json.loads(invoke("list", "--json").stdout)
    ops = {op["name"]: op for op in doc["ops"]}
    # Klambauer et al. 2017's selu constants are its defaults.
    alpha = next(p for p in ops["selu"]["parameter_list"] if p["name"] == "alpha")
    assert alpha["default"] == 1.6732632423543772 and alpha["required"] is False and alpha["type"] == "float"
    assert ops["relu"]["methods"] == "certified, closed, quadrature, qmc, montecarlo"
    assert ops["relu"]["parameters"] == ""
    assert ops["expr"]["methods"] == "quadrature, montecarlo"  # no ball arithmetic for a user's expression
    rows = _csv(invoke("list", "--csv").stdout)
    assert [r["op"] for r in rows] == [op["name"] for op in doc["ops"]]
    assert next(r for r in rows if r["op"] == "selu")["parameters"].startswith("alpha=1.6732632423543772 in [")


def test_tables_show_prints_json_and_csv_with_every_digit(monkeypatch):
    monkeypatch.chdir(REPO)
    doc = json.loads(invoke("tables", "show", "--json").stdout)
    assert doc["entries"] == json.loads((REPO / "tables" / "normprop.json").read_text())["entries"]
    rows = {r["spec"]: r for r in _csv(invoke("tables", "show", "--csv").stdout)}
    assert set(rows) == {e["spec"] for e in doc["entries"]}
    relu = rows["relu"]
    assert float(relu["mean"]) == pytest.approx(RELU_MEAN, abs=1e-16)  # read back to the last bit
    assert float(relu["std"]) == pytest.approx(RELU_STD, abs=1e-16)
    assert (relu["mu"], relu["sigma"], relu["method"], relu["agree"]) == ("0.0", "1.0", "certified", "True")


def test_gains_prints_csv():
    rows = _csv(invoke("gains", "--spec", "relu", "--spec", "tanh", "--csv").stdout)
    relu = rows[0]
    assert [r["spec"] for r in rows] == ["relu", "tanh"]
    assert float(relu["gain"]) == pytest.approx(math.sqrt(2), abs=1e-15)  # E[relu(X)^2] = 1/2
    assert float(relu["pytorch_value"]) == pytest.approx(math.sqrt(2), abs=1e-15)  # torch.nn.init: sqrt(2.0)
    assert rows[1]["pytorch_value"] == repr(5 / 3)  # torch.nn.init: 5.0 / 3


def test_estimate_size_prints_the_map_as_csv():
    rows = _csv(invoke("estimate", "maxpool(k=3,s=1,p=1)", "--size", "4", "--samples", "4096", "--csv").stdout)
    assert len(rows) == 16 and [(r["i"], r["j"]) for r in rows[:2]] == [("0", "0"), ("0", "1")]
    corner = rows[0]
    # Corner windows hold 4 real inputs: the max of 4 normals, 6 arctan(sqrt 2) / pi^1.5 (closed form).
    assert corner["where"] == "corners" and float(corner["mean"]) == pytest.approx(
        6 * math.atan(math.sqrt(2)) / math.pi**1.5, abs=1e-12
    )
    assert abs(float(corner["mc_mean"]) - float(corner["mean"])) < 4.5 * float(corner["mc_mean_se"])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["list", "--json", "--csv"], "choose one"),
        (["tables", "show", "--json", "--csv"], "choose one"),
        (["estimate", "relu", "--csv"], "without --size use --json"),
    ],
)
def test_output_formats_refused_in_one_line(args, fragment):
    assert_one_line_error(invoke(*args), fragment)


def test_list_says_certified_for_every_op_the_table_certifies():
    # The table's entries were computed by the methods themselves: an op certified there must say so in list.
    listed = {op["name"]: op["methods"] for op in json.loads(invoke("list", "--json").stdout)["ops"]}
    doc = json.loads((REPO / "tables" / "normprop.json").read_text())
    certified = {
        e["spec"].partition("(")[0] for e in doc["entries"] if "|" not in e["spec"] and e["method"] == "certified"
    }
    assert {"relu", "maxpool", "avgpool", "dropout", "mish"} <= certified
    assert not [name for name in certified if not listed[name].startswith("certified")]


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_tables_show_data_on_stdout_and_the_packaged_table_note_on_stderr(tmp_path, monkeypatch, option):
    monkeypatch.chdir(tmp_path)  # no ./tables here: the packaged table is read, and the note goes to stderr
    result = invoke("tables", "show", option)
    assert result.exit_code == 0 and "packaged with momentcalc" in result.stderr
    specs = [e["spec"] for e in json.loads((REPO / "tables" / "normprop.json").read_text())["entries"]]
    if option == "--json":
        assert [e["spec"] for e in json.loads(result.stdout)["entries"]] == specs
    else:
        assert [r["spec"] for r in _csv(result.stdout)] == specs
