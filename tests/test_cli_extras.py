"""Optional extras: with any of them missing every command module imports, and a command that needs one refuses
in one line naming it, exit 2, before any work; every module the package imports is declared.

The missing extras are hidden in a subprocess by a finder first on sys.meta_path that refuses their names (as
`import torch` does where torch is not installed), whatever this environment has installed.
"""

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from momentcalc.cli._extras import DASK, EXTRAS, PLOTS, TORCH, missing_message

REPO = Path(__file__).resolve().parent.parent

HIDING = """
import importlib.abc, json, pkgutil, sys

HIDDEN = set(sys.argv[1].split(","))


class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Hidden())
"""

IMPORT_ALL = (
    HIDING
    + """
import momentcalc.cli

for module in pkgutil.iter_modules(momentcalc.cli.__path__):
    __import__("momentcalc.cli." + module.name)
for name in ("engine", "solve", "cmap", "gains", "tables", "spatial", "backward", "estimators.cluster"):
    __import__("momentcalc." + name)
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in HIDDEN)))
"""
)

RUN = (
    HIDING
    + """
from momentcalc.cli import app

code = app(sys.argv[3:], prog_name="momentcalc", standalone_mode=False)
loaded = sorted(m for m in ("numba", "scipy", "flint") if m in sys.modules)
with open(sys.argv[2], "w") as report:
    json.dump({"code": code, "loaded": loaded}, report)
"""
)


def hidden_run(code: str, hidden: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, ",".join(hidden), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


# Torch hidden, and all of them. With torch present (matplotlib or dask hidden) each run imports torch, about 4 s
# of CPU: those cases run in tests_long/test_long_cli_extras.py (the suite's 3-minute budget).
@pytest.mark.parametrize("hidden", [[TORCH.module], [e.module for e in EXTRAS]])
def test_every_command_module_imports_with_an_extra_missing(hidden):
    done = hidden_run(IMPORT_ALL, hidden)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []  # none of them, not even as a lazy module waiting in sys.modules


def refuses(tmp_path, extra, feature, *args):
    """The command, run with extra hidden: one line naming the extra, exit 2, nothing printed, nothing computed."""
    report = tmp_path / "report.json"
    done = hidden_run(RUN, [extra.module], str(report), *args)
    assert done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines() == ["error: " + missing_message(extra, feature)]
    outcome = json.loads(report.read_text())
    assert outcome == {"code": 2, "loaded": []}, outcome  # nothing computed: numba, scipy and flint not loaded
    return done


def test_cmap_plot_without_matplotlib(tmp_path):
    refuses(tmp_path, PLOTS, "cmap --plot", "cmap", "relu", "--c", "0.5", "--plot", str(tmp_path / "c.png"))
    assert not (tmp_path / "c.png").exists()
    assert "pip install 'momentcalc[plots]'" in missing_message(PLOTS, "cmap --plot")


@pytest.mark.parametrize(
    "args",
    [
        ["estimate", "relu", "--scheduler", "local:2"],
        ["tables", "build", "--scheduler", "local:2", "--dir", "{tmp}/tables"],
    ],
)
def test_a_scheduler_without_dask(tmp_path, args):
    refuses(tmp_path, DASK, "--scheduler", *[a.format(tmp=tmp_path) for a in args])
    assert not (tmp_path / "tables").exists()
    assert "pip install 'momentcalc[dask]'" in missing_message(DASK, "--scheduler")


def test_propagate_without_torch(tmp_path):
    refuses(tmp_path, TORCH, "propagate", "propagate", "--depth", "1")
    assert "'momentcalc[torch]'" in missing_message(TORCH, "propagate")


# propagate --plot without matplotlib (a process that imports torch): tests_long/test_long_cli_extras.py.


def test_the_missing_torch_stand_in_fails_as_a_missing_module_and_hides_its_metadata():
    # What hypothesis's pytest plugin does to every module in sys.modules: getattr(module, "__file__", None).
    code = (
        HIDING
        + """
from momentcalc.cli import propagate
assert getattr(propagate.mtorch, "__file__", None) is None and not hasattr(propagate.mtorch, "__path__")
try:
    propagate.mtorch.signal
except ModuleNotFoundError as missing:
    print(missing)
"""
    )
    done = hidden_run(code, ["torch"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "momentcalc.torch needs torch, which is not installed"


# ---------------------------------------------------------------- declared dependencies

# Modules of extras, and where the package may import them (the commands check for them first: _extras.require).
EXTRA_IMPORTS = {"torch": ("momentcalc/torch/",), "matplotlib": ("momentcalc/torch/plot.py", "momentcalc/cli/cmap.py")}
# Imported only where typer has no copy of click of its own (older typer, which depends on click).
FALLBACKS = {"click"}
# Third-party packages a comparison imports where the user has installed them, never required (no extra pins them,
# since each pins its own torch): the transformer preset's unit-scaling variant, refused in one line without it.
OPTIONAL_IMPORTS = {"unit_scaling": ("momentcalc/torch/transformer.py",)}


def _imported(path: Path) -> set[str]:
    """Top-level names of the modules a file imports: import statements and lazy_module("NAME") calls."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_module":
            if node.args and isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
    return {n.partition(".")[0] for n in names}


def _requirement_name(text: str) -> str:
    return re.split(r"[\s\[<>=!~;]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _core_distributions() -> set[str]:
    """The core dependencies of pyproject.toml and, installed, what they require in turn (numba: llvmlite)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found, todo = set(), [_requirement_name(r) for r in project["dependencies"]]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in requires if "extra ==" not in r]
    return found


def test_every_module_the_package_imports_is_a_declared_dependency():
    core = _core_distributions()
    assert "mpmath" in core  # solve's certified Newton steps need it at run time
    providers = importlib.metadata.packages_distributions()
    undeclared = []
    for path in sorted((REPO / "momentcalc").rglob("*.py")):
        where = path.relative_to(REPO).as_posix()
        for name in (
            _imported(path)
            - set(sys.stdlib_module_names)
            - {"momentcalc", "momentcalc_launch", "momentcalc_client"}
            - FALLBACKS
        ):
            if name in OPTIONAL_IMPORTS:
                if not where.startswith(OPTIONAL_IMPORTS[name]):
                    undeclared.append(f"{where}: {name} (optional, imported outside {OPTIONAL_IMPORTS[name]})")
            elif name in EXTRA_IMPORTS:
                if not where.startswith(EXTRA_IMPORTS[name]):
                    undeclared.append(f"{where}: {name} (an extra's, imported outside {EXTRA_IMPORTS[name]})")
            elif not {d.lower().replace("_", "-") for d in providers.get(name, [])} & core:
                undeclared.append(f"{where}: {name}")
    assert not undeclared
