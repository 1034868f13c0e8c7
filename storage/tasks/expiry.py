"""Claim expiry: idle claims nudged and released, due dates reminded of, each exactly once.

Safe to run from several processes at once: every step is a conditional update on one claim,
and a notice is written only by the transaction whose update took effect.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain import UserRef
from bot.domain.tasks import Change, Expiry, Notice, TaskNotice, due_cutoff, notice_key
from storage.outbox import Post, enqueue
from storage.prepared import Prepared
from storage.tasks import statements as q
from storage.tasks.tx import Tx, record
from storage.tasks.views import TaskView, task_view


@dataclass(slots=True)
class Swept:
    """What one pass of the sweep did, and which tasks it touched."""

    nudged: int = 0
    released: int = 0
    reminded: int = 0
    touched: set[int] = field(default_factory=set)


def _won(
    tx: Tx,
    find: Prepared,
    move: Prepared,
    params: dict[str, Any],
    seen: dict[str, str] | None = None,
) -> Iterator[tuple[TaskView, int]]:
    """Claimed tasks ``find`` finds that ``move`` moved, each with its claim's number.

    ``seen`` maps parameters of ``move`` to the columns of the task as found they stand for.
    """
    for row in tx.rows(find, params):
        seq = row["claim_count"]
        found = {name: row[column] for name, column in (seen or {}).items()}
        if tx.change(move, params | found | {"task_id": row["id"], "seq": seq}):
            yield task_view(row), seq


def tell_claimer(
    tx: Tx,
    task: TaskView,
    notice: TaskNotice,
    key: str,
    now: datetime,
    *,
    by: UserRef | None = None,
) -> bool:
    """Write a notice to a task's claimer where they claimed it; False if nobody can hear it.

    ``by`` is the person the notice names (``notice.by``), recorded by id with the row.
    """
    if task.claimer is None or not task.claim_place:
        return False
    post = Post(key, task.claim_place, notice.notice.value, notice.data(),
                recipient_id=task.claimer.external_id,
                recipient_platform=task.claimer.platform, subject=by)  # fmt: skip
    enqueue(tx.conn, post, now)
    return True


def sweep_once(tx: Tx, now: datetime, expiry: Expiry, batch: int) -> Swept:
    """One pass: release, then nudge, then remind, up to ``batch`` tasks each."""
    done = Swept()
    # Expired claims, and claims whose volunteer record vanished, go back to the queue.
    stale = {"cutoff": expiry.release_cutoff(now), "batch": batch}
    for task, seq in _won(tx, q.STALE, q.EXPIRE, stale):
        done.released += 1
        done.touched.add(task.id)
        record(tx, task.id, Change.EXPIRED, now, actor=None, subject=task.claimer)
        notice = TaskNotice(Notice.EXPIRED, task.id, task.title)
        tell_claimer(tx, task, notice, notice_key(notice, seq), now)
    # Idle claims get one "still on it?" per idle stretch.
    idle = {"cutoff": expiry.nudge_cutoff(now), "batch": batch, "now": now}
    for task, seq in _won(tx, q.IDLE, q.NUDGE, idle, {"seen_activity": "last_activity_at"}):
        since = task.last_activity_at
        assert since is not None
        notice = TaskNotice(Notice.IDLE, task.id, task.title, when=expiry.release_at(since))
        if tell_claimer(tx, task, notice, notice_key(notice, seq, idle_since=since), now):
            done.nudged += 1
            done.touched.add(task.id)
    # Due dates: one reminder a day ahead.
    due = {"due_limit": due_cutoff(now), "batch": batch, "now": now}
    for task, seq in _won(tx, q.DUE, q.REMIND, due):
        notice = TaskNotice(Notice.DUE, task.id, task.title, when=task.due_at)
        if tell_claimer(tx, task, notice, notice_key(notice, seq), now):
            done.reminded += 1
            done.touched.add(task.id)
    return done
