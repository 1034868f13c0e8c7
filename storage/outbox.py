"""The outbox: posts the bot owes, written in the transaction that causes them."""

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from bot.context import Attachment
from bot.markup import Markup
from storage.db import Database, dialect_insert
from storage.models import OutboxMessage

EMPTY_BODY = Markup().to_json()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One leased outbox row, ready to send."""

    id: int
    key: str
    platform: str
    target: str
    recipient_id: str | None
    body: Markup
    attachment: Attachment | None
    attempts: int
    due_at: datetime


def enqueue(
    session: Session,
    *,
    key: str,
    target: str,
    body: Markup,
    now: datetime,
    due_at: datetime | None = None,
    recipient_id: str | None = None,
    attachment: Attachment | None = None,
) -> bool:
    """Add a post inside the caller's transaction; a key seen before is ignored.

    Returns whether the row is new. ``target`` is ``platform:address`` or ``console``.
    """
    statement = (
        dialect_insert(session, OutboxMessage.__table__)  # type: ignore[attr-defined]
        .values(
            key=key[:255],
            platform=target.partition(":")[0],
            target=target,
            recipient_id=recipient_id,
            body=body.to_json(),
            attachment_name=attachment.filename if attachment else None,
            attachment=attachment.data if attachment else None,
            created_at=now,
            due_at=due_at or now,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(OutboxMessage.id))  # psycopg gives no row count for this INSERT
    )
    return session.execute(statement).first() is not None


class OutboxRepo:
    """Leasing, marking and dropping outbox rows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, **fields: object) -> bool:
        """Enqueue outside any other change (see :func:`enqueue` for the fields)."""
        return await self.db.write(lambda session: enqueue(session, **fields))  # type: ignore[arg-type]

    async def lease_due(
        self, platforms: Sequence[str], now: datetime, *, lease: timedelta, limit: int = 20
    ) -> list[Delivery]:
        """Take up to ``limit`` due rows for these platforms, so no other process sends them."""

        def tx(session: Session) -> list[Delivery]:
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
            taken: list[Delivery] = []
            for row in rows:
                result = session.execute(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.id) == row.id,
                        col(OutboxMessage.sent_at).is_(None),
                        (col(OutboxMessage.lease_until).is_(None))
                        | (col(OutboxMessage.lease_until) <= now),
                    )
                    .values(lease_until=now + lease, attempts=OutboxMessage.attempts + 1)
                )
                if result.rowcount and row.id is not None:  # type: ignore[attr-defined]
                    taken.append(_delivery(row))
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

        def tx(session: Session) -> list[OutboxMessage]:
            return list(
                session.exec(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.platform == platform,
                        OutboxMessage.recipient_id == recipient_id,
                    )
                    .order_by(col(OutboxMessage.id))
                ).all()
            )

        return await self.db.read(tx)

    async def naming(self, platform: str, names: Collection[str]) -> list[OutboxMessage]:
        """Rows whose text quotes one of ``names`` as a value (posts about a person)."""
        wanted = {name for name in names if name}
        return await self.db.read(lambda session: _naming(session, platform, wanted))

    async def redact(self, platform: str, names: Collection[str], replacement: str) -> int:
        """Replace a person's names where a post quotes them as a value; returns rows changed.

        Only values that are exactly one of ``names`` change (in "Alice claimed #7" the
        person goes, the words stay); text someone typed that merely contains a name stays.
        """
        wanted = {name for name in names if name}

        def tx(session: Session) -> int:
            rows = _naming(session, platform, wanted)
            for row in rows:
                body = Markup.from_json(row.body)
                row.body = Markup(
                    tuple(
                        (trusted, replacement if not trusted and text in wanted else text)
                        for trusted, text in body.parts
                    )
                ).to_json()
                session.add(row)
            return len(rows)

        return await self.db.write(tx)

    async def drop_for(self, platform: str, recipient_id: str) -> int:
        """Delete every row addressed to one person, sent or not; returns how many."""

        def tx(session: Session) -> int:
            result = session.execute(
                delete(OutboxMessage).where(
                    col(OutboxMessage.platform) == platform,
                    col(OutboxMessage.recipient_id) == recipient_id,
                )
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
                    | col(OutboxMessage.recipient_id).is_not(None)
                    | col(OutboxMessage.attachment_name).is_not(None),
                )
                .values(
                    body=EMPTY_BODY,
                    recipient_id=None,
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


def _naming(session: Session, platform: str, names: set[str]) -> list[OutboxMessage]:
    if not names:
        return []
    # Values are stored JSON-encoded: narrow down in SQL by the encoded form, then check.
    needles = [json.dumps(name, ensure_ascii=False)[1:-1] for name in names]
    rows = session.exec(
        select(OutboxMessage)
        .where(
            OutboxMessage.platform == platform,
            or_(*(col(OutboxMessage.body).contains(n, autoescape=True) for n in needles)),
        )
        .order_by(col(OutboxMessage.id))
    ).all()
    return [
        row
        for row in rows
        if any(not trusted and text in names for trusted, text in Markup.from_json(row.body).parts)
    ]


def _delivery(row: OutboxMessage) -> Delivery:
    assert row.id is not None
    attachment = (
        Attachment(row.attachment_name, row.attachment, "image/png")
        if row.attachment_name and row.attachment is not None
        else None
    )
    return Delivery(
        id=row.id,
        key=row.key,
        platform=row.platform,
        target=row.target,
        recipient_id=row.recipient_id,
        body=Markup.from_json(row.body),
        attachment=attachment,
        attempts=row.attempts + 1,
        due_at=row.due_at,
    )


@dataclass(frozen=True, slots=True)
class Post:
    """An outbox row to be written by a repository inside its own transaction."""

    key: str
    target: str
    body: Markup
    recipient_id: str | None = None
    attachment: Attachment | None = None

    def enqueue(self, session: Session, now: datetime) -> bool:
        """Write it (see :func:`enqueue`); returns whether it is new."""
        return enqueue(
            session,
            key=self.key,
            target=self.target,
            body=self.body,
            now=now,
            recipient_id=self.recipient_id,
            attachment=self.attachment,
        )
