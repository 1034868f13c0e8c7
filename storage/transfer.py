"""Moving a whole campaign from one database to another (``volunteer-bot db copy``).

Every table of the models is copied in dependency order, from one consistent snapshot of
the source, in one transaction on the target: a copy that fails leaves the target empty.
The target is migrated first and must hold no rows; the source must be at this code's
schema. On PostgreSQL the id sequences are moved past the copied ids, so the next task
posted gets the next number.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

import storage.models  # noqa: F401 - registers every table in SQLModel.metadata
from storage import migrations
from storage.db import Database
from storage.faults import DatabaseUnavailable

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
# Called as rows arrive: table name, rows of it copied so far, rows it has in all.
Progress = Callable[[str, int, int], None]


class CopyRefused(DatabaseUnavailable):
    """The copy cannot start: the target holds data, or the source is not up to date."""


@dataclass(frozen=True, slots=True)
class Copied:
    """What a copy moved: rows per table, in the order they were copied."""

    rows: dict[str, int]

    @property
    def total(self) -> int:
        """Rows in all."""
        return sum(self.rows.values())


def tables() -> list[sa.Table]:
    """Every table of the models, each after the tables it refers to."""
    return list(SQLModel.metadata.sorted_tables)


def copy_database(source: Database, target: Database, progress: Progress | None = None) -> Copied:
    """Copy every table from ``source`` into an empty ``target`` (migrated first).

    Raises CopyRefused when the target holds rows or the source's schema is not this
    code's, SchemaTooNew when either is newer than the code, and DatabaseUnavailable or
    CannotConnect when one of them cannot be used.
    """
    try:
        return _copy(source, target, progress or (lambda table, done, total: None))
    except DBAPIError as exc:
        raised = source.explain(exc)
        raise raised from exc


def _copy(source: Database, target: Database, progress: Progress) -> Copied:
    with source.engine.connect() as conn, conn.begin():
        missing = {m.version for m in migrations.MIGRATIONS} - migrations.applied_versions(conn)
    if missing:
        versions = ", ".join(str(v) for v in sorted(missing))
        raise CopyRefused(
            f"the source database lacks schema version {versions}; upgrade it first "
            "(volunteer-bot db upgrade, with the source as [storage] url)"
        )
    migrations.upgrade(source)  # applies nothing; refuses a source newer than the code
    _refuse_unless_empty(target)
    migrations.upgrade(target)
    rows: dict[str, int] = {}
    with _snapshot(source) as reading, _writing(target) as writing:
        totals = {t.name: reading.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in tables()}  # fmt: skip
        for table in tables():
            total, done = int(totals[table.name]), 0
            progress(table.name, 0, total)
            result = reading.execution_options(yield_per=BATCH_ROWS).execute(
                sa.select(table).order_by(*table.primary_key.columns)
            )
            for batch in result.mappings().partitions():
                writing.execute(table.insert(), [dict(row) for row in batch])
                done += len(batch)
                progress(table.name, done, total)
            rows[table.name] = done
        if writing.dialect.name == "postgresql":
            _continue_sequences(writing)
    log.info("copied %d rows in %d tables", sum(rows.values()), len(rows))
    return Copied(rows)


def _refuse_unless_empty(target: Database) -> None:
    with target.engine.connect() as conn, conn.begin():
        present = set(sa.inspect(conn).get_table_names())
        full = [
            table.name
            for table in tables()
            if table.name in present
            and conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first()
        ]
    if full:
        raise CopyRefused(
            f"the target database is not empty ({', '.join(full)} hold rows); copy only into "
            "a new, empty database"
        )


@contextmanager
def _snapshot(db: Database) -> Iterator[Connection]:
    """A read transaction that sees one moment of the source throughout."""
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin() as transaction:
            yield conn
            transaction.rollback()


@contextmanager
def _writing(db: Database) -> Iterator[Connection]:
    """One write transaction on the target, committed only if the whole copy succeeds."""
    with db.engine.connect() as conn:
        if db.is_sqlite:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def _continue_sequences(conn: Connection) -> None:
    """Move each id sequence to the highest copied id, so new rows number on from there."""
    for table in tables():
        column = table.autoincrement_column
        if column is None:
            continue
        conn.execute(
            sa.select(
                sa.func.setval(
                    sa.func.pg_get_serial_sequence(table.name, column.name),
                    sa.func.coalesce(sa.func.max(column), 1),
                    sa.func.max(column).is_not(None),
                )
            ).select_from(table)
        )
