"""Hostile text: quoted input stays short, free text is cleaned, far dates and numbers refused."""

import json
from dataclasses import replace

import pytest

from bot.adapters.console_adapter import render as console_render
from bot.adapters.discord_adapter import MAX_CONTENT, MAX_PARTS, split_content
from bot.adapters.discord_adapter import render as discord_render
from bot.adapters.matrix_adapter import MAX_TEXT_BYTES, notice_content
from bot.context import Reply
from bot.domain import BadArgument, Markup
from bot.domain.text import clean, preview
from tests.cli import bot_bytes
from tests.harness import Harness

MEGABYTE = 1_000_000

# --- the preview ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 40, "short"),
        ("x" * 50, 10, "x" * 10 + "…"),
        ("two\nlines\r\nhere", 40, "two lines here"),
        ("nul\x00 and esc\x1b[31m", 40, "nul␀ and esc␛[31m"),
        ("a`b``c", 40, "aˋbˋˋc"),
        ("\u202eevil\u2066", 40, "evil"),
        ("zero\u200bwidth", 40, "zerowidth"),
        ("\u200b\u200b", 40, "…"),
        ("", 40, ""),
        ("\ud800lone", 40, "lone"),
    ],
)
def test_a_preview_is_short_one_line_and_inert(text, limit, expected):
    assert preview(text, limit) == expected


def test_a_preview_of_a_megabyte_reads_only_its_start():
    assert preview("x" * MEGABYTE) == "x" * 40 + "…"


# --- cleaning free text -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "multiline", "expected"),
    [
        ("Cafe\u0301", False, "Café"),  # NFC: one code point, as typed on another keyboard
        ("a\x00b\x07c\x7fd\x9be", False, "abcde"),
        ("line one\nline two", False, "line one line two"),
        ("line one\r\nline two\x00", True, "line one\nline two"),
        ("tab\there", False, "tab here"),
        ("  padded  ", False, "padded"),
        ("\u202eevil", False, "\u202eevil\u202c"),  # an open override is closed
        ("\u2067rtl\nnext", True, "\u2067rtl\u2069\nnext"),  # closed before the line ends
        ("stray\u202c close\u2069", False, "stray close"),  # closers that close nothing go
        ("\u202a\u2066in\u2069out", False, "\u202a\u2066in\u2069out\u202c"),
        ("\u2066\u202ain\u2069", False, "\u2066\u202ain\u202c\u2069"),
        ("surrogate\ud800", False, "surrogate"),
        ("zwj 👩\u200d💻 kept", False, "zwj 👩\u200d💻 kept"),
    ],
)
def test_clean_normalises_free_text(text, multiline, expected):
    assert clean(text, what="title", multiline=multiline) == expected


@pytest.mark.parametrize(
    "text",
    ["\u200b\u200c\u200d", "   \u3000", "\x00\x00", "\u2066\u2069", "\u3164\u3164", "\u0301"],
    ids=["zero-width", "spaces", "nul", "bidi", "hangul-filler", "lone-mark"],
)
def test_clean_refuses_text_with_nothing_visible(text):
    with pytest.raises(BadArgument, match="`title` has nothing visible"):
        clean(text, what="title")


# --- through the core, on both engines ----------------------------------------------------


async def test_a_megabyte_of_role_gets_a_short_answer(harness: Harness):
    answer = await harness.err("alice", "volunteer join " + "x" * MEGABYTE)
    assert "is not a valid role" in answer
    assert len(answer) < 500


@pytest.mark.parametrize(
    "line",
    [
        "task claim " + "9" * MEGABYTE,
        "task list --status " + "s" * MEGABYTE,
        "task post other " + "t" * MEGABYTE,
        "task post other T --due " + "d" * MEGABYTE,
        "task post other T --language " + "l" * MEGABYTE,
        "reminder add hi --in " + "1" * MEGABYTE + "s",
        "reminder add hi --timezone " + "Z" * MEGABYTE + " --in 1h",
        "volunteer join translator --country " + "c" * MEGABYTE,
        "volunteer join translator --bogus" + "o" * MEGABYTE,
        "volunteer " + "w" * MEGABYTE,
        "w" * MEGABYTE,
        'task post other "' + "q" * MEGABYTE,
        "task claim 1 " + "e " * (MEGABYTE // 2),
    ],
    ids=lambda line: line[:28],
)
async def test_huge_input_anywhere_gets_a_short_answer(harness: Harness, line):
    answer = await harness.err("coco", line)
    assert len(answer) < 1_000, answer[:200]


async def test_free_text_is_cleaned_before_it_is_stored(harness: Harness):
    h = harness
    answer = await h.ok("coco", "task post other \u202eevil\x00 title")
    assert "evil title" in answer
    shown = await h.ok("alice", "task show 1")
    assert "\x00" not in shown and "\u202eevil title\u202c" in shown


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("task post other \u200b\u200b\u200b", "`title` has nothing visible"),
        ("task post other X --description '\u3000'", "cannot be empty"),
        ("task post other X --description \u2067\u2069", "`description` has nothing visible"),
        ("reminder add \x00\x00 --in 1h", "`message` has nothing visible"),
    ],
)
async def test_invisible_free_text_is_refused_and_nothing_is_stored(
    harness: Harness, line, expected
):
    assert expected in await harness.err("coco", line)
    assert "no open tasks" in (await harness.ok("alice", "task list")).lower()
    assert "no reminders" in (await harness.ok("coco", "reminder list")).lower()


