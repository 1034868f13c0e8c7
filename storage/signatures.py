"""Signature counts (never signatories), the milestones they reached, the digest's schedule."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot.domain import UserRef
from bot.domain.eci import ANNOUNCEMENT, Goals, Milestone
from storage.db import Database, dialect_insert
from storage.models import BotState, ReachedMilestone, SignatureCount
from storage.outbox import Post, enqueue


@dataclass(frozen=True, slots=True)
class Progress:
    """The latest count of each kind: the total and every member state recorded."""

    total: int | None = None
    countries: dict[str, int] = field(default_factory=dict)
    updated_at: datetime | None = None
    source: str | None = None

    def data(self) -> dict[str, Any]:
        """JSON-ready facts, for a post about it."""
        updated = self.updated_at.isoformat() if self.updated_at else None
        return {"total": self.total, "countries": self.countries, "updated_at": updated,
                "source": self.source}  # fmt: skip

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Progress":
        """Inverse of :meth:`data`."""
        updated = datetime.fromisoformat(data["updated_at"]) if data["updated_at"] else None
        return cls(data["total"], dict(data["countries"]), updated, data["source"])


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording counts did: the progress after it and the milestones newly reached."""

    progress: Progress
    previous: Progress
    reached: list[Milestone]


def _progress(session: Session) -> Progress:
    latest = (
        select(func.max(SignatureCount.id).label("id"))
        .group_by(col(SignatureCount.country))
        .subquery()
    )
    rows = session.exec(
        select(SignatureCount).join(latest, col(SignatureCount.id) == latest.c.id)
    ).all()
    total: int | None = None
    countries: dict[str, int] = {}
    newest: SignatureCount | None = None
    for row in rows:
        if row.country is None:
            total = row.count
        else:
            countries[row.country] = row.count
        if newest is None or (row.id or 0) > (newest.id or 0):
            newest = row
    return Progress(
        total=total,
        countries=dict(sorted(countries.items())),
        updated_at=newest.recorded_at if newest else None,
        source=newest.source if newest else None,
    )


class SignatureRepo:
    """Recording counts and announcing the milestones they reach, in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def progress(self) -> Progress:
        """The latest counts."""
        return await self.db.read(_progress)

    async def record(
        self,
        counts: Mapping[str | None, int],
        *,
        source: str,
        by: UserRef | None,
        now: datetime,
        goals: Goals,
        targets: Sequence[str],
    ) -> Recorded:
        """Store counts (key None is the total) and announce milestones not reached before.

        Each milestone key is inserted once ever; only the transaction that inserts it
        announces it, so concurrent or repeated records never announce twice, and a count
        that falls and rises again announces nothing new. The announcement, one row per
        target, carries the milestones and the progress; it is put in words at delivery.
        """

        def tx(session: Session) -> Recorded:
            before = _progress(session)
            for country, count in counts.items():
                session.add(
                    SignatureCount(
                        country=country,
                        count=count,
                        recorded_at=now,
                        source=source,
                        recorded_by_platform=by.platform if by else None,
                        recorded_by_id=by.external_id if by else None,
                    )
                )
            session.flush()
            after = _progress(session)
            new: list[Milestone] = []
            for milestone in goals.reached(after.total, after.countries):
                # RETURNING, not rowcount: only a row this transaction inserted comes back
                # (psycopg reports no row count for an INSERT built by SQLAlchemy).
                statement = (
                    dialect_insert(session, ReachedMilestone.__table__)  # type: ignore[attr-defined]
                    .values(key=milestone.key, count=milestone.count, reached_at=now)
                    .on_conflict_do_nothing(index_elements=["key"])
                    .returning(col(ReachedMilestone.key))
                )
                if session.execute(statement).first() is not None:
                    new.append(milestone)
            if new:
                facts = {"reached": [m.data() for m in new], "progress": after.data()}
                for target in targets:
                    key = f"milestone:{new[0].key}:{target}"
                    enqueue(session.connection(), Post(key, target, ANNOUNCEMENT, facts), now)
            return Recorded(after, before, new)

        return await self.db.write(tx)

    async def reached(self) -> list[str]:
        """Keys of every milestone reached so far."""

        def tx(session: Session) -> list[str]:
            return list(session.exec(select(ReachedMilestone.key)).all())

        return await self.db.read(tx)

    async def export(self, user: UserRef) -> list[dict[str, Any]]:
        """Counts a person recorded, JSON-ready."""

        def tx(session: Session) -> list[dict[str, Any]]:
            rows = session.exec(
                select(SignatureCount)
                .where(
                    SignatureCount.recorded_by_platform == user.platform,
                    SignatureCount.recorded_by_id == user.external_id,
                )
                .order_by(col(SignatureCount.id))
            ).all()
            return [
                {
                    "country": row.country,
                    "count": row.count,
                    "recorded_at": row.recorded_at.isoformat(),
                    "source": row.source,
                }
                for row in rows
            ]

        return await self.db.read(tx)

    async def forget_recorder(self, user: UserRef) -> int:
        """Keep the counts a person recorded but not who recorded them; returns how many."""

        def tx(session: Session) -> int:
            result = session.execute(
                update(SignatureCount)
                .where(
                    col(SignatureCount.recorded_by_platform) == user.platform,
                    col(SignatureCount.recorded_by_id) == user.external_id,
                )
                .values(recorded_by_platform=None, recorded_by_id=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)

    async def get_mark(self, key: str) -> datetime | None:
        """A stored moment (the digest's next run), or None."""

        def tx(session: Session) -> datetime | None:
            row = session.get(BotState, key)
            return datetime.fromisoformat(row.value) if row else None

        return await self.db.read(tx)

    async def advance_mark(
        self,
        key: str,
        expected: datetime | None,
        new: datetime,
        now: datetime,
        posts: Sequence[Post] = (),
    ) -> bool:
        """Move a stored moment from ``expected`` to ``new`` and write ``posts`` with it.

        Conditional on the stored value still being ``expected`` (None: not set yet), so a
        periodic post is written once per period even by two processes.
        """

        def tx(session: Session) -> bool:
            if expected is None:
                statement = (
                    dialect_insert(session, BotState.__table__)  # type: ignore[attr-defined]
                    .values(key=key, value=new.isoformat(), updated_at=now)
                    .on_conflict_do_nothing(index_elements=["key"])
                    .returning(col(BotState.key))
                )
                if session.execute(statement).first() is None:
                    return False
            else:
                result = session.execute(
                    update(BotState)
                    .where(col(BotState.key) == key, col(BotState.value) == expected.isoformat())
                    .values(value=new.isoformat(), updated_at=now)
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    return False
            for post in posts:
                enqueue(session.connection(), post, now)
            return True

        return await self.db.write(tx)
