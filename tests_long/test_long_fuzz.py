"""The fuzzing at its full counts: the engine 150 derandomized examples, the parser 300 per test, the command line
60 per test (tests/test_fuzz.py runs 30, 100 and 20).

Why in tests_long/: most engine examples are pipelines that no other test compiles a kernel for, about 18 s of CPU;
the command line's 120 examples run whole commands, about 10 s; the parser's 600 about 2 s.
"""

from hypothesis import given, settings
from test_fuzz import ENGINE_INPUTS, FUZZ, TEXTS, _cli_args, _other_args, _specs
from test_fuzz import test_cli_exits_0_1_or_2_without_a_traceback as cli_fuzzed
from test_fuzz import test_engine_gives_finite_numbers_or_a_clear_error as fuzzed
from test_fuzz import test_other_commands_exit_0_1_or_2_without_a_traceback as other_fuzzed
from test_fuzz import test_parser_on_grammar_shaped_specs as grammar_fuzzed
from test_fuzz import test_parser_on_random_text as text_fuzzed

ENGINE_EXAMPLES, PARSER_EXAMPLES, CLI_EXAMPLES = 150, 300, 60


@settings(FUZZ, max_examples=ENGINE_EXAMPLES)
@given(*ENGINE_INPUTS)
def test_engine_gives_finite_numbers_or_a_clear_error(text, mu, sigma, method):
    fuzzed.hypothesis.inner_test(text, mu, sigma, method)


@settings(FUZZ, max_examples=PARSER_EXAMPLES)
@given(TEXTS)
def test_parser_on_random_text(text):
    text_fuzzed.hypothesis.inner_test(text)


@settings(FUZZ, max_examples=PARSER_EXAMPLES)
@given(_specs)
def test_parser_on_grammar_shaped_specs(text):
    grammar_fuzzed.hypothesis.inner_test(text)


@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(_cli_args())
def test_cli_exits_0_1_or_2_without_a_traceback(args):
    cli_fuzzed.hypothesis.inner_test(args)


@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(_other_args())
def test_other_commands_exit_0_1_or_2_without_a_traceback(args):
    other_fuzzed.hypothesis.inner_test(args)
