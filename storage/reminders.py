"""Reminders: our table is the truth the scheduler is rebuilt from."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from bot.domain import UserRef
from storage.db import Database
from storage.models import Reminder
from storage.outbox import Post, enqueue

ACTIVE = "active"
DONE = "done"
MISSED = "missed"
# Rows per statement when firing many at once (well under SQLite's variable limit).
_CHUNK = 500
_TABLE: sa.Table = Reminder.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ReminderView:
    """One reminder as the cog sees it."""

    id: int
    creator: UserRef | None
    target: str
    message: str
    kind: str
    cron: str | None
    timezone: str
    next_run_at: datetime | None
    last_fired_at: datetime | None
    state: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Advance:
    """What firing one due reminder does: its next run (None ends it) and the post it owes."""

    next_run_at: datetime | None
    state: str
    post: Post | None


@dataclass(frozen=True, slots=True)
class Fired:
    """A reminder looked at by :meth:`ReminderRepo.fire`, and whether this process posted it."""

    id: int
    posted: bool
    next_run_at: datetime | None  # when to wake for it again; None: nothing left to do


def _view(row: Any) -> ReminderView:
    """A view of a Reminder object or of a row of its table."""
    creator = (
        UserRef(row.creator_platform, row.creator_id)
        if row.creator_platform and row.creator_id
        else None
    )
    return ReminderView(
        id=row.id,
        creator=creator,
        target=row.target,
        message=row.message,
        kind=row.kind,
        cron=row.cron,
        timezone=row.timezone,
        next_run_at=row.next_run_at,
        last_fired_at=row.last_fired_at,
        state=row.state,
        created_at=row.created_at,
    )


class ReminderRepo:
    """Adding, listing, deleting and firing reminders."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        creator: UserRef,
        target: str,
        message: str,
        kind: str,
        cron: str | None,
        timezone: str,
        next_run_at: datetime,
        now: datetime,
    ) -> ReminderView:
        """Store a new active reminder."""

        def tx(session: Session) -> ReminderView:
            row = Reminder(
                creator_platform=creator.platform,
                creator_id=creator.external_id,
                target=target,
                message=message,
                kind=kind,
                cron=cron,
                timezone=timezone,
                next_run_at=next_run_at,
                state=ACTIVE,
                created_at=now,
            )
            session.add(row)
            session.flush()
            return _view(row)

        return await self.db.write(tx)

    async def get(self, reminder_id: int) -> ReminderView | None:
        """One reminder, or None."""

        def tx(session: Session) -> ReminderView | None:
            row = session.get(Reminder, reminder_id)
            return _view(row) if row else None

        return await self.db.read(tx)

    async def active_in(self, target: str | None) -> list[ReminderView]:
        """Active reminders that post in one place (every place for None), soonest first."""

        def tx(session: Session) -> list[ReminderView]:
            query = select(Reminder).where(Reminder.state == ACTIVE)
            if target is not None:
                query = query.where(Reminder.target == target)
            rows = session.exec(query.order_by(col(Reminder.next_run_at), col(Reminder.id))).all()
            return [_view(row) for row in rows]

        return await self.db.read(tx)

    async def delete(self, reminder_id: int, *, target: str | None) -> ReminderView | None:
        """Remove a reminder that posts in ``target`` (anywhere for None).

        Returns what it was, or None if there was no such reminder there.
        """

        def tx(session: Session) -> ReminderView | None:
            row = session.get(Reminder, reminder_id)
            if row is None or (target is not None and row.target != target):
                return None
            view = _view(row)
            session.execute(delete(Reminder).where(col(Reminder.id) == reminder_id))
            return view

        return await self.db.write(tx)

    async def schedule(self) -> list[tuple[int, datetime]]:
        """(id, next run) of every active reminder: what the scheduler is rebuilt from."""

        def tx(session: Session) -> list[tuple[int, datetime]]:
            rows = session.execute(
                select(Reminder.id, Reminder.next_run_at).where(
                    Reminder.state == ACTIVE, col(Reminder.next_run_at).is_not(None)
                )
            ).all()
            return [(int(rid), at) for rid, at in rows]

        return await self.db.read(tx)

    async def due(self, now: datetime) -> list[int]:
        """Ids of active reminders due at ``now``."""

        def tx(session: Session) -> list[int]:
            rows = session.exec(
                select(Reminder.id).where(
                    Reminder.state == ACTIVE, col(Reminder.next_run_at) <= now
                )
            ).all()
            return [int(rid) for rid in rows if rid is not None]

        return await self.db.read(tx)

    async def fire(
        self,
        ids: Iterable[int],
        now: datetime,
        decide: Callable[[ReminderView], Advance],
    ) -> list[Fired]:
        """Advance due reminders and write the posts they owe, all in one transaction.

        Each advance is conditional on the stored next run still being the one decided on,
        so when two processes fire the same run, exactly one posts it.
        """
        wanted = sorted(set(ids))

        def tx(session: Session) -> list[Fired]:
            fired: list[Fired] = []
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                # Core statements on the table: no ORM objects to build or keep in sync,
                # which would make a batch cost the square of its size.
                rows = session.execute(sa.select(_TABLE).where(_TABLE.c.id.in_(chunk))).all()
                fired.extend(_fire_one(session, row, now, decide) for row in rows)
            return fired

        return await self.db.write(tx)

    async def export(self, user: UserRef) -> list[dict[str, Any]]:
        """The reminders a person made, JSON-ready."""

        def tx(session: Session) -> list[dict[str, Any]]:
            rows = session.exec(
                select(Reminder)
                .where(
                    Reminder.creator_platform == user.platform,
                    Reminder.creator_id == user.external_id,
                )
                .order_by(col(Reminder.id))
            ).all()
            return [
                {
                    "id": row.id,
                    "place": row.target,
                    "message": row.message,
                    "schedule": row.cron or "once",
                    "timezone": row.timezone,
                    "next_run_at": row.next_run_at.isoformat() if row.next_run_at else None,
                    "state": row.state,
                    "created_at": row.created_at.isoformat(),
                }
                for row in rows
            ]

        return await self.db.read(tx)

    async def forget_creator(self, user: UserRef) -> int:
        """Drop a person's identity from the reminders they made; returns how many."""

        def tx(session: Session) -> int:
            result = session.execute(
                update(Reminder)
                .where(
                    col(Reminder.creator_platform) == user.platform,
                    col(Reminder.creator_id) == user.external_id,
                )
                .values(creator_platform=None, creator_id=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)


def _fire_one(
    session: Session, row: Any, now: datetime, decide: Callable[[ReminderView], Advance]
) -> Fired:
    if row.state != ACTIVE or row.next_run_at is None:
        return Fired(row.id, False, None)
    if row.next_run_at > now:  # moved on already (another process fired it)
        return Fired(row.id, False, row.next_run_at)
    advance = decide(_view(row))
    values: dict[str, Any] = {"next_run_at": advance.next_run_at, "state": advance.state}
    if advance.post is not None:
        values["last_fired_at"] = now
    result = session.execute(
        sa.update(_TABLE)
        .where(
            _TABLE.c.id == row.id,
            _TABLE.c.state == ACTIVE,
            _TABLE.c.next_run_at == row.next_run_at,
        )
        .values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return Fired(row.id, False, None)
    posted = advance.post is not None and enqueue(session.connection(), advance.post, now)
    return Fired(row.id, posted, advance.next_run_at)
