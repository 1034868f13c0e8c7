"""Pure scheduling decisions: cron wall-clock times across DST, late and missed runs."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import ManualClock
from bot.scheduler import (
    Action,
    Cron,
    CronError,
    Schedule,
    Scheduler,
    next_cron_run,
    plan_run,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
GRACE = timedelta(hours=6)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def brussels(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BRUSSELS, fold=fold)


def runs(expr: str, after: datetime, n: int, zone: ZoneInfo = BRUSSELS) -> list[datetime]:
    cron, found, moment = Cron.parse(expr), [], after
    for _ in range(n):
        moment = next_cron_run(cron, zone, moment)
        found.append(moment)
    return found


def test_daily_0230_across_the_spring_gap_fires_every_day_once_shifted_by_the_gap():
    found = runs("30 2 * * *", utc(2026, 3, 27, 12), 4)
    local = [m.astimezone(BRUSSELS) for m in found]
    assert [m.date().day for m in local] == [28, 29, 30, 31]
    assert [m.strftime("%H:%M %Z") for m in local] == [
        "02:30 CET",
        "03:30 CEST",
        "02:30 CEST",
        "02:30 CEST",
    ]


def test_daily_0230_across_the_autumn_fold_fires_once_at_the_first_0230():
    found = runs("30 2 * * *", utc(2026, 10, 23, 12), 3)
    # Ambiguous local times never compare equal across zones, so compare in UTC.
    assert found == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # the first 02:30, still summer time
        utc(2026, 10, 26, 1, 30),
    ]
    assert found[1] == brussels(2026, 10, 25, 2, 30, fold=0).astimezone(UTC)


def test_weekly_monday_0900_keeps_local_time_across_both_changes():
    found = runs("0 9 * * 1", utc(2026, 3, 20), 3) + runs("0 9 * * 1", utc(2026, 10, 20), 2)
    assert all(m.astimezone(BRUSSELS).strftime("%a %H:%M") == "Mon 09:00" for m in found)
    assert {m.astimezone(UTC).hour for m in found} == {7, 8}, "UTC hour moves with DST"


def test_hourly_schedule_is_one_hour_apart_in_real_time_over_the_spring_gap():
    found = runs("0 * * * *", utc(2026, 3, 29, 0, 30), 3)
    assert found == [utc(2026, 3, 29, 1), utc(2026, 3, 29, 2), utc(2026, 3, 29, 3)]


@pytest.mark.parametrize(
    ("expr", "first"),
    [
        ("0 9 * * mon-fri", brussels(2026, 3, 9, 9)),  # after Saturday the 7th: Monday
        ("*/15 * * * *", brussels(2026, 3, 7, 12, 15)),
        ("0 12 1 * *", brussels(2026, 4, 1, 12)),
        ("0 8 1,15 jan,mar *", brussels(2026, 3, 15, 8)),
        ("0 10 * * 0", brussels(2026, 3, 8, 10)),  # Sunday as 0
        ("0 10 * * 7", brussels(2026, 3, 8, 10)),  # and as 7
        ("0 10 13 * 5", brussels(2026, 3, 13, 10)),  # day 13 OR a Friday: Friday 13th
    ],
)
def test_cron_fields(expr: str, first: datetime):
    assert next_cron_run(Cron.parse(expr), BRUSSELS, brussels(2026, 3, 7, 12, 5)) == first


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("61 * * * *", "not a valid minute"),
        ("* 24 * * *", "not a valid hour"),
        ("* * * * funday", "not a valid day of week"),
        ("* * * *", "five fields"),
        ("*/0 * * * *", "empty range"),
        ("0 9 30 2 *", "never comes"),
        ("0 9 * foo *", "not a valid month"),
    ],
)
def test_bad_cron_expressions_say_what_is_wrong(expr: str, says: str):
    with pytest.raises(CronError, match=says):
        Cron.parse(expr)


def test_one_off_on_time_late_and_missed_by_the_manual_clock():
    clock = ManualClock(utc(2026, 3, 2, 9))
    due = clock.now()
    once = Schedule("once", "Europe/Brussels")
    clock.advance(timedelta(seconds=20))
    assert plan_run(once, due, clock.now(), GRACE).action is Action.POST
    clock.advance(timedelta(hours=2))
    run = plan_run(once, due, clock.now(), GRACE)
    assert (run.action, run.occurrence, run.next_run_at) == (Action.LATE, due, None)
    clock.advance(timedelta(hours=5))
    assert plan_run(once, due, clock.now(), GRACE).action is Action.MISSED


def test_recurring_after_downtime_posts_once_for_the_latest_missed_run():
    daily = Schedule("cron", "Europe/Brussels", "0 9 * * *")
    first_due = brussels(2026, 3, 2, 9)
    now = brussels(2026, 3, 5, 10)  # three days down, an hour after the latest run
    run = plan_run(daily, first_due, now, GRACE)
    assert run.action is Action.LATE
    assert run.occurrence == brussels(2026, 3, 5, 9)
    assert run.next_run_at == brussels(2026, 3, 6, 9)


def test_recurring_whose_missed_runs_are_all_older_than_the_grace_moves_on_silently():
    daily = Schedule("cron", "Europe/Brussels", "0 9 * * *")
    run = plan_run(daily, brussels(2026, 3, 2, 9), brussels(2026, 3, 5, 20), GRACE)
    assert run.action is Action.SKIP
    assert run.next_run_at == brussels(2026, 3, 6, 9)


def test_recurring_on_time_run_schedules_the_next_one():
    daily = Schedule("cron", "Europe/Brussels", "30 2 * * *")
    due = brussels(2026, 3, 28, 2, 30)
    run = plan_run(daily, due, due + timedelta(seconds=1), GRACE)
    assert run.action is Action.POST
    assert run.next_run_at == brussels(2026, 3, 29, 3, 30)


async def test_scheduler_jobs_carry_an_id_and_stop_forgets_them():
    fired: list[int] = []

    async def job(reminder_id: int) -> None:
        fired.append(reminder_id)

    scheduler = Scheduler(ManualClock(utc(2026, 3, 2)))
    scheduler.start()
    try:
        far = datetime.now(UTC) + timedelta(days=1)
        scheduler.at_many((f"reminder:{n}", far, job, (n,)) for n in range(3))
        assert sorted(scheduler.job_ids("reminder:")) == ["reminder:0", "reminder:1", "reminder:2"]
        scheduler.at("reminder:1", far + timedelta(hours=1), job, 1)
        assert scheduler.next_run("reminder:1") == far + timedelta(hours=1)
        scheduler.cancel("reminder:2")
        scheduler.cancel("reminder:2")  # twice is harmless
        assert sorted(scheduler.job_ids()) == ["reminder:0", "reminder:1"]
    finally:
        scheduler.stop()
    assert scheduler.job_ids() == [] and fired == []


def test_naive_times_are_refused():
    scheduler = Scheduler(ManualClock(utc(2026, 3, 2)))

    async def job() -> None:
        pass

    with pytest.raises(ValueError, match="naive"):
        scheduler.at("x", datetime(2026, 3, 2, 9), job)  # noqa: DTZ001
