"""BotCore: the command registry, invocation and the one place errors become replies."""

import asyncio
import difflib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from bot.audit import Auditor, Outcome, audited
from bot.commands import ArgSpec, Cog, CommandSpec
from bot.context import Button, Ctx, Reply
from bot.domain import BadArgument, Markup, NotFound, NotPermitted, UserError, UserRef
from bot.domain.i18n import ENGLISH, Msg, Reader, _
from bot.domain.markup import cmd, usage
from bot.domain.text import clean, clean_name, preview
from bot.params import LARGEST, ParseEnv, too_large
from bot.textparse import bind, normalise, tokenize
from storage.acting import ErasurePending, acting_for
from storage.db import DatabaseUnavailable
from storage.faults import Kind
from storage.leases import AlreadyTakenOn

log = logging.getLogger(__name__)

# Longer words are no command's name: only this much of them is compared with the names.
_LONGEST = 64
ActivityHook = Callable[[UserRef, Ctx], Awaitable[None]]
# Told of every command: its name, its outcome and when it started (time.perf_counter()).
CommandObserver = Callable[[str, str, float], None]


class ReaderSource(Protocol):
    """What the core asks who an answer is for (bot.readers.Readers)."""

    async def for_ctx(self, ctx: Ctx) -> Reader:
        """The reader of the answer to ``ctx``'s command."""
        ...


_ERASING_YOU = _(
    "Your data is being erased ({command}), so I did not do that and changed nothing. If it "
    "has not said “Done” yet, run {command} again to finish it; after that you can start "
    "again from nothing."
)
_ERASING_THEM = _(
    "That person's data is being erased right now, so I did not do that and changed nothing."
)
# Translators: {ref} is a short code that matches a line in the bot's log.
_BROKEN = _(
    "I cannot save anything right now, so nothing was changed. A coordinator needs to check "
    "the bot's storage (ref: `{ref}`)."
)
# What a person is told when storage fails, by the kind of fault (storage.faults.classify).
_STORAGE_REPLIES: dict[Kind, Msg] = {
    Kind.BUSY: _("The database is busy right now, so nothing was changed. Please send the "
                 "command again in a minute (ref: `{ref}`)."),
    Kind.FULL: _("The database's disk is full - nothing was saved. A coordinator needs to free "
                 "space for the bot's storage (ref: `{ref}`)."),
    # Translators: `volunteer-bot db restore BACKUP` is a shell command; keep it as it is.
    Kind.DAMAGED: _("The database file is damaged - nothing was changed. A coordinator needs "
                    "to restore it from a backup with `volunteer-bot db restore BACKUP` "
                    "(ref: `{ref}`)."),
}  # fmt: skip
_STORAGE_REPLIES[Kind.CONFLICT] = _STORAGE_REPLIES[Kind.BUSY]


