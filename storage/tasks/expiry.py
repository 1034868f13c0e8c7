"""Claim expiry: idle claims nudged and released, due dates reminded of, each exactly once.

Safe to run from several processes at once: every step is a conditional update on one claim,
and a notice is written only by the transaction whose update took effect.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bot.domain import Markup
from bot.domain.tasks import Change, Expiry, due_cutoff
from storage.outbox import enqueue
from storage.prepared import Prepared
from storage.tasks import statements as q
from storage.tasks.tx import Tx, record
from storage.tasks.views import TaskView, task_view


class Notices(Protocol):
    """The words of the notices the queue sends; the cog owns them."""

    def idle(self, task: TaskView, release_at: datetime) -> Markup:
        """A claim has been idle for most of its time: still on it?"""
        ...

    def expired(self, task: TaskView) -> Markup:
        """A claim ran out and the task went back to the queue."""
        ...

    def due(self, task: TaskView) -> Markup:
        """A claimed task is due within a day."""
        ...

    def assigned(self, task: TaskView, by: Any) -> Markup:
        """A coordinator gave someone a task."""
        ...

    def cancelled(self, task: TaskView, by: Any) -> Markup:
        """A coordinator cancelled a task someone held."""
        ...


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


def sweep_once(tx: Tx, now: datetime, expiry: Expiry, batch: int, notices: Notices) -> Swept:
    """One pass: release, then nudge, then remind, up to ``batch`` tasks each."""
    done = Swept()
    # Expired claims, and claims whose volunteer record vanished, go back to the queue.
    stale = {"cutoff": expiry.release_cutoff(now), "batch": batch}
    for task, seq in _won(tx, q.STALE, q.EXPIRE, stale):
        done.released += 1
        done.touched.add(task.id)
        record(tx, task.id, Change.EXPIRED, now, actor=None, subject=task.claimer)
        if task.claimer is not None and task.claim_place:
            enqueue(tx.conn, key=f"task:{task.id}:claim:{seq}:expired", target=task.claim_place,
                    body=notices.expired(task), now=now,
                    recipient_id=task.claimer.external_id)  # fmt: skip
    # Idle claims get one "still on it?" per idle stretch.
    idle = {"cutoff": expiry.nudge_cutoff(now), "batch": batch, "now": now}
    for task, seq in _won(tx, q.IDLE, q.NUDGE, idle, {"seen_activity": "last_activity_at"}):
        if task.claimer is None or not task.claim_place:
            continue
        done.nudged += 1
        done.touched.add(task.id)
        assert task.last_activity_at is not None
        stamp = int(task.last_activity_at.timestamp())
        enqueue(tx.conn, key=f"task:{task.id}:claim:{seq}:idle:{stamp}", target=task.claim_place,
                body=notices.idle(task, expiry.release_at(task.last_activity_at)), now=now,
                recipient_id=task.claimer.external_id)  # fmt: skip
    # Due dates: one reminder a day ahead.
    due = {"due_limit": due_cutoff(now), "batch": batch, "now": now}
    for task, seq in _won(tx, q.DUE, q.REMIND, due):
        if task.claimer is None or not task.claim_place:
            continue
        done.reminded += 1
        done.touched.add(task.id)
        enqueue(tx.conn, key=f"task:{task.id}:claim:{seq}:due", target=task.claim_place,
                body=notices.due(task), now=now,
                recipient_id=task.claimer.external_id)  # fmt: skip
    return done
