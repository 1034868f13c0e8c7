"""The core's error policy and command resolution."""

import logging
from typing import Annotated

import pytest

from bot.commands import Cog, command, requires
from bot.context import Actor, Ctx, Place
from bot.core import BotCore, Registry
from bot.domain import Conflict, UserRef
from bot.params import Param
from tests.harness import START


class _Demo(Cog):
    """Demo commands."""

    group = "demo"
    personal_data = False

    @command()
    async def echo(
        self, ctx: Ctx, text: Annotated[str, Param("Text", rest=True, max_length=20)]
    ) -> str:
        """Echo text."""
        return text

    @command()
    async def add(self, ctx: Ctx, n: Annotated[int, Param("A number", min=1, max=10)]) -> str:
        """Add one."""
        return str(n + 1)

    @command()
    async def busy(self, ctx: Ctx) -> str:
        """Always conflicts."""
        raise Conflict("`{x}` is taken — try another.", x="thing")

    @command()
    async def crash(self, ctx: Ctx) -> str:
        """Always crashes."""
        raise RuntimeError("secret internal detail")

    @requires("coordinator")
    @command()
    async def boss(self, ctx: Ctx) -> str:
        """Only coordinators."""
        return "yes boss"


@pytest.fixture
def core() -> BotCore:
    registry = Registry()
    registry.add(_Demo(None))  # type: ignore[arg-type]
    return BotCore(registry, timezone="Europe/Brussels")


def _ctx(coordinator: bool = False) -> Ctx:
    return Ctx(Actor(UserRef("test", "u1", "U"), coordinator), Place("test:room"), START)


async def _say(core: BotCore, line: str, coordinator: bool = False):
    reply = await core.handle_text(_ctx(coordinator), line, prefixes=("!",))
    assert reply is not None
    return reply


async def test_a_user_error_becomes_a_private_friendly_reply_quoting_the_input(core):
    reply = await _say(core, "!demo busy")
    assert reply.is_error and reply.private
    assert reply.body.plain() == "`thing` is taken — try another."


async def test_an_unexpected_exception_becomes_a_ref_logged_with_its_traceback(core, caplog):
    caplog.set_level(logging.ERROR)
    reply = await _say(core, "!demo crash")
    text = reply.body.plain()
    assert reply.is_error and reply.private
    assert "secret internal detail" not in text and "Traceback" not in text
    ref = text.split("ref: `")[1][:4]
    record = next(r for r in caplog.records if ref in r.getMessage())
    assert record.exc_info is not None and "secret internal detail" in str(record.exc_info[1])


async def test_lines_without_the_prefix_are_not_for_the_bot(core):
    assert await core.handle_text(_ctx(), "demo add 1", prefixes=("!",)) is None
    assert await core.handle_text(_ctx(), "!", prefixes=("!",)) is None


async def test_an_unknown_command_suggests_the_closest(core):
    assert "did you mean `demo add`" in (await _say(core, "!demo ad 1")).body.plain()
    assert "did you mean `demo add`" in (await _say(core, "!dmeo add 1")).body.plain()
    assert "`demo` needs one of" in (await _say(core, "!demo")).body.plain()


async def test_integers_are_converted_and_bounds_checked(core):
    assert (await _say(core, "!demo add 3")).body.plain() == "4"
    assert "not a whole number" in (await _say(core, "!demo add three")).body.plain()
    assert "too small" in (await _say(core, "!demo add 0")).body.plain()
    assert "largest is 10" in (await _say(core, "!demo add 11")).body.plain()


async def test_overlong_text_is_refused_with_its_length_and_the_limit(core):
    text = (await _say(core, "!demo echo " + "x" * 50)).body.plain()
    assert "50 characters long; the limit is 20" in text


async def test_typed_values_from_a_platform_get_the_same_checks(core):
    spec = core.registry.get("demo", "add")
    assert spec is not None
    reply = await core.invoke(_ctx(), spec, {"n": 99})
    assert reply.is_error and "largest is 10" in reply.body.plain()
    reply = await core.invoke(_ctx(), spec, {"n": True})
    assert reply.is_error


async def test_coordinator_commands_refuse_everyone_else(core):
    assert "for coordinators" in (await _say(core, "!demo boss")).body.plain()
    assert (await _say(core, "!demo boss", coordinator=True)).body.plain() == "yes boss"
