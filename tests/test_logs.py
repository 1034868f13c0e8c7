"""Logs below DEBUG keep exception messages out: they may quote what people typed."""

import io
import logging
import sys
from collections.abc import Iterator
from typing import Annotated

import pytest

from bot import logs
from bot.commands import Cog, command
from bot.context import Ctx
from bot.params import Param
from tests.harness import Harness


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_BELOW_DEBUG}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


SECRET = "".join(["zql", "secret"])  # never spelled out, so source lines cannot show it


def crash_on(text: str) -> None:
    try:
        int(text)
    except ValueError as exc:
        raise RuntimeError(f"could not read {text}") from exc


def test_a_traceback_keeps_its_frames_and_types_but_not_the_messages():
    formatter = logs.PrivateFormatter(logs.FORMAT)
    try:
        crash_on(SECRET)
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "zqlsecret" not in text
    assert "ValueError: (message withheld" in text and "RuntimeError: (message" in text
    assert "direct cause" in text and "in crash_on" in text


@pytest.mark.parametrize(
    ("level", "shown"), [("INFO", False), ("WARNING", False), ("DEBUG", True)]
)
def test_configure_shows_exception_text_only_at_debug(root_logging: None, level: str, shown: bool):
    stream = io.StringIO()
    logs.configure(level, stream)
    try:
        crash_on(SECRET)
    except RuntimeError:
        logging.getLogger("bot.test").exception("command failed")
    assert "command failed" in stream.getvalue()
    assert ("zqlsecret" in stream.getvalue()) is shown


def test_configure_quiets_the_scheduler_below_debug(root_logging: None):
    logs.configure("INFO", io.StringIO())
    assert logging.getLogger("apscheduler").getEffectiveLevel() == logging.WARNING


class _Fragile(Cog):
    """Crashes on what it is given."""

    group = "fragile"
    personal_data = False

    @command()
    async def parse(self, ctx: Ctx, text: Annotated[str, Param("Anything", rest=True)]) -> str:
        """Fail on someone's text."""
        crash_on(text)
        return "unreachable"


async def test_a_command_crashing_on_someones_text_leaves_it_out_of_the_log(
    harness: Harness, root_logging: None
):
    stream = io.StringIO()
    logs.configure("INFO", stream)
    harness.app.services.registry.add(_Fragile(harness.app.services))
    reply = await harness.run("zqlperson", "fragile parse zqltext")
    assert reply.is_error and "ref:" in reply.body.plain()
    assert "command fragile parse failed" in stream.getvalue()
    assert "zql" not in stream.getvalue().lower()
