"""Neutral parameter kinds and the pure parsers behind them.

Every platform converts arguments with these functions: text commands parse strings, Discord
hands over already-typed values that are checked against the same bounds.
"""

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from bot.context import Attachment
from bot.domain import COUNTRIES, COUNTRY_ALIASES, LANGUAGES, BadArgument, UserRef
from bot.domain.i18n import CountryName, LanguageName, Msg, _, pgettext
from bot.domain.text import preview

# What each parser says about input it cannot read: one whole sentence per case.
ERRORS: dict[str, Msg] = {
    # Translators: {codes} lists codes, typed as they are.
    "language": _("`{word}` is not an official EU language. Use a two-letter code: {codes}."),
    # Translators: {country_code} is a country code typed instead of a language code.
    "language_is_country": _(
        "`{word}` is not an official EU language ({country_code} is the country {country}; its "
        "language is `{code}`, {language}). Use a two-letter code: {codes}."
    ),
    "language_guess": _(
        "`{word}` is not an official EU language — did you mean `{code}` ({language})? Use a "
        "two-letter code: {codes}."
    ),
    "languages_none": _("Give at least one language code, e.g. `de,fr`."),
    "url_long": _("That link is {n:,} characters long; {max:,} at most."),
    "url": _(
        "`{text}` is not a web address. Give a link starting with https://, e.g. "
        "`https://example.org/leaflet.odt`."
    ),
    # Translators: {codes} lists codes, typed as they are.
    "country": _("`{word}` is not an EU member state. Use a code: {codes}."),
    "country_is_language": _(
        "`{word}` is not an EU member state (`{code}` is the language {language}). Use a code: "
        "{codes}."
    ),
    "country_guess": _(
        "`{word}` is not an EU member state — did you mean `{code}` ({country})? Use a code: "
        "{codes}."
    ),
    "duration": _("`{text}` is not a duration. Try `90s`, `15m`, `2h30m`, `3d` or `1w`."),
    "duration_zero": _("`{text}` is no time at all; give a duration above zero."),
    "duration_long": _("`{text}` is too far ahead; the limit is two years."),
    "zone_long": _(
        "That is {length:,} characters long, and no time zone is. Use an Area/City name like "
        "`Europe/Brussels`."
    ),
    "zone": _("`{name}` is not a time zone. Use an Area/City name like `Europe/Brussels`."),
    "zone_guess": _(
        "`{name}` is not a time zone — did you mean `{guess}`? Use an Area/City name like "
        "`Europe/Brussels`."
    ),
    "skipped_hour": _(
        "`{text}` does not exist in {zone}: the clocks skip that hour. Pick another time."
    ),
    "too_far_ahead": _("`{text}` is too far ahead: the limit is two years from now."),
    "too_far_back": _("`{text}` is too far in the past to be meant."),
    "when": _(
        "`{text}` is not a date or time I can read. Try `2026-12-01`, `2026-12-01 14:30`, "
        "`14:30`, `tomorrow` or `in 3d`."
    ),
    "time_of_day": _("`{text}` is not a time of day; use 24-hour `HH:MM`."),
    "integer": _("`{text}` is not a whole number."),
    "too_large": _("`{text}` is far too large a number."),
    "boolean": _("`{text}` is not yes or no."),
    "user": _("Name a person, e.g. `alice`."),
    # Translators: `volunteer-bot tasks import FILE.csv` is a shell command, typed as it is.
    "file": _(
        "A file cannot come with a text command. Attach it to the slash command on Discord, "
        "or run `volunteer-bot tasks import FILE.csv` where the bot runs."
    ),
    # Translators: {what} names what was asked for ("role", "status"); {choices} are words
    # typed as they are.
    "choice": _("`{text}` is not a valid {what}. Choose one of: {choices}."),
    "choice_guess": _(
        "`{text}` is not a valid {what} — did you mean `{guess}`? Choose one of: {choices}."
    ),
}
# How the parameters with a fixed set of choices are called in those errors.
CHOICE_NAMES: dict[str, Msg] = {
    "role": pgettext("parameter", "role"),
    "kind": pgettext("parameter", "kind"),
    "priority": pgettext("parameter", "priority"),
    "status": pgettext("parameter", "status"),
}
# How each kind of value a parameter takes reads in a sentence (help) or a usage line, by
# the kind's name (an enum's kind is named after it).
KIND_WORDS: dict[str, Msg] = {
    "number": pgettext("parameter kind", "number"),
    "text": pgettext("parameter kind", "text"),
    "yes/no": pgettext("parameter kind", "yes/no"),
    "language": pgettext("parameter kind", "language"),
    "languages": pgettext("parameter kind", "languages"),
    "link": pgettext("parameter kind", "link"),
    "country": pgettext("parameter kind", "country"),
    "time zone": pgettext("parameter kind", "time zone"),
    "duration": pgettext("parameter kind", "duration"),
    "when": pgettext("parameter kind", "date and time"),
    "user": pgettext("parameter kind", "person"),
    "file": pgettext("parameter kind", "file"),
    "kind": pgettext("parameter kind", "task kind"),
    "priority": pgettext("parameter kind", "priority"),
    "role": pgettext("parameter kind", "role"),
    "status": pgettext("parameter kind", "status"),
    "verdict": pgettext("parameter kind", "verdict"),
}


