"""The Matrix adapter against a real Synapse, driven by real matrix-nio clients."""

import asyncio
import stat
import struct
import zlib
from datetime import UTC, datetime

import pytest

from bot.adapters.matrix_adapter import CREDENTIALS_FILE, TIMELINE_LIMIT, MatrixAdapter
from bot.commands import Cog, command
from bot.context import Attachment, Ctx, Reply
from bot.domain import Markup, UserRef
from bot.outbox import Delivery, PermanentDeliveryError
from tests.e2e.matrix_kit import BotProcess, body, in_reply_to, is_reply, running_bot, toml

pytestmark = pytest.mark.e2e


async def test_registration_and_profile_are_answered_as_notice_replies(
    tmp_path, synapse, account, person
):
    bot = account("bot", "Volunteer Bot")
    alice = await person("alice", "Alice")
    bob = await person("bob", "Bob")
    room = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(room)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        command = await alice.send(room, "!volunteer join translator --languages pl --country PL")
        reply = await alice.reply_to(command, bot.user_id)
        content = reply["content"]
        assert content["msgtype"] == "m.notice"
        assert "Welcome, Alice! You are registered as translator." in content["body"]
        assert "<strong>translator</strong>" in content["formatted_body"]
        assert content["format"] == "org.matrix.custom.html"
        assert content["m.mentions"] == {}, "a reply pings nobody"

        profile = await alice.ask(room, "!volunteer profile", bot.user_id)
        assert "pl (Polish)" in body(profile) and "PL (Poland)" in body(profile)

        # A user id typed as text names that person: bob looks alice up by her Matrix id.
        other = await bob.ask(room, f"!volunteer profile {alice.user_id}", bot.user_id)
        assert body(other).startswith("Alice\n") and "translator" in body(other)


async def test_restart_answers_missed_commands_exactly_once_and_nothing_older(
    tmp_path, synapse, account, person
):
    bot = account("bot", "Volunteer Bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    before_start = await alice.send(room, "!volunteer join organiser")
    config = toml(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "matrix": {
                "enabled": True,
                "homeserver": synapse.url,
                "user_id": bot.user_id,
                "rooms": [room],
                "store_path": str(tmp_path / "store"),
            },
        }
    )
    process = BotProcess(tmp_path, config, {"VOLUNTEER_BOT_MATRIX__PASSWORD": bot.password})
    try:
        await process.start()
        first = await alice.send(room, "!volunteer join translator")
        await alice.reply_to(first, bot.user_id)
        assert process.stop() == 0

        # More commands than one sync shows, so the gap must be fetched.
        missed = [
            await alice.send(room, f"!volunteer {'profile' if i % 2 else 'list'}")
            for i in range(TIMELINE_LIMIT + 5)
        ]
        await process.start()
        last = await alice.send(room, "!volunteer profile")
        await alice.reply_to(last, bot.user_id)
        for command in missed:
            await alice.reply_to(command, bot.user_id)
    finally:
        process.stop()
    replies = [e for e in alice.events if e.get("sender") == bot.user_id and in_reply_to(e)]
    counted = {event_id: 0 for event_id in [before_start, first, *missed, last]}
    for reply in replies:
        counted[in_reply_to(reply)] += 1
    assert counted.pop(before_start) == 0, "history from before the first start is skipped"
    assert set(counted.values()) == {1}, "every command is answered exactly once"

    credentials = tmp_path / "store" / CREDENTIALS_FILE
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    devices = synapse.request("GET", "/_matrix/client/v3/devices", token=_token_of(credentials))[
        "devices"
    ]
    logins = [d for d in devices if d.get("display_name") == "volunteer-bot"]
    assert len(logins) == 1, "the second start reused the kept token instead of logging in"
    log = process.output
    assert bot.password not in log and _token_of(credentials) not in log
    assert "Traceback" not in log


def _token_of(path):
    import json

    return json.loads(path.read_text())["access_token"]


async def test_a_configured_room_alias_is_joined_and_served(tmp_path, synapse, account, person):
    bot = account("bot")
    alice = await person("alice")
    name = alice.user_id[1:].split(":")[0] + "-room"
    room = await alice.create_room(invite=[bot.user_id], alias=name)
    alias = f"#{name}:{synapse.server_name}"
    async with running_bot(tmp_path, synapse, bot, rooms=[alias]):
        await alice.sees_join(room, bot.user_id)
        await alice.ask(room, "!help", bot.user_id)


