"""One scripted session, rendered in each of the 24 EU languages: nothing English left in it.

The same session runs in English first. In another language, no reply may repeat a run of
English words from the English reply (what people typed and the commands' own names aside),
no message may be left with its English phrases where its catalog says otherwise, and no
placeholder may be left unfilled.
"""

import re
from datetime import timedelta

import pytest

from bot.catalogs import load
from bot.config import CampaignSection
from bot.domain.i18n import EU_LANGUAGES, SOURCE_LANGUAGE
from cogs.reminders import Reminders
from tests.harness import Harness, make_app

ROOM = "test:room"
SESSION = [
    ("ada", "volunteer join translator --languages pl,de --country DE"),
    ("ada", "volunteer join translator"),
    ("ada", "volunteer profile"),
    ("ada", "volunteer list translator"),
    ("coco", "volunteer join organiser"),
    ("coco", "task post translation Leaflet for Warsaw --language pl --due 2026-03-20"),
    ("coco", "task post translation Flyer --language de,fr"),
    ("ada", "task list"),
    ("ada", "task show 1"),
    ("ada", "task claim 1"),
    ("ada", "task claim 1"),
    ("bob", "task claim 1"),
    ("ada", "task claim abc"),
    ("ada", "task claim 999999"),
    ("ada", "volunteer join wizard"),
    ("ada", "frobnicate"),
    ("ada", "task frobnicate"),
    ("bob", "task post translation Nope"),
    ("ada", "task mine"),
    ("ada", "task done 1 https://example.org/leaflet-pl"),
    ("ada", "help"),
    ("ada", "help task claim"),
    ("ada", "signatures"),
    ("coco", "signatures set 1234567"),
    ("coco", "signatures set 12345 --country DE"),
    ("ada", "signatures"),
    ("coco", "reminder add Call for translators --in 2m"),
    ("coco", "reminder add Call --at yesterday"),
    ("coco", "reminder list"),
    ("ada", "volunteer timezone Europe/Warsaw"),
    ("ada", "volunteer timezone Mars/Base"),
]


def command_words() -> set[str]:
    """The command language, English everywhere: names, options, choices, usage kinds."""
    from bot.catalogs import cog_classes

    words: set[str] = set()
    for cog in cog_classes():
        for spec in cog.specs:
            texts = [spec.qualified_name, spec.usage()]
            texts += [t for arg in spec.args for t in (arg.name, arg.kind.name, *arg.choices)]
            words |= {w.lower() for t in texts for w in re.findall(r"[A-Za-z]+", t)}
    return words


# What people typed, the names they go by and the command language: the same everywhere.
TYPED = {word.lower() for _who, line in SESSION for word in re.findall(r"[A-Za-z]+", line)}
TYPED |= {"ada", "bob", "coco", "https", "example", "org"} | command_words()
TYPED |= {w.lower() for w in re.findall(r"[A-Za-z]+", CampaignSection().name)}
PLACEHOLDER = re.compile(r"\{[a-z_]+(?::[^}]*)?\}")
WINDOW = 4


async def run_session(tmp_path, language: str) -> list[str]:
    """Every reply and post of the session, as the people reading them see it."""
    (tmp_path / language).mkdir()
    app = make_app(tmp_path / language, bot={"room_languages": {ROOM: language}})
    h = Harness(app)
    texts: list[str] = []
    try:
        for who in ("ada", "bob", "coco"):
            await h.ok(who, f"volunteer language {language}")
        for who, line in SESSION:
            reply = await h.run(who, line)
            texts.append(reply.body.plain())
        h.clock.advance(timedelta(minutes=3))
        cog = next(c for c in app.cogs if isinstance(c, Reminders))
        await cog.run_due()
        await h.deliver()
        texts += [post.body.plain(post.reader) for post in h.posts]
    finally:
        await app.stop()
    return texts


def english_runs(text: str) -> set[tuple[str, ...]]:
    """Runs of consecutive words with at least two that nobody typed."""
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
    return {
        tuple(words[i : i + WINDOW])
        for i in range(len(words) - WINDOW + 1)
        if sum(w not in TYPED for w in words[i : i + WINDOW]) >= 2
    }


def kept_phrases(language: str) -> set[tuple[str, ...]]:
    """Runs of English words a translation itself keeps (a product name, say)."""
    kept: set[tuple[str, ...]] = set()
    for message in load(language):
        strings = message.string if isinstance(message.string, (list, tuple)) else [message.string]
        for text in strings:
            kept |= english_runs(text or "")
    return kept


@pytest.fixture(scope="module")
def english(tmp_path_factory) -> list[str]:
    import asyncio

    return asyncio.run(run_session(tmp_path_factory.mktemp("en"), SOURCE_LANGUAGE))


def test_the_english_session_says_what_it_should(english):
    text = "\n".join(english)
    for expected in ("Welcome, Ada!", "Leaflet for Warsaw", "is not a command", "1,234,567",
                     "⏰ Reminder: Call for translators"):  # fmt: skip
        assert expected in text, expected
    assert not PLACEHOLDER.search(text)


@pytest.mark.parametrize("language", [c for c in EU_LANGUAGES if c != SOURCE_LANGUAGE])
async def test_the_session_has_no_english_left_in(tmp_path, english, language):
    texts = await run_session(tmp_path, language)
    assert len(texts) == len(english), "the same replies and posts"
    kept = kept_phrases(language)
    problems = []
    for ours, theirs in zip(english, texts, strict=True):
        if found := PLACEHOLDER.search(theirs):
            problems.append(f"unfilled {found.group(0)} in {theirs!r}")
        left = (english_runs(ours) & english_runs(theirs)) - kept
        if left:
            problems.append(f"English left: {' '.join(sorted(left)[0])!r} in {theirs[:160]!r}")
    assert not problems, f"{language}:\n" + "\n".join(problems[:12])
