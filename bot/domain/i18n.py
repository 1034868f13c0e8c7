"""Messages marked for translation, and the reader they are rendered for.

A message is marked where it is written, ``_("Task {id} is yours.")``, and stays a message id
until the bot knows who reads it: :meth:`Markup.localized` looks it up in the reader's catalog
(``bot/locale/<code>/LC_MESSAGES/volunteer_bot.po``), formats numbers and dates the way that
language writes them and renders command references in the reader's platform syntax. So a
reply is in the language of the person it answers, and a post in the language of its room,
however long it waited in the outbox.

The catalogs are read-only package data, read once per language on first use.
"""

import gettext as _gettext
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

DOMAIN = "volunteer_bot"
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
SOURCE_LANGUAGE = "en"
# The 24 official languages of the European Union, by ISO 639-1 code.
EU_LANGUAGES: tuple[str, ...] = (
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr",
    "hu", "it", "lt", "lv", "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv",
)  # fmt: skip


class Msg(str):
    """A message id marked for translation; it is translated once a reader is known.

    ``plural`` makes it a plural message: the value named ``counter`` picks the form.
    ``context`` tells apart words that are spelt alike but mean different things.
    """

    context: str | None
    plural: str | None
    counter: str

    def __new__(
        cls, msgid: str, *, context: str | None = None, plural: str | None = None,
        count: str = "n",
    ) -> "Msg":  # fmt: skip
        """A message id with its context and plural form."""
        self = super().__new__(cls, msgid)
        self.context = context
        self.plural = plural
        self.counter = count
        return self

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (str(self), self.context, self.plural, self.counter))


def _rebuild(msgid: str, context: str | None, plural: str | None, count: str) -> Msg:
    return Msg(msgid, context=context, plural=plural, count=count)


# Contexts of the texts taken from command declarations (bot.catalogs extracts them).
COMMAND = "command"
CHOICE = "choice"
# Names of groups, commands and options, localised on Discord only (text platforms keep the
# English names, so instructions stay shareable).
NAME = "name"
MAX_NAME = 32
MAX_DESCRIPTION = 100


def valid_name(name: str) -> bool:
    """Whether a name keeps Discord's rule: 1-32 lowercase letters, digits, ``-`` or ``_``."""
    return (
        0 < len(name) <= MAX_NAME
        and all(c.isalnum() or c in "-_" for c in name)
        and name == name.lower()
    )


def localized_name(name: str, language: str) -> str:
    """A command or option name in ``language``, or the English one when it has none."""
    found = translation(language).messages.get((NAME, name))
    return found if isinstance(found, str) and valid_name(found) else name


def described(text: str) -> Msg:
    """A command declaration's description (a docstring line or a Param), for translation."""
    return Msg(text, context=COMMAND)


def _(msgid: str) -> Msg:
    """Mark a message for translation."""
    return Msg(msgid)


def pgettext(context: str, msgid: str) -> Msg:
    """Mark a message whose words are ambiguous without ``context``."""
    return Msg(msgid, context=context)


def ngettext(singular: str, plural: str, count: str = "n") -> Msg:
    """Mark a message with plural forms, chosen by the value named ``count``."""
    return Msg(singular, plural=plural, count=count)


def npgettext(context: str, singular: str, plural: str, count: str = "n") -> Msg:
    """A plural message with a context."""
    return Msg(singular, context=context, plural=plural, count=count)


@dataclass(frozen=True, slots=True)
class Translation:
    """One language's catalog: message strings by (context, msgid), and its plural rule."""

    language: str
    messages: Mapping[tuple[str | None, str], str | tuple[str, ...]] = field(default_factory=dict)
    plural: Callable[[int], int] = field(default=lambda n: int(n != 1))

    def text(self, msg: Msg, n: int | None = None) -> str:
        """The translated template of ``msg`` (for ``n``, if it is a plural message)."""
        found = self.messages.get((msg.context, str(msg)))
        if msg.plural is None:
            return found if isinstance(found, str) and found else str(msg)
        count = 1 if n is None else n
        if isinstance(found, tuple):
            index = self.plural(abs(count))
            if 0 <= index < len(found) and found[index]:
                return found[index]
        return str(msg) if count == 1 else msg.plural


