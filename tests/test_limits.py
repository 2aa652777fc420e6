"""Issue 13, "no single argument may exhaust the machine": each finding, as parametrized lists of inputs.

Peak memory and times are measured by bench/limits.py, not here: these tests check that the cost path
triggers (a refusal up front naming the limit and the faster way, or a run cut to fit, with a note) and
that Ctrl-C stops a run. Expected numbers come from the limits' definitions and by-hand arithmetic.
"""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from momentcalc import engine
from momentcalc.backward import exact_map, parse_layer, same_values_size
from momentcalc.cli import app
from momentcalc.estimators import driver, moments, qmc
from momentcalc.estimators.moments import Summary
from momentcalc.settings import DEFAULT_WORK, MAX_SAMPLES, PIPELINE_MAX, RunSettings

INTERRUPT_WITHIN_S = 5.0  # generous: the CLI leaves within ~0.1 s of SIGINT (bench/limits.py measures it)


# Each of these ran for minutes or hours, or ate the machine's memory (issue 13); now one line, exit 2, at once.
@pytest.mark.parametrize(
    "args, fragments",
    [
        (["estimate", "maxpool(k=3)", "--samples", "40000000000"], ["3.6e+11 normal draws", "samples <= 7635497415"]),
        (["estimate", "maxpool(n=1000000)", "--samples", "1000000"], ["1e+12 normal draws", "exact method"]),
        (["estimate", "maxpool(n=1000000)", "--method", "qmc", "--samples", "1000000"], ["normal draws"]),
        (["estimate", "maxpool(k=3)", "--size", "1000000000", "--samples", "10"], ["more than the 262,144"]),
        (["estimate", "maxpool(k=300,s=1)", "--size", "500"], ["--method quadrature"]),
        (["estimate", "avgpool(k=100,s=1,p=50)", "--size", "500"], ["one simulated map touches"]),
        (["estimate", " | ".join(["relu"] * 3000)], [f"at most {PIPELINE_MAX} stages, got 3000"]),
        (["estimate", "relu", "--method", "qmc", "--tol", "1e-300"], ["tol must be at least 1e-100"]),
        (["estimate", "relu", "--method", "qmc", "--tol", "1e-60"], ["tol=1e-60 would need about"]),
        (["backward", "maxpool(k=3,s=2)", "--size", "1000000"], ["7.28 TiB", "--size 10 gives the same values"]),
        (["backward", "conv(k=3,s=2,p=1)", "--size", "7", "--trials", "1000000000000"], ["--trials 2945793"]),
        (["backward", "conv(k=3,s=2,p=1,cin=4,cout=4)", "--size", "1000"], ["--trials 0"]),
        (["shape", "--i", str(10**41), "--k", "3"], ["i must be at most 10**40"]),
    ],
)
def test_costly_arguments_are_refused_up_front_with_one_line(args, fragments):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("i, expected", [(99999999999999999999, 99999999999999999997), (10**40, 10**40 - 2)])
def test_shape_of_a_huge_input_answers(i, expected):
    # o = floor((i - 3) / 1) + 1 = i - 2 (Dumoulin & Visin, Relationship 1)
    result = CliRunner().invoke(app, ["shape", "--i", str(i), "--k", "3", "--json"])
    assert result.exit_code == 0 and f'"output": {expected}' in result.stdout


