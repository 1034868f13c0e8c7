"""Coordinator rights on a real Synapse: the campaign's rooms decide, nothing else does."""

import pytest
import sqlalchemy as sa

from tests.e2e.matrix_kit import Handled, Person, body, in_reply_to, running_bot
from tests.rights_matrix import REFUSAL, coordinator_specs, sample_line

pytestmark = pytest.mark.e2e


async def run_all(person: Person, room: str, bot: str, specs, target: str) -> dict[str, bool]:
    """Every coordinator command in ``room``; True where it was refused for lack of rights."""
    refused = {}
    for spec in specs:
        reply = await person.ask(room, "!" + sample_line(spec, target), bot)
        refused[spec.qualified_name] = REFUSAL in body(reply)
    return refused


async def direct_room_of(person: Person, bot: str, campaign: str) -> str:
    """The direct chat the bot opens when asked for something private (``privacy mydata``)."""
    await person.ask(campaign, "!privacy mydata", bot)
    room = await person.wait_for_invite()
    await person.join(room)
    return room


async def test_only_the_campaign_rooms_and_the_config_make_coordinators(
    tmp_path, synapse, account, person
):
    bot = account("bot", "Volunteer Bot")
    owner = await person("owner")  # creator of the campaign room (room version 12)
    carol = await person("carol", encrypted=True)  # named in the configuration
    mod = await person("mod")  # power level 50 in the campaign room
    alice = await person("alice", encrypted=True)  # a plain member of the campaign room
    mallory = await person("mallory")  # not in the campaign at all
    campaign = await owner.create_room(
        invite=[bot.user_id, carol.user_id, mod.user_id, alice.user_id],
        power={mod.user_id: 50},
    )
    for who in (carol, mod, alice):
        await who.join(campaign)
    async with running_bot(
        tmp_path, synapse, bot, rooms=[campaign], coordinators=[carol.user_id],
        invite_allowlist=[":" + synapse.server_name],
    ) as (app, _adapter):  # fmt: skip
        specs = coordinator_specs(app.services.registry.specs)
        alice_direct = await direct_room_of(alice, bot.user_id, campaign)
        carol_direct = await direct_room_of(carol, bot.user_id, campaign)
        mallory_own = await mallory.create_room(invite=[bot.user_id])
        await mallory.sees_join(mallory_own, bot.user_id)
        mod_own = await mod.create_room(invite=[bot.user_id])
        await mod.sees_join(mod_own, bot.user_id)

        cases = [
            (carol, campaign, False, "named in config, in the campaign room"),
            (carol, carol_direct, False, "named in config, in a direct chat"),
            (owner, campaign, False, "creator of the campaign room"),
            (mod, campaign, False, "moderator of the campaign room"),
            (mod, mod_own, False, "moderator of the campaign room, in a room of his own"),
            (alice, campaign, True, "plain member of the campaign room"),
            (alice, alice_direct, True, "plain member, in the direct chat the bot opened"),
            (mallory, mallory_own, True, "a stranger, creator of her own room"),
        ]
        for who, room, refused, why in cases:
            outcome = await run_all(who, room, bot.user_id, specs, alice.user_id)
            assert set(outcome.values()) == {refused}, (why, outcome)

        trail = await app.services.audit.recent(1000)
        assert len(trail) == len(cases) * len(specs), "every coordinator command left a line"
        by_mallory = {
            e.outcome for e in trail if e.actor and e.actor.external_id == mallory.user_id
        }
        assert by_mallory == {"refused"}


