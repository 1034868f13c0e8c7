"""Task commands on Matrix: posting, racing claims, ✋ reactions, escaping of titles."""

import asyncio
import re

import pytest
import sqlalchemy as sa

from storage.models import Task
from tests.e2e.matrix_kit import body, in_reply_to, is_reply, running_bot

pytestmark = pytest.mark.e2e

CLAIM_HINT = re.compile(r"React ✋ or type `!task claim (\d+)`")


async def _room_with(person, bot, names, power=None):
    coco = await person("coco", "Coco")
    people = [await person(name, name.title()) for name in names]
    room = await coco.create_room(
        invite=[bot.user_id, *(p.user_id for p in people)],
        power={bot.user_id: 100, **(power(people) if power else {})},
    )
    for who in people:
        await who.join(room)
    return coco, people, room


async def _post(coco, room, bot, title):
    reply = await coco.ask(room, f"!task post translation {title} --language pl", bot.user_id)
    match = CLAIM_HINT.search(body(reply))
    assert match, f"the post shows how to claim it: {body(reply)!r}"
    return reply, int(match.group(1))


async def test_a_coordinator_posts_and_of_two_racing_volunteers_one_wins(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    coco, (alice, bob), room = await _room_with(person, bot, ["alice", "bob"])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        for who in (alice, bob):
            await who.ask(room, "!volunteer join translator --languages pl", bot.user_id)
        post, task_id = await _post(coco, room, bot, "Leaflet for Kraków")
        assert post["content"]["msgtype"] == "m.notice"
        command = f"!task claim {task_id}"
        sent = await asyncio.gather(alice.send(room, command), bob.send(room, command))
        replies = [await alice.reply_to(event_id, bot.user_id) for event_id in sent]
    told_who = [
        reply for reply, other in zip(replies, ("Bob", "Alice"), strict=True)
        if other in body(reply)
    ]  # fmt: skip
    assert len(told_who) == 1, [body(r) for r in replies]


async def test_coordinators_are_recognised_by_power_level_and_by_config(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    coco, (mod, listed, plain), room = await _room_with(
        person, bot, ["mod", "listed", "plain"], power=lambda p: {p[0].user_id: 50}
    )
    async with running_bot(tmp_path, synapse, bot, rooms=[room], coordinators=[listed.user_id]):
        for who in (coco, mod, listed):
            await _post(who, room, bot, f"Posted by {who.user_id}")
        refused = await plain.ask(room, "!task post translation Nope --language pl", bot.user_id)
    assert "is for coordinators" in body(refused)
    assert not CLAIM_HINT.search(body(refused))


async def test_a_title_with_html_and_at_room_is_escaped_and_pings_nobody(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    coco, (bob,), room = await _room_with(person, bot, ["bob"])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        post, _ = await _post(coco, room, bot, "<b>Big</b> & <script>x</script> @room Bob")
        await bob.reply_to(in_reply_to(post), bot.user_id)
    content = post["content"]
    assert "<b>Big</b> & <script>x</script> @room" in content["body"]
    assert (
        "&lt;b&gt;Big&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt; @room"
        in (content["formatted_body"])
    )
    assert "<script>" not in content["formatted_body"]
    assert content["m.mentions"] == {}
    for note in bob.notifications():
        if note["event"]["event_id"] == post["event_id"]:
            assert not any(
                isinstance(a, dict) and a.get("set_tweak") == "highlight" and a.get("value", True)
                for a in note["actions"]
            ), note


async def test_reacting_with_a_raised_hand_claims_the_task(tmp_path, synapse, account, person):
    bot = account("bot")
    coco, (alice, bob), room = await _room_with(person, bot, ["alice", "bob"])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        for who in (alice, bob):
            await who.ask(room, "!volunteer join translator --languages pl", bot.user_id)
        post, _ = await _post(coco, room, bot, "Video subtitles")
        await alice.react(room, post["event_id"], "👍")
        await alice.react(room, post["event_id"], "✋\ufe0f")
        claimed = (
            await alice.wait_for(
                lambda e: is_reply(e, post["event_id"], bot.user_id) and "Alice" in body(e)
            )
        )[0]
        await bob.react(room, post["event_id"], "✋")
        refused = (
            await bob.wait_for(
                lambda e: (
                    is_reply(e, post["event_id"], bot.user_id)
                    and e["content"]["m.mentions"].get("user_ids") == [bob.user_id]
                )
            )
        )[0]
        await alice.ask(room, "!help", bot.user_id)
    assert claimed["content"]["m.mentions"] == {"user_ids": [alice.user_id]}
    assert "Alice" in body(refused), "the second claimer is told who has it"
    answers = [e for e in alice.events if is_reply(e, post["event_id"], bot.user_id)]
    assert len(answers) == 2, "the 👍 reaction runs nothing"


async def test_a_job_fans_out_and_goes_through_claim_delivery_and_review(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    coco, (ana, piotr), room = await _room_with(person, bot, ["ana", "piotr"])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]):
        for who in (ana, piotr):
            await who.ask(room, "!volunteer join translator --languages pl,en", bot.user_id)
        posted = body(await coco.ask(
            room, "!task post translation Leaflet --language pl,de,fr --source-language en "
                  "--source https://example.org/leaflet.odt", bot.user_id))  # fmt: skip
        numbers = dict(re.findall(r"#(\d+) \w+ \((\w\w)\)", posted))
        assert sorted(numbers.values()) == ["de", "fr", "pl"], posted
        pl = next(n for n, lang in numbers.items() if lang == "pl")
        assert "You have task" in body(await ana.ask(room, f"!task claim {pl}", bot.user_id))
        done = await ana.ask(room, f"!task done {pl} https://example.org/pl.odt", bot.user_id)
        assert "handed in for review" in body(done)
        own = await ana.ask(room, f"!task review {pl} approve", bot.user_id)
        assert "your own work" in body(own)
        asked = await piotr.ask(room, f"!task review {pl} changes the title is wrong", bot.user_id)
        assert "goes back to Ana" in body(asked)
        told = (await ana.wait_for(lambda e: "asked for changes" in body(e)))[0]
        assert "the title is wrong" in body(told)
        assert told["content"]["m.mentions"] == {"user_ids": [ana.user_id]}
        await ana.ask(room, f"!task done {pl} https://example.org/pl-v2.odt", bot.user_id)
        given = await piotr.ask(room, "!task next --review", bot.user_id)
        assert f"You are reviewing task #{pl}" in body(given)
        approved = await piotr.ask(room, f"!task review {pl} approve", bot.user_id)
        assert "approved and done" in body(approved)
        table = body(await coco.ask(room, "!job show 1", bot.user_id))
    assert "Source: https://example.org/leaflet.odt" in table
    assert (
        f"• pl Polish — #{pl} done by Ana, approved by Piotr: https://example.org/pl-v2.odt"
        in (table)
    )
    assert "progress: 1 done, 2 open" in table


async def test_reacting_thumbs_up_to_the_still_on_it_notice_extends_the_claim(
    tmp_path, synapse, account, person
):
    bot = account("bot")
    coco, (alice,), room = await _room_with(person, bot, ["alice"])
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, _):
        await alice.ask(room, "!volunteer join translator --languages pl", bot.user_id)
        _, task_id = await _post(coco, room, bot, "Leaflet for Gdańsk")
        await alice.ask(room, f"!task claim {task_id}", bot.user_id)
        # The claim has been idle for 80 % of its time to live.
        idle_since = app.clock.now() - app.settings.tasks.claim_ttl * 0.8
        table = Task.__table__  # type: ignore[attr-defined]
        await app.db.write_connection(
            lambda conn: conn.execute(sa.update(table).values(last_activity_at=idle_since))
        )
        tasks = next(c for c in app.cogs if c.group == "task")
        assert (await tasks.sweep()).nudged == 1
        notice = (await alice.wait_for(lambda e: "Still on task" in body(e)))[0]
        assert f"React 👍 or type `!task extend {task_id}`" in body(notice)
        await alice.react(room, notice["event_id"], "👍")
        kept = (await alice.wait_for(
            lambda e: is_reply(e, notice["event_id"], bot.user_id) and "stays yours" in body(e)
        ))[0]  # fmt: skip
        shown = body(await alice.ask(room, f"!task show {task_id}", bot.user_id))
    assert kept["content"]["m.mentions"] == {"user_ids": [alice.user_id]}
    assert "claim extended by Alice" in shown
