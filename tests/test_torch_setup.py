"""The torch extra stays optional: `import momentcalc` (and the CLI) never import torch or matplotlib."""

import os
import subprocess
import sys
from pathlib import Path


def test_import_momentcalc_never_imports_torch_or_matplotlib():
    code = (
        "import sys, momentcalc, momentcalc.constants, momentcalc.cli, momentcalc.gains;"
        "heavy = sorted(m for m in ('torch', 'matplotlib') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_momentcalc_torch_is_whole_when_torch_is_imported_after_the_cli():
    # The CLI holds handles on momentcalc.torch for `propagate`; a LazyLoader module waiting in sys.modules was
    # executed by a sys.modules scan in the middle of `import torch` and left half-executed (no predict, autoinit,
    # compare), which broke whichever test imported them next in the same process.
    code = (
        "import momentcalc.cli, torch;"
        "from momentcalc.torch import autoinit, compare, predict;"
        "print(callable(autoinit) and callable(compare) and callable(predict))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]


def test_propagate_without_torch_is_one_line_and_exit_2(tmp_path):
    # A torch that cannot be imported, first on the path: the command says how to get it.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ModuleNotFoundError('no torch here', name='torch')\n")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo)])}
    out = subprocess.run(
        [sys.executable, "-m", "momentcalc", "propagate", "--depth", "1"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "error: propagate needs PyTorch, which is not installed: "
        "pip install torch==2.13.0 'momentcalc[torch]' (torch 2.13.0: a CPU build)"
    ]
