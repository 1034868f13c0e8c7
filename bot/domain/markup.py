"""Text that mixes our own light markup with untrusted user values.

A template is trusted: it may use ``**bold**`` and ```code``` markers. Values substituted
into it are untrusted: every renderer escapes them for its platform, so a task title can never
ping ``@everyone``, open a link or inject HTML.

A template marked for translation (:class:`bot.domain.i18n.Msg`) stays a message until the
markup is rendered for a reader: :meth:`Markup.localized` translates it, formats its numbers
and dates for the reader's language and renders command references (:func:`cmd`) in the
reader's platform syntax. Rendering without a reader renders for English on the console.
"""

import html
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.domain.i18n import (
    ENGLISH,
    ChoiceName,
    CountryName,
    LanguageName,
    Msg,
    Reader,
    day,
    number,
    when,
)

_FIELDS = string.Formatter()
# Markdown's special characters get a backslash; a zero-width joiner after "@" keeps mass
# mentions inert even where allowed_mentions is not honoured (e.g. a copy pasted elsewhere).
# One table, so escaping a value is a single pass.
_MD_ESCAPES = str.maketrans({c: "\\" + c for c in "\\*_~`|>#[]()<"} | {"@": "@\u200b"})
_MARKER = re.compile(r"(\*\*|`)")
_BOLD = re.compile(r"\*\*")
# Format specs written in the reader's locale: grouping, fixed decimals, percentages.
_LOCAL_SPEC = re.compile(r"^(,|,?\.\d+[f%]|%)$")


@dataclass(frozen=True, slots=True)
class Command:
    """A reference to a command, e.g. ``task claim`` with ``id=7``.

    Each platform types it its own way: ``task claim 7``, ``!task claim 7``,
    ``/task claim id:7``.
    """

    path: str
    args: tuple[tuple[str, object], ...] = ()

    def text(self) -> str:
        """The console's spelling, for readers without a platform syntax."""
        return " ".join([self.path, *(_arg_text(v) for _, v in self.args)])


def cmd(path: str, /, **args: object) -> "Markup":
    """A command reference, rendered as code in the reader's platform syntax."""
    return Markup((Command(path, tuple(args.items())),))


def usage(path: str) -> "Markup":
    """A command's usage line in the reader's platform syntax, e.g. ``/task claim id:<id>``."""
    return Markup((Command(path, USAGE),))


# The arguments of a Command that stands for its usage line.
USAGE: tuple[tuple[str, object], ...] = (("", "usage"),)


def _arg_text(value: object) -> str:
    text = str(value)
    return f'"{text}"' if not text or any(c.isspace() for c in text) else text


@dataclass(frozen=True, slots=True)
class Text:
    """A translatable template with its values, kept until a reader is known."""

    msg: Msg
    values: tuple[tuple[str, object], ...]


Part = tuple[bool, str] | Text | Command