@pytest.mark.parametrize(
    "per_sample, default, samples",
    [
        (1, 1 << 22, None),  # relu: the default run is well within the budget
        (9, 1 << 22, None),  # maxpool(k=3): 3.8e7 normals
        (10**6, 1 << 22, DEFAULT_WORK // 10**6 + DEFAULT_WORK // 10**6 % 2),  # maxpool(n=1e6): 268, even (pairs)
        (10**7, 1 << 22, 64),  # never fewer than MIN_CUT_SAMPLES
    ],
)
def test_default_runs_are_cut_to_the_work_budget_with_a_note(per_sample, default, samples):
    settings, notes = driver.within_budget(RunSettings(), per_sample, default)
    assert settings.samples == samples
    assert bool(notes) == (samples is not None)
    if notes:
        assert f"{samples} samples instead of the default {default}" in notes[0]


def test_tol_runs_reach_at_most_max_samples_normals():
    settings, _ = driver.within_budget(RunSettings(tol=1e-3), 1000, 1 << 22)
    assert settings.max_samples == MAX_SAMPLES // 1000


def test_a_tol_run_of_a_wide_window_pilots_enough_outputs_for_a_standard_error():
    # a chunk of maxpool(n=100000) is 2 outputs: the pilot alone had SE 0, "within" any tol, with no usable SE
    result = engine.estimate("maxpool(n=100000)", method="montecarlo", tol=1.0)
    assert result.estimates[0].samples >= 64 and result.estimates[0].mean_se > 0


def _round(points: int, se: float) -> Summary:
    return Summary(0.0, 1.0, se, se, points)


@pytest.mark.parametrize("rate", [0.5, 1.0, 1.5, 2.0])
def test_qmc_prediction_never_asks_more_than_the_rate_seen_needs(rate):
    """SE falling as n^-rate from 1e-4 at 2^14: tol 1e-8 needs 2^14 * 1e4^(1/rate) points; the prediction,
    optimistic on purpose, is at most that, so a reachable tol is never refused on its account."""
    rounds = [_round(2**14 * 2**j, 1e-4 * 2 ** (-rate * j)) for j in range(3)]
    truth = 2**14 * 1e4 ** (1 / rate)
    assert qmc.points_for(rounds[:1], 1e-8) <= truth
    assert qmc.points_for(rounds, 1e-8) <= truth


def test_qmc_prediction_refuses_an_unreachable_tol_after_the_first_round():
    assert qmc.points_for([_round(2**14, 1e-6)], 1e-300) > MAX_SAMPLES


def test_chunk_rows_folded_as_they_come_have_the_bits_of_one_merge_at_the_end():
    # spatial maps fold their rows batch by batch (memory); merge is a left fold, so nothing may change
    rng = np.random.default_rng(1)
    rows = np.stack(
        [
            [np.full(7, 8.0), rng.normal(size=7), rng.gamma(2.0, size=7), rng.normal(size=7), rng.gamma(3.0, size=7)]
            for _ in range(10)
        ]
    )
    folded = rows[:3]
    folded = moments.merge(folded)[None]
    folded = moments.merge(np.concatenate([folded, rows[3:7]]))[None]
    folded = moments.merge(np.concatenate([folded, rows[7:]]))[None]
    assert np.array_equal(moments.merge(folded), moments.merge(rows))


@pytest.mark.parametrize(
    "layer",
    [
        "maxpool(k=3,s=2)",
        "maxpool(k=2,s=3)",
        "avgpool(k=3,s=2,p=1)",
        "avgpool(k=3,s=2,p=1,count_include_pad=false)",
        "conv(k=3,s=2,p=1)",
        "conv(k=5,s=3,p=2)",
        "minpool(k=4,s=1,p=2)",
        "conv(k=2,s=4)",
    ],
)
def test_the_size_named_by_the_backward_refusal_has_the_same_values(layer):
    """The refusal of a huge backward map names a small side with the same distinct values: listed here
    against the maps it stands for, at every size from 40 to 63."""
    parsed = parse_layer(layer)
    for size in range(40, 64):
        small = same_values_size(parsed, size)
        values = {round(float(v), 12) for v in exact_map(parsed, size).ravel()}
        assert values == {round(float(v), 12) for v in exact_map(parsed, small).ravel()}


def _cli(*args: str) -> subprocess.Popen:
    # A child of a shell's background job inherits SIGINT ignored; restore the default so Python installs its handler.
    return subprocess.Popen(
        [sys.executable, "-m", "momentcalc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.parametrize(
    "args",
    [
        ("estimate", "relu", "--method", "montecarlo", "--samples", "60000000000"),
        ("backward", "conv(k=3,s=2,p=1)", "--size", "7", "--trials", "2900000"),
    ],
)
def test_ctrl_c_stops_a_long_run_with_one_line_and_exit_130(args):
    process = _cli(*args)
    time.sleep(4.0)  # past start-up, in the middle of the run (each runs for a minute or more)
    assert process.poll() is None, process.communicate()
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - sent < INTERRUPT_WITHIN_S
    assert process.returncode == 130
    assert "error: interrupted" in err and "Traceback" not in err
    assert out == ""


# The console script after Ctrl-C in a table build whose entries run in worker processes: Ctrl-C reaches the
# main process in the progress callback here (deterministic, where a signal's timing would not be).
_INTERRUPTED_BUILD = """
import sys
from momentcalc import tables
from momentcalc.cli import main

build = tables.build


def interrupted(progress=None, **ignored):
    def interrupt(done, total, spec):
        if done == 1:
            raise KeyboardInterrupt
    return build(interrupt, specs=("relu", "tanh", "sigmoid"), samples=1 << 14, jobs=2)


tables.build = interrupted
sys.argv = ["momentcalc", "tables", "build", "--dir", sys.argv[1]]
main()
"""


# Ctrl-C in a build with worker processes, in a process of its own: tests_long/test_long_interrupts.py.
