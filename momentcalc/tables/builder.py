"""Build the table document: every default spec estimated at N(0, 1) by every exact method and Monte Carlo.

Entries are estimated in worker processes side by side where asked (processes.py), a family of specs to a worker
so that it compiles their shared kernels once; each entry is the same to the bit for any number of workers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from functools import partial

from .. import __version__, crosscheck, processes
from .._lazy import lazy_module
from ..errors import MomentcalcError
from ..settings import DEFAULT_SAMPLES
from ..tablefile import BUILD_COMMAND, ENTRY_FIELDS, ESTIMATE_FIELDS, FORMAT_VERSION, HEADER, INTERVAL_FIELDS
from .differences import IGNORED

engine = lazy_module("momentcalc.engine")  # numba: only when a table is really built
cluster = lazy_module("momentcalc.estimators.cluster")  # with engine: only when a table is built
driver = lazy_module("momentcalc.estimators.driver")  # numba: in build's worker processes

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

EntryProgress = Callable[[int, int, str], None]


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
        return {k: (round(v, 4) if k in IGNORED else _clean(v, f"{where}.{k}")) for k, v in value.items()}
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
