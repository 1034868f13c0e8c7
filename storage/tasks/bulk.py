"""Many jobs posted in one transaction (``volunteer-bot tasks import``), in batches.

Each batch writes the job rows of jobs into several languages, their tasks, and the tasks'
"posted" history lines; the whole import commits or rolls back together. On SQLite each is
one ``executemany`` on the ``sqlite3`` connection, numbered on from the highest number so
far (the transaction is the only writer). On PostgreSQL the numbers are taken from the id
sequences first and the rows sent with COPY, which costs the server far less than statements
do.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain import TaskStatus, UserRef
from bot.domain.tasks import Change
from storage.tasks import statements as q
from storage.tasks.tx import Tx
from storage.tasks.views import NewJob, NewTask, Posted, event_row

BATCH = 1000  # tasks per batch, about
# Called as batches are written: tasks posted so far, tasks in all.
Progress = Callable[[int, int], None]


def _creator(creator: UserRef) -> dict[str, Any]:
    return {"creator_platform": creator.platform, "creator_external_id": creator.external_id,
            "creator_name": creator.label}  # fmt: skip


def job_row(new: NewJob, creator: UserRef, now: datetime) -> dict[str, Any]:
    """The columns of one job row."""
    return {
        "kind": new.kind.value, "title": new.title, "description": new.description,
        "source_language": new.source_language, "source_url": new.source_url,
        "priority": new.priority.rank, "due_at": new.due_at, "created_at": now,
        **_creator(creator),
    }  # fmt: skip


def task_row(new: NewTask, job_id: int | None, creator: UserRef, now: datetime) -> dict[str, Any]:
    """The columns of one posted task."""
    return {
        "kind": new.kind.value, "title": new.title, "description": new.description,
        "language": new.language, "source_language": new.source_language,
        "priority": new.priority.rank, "due_at": new.due_at, "source_url": new.source_url,
        "status": TaskStatus.OPEN.value, "created_at": now, "claim_count": 0,
        "job_id": job_id, **_creator(creator),
    }  # fmt: skip


def _batches(jobs: Sequence[NewJob]) -> list[Sequence[NewJob]]:
    """Consecutive jobs of about BATCH tasks each."""
    batches: list[Sequence[NewJob]] = []
    start = size = 0
    for i, job in enumerate(jobs):
        size += len(job.languages)
        if size >= BATCH:
            batches.append(jobs[start : i + 1])
            start, size = i + 1, 0
    if start < len(jobs):
        batches.append(jobs[start:])
    return batches


def post_many(
    tx: Tx,
    creator: UserRef,
    jobs: Sequence[NewJob],
    now: datetime,
    progress: Progress | None = None,
) -> list[Posted]:
    """Post ``jobs`` in order, each grouped when it has several languages; what each made."""
    total = sum(len(job.languages) for job in jobs)
    posted: list[Posted] = []
    done = 0
    write = _copy if tx.conn.dialect.name == "postgresql" else _insert
    if tx.driver is not None:
        write = _executemany
    for batch in _batches(jobs):
        grouped = [job_row(job, creator, now) for job in batch if job.grouped]
        job_ids = iter(write(tx, q.J, grouped))
        owners = [next(job_ids) if job.grouped else None for job in batch]
        rows = [
            task_row(task, owner, creator, now)
            for job, owner in zip(batch, owners, strict=True)
            for task in job.tasks()
        ]
        ids = write(tx, q.T, rows)
        events = [event_row(i, Change.POSTED.value, now, creator) for i in ids]
        write(tx, q.E, events, numbered=False)
        taken = iter(ids)
        for job, owner in zip(batch, owners, strict=True):
            posted.append(Posted(owner, tuple(next(taken) for _ in job.languages)))
        done += len(ids)
        if progress is not None:
            progress(done, total)
    return posted


def _insert(
    tx: Tx, table: sa.Table, rows: list[dict[str, Any]], *, numbered: bool = True
) -> list[int]:
    """Multi-row INSERTs; the new rows' numbers in the order given (if ``numbered``)."""
    if not rows:
        return []
    if not numbered:
        tx.conn.execute(table.insert(), rows)
        return []
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [int(i) for i in tx.conn.execute(statement, rows).scalars()]


def _executemany(
    tx: Tx, table: sa.Table, rows: list[dict[str, Any]], *, numbered: bool = True
) -> list[int]:
    """One executemany on SQLite's own connection, numbered on from the highest number."""
    driver = tx.driver
    if not rows or driver is None:
        return []
    ids: list[int] = []
    if numbered:
        [(highest,)] = driver.execute(f"SELECT coalesce(max(id), 0) FROM {table.name}")
        ids = list(range(highest + 1, highest + 1 + len(rows)))
        rows = [{"id": i, **row} for i, row in zip(ids, rows, strict=True)]
    columns = list(rows[0])
    dialect = tx.conn.dialect
    convert = [(c, table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) for c in columns]
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    driver.executemany(sql, ([f(row[c]) if f else row[c] for c, f in convert] for row in rows))
    return ids


def _copy(
    tx: Tx, table: sa.Table, rows: list[dict[str, Any]], *, numbered: bool = True
) -> list[int]:
    """COPY on PostgreSQL, numbered (if ``numbered``) from the table's id sequence first."""
    if not rows:
        return []
    raw = tx.conn.connection.driver_connection
    assert raw is not None
    ids: list[int] = []
    with raw.cursor() as cur:
        if numbered:
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                (table.name, len(rows)),
            )
            ids = [int(r[0]) for r in cur.fetchall()]
            rows = [{"id": i, **row} for i, row in zip(ids, rows, strict=True)]
        columns = list(rows[0])
        names = ", ".join(columns)
        with cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    return ids
