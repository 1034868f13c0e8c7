"""Encrypted rooms and direct chats, against a real Synapse with real encrypting clients.

Every person here runs matrix-nio with end-to-end encryption and a store of their own, as
Element would: they encrypt what they send, and read the bot only if its keys reach them.
"""

import json
import shutil
import stat
import time
from pathlib import Path

import pytest
from nio import RoomKeyRequest
from nio.crypto.attachments import decrypt_attachment

from bot.adapters.matrix_adapter import CREDENTIALS_FILE, NO_KEY_NOTE
from bot.adapters.matrix_signing import (
    CROSS_SIGNING_FILE,
    SECRET_NAMES,
    b64_bytes,
    decrypt_secret,
    signed_by,
    unpadded_b64,
)
from bot.domain import Markup
from tests.e2e.matrix_kit import BotProcess, body, in_reply_to, is_reply, running_bot, toml

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"


def _bot_replies(who, bot):
    return [e for e in who.events if e.get("sender") == bot.user_id and in_reply_to(e)]


async def test_an_encrypted_room_is_served_like_a_plain_one_and_every_answer_is_encrypted(
    tmp_path, synapse, account, person
):
    bot = account("bot", "Volunteer Bot")
    coco = await person("coco", "Coco", encrypted=True)
    alice = await person("alice", "Alice", encrypted=True)
    room = await coco.create_room(
        invite=[bot.user_id, alice.user_id], power={bot.user_id: 100}, encrypted=True
    )
    await alice.join(room)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, _adapter):
        await coco.sees_join(room, bot.user_id)
        joined = await alice.ask(room, "!volunteer join translator --languages pl", bot.user_id)
        post = await coco.ask(room, "!task post translation Leaflet --language pl", bot.user_id)
        task_id = int(body(post).split("#")[1].split(" ")[0].rstrip(":"))
        # Element encrypts reactions too: ✋ arrives as an m.room.encrypted event.
        reaction = await alice.send_encrypted(
            room, "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": post["event_id"],
                              "key": "✋"}},
        )  # fmt: skip
        claimed = await alice.wait_for(lambda e: is_reply(e, post["event_id"], bot.user_id)
                                       and "Alice" in body(e))  # fmt: skip
        mine = await alice.ask(room, "!task mine", bot.user_id)
        await coco.ask(room, "!signatures set 120000", bot.user_id)
        chart_command = await coco.send(room, "!signatures")
        chart_text = await coco.reply_to(chart_command, bot.user_id)
        # Bot-initiated posts (reminders, milestones, notices) are encrypted there too.
        await app.services.outbox_repo.add(
            key="test:notice", target=f"matrix:{room}", now=app.clock.now(),
            body=Markup.trusted("Reminder: the stand opens at 10."), recipient_id=alice.user_id,
        )  # fmt: skip
        app.services.outbox.wake()
        notice = (await alice.wait_for(lambda e: "the stand opens" in body(e)))[0]
        image = (
            await coco.wait_for(
                lambda e: (
                    e.get("sender") == bot.user_id
                    and (e.get("content") or {}).get("msgtype") == "m.image"
                    and (e.get("content") or {}).get("org.volunteer_bot.answers") == chart_command
                )
            )
        )[0]
    assert "registered as translator" in body(joined)
    assert f"#{task_id}" in body(claimed[0]) and reaction
    assert "You hold 1 of" in body(mine)
    assert mine["content"]["m.relates_to"]["rel_type"] == "m.thread", "quiet: in a thread"
    assert notice["content"]["m.mentions"] == {"user_ids": [alice.user_id]}
    for reply in (joined, post, claimed[0], mine, chart_text, image, notice):
        assert reply["event_id"] in alice.encrypted | coco.encrypted, body(reply)
    # The chart is an encrypted file: no plain URL, and it decrypts to a PNG.
    file = image["content"]["file"]
    assert "url" not in image["content"]
    download = await coco.client.download(mxc=file["url"])
    png = decrypt_attachment(download.body, file["key"]["k"], file["hashes"]["sha256"],
                             file["iv"])  # fmt: skip
    assert png.startswith(PNG)
    assert not alice.undecryptable and not coco.undecryptable


