"""Claim expiry and due-date reminders, driven by a manual clock."""

import asyncio
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.domain.i18n import Reader, when
from cogs.tasks import Tasks
from storage.tasks import SweepReport
from tests.harness import START, Harness, make_app

TTL = timedelta(days=7)


def tasks_cog(h: Harness) -> Tasks:
    return next(c for c in h.app.cogs if isinstance(c, Tasks))


async def claimed(h: Harness, line: str = "other Stand at the fair", *, target="test:room") -> int:
    text = await h.ok("coco", f"task post {line}")
    tid = int(text.split("#", 1)[1].split(":", 1)[0].strip("*"))
    await h.ok("alice", "volunteer join organiser")
    await h.run("alice", f"task claim {tid}", target=target)
    return tid


async def test_idle_claim_gets_one_still_on_it_notice_at_80_percent(harness: Harness):
    h = harness
    tid = await claimed(h, target="test:stand-room")
    cog = tasks_cog(h)
    h.clock.advance(TTL * 0.8 - timedelta(minutes=1))
    assert await cog.sweep() == SweepReport()
    h.clock.advance(timedelta(minutes=2))
    assert (await cog.sweep()).nudged == 1
    assert (await cog.sweep()).nudged == 0, "the notice goes out once"
    [(kind, body)] = await h.app.db.read_connection(
        lambda conn: conn.exec_driver_sql("SELECT kind, body FROM outbox").all()
    )
    assert kind == "task.idle", "the row says what happened; words come at delivery"
    assert json.loads(body) == {"task": tid, "title": "Stand at the fair",
                                "when": (START + TTL).isoformat()}  # fmt: skip
    posts = await h.deliver()
    assert [(p.target, p.recipient_id) for p in posts] == [("test:stand-room", "alice")]
    assert f"Still on task #{tid}" in posts[0].body.plain()
    assert await h.deliver() == []


async def test_expired_claim_is_released_once_with_an_event(harness: Harness):
    h = harness
    tid = await claimed(h)
    cog = tasks_cog(h)
    h.clock.advance(TTL * 0.8)
    await cog.sweep()
    h.clock.advance(TTL * 0.2)
    report = await cog.sweep()
    assert report.released == 1
    assert (await cog.sweep()).released == 0, "no double release"
    shown = await h.ok("bob", f"task show {tid}")
    assert "Status: open" in shown
    assert shown.count("released after no activity (was Alice)") == 1
    texts = [p.body.plain() for p in await h.deliver()]
    assert len(texts) == 2 and "Still on task" in texts[0] and "back to the queue" in texts[1]
    assert "You hold no tasks" in await h.ok("alice", "task mine")


async def test_two_bots_sweeping_the_same_file_release_once(tmp_path):
    first = make_app(tmp_path)
    second = make_app(tmp_path, clock=first.clock)
    h = Harness(first)
    try:
        tid = await claimed(h)
        h.clock.advance(TTL + timedelta(seconds=1))
        reports = [await tasks_cog(h).sweep(), await tasks_cog(Harness(second)).sweep()]
        assert sorted(r.released for r in reports) == [0, 1]
        shown = await h.ok("bob", f"task show {tid}")
        assert shown.count("released after no activity") == 1
    finally:
        await second.stop()
        await first.stop()


async def test_any_task_command_by_the_claimer_counts_as_activity(harness: Harness):
    h = harness
    tid = await claimed(h)
    cog = tasks_cog(h)
    h.clock.advance(TTL * 0.9)
    assert (await cog.sweep()).nudged == 1
    await h.ok("alice", f"task show {tid}")  # "yes, still on it"
    h.clock.advance(TTL * 0.5)
    assert await cog.sweep() == SweepReport(), "activity restarted the clock"
    h.clock.advance(TTL * 0.35)
    assert (await cog.sweep()).nudged == 1, "a new idle stretch gets a new notice"
    await h.ok("alice", f"task claim {tid}")  # claiming again also counts
    h.clock.advance(TTL * 0.9)
    assert (await cog.sweep()).released == 0
    assert len(await h.deliver()) == 3


async def test_someone_else_looking_at_the_task_is_not_activity(harness: Harness):
    h = harness
    tid = await claimed(h)
    h.clock.advance(TTL - timedelta(hours=1))
    await h.ok("bob", f"task show {tid}")
    h.clock.advance(timedelta(hours=2))
    assert (await tasks_cog(h).sweep()).released == 1


