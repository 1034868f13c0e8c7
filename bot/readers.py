"""Whose language, which time zone and which command syntax a text is rendered for.

A person's language is, in order: their own choice (``volunteer language``), the language
their Discord client is set to, their room's or server's from ``[bot] room_languages``, and
``[bot] language``. A reply goes in the language of the person it answers; a post to a room
goes in the room's, or, when it is meant for one person, in theirs.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import tzinfo
from functools import partial
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.commands import CommandSpec
from bot.config import Settings
from bot.context import Ctx
from bot.core import Registry
from bot.domain import NotFound, UserRef
from bot.domain.i18n import EU_LANGUAGES, SOURCE_LANGUAGE, Reader, localized_name, translation
from bot.domain.markup import USAGE
from bot.params import KIND_WORDS
from storage.db import DatabaseUnavailable
from storage.preferences import NONE, PreferenceRepo, Preferences

log = logging.getLogger(__name__)

Spell = Callable[..., str]

# Discord's client locales for the EU languages (it has none for et, ga, lv, mt, sk, sl, and
# Portuguese only as pt-BR); used both ways: a client's locale to our code and back.
DISCORD_LOCALES: dict[str, str] = {
    "bg": "bg", "cs": "cs", "da": "da", "de": "de", "el": "el", "en-GB": "en", "en-US": "en",
    "es-ES": "es", "fi": "fi", "fr": "fr", "hr": "hr", "hu": "hu", "it": "it", "lt": "lt",
    "nl": "nl", "pl": "pl", "pt-BR": "pt", "ro": "ro", "sv-SE": "sv",
}  # fmt: skip


def language_of_locale(locale: str | None) -> str | None:
    """Our language code for a client locale such as ``de`` or ``pt-BR``; None if not an EU one."""
    if not locale:
        return None
    if locale in DISCORD_LOCALES:
        return DISCORD_LOCALES[locale]
    code = locale.replace("_", "-").split("-")[0].lower()
    return code if code in EU_LANGUAGES else None


def zone(name: str | None, fallback: tzinfo) -> tzinfo:
    """The time zone called ``name``, or ``fallback`` when it is unset or unknown."""
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


# The languages whose command names a Discord client can show.
DISCORD_NAMED = frozenset(DISCORD_LOCALES.values())


def discord_names(language: str, client_language: str | None) -> str:
    """The language of the command names a Discord reader sees in their client.

    Their client's, when it is known (an interaction's locale), else the reader's; English
    for a language Discord has no locale for, since such a client shows the English names.
    """
    shown = language_of_locale(client_language) if client_language else language
    return shown if shown in DISCORD_NAMED else SOURCE_LANGUAGE


class CommandSyntax:
    """Spells command references the way one platform types them."""

    def __init__(self, registry: Registry, platform: str, prefix: str = "") -> None:
        self.registry = registry
        self.platform = platform
        self.prefix = prefix

    def __call__(
        self, path: str, args: tuple[tuple[str, object], ...], language: str = SOURCE_LANGUAGE,
        reader_language: str | None = None,
    ) -> str:  # fmt: skip
        """``task claim 7`` on the console, ``!task claim 7`` on Matrix, ``/task claim id:7``.

        On Discord, names are in ``language``, the one the reader's client shows them in; the
        kinds of value in a usage line (``id:<number>``) in ``reader_language``.
        """
        values = dict(args)
        try:
            spec, _used = self.registry.find(path.split())
        except NotFound:
            log.warning("a reply refers to an unknown command %r", path)
            return " ".join([self.prefix + path, *(_text(v) for v in values.values())])
        if args == USAGE:
            return self.usage(spec, language, reader_language)
        known = {arg.name for arg in spec.args}
        if unknown := set(values) - known:
            log.warning("a reply refers to %r with unknown options %s", path, sorted(unknown))
        if self.platform == "discord":
            words = ["/" + _slash_name(spec, language)]
            words += [
                f"{localized_name(a.name, language)}:{_text(values[a.name])}"
                for a in spec.args
                if a.name in values
            ]
            return " ".join(words)
        words = [self.prefix + spec.qualified_name]
        for arg in spec.args:
            if arg.name not in values:
                continue
            value = values[arg.name]
            if arg.positional:
                words.append(str(value) if arg.rest else _text(value))
            elif arg.kind.wire == "boolean":
                if value:
                    words.append(arg.option)
            else:
                words += [arg.option, _text(value)]
        return " ".join(words)

    def usage(
        self,
        spec: CommandSpec,
        language: str = SOURCE_LANGUAGE,
        reader_language: str | None = None,
    ) -> str:
        """The usage line: ``task claim <id>``, ``!task claim <id>``, ``/task claim id:<id>``."""
        catalog = translation(reader_language or language)

        def kind_word(kind: str) -> str:
            word = KIND_WORDS.get(kind)
            return catalog.text(word) if word is not None else kind

        if self.platform != "discord":
            return self.prefix + spec.usage(kind_word)
        parts = ["/" + _slash_name(spec, language)]
        for arg in spec.args:
            value = (
                "|".join(arg.choices) if 0 < len(arg.choices) <= 5 else kind_word(arg.kind.name)
            )
            shown = f"{localized_name(arg.name, language)}:<{value}>"
            parts.append(shown if arg.required else f"[{shown}]")
        return " ".join(parts)


def _slash_name(spec: CommandSpec, language: str) -> str:
    names = [spec.group, spec.name] if spec.group else [spec.name]
    return " ".join(localized_name(name, language) for name in names)


def _text(value: object) -> str:
    text = str(value)
    if not text or (any(c.isspace() for c in text) and not text.startswith("<")):
        return '"' + text.replace('"', "'") + '"'
    return text


class Readers:
    """Builds the :class:`Reader` for a person or a room."""

    def __init__(
        self, settings: Settings, preferences: PreferenceRepo, syntaxes: Mapping[str, Spell]
    ) -> None:
        self.default = settings.bot.language
        self.rooms = dict(settings.bot.room_languages)
        self.timezone: tzinfo = ZoneInfo(settings.campaign.timezone)
        self.preferences = preferences
        self.syntaxes = syntaxes

    def room_language(self, target: str, server: str | None = None) -> str | None:
        """The configured language of a room (or of its Discord server), if any."""
        found = self.rooms.get(target)
        if found is None and server is not None:
            found = self.rooms.get(f"{target.partition(':')[0]}:{server}")
        return found

    def for_room(self, target: str, server: str | None = None) -> Reader:
        """How a post to a room is written: in the room's language, the campaign's zone."""
        language = self.room_language(target, server) or self.default
        return self._reader(language, self.timezone, target.partition(":")[0])

    async def chosen(self, user: UserRef) -> Preferences:
        """What the person chose; nothing when storage cannot say (they get the defaults)."""
        try:
            return await self.preferences.of(user)
        except DatabaseUnavailable as exc:
            log.warning("preferences not read: %s [%s]", exc, exc.code or exc.kind.value)
            return NONE

    async def for_person(
        self, user: UserRef, target: str, *, server: str | None = None,
        client_language: str | None = None,
    ) -> Reader:  # fmt: skip
        """How an answer to ``user`` in ``target`` is written."""
        chosen = await self.chosen(user)
        language = (
            chosen.language
            or language_of_locale(client_language)
            or self.room_language(target, server)
            or self.default
        )
        return self._reader(
            language, zone(chosen.timezone, self.timezone), target.partition(":")[0],
            client_language=client_language,
        )  # fmt: skip

    async def for_ctx(self, ctx: Ctx) -> Reader:
        """How the answer to a command is written."""
        place = ctx.place
        return await self.for_person(ctx.user, place.target, server=place.server,
                                     client_language=ctx.client_language)  # fmt: skip

    async def for_post(self, platform: str, target: str, recipient: str | None) -> Reader:
        """How a post is written: for its recipient when it names one, else for the room."""
        if recipient is None:
            return self.for_room(target)
        return await self.for_person(UserRef(platform, recipient, ""), target)

    def _reader(
        self, language: str, timezone: tzinfo, platform: str, client_language: str | None = None
    ) -> Reader:
        language = language if language in EU_LANGUAGES else SOURCE_LANGUAGE
        names = discord_names(language, client_language) if platform == "discord" else language
        syntax = self.syntaxes.get(platform) or self.syntaxes.get("console")
        return Reader(
            language=language,
            timezone=timezone,
            platform=platform,
            commands=partial(syntax, language=names, reader_language=language) if syntax else None,
            timestamps=platform == "discord",
            names=names,
        )
