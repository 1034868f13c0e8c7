"""Hostile input generated from the command specs, and the invariants every answer must keep.

The strategies read each command's parameters (their kind, bounds and choices) from the
registry, so a new command or parameter is fuzzed without a line here. :class:`Fuzzer` drives
one bot on one database through the core as console lines, through the Matrix adapter's
message parsing and rendering, and through the Discord adapter's option conversion and
rendering, and reports every broken invariant:

- no exception escapes, and nothing is logged as an error (the "something went wrong" path);
- an error answer quotes only a preview: it stays short;
- no answer is over its platform's limit, pings everyone or carries unescaped HTML;
- nothing stored breaks a listing: after each example every cog's listings still answer.

Used by tests/test_fuzz.py (a bounded number of examples) and bench/fuzz.py (a long run).
"""

import asyncio
import html
import json
import logging
import operator
import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from bot.adapters import discord_adapter, matrix_adapter
from bot.app import App
from bot.commands import ArgSpec, CommandSpec
from bot.context import Actor, Ctx, Place, Reply
from bot.domain import COUNTRIES, LANGUAGES, UserRef

# An error answer quotes at most a preview of the input; the longest fixed text (a usage
# line and a list of choices) is far shorter than this.
ERROR_LIMIT = 1_500
# Room the Matrix adapter adds around the capped text: the relation, the pill, the mentions.
MATRIX_SLACK = 2_000
GENERIC = "Something went wrong"

# --- hostile text ---------------------------------------------------------------------------

PIECES = (
    "@everyone", "@here", "<@&1234>", "<@!1001>", "@room", "**bold**", "`code`", "```",
    "<script>alert(1)</script>", "<b>", "&amp;", "[link](https://example.org)", "||spoiler||",
    "\u202e", "\u202b", "\u2066", "\u2067", "\u2069", "\u202c", "\u200b", "\u200d", "\ufeff",
    "\u3164", "\x00", "\x07", "\x1b[31m", "\x85", "\r\n", "\n", "\t", "\ud800", "\udfff",
    "e\u0301", "🏳️‍🌈", "𝕏", "ﷺ", "'", '"', "\\", "--", "--due", "!task", "/", "#", "%s", "{id}",
    "DROP TABLE tasks;--", "' OR 1=1 --", "null", "NaN", "-1", "0", "1e309", "٣",
)  # fmt: skip
_HUGE_UNITS = ("x", "ü", "\u200b", "@everyone ", "<b>", "\x00", "9", "\u202e", "a b ", "\n")

fragment = st.one_of(
    st.sampled_from(PIECES),
    st.text(max_size=12),
    st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn"]), max_size=6),
)
hostile = st.lists(fragment, max_size=8).map("".join)