async def test_the_escalation_through_a_direct_chat_is_closed(tmp_path, synapse, account, person):
    """alice, a plain member, asks for her data; the direct chat the bot opens gives her nothing."""
    bot = account("bot", "Volunteer Bot")
    carol = await person("carol")
    alice = await person("alice", encrypted=True)  # her direct chat with the bot is encrypted
    mallory = await person("mallory")
    campaign = await carol.create_room(invite=[bot.user_id, alice.user_id])
    await alice.join(campaign)
    async with running_bot(
        tmp_path, synapse, bot, rooms=[campaign], coordinators=[carol.user_id],
        invite_allowlist=[":" + synapse.server_name],
    ) as (app, _adapter):  # fmt: skip
        await carol.ask(campaign, "!task post other Real task", bot.user_id)
        await carol.ask(campaign, "!reminder add Phone bank --in 2h", bot.user_id)
        refused = await alice.ask(campaign, "!task cancel 1", bot.user_id)
        assert REFUSAL in body(refused)

        direct = await direct_room_of(alice, bot.user_id, campaign)
        levels = await alice.client.room_get_state_event(direct, "m.room.power_levels")
        users = levels.content.get("users", {})
        assert users.get(alice.user_id, levels.content.get("users_default", 0)) < 50
        create = await alice.client.room_get_state_event(direct, "m.room.create")
        assert alice.user_id not in create.content.get("additional_creators", [])

        for line in (
            "!signatures set 1000000",
            "!task cancel 1",
            "!reminder delete 1",
            "!task post other Fake task",
        ):
            assert REFUSAL in body(await alice.ask(direct, line, bot.user_id)), line

        own = await mallory.create_room(invite=[bot.user_id])
        await mallory.sees_join(own, bot.user_id)
        assert REFUSAL in body(await mallory.ask(own, "!signatures set 10", bot.user_id))

        assert [r.id for r in await app.services.reminders.active_in(None)] == [1]
        listed = await carol.ask(campaign, "!task list", bot.user_id)
        assert "Real task" in body(listed) and "Fake task" not in body(listed)
        counts = app.db.run_sync(
            lambda s: s.exec(sa.text(
                "SELECT (SELECT count(*) FROM signature_count), "
                "(SELECT count(*) FROM outbox WHERE key LIKE 'milestone%'), "
                "(SELECT status FROM task WHERE id = 1)"
            )).one(),
            write=False,
        )  # fmt: skip
        assert tuple(counts) == (0, 0, "open"), "no count, no announcement, task 1 not cancelled"


async def test_a_room_outside_the_campaign_is_ignored_by_default(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    carol = await person("carol")
    alice = await person("alice")
    bob = await person("bob")
    campaign = await carol.create_room(invite=[bot.user_id])
    foreign = await alice.create_room(invite=[bot.user_id, bob.user_id])
    await bob.join(foreign)
    async with running_bot(
        tmp_path, synapse, bot, rooms=[campaign], invite_allowlist=[":" + synapse.server_name]
    ) as (_app, adapter):
        handled = Handled(adapter)
        await alice.sees_join(foreign, bot.user_id)
        ignored = await alice.send(foreign, "!help")
        await handled.wait(ignored)
        marker = await alice.send(foreign, "a marker after the ignored command")
        await alice.wait_for(lambda e: e.get("event_id") == marker)
        assert not [e for e in alice.events if in_reply_to(e) == ignored]
        await carol.ask(campaign, "!help", bot.user_id)  # the campaign room is served


async def test_answering_everywhere_still_gives_no_rights_from_a_foreign_room(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    alice = await person("alice")  # creator of her room
    bob = await person("bob")  # moderator there
    foreign = await alice.create_room(invite=[bot.user_id, bob.user_id], power={bob.user_id: 100})
    await bob.join(foreign)
    async with running_bot(
        tmp_path, synapse, bot, invite_allowlist=[":" + synapse.server_name],
        sections={"bot": {"answer_elsewhere": "everywhere"}},
    ) as (app, _adapter):  # fmt: skip
        await alice.sees_join(foreign, bot.user_id)
        specs = coordinator_specs(app.services.registry.specs)
        for who in (alice, bob):
            outcome = await run_all(who, foreign, bot.user_id, specs, alice.user_id)
            assert set(outcome.values()) == {True}, (who.user_id, outcome)


async def test_a_reminder_is_deleted_from_another_room_only_when_asked_anywhere(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    carol = await person("carol")
    first = await carol.create_room(invite=[bot.user_id])
    second = await carol.create_room(invite=[bot.user_id])
    async with running_bot(tmp_path, synapse, bot, rooms=[first, second]) as (app, _adapter):
        made = await carol.ask(first, "!reminder add Phone bank --in 2h", bot.user_id)
        assert "Reminder #1 will post here" in body(made)
        listed = await carol.ask(second, "!reminder list", bot.user_id)
        assert "No reminders post here" in body(listed)
        kept = await carol.ask(second, "!reminder delete 1", bot.user_id)
        assert f"posts in another room (matrix:{first})" in body(kept)
        assert [r.id for r in await app.services.reminders.active_in(None)] == [1]
        gone = await carol.ask(second, "!reminder delete 1 --anywhere", bot.user_id)
        assert "Deleted reminder #1" in body(gone)
        assert await app.services.reminders.active_in(None) == []
