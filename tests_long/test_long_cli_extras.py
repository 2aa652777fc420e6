"""Every command module imports with matplotlib or dask missing (torch present); propagate --plot without
matplotlib.

Why in tests_long/: each case imports every command module (or runs propagate), torch included, in a fresh process
(about 3-4 s of CPU each); tests/test_cli_extras.py runs the import check with torch hidden and with every extra
hidden, and cmap --plot without matplotlib.
"""

import json

import pytest
from test_cli_extras import EXTRAS, PLOTS, RUN, TORCH, hidden_run, missing_message
from test_cli_extras import test_every_command_module_imports_with_an_extra_missing as imports_with_one_missing


@pytest.mark.parametrize("hidden", [[e.module] for e in EXTRAS if e is not TORCH])
def test_every_command_module_imports_with_an_extra_missing(hidden):
    imports_with_one_missing(hidden)


def test_propagate_plot_without_matplotlib(tmp_path):
    pytest.importorskip("torch")
    report = tmp_path / "report.json"
    plot = tmp_path / "p.png"
    done = hidden_run(RUN, [PLOTS.module], str(report), "propagate", "--depth", "1", "--plot", str(plot))
    assert done.stdout == "" and done.stderr.splitlines() == ["error: " + missing_message(PLOTS, "propagate --plot")]
    assert json.loads(report.read_text())["code"] == 2 and not plot.exists()
