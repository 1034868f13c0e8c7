"""The message catalogs: extracting what the bot says, and keeping each language's file current.

``python dev.py catalog`` writes ``bot/locale/volunteer_bot.pot`` from the code (every
``_()``, ``pgettext()``, ``ngettext()`` and ``npgettext()``) and from the command
declarations (descriptions of groups, commands and options, and the names of choices), then
brings every language's ``.po`` file up to date with it. ``python dev.py catalog --check``
changes nothing and fails when a catalog is out of date.
"""

import importlib
import inspect
import io
import pkgutil
import re
import string
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from bot.commands import Cog
from bot.domain.i18n import (
    CHOICE,
    COMMAND,
    DOMAIN,
    EU_LANGUAGES,
    LOCALE_DIR,
    MAX_DESCRIPTION,
    NAME,
    SOURCE_LANGUAGE,
    valid_name,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("bot", "cogs", "storage")
KEYWORDS = {
    "_": None,
    "gettext": None,
    "pgettext": ((1, "c"), 2),
    "ngettext": (1, 2),
    "npgettext": ((1, "c"), 2, 3),
}
# Contexts of the strings taken from command declarations.
COMMAND_CONTEXT = COMMAND
CHOICE_CONTEXT = CHOICE
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
# The languages whose catalogs translate every message (tests hold them to it).
COMPLETE: frozenset[str] = frozenset(
    {"bg", "cs", "da", "de", "el", "es", "et", "fi", "fr", "ga", "hr", "hu",
     "it", "lt", "lv", "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv"}
)  # fmt: skip
WIDTH = 99
# Fixed, so that extracting twice gives the same file.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def po_path(language: str) -> Path:
    """Where a language's catalog lives."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def cog_classes() -> list[type[Cog]]:
    """Every cog the project ships, imported."""
    import cogs

    found: list[type[Cog]] = []
    for info in pkgutil.iter_modules(cogs.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cogs.{info.name}")
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Cog) and value is not Cog and value.__module__ == module.__name__:
                found.append(value)
    return found


def declared() -> Iterator[tuple[str, str, str]]:
    """(text, context, where) for each description and choice in the command declarations."""
    for cog in cog_classes():
        where = f"{cog.__module__}.{cog.__qualname__}"
        if cog.group and cog.__doc__:
            yield inspect.getdoc(cog).splitlines()[0], COMMAND_CONTEXT, where  # type: ignore[union-attr]
            yield cog.group, NAME, where
        for spec in cog.specs:
            yield spec.description, COMMAND_CONTEXT, f"{where}.{spec.name}"
            yield spec.name, NAME, f"{where}.{spec.name}"
            for arg in spec.args:
                yield arg.description, COMMAND_CONTEXT, f"{where}.{spec.name}.{arg.name}"
                yield arg.name, NAME, f"{where}.{spec.name}.{arg.name}"
                for choice in arg.choices:
                    yield choice, CHOICE_CONTEXT, f"{where}.{spec.name}.{arg.name}"


def extract() -> Catalog:
    """The template: every message the bot can say, in English."""
    template = Catalog(
        project="volunteer-bot", domain=DOMAIN, creation_date=EPOCH, revision_date=EPOCH,
        charset="utf-8", fuzzy=False,
    )  # fmt: skip
    for directory in SOURCES:
        found = extract_from_dir(
            ROOT / directory,
            method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2.ext:babel_extract")],
            options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords=KEYWORDS,
            comment_tags=("Translators:",), strip_comment_tags=True,
        )  # fmt: skip
        for filename, lineno, message, comments, context in found:
            where = f"{directory}/{filename}"
            template.add(message, locations=[(where, lineno)], auto_comments=comments,
                         context=context)  # fmt: skip
    for text, context, where in declared():
        if text:
            template.add(text, locations=[(where, 0)], context=context)
    return template


def render(catalog: Catalog) -> bytes:
    """A catalog as the bytes of its file."""
    out = io.BytesIO()
    write_po(out, catalog, width=WIDTH, sort_output=True, include_lineno=False)
    return out.getvalue()


def load(language: str) -> Catalog:
    """A language's catalog as it is on disk (an empty one if there is none yet)."""
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, domain=DOMAIN, project="volunteer-bot",
                       creation_date=EPOCH, revision_date=EPOCH, fuzzy=False)  # fmt: skip
    with path.open("rb") as fh:
        return read_po(fh, locale=language, domain=DOMAIN)