@dataclass(frozen=True, slots=True)
class Param:
    """Metadata for one command parameter, used as ``Annotated[T, Param(...)]``."""

    description: str
    min: int | None = None
    max: int | None = None
    max_length: int | None = None
    rest: bool = False
    autocomplete: bool = False
    # Free text that may keep its line breaks (a description, a note); others become one line.
    multiline: bool = False


class Language(str):
    """An official EU language code such as ``pl``."""


class Country(str):
    """An EU member state code such as ``PL`` (``EL`` for Greece)."""


class LanguageList(tuple[str, ...]):
    """Comma-separated language codes, e.g. ``de,fr``."""


class Targets(tuple[str, ...]):
    """Target languages: ``pl,de,fr``, or ``all`` (every EU language but the source)."""

    every: bool = False


class Url(str):
    """A web address such as ``https://example.org/leaflet.odt``."""


class TimeZone(str):
    """An IANA time zone name such as ``Europe/Brussels``."""


class When(datetime):
    """A moment given as ISO date/time or ``in 3d``; stored as aware UTC."""


class Duration(timedelta):
    """A span such as ``90s``, ``15m``, ``2h30m``, ``3d`` or ``1w``."""


@dataclass(frozen=True, slots=True)
class ParseEnv:
    """What parsers may need beyond the text: the clock, the campaign zone, the platform."""

    now: datetime
    timezone: str
    platform: str


# --- languages and countries -------------------------------------------------------------

_LANGUAGE_BY_NAME = {name.lower(): code for code, name in LANGUAGES.items()}
_COUNTRY_BY_NAME = {name.lower(): code for code, name in COUNTRIES.items()}
# Language codes mistaken for country codes and back (Czech cs / Czechia CZ ...).
_LANGUAGE_FOR_COUNTRY = {
    "CZ": "cs", "EL": "el", "GR": "el", "SI": "sl", "DK": "da", "SE": "sv", "EE": "et",
    "IE": "ga", "AT": "de", "BE": "nl", "CY": "el", "LU": "fr",
}  # fmt: skip


def _closest(word: str, options: list[str]) -> str | None:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return match[0] if match else None


def parse_language(text: str) -> Language:
    """Read one language by code or English name (``pl``, ``Polish``)."""
    word = text.strip()
    low = word.lower()
    if low in LANGUAGES:
        return Language(low)
    if low in _LANGUAGE_BY_NAME:
        return Language(_LANGUAGE_BY_NAME[low])
    up = word.upper()
    codes = " ".join(LANGUAGES)
    if up in _LANGUAGE_FOR_COUNTRY and up in COUNTRIES:
        code = _LANGUAGE_FOR_COUNTRY[up]
        raise BadArgument(
            ERRORS["language_is_country"], word=preview(word), country_code=up,
            country=CountryName(up), code=code, language=LanguageName(code), codes=codes,
        )  # fmt: skip
    guess = _closest(low, [*LANGUAGES, *_LANGUAGE_BY_NAME])
    if guess:
        code = _LANGUAGE_BY_NAME.get(guess, guess)
        raise BadArgument(
            ERRORS["language_guess"], word=preview(word), code=code,
            language=LanguageName(code), codes=codes,
        )  # fmt: skip
    raise BadArgument(ERRORS["language"], word=preview(word), codes=codes)


