"""The outbox: posts the bot owes, written in the transaction that causes them.

A row says what happened, not how it reads: a ``kind`` and JSON facts (ids, numbers, the
names it quotes). It is rendered, in words and pictures, when it is delivered (see
``bot.outbox``), never while the transaction that wrote it holds the database. A stable
``key`` per post makes it exactly-once.
"""

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from bot.domain import Markup, UserRef
from storage.db import Database, dialect_insert
from storage.models import OutboxMessage

# The kind of a post whose words were written when it was queued: its facts are Markup.
MARKUP = "markup"
EMPTY_BODY = Markup().to_json()


class File(Protocol):
    """A file to attach to a post."""

    @property
    def filename(self) -> str:
        """Its name."""
        ...

    @property
    def data(self) -> bytes:
        """Its bytes."""
        ...


@dataclass(frozen=True, slots=True)
class Post:
    """A post the bot owes: what happened (``kind`` and JSON-ready ``data``), where, for whom.

    ``target`` is ``platform:address`` or ``console``. ``recipient_id`` is the person it is
    for (on ``recipient_platform``, by default the target's); ``subject`` the person its facts
    quote by name (a coordinator who assigned a task), so export and erasure find the post by
    that person's id, never by a name someone else could take.
    """

    key: str
    target: str
    kind: str
    data: Any
    recipient_id: str | None = None
    recipient_platform: str | None = None
    subject: UserRef | None = None

    @classmethod
    def words(
        cls,
        key: str,
        target: str,
        body: Markup,
        recipient_id: str | None = None,
        *,
        subject: UserRef | None = None,
    ) -> "Post":
        """A post whose words are already written."""
        return cls(key, target, MARKUP, json.loads(body.to_json()), recipient_id, subject=subject)

    @property
    def platform(self) -> str:
        """The platform it is posted on."""
        return self.target.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Leased:
    """One leased outbox row, ready to render and send."""

    id: int
    key: str
    platform: str
    target: str
    recipient_id: str | None
    kind: str
    data: Any
    body: str  # the facts as stored (rows with equal bodies render alike)
    file: tuple[str, bytes] | None
    attempts: int
    due_at: datetime
    lease_until: datetime  # the lease this process holds on it, until then


def enqueue(
    conn: Connection,
    post: Post,
    now: datetime,
    *,
    due_at: datetime | None = None,
    file: File | None = None,
) -> bool:
    """Add a post inside the caller's transaction; a key seen before is ignored.

    Returns whether the row is new.
    """
    statement = (
        dialect_insert(conn, OutboxMessage.__table__)  # type: ignore[attr-defined]
        .values(
            key=post.key[:255],
            platform=post.platform,
            target=post.target,
            recipient_platform=(
                (post.recipient_platform or post.platform) if post.recipient_id else None
            ),
            recipient_id=post.recipient_id,
            subject_platform=post.subject.platform if post.subject else None,
            subject_id=post.subject.external_id if post.subject else None,
            subject_name=post.subject.label[:255] if post.subject else None,
            kind=post.kind,
            body=json.dumps(post.data, ensure_ascii=False, sort_keys=True),
            attachment_name=file.filename if file else None,
            attachment=file.data if file else None,
            created_at=now,
            due_at=due_at or now,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(OutboxMessage.id))  # psycopg gives no row count for this INSERT
    )
    return conn.execute(statement).first() is not None


