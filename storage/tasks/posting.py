"""Posting: tasks, and jobs fanned out into a task per language, with their history lines."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain import TaskStatus, UserRef
from bot.domain.tasks import Change
from storage.tasks import statements as q
from storage.tasks.tx import Tx
from storage.tasks.views import NewJob, NewTask, Posted, event_row


def _creator(creator: UserRef) -> dict[str, Any]:
    return {"creator_platform": creator.platform, "creator_external_id": creator.external_id,
            "creator_name": creator.label}  # fmt: skip


def post_tasks(
    tx: Tx, creator: UserRef, tasks: Sequence[NewTask], now: datetime, *, job_id: int | None = None
) -> list[int]:
    """Add tasks to the queue (of job ``job_id``, if given); their numbers, in order."""
    ids: list[int] = []
    for new in tasks:
        ids.append(int(tx.scalar(q.POST, {
            "kind": new.kind.value, "title": new.title, "description": new.description,
            "language": new.language, "source_language": new.source_language,
            "priority": new.priority.rank, "due_at": new.due_at,
            "status": TaskStatus.OPEN.value, "created_at": now, "claim_count": 0,
            "source_url": new.source_url, "job_id": job_id, **_creator(creator),
        })))  # fmt: skip
    tx.many(q.EVENT, [event_row(i, Change.POSTED.value, now, creator) for i in ids])
    return ids


def post_job(tx: Tx, creator: UserRef, new: NewJob, now: datetime) -> Posted:
    """Add a job's tasks, grouped under a new job row when there are several languages."""
    job_id = None
    if new.grouped:
        job_id = int(tx.scalar(q.POST_JOB, {
            "kind": new.kind.value, "title": new.title, "description": new.description,
            "source_language": new.source_language, "source_url": new.source_url,
            "priority": new.priority.rank, "due_at": new.due_at, "created_at": now,
            **_creator(creator),
        }))  # fmt: skip
    return Posted(job_id, tuple(post_tasks(tx, creator, new.tasks(), now, job_id=job_id)))
