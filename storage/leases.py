"""Leases: which of several processes on one database serves each duty, with fencing tokens.

Each duty (the Matrix sync, the Discord gateway, the scheduler, ...) is one ``lease`` row.
A process takes a lease that is free or expired with one conditional UPDATE, renews it while
it holds it, and gives it back when it stops. The token grows at every change of holder, so a
write that must not happen twice can require that its process still holds the lease it was
given (:func:`held`); a process that was paused past its lease then writes nothing.
"""

from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from storage.db import Database, Rider, dialect_insert, ride
from storage.models import BotProcess, ClaimedEvent, Lease

_LEASE: sa.Table = Lease.__table__  # type: ignore[attr-defined]
_PROCESS: sa.Table = BotProcess.__table__  # type: ignore[attr-defined]
_CLAIMED: sa.Table = ClaimedEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Fence:
    """A lease as its holder was given it: writes under it require it to be still held."""

    duty: str
    holder: str
    token: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What identifies a running process."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One duty's lease, for ``status``."""

    duty: str
    holder: str | None
    token: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One process, for ``status``."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime


def held(fence: Fence, now: datetime) -> sa.ColumnElement[bool]:
    """A condition true while ``fence`` still holds its lease (for fenced writes)."""
    c = _LEASE.c
    return sa.exists().where(
        c.duty == fence.duty,
        c.holder == fence.holder,
        c.token == fence.token,
        c.expires_at > now,
    )