def parse_language_list(text: str) -> LanguageList:
    """Read ``de,fr`` or ``de fr``; duplicates collapse, order is kept."""
    items = [part for part in re.split(r"[,\s;]+", text.strip()) if part]
    if not items:
        raise BadArgument(ERRORS["languages_none"])
    return LanguageList(dict.fromkeys(parse_language(item) for item in items))


EVERY_LANGUAGE = "all"


def parse_targets(text: str) -> Targets:
    """Read ``pl,de,fr`` as :func:`parse_language_list` does, or ``all``: all 24 languages.

    ``all`` comes back with ``every`` set, so the caller can leave out the source language.
    """
    if text.strip().lower() == EVERY_LANGUAGE:
        targets = Targets(LANGUAGES)
        targets.every = True
        return targets
    return Targets(parse_language_list(text))


MAX_URL = 2000
URL = re.compile(r"https?://[^\s/?#<>\"]+\.[^\s/?#<>\"]+(?:[/?#][^\s<>\"]*)?", re.IGNORECASE)


def parse_url(text: str) -> Url:
    """Read one http(s) address, e.g. ``https://example.org/leaflet.odt``."""
    word = text.strip().strip("<>")
    if len(word) > MAX_URL:
        raise BadArgument(ERRORS["url_long"], n=len(word), max=MAX_URL)
    if not URL.fullmatch(word):
        raise BadArgument(ERRORS["url"], text=word[:80])
    return Url(word)


def find_url(text: str) -> str | None:
    """The first http(s) address in free text, without trailing punctuation; or None."""
    match = URL.search(text)
    if match is None:
        return None
    return match.group(0).rstrip(".,;:!?)]}'\"")[:MAX_URL]


def parse_country(text: str) -> Country:
    """Read one member state by EU code or English name (``PL``, ``Poland``, ``GR``→``EL``)."""
    word = text.strip()
    up = word.upper()
    up = COUNTRY_ALIASES.get(up, up)
    if up in COUNTRIES:
        return Country(up)
    if word.lower() in _COUNTRY_BY_NAME:
        return Country(_COUNTRY_BY_NAME[word.lower()])
    low = word.lower()
    codes = " ".join(COUNTRIES)
    if low in LANGUAGES:
        raise BadArgument(
            ERRORS["country_is_language"], word=preview(word), code=low,
            language=LanguageName(low), codes=codes,
        )  # fmt: skip
    guess = _closest(low, [c.lower() for c in COUNTRIES] + list(_COUNTRY_BY_NAME))
    if guess:
        code = _COUNTRY_BY_NAME.get(guess, guess.upper())
        raise BadArgument(
            ERRORS["country_guess"], word=preview(word), code=code, country=CountryName(code),
            codes=codes,
        )  # fmt: skip
    raise BadArgument(ERRORS["country"], word=preview(word), codes=codes)


# --- time -------------------------------------------------------------------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(
    r"(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)(?![a-z])",
    re.IGNORECASE,
)
MAX_DURATION = timedelta(days=731)
# A moment is at most this far ahead (nothing a campaign plans lies further out) and this far
# back (commands say "that is already past" themselves), so that every date the bot stores
# can be shown in any zone.
MAX_AHEAD = MAX_DURATION
MAX_BACK = timedelta(days=366 * 30)
MAX_ZONE_NAME = 64


def parse_duration(text: str) -> Duration:
    """Read ``90s``, ``15m``, ``2h30m``, ``1d 2h``, ``3 days`` (at most two years)."""
    raw = text.strip()
    body = re.sub(r"^(in|\+)\s*", "", raw, flags=re.IGNORECASE)
    pos = 0
    seconds = 0
    for match in _DURATION_PART.finditer(body):
        if body[pos : match.start()].strip(" ,"):
            break
        seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2)[0].lower()]
        pos = match.end()
    if pos == 0 or body[pos:].strip(" ,"):
        raise BadArgument(ERRORS["duration"], text=preview(raw))
    if seconds <= 0:
        raise BadArgument(ERRORS["duration_zero"], text=preview(raw))
    if seconds > MAX_DURATION.total_seconds():
        raise BadArgument(ERRORS["duration_long"], text=preview(raw))
    return Duration(seconds=seconds)