@cache
def translation(language: str) -> Translation:
    """The catalog of ``language``; English (the source) when there is none."""
    if language == SOURCE_LANGUAGE or language not in EU_LANGUAGES:
        return Translation(SOURCE_LANGUAGE)
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    try:
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=language, domain=DOMAIN)
    except (OSError, ValueError) as exc:
        log.warning("no catalog for %s (%s): answering in English", language, exc)
        return Translation(SOURCE_LANGUAGE)
    messages: dict[tuple[str | None, str], str | tuple[str, ...]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        key = str(message.id[0] if isinstance(message.id, (list, tuple)) else message.id)
        string = message.string
        if isinstance(string, (list, tuple)):
            messages[(message.context, key)] = tuple(str(s or "") for s in string)
        elif string:
            messages[(message.context, key)] = str(string)
    return Translation(language, messages, _gettext.c2py(catalog.plural_expr))


@cache
def babel_locale(language: str) -> Locale:
    """Babel's locale data for a language code (Portuguese as written in Portugal)."""
    return Locale.parse({"pt": "pt_PT"}.get(language, language))


@dataclass(frozen=True, slots=True)
class Reader:
    """Who a text is rendered for: their language, their time zone and their platform.

    ``commands`` renders a command reference in the platform's syntax; ``timestamps`` is set
    where the platform shows each person a time in their own zone (Discord's ``<t:…>``);
    ``names`` is the language the platform shows its command, option and choice names in,
    where it localises them (Discord), if not ``language``.
    """

    language: str = SOURCE_LANGUAGE
    timezone: tzinfo = UTC
    platform: str = "console"
    commands: "Callable[[str, tuple[tuple[str, object], ...]], str] | None" = None
    timestamps: bool = False
    names: str | None = None

    @property
    def translation(self) -> Translation:
        """The catalog of the reader's language."""
        return translation(self.language)

    @property
    def locale(self) -> Locale:
        """Babel's data for the reader's language."""
        return babel_locale(self.language)

    def gettext(self, text: str) -> str:
        """``text`` in this reader's language if it is a marked message, else as it is."""
        return self.translation.text(text) if isinstance(text, Msg) else text


ENGLISH = Reader()


@dataclass(frozen=True, slots=True)
class LanguageName:
    """A language, named in the reader's language (``pl``: Polish, polski, Polnisch)."""

    code: str

    def name(self, reader: Reader) -> str:
        """The name of the language for ``reader``."""
        found = reader.locale.languages.get(self.code)
        return str(found) if found else self.code


@dataclass(frozen=True, slots=True)
class ChoiceName:
    """One of a command's fixed choices (a role, a status), as the reader picks it.

    Discord lists choices by their localised names, so there it is that name; elsewhere it
    is the word as it is typed (``translator``).
    """

    value: str

    def name(self, reader: Reader) -> str:
        """The choice as ``reader``'s platform shows it."""
        if reader.platform != "discord":
            return self.value
        return translation(reader.names or reader.language).text(Msg(self.value, context=CHOICE))


@dataclass(frozen=True, slots=True)
class CountryName:
    """A member state, named in the reader's language (EU codes: ``EL`` is Greece)."""

    code: str

    def name(self, reader: Reader) -> str:
        """The name of the country for ``reader``."""
        iso = {"EL": "GR"}.get(self.code, self.code)
        found = reader.locale.territories.get(iso)
        return str(found) if found else self.code


def when(value: datetime, reader: Reader) -> str:
    """A date and time (to the minute) as the reader's language writes it, in their zone."""
    from babel.dates import format_date, format_time

    local = value.astimezone(reader.timezone)
    joined = str(reader.locale.datetime_formats.get("medium", "{1} {0}"))
    return joined.replace("{1}", format_date(local, "medium", locale=reader.locale)).replace(
        "{0}", format_time(local, "short", locale=reader.locale)
    )


def day(value: date, reader: Reader, style: str = "medium") -> str:
    """A date as the reader's language writes it."""
    from babel.dates import format_date

    return format_date(value, style, locale=reader.locale)


def number(value: int | float, reader: Reader, spec: str = "") -> str:
    """A number as the reader's language writes it: 1.234.567 in German, 1 234 567 in French.

    ``spec`` is the template's format spec: ``.1%`` is a percentage with one decimal, ``.2f``
    a number with two, anything else a whole or plain number with grouping.
    """
    from babel.numbers import format_decimal, format_percent

    if spec.endswith("%"):
        digits = _digits(spec[:-1])
        # The locale's own pattern says where the sign goes ("12,3 %" in French): only the
        # number of decimals changes.
        pattern = reader.locale.percent_formats[None].pattern.split(";")[0]
        if digits:
            at = pattern.rfind("0") + 1
            pattern = pattern[:at] + "." + "0" * digits + pattern[at:]
        return format_percent(value, pattern, locale=reader.locale)
    if spec.endswith("f"):
        digits = _digits(spec[:-1])
        return format_decimal(value, "#,##0." + "0" * digits if digits else "#,##0",
                              locale=reader.locale)  # fmt: skip
    return format_decimal(value, locale=reader.locale)


def _digits(spec: str) -> int:
    try:
        return int(spec.rsplit(".", 1)[1]) if "." in spec else 0
    except ValueError:
        return 0
