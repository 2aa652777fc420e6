"""Every command module imports with matplotlib or dask missing (torch present).

Why in tests_long/: each case imports every command module, torch included, in a fresh process (about 4 s of CPU
each); tests/test_cli_extras.py runs the same check with torch hidden and with every extra hidden.
"""

import pytest
from test_cli_extras import EXTRAS, TORCH
from test_cli_extras import test_every_command_module_imports_with_an_extra_missing as imports_with_one_missing


@pytest.mark.parametrize("hidden", [[e.module] for e in EXTRAS if e is not TORCH])
def test_every_command_module_imports_with_an_extra_missing(hidden):
    imports_with_one_missing(hidden)
