"""Discord in the user's language: localised slash commands, and answers without choosing."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain import i18n

pytestmark = pytest.mark.e2e

COMMANDS_PUT = r"^/applications/\d+/guilds/\d+/commands$"


@pytest.fixture
def catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the catalogs the bot reads, for a test that changes a translation."""
    copy = tmp_path / "locale"
    shutil.copytree(i18n.LOCALE_DIR, copy)
    monkeypatch.setattr(i18n, "LOCALE_DIR", copy)
    i18n.translation.cache_clear()
    yield copy
    i18n.translation.cache_clear()


def command(payload: list[dict], name: str) -> dict:
    return next(c for c in payload if c["name"] == name)


def sub(group: dict, name: str) -> dict:
    return next(o for o in group["options"] if o["name"] == name)


async def test_the_sync_carries_localised_names_and_descriptions(fake, runner):
    await runner.start()
    [put] = fake.requests_to("PUT", COMMANDS_PUT)
    task = command(put.json, "task")
    claim = sub(task, "claim")
    german = i18n.translation("de").messages
    assert claim["description_localizations"]["de"] == german[(i18n.COMMAND, claim["description"])]
    assert task["name_localizations"]["de"] == german[(i18n.NAME, "task")]
    assert i18n.valid_name(claim["name_localizations"]["de"])
    option = claim["options"][0]
    assert option["description_localizations"]["fr"] != option["description"]
    everywhere = {key for c in put.json for key in c.get("description_localizations", {})}
    assert {"de", "fr", "pl", "pt-BR", "es-ES", "sv-SE", "bg", "el"} <= everywhere
    assert not everywhere & {"et", "ga", "lv", "mt", "sk", "sl", "ja"}, "no locale Discord lacks"
    join = sub(command(put.json, "volunteer"), "join")
    role = next(o for o in join["options"] if o["name"] == "role")
    translator = next(c for c in role["choices"] if c["value"] == "translator")
    assert translator["name_localizations"]["de"] != "translator", "choice names are localised"
    assert translator["name"] == "translator", "while the value stays the same"


async def test_a_german_client_gets_german_answers_without_choosing(fake, runner):
    await runner.start()
    alice = fake.user("alice")
    german = await (await fake.slash(alice, "task claim", id=99, locale="de")).answer()
    english = await (await fake.slash(alice, "task claim", id=99, locale="en-US")).answer()
    assert german.content != english.content
    hint = "/" + " ".join(i18n.localized_name(n, "de") for n in ("volunteer", "join"))
    assert hint in german.content, "the hint names the command as the German client shows it"
    polish = await (await fake.slash(alice, "volunteer language", code="fr", locale="de")).answer()
    later = await (await fake.slash(alice, "task claim", id=99, locale="de")).answer()
    assert later.content not in (german.content, english.content), "her own choice wins"
    assert "français" in polish.content


async def test_a_role_is_named_as_the_clients_list_of_choices_shows_it(fake, runner):
    await runner.start()
    bob = fake.user("bob")
    joined = await (
        await fake.slash(bob, "volunteer join", role="translator", locale="de")
    ).answer()
    german = i18n.translation("de").text(i18n.Msg("translator", context=i18n.CHOICE))
    assert german != "translator" and f"**{german}**" in joined.content, joined.content
    # In Slovak (which Discord has no locale for) on a Japanese client, the list of choices
    # shows the English names, and the answer says the role that way.
    await (await fake.slash(bob, "volunteer language", code="sk", locale="ja")).answer()
    left = await (
        await fake.slash(bob, "volunteer leave", role="translator", locale="ja")
    ).answer()
    assert "**translator**" in left.content and "Roly" in left.content, left.content


async def test_a_resync_happens_only_when_a_translation_changed(fake, runner, catalogs):
    await runner.start()
    assert len(fake.requests_to("PUT", COMMANDS_PUT)) == 1
    await runner.restart()
    assert len(fake.requests_to("PUT", COMMANDS_PUT)) == 1, "same catalogs: no sync"
    po = catalogs / "de" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    text = po.read_text(encoding="utf-8")
    source = 'msgctxt "command"\nmsgid "Take a task from the queue."\nmsgstr "'
    assert source in text
    po.write_text(text.replace(source, source + "Jetzt: "), encoding="utf-8")
    i18n.translation.cache_clear()
    await runner.restart()
    puts = fake.requests_to("PUT", COMMANDS_PUT)
    assert len(puts) == 2, "a changed translation syncs again"
    claim = sub(command(puts[-1].json, "task"), "claim")
    assert claim["description_localizations"]["de"].startswith("Jetzt: ")
