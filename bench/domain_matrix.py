"""The worst |error| / stated bound of each exact method over the input-domain matrix of tests/test_domain.py.

    PYTHONPATH=. python bench/domain_matrix.py [--quick]

A ratio above 1 is a broken promise (the bound is the method's own, plus test_domain.SLACK relative to the
result's scale and 4 ulps); "declined" counts the cases where a method gave no answer.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import test_domain as td  # noqa: E402


def main(quick: bool) -> None:
    start = time.perf_counter()
    worst: dict = {}
    answered: dict = {}
    total = 0
    for spec, mu, sigma, want in td.cases(full=not quick):
        total += 1
        for key, r in td.ratios(spec, mu, sigma, want()).items():
            answered[key] = answered.get(key, 0) + 1
            if key not in worst or not r <= worst[key][0]:
                worst[key] = (r, spec, mu, sigma)
    print(f"{total} cases, {time.perf_counter() - start:.0f}s")
    print(f"{'method':<12}{'quantity':<10}{'answered':>9}{'worst ratio':>14}  where")
    for (method, quantity), (r, spec, mu, sigma) in sorted(worst.items()):
        n = answered[(method, quantity)]
        print(f"{method:<12}{quantity:<10}{n:>9}{r:>14.3g}  {spec} mu={mu:g} sigma={sigma:g}")


if __name__ == "__main__":
    main("--quick" in sys.argv)
