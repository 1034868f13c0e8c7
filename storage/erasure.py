"""Erasure that nothing races: a marker written first, every write for the person checked.

``privacy forget`` first commits an ``erasure_pending`` row for the person. From then on every
write transaction made on someone's behalf (a command they run, a claim button they press, a
command naming them) checks for that row inside the transaction and is refused while it
exists, in any process. The erasure then runs its steps (each idempotent, each cog's in its own
transaction) and sweeps until no table names the person; the same transaction that finds
nothing left deletes the marker. A process killed half-way leaves the marker behind: the
person stays refused until a retry or the next start of any process finishes the job.

Why the check cannot be outrun: on SQLite every write transaction holds the one write lock from
its first statement (``BEGIN IMMEDIATE``), so the marker is either committed before a command's
transaction begins (which then sees it) or after it ended (and the steps see what it wrote). On
PostgreSQL under READ COMMITTED a transaction's check does not wait for a marker that is being
written, so each checking transaction also takes a shared transaction-level advisory lock on
the person and the marker's transaction takes it exclusively: the marker commits only once
every transaction that checked before it has ended, and one that checks after sees it.
"""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.domain import UserRef
from storage.acting import LOCK_SPACE, P, Person, lock_key, person_of, unguarded
from storage.db import Database, dialect_insert

# Where a person's platform id may be stored: (table, platform column, id column). The sweep
# reads them all; a table added later that stores a person's id belongs here.
IDENTITY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("volunteer", "platform", "external_id"),
    ("task", "creator_platform", "creator_external_id"),
    ("task_event", "actor_platform", "actor_external_id"),
    ("task_event", "subject_platform", "subject_external_id"),
    ("reminder", "creator_platform", "creator_id"),
    ("signature_count", "recorded_by_platform", "recorded_by_id"),
    ("audit_event", "actor_platform", "actor_id"),
    ("audit_event", "subject_platform", "subject_id"),
    ("outbox", "recipient_platform", "recipient_id"),
    ("outbox", "subject_platform", "subject_id"),
    ("direct_chat", "platform", "external_id"),
    ("job", "creator_platform", "creator_external_id"),
    ("uploaded_media", "platform", "external_id"),
    ("preference", "platform", "external_id"),
)


class ErasureRepo:
    """The markers of erasures under way, and the sweep that says when one is complete."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def begin(self, user: UserRef, now: datetime) -> None:
        """Commit the marker; returns once no transaction that checked before it is running.

        A marker already there (an erasure a killed process began) stays as it was.
        """
        person = person_of(user)

        def tx(conn: Connection) -> None:
            if conn.dialect.name == "postgresql":
                key = lock_key(person)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_SPACE, key)))
            conn.execute(
                dialect_insert(conn, P)
                .values(platform=person[0], external_id=person[1], started_at=now)
                .on_conflict_do_nothing(index_elements=[P.c.platform, P.c.external_id])
            )

        with unguarded():
            await self.db.write_connection(tx)

    async def pending(self) -> list[UserRef]:
        """Everyone whose erasure began and has not finished, oldest first."""

        def tx(conn: Connection) -> list[UserRef]:
            rows = conn.execute(
                sa.select(P.c.platform, P.c.external_id).order_by(P.c.started_at)
            ).all()
            return [UserRef(platform, ext, "") for platform, ext in rows]

        return await self.db.read_connection(tx)

    async def is_pending(self, user: UserRef) -> bool:
        """Whether ``user``'s erasure has begun and not finished."""
        person = person_of(user)

        def tx(conn: Connection) -> bool:
            mine = sa.and_(P.c.platform == person[0], P.c.external_id == person[1])
            return conn.execute(sa.select(P.c.platform).where(mine)).first() is not None

        return await self.db.read_connection(tx)

    async def finish(self, user: UserRef) -> list[str]:
        """Delete the marker if no table names the person; else the tables that still do."""
        person = person_of(user)

        def tx(conn: Connection) -> list[str]:
            left = leftovers(conn, person)
            if not left:
                conn.execute(
                    P.delete().where(P.c.platform == person[0], P.c.external_id == person[1])
                )
            return left

        with unguarded():
            return await self.db.write_connection(tx)


def leftovers(conn: Connection, person: Person) -> list[str]:
    """``table.column`` for every identity column that still holds the person."""
    existing = set(sa.inspect(conn).get_table_names())
    left: list[str] = []
    for table, platform_column, id_column in IDENTITY_COLUMNS:
        if table not in existing:
            continue
        found = conn.execute(
            sa.text(
                f'SELECT 1 FROM "{table}" WHERE "{platform_column}" = :platform '
                f'AND "{id_column}" = :ext LIMIT 1'
            ),
            {"platform": person[0], "ext": person[1]},
        ).first()
        if found is not None:
            left.append(f"{table}.{id_column}")
    return left
