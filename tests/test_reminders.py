"""Reminders through the core: adding, listing, deleting, and firing exactly once."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.clock import ManualClock
from cogs.reminders import Reminders
from tests.harness import START, Harness, make_app

BRUSSELS = ZoneInfo("Europe/Brussels")


def reminders(h: Harness) -> Reminders:
    return next(cog for cog in h.app.cogs if isinstance(cog, Reminders))


async def fire(h: Harness) -> list[str]:
    await reminders(h).run_due()
    return [post.body.plain(post.reader) for post in await h.deliver()]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two bots on one database file, at the same moment."""
    first = Harness(make_app(tmp_path, ManualClock(START)))
    second = Harness(make_app(tmp_path, ManualClock(START)))
    try:
        yield first, second
    finally:
        await first.app.stop()
        await second.app.stop()


async def test_a_reminder_posts_once_in_the_place_it_was_made(harness: Harness):
    text = await harness.ok("coco", "reminder add Call for translators --in 2s")
    assert "Reminder #1 will post here" in text
    assert await fire(harness) == [], "not due yet"
    harness.clock.advance(timedelta(seconds=2))
    posts = await reminders(harness).run_due()
    delivered = await harness.deliver()
    assert [p.body.plain(p.reader) for p in delivered] == ["⏰ Reminder: Call for translators"]
    assert delivered[0].target == "test:room"
    assert delivered[0].key == f"reminder:1:{(START + timedelta(seconds=2)).isoformat()}"
    assert posts[0].posted
    harness.clock.advance(timedelta(minutes=5))
    assert await fire(harness) == [], "never twice"
    assert "No reminders post here" in await harness.ok("coco", "reminder list")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("reminder add Hello", "exactly one of the options at, in or cron"),
        ("reminder add Hello --in 2h --at 10:00", "you gave at, in"),
        ("reminder add Hello --in 2h --cron '0 9 * * *'", "you gave in, cron"),
        ("reminder add Hello --at 2026-01-01", "`2026-01-01` is in the past"),
        ("reminder add Hello --at 'next blue moon'", "not a date or time I can read"),
        ("reminder add Hello --in soon", "`soon` is not a duration"),
        ("reminder add Hello --cron '0 25 * * *'", "`25` is not a valid hour"),
        ("reminder add Hello --cron '0 9 * *'", "five fields"),
        ("reminder add Hello --cron '0 9 31 2 *'", "never comes"),
        (
            "reminder add Hello --at 10:00 --timezone Europe/Brusels",
            "did you mean `Europe/Brussels`",
        ),
        ("reminder add Hello --at 10:00 --timezone Mars/Olympus", "not a time zone."),
        ("reminder add Hello --at '2026-03-29 02:30'", "the clocks skip that hour"),
        (
            "reminder add Hello --at '2026-03-29 02:30' --timezone Europe/Warsaw",
            "does not exist in Europe/Warsaw",
        ),
    ],
)
async def test_bad_schedules_get_friendly_errors_and_store_nothing(
    harness: Harness, line: str, says: str
):
    assert says in await harness.err("coco", line)
    assert "No reminders post here" in await harness.ok("coco", "reminder list")


async def test_only_coordinators_manage_reminders(harness: Harness):
    assert "is for coordinators" in await harness.err("alice", "reminder add Hi --in 1h")
    assert "is for coordinators" in await harness.err("alice", "reminder list")