async def test_a_burst_of_100_commands_is_answered_in_full(tmp_path, synapse, account, person):
    bot = account("bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        sent = await asyncio.gather(
            *(alice.send(room, "!volunteer list --language pl") for _ in range(100))
        )
        await alice.wait_for(lambda e: e.get("sender") == bot.user_id and in_reply_to(e), 100)
    answered = [in_reply_to(e) for e in alice.events
                if e.get("sender") == bot.user_id and e.get("type") == "m.room.message"]  # fmt: skip
    assert sorted(answered) == sorted(sent)


async def test_invites_are_accepted_only_from_the_allowlist(tmp_path, synapse, account, person):
    bot = account("bot")
    carol = await person("carol")
    mallory = await person("mallory")
    async with running_bot(tmp_path, synapse, bot, invite_allowlist=[carol.user_id]):
        ignored = await mallory.create_room(invite=[bot.user_id])
        accepted = await carol.create_room(invite=[bot.user_id])
        await carol.sees_join(accepted, bot.user_id)
        # A command answered after both invites means the bot has seen both of them.
        await carol.ask(accepted, "!help", bot.user_id)
        assert await mallory.membership(ignored, bot.user_id) == "invite"


async def test_server_suffix_in_the_allowlist_admits_everyone_on_that_server(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    carol = await person("carol")
    async with running_bot(tmp_path, synapse, bot, invite_allowlist=[":" + synapse.server_name]):
        room = await carol.create_room(invite=[bot.user_id])
        await carol.sees_join(room, bot.user_id)
        await carol.ask(room, "!help", bot.user_id)


async def test_user_text_is_escaped_and_pings_nobody(tmp_path, synapse, account, person):
    bot = account("bot")
    alice = await person("alice", "<b>Al</b> & @room")
    bob = await person("bob", "Bob")
    # The bot may notify the room, so only m.mentions keeps "@room" from pinging.
    room = await alice.create_room(invite=[bot.user_id, bob.user_id], power={bot.user_id: 100})
    await bob.join(room)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        reply = await alice.ask(room, "!volunteer join translator", bot.user_id)
        await bob.reply_to(in_reply_to(reply), bot.user_id)
    content = reply["content"]
    assert "Welcome, <b>Al</b> & @room!" in content["body"]
    assert "Welcome, &lt;b&gt;Al&lt;/b&gt; &amp; @room!" in content["formatted_body"]
    assert "<b>" not in content["formatted_body"]
    assert content["m.mentions"] == {}
    highlights = [
        n for n in bob.notifications() if n["event"]["event_id"] == reply["event_id"]
        and "highlight" in str(n["actions"])
    ]  # fmt: skip
    assert not any(
        a.get("set_tweak") == "highlight" and a.get("value", True)
        for n in highlights
        for a in n["actions"]
        if isinstance(a, dict)
    )


async def test_only_plain_new_commands_from_people_are_answered(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")
    other_bot = await person("otherbot")
    room = await alice.create_room(invite=[bot.user_id, other_bot.user_id])
    await other_bot.join(room)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        original = await alice.send(room, "!volunteer profile")
        await alice.reply_to(original, bot.user_id)
        ignored = [
            await alice.send(room, "volunteer profile"),  # no prefix
            await other_bot.send(room, "!volunteer profile", msgtype="m.notice"),
            await alice.send(room, "!help", msgtype="m.emote"),
            await alice.send(
                room,
                "* !volunteer join translator",
                **{
                    "m.new_content": {"msgtype": "m.text", "body": "!volunteer join translator"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": original},
                },
            ),
        ]
        await alice.ask(room, "!help", bot.user_id)
    answered = {in_reply_to(e) for e in alice.events if e.get("sender") == bot.user_id}
    assert not answered & set(ignored)
    replies_to_original = [e for e in alice.events if is_reply(e, original, bot.user_id)]
    assert len(replies_to_original) == 1, "an edit is not a second command"


async def test_a_bad_command_is_answered_with_a_friendly_notice(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        typo = await alice.ask(room, "!volunteer jion translator", bot.user_id)
        garbage = await alice.ask(room, '!volunteer join "\x00<script>', bot.user_id)
    assert "did you mean `!volunteer join`?" in body(typo)
    assert typo["content"]["msgtype"] == "m.notice"
    for reply in (typo, garbage):
        assert "Traceback" not in body(reply) and "Error" not in body(reply)
        assert "<script>" not in reply["content"]["formatted_body"]


async def test_a_60_kb_command_and_a_huge_answer_are_answered_in_one_event(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, _adapter):
        await alice.sees_join(room, bot.user_id)
        # The error once quoted all 60 KB back, and the homeserver refused it (M_TOO_LARGE).
        huge = await alice.ask(room, "!volunteer join " + "x" * 60_000, bot.user_id)
        app.services.registry.add(Probe(app.services))
        flood = await alice.ask(room, "!probe flood", bot.user_id)
    assert "is not a valid role" in body(huge) and len(body(huge)) < 500
    assert body(flood).startswith("Flood: ü<&>")
    assert body(flood).endswith("(cut: the rest was too long to send)")
    assert "&lt;&amp;&gt;" in flood["content"]["formatted_body"]


async def test_a_mention_pill_names_the_user_it_links_to(tmp_path, synapse, account, person):
    bot = account("bot")
    alice = await person("alice", "Alice")
    bob = await person("bob", "Bobby")
    room = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(room)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        await bob.ask(room, "!volunteer join networker", bot.user_id)
        pill = f'<a href="https://matrix.to/#/{bob.user_id}">Bobby</a>'
        command = await alice.send(
            room,
            "!volunteer profile Bobby",
            format="org.matrix.custom.html",
            formatted_body=f"!volunteer profile {pill}",
        )
        reply = await alice.reply_to(command, bot.user_id)
    assert body(reply).startswith("Bobby\n") and "networker" in body(reply)


async def test_outbox_posts_reach_the_room_once_and_mention_their_recipient(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", "Alice")
    stranger = await person("stranger")
    room = await alice.create_room(invite=[bot.user_id])
    closed = await stranger.create_room()
    now = datetime.now(UTC)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, adapter):
        await app.services.outbox_repo.add(
            key="test:reminder:1",
            target=f"matrix:{room}",
            body=Markup.format("Reminder: {text}", text="<i>call</i> @room"),
            now=now,
            recipient_id=alice.user_id,
        )
        app.services.outbox.wake()
        post = (await alice.wait_for(lambda e: "Reminder:" in body(e)))[0]
        # A resend of the same row (say, after a crash before it was marked sent) is
        # deduplicated by the homeserver through the transaction id.
        again = Delivery(
            id=999, key="test:reminder:1", platform="matrix", target=f"matrix:{room}",
            recipient_id=alice.user_id, body=Markup.format("Reminder: {text}",
            text="<i>call</i> @room"), attachment=None, attempts=2, due_at=now,
        )  # fmt: skip
        await adapter.deliver(again)
        with pytest.raises(PermanentDeliveryError):
            await adapter.deliver(
                Delivery(
                    id=1000, key="test:closed", platform="matrix", target=f"matrix:{closed}",
                    recipient_id=None, body=Markup.trusted("hello"), attachment=None,
                    attempts=1, due_at=now,
                )
            )  # fmt: skip
        await alice.ask(room, "!help", bot.user_id)
        assert await app.services.outbox_repo.sent_keys("test:") == ["test:reminder:1"]
    posts = [e for e in alice.events if "Reminder:" in body(e)]
    assert len(posts) == 1
    content = post["content"]
    assert content["m.mentions"] == {"user_ids": [alice.user_id]}
    assert content["body"] == "Alice: Reminder: <i>call</i> @room"
    assert f'href="https://matrix.to/#/{alice.user_id}"' in content["formatted_body"]
    assert "&lt;i&gt;call&lt;/i&gt; @room" in content["formatted_body"]


async def test_the_adapter_repr_and_log_carry_no_secret(tmp_path, synapse, account, caplog):
    bot = account("bot")
    caplog.set_level("DEBUG")
    async with running_bot(tmp_path, synapse, bot) as (_app, adapter):
        assert bot.access_token not in repr(adapter)
        assert isinstance(adapter, MatrixAdapter)
    assert bot.access_token not in caplog.text


def _png() -> bytes:
    """A 1x1 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


class Probe(Cog):
    """Commands that exercise reply features no shipped command may use yet."""

    group = "probe"
    personal_data = False

    def __init__(self, services):
        pass

    @command(confidential=True)
    async def secret(self, ctx: Ctx) -> Reply:
        """Answer only the caller, where nobody else can read it."""
        return Reply.text("Only for {name}.", name=ctx.user.label)

    @command(private=True)
    async def mine(self, ctx: Ctx) -> Reply:
        """Answer quietly: only the caller needs it."""
        return Reply.text("Quietly for {name}.", name=ctx.user.label)

    @command()
    async def flood(self, ctx: Ctx) -> Reply:
        """Answer with far more text than one event may carry."""
        return Reply.text("Flood: {text}", text="ü<&>\n" * 60_000)

    @command()
    async def chart(self, ctx: Ctx) -> Reply:
        """Answer with an image."""
        return Reply(
            Markup.trusted("Progress chart:"),
            attachments=[Attachment("progress.png", _png(), "image/png")],
        )


async def test_confidential_answers_go_to_an_encrypted_direct_chat_quiet_ones_to_a_thread(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", "Alice", encrypted=True)
    bob = await person("bob", "Bob")
    room = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(room)  # three in the room: quiet answers go to a thread there
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, _adapter):
        await alice.sees_join(room, bot.user_id)
        app.services.registry.add(Probe(app.services))
        command = await alice.send(room, "!probe secret")
        note = await alice.reply_to(command, bot.user_id)
        direct = await alice.wait_for_invite()
        await alice.join(direct)
        answer = (
            await alice.wait_for(lambda e: e["room_id"] == direct and "Only for" in body(e))
        )[0]
        quiet_command = await alice.send(room, "!probe mine")
        quiet = await alice.reply_to(quiet_command, bot.user_id)
        command = await alice.send(room, "!probe chart")
        images = await alice.wait_for(
            lambda e: (
                e.get("sender") == bot.user_id
                and (e.get("content") or {}).get("msgtype") == "m.image"
            )
        )
        text = await alice.reply_to(command, bot.user_id)
        assert (
            await app.services.direct_chats.room_of(UserRef("matrix", alice.user_id)) == direct
        ), "the direct chat is kept in its own table"
    assert "direct chat" in body(note) and "Only for" not in body(note)
    assert body(answer) == "Only for Alice."
    assert answer["event_id"] in alice.encrypted, "the direct chat is encrypted"
    for threaded, root in ((note, note_root := in_reply_to(note)), (quiet, quiet_command)):
        relation = threaded["content"]["m.relates_to"]
        assert relation["rel_type"] == "m.thread" and relation["event_id"] == root
    assert note_root is not None
    assert body(quiet) == "Quietly for Alice."
    image = images[0]["content"]
    assert image["url"].startswith("mxc://") and image["info"]["mimetype"] == "image/png"
    assert image["m.mentions"] == {}
    order = [e["event_id"] for e in alice.events]
    assert order.index(text["event_id"]) < order.index(images[0]["event_id"])


class Gate(Cog):
    """A command that waits until the test lets it answer."""

    group = "gate"
    personal_data = False

    def __init__(self, services):
        self.open = asyncio.Event()

    @command()
    async def wait(self, ctx: Ctx) -> Reply:
        """Answer once the gate opens."""
        await self.open.wait()
        return Reply(Markup.trusted("The gate opened."))


async def test_a_slow_command_holds_up_only_its_own_room_which_keeps_its_order(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")
    slow_room = await alice.create_room(invite=[bot.user_id])
    other_room = await alice.create_room(invite=[bot.user_id])
    async with running_bot(tmp_path, synapse, bot, rooms=[slow_room, other_room]) as (app, _):
        gate = Gate(app.services)
        app.services.registry.add(gate)
        await alice.sees_join(other_room, bot.user_id)
        slow = await alice.send(slow_room, "!gate wait")
        after_slow = await alice.send(slow_room, "!help")
        # The other room is answered while the first one's command still waits.
        await alice.ask(other_room, "!help", bot.user_id)
        assert not [e for e in alice.events if in_reply_to(e) in (slow, after_slow)]
        gate.open.set()
        await alice.reply_to(after_slow, bot.user_id)
    order = [in_reply_to(e) for e in alice.events if in_reply_to(e) in (slow, after_slow)]
    assert order == [slow, after_slow], "one room's commands are answered in order"
