"""`momentcalc propagate --model`: a named model's prediction beside measurement; bad input is one line, exit 2;
nothing is imported from the working folder."""

import sys

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from momentcalc.cli import app  # noqa: E402

MODEL = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))

def not_a_module():
    return 3

def broken():
    raise ValueError("the user's own error")

class Square(nn.Module):  # fc2(y * y): the product rule takes y and y as independent (Var y^2: 1 for 2)
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(32, 32, bias=False), nn.Linear(32, 32, bias=False)

    def forward(self, x):
        y = self.fc1(x)
        return self.fc2(y * y)

def square():
    torch.manual_seed(0)
    return Square()
"""


@pytest.fixture
def library(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "wtp_cli_models.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(lib))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work
    sys.modules.pop("wtp_cli_models", None)


def _run(*args):
    return CliRunner().invoke(app, ["propagate", *args])


def test_model_table_and_autoinit(library):
    result = _run("--model", "wtp_cli_models:build", "--input-shape", "64,32", "--autoinit")
    assert result.exit_code == 0, result.output
    assert "(before)" in result.output and "(after autoinit)" in result.output
    assert "pred/meas var" in result.output and "Linear" in result.output


def test_autoinit_measured_correction_is_printed(library):
    result = _run("--model", "wtp_cli_models:square", "--input-shape", "512,32", "--autoinit", "--measured")
    assert result.exit_code == 0, result.output
    assert "corrected by measurement after autoinit's prediction: fc2 (" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "wtp_cli_models"], "takes MODULE:CALLABLE"),
        (["--model", "wtp_cli_models:nothing", "--input-shape", "4,32"], "has no 'nothing'"),
        (["--model", "wtp_cli_models:not_a_module", "--input-shape", "4,32"], "returned int"),
        (["--model", "wtp_cli_models:broken", "--input-shape", "4,32"], "ValueError: the user's own error"),
        (["--model", "wtp_cli_models:build"], "declares no input size"),
        (["--model", "wtp_cli_models:build", "--input-shape", "1,32"], "batch of 2 or more"),
        (["--model", "wtp_cli_models:build", "--input-shape", "4,31"], "does not run on the example input"),
        (["--model", "no_such_module_x:build", "--input-shape", "4,32"], "no module 'no_such_module_x'"),
        (["--model", "wtp_cli_models:build", "--input-shape", "4,32", "--measured"], "give --autoinit with it"),
    ],
)
def test_bad_input_is_one_line(library, args, message):
    result = _run(*args)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_nothing_is_imported_from_the_working_folder(library, monkeypatch):
    marker = library / "ran"
    (library / "wtp_hostile.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(): pass\n")
    monkeypatch.syspath_prepend(str(library))  # as python -m puts the working folder first
    monkeypatch.syspath_prepend("")
    result = _run("--model", "wtp_hostile:build", "--input-shape", "4,32")
    assert result.exit_code == 2 and "working folder is not searched" in result.output
    assert not marker.exists()
    sys.modules.pop("wtp_hostile", None)


CNN = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1)), nn.Sequential(nn.Conv2d(8, 8, 3, padding=1))
    )  # no activation: an exact constant at a new law would cost seconds, and the plot is what is tested
"""


def test_model_plot_is_written(library):
    pytest.importorskip("matplotlib")
    (library.parent / "lib" / "wtp_cli_cnn.py").write_text(CNN)
    plot = library / "blocks.png"
    result = _run("--model", "wtp_cli_cnn:build", "--input-shape", "4,3,8,8", "--plot", str(plot))
    sys.modules.pop("wtp_cli_cnn", None)
    assert result.exit_code == 0, result.output
    assert f"plot written to {plot}" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # a PNG's signature
    from matplotlib import image

    height, width = image.imread(plot).shape[:2]
    assert (width, height) == (1600, 600)  # the figure's 16 x 6 inches at 100 dpi: three panels and a caption


def test_model_plot_refused_before_the_run(library):
    result = _run("--model", "wtp_cli_models:build", "--input-shape", "4,32", "--plot", "out.txt")
    assert result.exit_code == 2 and "--plot writes a .png or .svg" in result.output
    assert not (library / "out.txt").exists()
