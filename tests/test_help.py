"""``help`` speaks each platform's own syntax, through the command syntax of the reply's reader."""

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import cogs.help
from bot.catalogs import extract
from bot.domain import Markup
from bot.domain.i18n import Msg
from bot.domain.markup import Text
from bot.params import KIND_WORDS
from tests.harness import Harness, make_app

PREFIX = "%"  # a Matrix prefix of its own, so the configured one is seen to be used
# (target, how `task claim` is typed there, the overview's last line)
PLATFORMS = {
    "console": ("console:alice", "`task claim <id>`", "Type `help <command>` for details."),
    "matrix": ("matrix:!room:example.org", f"`{PREFIX}task claim <id>`",
               f"Type `{PREFIX}help <command>` for details."),
    "discord": ("discord:123", "`/task claim id:<number>`",
                "Type `/help topic:<command>` for details."),
}  # fmt: skip
# How a command starts on each platform, and how it starts on the others.
STARTS = {"console": "`task ", "matrix": f"`{PREFIX}task ", "discord": "`/task "}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    app = make_app(tmp_path, matrix={"command_prefix": PREFIX})
    try:
        yield Harness(app)
    finally:
        app.db.close()


async def _help(harness: Harness, platform: str, line: str = "help") -> str:
    reply = await harness.run("alice", line, target=PLATFORMS[platform][0])
    assert not reply.is_error, reply.body.plain()
    return reply.body.plain()


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_the_overview_spells_each_usage_line_in_the_platforms_syntax(harness, platform):
    _target, claim, footer = PLATFORMS[platform]
    lines = (await _help(harness, platform)).splitlines()
    assert lines[0] == "Commands (coordinator-only ones are marked ★)"
    assert f"{claim} — Take a task from the queue." in lines
    assert lines[-1] == footer
    starred = [line for line in lines if line.startswith(STARTS[platform] + "cancel ")]
    assert starred and starred[0].split("`")[2].startswith(" ★ — ")


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_commands_detail_shows_its_usage_line_and_each_parameter(harness, platform):
    _target, claim, _footer = PLATFORMS[platform]
    assert (await _help(harness, platform, "help task claim")).splitlines() == [
        claim,
        "Take a task from the queue.",
        "• `id` (required, number): Task number.",
    ]


async def test_optional_parameters_and_their_values_are_whole_sentences(harness):
    lines = (await _help(harness, "discord", "help task list")).splitlines()
    assert lines[0] == (
        "`/task list [kind:<task kind>] [language:<language>] [status:<status>] [page:<number>]`"
    )
    assert "• `page` (optional, number): Page number." in lines
    assert (
        "• `kind` (optional, task kind): Only this kind of job. One of: `translation`, "
        "`video-editing`, `investigation`, `programming`, `organising`, `networking`, `other`."
    ) in lines
    coordinators = (await _help(harness, "discord", "help task cancel")).splitlines()
    assert coordinators[-1] == "Only coordinators can run this."


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_no_help_reply_shows_another_platforms_syntax(harness, platform):
    """Help spells commands one way, the reader's: no table of every platform's spelling."""
    assert not hasattr(cogs.help, "PREFIX") and not hasattr(cogs.help.Help, "_prefix")
    others = [start for name, start in STARTS.items() if name != platform]
    for line in ("help", "help task", "help task post", "help task claim"):
        text = await _help(harness, platform, line)
        assert STARTS[platform] in text, line
        for start in others:
            assert start not in text, (line, start)
        assert not re.search(r"discord|matrix|console", text, re.IGNORECASE), (line, text)


async def test_every_parameter_kind_has_a_word_for_help(harness):
    kinds = {arg.kind.name for spec in harness.app.services.registry.specs for arg in spec.args}
    assert kinds <= set(KIND_WORDS)


def _messages(markup: Markup) -> Iterator[Msg]:
    for part in markup.parts:
        if isinstance(part, Text):
            yield part.msg
            for _name, value in part.values:
                if isinstance(value, Msg):
                    yield value
                elif isinstance(value, Markup):
                    yield from _messages(value)


async def test_every_message_help_says_is_in_the_catalog_template(harness):
    """A message help builds at run time is found by the catalogs, context and all."""
    registry = harness.app.services.registry
    (cog,) = [c for c in registry.cogs if isinstance(c, cogs.help.Help)]
    replies = [cog._overview(), *(cog._group(g) for g in registry.groups)]
    replies += [cog._detail(spec) for spec in registry.specs]
    said = {(m.context, str(m)) for reply in replies for m in _messages(reply)}
    template = {(m.context, str(m.id)) for m in extract() if m.id}
    assert said and said <= template, sorted(said - template)
