"""Events anyone can send, shaped as the Matrix spec does not say: the bot must not trip on them."""

import logging

import pytest

from tests.e2e.matrix_kit import Handled, body, in_reply_to, running_bot

pytestmark = pytest.mark.e2e

# m.relates_to values a client may put in any event: the server relays them as they are.
MALFORMED_RELATIONS = [
    "$not-an-object",
    ["m.thread", "$x"],
    7,
    None,
    {},
    {"rel_type": "m.thread"},
    {"rel_type": "m.thread", "event_id": 42},
    {"rel_type": "m.thread", "event_id": ["$x"]},
    {"rel_type": ["m.replace"], "event_id": "$x"},
    {"m.in_reply_to": "$x"},
    {"m.in_reply_to": {"event_id": {"nested": True}}},
]


async def test_a_command_with_a_malformed_relation_is_answered_as_a_plain_message(
    tmp_path, synapse, account, person, caplog
):
    bot = account("bot")
    alice = await person("alice")
    room = await alice.create_room(invite=[bot.user_id])
    caplog.set_level(logging.WARNING, logger="bot")
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (_app, adapter):
        handled = Handled(adapter)
        commands = [
            await alice.send(room, "!volunteer profile", **{"m.relates_to": relates})
            for relates in MALFORMED_RELATIONS
        ]
        reactions = [
            await alice.send_content(room, {"m.relates_to": relates, "key": "✋"}, "m.reaction")
            for relates in MALFORMED_RELATIONS
        ]
        for event_id in commands:
            reply = await alice.reply_to(event_id, bot.user_id)
            assert "volunteer join" in body(reply), body(reply)
            relates = reply["content"]["m.relates_to"]
            assert relates == {"m.in_reply_to": {"event_id": event_id}}, "no thread made up"
        for event_id in reactions:
            await handled.wait(event_id)
    answered = [
        in_reply_to(e)
        for e in alice.events
        if e.get("sender") == bot.user_id and e.get("type") == "m.room.message"
    ]
    assert sorted(answered) == sorted(commands), "each command once, no reaction answered"
    failures = [r for r in caplog.records if "could not be handled" in r.getMessage()]
    assert not failures, [r.getMessage() for r in failures]