class OutboxRepo:
    """Leasing, marking and dropping outbox rows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        key: str,
        target: str,
        now: datetime,
        body: Markup | None = None,
        kind: str = MARKUP,
        data: Any = None,
        recipient_id: str | None = None,
        subject: UserRef | None = None,
        attachment: File | None = None,
    ) -> bool:
        """Enqueue outside any other change: written words (``body``), or ``kind`` and facts."""
        if body is not None:
            post = Post.words(key, target, body, recipient_id, subject=subject)
        else:
            post = Post(key, target, kind, data, recipient_id, subject=subject)
        return await self.db.write_connection(
            lambda conn: enqueue(conn, post, now, file=attachment)
        )

    async def lease_due(
        self, platforms: Sequence[str], now: datetime, *, lease: timedelta, limit: int = 20
    ) -> list[Leased]:
        """Take up to ``limit`` due rows for these platforms, so no other process sends them."""

        def tx(session: Session) -> list[Leased]:
            rows = session.exec(
                select(OutboxMessage)
                .where(
                    col(OutboxMessage.platform).in_(platforms),
                    col(OutboxMessage.sent_at).is_(None),
                    col(OutboxMessage.due_at) <= now,
                    (col(OutboxMessage.lease_until).is_(None))
                    | (col(OutboxMessage.lease_until) <= now),
                )
                .order_by(col(OutboxMessage.due_at), col(OutboxMessage.id))
                .limit(limit)
            ).all()
            taken: list[Leased] = []
            until = now + lease
            for row in rows:
                result = session.execute(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.id) == row.id,
                        col(OutboxMessage.sent_at).is_(None),
                        (col(OutboxMessage.lease_until).is_(None))
                        | (col(OutboxMessage.lease_until) <= now),
                    )
                    .values(lease_until=until, attempts=OutboxMessage.attempts + 1)
                )
                if result.rowcount and row.id is not None:  # type: ignore[attr-defined]
                    taken.append(_leased(row, until))
            return taken

        return await self.db.write(tx)

    async def mark_sent(self, delivery_id: int, now: datetime) -> None:
        """Record a successful delivery."""

        def tx(session: Session) -> None:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == delivery_id)
                .values(sent_at=now, lease_until=None, last_error=None)
            )

        await self.db.write(tx)

    async def release(self, leases: Collection[tuple[int, datetime]]) -> int:
        """Give back rows leased but not tried, so any process may send them now.

        Each ``(id, lease_until)`` is released only while that lease is still the row's own
        (not sent, not leased again by another process since); returns how many were.
        """

        def tx(session: Session) -> int:
            released = 0
            for delivery_id, until in leases:
                result = session.execute(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.id) == delivery_id,
                        col(OutboxMessage.sent_at).is_(None),
                        col(OutboxMessage.lease_until) == until,
                    )
                    .values(lease_until=None, attempts=OutboxMessage.attempts - 1)
                )
                released += int(result.rowcount)  # type: ignore[attr-defined]
            return released

        if not leases:
            return 0
        return await self.db.write(tx)

    async def mark_failed(self, delivery_id: int, retry_at: datetime, error: str) -> None:
        """Record a failed attempt; the row is tried again from ``retry_at``."""

        def tx(session: Session) -> None:
            session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == delivery_id)
                .values(lease_until=retry_at, last_error=error[:255])
            )

        await self.db.write(tx)

    async def addressed_to(self, platform: str, recipient_id: str) -> list[OutboxMessage]:
        """Every row addressed to one person, sent or not, oldest first (for their export)."""
        where = _is_recipient(platform, recipient_id)
        return await self.db.read(lambda session: _rows(session, where))

    async def naming(self, platform: str, external_id: str) -> list[OutboxMessage]:
        """Rows whose facts name one person (by their stored id), oldest first."""
        where = _is_subject(platform, external_id)
        return await self.db.read(lambda session: _rows(session, where))

    async def redact(self, platform: str, external_id: str, replacement: str) -> int:
        """Replace one person's name in the posts that name them; returns rows changed.

        A post is matched by the person's stored id, and only values that are exactly the name
        it quoted change (in "Alice gave you #7" the person goes, the words stay). The row
        then names nobody.
        """

        def tx(session: Session) -> int:
            rows = _rows(session, _is_subject(platform, external_id))
            for row in rows:
                names = {row.subject_name} if row.subject_name else set()
                data = _replaced(row.kind, json.loads(row.body), names, replacement)
                row.body = json.dumps(data, ensure_ascii=False, sort_keys=True)
                row.subject_platform = row.subject_id = row.subject_name = None
                session.add(row)
            return len(rows)

        return await self.db.write(tx)

    async def drop_for(self, platform: str, recipient_id: str) -> int:
        """Delete every row addressed to one person, sent or not; returns how many."""

        def tx(session: Session) -> int:
            result = session.execute(
                delete(OutboxMessage).where(_is_recipient(platform, recipient_id))
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)

    async def clear_sent_before(self, cutoff: datetime) -> int:
        """Empty rows delivered before ``cutoff``: the key stays (sent once), the content goes.

        Returns how many rows were cleared.
        """

        def tx(session: Session) -> int:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.sent_at) < cutoff,
                    (col(OutboxMessage.body) != EMPTY_BODY)
                    | (col(OutboxMessage.kind) != MARKUP)
                    | col(OutboxMessage.recipient_id).is_not(None)
                    | col(OutboxMessage.subject_id).is_not(None)
                    | col(OutboxMessage.attachment_name).is_not(None),
                )
                .values(
                    kind=MARKUP,
                    body=EMPTY_BODY,
                    recipient_platform=None,
                    recipient_id=None,
                    subject_platform=None,
                    subject_id=None,
                    subject_name=None,
                    attachment_name=None,
                    attachment=None,
                    last_error=None,
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self.db.write(tx)

    async def sent_keys(self, prefix: str) -> list[str]:
        """Keys of delivered rows starting with ``prefix`` (for tests and diagnostics)."""

        def tx(session: Session) -> list[str]:
            return list(
                session.exec(
                    select(OutboxMessage.key).where(
                        col(OutboxMessage.key).startswith(prefix),
                        col(OutboxMessage.sent_at).is_not(None),
                    )
                ).all()
            )

        return await self.db.read(tx)


def _replaced(kind: str, data: Any, names: set[str], replacement: str) -> Any:
    """``data`` with every quoted value that is one of ``names`` replaced."""
    if kind == MARKUP:
        return [[t, replacement if not t and text in names else text] for t, text in data]
    if isinstance(data, str):
        return replacement if data in names else data
    if isinstance(data, dict):
        return {k: _replaced(kind, v, names, replacement) for k, v in data.items()}
    if isinstance(data, list):
        return [_replaced(kind, v, names, replacement) for v in data]
    return data


def _is_recipient(platform: str, recipient_id: str) -> Any:
    return (col(OutboxMessage.recipient_platform) == platform) & (
        col(OutboxMessage.recipient_id) == recipient_id
    )


def _is_subject(platform: str, external_id: str) -> Any:
    return (col(OutboxMessage.subject_platform) == platform) & (
        col(OutboxMessage.subject_id) == external_id
    )


def _rows(session: Session, where: Any) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).where(where).order_by(col(OutboxMessage.id))))


def _leased(row: OutboxMessage, until: datetime) -> Leased:
    assert row.id is not None
    file = (
        (row.attachment_name, row.attachment)
        if row.attachment_name and row.attachment is not None
        else None
    )
    return Leased(
        id=row.id,
        key=row.key,
        platform=row.platform,
        target=row.target,
        recipient_id=row.recipient_id,
        kind=row.kind,
        data=json.loads(row.body),
        body=row.body,
        file=file,
        attempts=row.attempts + 1,
        due_at=row.due_at,
        lease_until=until,
    )