class Registry:
    """Every loaded command, by group and name."""

    def __init__(self) -> None:
        self.cogs: list[Cog] = []
        self._by_name: dict[tuple[str | None, str], CommandSpec] = {}
        self._owner: dict[tuple[str | None, str], Cog] = {}
        self.group_descriptions: dict[str, str] = {}

    def add(self, cog: Cog) -> None:
        """Register a cog's commands; a name clash is a programming error."""
        for spec in cog.specs:
            key = (spec.group, spec.name)
            if key in self._by_name or (spec.group is None and spec.name in self.groups):
                raise ValueError(f"command {spec.qualified_name!r} is defined twice")
            self._by_name[key] = spec
            self._owner[key] = cog
        if cog.group:
            self.group_descriptions[cog.group] = cog.description
        self.cogs.append(cog)

    @property
    def specs(self) -> list[CommandSpec]:
        """All commands, in registration order."""
        return list(self._by_name.values())

    @property
    def groups(self) -> set[str]:
        """Names of command groups."""
        return {g for g, _ in self._by_name if g is not None}

    def get(self, group: str | None, name: str) -> CommandSpec | None:
        """One command, or None."""
        return self._by_name.get((group, name))

    def owner(self, spec: CommandSpec) -> Cog:
        """The cog instance that runs a command."""
        return self._owner[(spec.group, spec.name)]

    def in_group(self, group: str) -> list[CommandSpec]:
        """The commands of one group."""
        return [s for s in self._by_name.values() if s.group == group]

    def default_of(self, group: str) -> CommandSpec | None:
        """The command a bare group name runs, if any."""
        return next((s for s in self.in_group(group) if s.default), None)

    def find(self, words: Sequence[str]) -> tuple[CommandSpec, int]:
        """Resolve the leading words of a command line; returns the spec and words used.

        Raises NotFound with the closest known command.
        """
        if not words:
            raise NotFound(_("Type a command, or {help} to see them all."), help=cmd("help"))
        first = words[0].lower()
        if first in self.groups:
            if len(words) > 1 and (spec := self.get(first, words[1].lower())):
                return spec, 2
            if default := self.default_of(first):
                return default, 1
            subs = Markup.trusted(", ").join(
                Markup.format("`{name}`", name=s.name) for s in self.in_group(first)
            )
            if len(words) > 1:
                close = self._suggest(f"{first} {words[1][:_LONGEST]}")
                raise NotFound(
                    _("`{group} {sub}` is not a command — did you mean {suggestion}? "
                      "`{group}` has: {subs}.")
                    if close
                    else _("`{group} {sub}` is not a command. `{group}` has: {subs}."),
                    group=first, sub=preview(words[1]), subs=subs,
                    suggestion=cmd(close) if close else "",
                )  # fmt: skip
            raise NotFound(_("`{group}` needs one of: {subs}."), group=first, subs=subs)
        if spec := self.get(None, first):
            return spec, 1
        close = self._suggest(" ".join(w[:_LONGEST] for w in words[:2]).lower())
        raise NotFound(
            _("`{word}` is not a command — did you mean {suggestion}? Type {help} to see them "
              "all.")
            if close
            else _("`{word}` is not a command. Type {help} to see them all."),
            word=preview(words[0]), help=cmd("help"), suggestion=cmd(close) if close else "",
        )  # fmt: skip

    def _suggest(self, typed: str) -> str | None:
        names = [s.qualified_name for s in self.specs] + sorted(self.groups)
        close = difflib.get_close_matches(typed, names, n=1, cutoff=0.5)
        if not close:
            first = typed.split(" ")[0]
            close = difflib.get_close_matches(first, names, n=1, cutoff=0.5)
        return close[0] if close else None