async def test_at_is_read_in_the_given_zone_and_shown_in_the_readers(harness: Harness):
    text = await harness.ok(
        "coco", "reminder add Tea --at '2026-03-03 09:00' --timezone Europe/London"
    )
    assert "will post here Mar 3, 2026, 10:00\u202fAM: Tea" in text
    harness.clock.set(datetime(2026, 3, 3, 8, 59, tzinfo=UTC))
    assert await fire(harness) == []
    harness.clock.set(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    assert await fire(harness) == ["⏰ Reminder: Tea"]


async def test_list_shows_this_places_reminders_and_delete_removes_one(harness: Harness):
    await harness.ok("coco", "reminder add Standup --cron '0 9 * * 1-5'")
    await harness.ok("coco", "reminder add Elsewhere --in 1h")
    await harness.run("coco", "reminder add Other room --in 1h", target="test:other")
    listing = await harness.ok("coco", "reminder list")
    assert "2 reminders post here" in listing
    assert (
        "#1 next Mar 3, 2026, 9:00\u202fAM (repeats `0 9 * * 1-5`, Europe/Brussels time): Standup"
        in listing
    )
    assert "Other room" not in listing
    assert "Deleted reminder #2: Elsewhere" in await harness.ok("coco", "reminder delete 2")
    assert "`2` is not a reminder number" in await harness.err("coco", "reminder delete 2")
    harness.clock.advance(timedelta(hours=1))
    assert await fire(harness) == ["⏰ Reminder: Other room"]


async def test_a_one_off_found_due_within_the_grace_posts_once_marked_late(harness: Harness):
    await harness.ok("coco", "reminder add Flyers --in 10m")
    harness.clock.advance(timedelta(hours=3))  # the bot was down
    [post] = await fire(harness)
    assert post.startswith("⏰ Reminder (late — it was due Mar 2, 2026, 10:10\u202fAM")
    assert post.endswith(": Flyers")
    assert await fire(harness) == []


async def test_a_one_off_missed_beyond_the_grace_tells_its_creator_instead(harness: Harness):
    await harness.ok("coco", "reminder add Flyers --in 10m")
    harness.clock.advance(timedelta(hours=7))
    await reminders(harness).run_due()
    [notice] = await harness.deliver()
    assert notice.recipient_id == "coco"
    assert notice.target == "test:room"
    assert "more than 6h late, so I did not post it: Flyers" in notice.body.plain(notice.reader)
    assert await fire(harness) == []


async def test_a_recurring_reminder_after_days_of_downtime_posts_once_then_resumes(
    harness: Harness,
):
    await harness.ok("coco", "reminder add Standup --cron '0 9 * * *'")
    harness.clock.set(datetime(2026, 3, 6, 9, 30, tzinfo=BRUSSELS))  # 4 runs missed
    [post] = await fire(harness)
    assert "late — it was due Mar 6, 2026, 9:00\u202fAM" in post
    assert await fire(harness) == []
    harness.clock.set(datetime(2026, 3, 7, 9, 0, tzinfo=BRUSSELS))
    assert await fire(harness) == ["⏰ Reminder: Standup"]


async def test_a_daily_0230_reminder_posts_once_a_day_across_both_dst_changes(tmp_path: Path):
    for start in (datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 10, 23, 12, tzinfo=UTC)):
        folder = tmp_path / start.strftime("%m")
        folder.mkdir()
        h = Harness(make_app(folder, ManualClock(start)))
        try:
            await h.ok("coco", "reminder add Night shift --cron '30 2 * * *'")
            seen: list[str] = []
            for _ in range(4 * 24 * 4):  # four days in 15-minute steps
                h.clock.advance(timedelta(minutes=15))
                await reminders(h).run_due()
                for post in await h.deliver():
                    assert post.body.plain(post.reader) == "⏰ Reminder: Night shift"
                    seen.append(h.clock.now().astimezone(BRUSSELS).strftime("%m-%d %H:%M"))
            days = [stamp.split()[0] for stamp in seen]
            assert len(days) == len(set(days)) == 4, seen
            if start.month == 3:
                assert seen == ["03-28 02:30", "03-29 03:30", "03-30 02:30", "03-31 02:30"]
            else:
                assert seen == ["10-24 02:30", "10-25 02:30", "10-26 02:30", "10-27 02:30"]
        finally:
            await h.app.stop()


async def test_two_bots_on_one_database_post_a_due_reminder_once(pair: tuple[Harness, Harness]):
    first, second = pair
    await first.ok("coco", "reminder add Call for translators --in 1m")
    await second.ok("coco", "reminder add Weekly call --cron '* * * * *'")
    for h in pair:
        h.clock.advance(timedelta(minutes=1))
    fired = [await reminders(h).fire([1, 2]) for h in (first, second)]
    assert sum(item.posted for batch in fired for item in batch) == 2
    delivered = [*await first.deliver(), *await second.deliver()]
    assert sorted(p.body.plain(p.reader) for p in delivered) == [
        "⏰ Reminder: Call for translators",
        "⏰ Reminder: Weekly call",
    ]
    assert [item.next_run_at for item in fired[1] if item.id == 2] == [
        START + timedelta(minutes=2)
    ]