def parse_timezone(text: str) -> TimeZone:
    """Read an IANA zone name such as ``Europe/Warsaw`` (case-insensitive)."""
    name = text.strip()
    if len(name) > MAX_ZONE_NAME:
        raise BadArgument(ERRORS["zone_long"], length=len(name))
    try:
        ZoneInfo(name)
        if "/" in name or name == "UTC":
            return TimeZone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    zones = _zone_names()
    if name.lower() in zones:
        return TimeZone(zones[name.lower()])
    guess = _closest(name.lower(), list(zones))
    if guess:
        raise BadArgument(ERRORS["zone_guess"], name=preview(name), guess=zones[guess])
    raise BadArgument(ERRORS["zone"], name=preview(name))


_ZONES: dict[str, str] = {}


def _zone_names() -> dict[str, str]:
    if not _ZONES:
        _ZONES.update({z.lower(): z for z in available_timezones() if "/" in z or z == "UTC"})
    return _ZONES


def local_to_utc(day: date, at: time, zone: ZoneInfo, original: str) -> datetime:
    """Attach a zone to a wall-clock time, refusing times a DST change skips."""
    local = datetime.combine(day, at, tzinfo=zone)
    back = local.astimezone(ZoneInfo("UTC")).astimezone(zone)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise BadArgument(ERRORS["skipped_hour"], text=preview(original), zone=str(zone))
    return local.astimezone(ZoneInfo("UTC"))


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_when(
    text: str,
    env: ParseEnv,
    *,
    zone: str | None = None,
    date_only_at: time = time(9, 0),
) -> When:
    """Read a moment: ``in 3d``, ``tomorrow``, ``14:30``, ``2026-12-01``, ``2026-12-01 14:30``.

    Wall-clock times are read in ``zone`` (default: the campaign's). A bare date means
    ``date_only_at`` that day. The result is aware UTC, at most two years ahead.
    """
    raw = text.strip()
    try:
        moment = _parse_when(raw, env, zone, date_only_at)
        offset = moment.timestamp() - env.now.timestamp()
    except OverflowError:  # a year 1 or 9999 that a zone pushes off the calendar
        year = re.match(r"(\d{4})-", raw)
        offset = -1.0 if year and int(year.group(1)) < env.now.year else 1.0
        offset *= MAX_BACK.total_seconds() * 2
    if offset > MAX_AHEAD.total_seconds():
        raise BadArgument(ERRORS["too_far_ahead"], text=preview(raw))
    if -offset > MAX_BACK.total_seconds():
        raise BadArgument(ERRORS["too_far_back"], text=preview(raw))
    return moment


def _parse_when(raw: str, env: ParseEnv, zone: str | None, date_only_at: time) -> When:
    tz = ZoneInfo(zone or env.timezone)
    low = raw.lower()
    today = env.now.astimezone(tz).date()
    if low.startswith(("in ", "+")) or _DURATION_PART.fullmatch(low.replace(" ", "")):
        return _as_when(env.now + parse_duration(raw))
    if low in ("now",):
        return _as_when(env.now)
    if low in ("today", "tomorrow"):
        day = today if low == "today" else today + timedelta(days=1)
        return _as_when(local_to_utc(day, date_only_at, tz, raw))
    clock = _TIME.match(low)
    if clock:
        at = _make_time(clock, raw)
        moment = local_to_utc(today, at, tz, raw)
        if moment <= env.now:
            moment = local_to_utc(today + timedelta(days=1), at, tz, raw)
        return _as_when(moment)
    try:
        parsed = datetime.fromisoformat(raw.replace(" ", "T", 1) if " " in raw else raw)
    except ValueError:
        raise BadArgument(ERRORS["when"], text=preview(raw)) from None
    if parsed.tzinfo is not None:
        return _as_when(parsed.astimezone(ZoneInfo("UTC")))
    if len(raw) <= 10:  # a bare date
        return _as_when(local_to_utc(parsed.date(), date_only_at, tz, raw))
    return _as_when(local_to_utc(parsed.date(), parsed.time(), tz, raw))


def _make_time(match: re.Match[str], raw: str) -> time:
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise BadArgument(ERRORS["time_of_day"], text=preview(raw))
    return time(hour, minute, second)


def _as_when(moment: datetime) -> When:
    utc = moment.astimezone(ZoneInfo("UTC"))
    return When(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, utc.tzinfo
    )


