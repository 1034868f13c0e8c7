"""Many tasks posted in one transaction (``volunteer-bot tasks import``), in batches.

Each batch is one multi-row INSERT of tasks returning their numbers, then one of their
"posted" history lines; the whole import commits or rolls back together.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot.domain import TaskStatus, UserRef
from bot.domain.tasks import Change
from storage.tasks import statements as q
from storage.tasks.tx import Tx
from storage.tasks.views import NewTask, event_row

BATCH = 1000
# Called as batches are written: tasks posted so far, tasks in all.
Progress = Callable[[int, int], None]

POST_MANY = q.T.insert().returning(q.T.c.id, sort_by_parameter_order=True)


def task_row(new: NewTask, creator: UserRef, now: datetime) -> dict[str, Any]:
    """The columns of one posted task."""
    return {
        "kind": new.kind.value, "title": new.title, "description": new.description,
        "language": new.language, "source_language": new.source_language,
        "priority": new.priority.rank, "due_at": new.due_at,
        "status": TaskStatus.OPEN.value, "created_at": now,
        "creator_platform": creator.platform, "creator_external_id": creator.external_id,
        "creator_name": creator.label, "claim_count": 0,
    }  # fmt: skip


def post_many(
    tx: Tx,
    creator: UserRef,
    tasks: Sequence[NewTask],
    now: datetime,
    progress: Progress | None = None,
) -> list[int]:
    """Post ``tasks`` in order; returns their numbers, in the same order."""
    ids: list[int] = []
    for start in range(0, len(tasks), BATCH):
        rows = [task_row(new, creator, now) for new in tasks[start : start + BATCH]]
        found = [int(i) for i in tx.conn.execute(POST_MANY, rows).scalars()]
        tx.conn.execute(q.E.insert(), [event_row(i, Change.POSTED.value, now, creator)
                                       for i in found])  # fmt: skip
        ids += found
        if progress is not None:
            progress(len(ids), len(tasks))
    return ids