class LeaseRepo:
    """Taking, renewing and giving back leases, and the process register."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def tick(
        self,
        process: ProcessInfo,
        held_now: dict[str, int],
        wanted: Collection[str],
        now: datetime,
        ttl: timedelta,
    ) -> dict[str, int]:
        """One heartbeat: renew what is held, take what is free; returns duty -> token held.

        A duty in ``held_now`` whose renewal fails (someone else holds it now) is not in the
        result: its holder must stop serving it.
        """
        expires = now + ttl
        c = _LEASE.c

        def tx(session: Session) -> dict[str, int]:
            _heartbeat(session, process, now)
            result: dict[str, int] = {}
            for duty, token in held_now.items():
                renewed = session.execute(
                    _LEASE.update()
                    .where(c.duty == duty, c.holder == process.id, c.token == token)
                    .values(expires_at=expires)
                    .returning(c.token)
                ).first()
                if renewed is not None:
                    result[duty] = token
            free = [duty for duty in wanted if duty not in result]
            if free:
                session.execute(
                    dialect_insert(session, _LEASE)
                    .values([{"duty": duty, "holder": None, "token": 0} for duty in free])
                    .on_conflict_do_nothing()
                )
            for duty in free:
                taken = session.execute(
                    _LEASE.update()
                    .where(c.duty == duty, sa.or_(c.holder.is_(None), c.expires_at <= now))
                    .values(
                        holder=process.id, token=c.token + 1, expires_at=expires, acquired_at=now
                    )
                    .returning(c.token)
                ).first()
                if taken is not None:
                    result[duty] = int(taken[0])
            return result

        return await self.db.write(tx)

    async def release(self, process_id: str, duties: Collection[str] = ()) -> int:
        """Give back leases (all of this process's when ``duties`` is empty) at once."""
        c = _LEASE.c

        def tx(session: Session) -> int:
            query = _LEASE.update().where(c.holder == process_id)
            if duties:
                query = query.where(c.duty.in_(list(duties)))
            done = session.execute(query.values(holder=None, expires_at=None))
            return int(done.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)

    async def leave(self, process_id: str) -> None:
        """Give back every lease and drop the process from the register (a clean stop)."""

        def tx(session: Session) -> None:
            session.execute(
                _LEASE.update()
                .where(_LEASE.c.holder == process_id)
                .values(holder=None, expires_at=None)
            )
            session.execute(_PROCESS.delete().where(_PROCESS.c.id == process_id))

        await self.db.write(tx)

    async def claim_event(
        self, key: str, fence: Fence, now: datetime, *, reply: str | None = None
    ) -> bool:
        """Take on one incoming event, once across processes, only while ``fence`` holds."""

        def tx(conn: Connection) -> bool:
            return _claim(conn, key, fence, now, reply)

        return await self.db.write_connection(tx)

    def claim_with_first_write(
        self, key: str, fence: Fence, now: datetime
    ) -> AbstractContextManager[Rider]:
        """Take the event on in the same transaction as the first thing its handling writes.

        That transaction then fails with :class:`AlreadyTakenOn` if another process (or an
        earlier run of this one) took the event on, so its effects happen once at most.
        """

        def run(conn: Connection) -> None:
            if not _claim(conn, key, fence, now, None):
                raise AlreadyTakenOn(key)

        return ride(run)

    async def keep_reply(self, key: str, reply: str) -> bool:
        """Keep the answer to a claimed event until it is sent.

        False when the event has an answer already (a successor found this one's lost and
        answered it instead): then this answer must not be sent.
        """
        c = _CLAIMED.c

        def tx(conn: Connection) -> bool:
            done = conn.execute(
                _CLAIMED.update()
                .where(c.key == key, c.reply.is_(None), c.answered_at.is_(None))
                .values(reply=reply)
                .returning(c.key)
            )
            return done.first() is not None

        return await self.db.write_connection(tx)

    async def answer_lost(self, key: str, note: str) -> bool:
        """Keep ``note`` as the answer to an event taken on whose answer was never kept.

        That happens when a process died after the command's transaction and before keeping
        its answer. True when ``note`` is now the answer to send; False when the event has
        one (kept or sent), or was never taken on.
        """
        return await self.keep_reply(key, note)

    async def answered(self, key: str, now: datetime) -> None:
        """The answer to an event was sent: nothing is left to do for it."""

        def tx(conn: Connection) -> None:
            conn.execute(
                _CLAIMED.update().where(_CLAIMED.c.key == key).values(reply=None, answered_at=now)
            )

        await self.db.write_connection(tx)

    async def unanswered(self, prefix: str) -> list[tuple[str, str]]:
        """(key, answer) of events taken on whose kept answer was never marked sent."""
        c = _CLAIMED.c

        def tx(conn: Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                sa.select(c.key, c.reply)
                .where(c.key.startswith(prefix), c.reply.is_not(None), c.answered_at.is_(None))
                .order_by(c.claimed_at)
            )
            return [(str(key), str(reply)) for key, reply in rows]

        return await self.db.read_connection(tx)

    async def forget_events(self, before: datetime) -> int:
        """Drop claims older than ``before`` (the events will never come again)."""

        def tx(session: Session) -> int:
            done = session.execute(_CLAIMED.delete().where(_CLAIMED.c.claimed_at < before))
            return int(done.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)

    async def status(self) -> tuple[list[ProcessView], list[LeaseView]]:
        """Every registered process and every lease."""

        def tx(session: Session) -> tuple[list[ProcessView], list[LeaseView]]:
            processes = [
                ProcessView(r.id, r.host, r.pid, r.version, r.started_at, r.heartbeat_at)
                for r in session.execute(sa.select(_PROCESS).order_by(_PROCESS.c.started_at))
            ]
            leases = [
                LeaseView(r.duty, r.holder, r.token, r.expires_at)
                for r in session.execute(sa.select(_LEASE).order_by(_LEASE.c.duty))
            ]
            return processes, leases

        return await self.db.read(tx)


class AlreadyTakenOn(Exception):
    """The event was taken on already: whatever its handling wrote is rolled back."""


def _claim(conn: Connection, key: str, fence: Fence, now: datetime, reply: str | None) -> bool:
    c = _CLAIMED.c
    chosen = sa.select(
        sa.literal(key, sa.String), sa.literal(now, c.claimed_at.type), sa.literal(reply, sa.Text)
    )
    done = conn.execute(
        dialect_insert(conn, _CLAIMED)
        .from_select([c.key, c.claimed_at, c.reply], chosen.where(held(fence, now)))
        .on_conflict_do_nothing()
        .returning(c.key)
    )
    return done.first() is not None


def _heartbeat(session: Session, process: ProcessInfo, now: datetime) -> None:
    values: dict[str, Any] = {
        "id": process.id,
        "host": process.host,
        "pid": process.pid,
        "version": process.version,
        "started_at": process.started_at,
        "heartbeat_at": now,
    }
    session.execute(
        dialect_insert(session, _PROCESS)
        .values(**values)
        .on_conflict_do_update(index_elements=[_PROCESS.c.id], set_={"heartbeat_at": now})
    )
