"""Read-only views for the coordinators' dashboard: the queue, claims, reminders, coverage.

Counts and lists only; every statement is a plain read on the tables the other
repositories write. Names appear only where coordinators see them in chat too (who holds a
claim); the queue's CSV export names nobody.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.models import OutboxMessage, Reminder, Task, Volunteer, VolunteerRole

T: sa.Table = Task.__table__  # type: ignore[attr-defined]
V: sa.Table = Volunteer.__table__  # type: ignore[attr-defined]
R: sa.Table = VolunteerRole.__table__  # type: ignore[attr-defined]
M: sa.Table = Reminder.__table__  # type: ignore[attr-defined]
OB: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]

PRIORITIES = ("low", "normal", "high", "urgent")  # by stored rank
QUEUE_STATUSES = ("open", "claimed", "in_review")
CSV_COLUMNS = (
    "id", "kind", "title", "language", "source_language", "priority", "status", "due_at",
    "created_at", "claimed_at",
)  # fmt: skip
CSV_PAGE = 2000


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One task on the dashboard."""

    id: int
    kind: str
    title: str
    language: str | None
    source_language: str | None
    priority: str
    status: str
    due_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ExpiringClaim:
    """A claim that runs out soon unless its holder does something."""

    task_id: int
    title: str
    language: str | None
    holder: str
    last_activity_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UpcomingReminder:
    """A reminder's next post."""

    id: int
    message: str
    target: str
    schedule: str
    next_run_at: datetime


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the dashboard shows, read in one transaction."""

    # (language or None, status) -> tasks
    queue: dict[tuple[str | None, str], int]
    open_tasks: list[QueueItem]
    expiring: list[ExpiringClaim]
    reminders: list[UpcomingReminder]
    volunteers: int
    by_language: dict[str, int]
    by_country: dict[str, int]
    by_role: dict[str, int]
    # (language, role) -> volunteers; how many people could take a kind of task per language
    language_roles: dict[tuple[str, str], int] = field(default_factory=dict)


def _item(row: Any) -> QueueItem:
    return QueueItem(
        id=row.id,
        kind=row.kind,
        title=row.title,
        language=row.language,
        source_language=row.source_language,
        priority=PRIORITIES[max(0, min(int(row.priority), 3))],
        status=row.status,
        due_at=row.due_at,
        created_at=row.created_at,
    )


_QUEUE_ORDER = (T.c.priority.desc(), T.c.due_at.is_(None), T.c.due_at, T.c.id)


class DashboardRepo:
    """The dashboard's reads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def overview(
        self, now: datetime, *, claim_ttl: timedelta, window: timedelta, limit: int = 50
    ) -> Overview:
        """Queue counts, open tasks, expiring claims, reminders and volunteers' coverage."""

        def tx(conn: Connection) -> Overview:
            return _overview(conn, now, claim_ttl, window, limit)

        return await self.db.read_connection(tx)

    async def queue_rows(self, after: int, statuses: tuple[str, ...]) -> list[tuple[Any, ...]]:
        """One page of the CSV export: tasks with an id above ``after``, by id."""

        def tx(conn: Connection) -> list[tuple[Any, ...]]:
            rows = conn.execute(
                sa.select(*(T.c[name] for name in CSV_COLUMNS))
                .where(T.c.id > after, T.c.status.in_(statuses))
                .order_by(T.c.id)
                .limit(CSV_PAGE)
            ).all()
            return [tuple(row) for row in rows]

        return await self.db.read_connection(tx)

    async def outbox_backlog(self, now: datetime) -> tuple[int, float]:
        """Posts due and not yet delivered, and the age in seconds of the oldest of them."""

        def tx(conn: Connection) -> tuple[int, float]:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(OB.c.due_at)).where(
                    OB.c.sent_at.is_(None), OB.c.due_at <= now
                )
            ).one()
            if not count or oldest is None:
                return 0, 0.0
            if isinstance(oldest, str):  # an aggregate skips the column's type on SQLite
                oldest = datetime.fromisoformat(oldest)
            return int(count), max((now - _aware(oldest)).total_seconds(), 0.0)

        return await self.db.read_connection(tx)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _overview(
    conn: Connection, now: datetime, ttl: timedelta, window: timedelta, limit: int
) -> Overview:
    queue = {
        (language, status): int(n)
        for language, status, n in conn.execute(
            sa.select(T.c.language, T.c.status, sa.func.count()).group_by(T.c.language, T.c.status)
        )
    }
    open_rows = conn.execute(
        sa.select(T).where(T.c.status.in_(QUEUE_STATUSES)).order_by(*_QUEUE_ORDER).limit(limit)
    ).all()
    # A claim runs out claim_ttl after its holder's last activity on it.
    cutoff = now + window - ttl
    expiring = [
        ExpiringClaim(
            task_id=row.id,
            title=row.title,
            language=row.language,
            holder=row.display_name or "a former volunteer",
            last_activity_at=row.last_activity_at,
            expires_at=row.last_activity_at + ttl,
        )
        for row in conn.execute(
            sa.select(T.c.id, T.c.title, T.c.language, T.c.last_activity_at, V.c.display_name)
            .select_from(T.outerjoin(V, V.c.id == T.c.claimed_by))
            .where(T.c.status == "claimed", T.c.last_activity_at <= cutoff)
            .order_by(T.c.last_activity_at)
            .limit(limit)
        )
    ]
    reminders = [
        UpcomingReminder(row.id, row.message, row.target, row.cron or "once", row.next_run_at)
        for row in conn.execute(
            sa.select(M.c.id, M.c.message, M.c.target, M.c.cron, M.c.next_run_at)
            .where(M.c.state == "active", M.c.next_run_at.is_not(None))
            .order_by(M.c.next_run_at)
            .limit(limit)
        )
    ]
    languages: Counter[str] = Counter()
    countries: Counter[str] = Counter()
    roles_by_volunteer: dict[int, list[str]] = {}
    for vid, role in conn.execute(sa.select(R.c.volunteer_id, R.c.role)):
        roles_by_volunteer.setdefault(vid, []).append(role)
    roles: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    volunteers = 0
    for vid, spoken, country in conn.execute(sa.select(V.c.id, V.c.languages, V.c.country)):
        volunteers += 1
        codes = [code for code in (spoken or "").split(",") if code]
        languages.update(codes)
        if country:
            countries[country] += 1
        held = roles_by_volunteer.get(vid, [])
        roles.update(held)
        pairs.update((code, role) for code in codes for role in held)
    return Overview(
        queue=queue,
        open_tasks=[_item(row) for row in open_rows],
        expiring=expiring,
        reminders=reminders,
        volunteers=volunteers,
        by_language=dict(languages.most_common()),
        by_country=dict(countries.most_common()),
        by_role=dict(roles.most_common()),
        language_roles=dict(pairs),
    )


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def priorities(rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """Rows with the stored priority rank spelled as its name."""
    index = CSV_COLUMNS.index("priority")
    for row in rows:
        rank = row[index]
        yield (*row[:index], PRIORITIES[max(0, min(int(rank), 3))], *row[index + 1 :])
