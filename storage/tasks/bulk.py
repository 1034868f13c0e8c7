"""Many jobs posted in one transaction (``volunteer-bot tasks import``), in batches.

Each batch is one multi-row INSERT of the job rows of jobs into several languages, one of
their tasks, and one of the tasks' "posted" history lines, each returning the new numbers in
the order given; the whole import commits or rolls back together.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.domain import TaskStatus, UserRef
from bot.domain.tasks import Change
from storage.tasks import statements as q
from storage.tasks.tx import Tx
from storage.tasks.views import NewJob, NewTask, Posted, event_row

BATCH = 1000  # tasks per batch, about
# Called as batches are written: tasks posted so far, tasks in all.
Progress = Callable[[int, int], None]

POST_TASKS = q.T.insert().returning(q.T.c.id, sort_by_parameter_order=True)
POST_JOBS = q.J.insert().returning(q.J.c.id, sort_by_parameter_order=True)


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
    for batch in _batches(jobs):
        grouped = [job_row(job, creator, now) for job in batch if job.grouped]
        job_ids = iter(tx.conn.execute(POST_JOBS, grouped).scalars().all() if grouped else [])
        owners = [int(next(job_ids)) if job.grouped else None for job in batch]
        rows = [
            task_row(task, owner, creator, now)
            for job, owner in zip(batch, owners, strict=True)
            for task in job.tasks()
        ]
        ids = [int(i) for i in tx.conn.execute(POST_TASKS, rows).scalars()]
        tx.conn.execute(q.E.insert(), [event_row(i, Change.POSTED.value, now, creator)
                                       for i in ids])  # fmt: skip
        taken = iter(ids)
        for job, owner in zip(batch, owners, strict=True):
            posted.append(Posted(owner, tuple(next(taken) for _ in job.languages)))
        done += len(ids)
        if progress is not None:
            progress(done, total)
    return posted
