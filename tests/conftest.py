import sys
from pathlib import Path

# tests/naive.py holds slow references; make it importable as `naive`.
sys.path.insert(0, str(Path(__file__).parent))
