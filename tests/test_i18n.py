"""Languages: locale formats, whose language a text is in, and hints in each platform's syntax."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.app import App
from bot.context import Actor, Ctx, Place
from bot.domain import Markup, UserRef
from bot.domain.i18n import (
    CHOICE,
    ChoiceName,
    CountryName,
    LanguageName,
    Msg,
    Reader,
    _,
    localized_name,
    ngettext,
    translation,
    valid_name,
)
from bot.domain.markup import cmd, usage
from bot.readers import language_of_locale
from tests.harness import Harness, make_app


@asynccontextmanager
async def running(app: App) -> AsyncIterator[Harness]:
    """A harness on ``app``, stopped afterwards."""
    try:
        yield Harness(app)
    finally:
        await app.stop()


MOMENT = datetime(2026, 12, 3, 17, 5, tzinfo=UTC)

# (language, 1234567 grouped, 0.125 with one decimal, 3 December 2026): CLDR's own ways.
FORMATS = [
    ("en", "1,234,567", "12.5%", "Dec 3, 2026"),
    ("de", "1.234.567", "12,5\u00a0%", "03.12.2026"),
    ("fr", "1\u202f234\u202f567", "12,5\u00a0%", "3 déc. 2026"),
    ("pl", "1\u00a0234\u00a0567", "12,5%", "3 gru 2026"),
    ("it", "1.234.567", "12,5%", "3 dic 2026"),
    ("sv", "1\u00a0234\u00a0567", "12,5\u00a0%", "3 dec. 2026"),
]


@pytest.mark.parametrize(("language", "grouped", "share", "written"), FORMATS)
def test_numbers_and_dates_are_written_as_the_readers_language_writes_them(
    language, grouped, share, written
):
    text = Markup.format(_("{n:,} | {share:.1%} | {day}"), n=1234567, share=0.125,
                         day=date(2026, 12, 3))  # fmt: skip
    assert text.plain(Reader(language)).split(" | ") == [grouped, share, written]


def test_an_id_is_never_grouped_but_a_quantity_is():
    de = Reader("de")
    text = Markup.format(_("Task {id}: {n:,} words"), id=12345, n=12345)
    assert text.plain(de).endswith("12345: 12.345 words")


def test_a_moment_is_shown_in_the_readers_time_zone():
    warsaw = Reader("pl", timezone=ZoneInfo("Europe/Warsaw"))
    lisbon = Reader("pl", timezone=ZoneInfo("Europe/Lisbon"))
    at = Markup.format(_("{at}"), at=MOMENT)
    assert "18:05" in at.plain(warsaw) and "17:05" in at.plain(lisbon)


def test_on_discord_a_moment_is_a_timestamp_each_client_shows_in_its_own_zone():
    at = Markup.format(_("due {at}"), at=MOMENT)
    shown = at.markdown(Reader("de", platform="discord", timestamps=True))
    assert f"<t:{int(MOMENT.timestamp())}:f>" in shown


def test_language_and_country_names_are_in_the_readers_language():
    text = Markup.format(_("{language}, {country}"), language=LanguageName("pl"),
                         country=CountryName("EL"))  # fmt: skip
    assert text.plain(Reader("en")) == "Polish, Greece"
    assert text.plain(Reader("de")) == "Polnisch, Griechenland"
    assert text.plain(Reader("pl")) == "polski, Grecja"


def test_plural_forms_follow_the_languages_rule():
    msg = ngettext("**{n:,} volunteer**", "**{n:,} volunteers**")
    english = [Markup.format(msg, n=n).plain() for n in (1, 2, 5)]
    assert english == ["1 volunteer", "2 volunteers", "5 volunteers"]
    # Polish has three forms (1, 2-4, 5+): each count picks its own from the catalog.
    polish = [Markup.format(msg, n=n).plain(Reader("pl")) for n in (1, 2, 5, 22)]
    assert len(set(polish[:3])) == 3, polish
    assert polish[3].replace("22", "2") == polish[1], "22 takes the 2-4 form"


def test_a_translation_whose_placeholders_do_not_match_falls_back_to_the_source():
    from bot.domain.markup import Text, filled

    part = Text(_("Hi {name}"), (("name", "Ada"),))
    assert Markup(tuple(filled("Hallo {name}", part, Reader("de")))).plain() == "Hallo Ada"
    assert Markup(tuple(filled("Hallo {nom}", part, Reader("de")))).plain() == "Hi Ada"


def test_lazy_markup_survives_the_outbox_json_round_trip():
    text = Markup.format(
        ngettext("{n:,} task for {who} by {at}: {command}", "{n:,} tasks for {who} by {at}: {command}"),
        n=3, who=Markup.untrusted("@everyone"), at=MOMENT, command=cmd("task claim", id=7),
    )  # fmt: skip
    again = Markup.from_json(text.to_json())
    assert again == text
    assert again.plain() == text.plain()
    assert "@\u200beveryone" in again.markdown(), "a value is still untrusted after the trip"


def test_discord_name_rule():
    assert valid_name("claim") and valid_name("übernehmen") and valid_name("zadanie-nowe")
    assert not valid_name("Claim") and not valid_name("two words") and not valid_name("x" * 33)
    assert not valid_name("") and not valid_name("a.b")


@pytest.mark.parametrize(
    ("locale", "language"),
    [("de", "de"), ("pt-BR", "pt"), ("es-ES", "es"), ("sv-SE", "sv"), ("en-US", "en"),
     ("ja", None), (None, None), ("fr-CA", "fr")],
)  # fmt: skip
def test_client_locales_map_to_eu_languages(locale, language):
    assert language_of_locale(locale) == language


# --- whose language -------------------------------------------------------------------------


async def _reader_for(app, user: UserRef, target: str, client: str | None = None) -> Reader:
    ctx = Ctx(Actor(user), Place(target), MOMENT, client_language=client)
    return await app.services.readers.for_ctx(ctx)


async def test_a_persons_language_is_their_choice_then_client_then_room_then_bot(tmp_path):
    async with running(
        make_app(
            tmp_path,
            bot={"language": "fr", "room_languages": {"test:room": "it"}},
        )
    ) as h:
        app = h.app
        ada = UserRef("test", "ada", "Ada")
        assert (await _reader_for(app, ada, "test:elsewhere")).language == "fr", "the bot's"
        assert (await _reader_for(app, ada, "test:room")).language == "it", "the room's"
        assert (await _reader_for(app, ada, "test:room", "de")).language == "de", "the client's"
        await h.ok("ada", "volunteer language pl")
        assert (await _reader_for(app, ada, "test:room", "de")).language == "pl", "her own"
        await h.ok("ada", "volunteer language auto")
        assert (await _reader_for(app, ada, "test:room", "de")).language == "de"


async def test_a_discord_server_language_applies_to_all_its_channels(tmp_path):
    async with running(make_app(tmp_path, bot={"room_languages": {"discord:42": "nl"}})) as h:
        app = h.app
        readers = app.services.readers
        assert readers.for_room("discord:7", server="42").language == "nl"
        assert readers.for_room("discord:7").language == "en"


async def test_after_volunteer_language_every_answer_is_in_that_language(tmp_path):
    async with running(make_app(tmp_path)) as h:
        chosen = await h.ok("ada", "volunteer language de")
        assert "Deutsch" in chosen, chosen
        later = await h.err("ada", "task claim 99999")
        assert later != (await h.err("bob", "task claim 99999")), "Ada's answer is not English"
        bob = await h.err("bob", "volunteer frobnicate")
        assert "is not a command" in bob, "someone else still gets English"


async def test_a_post_to_a_room_is_in_the_rooms_language_not_the_posters(tmp_path):
    async with running(make_app(tmp_path, bot={"room_languages": {"test:room": "fr"}})) as h:
        app = h.app
        await h.ok("coco", "volunteer language de")
        reader = await app.services.readers.for_post("test", "test:room", None)
        assert reader.language == "fr"
        reader = await app.services.readers.for_post("test", "test:room", "coco")
        assert reader.language == "de", "a post meant for one person is in theirs"


async def test_a_persons_time_zone_is_used_for_their_times_and_for_what_they_type(tmp_path):
    async with running(make_app(tmp_path)) as h:
        app = h.app
        answer = await h.ok("ada", "volunteer timezone Europe/Warsaw")
        assert "Europe/Warsaw" in answer
        reader = await _reader_for(app, UserRef("test", "ada"), "test:room")
        assert getattr(reader.timezone, "key", None) == "Europe/Warsaw"
        await h.ok("ada", "volunteer language de")
        await h.ok("ada", "volunteer timezone auto")
        reader = await _reader_for(app, UserRef("test", "ada"), "test:room")
        assert getattr(reader.timezone, "key", None) == "Europe/Brussels", "the campaign's"
        assert reader.language == "de", "dropping the zone keeps the language"
        bad = await h.err("ada", "volunteer timezone Mars/Olympus")
        assert "Mars/Olympus" in bad and "Europe/" in bad
        bad = await h.err("ada", "volunteer language klingon")
        assert "klingon" in bad


# --- hints in each platform's syntax --------------------------------------------------------

HINTS = [
    ("console", "`task claim 7`", "`volunteer join translator --languages pl`", "`task claim <id>`"),
    ("matrix", "`!task claim 7`", "`!volunteer join translator --languages pl`",
     "`!task claim <id>`"),
    ("discord", "`/task claim id:7`", "`/volunteer join role:translator languages:pl`",
     "`/task claim id:<number>`"),
]  # fmt: skip


@pytest.mark.parametrize(("platform", "claim", "join", "usage_line"), HINTS)
async def test_hints_are_typed_as_each_platform_needs_them(
    tmp_path, platform, claim, join, usage_line
):
    async with running(make_app(tmp_path)) as h:
        app = h.app
        reader = app.services.readers.for_room(f"{platform}:room")
        text = Markup.format(
            _("{a} {b} {c}"), a=cmd("task claim", id=7),
            b=cmd("volunteer join", role="translator", languages="pl"), c=usage("task claim"),
        )  # fmt: skip
        assert text.plain(reader) == f"{claim} {join} {usage_line}"


async def test_the_matrix_hint_uses_the_configured_prefix(tmp_path):
    async with running(make_app(tmp_path, matrix={"command_prefix": "?"})) as h:
        app = h.app
        reader = app.services.readers.for_room("matrix:!r:x")
        assert Markup.format(_("{c}"), c=cmd("help")).plain(reader) == "`?help`"


async def test_a_list_names_its_filters_in_the_readers_words_and_the_kind_as_typed(tmp_path):
    async with running(make_app(tmp_path)) as h:
        await h.ok("coco", "task post translation Leaflet --language de")
        await h.ok("ada", "volunteer language pl")
        head = (await h.ok("ada", "task list --language de --kind translation")).splitlines()[0]
        assert head.startswith("Zadania (otwarte, niemiecki (de), translation)"), head
        await h.ok("ada", "volunteer join translator --languages de")
        await h.ok("ada", "task claim 1")
        head = (await h.ok("ada", "task list --status claimed")).splitlines()[0]
        assert "(przyjęte)" in head and "claimed" not in head, head


async def test_a_discord_hint_uses_the_command_names_the_readers_client_shows(tmp_path):
    def claim(language: str) -> str:
        names = (localized_name(n, language) for n in ("task", "claim", "id"))
        return "`/{} {} {}:7`".format(*names)

    assert claim("de") != claim("en") and claim("pl") != claim("en"), "names are localised"
    rooms = {"discord:pl-room": "pl", "discord:sk-room": "sk"}
    async with running(make_app(tmp_path, bot={"room_languages": rooms})) as h:
        readers = h.app.services.readers
        hint = Markup.format(_("{c}"), c=cmd("task claim", id=7))
        assert hint.plain(readers.for_room("discord:pl-room")) == claim("pl")
        # Discord has no Slovak locale: a Slovak room's clients show the English names.
        assert hint.plain(readers.for_room("discord:sk-room")) == claim("en")
        ada = UserRef("discord", "1", "Ada")
        await h.app.services.preferences.choose(ada, MOMENT, "language", "pl")
        # Her answers are in Polish, but her client is German and shows the German names.
        reader = await _reader_for(h.app, ada, "discord:room", "de")
        assert reader.language == "pl" and hint.plain(reader) == claim("de")
        reader = await _reader_for(h.app, ada, "discord:room", "ja")
        assert reader.language == "pl" and hint.plain(reader) == claim("en")
        reader = await _reader_for(h.app, ada, "discord:room", "pt-BR")
        assert hint.plain(reader) == claim("pt")


async def test_a_usage_line_says_the_kinds_of_value_in_the_readers_language(tmp_path):
    rooms = {"discord:sk": "sk", "discord:de": "de", "console:de": "de", "matrix:!pl:x": "pl"}
    async with running(make_app(tmp_path, bot={"room_languages": rooms})) as h:
        readers = h.app.services.readers
        line = Markup.format(_("{u}"), u=usage("task claim"))
        # No Slovak locale on Discord: English names, Slovak words for what to type.
        assert line.plain(readers.for_room("discord:sk")) == "`/task claim id:<číslo>`"
        names = " ".join(localized_name(n, "de") for n in ("task", "claim"))
        assert line.plain(readers.for_room("discord:de")) == f"`/{names} id:<Zahl>`"
        assert line.plain(readers.for_room("discord:en")) == "`/task claim id:<number>`"
        # On text platforms the names stay English; what an option takes is in the reader's.
        audit = Markup.format(_("{u}"), u=usage("audit"))
        assert audit.plain(readers.for_room("console:de")) == "`audit [--limit <Zahl>]`"
        assert audit.plain(readers.for_room("matrix:!pl:x")) == "`!audit [--limit <liczba>]`"
        assert audit.plain(readers.for_room("console:en")) == "`audit [--limit <number>]`"


def test_a_choice_is_its_localised_name_on_discord_and_the_typed_word_elsewhere():
    line = Markup.format(_("Role {role}."), role=ChoiceName("translator"))
    german = translation("de").text(Msg("translator", context=CHOICE))
    assert german != "translator"
    assert line.plain(Reader("de", platform="console")) == "Rolle translator."
    assert line.plain(Reader("de", platform="discord")) == f"Rolle {german}."
    # A reply in Slovak to a client that lists the names in English.
    assert line.plain(Reader("sk", platform="discord", names="en")).endswith(" translator.")
    # Kept lazy in the outbox, it is still a choice when it is read back.
    again = Markup.from_json(line.to_json())
    assert again.plain(Reader("de", platform="discord")) == f"Rolle {german}."
