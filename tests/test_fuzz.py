"""Generated hostile input through the core and each adapter's parsing: every invariant holds.

``FUZZ_EXAMPLES`` sets the examples per driver and engine (CI runs the default);
``python bench/fuzz.py --examples 2000`` runs a long fuzz.
"""

import asyncio
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import Fuzzer, console_lines, discord_commands, hostile, matrix_content
from tests.harness import make_app

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def fuzzer(tmp_path, db_url) -> Iterator[Fuzzer]:
    loop = asyncio.new_event_loop()
    app = make_app(tmp_path, url=db_url)
    try:
        yield Fuzzer(app, loop)
    finally:
        loop.run_until_complete(app.stop())
        loop.close()


def test_console_lines_keep_every_invariant(fuzzer: Fuzzer):
    @SETTINGS
    @given(line=console_lines(fuzzer.specs), who=st.integers(0, 1))
    def example(line: str, who: int) -> None:
        assert not fuzzer.console(line, who)

    example()
    assert fuzzer.examples >= EXAMPLES


def test_matrix_messages_keep_every_invariant(fuzzer: Fuzzer):
    @SETTINGS
    @given(content=matrix_content(fuzzer.specs), who=st.integers(0, 1), name=hostile)
    def example(content: dict, who: int, name: str) -> None:
        assert not fuzzer.matrix(content, who, name)

    example()
    assert fuzzer.examples >= EXAMPLES


def test_discord_options_keep_every_invariant(fuzzer: Fuzzer):
    @SETTINGS
    @given(command=discord_commands(fuzzer.specs), who=st.integers(0, 1), name=hostile)
    def example(command: tuple, who: int, name: str) -> None:
        spec, values = command
        assert not fuzzer.discord(spec, values, who, name)

    example()
    assert fuzzer.examples >= EXAMPLES
