"""One transaction of the task queue, and the steps its changes share."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from bot.domain import UserRef
from bot.domain.tasks import Change, Outcome, is_closed
from storage.prepared import Driver, Prepared, Row, sqlite_driver
from storage.tasks import statements as q
from storage.tasks.views import Claimer, Result, TaskView, claimer_from, event_row, task_view

# A conditional update that lost to a concurrent writer (possible on PostgreSQL) is tried
# again on the task as it is then, this many times in all.
RETRIES = 5


@dataclass(frozen=True, slots=True)
class Tx:
    """A transaction's connection, and (on SQLite's fast path) the sqlite3 one under it."""

    conn: Connection
    driver: Driver

    @classmethod
    def on(cls, conn: Connection, *, fast: bool) -> "Tx":
        """The transaction on ``conn``; ``fast`` takes SQLite's fast path where there is one."""
        return cls(conn, sqlite_driver(conn) if fast else None)

    def rows(self, statement: Prepared, params: dict[str, Any]) -> list[Row]:
        """Every row ``statement`` returns."""
        return statement.rows(self.conn, params, driver=self.driver)

    def first(self, statement: Prepared, params: dict[str, Any]) -> Row | None:
        """The first row ``statement`` returns, or None."""
        return statement.first(self.conn, params, driver=self.driver)

    def scalar(self, statement: Prepared, params: dict[str, Any]) -> Any:
        """The first value ``statement`` returns, or None."""
        return statement.scalar(self.conn, params, driver=self.driver)

    def change(self, statement: Prepared, params: dict[str, Any]) -> int:
        """Run an update; how many rows it changed."""
        return statement.rowcount(self.conn, params, driver=self.driver)

    def many(self, statement: Prepared, rows: Sequence[dict[str, Any]]) -> None:
        """Run ``statement`` once per parameter set."""
        statement.many(self.conn, rows, driver=self.driver)


def view(tx: Tx, task_id: int) -> TaskView | None:
    """One task as it is now, or None."""
    row = tx.first(q.TASK, {"task_id": task_id})
    return task_view(row) if row is not None else None


def require(tx: Tx, task_id: int) -> TaskView:
    """A task known to exist."""
    task = view(tx, task_id)
    assert task is not None
    return task


def claimers(tx: Tx, users: Iterable[UserRef], *, lock: bool) -> dict[tuple[str, str], Claimer]:
    """The registered volunteers among ``users``, by identity; ``lock`` serialises claims.

    One pair of statements per platform, platforms in a fixed order and rows locked in id
    order: two transactions locking volunteers in common take them in the same order.
    """
    wanted: dict[str, list[str]] = {}
    for platform, ext in sorted({(u.platform, u.external_id) for u in users}):
        wanted.setdefault(platform, []).append(ext)
    found: dict[tuple[str, str], Claimer] = {}
    for platform, exts in wanted.items():
        statements = q.claimers(len(exts))
        params = {"platform": platform} | {f"e{i}": ext for i, ext in enumerate(exts)}
        if lock:
            tx.rows(statements.lock, params)
        rows: dict[str, list[Row]] = {}
        for row in tx.rows(statements.read, params):
            rows.setdefault(row["external_id"], []).append(row)
        for ext, mine in rows.items():
            found[(platform, ext)] = claimer_from(mine)
    return found


def claimer(tx: Tx, user: UserRef, *, lock: bool = False) -> Claimer | None:
    """A registered volunteer with their roles; ``lock`` serialises claims for them."""
    return claimers(tx, [user], lock=lock).get((user.platform, user.external_id))


def open_count(tx: Tx, volunteer_id: int) -> int:
    """How many tasks a volunteer holds now."""
    return int(tx.scalar(q.OPEN_COUNT, {"vid": volunteer_id}))


def record(
    tx: Tx,
    task_id: int,
    change: Change,
    now: datetime,
    *,
    actor: UserRef | None,
    subject: UserRef | None = None,
    note: str | None = None,
) -> None:
    """Write one line of a task's history."""
    tx.many(q.EVENT, [event_row(task_id, change.value, now, actor, subject, note)])


def as_seen(task: TaskView) -> dict[str, Any]:
    """The parameters that make a change conditional on the task being as ``task`` shows it."""
    return {"task_id": task.id, "seen_status": task.status.value, "seen_holder": task.claimed_by}


def until_settled(tx: Tx, task_id: int, attempt: Callable[[TaskView], Result | None]) -> Result:
    """Run ``attempt`` on the task as it is now until it settles.

    Unknown and closed tasks are answered here. ``attempt`` returns None when its conditional
    update lost a race with another writer; the task is read again.
    """
    for _ in range(RETRIES):
        task = view(tx, task_id)
        if task is None:
            return Result(Outcome.NOT_FOUND)
        if is_closed(task.status):
            return Result(Outcome.CLOSED, task)
        result = attempt(task)
        if result is not None:
            return result
    raise RuntimeError(f"task {task_id}: a change kept losing races")  # pragma: no cover
