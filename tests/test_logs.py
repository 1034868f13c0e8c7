"""Logs below DEBUG keep exception messages out: they may quote what people typed."""

import errno
import io
import logging
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated, Any

import pytest

from bot import logs
from bot.adapters.matrix_adapter import MatrixSendError
from bot.commands import Cog, command
from bot.context import Ctx
from bot.outbox import PermanentDeliveryError
from bot.params import Param
from storage.db import DatabaseUnavailable
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


def _discord_forbidden() -> BaseException:
    import discord

    response = SimpleNamespace(status=403, reason="Forbidden")
    return discord.Forbidden(response, {"code": 50013, "message": "Missing Permissions"})  # type: ignore[arg-type]


def _aiohttp_bad_gateway() -> BaseException:
    import aiohttp

    return aiohttp.ClientResponseError(None, (), status=502, message="Bad Gateway")  # type: ignore[arg-type]


DESCRIBED = [
    (lambda: MatrixSendError("M_FORBIDDEN", 403, "User @bot:x is not in the room"),
     "MatrixSendError (M_FORBIDDEN 403: User @bot:x is not in the room)"),
    (_discord_forbidden, "Forbidden (403 50013: Missing Permissions)"),
    (lambda: OSError(errno.ENOSPC, "No space left on device"),
     "OSError (errno 28 ENOSPC: No space left on device)"),
    (_aiohttp_bad_gateway, "ClientResponseError (502: Bad Gateway)"),
    (lambda: PermanentDeliveryError("not a Matrix room address"),
     "PermanentDeliveryError (not a Matrix room address)"),
    (lambda: DatabaseUnavailable("the disk is full"), "DatabaseUnavailable (the disk is full)"),
    (lambda: ValueError("invalid literal for int() with base 10: 'my secret plan'"), "ValueError"),
    (lambda: RuntimeError(), "RuntimeError"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "expected"), DESCRIBED)
def test_an_error_is_described_by_its_codes_and_the_platforms_words_not_its_free_text(
    make: Any, expected: str
):
    assert logs.describe_error(make()) == expected


@pytest.mark.parametrize(
    "said",
    [
        "Invalid access_token=syt_c2VjcmV0_abc given",
        "Bearer syt_c2VjcmV0_abc refused",
        'bad {"password": "syt_c2VjcmV0_abc"}',
        "cannot reach postgresql://bot:syt_c2VjcmV0_abc@db/bot",
    ],
)
def test_a_described_error_never_carries_a_secret(said: str):
    described = logs.describe_error(MatrixSendError("M_UNKNOWN_TOKEN", detail=said))
    assert "syt_c2VjcmV0_abc" not in described
    assert described.startswith("MatrixSendError (M_UNKNOWN_TOKEN: ") and "***" in described


def test_a_described_error_is_one_short_line():
    described = logs.describe_error(MatrixSendError("M_UNKNOWN", detail="x\n" * 500))
    assert "\n" not in described and len(described) < 200
