"""Leases: one holder per duty across processes, renewal, takeover, fencing, claimed events."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from storage import migrations
from storage.db import Database
from storage.leases import Fence, LeaseRepo, ProcessInfo
from storage.state import StateRepo

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)
DUTIES = ["matrix", "scheduler"]


def process(name: str) -> ProcessInfo:
    return ProcessInfo(id=f"host:{name}", host="host", pid=1, version="test", started_at=T0)


def engine_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def db(db_url: str):
    database = Database(engine_url(db_url))
    migrations.upgrade(database)
    try:
        yield database
    finally:
        database.close()


async def test_the_first_process_takes_every_free_duty_and_the_second_none(db):
    repo = LeaseRepo(db)
    a, b = process("a"), process("b")
    assert await repo.tick(a, {}, DUTIES, T0, TTL) == {"matrix": 1, "scheduler": 1}
    assert await repo.tick(b, {}, DUTIES, T0, TTL) == {}
    # Renewal keeps the token; the other still waits while the lease is fresh.
    later = T0 + TTL - timedelta(seconds=1)
    assert await repo.tick(a, {"matrix": 1, "scheduler": 1}, DUTIES, later, TTL) == {
        "matrix": 1,
        "scheduler": 1,
    }
    assert await repo.tick(b, {}, DUTIES, later + timedelta(seconds=5), TTL) == {}
    processes, leases = await repo.status()
    assert {p.id for p in processes} == {a.id, b.id}
    assert {(lease.duty, lease.holder) for lease in leases} == {
        ("matrix", a.id),
        ("scheduler", a.id),
    }


async def test_an_expired_lease_is_taken_over_with_a_new_token_and_the_old_holder_loses_it(db):
    repo = LeaseRepo(db)
    a, b = process("a"), process("b")
    await repo.tick(a, {}, DUTIES, T0, TTL)
    after = T0 + TTL + timedelta(seconds=1)  # a stopped renewing
    assert await repo.tick(b, {}, DUTIES, after, TTL) == {"matrix": 2, "scheduler": 2}
    assert await repo.tick(a, {"matrix": 1, "scheduler": 1}, DUTIES, after, TTL) == {}, (
        "a renewal with the old token fails: the old holder must stop"
    )


async def test_a_clean_stop_hands_over_at_once(db):
    repo = LeaseRepo(db)
    a, b = process("a"), process("b")
    await repo.tick(a, {}, DUTIES, T0, TTL)
    await repo.leave(a.id)
    assert await repo.tick(b, {}, DUTIES, T0, TTL) == {"matrix": 2, "scheduler": 2}
    processes, _ = await repo.status()
    assert [p.id for p in processes] == [b.id]


async def test_a_fenced_write_is_refused_once_the_lease_moved(db):
    repo, state = LeaseRepo(db), StateRepo(db)
    a, b = process("a"), process("b")
    await repo.tick(a, {}, ["matrix"], T0, TTL)
    old = Fence("matrix", a.id, 1)
    assert await state.set("matrix:next_batch", "s1", T0, fence=old)
    after = T0 + TTL + timedelta(seconds=1)
    await repo.tick(b, {}, ["matrix"], after, TTL)
    assert not await state.set("matrix:next_batch", "s0-stale", after, fence=old)
    assert await state.set("matrix:next_batch", "s2", after, fence=Fence("matrix", b.id, 2))
    assert await state.get("matrix:next_batch") == "s2"


async def test_an_event_is_claimed_once_and_only_under_a_held_lease(db):
    repo = LeaseRepo(db)
    a, b = process("a"), process("b")
    await repo.tick(a, {}, ["matrix"], T0, TTL)
    fence = Fence("matrix", a.id, 1)
    assert await repo.claim_event("matrix:$e1", fence, T0)
    assert not await repo.claim_event("matrix:$e1", fence, T0), "already taken on"
    stranger = Fence("matrix", b.id, 1)
    assert not await repo.claim_event("matrix:$e2", stranger, T0), "not the holder"
    expired = T0 + TTL + timedelta(seconds=1)
    assert not await repo.claim_event("matrix:$e2", fence, expired), "the lease ran out"
    assert await repo.forget_events(T0 + timedelta(seconds=1)) == 1


@pytest.mark.slow
async def test_processes_racing_for_a_free_lease_leave_exactly_one_holder(db, db_url):
    from tests.lease_race import holders, race

    for _ in range(3):
        outcome = await asyncio.to_thread(race, engine_url(db_url), 6)
        assert len(holders(outcome)) == 1, outcome
        [winner] = holders(outcome)
        await LeaseRepo(db).release(f"host:{winner}")  # free again for the next round


@pytest.mark.slow
async def test_the_race_harness_catches_a_check_then_set_lease(db, db_url):
    from tests.lease_race import holders, race

    outcome = await asyncio.to_thread(race, engine_url(db_url), 4, broken=True)
    assert len(holders(outcome)) > 1, f"the broken lease should give it to several: {outcome}"


async def test_a_second_bot_on_the_database_waits_then_takes_over_when_the_first_stops(
    tmp_path, db_url, caplog
):
    from cogs.reminders import Reminders
    from tests.harness import make_app

    def app():
        return make_app(tmp_path, storage={"url": engine_url(db_url)}, bot={"lease_ttl": "30s"})

    def firing(a) -> bool:
        return next(c for c in a.cogs if isinstance(c, Reminders))._task is not None

    first, second = app(), app()
    try:
        await first.start([])
        assert sorted(first.leases._running) == ["poller", "retention", "scheduler"]
        assert firing(first)
        caplog.set_level("INFO", logger="bot.leases")
        await second.start([])
        assert not second.leases._running and not firing(second), "a standby runs nothing"
        assert "standby for scheduler: waiting for its lease (held by " in caplog.text
        await second.leases.beat()
        assert not second.leases._running, "still nothing while the first is healthy"
        await first.stop()
        await second.leases.beat()
        assert sorted(second.leases._running) == ["poller", "retention", "scheduler"]
        assert firing(second)
    finally:
        await first.stop()
        await second.stop()


async def test_an_event_taken_on_with_its_first_write_rolls_that_write_back_the_second_time(db):
    from storage.leases import AlreadyTakenOn

    repo, state = LeaseRepo(db), StateRepo(db)
    a = process("a")
    await repo.tick(a, {}, ["matrix"], T0, TTL)
    fence = Fence("matrix", a.id, 1)
    with repo.claim_with_first_write("matrix:$e1", fence, T0) as taken:
        assert await state.get("effect") is None  # reads carry nothing
        assert not taken.done
        await state.set("effect", "once", T0)
        await state.set("second write", "also", T0)
    assert taken.done
    with pytest.raises(AlreadyTakenOn), repo.claim_with_first_write("matrix:$e1", fence, T0):
        await state.set("effect", "twice", T0)
    assert await state.get("effect") == "once", "the repeated handling wrote nothing"
    await state.set("effect", "later", T0)  # outside the block nothing rides along
    assert await state.get("effect") == "later"