# --- kinds: how each annotated type is read, checked and shown ---------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """How values of one parameter type are parsed from text and shown in help."""

    name: str  # shown in usage lines, e.g. "number", "language"
    wire: str  # "string", "integer", "boolean", "user" or "attachment": the Discord option type
    parse: Callable[[str, ParseEnv], Any]
    choices: tuple[str, ...] = ()


# No number a command takes (an id, a count, a page) is larger than a PostgreSQL integer
# column holds; longer digit strings are not even read.
LARGEST = 2**31 - 1
MAX_DIGITS = 18


def _parse_int(text: str, env: ParseEnv) -> int:
    cleaned = text.strip().lstrip("#").replace("_", "")
    if re.fullmatch(rf"[+-]?\d{{1,{MAX_DIGITS}}}", cleaned):
        return int(cleaned)
    if re.fullmatch(r"[+-]?\d+", cleaned):
        raise too_large(text)
    raise BadArgument(ERRORS["integer"], text=preview(text))


def too_large(text: str) -> BadArgument:
    """The error for a number larger than any database column holds."""
    return BadArgument(ERRORS["too_large"], text=preview(text, 24))


_TRUE = {"yes", "y", "true", "1", "on"}
_FALSE = {"no", "n", "false", "0", "off"}


def _parse_bool(text: str, env: ParseEnv) -> bool:
    low = text.strip().lower()
    if low in _TRUE | _FALSE:
        return low in _TRUE
    raise BadArgument(ERRORS["boolean"], text=preview(text))


def _parse_user(text: str, env: ParseEnv) -> UserRef:
    name = text.strip()
    if env.platform == "console":
        name = name.lstrip("@")
    if not name:
        raise BadArgument(ERRORS["user"])
    return UserRef(env.platform, name)


def _parse_file(text: str, env: ParseEnv) -> Attachment:
    # Text platforms carry no file with a command; Discord hands one over as an Attachment.
    raise BadArgument(ERRORS["file"])


def enum_kind(enum: type[Enum]) -> Kind:
    """A kind whose values are the members of ``enum``."""
    values = tuple(str(member.value) for member in enum)
    name = enum.__name__.lower().replace("task", "")
    what: str = CHOICE_NAMES.get(name, name)

    def parse(text: str, env: ParseEnv) -> Enum:
        word = text.strip().lower().replace("_", "-")
        for member in enum:
            if word == member.value:
                return member
        # Accept unambiguous prefixes and plurals: "trans" -> translator, "translators".
        starts = [m for m in enum if str(m.value).startswith(word.rstrip("s"))] if word else []
        if len(starts) == 1:
            return starts[0]
        guess = _closest(word, list(values))
        shown = preview(text.strip())
        if guess:
            raise BadArgument(ERRORS["choice_guess"], text=shown, what=what, guess=guess,
                              choices=", ".join(values))  # fmt: skip
        raise BadArgument(ERRORS["choice"], text=shown, what=what, choices=", ".join(values))

    return Kind(name, "string", parse, values)


KINDS: dict[type, Kind] = {
    int: Kind("number", "integer", _parse_int),
    str: Kind("text", "string", lambda text, env: text),
    bool: Kind("yes/no", "boolean", _parse_bool),
    Language: Kind("language", "string", lambda text, env: parse_language(text)),
    LanguageList: Kind("languages", "string", lambda text, env: parse_language_list(text)),
    Targets: Kind("languages", "string", lambda text, env: parse_targets(text)),
    Url: Kind("link", "string", lambda text, env: parse_url(text)),
    Country: Kind("country", "string", lambda text, env: parse_country(text)),
    TimeZone: Kind("time zone", "string", lambda text, env: parse_timezone(text)),
    Duration: Kind("duration", "string", lambda text, env: parse_duration(text)),
    When: Kind("when", "string", lambda text, env: parse_when(text, env)),
    UserRef: Kind("user", "user", _parse_user),
    Attachment: Kind("file", "attachment", _parse_file),
}


def kind_for(annotation: type) -> Kind:
    """The kind for a parameter type; raises TypeError for a type no platform can carry."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return enum_kind(annotation)
    try:
        return KINDS[annotation]
    except KeyError:
        raise TypeError(f"no parameter kind for {annotation!r}") from None