async def test_an_encrypted_direct_chat_the_person_opened_is_served_in_place(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", "Alice", encrypted=True)
    allow = {"invite_allowlist": [":" + synapse.server_name]}
    async with running_bot(tmp_path, synapse, bot, **allow):
        direct = await alice.create_room(invite=[bot.user_id], encrypted=True, is_direct=True)
        await alice.sees_join(direct, bot.user_id)
        joined = await alice.ask(direct, "!volunteer join networker", bot.user_id)
        export = await alice.ask(direct, "!privacy mydata", bot.user_id)
        files = await alice.wait_for(
            lambda e: (
                e["room_id"] == direct and (e.get("content") or {}).get("msgtype") == "m.file"
            )
        )
    assert "registered as networker" in body(joined)
    assert "What I store about you" in body(export), "confidential, answered where asked"
    assert not alice.invites, "no second direct chat was opened"
    for event in (joined, export, files[0]):
        assert event["event_id"] in alice.encrypted
    assert "file" in files[0]["content"] and "url" not in files[0]["content"]


async def test_a_member_who_joins_later_can_read_the_answers_to_them(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", encrypted=True)
    bob = await person("bob", "Bob", encrypted=True)
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        await alice.sees_join(room, bot.user_id)
        await alice.ask(room, "!volunteer join translator", bot.user_id)
        await alice.client.room_invite(room, bob.user_id)
        await bob.join(room)
        answer = await bob.ask(room, "!volunteer join organiser", bot.user_id)
        seen_by_alice = await alice.reply_to(in_reply_to(answer), bot.user_id)
    assert "Welcome, Bob!" in body(answer)
    assert answer["event_id"] in bob.encrypted
    # What was said before he joined stays unreadable to him; nothing said to him is.
    hidden = {e["event_id"] for e in bob.undecryptable}
    assert answer["event_id"] not in hidden
    assert all(e["origin_server_ts"] <= answer["origin_server_ts"] for e in bob.undecryptable)
    assert body(seen_by_alice) == body(answer), "the earlier member reads it as well"


async def test_the_bots_device_is_cross_signed_by_its_owner_in_another_clients_view(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", encrypted=True)
    recovery: list[str] = []
    async with running_bot(tmp_path, synapse, bot, recovery_keys=recovery) as (_app, adapter):
        device_id = adapter.client.device_id
    # Alice's view of the bot, as her client fetches it.
    query = synapse.request(
        "POST", "/_matrix/client/v3/keys/query", {"device_keys": {bot.user_id: []}},
        token=alice.account.access_token,
    )  # fmt: skip
    master = query["master_keys"][bot.user_id]
    ssk = query["self_signing_keys"][bot.user_id]
    device = query["device_keys"][bot.user_id][device_id]
    (master_public,) = master["keys"].values()
    (ssk_public,) = ssk["keys"].values()
    assert master["usage"] == ["master"] and ssk["usage"] == ["self_signing"]
    assert signed_by(ssk, bot.user_id, master_public), "the master key signs the self-signing key"
    assert signed_by(device, bot.user_id, ssk_public), "the self-signing key signs the device"
    assert not signed_by(device, bot.user_id, master_public)
    own = synapse.request(
        "POST", "/_matrix/client/v3/keys/query", {"device_keys": {bot.user_id: []}}, token=bot.access_token
    )  # fmt: skip
    (usk,) = own["user_signing_keys"][bot.user_id]["keys"].values()
    assert signed_by(own["user_signing_keys"][bot.user_id], bot.user_id, master_public), usk

    # The private keys are kept 0600, and the recovery key shown once opens secret storage.
    kept = tmp_path / "store" / CROSS_SIGNING_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert len(recovery) == 1
    key = _recovery_key_bytes(recovery[0])
    account_data = f"/_matrix/client/v3/user/{bot.user_id}/account_data/"
    token = bot.access_token
    key_id = synapse.request("GET", account_data + "m.secret_storage.default_key",
                             token=token)["key"]  # fmt: skip
    stored = synapse.request("GET", account_data + SECRET_NAMES["master"], token=token)
    seed = b64_bytes(decrypt_secret(key, SECRET_NAMES["master"], stored["encrypted"][key_id]))
    from nacl.signing import SigningKey

    assert unpadded_b64(bytes(SigningKey(seed).verify_key)) == master_public


def _recovery_key_bytes(recovery: str) -> bytes:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number = 0
    for char in recovery.replace(" ", ""):
        number = number * 58 + alphabet.index(char)
    raw = number.to_bytes(35, "big")
    parity = 0
    for byte in raw:
        parity ^= byte
    assert raw[:2] == b"\x8b\x01" and parity == 0, "a well-formed recovery key"
    return raw[2:34]


async def test_a_restart_keeps_the_device_and_every_session_and_a_lost_store_is_refused(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", encrypted=True)
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    store = tmp_path / "store"
    config = toml(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "matrix": {
                "enabled": True,
                "homeserver": synapse.url,
                "user_id": bot.user_id,
                "rooms": [room],
                "store_path": str(store),
            },
        }
    )
    process = BotProcess(tmp_path, config, {"VOLUNTEER_BOT_MATRIX__PASSWORD": bot.password})
    try:
        await process.start()
        await alice.sees_join(room, bot.user_id)
        first = await alice.ask(room, "!volunteer join translator", bot.user_id)
        session_before = alice.client.olm.outbound_group_sessions[room].id
        assert process.stop() == 0

        await process.start()
        second = await alice.ask(room, "!volunteer profile", bot.user_id)
        session_after = alice.client.olm.outbound_group_sessions[room].id
        assert process.stop() == 0
    finally:
        process.stop()
    assert "translator" in body(second)
    assert {first["event_id"], second["event_id"]} <= alice.encrypted
    # Alice's client saw the same bot device throughout: it never needed a new room key, so
    # the bot read her second command with the session it kept from before the restart.
    assert session_before == session_after
    credentials = json.loads((store / CREDENTIALS_FILE).read_text())
    devices = synapse.request("GET", "/_matrix/client/v3/devices",
                              token=credentials["access_token"])["devices"]  # fmt: skip
    assert [d["device_id"] for d in devices if d.get("display_name") == "volunteer-bot"] == [
        credentials["device_id"]
    ]
    # The recovery key went to standard output once, and never into the log.
    shown = [line for line in process.stdout if "recovery key" in line]
    assert len(shown) == 1
    key_line = process.stdout[process.stdout.index(shown[0]) + 2].strip()
    assert key_line and key_line not in process.output
    assert bot.password not in process.output and "Traceback" not in process.output
    assert credentials["access_token"] not in process.output + "".join(process.stdout)

    # The crypto store lost while the homeserver still knows the device: one clear line,
    # exit status 1, nothing served with the wrong keys.
    for path in store.glob("*.db"):
        path.unlink()
    assert await process.exits() == 1
    errors = [line for line in process.log if "ERROR" in line]
    assert len(errors) == 1 and "crypto store" in errors[0] and "missing" in errors[0]
    assert "Traceback" not in process.output

    # A foreign store (here Alice's, put in its place) is refused the same way.
    (alice_db,) = Path(alice.client.store_path).glob("*.db")  # noqa: ASYNC240 (a test)
    shutil.copy(alice_db, store / f"{bot.user_id}_{credentials['device_id']}.db")
    process.log.clear()
    assert await process.exits() == 1
    errors = [line for line in process.log if "ERROR" in line]
    assert len(errors) == 1 and "holds other keys than this device's" in errors[0]


async def test_a_command_whose_key_arrives_late_is_answered_once_and_a_lost_key_is_told(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", encrypted=True)
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    async with running_bot(tmp_path, synapse, bot, rooms=[room], late_key_wait="6s") as (
        _app,
        adapter,
    ):
        await alice.sees_join(room, bot.user_id)
        await alice.ask(room, "!help", bot.user_id)  # the bot and Alice know each other
        bot_device = adapter.client.device_id

        late, late_key = await alice.send_without_key(room, "!volunteer join networker")
        # The bot holds the message and asks for its key: that request is what we wait for.
        await alice.wait_for_to_device(
            lambda e: isinstance(e, RoomKeyRequest) and e.session_id == late_key["session_id"]
        )
        await alice.send_room_key(bot.user_id, bot_device, late_key)
        answer = await alice.reply_to(late, bot.user_id)

        lost, _ = await alice.send_without_key(room, "!volunteer profile")
        started = time.monotonic()
        note = await alice.reply_to(lost, bot.user_id, within=40)
        waited = time.monotonic() - started
        after = await alice.ask(room, "!help", bot.user_id)
    assert "registered as networker" in body(answer)
    assert body(note) == NO_KEY_NOTE and waited >= 4
    assert answer["event_id"] in alice.encrypted and note["event_id"] in alice.encrypted
    replies = [in_reply_to(e) for e in _bot_replies(alice, bot)]
    assert replies.count(late) == 1 and replies.count(lost) == 1, "each answered once"
    assert in_reply_to(after) is not None


async def test_cross_signed_trust_keeps_the_answers_from_devices_nobody_signed(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", "Alice", encrypted=True)
    bob = await person("bob", "Bob", encrypted=True)
    await alice.cross_sign_own_device()
    room = await alice.create_room(invite=[bot.user_id, bob.user_id], encrypted=True)
    await bob.join(room)
    async with running_bot(tmp_path, synapse, bot, rooms=[room], trust="cross-signed"):
        await alice.sees_join(room, bot.user_id)
        answer = await alice.ask(room, "!volunteer join translator", bot.user_id)
        # Bob's unsigned device gets no key: he sees the answer but cannot read it.
        await bob.wait_for_undecryptable(answer["event_id"])
        bob_asks = await bob.send(room, "!volunteer join organiser")
        await alice.reply_to(bob_asks, bot.user_id)
        await bob.sync(0)
    assert answer["event_id"] in alice.encrypted
    assert answer["event_id"] not in {e.get("event_id") for e in bob.events}
    assert not any(is_reply(e, bob_asks, bot.user_id) for e in bob.events)


async def test_key_requests_are_answered_for_members_and_for_nobody_else(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", encrypted=True)
    mallory = await person("mallory", encrypted=True)
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (_app, adapter):
        await alice.sees_join(room, bot.user_id)
        answer = await alice.ask(room, "!help", bot.user_id)
        raw = await alice.raw_event(room, answer["event_id"])
        bot_device = adapter.client.device_id
        # Alice lost the key (say, a new device restored without it) and asks the bot.
        alice.forget_room_keys(room)
        alice.accept_forwarded_keys()
        assert not alice.can_decrypt(raw)
        for who in (mallory, alice):  # mallory first: by the time Alice is answered, both were
            await who.request_key(bot.user_id, bot_device, room, raw["content"])
        await alice.wait_for_to_device(lambda e: type(e).__name__ == "ForwardedRoomKeyEvent")
        await mallory.sync(0)
    assert not [e for e in mallory.to_device if getattr(e, "sender", None) == bot.user_id]
    assert alice.can_decrypt(raw), "the forwarded key opens the answer"


async def test_a_message_held_for_its_key_is_answered_after_a_restart(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice", encrypted=True)
    room = await alice.create_room(invite=[bot.user_id], encrypted=True)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (_app, adapter):
        await alice.sees_join(room, bot.user_id)
        await alice.ask(room, "!help", bot.user_id)
        bot_device = adapter.client.device_id
        held, key = await alice.send_without_key(room, "!volunteer join networker")
        await alice.wait_for_to_device(
            lambda e: isinstance(e, RoomKeyRequest) and e.session_id == key["session_id"]
        )
    # The key comes while the bot is down; the next start picks the message up again.
    await alice.send_room_key(bot.user_id, bot_device, key)
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        answer = await alice.reply_to(held, bot.user_id)
        await alice.ask(room, "!help", bot.user_id)
    assert "registered as networker" in body(answer)
    assert [in_reply_to(e) for e in _bot_replies(alice, bot)].count(held) == 1
