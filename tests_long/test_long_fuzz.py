"""The engine's fuzzing at its full count: 150 derandomized examples (tests/test_fuzz.py runs 30 others).

Why in tests_long/: most examples are pipelines that no other test compiles a kernel for, about 18 s of CPU.
"""

from hypothesis import given, settings
from test_fuzz import ENGINE_INPUTS, FUZZ
from test_fuzz import test_engine_gives_finite_numbers_or_a_clear_error as fuzzed

ENGINE_EXAMPLES = 150


@settings(FUZZ, max_examples=ENGINE_EXAMPLES)
@given(*ENGINE_INPUTS)
def test_engine_gives_finite_numbers_or_a_clear_error(text, mu, sigma, method):
    fuzzed.hypothesis.inner_test(text, mu, sigma, method)
