"""The torch extra stays optional: `import momentcalc` (and the CLI) never import torch or matplotlib."""

import subprocess
import sys


def test_import_momentcalc_never_imports_torch_or_matplotlib():
    code = (
        "import sys, momentcalc, momentcalc.constants, momentcalc.cli, momentcalc.gains;"
        "heavy = sorted(m for m in ('torch', 'matplotlib') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
