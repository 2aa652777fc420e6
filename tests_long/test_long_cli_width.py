"""solve, backward, propagate and cmap in a narrow terminal: every value whole, no line wider than the terminal.

Why in tests_long/: each case runs two or three commands in fresh processes at a pseudo-terminal (propagate imports
torch, cmap samples), about 21 s of CPU together; tests/test_cli_width.py checks estimate, tables show, gains and
list at the same widths in the main suite.
"""

import pytest
from test_cli_width import WIDTHS, as_json, in_terminal, whole
from test_cli_width import json_of as json_of  # the main suite's fixture: one --json run per command
from test_cli_width import test_every_number_shows_whole_in_a_narrow_terminal as every_number_whole


@pytest.mark.parametrize("columns", WIDTHS)
def test_cmap_shows_every_number_whole_in_a_narrow_terminal(columns, json_of):
    every_number_whole("cmap", columns, json_of)


@pytest.mark.parametrize("columns", WIDTHS)
def test_solve_and_backward_fit_a_narrow_terminal(columns):
    solve = ["solve", "selu(alpha=?,scale=?)", "--mean", "0", "--var", "1"]
    text = in_terminal(solve, columns)
    (solution,) = as_json(solve)["solutions"]
    # The root is Klambauer et al. 2017's selu constants; each value and its bound whole.
    numbers = [repr(solution["values"][k]) for k in ("alpha", "scale")] + [
        f"{solution['errors'][k]:.1e}" for k in ("alpha", "scale")
    ]
    assert "1.6732632423543772" in numbers and not [n for n in numbers if not whole(text, n)], text
    backward = ["backward", "conv(k=3,s=1,p=1,cin=1,cout=1)", "--size", "12", "--trials", "0"]
    text = in_terminal(backward, columns)
    # A 12 x 12 map does not fit: its distinct values, interior 1, edges 6/9, corners 4/9 of a 3 x 3 kernel's taps.
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns, text
    assert all(whole(text, f"{v:.6g}") for v in (1.0, 6 / 9, 4 / 9)), text


@pytest.mark.parametrize("columns", WIDTHS)
def test_propagate_fits_a_narrow_terminal(columns):
    pytest.importorskip("torch")
    args = ["propagate", "--depth", "2", "--width", "4", "--size", "4", "--batch", "2", "--pool-every", "2"]
    text = in_terminal(args, columns)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns, text
    doc = as_json(args)
    # Every value of the table (three decimals for mean and std, as the table prints them) is there whole.
    layers = doc["variants"]["normprop"]
    assert all(whole(text, f"{layer['std']:.3f}") for layer in layers), text
