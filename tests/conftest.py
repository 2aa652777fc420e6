import sys
from pathlib import Path

# tests/naive.py holds slow references; make it importable as `naive`.
sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the long part of a test matrix (deselect with -m 'not slow')")
