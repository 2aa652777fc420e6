"""Time the certified method on every entry of the default table (not a test): one row per spec.

    PYTHONPATH=. python bench/certified_timings.py

Each entry is computed once, cold (nothing cached), for mean, std and E[f'(X)^2] where defined.
"""

from __future__ import annotations

import time

import momentcalc  # noqa: F401 (fills the registry)
from momentcalc.estimators import NotApplicable, certified
from momentcalc.spec import parse
from momentcalc.tables import DEFAULT_SPECS


def main() -> None:
    print(f"{'spec':34} {'seconds':>8} {'bits':>5}  {'mean':>22} {'std':>22} {'grad_sq':>22}")
    total = 0.0
    for text in DEFAULT_SPECS:
        start = time.perf_counter()
        try:
            found = certified.estimate(parse(text), 0.0, 1.0)
        except NotApplicable as why:
            print(f"{text:34} refused: {why}")
            continue
        seconds = time.perf_counter() - start
        total += seconds
        bits = max(c.prec for c in found.values())
        values = [repr(found[q].value) if q in found else "-" for q in ("mean", "std", "grad_sq")]
        print(f"{text:34} {seconds:8.3f} {bits:5d}  {values[0]:>22} {values[1]:>22} {values[2]:>22}")
    print(f"{'total':34} {total:8.3f}")


if __name__ == "__main__":
    main()
