"""Build, write, load and check the generated tables of constants.

A table is a JSON document: a header (with the sha256 of its own canonical
text), a format version, the generator's version, the settings of the build,
and one entry per (spec, input) that is ``Result.to_dict()`` of
``engine.estimate``. Writing is byte-deterministic (tablefile.dumps: sorted
keys, ``repr`` floats) and atomic. The one thing that cannot be deterministic
is timing (the ``seconds`` fields), so comparison with a fresh build ignores
it, and ``write`` leaves alone a canonical file whose content matches under
those rules.

Reading a file (format version, digest, missing or corrupt file) is
tablefile's; this module adds schema validation by jsonschema on top. It
imports neither numba nor jsonschema at import time: the CLI imports it to
build its help, and must stay fast.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from . import __version__, crosscheck, processes
from ._lazy import lazy_module
from .errors import MomentcalcError, WriteError
from .settings import DEFAULT_SAMPLES
from .tablefile import (
    BUILD_COMMAND,
    DEFAULT_DIR,
    DIGEST_KEY,
    ENTRY_FIELDS,
    ESTIMATE_FIELDS,
    FORMAT_VERSION,
    HEADER,
    INTERVAL_FIELDS,
    SCHEMA_NAME,
    TABLE_NAME,
    canonical_json,
    corrupt,
    default_path,
    digest_problem,
    dumps,
    parse,
    read,
    read_text,
    schema,
)

# The CLI imports this module to build its help: what is heavy loads on first use.
engine = lazy_module("momentcalc.engine")  # numba: only when a table is really built
cluster = lazy_module("momentcalc.estimators.cluster")  # with engine: only when a table is built
driver = lazy_module("momentcalc.estimators.driver")  # numba: in build's worker processes
jsonschema = lazy_module("jsonschema")  # about 0.1 s: only when a table is checked

# What a NormProp network needs, in the order the table lists them.
DEFAULT_SPECS: tuple[str, ...] = (
    "relu",
    "sigmoid",
    *(f"maxpool(k={k})" for k in (2, 3, 4, 5)),
    *(f"avgpool(k={k})" for k in (2, 3, 4, 5)),
    *(f"dropout(p={p},scale={s})" for s in ("none", "sqrt", "inverse") for p in (0.5, 0.8, 0.9)),
    # What a NormProp CNN actually pools: ReLU outputs, renormalized, then 3x3 max.
    "relu | normalize | maxpool(k=3)",
    # Every other activation with its usual parameters.
    *(
        "tanh",
        "gelu",
        "gelu(approximate=tanh)",
        "silu",
        "elu",
        "celu",
        "selu",
        "softplus",
        "leaky_relu",
        "mish",
        "hardswish",
        "hardsigmoid",
        "hardtanh",
        "relu6",
        "softsign",
        "erf",
        "abs",
        "log_sigmoid",
        "identity",
    ),
    # Ops of several inputs at the parameters people use.
    *("glu", "swiglu", "geglu", "reglu"),
    *(f"{norm}(d={d})" for norm in ("rmsnorm", "layernorm") for d in (64, 768, 4096)),
    *(f"lppool(p=2,k={k})" for k in (2, 3)),
    *(f"residual(f=relu | normalize,tau={tau})" for tau in (0.1, 0.5)),
    *(f"softmax(n={n})" for n in (16, 64, 256, 1024, 4096)),
)

_IGNORED = frozenset({"seconds"})  # timing: never reproducible

# How far a regenerated number may be from the recorded one: ULPS units in the last place of
# its scale, the size of the values that were summed or cancelled to get it (see scale_of).
#
# What varies between platforms, for one set of versions of numba, scipy and python-flint:
# - certified: nothing. Arb computes with rigorously rounded arithmetic of its own, not the
#   platform's libm, and the doubles are rounded from its balls: a certified record (the
#   estimate, and an entry whose value of record it is) must regenerate bit for bit.
# - closed, quadrature: scipy's and libm's special functions may differ in their last bits; a
#   mean that cancels to ~1e-17 (an odd function's, truly 0) moves by ulps of the scale, not of
#   its own size.
# - montecarlo, qmc: the draws are integer arithmetic and chunks merge in a fixed order (the
#   same bits on any thread count, tests/test_driver.py), but FMA contraction (block_ops'
#   "contract") and LLVM's split of a block's sums into vector lanes ("reassoc": as many lanes
#   as the CPU's vectors hold) change how the sums round. Means, stds and grad_sq move by ulps
#   of their scale; SEs, functions of the same sums, by less (a 3e-4 SE moved by 4e-19).
# Measured against the committed table (built on an AVX2+FMA CPU) by a build for a generic
# x86-64 CPU (NUMBA_CPU_NAME=generic: SSE2, 2 lanes, no FMA): 111 of 1432 numbers differ, all
# Monte Carlo, the worst by 9.2 ulps of its scale (dropout(p=0.5,scale=none)'s mean); closed,
# quadrature and certified bit for bit. 32 leaves a factor 3.5 for wider vectors and other libms,
# and still catches a Monte Carlo mean of order 1 changed in its 14th digit.
ULPS = 32

EntryProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class WriteResult:
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    removed: tuple[Path, ...] = ()  # temporary files a killed build left behind


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    differences: tuple[str, ...]
    command: str  # the exact command that regenerates the files


# ---------------------------------------------------------------- building


def build(
    progress: EntryProgress | None = None,
    specs: tuple[str, ...] = DEFAULT_SPECS,
    seed: int = 0,
    samples: int | None = None,
    scheduler=None,
    jobs: int | None = None,
    timeout: float | None = None,
) -> dict:
    """Estimate every spec at N(0, 1) by every applicable method; return the table document.

    progress(done, total, spec) is called before each entry is waited for and once at the end (spec '').
    scheduler: run the Monte Carlo chunks of every entry on one Dask cluster (engine.estimate), same bits;
    timeout: its waits' bound in seconds (engine.estimate).
    jobs: processes that estimate entries side by side, the CPUs shared out among them (default: this process
    alone; the CLI starts one per CPU; ignored with a scheduler, whose cluster runs the Monte Carlo). The entries are
    the same to the bit for any number: each is estimated on its own, and Monte Carlo gives the same bits on any
    number of threads. A script that asks for more than one needs the `if __name__ == "__main__":` guard
    (processes.py: the workers are spawned).
    """
    jobs = 1 if scheduler is not None else max(1, min(jobs or 1, len(specs)))
    threads = partial(_worker_threads, max(1, processes.cpus() // jobs))
    groups = _families(specs) if jobs > 1 else [[i] for i in range(len(specs))]
    where = {i: (k, j) for k, group in enumerate(groups) for j, i in enumerate(group)}
    estimate = partial(_estimate_group, seed=seed, samples=samples)
    entries, arrived = [], []
    with cluster.running_on(scheduler, timeout), processes.mapper(jobs, threads) as map_groups:
        results = map_groups(estimate, [tuple(specs[i] for i in group) for group in groups])
        for done, text in enumerate(specs):
            if progress is not None:
                progress(done, len(specs), text)
            k, j = where[done]
            while len(arrived) <= k:  # the groups come in the order they were handed out
                arrived.append(next(results))
            entries.append(arrived[k][j])
    if progress is not None:
        progress(len(specs), len(specs), "")
    return {
        "$comment": HEADER,
        "format_version": FORMAT_VERSION,
        "generator": {"name": "momentcalc", "version": __version__, "command": BUILD_COMMAND},
        "settings": {"seed": seed, "samples": samples or DEFAULT_SAMPLES, "z": crosscheck.DEFAULT_Z},
        "entries": entries,
    }


def _families(specs: tuple[str, ...]) -> list[list[int]]:
    """The specs' indices grouped by their first op, the largest group first: the entries of a family share most of
    their kernels, and a worker process compiles a kernel in a first run whatever the other has compiled. Handed
    out one at a time, both workers compiled the shared ones: a cold `tables build` of the default table took
    26.8-28.5 s on 2 cores, against 22.9-25.0 s by family (measured side by side)."""
    families: dict[str, list[int]] = {}
    for i, text in enumerate(specs):
        families.setdefault(text.split("(")[0].split("|")[0].strip(), []).append(i)
    return sorted(families.values(), key=len, reverse=True)


def _estimate_group(texts: tuple[str, ...], seed: int, samples: int | None) -> list[dict]:
    return [_estimate_entry(text, seed, samples) for text in texts]


def _estimate_entry(text: str, seed: int, samples: int | None) -> dict:
    # Every exact method and Monte Carlo, always: auto leaves out what it need not run, a table keeps its methods.
    methods = engine.methods.EVERY_EXACT_AND_MONTECARLO
    return _entry(engine.estimate(text, seed=seed, samples=samples, methods=methods).to_dict())


def _worker_threads(count: int) -> None:
    driver.use_threads(count)


def _entry(result: dict) -> dict:
    entry = {k: result[k] for k in ENTRY_FIELDS}
    entry["estimates"] = [{k: e[k] for k in ESTIMATE_FIELDS} for e in result["estimates"]]
    # The certified enclosures, where that method applies: it is then the value of record of every quantity.
    certified = next((e for e in result["estimates"] if e["method"] == "certified"), {})
    entry.update({k: certified.get(k) for k in INTERVAL_FIELDS})
    return _clean(entry)


def _clean(value, where: str = "entry"):
    """Plain JSON types only; finite floats; seconds rounded (they are noise anyway)."""
    if isinstance(value, dict):
        return {k: (round(v, 4) if k in _IGNORED else _clean(v, f"{where}.{k}")) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, where) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise MomentcalcError(f"refusing to write a non-finite number ({number!r}) at {where}")
    return number + 0.0  # turns -0.0 into 0.0


# ---------------------------------------------------------------- writing


def write(doc: dict, directory: str | os.PathLike = DEFAULT_DIR, name: str = TABLE_NAME) -> WriteResult:
    """Write the table and schema.json atomically; leave alone a file that already matches.

    "Matches" means what check() means: the file is byte for byte its own canonical
    serialization (digest included), valid, and equal to doc to a few ulps ignoring
    timing, so a rebuild makes no diff. Temporary files of a killed build are removed.
    """
    directory = ensure_writable(directory)
    removed = _remove_stale_temporaries(directory, (name, SCHEMA_NAME))
    table_text, schema_text = dumps(doc), canonical_json(schema())
    written, unchanged = [], []
    for path, text, same in (
        (directory / name, table_text, lambda p: _table_matches(p, doc)),
        (directory / SCHEMA_NAME, schema_text, lambda p: read_text(p) == schema_text),
    ):
        if path.exists() and _safe(same, path):
            unchanged.append(path)
        else:
            _atomic_write(path, text)
            written.append(path)
    return WriteResult(tuple(written), tuple(unchanged), removed)


def ensure_writable(directory: str | os.PathLike) -> Path:
    """Create the directory if needed and prove a file can be written there."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as why:
        raise MomentcalcError(f"cannot write tables to {str(directory)!r}: {why.strerror or why}") from None
    return directory