async def test_due_reminder_comes_one_day_before_exactly_once(harness: Harness):
    h = harness
    tid = await claimed(h, "other Print run --due 'in 3d'")
    cog = tasks_cog(h)
    h.clock.advance(timedelta(days=2) - timedelta(minutes=1))
    assert (await cog.sweep()).reminded == 0
    h.clock.advance(timedelta(minutes=1))
    assert (await cog.sweep()).reminded == 1
    assert (await cog.sweep()).reminded == 0
    posts = await h.deliver()
    assert len(posts) == 1 and posts[0].recipient_id == "alice"
    assert f"task #{tid} “Print run” is due" in posts[0].body.plain()


async def test_no_due_reminder_for_a_claim_taken_within_the_last_day(harness: Harness):
    h = harness
    await claimed(h, "other Tonight --due 'in 5h'")
    assert (await tasks_cog(h).sweep()).reminded == 0
    assert await h.deliver() == []


async def test_reclaimed_task_gets_fresh_notices(harness: Harness):
    h = harness
    tid = await claimed(h, "other Poster --due 'in 20d'")
    cog = tasks_cog(h)
    h.clock.advance(TTL * 0.85)
    await cog.sweep()
    await h.ok("alice", f"task unclaim {tid}")
    await h.ok("alice", f"task claim {tid}")
    h.clock.advance(TTL * 0.85)
    assert (await cog.sweep()).nudged == 1
    keys = [p.key for p in await h.deliver()]
    assert len(keys) == len(set(keys)) == 2


async def test_the_cog_runs_its_sweeps_in_the_background(tmp_path):
    app = make_app(tmp_path)
    h = Harness(app)
    cog = tasks_cog(h)
    cog.sweep_interval = 0.01
    try:
        tid = await claimed(h)
        h.clock.advance(TTL * 2)
        await cog.start()
        for _ in range(500):
            if "Status: open" in await h.ok("bob", f"task show {tid}"):
                break
            await asyncio.sleep(0.01)
        assert "released after no activity" in await h.ok("bob", f"task show {tid}")
    finally:
        await cog.stop()
        await app.stop()


async def test_the_still_on_it_notice_offers_extend_which_restarts_the_claim(harness: Harness):
    h = harness
    tid = await claimed(h)
    cog = tasks_cog(h)
    h.clock.advance(TTL * 0.8)
    assert (await cog.sweep()).nudged == 1
    [notice] = await h.deliver()
    assert f"`task extend {tid}`" in notice.body.plain()
    assert [(b.label, b.command) for b in notice.buttons] == [("Keep it", f"task extend {tid}")]
    assert notice.subject == ("claim", tid)
    h.clock.advance(timedelta(days=1))
    extended = await h.ok("alice", f"task extend {tid}")
    assert "stays yours" in extended
    until = START + TTL * 0.8 + timedelta(days=1) + TTL
    assert when(until, Reader(timezone=ZoneInfo(cog.timezone))) in extended
    # Past the first claim's time to live it is still hers; a week after the extension, not.
    h.clock.advance(TTL * 0.2)
    assert (await cog.sweep()).released == 0
    shown = await h.ok("bob", f"task show {tid}")
    assert "Held by: Alice" in shown and "claim extended by Alice" in shown
    h.clock.advance(TTL)
    assert (await cog.sweep()).released == 1


async def test_only_the_holder_extends_a_claim(harness: Harness):
    h = harness
    tid = await claimed(h)
    await h.ok("bob", "volunteer join organiser")
    assert "held by Alice, not by you" in await h.err("bob", f"task extend {tid}")
    assert "held by Alice, not by you" in await h.err("coco", f"task extend {tid}")
    open_one = int((await h.ok("coco", "task post other Open")).split("#", 1)[1].split(":")[0]
                   .strip("*"))  # fmt: skip
    assert "Nobody holds task" in await h.err("alice", f"task extend {open_one}")
    assert "There is no task `99`" in await h.err("alice", "task extend 99")


async def test_a_notice_is_worded_for_the_room_it_goes_to(harness: Harness):
    h = harness
    h.app.services.outbox.register("matrix", h._deliver)
    tid = await claimed(h, target="matrix:!stand")
    h.clock.advance(TTL * 0.8 + timedelta(minutes=1))
    assert (await tasks_cog(h).sweep()).nudged == 1
    [notice] = await h.deliver()
    assert notice.reader is not None
    text = notice.body.localized(notice.reader).plain()
    assert f"`!task extend {tid}`" in text and f"`!task unclaim {tid}`" in text
    # The time it goes back is written for the reader, in the campaign's zone.
    zone = ZoneInfo(tasks_cog(h).timezone)
    assert f"returns to the queue at {when(START + TTL, Reader(timezone=zone))}." in text
