"""The long set runs with the main suite's conftest: its helpers (mp_activations, naive, ...) importable, the same
environment for subprocesses (no warm server, no COLUMNS), the same refusal to skip an optional extra in CI."""

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "tests" / "conftest.py"
_spec = importlib.util.spec_from_file_location("momentcalc_tests_conftest", _path)
_main = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_main)

pytest_configure = _main.pytest_configure
pytest_sessionstart = _main.pytest_sessionstart
