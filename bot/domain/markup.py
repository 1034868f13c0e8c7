"""Text that mixes our own light markup with untrusted user values.

A template is trusted: it may use ``**bold**`` and ```code``` markers. Values substituted
into it are untrusted: every renderer escapes them for its platform, so a task title can never
ping ``@everyone``, open a link or inject HTML.
"""

import html
import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

_FIELDS = string.Formatter()
# Markdown's special characters get a backslash; a zero-width joiner after "@" keeps mass
# mentions inert even where allowed_mentions is not honoured (e.g. a copy pasted elsewhere).
# One table, so escaping a value is a single pass.
_MD_ESCAPES = str.maketrans({c: "\\" + c for c in "\\*_~`|>#[]()<"} | {"@": "@\u200b"})
_MARKER = re.compile(r"(\*\*|`)")
_BOLD = re.compile(r"\*\*")


@dataclass(frozen=True, slots=True)
class Markup:
    """A sequence of parts; each is (trusted, text)."""

    parts: tuple[tuple[bool, str], ...] = ()

    @classmethod
    def format(cls, template: str, /, **values: object) -> "Markup":
        """Fill ``{name}`` fields of a trusted template with untrusted values."""
        parts: list[tuple[bool, str]] = []
        for literal, field, spec, _conv in _FIELDS.parse(template):
            if literal:
                parts.append((True, literal))
            if field is not None:
                value = values[field]
                if isinstance(value, Markup):
                    parts.extend(value.parts)
                else:
                    parts.append((False, format(value, spec or "")))
        return cls(tuple(parts))

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
        out: list[tuple[bool, str]] = []
        for i, item in enumerate(items):
            if i:
                out.extend(self.parts)
            out.extend((item if isinstance(item, Markup) else Markup.trusted(item)).parts)
        return Markup(tuple(out))

    def truncated(self, limit: int, tail: str = "…") -> "Markup":
        """At most ``limit`` characters of text, ending in the trusted ``tail`` when cut."""
        if sum(len(text) for _, text in self.parts) <= limit:
            return self
        kept: list[tuple[bool, str]] = []
        room = max(0, limit - len(tail))
        for trusted, text in self.parts:
            if len(text) >= room:
                kept.append((trusted, text[:room]))
                break
            kept.append((trusted, text))
            room -= len(text)
        return Markup((*kept, (True, tail)))

    def to_json(self) -> str:
        """Serialise for the outbox table."""
        return json.dumps([[int(t), s] for t, s in self.parts], ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> "Markup":
        """Inverse of :meth:`to_json`."""
        return cls(tuple((bool(t), str(s)) for t, s in json.loads(data)))

    def plain(self) -> str:
        """Plain text: bold markers dropped, code backticks kept, values verbatim."""
        return "".join(_BOLD.sub("", s) if trusted else s for trusted, s in self.parts)

    def html(self) -> str:
        """HTML: markers become tags, values and literals are escaped."""
        out: list[str] = []
        open_tags: list[str] = []
        for trusted, text in self.parts:
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

    def markdown(self) -> str:
        """Discord-flavoured Markdown: literals kept, values escaped."""
        out: list[str] = []
        in_code = False
        for trusted, text in self.parts:
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