# Issue 16 items 1 and 9, through the core: each once stored a date no listing could show, or
# answered "something went wrong" with a traceback in the log.
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("task post other boom --due 9999-12-31T23:30:00+00:00", "too far ahead"),
        ("reminder add boom --at 9999-12-31T23:30Z", "too far ahead"),
        ("reminder add boom --in 99999999999999999999s", "two years"),
        ("task post other boom --due 0001-01-01T00:30:00+01:00", "too far in the past"),
        ("reminder add boom --at 0001-01-01T00:30:00+01:00", "too far in the past"),
        (
            "reminder add boom --at '9999-12-31 23:59' --timezone America/New_York",
            "too far ahead",
        ),
        ("reminder add boom --in 1h --timezone " + "A" * 300, "300 characters long"),
        ("task claim 1234567890123456789", "far too large"),
    ],
)
async def test_far_dates_and_numbers_are_refused_and_listings_still_work(
    harness: Harness, line, expected
):
    h = harness
    answer = await h.err("coco", line)
    assert expected in answer and "went wrong" not in answer
    for listing in ("task list", "task next", "task mine", "reminder list"):
        reply = await h.run("coco", listing)
        assert "went wrong" not in reply.body.plain(), listing


# --- what each platform sends ---------------------------------------------------------------


def huge_reply_markup() -> Markup:
    return Markup.format("**Big** answer: {value}\n", value="ü<&>\"'\n" * 100_000)


def test_matrix_answers_stay_well_under_the_event_limit():
    content = notice_content(huge_reply_markup(), reply_to="$event")
    assert len(json.dumps(content)) <= MAX_TEXT_BYTES + 500
    assert content["body"].endswith("(cut: the rest was too long to send)")
    assert content["formatted_body"].startswith("<strong>Big</strong>")


def test_a_short_matrix_answer_is_not_cut():
    content = notice_content(Markup.format("Hi {name}", name="Al"), reply_to=None)
    assert content["body"] == "Hi Al"


def test_discord_sends_at_most_a_few_messages_of_2000_characters():
    parts = split_content(discord_render_text())
    assert len(parts) == MAX_PARTS
    assert all(len(p) <= MAX_CONTENT for p in parts)
    assert parts[-1].endswith("(cut: the rest was too long to send)")


def discord_render_text() -> str:
    return discord_render(Reply(huge_reply_markup()))


def test_the_console_prints_a_long_answer_whole():
    assert len(console_render(Reply(huge_reply_markup()))) > MEGABYTE // 2


# --- the console's standard input -----------------------------------------------------------


def test_invalid_utf8_on_stdin_is_one_clear_sentence_and_the_console_goes_on(tmp_path):
    script = b"volunteer join \xff\xfe translator\n\xc3(\nvolunteer join translator\n"
    status, out, err = bot_bytes("--as", "alice", stdin=script, cwd=tmp_path)
    assert status == 0, err
    assert out.count("That line is not valid UTF-8 text, so I skipped it") == 2
    assert "Welcome, alice! You are registered as translator." in out
    assert "Traceback" not in out + err


# --- found by the fuzz suite ----------------------------------------------------------------


async def test_a_display_name_with_controls_and_lone_surrogates_is_cleaned_and_stored(
    harness: Harness,
):
    ctx = harness.ctx("alice")
    ctx.actor = replace(ctx.actor, user=replace(ctx.user, display_name="Al\ud800\x00\u202eice"))
    reply = await harness.app.core.handle_text(ctx, "volunteer join translator", prefixes=("",))
    assert reply is not None and not reply.is_error, reply and reply.body.plain()
    assert "Welcome, Al\u202eice\u202c!" in reply.body.plain()
    profile = await harness.ok("coco", "volunteer list")
    assert "\ud800" not in profile


async def test_a_refused_coordinator_command_with_lone_surrogates_still_leaves_its_audit_line(
    harness: Harness, caplog
):
    assert "not a valid" in await harness.err("coco", "task post wiz\udc80ardry Spells")
    assert "not written" not in caplog.text
    assert "task post" in await harness.ok("coco", "audit")


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**18, 258_994_356_996, 2**31])
async def test_a_typed_number_no_database_can_store_is_refused(harness: Harness, number):
    spec = harness.app.core.registry.get("task", "show")
    assert spec is not None
    reply = await harness.app.core.invoke(harness.ctx("alice"), spec, {"id": number})
    assert reply.is_error and "far too large" in reply.body.plain()


@pytest.mark.parametrize("line", ["task show 258994356996", "reminder delete 2147483648"])
async def test_a_number_past_a_postgresql_integer_is_refused_not_a_crash(harness: Harness, line):
    assert "far too large" in await harness.err("coco", line)
