"""The task queue: the only code that reads or writes tasks and their history.

Each change is one conditional statement, persisted with the history line and any notice it
causes in one transaction; the rules deciding who may do what are :mod:`bot.domain.tasks`.
"""

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.domain import TaskKind, TaskStatus, UserRef
from bot.domain.tasks import (
    Change,
    Expiry,
    Notice,
    Outcome,
    TaskNotice,
    check_assign,
    check_cancel,
    check_finish,
    check_unclaim,
    due_cutoff,
    notice_key,
)
from storage.acting import unguarded
from storage.db import Database
from storage.tasks import statements as q
from storage.tasks.batcher import Batcher
from storage.tasks.claims import ClaimRequest, claim_batch
from storage.tasks.expiry import Swept, sweep_once, tell_claimer
from storage.tasks.personal import erase, export
from storage.tasks.tx import Tx, as_seen, claimer, open_count, record, require, until_settled, view
from storage.tasks.views import (
    EventView,
    NewTask,
    Result,
    SweepReport,
    TaskView,
    event_view,
    held_view,
    task_view,
)
from storage.volunteers import Profile, profile_of

log = logging.getLogger(__name__)
R = TypeVar("R")


class TaskRepo:
    """Posting, listing, claiming, releasing and finishing tasks.

    ``fast`` sends the statements on SQLite straight to ``sqlite3`` (see
    :mod:`storage.prepared`); both ways give the same results.
    """

    def __init__(self, db: Database, *, fast: bool = True) -> None:
        self.db = db
        self.fast = fast
        self._claims: Batcher[ClaimRequest, Result] = Batcher(
            lambda requests: self._write(functools.partial(claim_batch, requests=requests)),
            name="task-claims",
        )
        # SQLite has one writer: claims arriving together share its transaction. PostgreSQL
        # runs transactions side by side, and a shared one would make claimers wait on each
        # other's row locks, so there each claim is its own.
        self._batched = db.is_sqlite

    async def _claim(self, request: ClaimRequest) -> Result:
        if self._batched:
            return await self._claims.submit(request)
        with unguarded():  # claim_batch checks its claimer itself: once is enough
            [result] = await self._write(functools.partial(claim_batch, requests=[request]))
        return result

    async def _read(self, fn: Callable[[Tx], R]) -> R:
        return await self.db.read_connection(lambda conn: fn(Tx.on(conn, fast=self.fast)))

    async def _write(self, fn: Callable[[Tx], R]) -> R:
        return await self.db.write_connection(lambda conn: fn(Tx.on(conn, fast=self.fast)))

    # --- reading ----------------------------------------------------------------------

    async def get(self, task_id: int) -> TaskView | None:
        """One task, or None."""
        return await self._read(lambda tx: view(tx, task_id))

    async def with_history(
        self, task_id: int, *, limit: int = 20
    ) -> tuple[TaskView, list[EventView], int] | None:
        """One task with its latest ``limit`` events and their total, read together; or None."""

        def tx(t: Tx) -> tuple[TaskView, list[EventView], int] | None:
            task = view(t, task_id)
            if task is None:
                return None
            total = int(t.scalar(q.EVENT_COUNT, {"task_id": task_id}))
            rows = t.rows(q.LATEST_EVENTS, {"task_id": task_id, "n": limit})
            return task, [event_view(r) for r in reversed(rows)], total

        return await self._read(tx)

    async def page(
        self,
        *,
        status: TaskStatus | None,
        kind: TaskKind | None = None,
        language: str | None = None,
        offset: int = 0,
        limit: int = 10,
    ) -> list[TaskView]:
        """A page of tasks. Open and claimed ones most urgent first; others newest first.

        ``status=None`` means every status.
        """
        statement = q.page(status, kind is not None, language is not None)
        params = {"kind": kind.value if kind else None, "language": language,
                  "offset": offset, "limit": limit}  # fmt: skip
        return await self._read(lambda t: [task_view(r) for r in t.rows(statement, params)])

    async def claims_of(self, user: UserRef) -> list[TaskView] | None:
        """The tasks ``user`` holds, most urgent first; None if they are not registered."""
        found = await self.profile_with_claims(user)
        return None if found is None else found[1]

    async def profile_with_claims(self, user: UserRef) -> tuple[Profile, list[TaskView]] | None:
        """A volunteer's profile and the tasks they hold (most urgent first), read together.

        None if ``user`` is not registered.
        """

        def tx(t: Tx) -> tuple[Profile, list[TaskView]] | None:
            found = profile_of(t.conn, user)
            if found is None:
                return None
            rows = t.rows(q.HELD_BY, {"vid": found.id})
            return found, [held_view(row, found.user) for row in rows]

        return await self._read(tx)

    # --- changing ---------------------------------------------------------------------

    async def post(self, creator: UserRef, new: NewTask, *, now: datetime) -> TaskView:
        """Add a task to the queue."""

        def tx(t: Tx) -> TaskView:
            task_id = int(t.scalar(q.POST, {
                "kind": new.kind.value, "title": new.title, "description": new.description,
                "language": new.language, "source_language": new.source_language,
                "priority": new.priority.rank, "due_at": new.due_at,
                "status": TaskStatus.OPEN.value, "created_at": now,
                "creator_platform": creator.platform, "creator_external_id": creator.external_id,
                "creator_name": creator.label, "claim_count": 0,
            }))  # fmt: skip
            record(t, task_id, Change.POSTED, now, actor=creator)
            return require(t, task_id)

        return await self._write(tx)

    async def claim(
        self, task_id: int, user: UserRef, *, place: str, now: datetime, max_open: int
    ) -> Result:
        """Take one task. Only one of any number of concurrent callers gets it."""
        return await self._claim(ClaimRequest(user, place, now, max_open, task_id))

    async def claim_next(
        self,
        user: UserRef,
        *,
        place: str,
        now: datetime,
        max_open: int,
        kind: TaskKind | None = None,
        language: str | None = None,
    ) -> Result:
        """Claim the most urgent open task the caller can do, in the order of the list.

        A task fits when its kind's role is among the caller's roles, its target language
        (if any) among their languages, and its source language (if any) too.
        """
        return await self._claim(
            ClaimRequest(user, place, now, max_open, kind=kind, language=language)
        )

    async def unclaim(
        self, task_id: int, user: UserRef, *, now: datetime, override: bool = False
    ) -> Result:
        """Give a task back to the queue; ``override`` lets a coordinator release anyone's."""

        def tx(t: Tx) -> Result:
            me = claimer(t, user)
            mine = me.id if me else None

            def attempt(task: TaskView) -> Result | None:
                outcome = check_unclaim(task, mine, override=override)
                if outcome is not Outcome.OK:
                    return Result(outcome, task)
                if not t.change(q.RELEASE, as_seen(task)):
                    return None
                by_holder = mine is not None and task.claimed_by == mine
                record(t, task_id, Change.RELEASED, now, actor=user,
                       subject=None if by_holder else task.claimer)  # fmt: skip
                count = open_count(t, mine) if mine is not None else 0
                return Result(Outcome.OK, require(t, task_id), count)

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def finish(
        self, task_id: int, user: UserRef, *, note: str | None, now: datetime
    ) -> Result:
        """Mark a task done; only its claimer can."""

        def tx(t: Tx) -> Result:
            me = claimer(t, user)
            mine = me.id if me else None

            def attempt(task: TaskView) -> Result | None:
                outcome = check_finish(task, mine)
                if outcome is not Outcome.OK or mine is None:
                    return Result(outcome, task)
                if not t.change(q.FINISH, as_seen(task) | {"now": now}):
                    return None
                record(t, task_id, Change.DONE, now, actor=user, note=note)
                return Result(Outcome.OK, require(t, task_id), open_count(t, mine))

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def assign(
        self,
        task_id: int,
        assignee: UserRef,
        *,
        by: UserRef,
        place: str,
        now: datetime,
        max_open: int,
    ) -> Result:
        """Give an open or claimed task to a registered volunteer (a coordinator's override)."""

        def tx(t: Tx) -> Result:
            who = claimer(t, assignee, lock=True)
            if who is None:
                return Result(Outcome.NOT_REGISTERED)
            name = who.user.label

            def attempt(task: TaskView) -> Result | None:
                count = open_count(t, who.id)
                outcome = check_assign(task, who.id, count, max_open)
                if outcome is not Outcome.OK:
                    return Result(outcome, task, count, detail=name)
                changed = t.change(q.ASSIGN, as_seen(task) | {
                    "vid": who.id, "max_open": max_open, "now": now,
                    "due_limit": due_cutoff(now), "place": place[:255],
                })  # fmt: skip
                if not changed:
                    return None
                record(t, task_id, Change.ASSIGNED, now, actor=by, subject=who.user)
                given = require(t, task_id)
                seq = int(t.scalar(q.CLAIM_SEQ, {"task_id": task_id}))
                notice = TaskNotice(Notice.ASSIGNED, task_id, given.title, by=by.label)
                tell_claimer(t, given, notice, notice_key(notice, seq), now, by=by)
                return Result(Outcome.OK, given, count + 1)

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def cancel(self, task_id: int, *, by: UserRef, now: datetime) -> Result:
        """Take a task off the queue for good; its claimer, if any, is told."""

        def tx(t: Tx) -> Result:
            def attempt(task: TaskView) -> Result | None:
                outcome = check_cancel(task)
                if outcome is not Outcome.OK:
                    return Result(outcome, task)
                if not t.change(q.CANCEL, as_seen(task) | {"now": now}):
                    return None
                record(t, task_id, Change.CANCELLED, now, actor=by)
                notice = TaskNotice(Notice.CANCELLED, task_id, task.title, by=by.label)
                tell_claimer(t, task, notice, notice_key(notice, 0), now, by=by)
                return Result(Outcome.OK, require(t, task_id))

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def touch(self, task_id: int, user: UserRef, now: datetime) -> bool:
        """Record activity by the claimer on their task; returns whether they hold it."""

        def tx(t: Tx) -> bool:
            me = claimer(t, user)
            params = {"task_id": task_id, "vid": me.id if me else None, "now": now}
            return me is not None and bool(t.change(q.TOUCH, params))

        return await self._write(tx)

    # --- expiry -----------------------------------------------------------------------

    async def sweep(self, now: datetime, *, ttl: timedelta, batch: int = 200) -> SweepReport:
        """Nudge idle claims, release expired ones and remind of due dates, each exactly once.

        Safe to run from several processes at once: every step is a conditional update, and
        a notice is enqueued only by the transaction whose update took effect.
        """
        expiry = Expiry(ttl)
        total = Swept()
        while True:
            step = await self._write(lambda t: sweep_once(t, now, expiry, batch))
            total.nudged += step.nudged
            total.released += step.released
            total.reminded += step.reminded
            if not step.touched:
                break
        if total.nudged or total.released or total.reminded:
            log.info("task sweep: %d nudged, %d released, %d reminded",
                     total.nudged, total.released, total.reminded)  # fmt: skip
        return SweepReport(total.nudged, total.released, total.reminded)

    # --- personal data ----------------------------------------------------------------

    async def export(self, user: UserRef) -> dict[str, Any]:
        """Claims, tasks created and history naming ``user``, JSON-ready."""
        return await self._read(lambda t: export(t, user))

    async def erase(self, user: UserRef, now: datetime) -> int:
        """Release ``user``'s claims and replace them with "a former volunteer" everywhere.

        Must run before the volunteer record is deleted. Returns how many rows changed.
        """
        return await self._write(lambda t: erase(t, user, now))
