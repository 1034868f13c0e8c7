"""The audit trail: every coordinator-only command, who ran it, where, and how it ended."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bot.domain import UserRef
from storage.db import Database
from storage.models import AuditEvent

FORMER = "a former volunteer"
_TABLE: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the trail, as written and as read back."""

    at: datetime
    actor: UserRef | None
    actor_name: str
    command: str
    detail: str
    place: str
    place_private: bool
    outcome: str
    subject: UserRef | None = None
    id: int | None = None


def _entry(row: Any) -> AuditEntry:
    def ref(platform: str | None, external_id: str | None) -> UserRef | None:
        return UserRef(platform, external_id) if platform and external_id else None

    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=ref(row.actor_platform, row.actor_id),
        actor_name=row.actor_name,
        command=row.command,
        detail=row.detail,
        place=row.place,
        place_private=row.place_private,
        outcome=row.outcome,
        subject=ref(row.subject_platform, row.subject_id),
    )


def _is(user: UserRef, platform: sa.Column[Any], external_id: sa.Column[Any]) -> Any:
    return sa.and_(platform == user.platform, external_id == user.external_id)


class AuditRepo:
    """Writing, reading, exporting and erasing the audit trail."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: AuditEntry) -> None:
        """Append one line."""
        values = {
            "at": entry.at,
            "actor_platform": entry.actor.platform if entry.actor else None,
            "actor_id": entry.actor.external_id if entry.actor else None,
            "actor_name": entry.actor_name[:255],
            "command": entry.command[:64],
            "detail": entry.detail[:500],
            "place": entry.place[:255],
            "place_private": entry.place_private,
            "outcome": entry.outcome,
            "subject_platform": entry.subject.platform if entry.subject else None,
            "subject_id": entry.subject.external_id if entry.subject else None,
        }

        def tx(session: Session) -> None:
            session.execute(_TABLE.insert().values(**values))

        await self.db.write(tx)

    async def recent(self, limit: int) -> list[AuditEntry]:
        """The newest lines, newest first."""

        def tx(session: Session) -> list[AuditEntry]:
            rows = session.execute(
                sa.select(_TABLE).order_by(_TABLE.c.id.desc()).limit(limit)
            ).all()
            return [_entry(row) for row in rows]

        return await self.db.read(tx)

    async def export(self, user: UserRef) -> list[dict[str, Any]]:
        """The lines this person ran or that were about them, JSON-ready."""
        c = _TABLE.c

        def tx(session: Session) -> list[dict[str, Any]]:
            rows = session.execute(
                sa.select(_TABLE)
                .where(
                    sa.or_(
                        _is(user, c.actor_platform, c.actor_id),
                        _is(user, c.subject_platform, c.subject_id),
                    )
                )
                .order_by(c.id)
            ).all()
            return [
                {
                    "at": row.at.isoformat(),
                    "you": "ran it" if row.actor_id == user.external_id else "it was about you",
                    "command": row.command,
                    "detail": row.detail,
                    "place": row.place,
                    "outcome": row.outcome,
                }
                for row in rows
            ]

        return await self.db.read(tx)

    async def erase(self, user: UserRef) -> int:
        """Keep what was done, forget who did it and whom it was about; returns lines changed.

        The trail still says a coordinator cancelled task 3, but no longer which one, nor in
        which direct chat; a line about the person loses its arguments.
        """
        c = _TABLE.c

        def tx(session: Session) -> int:
            ran = session.execute(
                _TABLE.update()
                .where(_is(user, c.actor_platform, c.actor_id))
                .values(
                    actor_platform=None,
                    actor_id=None,
                    actor_name=FORMER,
                    place=sa.case((c.place_private, ""), else_=c.place),
                )
            )
            about = session.execute(
                _TABLE.update()
                .where(_is(user, c.subject_platform, c.subject_id))
                .values(subject_platform=None, subject_id=None, detail="(erased)")
            )
            return int(ran.rowcount) + int(about.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)