def _table_matches(path: Path, doc: dict) -> bool:
    text = read_text(path)
    old = read(path)
    return text == dumps(old) and not validate(old) and not compare(old, doc, path.name)


def _safe(predicate, path: Path) -> bool:
    """A file we cannot read or parse simply does not match: it gets replaced."""
    try:
        return predicate(path)
    except (OSError, MomentcalcError, UnicodeDecodeError):
        return False


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_stale_temporaries(directory: Path, names: tuple[str, ...]) -> tuple[Path, ...]:
    # A write lasts milliseconds and builds do not share a directory, so a temporary file found
    # before writing was left by a build killed between mkstemp and os.replace.
    stale = sorted(p for name in names for p in directory.glob(f"{_temporary_prefix(Path(name))}*.tmp"))
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as why:
            raise MomentcalcError(
                f"cannot remove the stale temporary file {str(path)!r}: {why.strerror or why}"
            ) from None
    return tuple(stale)


def _atomic_write(path: Path, text: str) -> None:
    # A temp file in the same directory, then os.replace: a reader (or a killed
    # build) sees either the old file or the new one, never half of one.
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    except OSError as why:
        raise MomentcalcError(f"cannot write {str(path)!r}: {why.strerror or why}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checked-in table is world-readable
        os.replace(tmp, path)
    except BaseException as why:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(why, OSError):  # a full disk, a file size limit: the old file stays as it was
            raise WriteError(f"cannot write {str(path)!r}: {why.strerror or why}") from None
        raise


# ---------------------------------------------------------------- reading
# read(path) is tablefile.read: parse, check the format version and the digest; no schema.


def validate(doc: dict) -> list[str]:
    """Every way the document breaks the schema (by jsonschema), or a key is repeated; [] when valid."""

    validator = jsonschema.Draft202012Validator(schema())
    problems = [
        f"schema violation at {'/'.join(map(str, error.absolute_path)) or 'top level'}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if not problems:
        seen = set()
        for entry in doc["entries"]:
            key = entry_key(entry)
            if key in seen:
                problems.append(f"entry {describe(key)} appears more than once")
            seen.add(key)
    return problems


def load(path: str | os.PathLike) -> dict:
    """Read and validate a table; raise MomentcalcError saying what is wrong with it."""
    doc = read(path)
    problems = validate(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise corrupt(path, f"{problems[0]}{more}")
    return doc


def entry_key(entry: dict) -> tuple[str, float, float]:
    return entry["spec"], float(entry["input"]["mu"]), float(entry["input"]["sigma"])


def describe(key: tuple[str, float, float]) -> str:
    spec, mu, sigma = key
    return f"'{spec}' at N({mu:g}, {sigma:g}^2)"


def table_directory(directory: str | os.PathLike | None) -> tuple[Path, bool]:
    """The directory to read: the one given; else ./tables; else the table packaged with momentcalc.

    Returns (directory, packaged): packaged is True when ./tables does not exist and the
    packaged table (tablefile.default_path: momentcalc/_tables in a wheel, tables/ of a
    source checkout) is read instead, so `tables show` and `check` work from any folder.
    """
    if directory is not None:
        return Path(directory), False
    if DEFAULT_DIR.is_dir():
        return DEFAULT_DIR, False
    return default_path().parent, True


# ---------------------------------------------------------------- checking


def check(
    directory: str | os.PathLike = DEFAULT_DIR,
    regenerated: dict | None = None,
    progress: EntryProgress | None = None,
    jobs: int | None = None,
) -> CheckResult:
    """Compare the files in directory with a fresh build (or the given one).

    Raises MomentcalcError when a file cannot be read as a table at all
    (unreadable, not JSON, another format version); everything else is a
    difference in the result: any edit of the file (its digest, its canonical
    bytes) and any number that moved by more than a few ulps.
    """
    directory = Path(directory)
    table_path = directory / TABLE_NAME
    recorded = None
    if table_path.exists():  # fail fast, before the build
        text = read_text(table_path)
        duplicates: list[str] = []
        recorded = parse(table_path, text, object_pairs_hook=lambda pairs: _no_duplicates(pairs, duplicates))
    fresh = regenerated if regenerated is not None else build(progress, jobs=jobs)
    if recorded is None:
        differences = [f"{TABLE_NAME}: missing"]
    else:
        differences = _check_text(text, recorded, duplicates) + _check_table(table_path, recorded, fresh)
    differences += _check_schema(directory / SCHEMA_NAME)
    return CheckResult(not differences, tuple(differences), regenerate_command(directory))


def regenerate_command(directory: Path) -> str:
    if Path(directory) == DEFAULT_DIR:
        return BUILD_COMMAND
    return f"{BUILD_COMMAND} --dir {shlex.quote(str(directory))}"


def _no_duplicates(pairs: list[tuple[str, object]], duplicates: list[str]) -> dict:
    """object_pairs_hook: json keeps the last of a repeated key silently; note each one."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        duplicates += sorted({k for k, _ in pairs if sum(1 for j, _ in pairs if j == k) > 1})
    return obj


def _check_text(text: str, recorded: dict, duplicates: list[str]) -> list[str]:
    """The file against its own canonical serialization: digest, key order, indent, number spelling."""
    lines = [f"{TABLE_NAME}: the key {key!r} appears twice in one object" for key in duplicates]
    problem = digest_problem(text)
    if problem:
        lines.append(f"{TABLE_NAME}: {problem}")
    # Line by line, the digest line aside (reported above): where the spelling differs.
    digest_line = f'  "{DIGEST_KEY}": '
    ours = [(number, line) for number, line in enumerate(text.split("\n"), 1) if not line.startswith(digest_line)]
    canonical = [line for line in dumps(recorded).split("\n") if not line.startswith(digest_line)]
    if [line for _, line in ours] != canonical:
        at = next((i for i, ((_, a), b) in enumerate(zip(ours, canonical)) if a != b), min(len(ours), len(canonical)))
        number, mine = ours[at] if at < len(ours) else ((ours[-1][0] + 1) if ours else 1, "(end of file)")
        expected = canonical[at] if at < len(canonical) else "(end of file)"
        lines.append(
            f"{TABLE_NAME}: not in canonical form (sorted keys, two-space indent, repr numbers): line {number} "
            f"is {mine.strip()[:80]!r} where the canonical text has {expected.strip()[:80]!r}"
        )
    return lines


def _check_table(path: Path, doc: dict, fresh: dict) -> list[str]:
    problems = validate(doc)
    if problems:
        return [f"{path.name}: {p}" for p in problems]
    lines = compare(doc, fresh, path.name)
    lines += [
        f"{path.name}: entry {describe(entry_key(e))}: its estimates disagree ({', '.join(e['disagreements'])})"
        for e in doc["entries"]
        if not e["agree"]
    ]
    return lines


def _check_schema(path: Path) -> list[str]:
    if not path.exists():
        return [f"{path.name}: missing"]
    try:
        text = read_text(path)  # with read_text's size cap
    except MomentcalcError as why:
        return [f"{path.name}: unreadable ({why})"]
    if text == canonical_json(schema()):
        return []
    try:
        lines = _diff(json.loads(text), schema(), path.name, {})
    except json.JSONDecodeError as why:
        return [f"{path.name}: not JSON ({why})"]
    return lines or [f"{path.name}: not in canonical form (sorted keys, two-space indent)"]


def compare(recorded: dict, fresh: dict, label: str = TABLE_NAME) -> list[str]:
    """Lines describing how the recorded document differs from a fresh one; [] when they match.

    Entries are matched by (spec, mu, sigma) and estimates by method, so an
    added, removed or reordered item is reported by name, not by position.
    The digest is not compared (timing is in it): check() verifies it against the file.
    """
    lines = _diff(_without(recorded, "entries", DIGEST_KEY), _without(fresh, "entries", DIGEST_KEY), label, {})
    old = {entry_key(e): e for e in recorded["entries"]}
    new = {entry_key(e): e for e in fresh["entries"]}
    for key in (k for k in old if k not in new):
        lines.append(f"{label}: entry {describe(key)} is in the file but not in the regenerated table")
    for key in (k for k in new if k not in old):
        lines.append(f"{label}: entry {describe(key)} is missing from the file")
    if list(k for k in old if k in new) != list(k for k in new if k in old):
        lines.append(f"{label}: entries are not in the order the build writes them")
    for key in (k for k in new if k in old):
        lines += _diff_entry(old[key], new[key], f"{label}: entry {describe(key)}")
    return lines


def _diff_entry(old: dict, new: dict, where: str) -> list[str]:
    lines = _diff(_without(old, "estimates"), _without(new, "estimates"), where, new)
    by_method_old = {e["method"]: e for e in old["estimates"]}
    by_method_new = {e["method"]: e for e in new["estimates"]}
    if list(by_method_old) != list(by_method_new):
        lines.append(
            f"{where}: estimates by {', '.join(by_method_old)} in the file, by {', '.join(by_method_new)} regenerated"
        )
    for method in (m for m in by_method_new if m in by_method_old):
        lines += _diff(
            by_method_old[method], by_method_new[method], f"{where}: {method} estimate", by_method_new[method]
        )
    return lines


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def _diff(old, new, where: str, record: dict) -> list[str]:
    """Recursive comparison; numbers to ULPS ulps of their scale in record (the regenerated one), 'seconds' ignored."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(old.keys() | new.keys()):
            if key in _IGNORED:
                continue
            if key not in new:
                lines.append(f"{where}: {key} is in the file but not regenerated")
            elif key not in old:
                lines.append(f"{where}: {key} is missing from the file")
            else:
                lines += _diff_value(old[key], new[key], f"{where}: {key}", record, key)
        return lines
    return _diff_value(old, new, where, record, None)


def _diff_value(old, new, where: str, record: dict, key: str | None) -> list[str]:
    if isinstance(old, dict) or isinstance(new, dict):
        return (
            _diff(old, new, where, record)
            if isinstance(old, dict) and isinstance(new, dict)
            else [f"{where}: file has {old!r}, regenerated {new!r}"]
        )
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: file has {old!r}, regenerated {new!r}"]
        return [
            line for i, (a, b) in enumerate(zip(old, new)) for line in _diff_value(a, b, f"{where}[{i}]", record, key)
        ]
    # The type too: 4194304.0 is not the integer 4194304, and -0.0 is not 0.0.
    if type(old) is not type(new) or (old == 0 == new and math.copysign(1, old) != math.copysign(1, new)):
        return [f"{where}: file has {old!r}, regenerated {new!r}"]
    if isinstance(old, float):
        limit = allowed(record, key, old, new)
        if abs(old - new) <= limit:
            return []
        return [
            f"{where}: file has {old!r}, regenerated {new!r} (differs by {abs(old - new):.3g}, tolerance {limit:.3g})"
        ]
    if old != new:
        return [f"{where}: file has {old!r}, regenerated {new!r}"]
    return []


def allowed(record: dict, key: str | None, recorded: float, regenerated: float) -> float:
    """How far record[key] may move when regenerated on another platform (see ULPS)."""
    # A certified record (the certified estimate, or an entry whose value of record it is,
    # as it is wherever it applies) is the same bits on every platform.
    if record.get("method") == "certified":
        return 0.0
    return tolerance(recorded, regenerated, scale_of(record, key))


def tolerance(recorded: float, regenerated: float, scale: float = 0.0) -> float:
    """How far a regenerated number may move: ULPS ulps of the larger of the two numbers and their scale."""
    return ULPS * math.ulp(max(abs(recorded), abs(regenerated), scale))


def scale_of(record: dict, key: str | None) -> float:
    """The size of the values summed or cancelled to get record[key]: for the mean and std, their
    uncertainties and intervals, the output's root mean square sqrt(mean^2 + std^2); for grad_sq's
    family, grad_sq (a mean of squares, nothing cancels); for anything else, the number itself."""
    family = "grad_sq" if key and key.startswith("grad_sq") else "moments" if key and key.startswith(_MOMENTS) else ""
    if family == "grad_sq":
        return abs(record.get("grad_sq") or 0.0)
    if family == "moments":
        return math.hypot(record.get("mean") or 0.0, record.get("std") or 0.0)
    return 0.0


_MOMENTS = ("mean", "std")