def huge(max_size: int = 70_000) -> st.SearchStrategy[str]:
    """Text far longer than any limit (past the 65,536 bytes of a Matrix event)."""
    return st.builds(
        operator.mul, st.sampled_from(_HUGE_UNITS), st.integers(500, max(500, max_size // 2))
    )


def text(max_huge: int = 70_000) -> st.SearchStrategy[str]:
    """Any free text: mostly ordinary words, often hostile, now and then huge."""
    words = st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=30)
    return st.one_of(words, hostile, hostile, huge(max_huge))


# --- values per parameter kind, as typed ----------------------------------------------------

_NUMBERS = ("0", "-1", "+2", "#3", "1_000", "2147483648", "258994356996", "9" * 18, "9" * 19,
            "9" * 400, "1e9", "3.5", "٣", "0x10")  # fmt: skip
_DURATIONS = ("90s", "15m", "2h30m", "1d 2h", "3 days", "1w", "800d", "0s", "-5m",
              "99999999999999999999s", "in 2h", "+3d", "1y")  # fmt: skip
_WHENS = ("in 3d", "tomorrow", "today", "now", "14:30", "25:00", "2026-12-01",
          "2026-12-01 14:30", "2026-03-29 02:30", "2026-02-30", "9999-12-31T23:30:00+00:00",
          "0001-01-01T00:30:00+01:00", "9999-12-31 23:59", "1900-01-01", "2020-01-01",
          "2026-07-01T14:30+14:00", "2026-07-01T14:30-12:00", "+275760-09-13")  # fmt: skip
_ZONES = ("Europe/Brussels", "europe/warsaw", "UTC", "America/New_York", "Pacific/Kiritimati",
          "Mars/Olympus", "Europe/Brusels", "A" * 300, "../../etc/passwd", "Europe/",
          "Etc/GMT+12", "posixrules", "/etc/localtime")  # fmt: skip
_USERS = ("alice", "@alice", "coco", "@everyone", "@here", "<@1002>", "@alice:x", "1002", "@")


def _samples(values: Sequence[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(values), hostile)


def _number(arg: ArgSpec) -> st.SearchStrategy[int]:
    low = arg.param.min if arg.param.min is not None else -3
    return st.integers(low, max(low, min(arg.param.max or 12, 12)))


def value_text(arg: ArgSpec) -> st.SearchStrategy[str]:
    """What someone might type for one parameter: valid values, near misses and attacks."""
    kind = arg.kind.name
    if arg.choices:
        near = [c[:3] for c in arg.choices] + [c.upper() for c in arg.choices]
        return st.one_of(st.sampled_from(arg.choices), _samples(near), huge(5_000))
    if arg.kind.wire == "integer":
        return st.one_of(_number(arg).map(str), _samples(_NUMBERS))
    if arg.kind.wire == "boolean":
        return _samples(("yes", "no", "on", "maybe"))
    if arg.kind.wire == "user":
        return _samples(_USERS)
    table: dict[str, st.SearchStrategy[str]] = {
        "language": _samples((*LANGUAGES, "Polish", "xx", "PL", "cz")),
        "languages": st.lists(st.sampled_from((*LANGUAGES, "xx", "")), max_size=30).map(",".join),
        "country": _samples((*COUNTRIES, "GR", "Poland", "de", "ZZ")),
        "time zone": _samples(_ZONES),
        "duration": _samples(_DURATIONS),
        "when": st.one_of(_samples(_WHENS), st.datetimes().map(lambda d: d.isoformat())),
    }
    return st.one_of(table.get(kind, text()), huge(5_000))


def typed_value(arg: ArgSpec) -> st.SearchStrategy[Any]:
    """What Discord hands over for one option: ints, bools and people already typed."""
    if arg.kind.wire == "integer":
        return st.one_of(_number(arg), st.integers(-(2**63), 2**63))
    if arg.kind.wire == "boolean":
        return st.booleans()
    if arg.kind.wire == "user":
        return st.builds(
            UserRef, st.just("discord"), st.sampled_from(("1001", "1002", "1003")), hostile
        )
    return value_text(arg)


# --- whole commands -------------------------------------------------------------------------


def quote(value: str) -> str:
    """A value as one token of a text command, quoted when it has to be."""
    if (
        value
        and not re.search(r"\s", value)
        and value[0] not in "\"'"
        and not value.startswith("--")
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def command_line(draw: st.DrawFn, spec: CommandSpec) -> str:
    """A text command for ``spec``: its parameters drawn, sometimes missing, sometimes extra."""
    words = [spec.qualified_name]
    for arg in (a for a in spec.args if a.positional):
        if not arg.required and draw(st.booleans()):
            break
        value = draw(value_text(arg))
        words.append(value if arg.rest and draw(st.booleans()) else quote(value))
    options = [a for a in spec.args if not a.positional]
    chosen = draw(st.permutations(options))[: draw(st.integers(0, len(options)))]
    for arg in chosen:
        if arg.kind.wire == "boolean" and draw(st.booleans()):
            words.append(arg.option)
        else:
            words += [arg.option, quote(draw(value_text(arg)))]
    if draw(st.integers(0, 9)) == 0:
        words.append(draw(st.sampled_from(("--bogus", "--due", "extra", "--", '"'))))
    return " ".join(words)


def console_lines(specs: Sequence[CommandSpec]) -> st.SearchStrategy[str]:
    """Console input: commands from the specs, with a prefix or not, and raw garbage lines."""
    commands = st.one_of([command_line(spec) for spec in specs])
    prefixed = st.tuples(st.sampled_from(("", "!", "/", "  ")), commands).map("".join)
    return st.one_of(prefixed, prefixed, prefixed, text(), st.sampled_from(PIECES))


@st.composite
def matrix_content(draw: st.DrawFn, specs: Sequence[CommandSpec]) -> dict[str, Any]:
    """The content of an m.text event carrying a command, in the shapes clients send."""
    line = "!" + draw(st.one_of(st.one_of([command_line(s) for s in specs]), hostile))
    shape = draw(st.sampled_from(("plain", "fallback", "html", "pill", "garbage")))
    content: dict[str, Any] = {"msgtype": "m.text", "body": line}
    if shape == "fallback":
        content["body"] = "> <@bob:x> " + draw(hostile) + "\n> more\n\n" + line
    elif shape in ("html", "pill"):
        pill = '<a href="https://matrix.to/#/@alice:x">Alice</a>' if shape == "pill" else ""
        content |= {
            "format": "org.matrix.custom.html",
            "formatted_body": "<mx-reply><blockquote>q</blockquote></mx-reply><p>"
            + html.escape(line) + " " + pill + "</p>",
        }  # fmt: skip
    elif shape == "garbage":
        content |= {
            "body": draw(st.one_of(st.just(line), st.none(), st.integers(), st.lists(hostile))),
            "format": "org.matrix.custom.html",
            "formatted_body": draw(hostile) + '<a href="https://matrix.to/#/' + draw(hostile)
            + '">' + draw(hostile) + "</a>" + line,
        }  # fmt: skip
    return content


@st.composite
def discord_options(draw: st.DrawFn, spec: CommandSpec) -> dict[str, Any]:
    """Option values of one slash command, some omitted (None), as discord.py passes them."""
    return {
        arg.name: None if not arg.required and draw(st.booleans()) else draw(typed_value(arg))
        for arg in spec.args
    }


def discord_commands(specs: Sequence[CommandSpec]) -> st.SearchStrategy[tuple[CommandSpec, Any]]:
    """A slash command and its options."""
    return st.one_of([st.tuples(st.just(s), discord_options(s)) for s in specs])


# --- the checks -----------------------------------------------------------------------------

PEOPLE = {
    "console": (("coco", True), ("alice", False)),
    "matrix": (("@coco:x", True), ("@alice:x", False)),
    "discord": (("1001", True), ("1002", False)),
}
TARGETS = {"console": "console", "matrix": "matrix:!room:x", "discord": "discord:555"}
LISTINGS = ("task list --status all", "task mine", "reminder list --anywhere",
            "volunteer list", "signatures", "audit", "help")  # fmt: skip
PER_PERSON = ("volunteer profile", "privacy mydata")
_TASK_NUMBER = re.compile(r"#(\d{1,9})\b")


class _Errors(logging.Handler):
    """Collects what is logged at ERROR or above while an example runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Fuzzer:
    """One bot on one database, fed examples on its own event loop, checking every answer."""

    app: App
    loop: asyncio.AbstractEventLoop
    examples: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def specs(self) -> list[CommandSpec]:
        """Every loaded command."""
        return self.app.core.registry.specs

    def ctx(self, platform: str, who: int, name: str | None = None) -> Ctx:
        """A context for one of the platform's two people (0 is a coordinator)."""
        external_id, coordinator = PEOPLE[platform][who]
        user = UserRef(platform, external_id, name or external_id)
        return Ctx(Actor(user, coordinator), Place(TARGETS[platform]), self.app.clock.now())

    # The three drivers; each returns the example's violations (empty when all held).

    def console(self, line: str, who: int = 0) -> list[str]:
        """A console line, through the core as the console adapter passes it."""
        ctx = self.ctx("console", who)
        return self._example(
            "console",
            ctx,
            line,
            lambda: self.app.core.handle_text(ctx, line, prefixes=("!", "/", "")),
        )

    def matrix(self, content: dict[str, Any], who: int = 1, name: str = "") -> list[str]:
        """A Matrix message: its command read as the adapter reads it, the answer rendered."""
        ctx = self.ctx("matrix", who, name or None)

        async def run() -> Reply | None:
            line = matrix_adapter.command_text(content)
            if not line.startswith("!"):
                return None
            return await self.app.core.handle_text(ctx, line, prefixes=("!",))

        return self._example("matrix", ctx, content, run)

    def discord(self, spec: CommandSpec, values: dict[str, Any], who: int = 1,
                name: str = "") -> list[str]:  # fmt: skip
        """A slash command: options converted as the adapter converts them, answer rendered."""
        ctx = self.ctx("discord", who, name or None)

        async def run() -> Reply | None:
            raw = await discord_adapter.core_arguments(values)
            return await self.app.core.invoke(ctx, spec, raw)

        return self._example("discord", ctx, (spec.qualified_name, values), run)

    # What every example is checked for.

    def _example(
        self, platform: str, ctx: Ctx, given: object, run: Callable[[], Any]
    ) -> list[str]:
        self.examples += 1
        found: list[str] = []
        with self._logged_errors() as errors:
            try:
                reply = self.loop.run_until_complete(run())
            except Exception:
                reply = None
                found.append("an exception escaped: " + traceback.format_exc(limit=-3))
            if reply is not None:
                try:
                    found += self._check_reply(platform, reply)
                except Exception:
                    found.append("rendering the answer raised: " + traceback.format_exc(-3))
                found += self._listings(platform, ctx, reply)
        found += [f"logged: {r.getMessage()} {r.exc_text or ''}"[:2_000] for r in errors]
        if found:
            shown = repr(given)
            summary = f"{platform} {shown[:120]}{'…' if len(shown) > 120 else ''}"
            self.violations += [f"{summary}: {problem}" for problem in found]
        return found

    def _check_reply(self, platform: str, reply: Reply) -> list[str]:
        found: list[str] = []
        plain = reply.body.plain()
        if GENERIC in plain:
            found.append("answered with the generic error")
        if reply.is_error and len(plain) > ERROR_LIMIT:
            found.append(f"an error answer of {len(plain)} characters: {plain[:120]!r}…")
        if platform == "discord":
            parts = discord_adapter.split_content(discord_adapter.render(reply))
            if len(parts) > discord_adapter.MAX_PARTS:
                found.append(f"{len(parts)} Discord messages for one answer")
            if any(len(p) > discord_adapter.MAX_CONTENT for p in parts):
                found.append("a Discord message over 2,000 characters")
            mentions = discord_adapter.message_extras(reply, last=True)["allowed_mentions"]
            if mentions.everyone or mentions.roles:
                found.append("a Discord answer may ping everyone or a role")
        if platform == "matrix":
            content = matrix_adapter.notice_content(
                matrix_adapter.reply_markup(reply, "!"), reply_to="$event", mentions=()
            )
            size = len(json.dumps(content))
            if size > matrix_adapter.MAX_TEXT_BYTES + MATRIX_SLACK:
                found.append(f"a Matrix answer of {size} bytes")
            if re.search(r"<(script|b>|a )", content["formatted_body"]):
                found.append("user HTML in a Matrix answer")
        return found

    def _listings(self, platform: str, ctx: Ctx, reply: Reply) -> list[str]:
        """Every cog's listings still answer, for the coordinator and the person who acted."""
        lines = list(LISTINGS)
        lines += [
            f"task show {n}" for n in dict.fromkeys(_TASK_NUMBER.findall(reply.body.plain()))
        ][:3]
        coordinator = self.ctx(platform, 0)
        runs = [(coordinator, line) for line in lines] + [(ctx, line) for line in PER_PERSON]
        found: list[str] = []
        for who, line in runs:
            try:
                answer = self.loop.run_until_complete(
                    self.app.core.handle_text(who, line, prefixes=("",))
                )
            except Exception:
                found.append(f"{line!r} raised: " + traceback.format_exc(limit=-3))
                continue
            if answer is None or GENERIC in answer.body.plain():
                found.append(f"{line!r} no longer answers: {answer and answer.body.plain()!r}")
        return found

    @contextmanager
    def _logged_errors(self) -> Iterator[list[logging.LogRecord]]:
        handler = _Errors()
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield handler.records
        finally:
            root.removeHandler(handler)