def updated(language: str, template: Catalog) -> Catalog:
    """A language's catalog brought up to date with the template (new messages empty)."""
    catalog = load(language)
    # No fuzzy guesses: a message is either translated here or empty (shown in English). Only
    # a message that became or stopped being a plural keeps its translation, marked fuzzy for
    # review; gettext skips it, and the tests refuse it in a complete catalog.
    catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
    catalog.obsolete.clear()
    catalog.revision_date = EPOCH
    catalog.fuzzy = False
    return catalog


def sync(*, check: bool = False) -> list[Path]:
    """Write the template and every catalog; returns the files that were (or would be) changed."""
    template = extract()
    changed: list[Path] = []
    files = [(TEMPLATE, render(template))]
    files += [
        (po_path(code), render(updated(code, template)))
        for code in EU_LANGUAGES
        if code != SOURCE_LANGUAGE
    ]
    for path, data in files:
        if path.exists() and path.read_bytes() == data:
            continue
        changed.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return changed


# -- what a translation must keep ----------------------------------------------------------------

_FIELDS = string.Formatter()


_PERCENT_FIELD = re.compile(r"%\((\w+)\)s")


def fields(text: str) -> set[str]:
    """The placeholders of a template, with their format specs: {"n:,", "title"}.

    The web pages' templates name theirs ``%(name)s``; those count the same way.
    """
    found = {f"%({name})" for name in _PERCENT_FIELD.findall(text)}
    for _literal, name, spec, _conv in _FIELDS.parse(text):
        if name is not None:
            found.add(f"{name}:{spec}" if spec else name)
    return found


def markers(text: str) -> tuple[int, int]:
    """How many bold markers and code backticks a template has."""
    return text.count("**"), text.count("`")


def problems(
    context: str | None, msgid: str, plural: str | None, strings: tuple[str, ...],
    num_plurals: int,
) -> list[str]:  # fmt: skip
    """What is wrong with one message's translation (empty strings are untranslated, not wrong).

    A placeholder added, dropped or renamed; bold or code markers that do not pair up as in
    the source; a plural with the wrong number of forms; a Discord name that breaks its rule;
    a description or choice name longer than Discord allows.
    """
    found: list[str] = []
    if plural is not None and len(strings) != num_plurals:
        found.append(f"{msgid!r}: {len(strings)} plural forms, the language has {num_plurals}")
    for index, text in enumerate(strings):
        if not text:
            continue
        try:
            got, expected = fields(text), fields(plural or msgid)
        except ValueError as exc:
            found.append(f"{msgid!r}: the translation is not a template ({exc})")
            continue
        if plural is not None:
            # A form may leave out the number ("one task"); it never adds or renames a field.
            counted = {f for f in expected if f.split(":")[0] == "n"}
            if not got <= expected or not expected - counted <= got:
                found.append(f"{msgid!r} form {index}: {sorted(got)} vs {sorted(expected)}")
        elif got != expected:
            found.append(f"{msgid!r}: {sorted(got)} instead of {sorted(expected)}")
        bold, code = markers(text)
        if (bold, code) != markers(msgid):
            found.append(f"{msgid!r}: ** {bold} and ` {code}, the source {markers(msgid)}")
        if context == NAME and not valid_name(text):
            found.append(f"{msgid!r}: {text!r} is not a valid Discord name")
        if context in (COMMAND, CHOICE) and len(text) > MAX_DESCRIPTION:
            found.append(f"{msgid!r}: {len(text)} characters, Discord allows {MAX_DESCRIPTION}")
    return found
