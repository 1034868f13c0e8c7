"""How the Matrix adapter reads commands and renders replies (no homeserver needed)."""

import pytest

from bot.adapters.matrix_adapter import (
    MatrixAdapter,
    command_text,
    notice_content,
    reply_markup,
)
from bot.context import Button, Reply
from bot.domain import Markup
from tests.harness import make_app


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"body": "!volunteer profile"}, "!volunteer profile"),
        ({"body": "> <@bob:x> earlier words\n> more\n\n!task claim 7"}, "!task claim 7"),
        (
            {
                "body": "!volunteer profile Bobby",
                "format": "org.matrix.custom.html",
                "formatted_body": '!volunteer profile <a href="https://matrix.to/#/@bob:x">'
                "Bobby</a>",
            },
            "!volunteer profile @bob:x",
        ),
        (
            {
                "body": "> quoted\n\n!task show 3",
                "format": "org.matrix.custom.html",
                "formatted_body": '<mx-reply><blockquote><a href="https://matrix.to/#/@z:x">'
                "Z</a> quoted</blockquote></mx-reply>!task show 3 &amp; more",
            },
            "!task show 3 & more",
        ),
        (
            {
                "body": "!volunteer profile Bob",
                "format": "org.matrix.custom.html",
                "formatted_body": '!volunteer profile <a href="https://matrix.to/#/%40bob%3Ax">'
                "Bob</a>",
            },
            "!volunteer profile @bob:x",
        ),
    ],
    ids=["plain", "reply-fallback", "pill", "html-reply", "encoded-pill"],
)
def test_command_text_drops_quotes_and_turns_pills_into_user_ids(content, expected):
    assert command_text(content) == expected


def test_a_claim_button_on_a_task_post_becomes_a_reaction_hint():
    reply = Reply(
        Markup.format("Task **#{id}** posted: {title}", id=7, title="<b>x</b>"),
        buttons=[Button("Claim", "task claim 7"), Button("Details", "task show 7")],
        subject=("task", 7),
    )
    markup = reply_markup(reply, "!")
    assert markup.plain().splitlines()[1:] == [
        "React ✋ or type `!task claim 7`",
        "Type `!task show 7`",
    ]
    assert "<code>!task claim 7</code>" in markup.html()
    assert "&lt;b&gt;x&lt;/b&gt;" in markup.html()


def test_buttons_without_a_subject_offer_no_reaction():
    reply = Reply(Markup.trusted("Hi"), buttons=[Button("Claim", "task claim 7")])
    assert reply_markup(reply, "!").plain() == "Hi\nType `!task claim 7`"


def test_notice_content_mentions_only_whom_it_means_and_replies_in_threads():
    plain = notice_content(Markup.trusted("ok"), reply_to="$cmd")
    assert plain["m.mentions"] == {}
    assert plain["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    assert plain["msgtype"] == "m.notice"
    pinged = notice_content(Markup.trusted("ok"), reply_to=None, mentions=["@a:x", "@a:x"])
    assert pinged["m.mentions"] == {"user_ids": ["@a:x"]}
    assert "m.relates_to" not in pinged
    threaded = notice_content(Markup.trusted("ok"), reply_to="$cmd", thread="$root")
    assert threaded["m.relates_to"]["rel_type"] == "m.thread"
    assert threaded["m.relates_to"]["event_id"] == "$root"
    assert threaded["m.relates_to"]["m.in_reply_to"] == {"event_id": "$cmd"}


async def test_invites_are_allowed_by_user_or_by_server_suffix(tmp_path):
    app = make_app(
        tmp_path,
        matrix={"enabled": True, "invite_allowlist": ["@carol:example.org", ":trusted.eu"]},
    )
    try:
        adapter = MatrixAdapter(app)
        assert adapter.invite_allowed("!r:x", "@carol:example.org")
        assert adapter.invite_allowed("!r:x", "@anyone:trusted.eu")
        assert not adapter.invite_allowed("!r:x", "@mallory:example.org")
        assert not adapter.invite_allowed("!r:x", "@mallory:untrusted.eu")
        assert not adapter.invite_allowed("!r:x", None)
    finally:
        await app.stop()


async def test_the_adapter_repr_shows_no_secrets(tmp_path):
    app = make_app(
        tmp_path,
        matrix={"enabled": True, "access_token": "syt_secret", "password": "hunter2"},
    )
    try:
        text = repr(MatrixAdapter(app))
        assert "syt_secret" not in text and "hunter2" not in text
    finally:
        await app.stop()