class BotCore:
    """Turns invocations into replies, applying rights and the error policy."""

    def __init__(self, registry: Registry, *, timezone: str, prefix: str = "!") -> None:
        self.registry = registry
        self.timezone = timezone
        self.prefix = prefix
        self.activity_hooks: list[ActivityHook] = []
        # Writes a line for every coordinator-only command, whatever its outcome.
        self.auditor: Auditor | None = None
        self.observer: CommandObserver | None = None
        self.readers: ReaderSource | None = None
        # Set while no command is being run: background work that can wait (the web
        # server's public pages) waits for it, so the bot's answers come first.
        self.quiet = asyncio.Event()
        self.quiet.set()
        self._running = 0

    async def handle_text(
        self, ctx: Ctx, line: str, *, prefixes: Iterable[str] | None = None
    ) -> Reply | None:
        """Run one text command line. Returns None if the line is not addressed to the bot."""
        text = line.strip()
        for prefix in (self.prefix,) if prefixes is None else prefixes:
            if text.startswith(prefix) and (prefix or text):
                text = text[len(prefix) :].strip()
                break
        else:
            return None
        if not text:
            return None
        ctx.raw = text
        await self._set_reader(ctx)
        try:
            text = normalise(text)
            tokens = tokenize(text)
            spec, used = self.registry.find([t.text for t in tokens])
            raw = bind(spec, text, tokens[used:])
        except UserError as exc:
            return for_reader(self._user_error(exc), ctx.reader)
        return await self.invoke(ctx, spec, raw)

    async def _set_reader(self, ctx: Ctx) -> None:
        if self.readers is not None and ctx.reader is ENGLISH:  # not yet known
            ctx.reader = await self.readers.for_ctx(ctx)

    async def invoke(self, ctx: Ctx, spec: CommandSpec, raw: Mapping[str, object]) -> Reply:
        """Convert arguments, check rights, run the handler; never raises.

        The reply comes back written for its reader: translated, with their number and date
        formats and their platform's command syntax.
        """
        await self._set_reader(ctx)
        self._running += 1
        self.quiet.clear()
        try:
            return for_reader(await self._invoke(ctx, spec, raw), ctx.reader)
        finally:
            self._running -= 1
            if not self._running:
                self.quiet.set()

    async def _invoke(self, ctx: Ctx, spec: CommandSpec, raw: Mapping[str, object]) -> Reply:
        started = time.perf_counter()
        # Display names come from the platforms, and are stored: they are cleaned like text,
        # the caller's and those of people the command names (an audit line of a refused
        # command shows them as sent).
        ctx.actor = replace(ctx.actor, user=_named(ctx.actor.user))
        raw = {k: _named(v) if isinstance(v, UserRef) else v for k, v in raw.items()}
        kwargs: dict[str, Any] = {}
        outcome = Outcome.DONE
        try:
            self._check_rights(ctx, spec)
            # Times typed without a zone are in the person's own, when they chose one.
            zone = getattr(ctx.reader.timezone, "key", None) or self.timezone
            env = ParseEnv(now=ctx.now, timezone=zone, platform=ctx.user.platform)
            kwargs = {
                arg.keyword: convert(arg, raw[arg.name], env) if arg.name in raw else arg.default
                for arg in spec.args
            }
            for arg in spec.args:
                if arg.required and kwargs[arg.keyword] is None:
                    raise BadArgument(_("`{name}` is required. Usage: {usage}."),
                                      name=arg.name, usage=usage(spec.qualified_name))  # fmt: skip
            with acting_for(involved(ctx, kwargs)):
                result = await spec.func(self.registry.owner(spec), ctx, **kwargs)
            reply = as_reply(result, private=spec.private, confidential=spec.confidential)
        except AlreadyTakenOn:
            raise  # another process handles this command: this one says nothing
        except ErasurePending as exc:
            # Nothing may be written about them now, not even the audit line or activity.
            log.debug("command %s refused: an erasure is pending", spec.qualified_name)
            message = _ERASING_YOU if exc.about(ctx.user) else _ERASING_THEM
            forget = cmd("privacy forget", confirm=True)
            return Reply(Markup.format(message, command=forget), private=True, is_error=True)
        except UserError as exc:
            log.debug("command %s refused: %s", spec.qualified_name, type(exc).__name__)
            outcome = Outcome.REFUSED if isinstance(exc, NotPermitted) else Outcome.FAILED
            reply = self._user_error(exc)
        except DatabaseUnavailable as exc:
            ref = secrets.token_hex(2)
            log.error("command %s: %s [%s %s] (ref: %s)", spec.qualified_name, exc,
                      exc.kind.value, exc.code or "no code", ref)  # fmt: skip
            message = _STORAGE_REPLIES.get(exc.kind, _BROKEN)
            outcome = Outcome.ERROR
            reply = Reply(Markup.format(message, ref=ref), private=True, is_error=True)
        except Exception:
            ref = secrets.token_hex(2)
            log.exception("command %s failed (ref: %s)", spec.qualified_name, ref)
            outcome = Outcome.ERROR
            reply = Reply(
                Markup.format(
                    _(
                        "Something went wrong on my side (ref: `{ref}`). Nothing you typed was "
                        "lost; please try again, and tell a coordinator the ref if it keeps "
                        "happening."
                    ),
                    ref=ref,
                ),
                private=True,
                is_error=True,
            )
        with acting_for(involved(ctx, kwargs)):
            if self.auditor is not None and audited(spec):
                # A refused command never had its arguments read: the trail shows them as typed.
                await self.auditor.record(ctx, spec, kwargs or raw, outcome)
            if self.observer is not None:
                self.observer(spec.qualified_name, outcome.value, started)
            if outcome is not Outcome.DONE:
                return reply
            for hook in self.activity_hooks:
                try:
                    await hook(ctx.user, ctx)
                except ErasurePending:
                    pass  # their erasure began after the command: their activity is not kept
                except DatabaseUnavailable as exc:
                    log.warning("activity not recorded: %s [%s]", exc, exc.code or exc.kind.value)
                except Exception:
                    log.exception("activity hook failed")
        log.info(
            "command %s on %s took %.1f ms",
            spec.qualified_name,
            ctx.place.platform,
            (time.perf_counter() - started) * 1000,
        )
        return reply

    def _check_rights(self, ctx: Ctx, spec: CommandSpec) -> None:
        if "coordinator" in spec.requires and not ctx.actor.is_coordinator:
            raise NotPermitted(
                _("{command} is for coordinators. If you should be one, ask a coordinator to "
                  "add you to the bot's configuration."),
                command=cmd(spec.qualified_name),
            )  # fmt: skip

    @staticmethod
    def _user_error(exc: UserError) -> Reply:
        return Reply(exc.markup, private=True, is_error=True)