@dataclass(frozen=True, slots=True)
class Markup:
    """A sequence of parts: (trusted, text) pairs, translatable texts, command references."""

    parts: tuple[Part, ...] = ()

    @classmethod
    def format(cls, template: str, /, **values: object) -> "Markup":
        """Fill ``{name}`` fields of a trusted template with untrusted values.

        A template marked for translation is kept with its values and filled when rendered.
        """
        if isinstance(template, Msg):
            return cls((Text(template, tuple(values.items())),))
        if any(_for_reader(v) for v in values.values()):
            # Not ours to translate, but its values are written for the reader: kept too.
            return cls((Text(Msg(template, context=_UNTRANSLATED), tuple(values.items())),))
        return cls(tuple(_fill(template, values, ENGLISH)))

    @property
    def is_resolved(self) -> bool:
        """True when nothing is left to translate or to spell for a platform."""
        return all(isinstance(p, tuple) for p in self.parts)

    def localized(self, reader: Reader = ENGLISH) -> "Markup":
        """The markup written for ``reader``.

        Translated, with numbers and dates in their locale and command references in their
        platform's syntax.
        """
        if self.is_resolved:
            return self
        return Markup(tuple(_resolve(self.parts, reader)))

    @classmethod
    def trusted(cls, text: str) -> "Markup":
        """Markup written by the bot itself (no user values)."""
        return cls(((True, text),))

    @classmethod
    def untrusted(cls, text: str) -> "Markup":
        """A bare user value."""
        return cls(((False, text),))

    def __add__(self, other: "Markup | str") -> "Markup":
        if isinstance(other, str):
            other = Markup.trusted(other)
        return Markup(self.parts + other.parts)

    def join(self, items: Iterable["Markup | str"]) -> "Markup":
        """Join items with this markup as separator, like ``str.join``."""
        out: list[Part] = []
        for i, item in enumerate(items):
            if i:
                out.extend(self.parts)
            out.extend((item if isinstance(item, Markup) else Markup.trusted(item)).parts)
        return Markup(tuple(out))

    def truncated(self, limit: int, tail: str = "…") -> "Markup":
        """At most ``limit`` characters of text, ending in the trusted ``tail`` when cut."""
        if not self.is_resolved:
            return self.localized().truncated(limit, tail)
        if sum(len(text) for _, text in self._pairs()) <= limit:
            return self
        kept: list[Part] = []
        room = max(0, limit - len(tail))
        for trusted, text in self._pairs():
            if len(text) >= room:
                kept.append((trusted, text[:room]))
                break
            kept.append((trusted, text))
            room -= len(text)
        return Markup((*kept, (True, tail)))

    def _pairs(self) -> tuple[tuple[bool, str], ...]:
        parts = self.parts if self.is_resolved else self.localized().parts
        return parts  # type: ignore[return-value]

    def dump(self) -> list[Any]:
        """A JSON-ready form that :meth:`load` turns back into an equal markup."""
        return [_dump_part(p) for p in self.parts]

    @classmethod
    def load(cls, data: list[Any]) -> "Markup":
        """Inverse of :meth:`dump`."""
        return cls(tuple(_load_part(p) for p in data))

    def to_json(self) -> str:
        """Serialise for the outbox table."""
        return json.dumps(self.dump(), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> "Markup":
        """Inverse of :meth:`to_json`."""
        return cls.load(json.loads(data))

    def plain(self, reader: Reader = ENGLISH) -> str:
        """Plain text: bold markers dropped, code backticks kept, values verbatim."""
        pairs = self.localized(reader)._pairs()
        return "".join(_BOLD.sub("", s) if trusted else s for trusted, s in pairs)

    def html(self, reader: Reader = ENGLISH) -> str:
        """HTML: markers become tags, values and literals are escaped."""
        out: list[str] = []
        open_tags: list[str] = []
        for trusted, text in self.localized(reader)._pairs():
            if not trusted:
                out.append(html.escape(text).replace("\n", "<br>"))
                continue
            for piece in _MARKER.split(text):
                tag = {"**": "strong", "`": "code"}.get(piece)
                if tag is None:
                    out.append(html.escape(piece).replace("\n", "<br>"))
                elif open_tags and open_tags[-1] == tag:
                    open_tags.pop()
                    out.append(f"</{tag}>")
                else:
                    open_tags.append(tag)
                    out.append(f"<{tag}>")
        out.extend(f"</{tag}>" for tag in reversed(open_tags))
        return "".join(out)

    def markdown(self, reader: Reader = ENGLISH) -> str:
        """Discord-flavoured Markdown: literals kept, values escaped."""
        out: list[str] = []
        in_code = False
        for trusted, text in self.localized(reader)._pairs():
            if trusted:
                out.append(text)
                in_code ^= text.count("`") % 2 == 1
            elif in_code:
                out.append(text.replace("`", "\u02cb"))
            else:
                out.append(text.translate(_MD_ESCAPES))
        return "".join(out)

    def __str__(self) -> str:
        return self.plain()


# The context of templates that are not translated (no catalog has it): "{name} ({code})".
_UNTRANSLATED = "untranslated"


def _for_reader(value: object) -> bool:
    """Whether a value is written differently for each reader (a name, a moment)."""
    return isinstance(value, (LanguageName, CountryName, ChoiceName, datetime, date)) or (
        isinstance(value, Markup) and not value.is_resolved
    )


def _fill(template: str, values: Mapping[str, object], reader: Reader) -> list[Part]:
    parts: list[Part] = []
    for literal, name, spec, _conv in _FIELDS.parse(template):
        if literal:
            parts.append((True, literal))
        if name is not None:
            parts.extend(_value(values[name], spec or "", reader))
    return parts


def _value(value: object, spec: str, reader: Reader) -> list[Part]:
    if isinstance(value, Markup):
        return list(value.parts)
    if isinstance(value, Msg):  # one of our own words, e.g. a status name
        return [Text(value, ())]
    if isinstance(value, (LanguageName, CountryName, ChoiceName)):
        return [(False, value.name(reader))]
    if isinstance(value, datetime):
        if reader.timestamps:  # the client shows it in the reader's own zone and language
            return [(True, f"<t:{int(value.timestamp())}:f>")]
        return [(False, when(value, reader))]
    if isinstance(value, date):
        return [(False, day(value, reader))]
    # A quantity says how it is written ({count:,} or {share:.1%}); an id ({id}) stays as is.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _LOCAL_SPEC.match(spec):
        return [(False, number(value, reader, spec))]
    return [(False, format(value, spec))]


def _resolve(parts: Iterable[Part], reader: Reader) -> Iterable[tuple[bool, str]]:
    for part in parts:
        if isinstance(part, tuple):
            yield part
        elif isinstance(part, Command):
            spelt = reader.commands(part.path, part.args) if reader.commands else part.text()
            yield from ((True, "`"), (False, spelt), (True, "`"))
        else:
            yield from _resolve(_translate(part, reader), reader)


def _translate(part: Text, reader: Reader) -> list[Part]:
    values = dict(part.values)
    msg = part.msg
    count = values.get(msg.counter) if msg.plural is not None else None
    template = reader.translation.text(msg, count if isinstance(count, int) else None)
    return filled(template, part, reader)


def filled(template: str, part: Text, reader: Reader) -> list[Part]:
    """A translation of ``part`` filled with its values; the source if its fields differ."""
    values = dict(part.values)
    try:
        return _fill(template, values, reader)
    except (KeyError, IndexError, ValueError):
        msg = part.msg
        count = values.get(msg.counter)
        source = str(msg) if msg.plural is None or count == 1 else msg.plural
        return _fill(source, values, reader)


# -- JSON form (the outbox keeps markup until it is sent) --------------------------------------


def _dump_part(part: Part) -> Any:
    if isinstance(part, tuple):
        return [int(part[0]), part[1]]
    if isinstance(part, Command):
        return {"cmd": part.path, "args": [[k, _dump_value(v)] for k, v in part.args]}
    msg = part.msg
    return {
        "msg": str(msg), "ctx": msg.context, "plural": msg.plural, "count": msg.counter,
        "values": [[k, _dump_value(v)] for k, v in part.values],
    }  # fmt: skip


def _load_part(data: Any) -> Part:
    if isinstance(data, list):
        return (bool(data[0]), str(data[1]))
    if "cmd" in data:
        return Command(str(data["cmd"]), tuple((str(k), _load_value(v)) for k, v in data["args"]))
    msg = Msg(data["msg"], context=data.get("ctx"), plural=data.get("plural"),
              count=data.get("count") or "n")  # fmt: skip
    return Text(msg, tuple((str(k), _load_value(v)) for k, v in data["values"]))


def _dump_value(value: object) -> Any:
    if isinstance(value, Markup):
        return {"markup": value.dump()}
    if isinstance(value, Msg):
        return {"markup": [_dump_part(Text(value, ()))]}
    if isinstance(value, LanguageName):
        return {"language": value.code}
    if isinstance(value, CountryName):
        return {"country": value.code}
    if isinstance(value, ChoiceName):
        return {"choice": value.value}
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _load_value(data: Any) -> object:
    if isinstance(data, dict):
        if "markup" in data:
            return Markup.load(data["markup"])
        if "datetime" in data:
            return datetime.fromisoformat(data["datetime"])
        if "date" in data:
            return date.fromisoformat(data["date"])
        if "language" in data:
            return LanguageName(str(data["language"]))
        if "country" in data:
            return CountryName(str(data["country"]))
        if "choice" in data:
            return ChoiceName(str(data["choice"]))
    return data
