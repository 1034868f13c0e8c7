"""Untrusted text: a short inert preview for quoting it, and the one cleaning of free text.

Every answer that quotes what someone typed quotes :func:`preview` of it, so a megabyte of
input gets a one-line answer. Every text parameter passes :func:`clean` before a command sees
it, on every platform, so nothing stored hides controls, flips the text after it or looks
empty.
"""

import re
import unicodedata

from bot.domain.errors import BadArgument
from bot.domain.i18n import _

PREVIEW = 40
MAX_NAME = 100
ELLIPSIS = "…"

# C0 and C1 controls, DEL and lone surrogates (which no database or wire can encode).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAKS = re.compile("\r\n|[\r\n\u2028\u2029\x85\x0b\x0c]")
_TABS = re.compile("[\t\x1c-\x1f]")
_SPACES_IN_LINE = re.compile("[^\\S\n]+")
# Bidirectional embeddings and overrides (closed by PDF) and isolates (closed by PDI).
_EMBEDDINGS = frozenset("\u202a\u202b\u202d\u202e")
_ISOLATES = frozenset("\u2066\u2067\u2068")
_PDF, _PDI = "\u202c", "\u2069"
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Letters and symbols that show as nothing: Hangul fillers, the blank Braille pattern.
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me", "Zs", "Zl", "Zp"})
# In a preview, controls show as their Control Pictures; other invisible marks are dropped.
_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"}


def preview(text: str, limit: int = PREVIEW) -> str:
    """A quote of ``text`` that is short, one line and inert, ending in … when cut.

    Controls show as their symbols (␀), line breaks as spaces, backticks as ˋ so the quote
    cannot close a code span; bidi controls, zero-width and other format marks are dropped.
    Only the start of a huge text is read.
    """
    out: list[str] = []
    length = 0
    cut = False
    for char in text:
        if length >= limit:
            cut = True
            break
        code = ord(char)
        if char in " \t\n\r\u2028\u2029\x85":
            if out and out[-1] != " ":
                out.append(" ")
                length += 1
            continue
        if code in _PICTURES:
            char = _PICTURES[code]
        elif char == "`":
            char = "\u02cb"
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            continue
        out.append(char)
        length += 1
    shown = "".join(out).strip()
    if cut or (text and not shown):
        return shown + ELLIPSIS
    return shown


def clean(text: str, *, what: str, multiline: bool = False) -> str:
    """The one normalisation of text people type, or BadArgument if nothing visible is left.

    NFC; controls and lone surrogates removed; line breaks kept only where ``multiline``
    (else they become spaces); unbalanced bidi embeddings, overrides and isolates closed at
    the end of their line; leading and trailing spaces stripped. ``what`` names the
    parameter in the error.
    """
    text = _CONTROLS.sub("", _LINE_BREAKS.sub("\n", _TABS.sub(" ", text)))
    text = unicodedata.normalize("NFC", text)
    if not multiline:
        text = _SPACES_IN_LINE.sub(" ", text.replace("\n", " "))
    if _BIDI.search(text):
        text = "\n".join(_balance_bidi(line) for line in text.split("\n"))
    text = text.strip()
    if not visible(text):
        raise BadArgument(
            # Translators: {name} is the parameter's name, e.g. title.
            _("`{name}` has nothing visible in it: only spaces or invisible characters. "
              "Type some words."),
            name=what,
        )  # fmt: skip
    return text


def clean_name(text: str) -> str:
    """A display name cleaned like text, at most 100 characters; "" if nothing visible is left.

    Names come from the platforms and are stored and shown; a name with nothing visible
    leaves the person called by their id.
    """
    text = _CONTROLS.sub("", _TABS.sub(" ", _LINE_BREAKS.sub(" ", text)))
    text = _SPACES_IN_LINE.sub(" ", unicodedata.normalize("NFC", text))
    if len(text) > MAX_NAME:
        text = text[: MAX_NAME - 1] + ELLIPSIS
    if _BIDI.search(text):
        text = _balance_bidi(text)
    text = text.strip()
    return text if visible(text) else ""


def visible(text: str) -> bool:
    """Whether ``text`` shows anything at all (not only spaces, marks and zero-width)."""
    return any(
        char not in _BLANK_LOOKING and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
        for char in text
    )


def _balance_bidi(line: str) -> str:
    """Drop closers that close nothing and close what is left open, so nothing leaks."""
    out: list[str] = []
    stack: list[str] = []
    for char in line:
        if char in _EMBEDDINGS or char in _ISOLATES:
            stack.append(char)
        elif char == _PDF:
            if not stack or stack[-1] not in _EMBEDDINGS:
                continue  # closes nothing (or would cross an isolate): dropped
            stack.pop()
        elif char == _PDI:
            if not any(opened in _ISOLATES for opened in stack):
                continue
            while stack:  # a PDI also closes the embeddings opened inside its isolate
                opened = stack.pop()
                if opened in _ISOLATES:
                    break
                out.append(_PDF)
        out.append(char)
    out.extend(_PDI if opened in _ISOLATES else _PDF for opened in reversed(stack))
    return "".join(out)
