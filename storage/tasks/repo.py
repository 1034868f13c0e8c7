"""The task queue: the only code that reads or writes tasks and their history.

Each change is one conditional statement, persisted with the history line and any notice it
causes in one transaction; the rules deciding who may do what are :mod:`bot.domain.tasks`.
"""

import functools
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bot.domain import TaskKind, TaskStatus, UserRef
from bot.domain.tasks import (
    VERDICT_CHANGE,
    Change,
    Expiry,
    Notice,
    Outcome,
    TaskNotice,
    Verdict,
    check_assign,
    check_cancel,
    check_extend,
    check_finish,
    check_review,
    check_unclaim,
    due_cutoff,
    finishing,
    notice_key,
    review_search,
)
from storage.db import Database
from storage.tasks import statements as q
from storage.tasks.batcher import Batcher
from storage.tasks.bulk import Progress, post_many
from storage.tasks.claims import ClaimRequest, claim_batch
from storage.tasks.expiry import Swept, sweep_once, tell_claimer
from storage.tasks.personal import erase, export
from storage.tasks.posting import post_job, post_tasks
from storage.tasks.report import QueueReport, read_report
from storage.tasks.tx import (
    RETRIES,
    Tx,
    as_seen,
    claimer,
    open_count,
    record,
    require,
    until_settled,
    view,
)
from storage.tasks.views import (
    EventView,
    JobSummary,
    JobView,
    NewJob,
    NewTask,
    Posted,
    Result,
    Suggestion,
    SweepReport,
    TaskView,
    event_view,
    held_view,
    job_view,
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

    async def report(self, *, idle_since: datetime, limit: int = 10) -> QueueReport:
        """The coordinators' report; claims idle since ``idle_since`` count as running out."""
        return await self._read(lambda t: read_report(t, idle_since=idle_since, limit=limit))

    # --- changing ---------------------------------------------------------------------

    async def post(self, creator: UserRef, new: NewTask, *, now: datetime) -> TaskView:
        """Add a task to the queue."""

        def tx(t: Tx) -> TaskView:
            [task_id] = post_tasks(t, creator, [new], now)
            return require(t, task_id)

        return await self._write(tx)

    async def post_many(
        self,
        creator: UserRef,
        jobs: Sequence[NewJob],
        *,
        now: datetime,
        progress: Progress | None = None,
    ) -> list[Posted]:
        """Post many jobs in one transaction, in batches; what each made, in order."""
        return await self._write(lambda t: post_many(t, creator, jobs, now, progress))

    async def post_jobs(
        self, creator: UserRef, jobs: Sequence[NewJob], *, now: datetime
    ) -> list[Posted]:
        """Post every job (a task per language, grouped when several) in one transaction."""
        return await self._write(lambda t: [post_job(t, creator, job, now) for job in jobs])

    async def post_job(
        self, creator: UserRef, new: NewJob, *, now: datetime
    ) -> tuple[JobView | None, list[TaskView]]:
        """Post one job: a task per language, grouped as a job when there are several."""

        def tx(t: Tx) -> tuple[JobView | None, list[TaskView]]:
            posted = post_job(t, creator, new, now)
            job = None
            if posted.job_id is not None:
                row = t.first(q.JOB, {"job_id": posted.job_id})
                assert row is not None
                job = job_view(row)
            return job, [require(t, task_id) for task_id in posted.task_ids]

        return await self._write(tx)

    async def job(self, job_id: int) -> tuple[JobView, list[TaskView]] | None:
        """One job with its tasks (one per language, as posted), read together; or None."""

        def tx(t: Tx) -> tuple[JobView, list[TaskView]] | None:
            row = t.first(q.JOB, {"job_id": job_id})
            if row is None:
                return None
            return job_view(row), [task_view(r) for r in t.rows(q.JOB_TASKS, {"job_id": job_id})]

        return await self._read(tx)

    async def jobs(self, *, offset: int = 0, limit: int = 10) -> list[JobSummary]:
        """A page of jobs, newest first, each with its tasks counted by status."""

        def tx(t: Tx) -> list[JobSummary]:
            jobs = [job_view(r) for r in t.rows(q.JOB_PAGE, {"offset": offset, "limit": limit})]
            if not jobs:
                return []
            counts: dict[int, dict[TaskStatus, int]] = {j.id: {} for j in jobs}
            span = {"lo": jobs[-1].id, "hi": jobs[0].id}
            for r in t.rows(q.JOB_COUNTS, span):
                if r["job_id"] in counts:
                    counts[r["job_id"]][TaskStatus(r["status"])] = int(r["n"])
            return [JobSummary(j, counts[j.id]) for j in jobs]

        return await self._read(tx)

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
        self,
        task_id: int,
        user: UserRef,
        *,
        note: str | None,
        now: datetime,
        link: str | None = None,
        review_kinds: Collection[TaskKind] = (),
    ) -> Result:
        """Mark a task done with its deliverable; only its claimer can.

        A task of one of ``review_kinds`` goes to review instead, its claimer kept as the
        one who submitted it.
        """

        def tx(t: Tx) -> Result:
            me = claimer(t, user)
            mine = me.id if me else None

            def attempt(task: TaskView) -> Result | None:
                outcome = check_finish(task, mine)
                if outcome is not Outcome.OK or mine is None:
                    return Result(outcome, task)
                change = finishing(task.kind, review_kinds)
                statement = q.SUBMIT if change is Change.SUBMITTED else q.FINISH
                result = {"now": now, "result_link": link, "result_note": note}
                if not t.change(statement, as_seen(task) | result):
                    return None
                record(t, task_id, change, now, actor=user, note=note)
                return Result(Outcome.OK, require(t, task_id), open_count(t, mine))

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def review(
        self,
        task_id: int,
        user: UserRef,
        verdict: Verdict,
        *,
        note: str | None,
        now: datetime,
        coordinator: bool = False,
    ) -> Result:
        """Give a verdict on a task in review (see :func:`~bot.domain.tasks.check_review`).

        Approval finishes it; changes send it back to its translator, claimed again, with
        the note, which they are told of. History names the reviewer and the submitter.
        """

        def tx(t: Tx) -> Result:
            me = claimer(t, user)
            mine = me.id if me else None
            roles = me.roles if me else frozenset()
            languages = me.languages if me else ()

            def attempt(task: TaskView) -> Result | None:
                outcome = check_review(task, mine, roles, languages, coordinator=coordinator)
                if outcome is not Outcome.OK:
                    return Result(outcome, task, roles=tuple(sorted(roles)), languages=languages)
                params = as_seen(task) | {"seen_reviewer": task.reviewer_id, "vid": mine,
                                          "now": now, "review_note": note}  # fmt: skip
                if verdict is Verdict.APPROVE:
                    statement = q.APPROVE
                else:
                    statement = q.SEND_BACK if task.claimed_by is not None else q.REOPEN
                if not t.change(statement, params):
                    return None
                change = VERDICT_CHANGE[verdict]
                record(t, task_id, change, now, actor=user, subject=task.claimer, note=note)
                after = require(t, task_id)
                what = Notice.APPROVED if verdict is Verdict.APPROVE else Notice.CHANGES
                notice = TaskNotice(what, task_id, task.title, by=user.label, note=note)
                seq = int(t.scalar(q.CLAIM_SEQ, {"task_id": task_id}))
                tell_claimer(t, task, notice, notice_key(notice, seq), now)
                return Result(Outcome.OK, after)

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def claim_review(
        self, user: UserRef, *, now: datetime, max_open: int, language: str | None = None
    ) -> Result:
        """Take the review of the most urgent task in review the caller may review.

        Not their own work; a translation only into one of their languages (``language``
        narrows it to one). Holding ``max_open`` reviews already is the limit.
        """

        def tx(t: Tx) -> Result:
            me = claimer(t, user, lock=True)
            if me is None:
                return Result(Outcome.NOT_REGISTERED)
            roles, languages = tuple(sorted(me.roles)), me.languages
            search = review_search(me.roles, me.languages)
            if isinstance(search, Outcome):
                return Result(search, roles=roles, languages=languages)
            kinds, targets = search
            if language is not None:
                if language not in languages:
                    return Result(Outcome.NOT_YOUR_LANGUAGE, roles=roles, languages=languages)
                targets = (language,)
            held = t.rows(q.REVIEWS_HELD, {"vid": me.id})
            if len(held) >= max_open:
                return Result(Outcome.LIMIT, open_claims=len(held))
            statement = q.next_review(len(kinds), len(targets))
            params: dict[str, Any] = {f"k{i}": k.value for i, k in enumerate(kinds)}
            params |= {f"t{i}": code for i, code in enumerate(targets)} | {"vid": me.id}
            for _ in range(RETRIES):
                found = t.scalar(statement, params)
                if found is None:
                    return Result(Outcome.EMPTY, roles=roles, languages=languages)
                task = require(t, int(found))
                taken = as_seen(task) | {"seen_reviewer": None, "vid": me.id}
                if t.change(q.TAKE_REVIEW, taken):
                    record(t, task.id, Change.REVIEWING, now, actor=user, subject=task.claimer)
                    return Result(Outcome.OK, require(t, task.id), len(held) + 1)
            raise RuntimeError("task next --review kept losing races")  # pragma: no cover

        return await self._write(tx)

    async def extend(self, task_id: int, user: UserRef, *, now: datetime) -> Result:
        """Restart the time to live of a claim; only its holder can."""

        def tx(t: Tx) -> Result:
            me = claimer(t, user)
            mine = me.id if me else None

            def attempt(task: TaskView) -> Result | None:
                outcome = check_extend(task, mine)
                if outcome is not Outcome.OK or mine is None:
                    return Result(outcome, task)
                if not t.change(q.EXTEND, {"task_id": task_id, "vid": mine, "now": now}):
                    return None
                record(t, task_id, Change.EXTENDED, now, actor=user)
                return Result(Outcome.OK, require(t, task_id))

            return until_settled(t, task_id, attempt)

        return await self._write(tx)

    async def suggest(self, typed: str, limit: int = 25) -> list[Suggestion]:
        """Open tasks whose number or title matches what was typed, most urgent first.

        Labelled with their title and target language, for Discord's autocomplete.

        Digits match numbers starting with them first, then titles containing them; other
        text matches titles containing it, ignoring case. Nothing typed lists the most urgent.
        """
        text = typed.strip().lstrip("#").lower()[:100]
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"

        def tx(t: Tx) -> list[Suggestion]:
            rows: list[dict[str, Any]] = []
            if text.isdigit():
                rows = t.rows(q.SUGGEST_PREFIX, {"like": text + "%", "limit": limit})
            if len(rows) < limit:
                seen = {r["id"] for r in rows}
                titled = t.rows(q.SUGGEST, {"number": -1, "like": like, "limit": limit})
                rows += [r for r in titled if r["id"] not in seen]
            return [
                Suggestion(r["id"], f"{r['title']} ({r['language']})" if r["language"]
                           else r["title"])
                for r in rows[:limit]
            ]  # fmt: skip

        return await self._read(tx)

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
                tell_claimer(t, given, notice, notice_key(notice, seq), now)
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
                tell_claimer(t, task, notice, notice_key(notice, 0), now)
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
