"""Text command parsing: quoting, greedy text, options, conversions, errors."""

from typing import Annotated

import pytest

from bot.commands import Cog, command
from bot.context import Ctx
from bot.domain import BadArgument, Priority, TaskKind
from bot.params import LanguageList, Param
from bot.textparse import bind, normalise, tokenize


class _Demo(Cog):
    """Demo commands for parser tests."""

    group = "demo"
    personal_data = False

    @command()
    async def post(
        self,
        ctx: Ctx,
        kind: Annotated[TaskKind, Param("Kind")],
        title: Annotated[str, Param("Title", rest=True, max_length=200)],
        *,
        language: Annotated[str | None, Param("Language")] = None,
        priority: Annotated[Priority | None, Param("Priority")] = None,
        languages: Annotated[LanguageList | None, Param("Languages")] = None,
        confirm: Annotated[bool, Param("Confirm")] = False,
    ) -> str:
        """Post something."""
        return "ok"

    @command()
    async def claim(self, ctx: Ctx, id: Annotated[int, Param("Task number", min=1)]) -> str:
        """Claim something."""
        return "ok"


POST = next(s for s in _Demo.specs if s.name == "post")
CLAIM = next(s for s in _Demo.specs if s.name == "claim")


def _bind(spec, line):
    line = normalise(line)
    return bind(spec, line, tokenize(line))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a b  c", ["a", "b", "c"]),
        ('"a b" c', ["a b", "c"]),
        ("'a b' c", ["a b", "c"]),
        ("don't stop", ["don't", "stop"]),
        ('say "he said \\"hi\\""', ["say", 'he said "hi"']),
        ("“smart quotes” work", ["smart quotes", "work"]),
        ("‘single smart’ too", ["single smart", "too"]),
        ("", []),
    ],
)
def test_tokenize_splits_words_and_honours_quotes(line, expected):
    assert [t.text for t in tokenize(normalise(line))] == expected


@pytest.mark.parametrize("line", ['"never closed', "a 'b c"])
def test_tokenize_reports_an_unclosed_quote(line):
    with pytest.raises(BadArgument, match="never closed"):
        tokenize(line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("translation Leaflet for Warsaw", {"kind": "translation", "title": "Leaflet for Warsaw"}),
        (
            "translation Leaflet  for   Warsaw --language pl",
            {"kind": "translation", "title": "Leaflet  for   Warsaw", "language": "pl"},
        ),
        (
            "translation --language pl Leaflet for Warsaw",
            {"kind": "translation", "title": "Leaflet for Warsaw", "language": "pl"},
        ),
        (
            'translation "Leaflet --language" x',
            {"kind": "translation", "title": '"Leaflet --language" x'},
        ),
        (
            "translation Title --language=pl",
            {"kind": "translation", "title": "Title", "language": "pl"},
        ),
        (
            "translation Title --confirm",
            {"kind": "translation", "title": "Title", "confirm": True},
        ),
        (
            "translation Title --confirm no",
            {"kind": "translation", "title": "Title", "confirm": "no"},
        ),
        ("translation Title --Source_Language pl", None),
    ],
)
def test_bind_assigns_positionals_greedy_text_and_options(line, expected):
    if expected is None:
        with pytest.raises(BadArgument, match="not an option"):
            _bind(POST, line)
    else:
        assert _bind(POST, line) == expected


@pytest.mark.parametrize(
    ("spec", "line", "message"),
    [
        (CLAIM, "", "needs <id>"),
        (CLAIM, "1 2", "did not expect `2`"),
        (POST, "translation", "needs <title>"),
        (POST, "translation x --language", "needs a value"),
        (POST, "translation x --language pl --language de", "given twice"),
        (POST, "translation x --colour red", "`--colour` is not an option"),
    ],
)
def test_bind_explains_missing_extra_and_unknown_arguments(spec, line, message):
    with pytest.raises(BadArgument, match=message):
        _bind(spec, line)


def test_usage_lines_are_generated_from_the_signature():
    assert CLAIM.usage() == "demo claim <id>"
    assert POST.usage().startswith("demo post <kind> <title…> [--language <text>]")
    assert "[--priority <low|normal|high|urgent>]" in POST.usage()
    assert "[--confirm]" in POST.usage()