async def test_a_post_written_before_a_crash_is_delivered_once_after_restart(tmp_path: Path):
    clock = ManualClock(START)
    before = Harness(make_app(tmp_path, clock))
    await before.ok("coco", "reminder add Call for translators --in 2s")
    clock.advance(timedelta(seconds=3))
    await reminders(before).run_due()  # fired and written, but never delivered
    await before.app.stop()
    for _ in range(2):  # restart, and restart again
        after = Harness(make_app(tmp_path, clock))
        try:
            await reminders(after).rebuild()
            await reminders(after).run_due()
            after.posts.extend(before.posts)
            before = after
            await after.deliver()
        finally:
            await after.app.stop()
    assert [p.body.plain(p.reader) for p in before.posts] == ["⏰ Reminder: Call for translators"]


async def test_rebuild_schedules_one_job_per_active_reminder_carrying_its_id(harness: Harness):
    await harness.ok("coco", "reminder add One --in 1h")
    await harness.ok("coco", "reminder add Two --cron '0 9 * * *'")
    await harness.ok("coco", "reminder add Three --in 2h")
    await harness.ok("coco", "reminder delete 3")
    cog, scheduler = reminders(harness), harness.app.services.scheduler
    scheduler.stop()
    assert await cog.rebuild() == 2
    assert sorted(scheduler.job_ids("reminder:")) == ["reminder:1", "reminder:2"]
    assert scheduler.next_run("reminder:1") == START + timedelta(hours=1)


async def test_export_lists_my_reminders_and_erase_keeps_them_without_me(harness: Harness):
    await harness.ok("coco", "reminder add Flyers --in 10m")
    exported = await reminders(harness).export_data(harness.ctx("coco").user)
    assert [(r["id"], r["message"], r["place"]) for r in exported["reminders"]] == [
        (1, "Flyers", "test:room")
    ]
    await reminders(harness).erase_data(harness.ctx("coco").user)
    assert await reminders(harness).export_data(harness.ctx("coco").user) == {"reminders": []}
    harness.clock.advance(timedelta(hours=8))  # missed: the notice goes to the room
    await reminders(harness).run_due()
    [notice] = await harness.deliver()
    assert notice.recipient_id is None and "did not post it: Flyers" in notice.body.plain(
        notice.reader
    )


async def test_a_running_bot_sweeps_up_a_reminder_another_bot_added(
    pair: tuple[Harness, Harness],
):
    first, second = pair
    cog = reminders(second)
    cog.sweep_interval = 0.05
    second.app.services.scheduler.start()
    await cog.start()
    try:
        await first.ok("coco", "reminder add From the other bot --in 1m")
        assert second.app.services.scheduler.job_ids("reminder:") == []
        second.clock.advance(timedelta(minutes=1))
        for _ in range(200):
            if await second.deliver():
                break
            await asyncio.sleep(0.02)
        assert [p.body.plain(p.reader) for p in second.posts] == [
            "⏰ Reminder: From the other bot"
        ]
    finally:
        await cog.stop()
        second.app.services.scheduler.stop()


async def test_the_in_option_is_named_in_on_every_platform(harness: Harness):
    spec = harness.app.core.registry.get("reminder", "add")
    assert spec is not None
    assert [(a.name, a.keyword) for a in spec.args if not a.positional] == [
        ("at", "at"),
        ("in", "in_"),
        ("cron", "cron"),
        ("timezone", "timezone"),
    ]
    assert "[--in <duration>]" in spec.usage()


async def test_hints_name_commands_the_way_each_platform_types_them(harness: Harness):
    said = {
        target: (await harness.run("coco", "reminder add Hello", target=target)).body.plain()
        for target in ("console:", "matrix:!room:example.org", "discord:1")
    }
    assert "Example: `reminder add Call for translators --in 2h`" in said["console:"]
    assert "Usage: `reminder add <message…> [--at <text>]" in said["console:"]
    assert (
        "Example: `!reminder add Call for translators --in 2h`" in said["matrix:!room:example.org"]
    )
    assert 'Example: `/reminder add message:"Call for translators" in:2h`' in said["discord:1"]


async def test_a_usage_line_in_an_error_is_spelt_for_the_platform(harness: Harness):
    said = (await harness.run("coco", "reminder delete", target="matrix:!room:x")).body.plain()
    assert "`!reminder delete` needs <id> (Reminder number). Usage: `!reminder delete <id>" in said
    said = (
        await harness.run("coco", "reminder list --colour red", target="console:")
    ).body.plain()
    assert "`--colour` is not an option of `reminder list`. Its options: `--anywhere`." in said