def for_reader(reply: Reply, reader: Reader) -> Reply:
    """``reply`` with its text and button labels rendered for ``reader``."""
    buttons = tuple(Button(reader.gettext(b.label), b.command) for b in reply.buttons)
    return replace(reply, body=reply.body.localized(reader), buttons=buttons, reader=reader)


def involved(ctx: Ctx, kwargs: Mapping[str, object]) -> list[UserRef]:
    """The people a command's writes are about: its caller and anyone it names."""
    return [ctx.user, *(v for v in kwargs.values() if isinstance(v, UserRef))]


def convert(arg: ArgSpec, value: object, env: ParseEnv) -> Any:
    """Parse (text) or check (already typed) one argument against its spec."""
    if value is None:
        return None
    if isinstance(value, str):
        shown = arg.name.replace("_", "-")
        if not value.strip():
            raise BadArgument(_("`{name}` cannot be empty."), name=shown)
        value = arg.kind.parse(clean(value, what=shown, multiline=arg.param.multiline), env)
    elif arg.kind.wire == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadArgument(_("`{name}` must be a whole number."), name=arg.name)
    p = arg.param
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > LARGEST:  # no id or count is that large, and no column holds it
            raise too_large(str(value))
        if p.min is not None and value < p.min:
            raise BadArgument(
                _("`{value}` is too small for `{name}`: the smallest is {limit:,}."),
                value=value, name=arg.name, limit=p.min,
            )  # fmt: skip
        if p.max is not None and value > p.max:
            raise BadArgument(
                _("`{value}` is too large for `{name}`: the largest is {limit:,}."),
                value=value, name=arg.name, limit=p.max,
            )  # fmt: skip
    if isinstance(value, str) and p.max_length is not None and len(value) > p.max_length:
        raise BadArgument(
            _(
                "That {name} is {length:,} characters long; the limit is {limit:,}. It starts "
                "`{preview}` — shorten it and send it again."
            ),
            name=arg.name.replace("_", " "),
            length=len(value),
            limit=p.max_length,
            preview=preview(value),
        )
    return value


def _named(user: UserRef) -> UserRef:
    name = clean_name(user.display_name)
    return user if name == user.display_name else replace(user, display_name=name)


def as_reply(result: object, *, private: bool = False, confidential: bool = False) -> Reply:
    """Normalise what a handler returned; a command's marks apply to every reply it gives."""
    if isinstance(result, Reply):
        if (private and not result.private) or (confidential and not result.confidential):
            return replace(result, private=True, confidential=confidential or result.confidential)
        return result
    if isinstance(result, Markup):
        return Reply(result, private=private, confidential=confidential)
    if isinstance(result, str):
        return Reply(Markup.trusted(result), private=private, confidential=confidential)
    raise TypeError(f"a command returned {type(result).__name__}, not a Reply")
