"""A lease race in separate OS processes: every process tries to take one duty at once.

``race()`` starts ``n`` processes that each open the database, wait at a barrier, and then
run one heartbeat. The invariant: exactly one of them holds the duty. ``BrokenRepo`` takes
the lease by reading first and writing after everyone has read (the barrier makes that
interleaving certain), so a test can show the harness catches an implementation that
checks and sets in two steps.
"""

import asyncio
import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from storage.db import Database, dialect_insert
from storage.leases import _LEASE, LeaseRepo, ProcessInfo

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)
DUTY = "scheduler"


class BrokenRepo(LeaseRepo):
    """Reads whether the lease is free, then takes it unconditionally: check-then-set."""

    barrier: Any = None

    async def tick(self, process, held_now, wanted, now, ttl):  # type: ignore[no-untyped-def]
        def read(session: Session) -> bool:
            row = session.execute(sa.select(_LEASE).where(_LEASE.c.duty == DUTY)).first()
            return row is None or row.holder is None or row.expires_at <= now

        free = await self.db.read(read)
        self.barrier.wait()  # everyone has looked before anyone writes
        if not free:
            return {}

        def write(session: Session) -> int:
            session.execute(
                dialect_insert(session, _LEASE)
                .values(duty=DUTY, holder=None, token=0)
                .on_conflict_do_nothing()
            )
            row = session.execute(
                _LEASE.update()
                .where(_LEASE.c.duty == DUTY)
                .values(holder=process.id, token=_LEASE.c.token + 1, expires_at=now + ttl)
                .returning(_LEASE.c.token)
            ).one()
            return int(row[0])

        return {DUTY: await self.db.write(write)}


def _child(url: str, name: str, broken: bool, barrier: Any, results: Any) -> None:
    async def main() -> dict[str, int]:
        db = Database(url)
        try:
            repo: LeaseRepo
            if broken:
                repo = BrokenRepo(db)
                BrokenRepo.barrier = barrier
            else:
                repo = LeaseRepo(db)
                barrier.wait()
            process = ProcessInfo(f"host:{name}", "host", 1, "test", T0)
            return await repo.tick(process, {}, [DUTY], T0, TTL)
        finally:
            db.close()

    try:
        results.put((name, asyncio.run(main())))
    except Exception as exc:  # reported, so the test shows it rather than hanging
        results.put((name, f"{type(exc).__name__}: {exc}"))


def race(url: str, n: int, *, broken: bool = False) -> dict[str, Any]:
    """Run one race; returns what each process got (a dict of duty -> token, or an error)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n, timeout=60)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_child, args=(url, f"p{i}", broken, barrier, results)) for i in range(n)
    ]
    for child in children:
        child.start()
    got = dict(results.get(timeout=120) for _ in children)
    for child in children:
        child.join(30)
    return got


def holders(outcome: dict[str, Any]) -> list[str]:
    """Which processes believe they hold the duty."""
    return [name for name, got in outcome.items() if isinstance(got, dict) and DUTY in got]
