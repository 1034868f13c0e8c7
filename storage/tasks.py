"""The task queue: the only code that reads or writes tasks and their history.

Every claim is one conditional ``UPDATE … WHERE status = 'open' … RETURNING``: whoever's
statement changes the row has the task, nobody reads first and writes after. The same
statement checks the claimer's open-claim limit, so no interleaving lets anyone exceed it.
Every change writes a :class:`~storage.models.TaskEvent` row, and notices it causes go into
the outbox inside the same transaction.
"""

import asyncio
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlmodel import Session

from bot.domain import KIND_ROLE, Markup, Priority, TaskKind, TaskStatus, UserRef
from storage.db import Database
from storage.models import Task, TaskEvent, Volunteer, VolunteerRole
from storage.outbox import enqueue
from storage.types import UTCDateTime
from storage.volunteers import Profile, profile_of

log = logging.getLogger(__name__)

T = cast(sa.Table, Task.__table__)  # type: ignore[attr-defined]
E = cast(sa.Table, TaskEvent.__table__)  # type: ignore[attr-defined]
V = cast(sa.Table, Volunteer.__table__)  # type: ignore[attr-defined]
R = cast(sa.Table, VolunteerRole.__table__)  # type: ignore[attr-defined]

OPEN, CLAIMED, DONE, CANCELLED = (s.value for s in TaskStatus)
# The queue order, spelled exactly like the indexes so the database walks them in order.
QUEUE_ORDER = (T.c.priority.desc(), T.c.due_at.is_(None), T.c.due_at, T.c.id)
# Spelled as literals, not parameters, so SQLite can use the partial indexes on open tasks
# (ix_task_match) and on claimed ones (ix_task_claimed).
IS_OPEN = T.c.status == sa.literal_column("'open'")
IS_CLAIMED = T.c.status == sa.literal_column("'claimed'")
DUE_REMINDER = timedelta(days=1)
IDLE_NOTICE_AT = 0.8  # of the claim's time to live
_RETRIES = 5  # conditional updates lost to a concurrent writer (PostgreSQL) are retried


class Outcome(StrEnum):
    """What became of a request to change a task."""

    OK = "ok"
    NOT_FOUND = "not-found"
    NOT_REGISTERED = "not-registered"
    NO_ROLE = "no-role"
    NO_LANGUAGE = "no-language"
    NOT_YOUR_LANGUAGE = "not-your-language"
    EMPTY = "empty"
    LIMIT = "limit"
    TAKEN = "taken"
    ALREADY_YOURS = "already-yours"
    CLOSED = "closed"
    NOT_CLAIMED = "not-claimed"
    NOT_YOURS = "not-yours"


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as the cogs see it."""

    id: int
    kind: TaskKind
    title: str
    description: str | None
    language: str | None
    source_language: str | None
    priority: Priority
    due_at: datetime | None
    status: TaskStatus
    created_at: datetime
    creator: UserRef | None
    claimed_by: int | None
    claimer: UserRef | None
    claimed_at: datetime | None
    claim_place: str | None
    last_activity_at: datetime | None
    closed_at: datetime | None

    def held_by(self, user: UserRef) -> bool:
        """Whether ``user`` holds the claim."""
        return (
            self.status is TaskStatus.CLAIMED
            and self.claimer is not None
            and (self.claimer.platform, self.claimer.external_id)
            == (user.platform, user.external_id)
        )


@dataclass(frozen=True, slots=True)
class EventView:
    """One line of a task's history. None identities were erased."""

    at: datetime
    action: str
    actor: UserRef | None
    subject: UserRef | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of a change, the task as it is now, and the caller's open claims."""

    outcome: Outcome
    task: TaskView | None = None
    open_claims: int = 0
    detail: str | None = None
    roles: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the change happened."""
        return self.outcome is Outcome.OK


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one expiry sweep did."""

    nudged: int = 0
    released: int = 0
    reminded: int = 0


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

    def assigned(self, task: TaskView, by: UserRef) -> Markup:
        """A coordinator gave someone a task."""
        ...

    def cancelled(self, task: TaskView, by: UserRef) -> Markup:
        """A coordinator cancelled a task someone held."""
        ...


@dataclass(frozen=True, slots=True)
class _Claimer:
    id: int
    user: UserRef
    roles: frozenset[str]
    languages: tuple[str, ...]
    held: int = 0  # open claims when looked up

    @property
    def kinds(self) -> tuple[str, ...]:
        """The task kinds this volunteer's roles allow (``other`` for everyone)."""
        return _kinds_for(self.roles)


@functools.lru_cache(maxsize=128)
def _kinds_for(roles: frozenset[str]) -> tuple[str, ...]:
    return tuple(k.value for k, role in KIND_ROLE.items() if role is None or role in roles)


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a coordinator fills in when posting."""

    kind: TaskKind
    title: str
    description: str | None = None
    language: str | None = None
    source_language: str | None = None
    priority: Priority = Priority.NORMAL
    due_at: datetime | None = None


@dataclass(slots=True)
class _Sweep:
    nudged: int = 0
    released: int = 0
    reminded: int = 0
    touched: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _ClaimRequest:
    user: UserRef
    place: str
    now: datetime
    max_open: int
    task_id: int | None = None  # None: the best task that fits (`task next`)
    kind: TaskKind | None = None
    language: str | None = None


_Pending = tuple[_ClaimRequest, "asyncio.Future[Result]"]


class _ClaimBatcher:
    """Runs claims that arrive together in one write transaction, in arrival order.

    Each claim is still its own conditional UPDATE; sharing the transaction saves a commit
    and a trip to the database thread per claim, which is what keeps a burst of claimers
    from queueing behind each other's commits. If the transaction fails, nothing of it was
    committed and its claims run again one by one.
    """

    MAX_BATCH = 100

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, request: _ClaimRequest) -> Result:
        """Queue one claim and wait for its result."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="task-claims")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.MAX_BATCH]
            del self._pending[: self.MAX_BATCH]
            try:
                results = await self._run([request for request, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                # Nothing of the batch was committed: run it again one by one, so a request
                # that fails takes only itself down.
                for request, future in batch:
                    try:
                        [result] = await self._run([request])
                    except Exception as one:
                        _settle(future, one)
                    else:
                        _settle(future, result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)

    async def _run(self, requests: list[_ClaimRequest]) -> list[Result]:
        return await self.db.write_connection(functools.partial(_claim_batch, requests=requests))


def _settle(future: "asyncio.Future[Result]", outcome: Result | Exception) -> None:
    """Hand a result to a waiting caller (unless it stopped waiting)."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class TaskRepo:
    """Posting, listing, claiming, releasing and finishing tasks."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._claims = _ClaimBatcher(db)

    # --- reading ----------------------------------------------------------------------

    async def get(self, task_id: int) -> TaskView | None:
        """One task, or None."""
        return await self.db.read_connection(lambda conn: _view(conn, task_id))

    async def with_history(
        self, task_id: int, *, limit: int = 20
    ) -> tuple[TaskView, list[EventView], int] | None:
        """One task with its latest ``limit`` events and their total, read together; or None."""

        def tx(conn: Connection) -> tuple[TaskView, list[EventView], int] | None:
            task = _view(conn, task_id)
            return None if task is None else (task, *_history(conn, task_id, limit))

        return await self.db.read_connection(tx)

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

        def tx(conn: Connection) -> list[TaskView]:
            query = _view_query()
            if status is TaskStatus.OPEN:
                query = query.where(IS_OPEN)
            elif status is not None:
                query = query.where(T.c.status == status.value)
            if kind is not None:
                query = query.where(T.c.kind == kind.value)
            if language is not None:
                query = query.where(T.c.language == language)
            urgent = status in (TaskStatus.OPEN, TaskStatus.CLAIMED)
            query = query.order_by(*QUEUE_ORDER) if urgent else query.order_by(T.c.id.desc())
            rows = conn.execute(query.offset(offset).limit(limit)).all()
            return [_task_view(r) for r in rows]

        return await self.db.read_connection(tx)

    async def claims_of(self, user: UserRef) -> list[TaskView] | None:
        """The tasks ``user`` holds, most urgent first; None if they are not registered."""
        found = await self.profile_with_claims(user)
        return None if found is None else found[1]

    async def profile_with_claims(self, user: UserRef) -> tuple[Profile, list[TaskView]] | None:
        """A volunteer's profile and the tasks they hold (most urgent first), read together.

        One transaction: the volunteer comes from :func:`storage.volunteers.profile_of`,
        their tasks from one prebuilt query. None if ``user`` is not registered.
        """

        def tx(conn: Connection) -> tuple[Profile, list[TaskView]] | None:
            found = profile_of(conn, user)
            if found is None:
                return None
            rows = conn.execute(_HELD_BY, {"vid": found.id})
            return found, [_claimed_view(row, found.user) for row in rows]

        return await self.db.read_connection(tx)

    # --- changing ---------------------------------------------------------------------

    async def post(self, creator: UserRef, new: NewTask, *, now: datetime) -> TaskView:
        """Add a task to the queue."""

        def tx(conn: Connection) -> TaskView:
            task_id = conn.execute(
                T.insert()
                .values(
                    kind=new.kind.value,
                    title=new.title,
                    description=new.description,
                    language=new.language,
                    source_language=new.source_language,
                    priority=new.priority.rank,
                    due_at=new.due_at,
                    status=OPEN,
                    created_at=now,
                    creator_platform=creator.platform,
                    creator_external_id=creator.external_id,
                    creator_name=creator.label,
                    claim_count=0,
                )
                .returning(T.c.id)
            ).scalar_one()
            _event(conn, task_id, "posted", now, actor=creator)
            return _require(conn, task_id)

        return await self.db.write_connection(tx)

    async def claim(
        self, task_id: int, user: UserRef, *, place: str, now: datetime, max_open: int
    ) -> Result:
        """Take one task. Only one of any number of concurrent callers gets it."""
        return await self._claims.submit(_ClaimRequest(user, place, now, max_open, task_id))

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
        return await self._claims.submit(
            _ClaimRequest(user, place, now, max_open, kind=kind, language=language)
        )

    async def unclaim(
        self, task_id: int, user: UserRef, *, now: datetime, override: bool = False
    ) -> Result:
        """Give a task back to the queue; ``override`` lets a coordinator release anyone's."""

        def tx(conn: Connection) -> Result:
            me = _claimer(conn, user)

            def attempt(task: TaskView) -> Result | None:
                if task.status is TaskStatus.OPEN:
                    return Result(Outcome.NOT_CLAIMED, task)
                mine = me is not None and task.claimed_by == me.id
                if not (mine or override):
                    return Result(Outcome.NOT_YOURS, task)
                if not _release(conn, task, _RELEASE_VALUES):
                    return None
                _event(conn, task_id, "released", now, actor=user,
                       subject=None if mine else task.claimer)  # fmt: skip
                count = _open_count(conn, me.id) if me else 0
                return Result(Outcome.OK, _require(conn, task_id), count)

            return _until_settled(conn, task_id, attempt)

        return await self.db.write_connection(tx)

    async def finish(
        self, task_id: int, user: UserRef, *, note: str | None, now: datetime
    ) -> Result:
        """Mark a task done; only its claimer can."""

        def tx(conn: Connection) -> Result:
            me = _claimer(conn, user)

            def attempt(task: TaskView) -> Result | None:
                if task.status is TaskStatus.OPEN:
                    return Result(Outcome.NOT_CLAIMED, task)
                if me is None or task.claimed_by != me.id:
                    return Result(Outcome.NOT_YOURS, task)
                values = {"status": DONE, "closed_at": now, "last_activity_at": now}
                if not _release(conn, task, values):
                    return None
                _event(conn, task_id, "done", now, actor=user, note=note)
                return Result(Outcome.OK, _require(conn, task_id), _open_count(conn, me.id))

            return _until_settled(conn, task_id, attempt)

        return await self.db.write_connection(tx)

    async def assign(
        self,
        task_id: int,
        assignee: UserRef,
        *,
        by: UserRef,
        place: str,
        now: datetime,
        max_open: int,
        notices: Notices,
    ) -> Result:
        """Give an open or claimed task to a registered volunteer (a coordinator's override)."""

        def tx(session: Session) -> Result:
            conn = _conn(session)
            who = _claimer(conn, assignee)
            if who is None:
                return Result(Outcome.NOT_REGISTERED)

            def attempt(task: TaskView) -> Result | None:
                name = who.user.label
                if task.claimed_by == who.id:
                    return Result(Outcome.ALREADY_YOURS, task, detail=name)
                count = _open_count(conn, who.id)
                if count >= max_open:
                    return Result(Outcome.LIMIT, task, count, detail=name)
                changed = conn.execute(
                    sa.update(T)
                    .where(
                        T.c.id == task_id,
                        T.c.status == task.status.value,
                        _same_claimer(task.claimed_by),
                        _has_room(who.id, max_open),
                    )
                    .values(_claim_values(who.id, place, now))
                ).rowcount
                if not changed:
                    return None
                _event(conn, task_id, "assigned", now, actor=by, subject=who.user)
                given = _require(conn, task_id)
                seq = _claim_seq(conn, task_id)
                enqueue(session, key=f"task:{task_id}:claim:{seq}:assigned",
                        target=place, body=notices.assigned(given, by), now=now,
                        recipient_id=who.user.external_id)  # fmt: skip
                return Result(Outcome.OK, given, count + 1)

            return _until_settled(conn, task_id, attempt)

        return await self.db.write(tx)

    async def cancel(
        self, task_id: int, *, by: UserRef, now: datetime, notices: Notices
    ) -> Result:
        """Take a task off the queue for good; its claimer, if any, is told."""

        def tx(session: Session) -> Result:
            conn = _conn(session)

            def attempt(task: TaskView) -> Result | None:
                if not _release(conn, task, {"status": CANCELLED, "closed_at": now}):
                    return None
                _event(conn, task_id, "cancelled", now, actor=by)
                if task.claimer is not None and task.claim_place:
                    enqueue(session, key=f"task:{task_id}:cancelled",
                            target=task.claim_place, body=notices.cancelled(task, by),
                            now=now, recipient_id=task.claimer.external_id)  # fmt: skip
                return Result(Outcome.OK, _require(conn, task_id))

            return _until_settled(conn, task_id, attempt)

        return await self.db.write(tx)

    async def touch(self, task_id: int, user: UserRef, now: datetime) -> bool:
        """Record activity by the claimer on their task; returns whether they hold it."""

        def tx(conn: Connection) -> bool:
            me = _claimer(conn, user)
            return me is not None and _touch(conn, task_id, me.id, now)

        return await self.db.write_connection(tx)

    # --- expiry -----------------------------------------------------------------------

    async def sweep(
        self, now: datetime, *, ttl: timedelta, notices: Notices, batch: int = 200
    ) -> SweepReport:
        """Nudge idle claims, release expired ones and remind of due dates, each exactly once.

        Safe to run from several processes at once: every step is a conditional update, and
        a notice is enqueued only by the transaction whose update took effect.
        """
        total = _Sweep()
        while True:
            step = await self.db.write(lambda s: _sweep_once(s, now, ttl, notices, batch))
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

        def tx(conn: Connection) -> dict[str, Any]:
            me = _claimer(conn, user)
            claims = []
            if me is not None:
                claims = [
                    {"task": r.id, "title": r.title, "status": r.status,
                     "claimed_at": _iso(r.claimed_at)}
                    for r in conn.execute(
                        sa.select(T.c.id, T.c.title, T.c.status, T.c.claimed_at)
                        .where(T.c.claimed_by == me.id).order_by(T.c.id)
                    )
                ]  # fmt: skip
            created = [
                {"task": r.id, "title": r.title, "description": r.description,
                 "status": r.status, "created_at": _iso(r.created_at), "name": r.creator_name}
                for r in conn.execute(
                    sa.select(
                        T.c.id, T.c.title, T.c.description, T.c.status, T.c.created_at,
                        T.c.creator_name,
                    )
                    .where(*_is_creator(user)).order_by(T.c.id)
                )
            ]  # fmt: skip
            events = [
                {"task": r.task_id, "at": _iso(r.at), "action": r.action,
                 "role": "actor" if _names(r, "actor", user) else "subject",
                 "name": r.actor_name if _names(r, "actor", user) else r.subject_name,
                 "note": r.note if _names(r, "actor", user) else None}
                for r in conn.execute(
                    sa.select(E).where(sa.or_(_is_person(E, "actor", user),
                                              _is_person(E, "subject", user))).order_by(E.c.id)
                )
            ]  # fmt: skip
            return {"claims": claims, "created": created, "history": events}

        return await self.db.read_connection(tx)

    async def erase(self, user: UserRef, now: datetime) -> int:
        """Release ``user``'s claims and replace them with "a former volunteer" everywhere.

        Must run before the volunteer record is deleted. Returns how many rows changed.
        """

        def tx(conn: Connection) -> int:
            changed = 0
            me = _claimer(conn, user)
            if me is not None:
                held = (
                    conn.execute(
                        sa.select(T.c.id).where(T.c.claimed_by == me.id, T.c.status == CLAIMED)
                    )
                    .scalars()
                    .all()
                )
                for task_id in held:
                    conn.execute(sa.update(T).where(T.c.id == task_id).values(_RELEASE_VALUES))
                    _event(conn, task_id, "released", now, actor=None)
                changed += len(held)
                changed += conn.execute(
                    sa.update(T).where(T.c.claimed_by == me.id).values(claimed_by=None)
                ).rowcount
            changed += conn.execute(
                sa.update(T).where(*_is_creator(user)).values(
                    creator_platform=None, creator_external_id=None, creator_name=None)
            ).rowcount  # fmt: skip
            changed += conn.execute(
                sa.update(E).where(_is_person(E, "actor", user)).values(
                    actor_platform=None, actor_external_id=None, actor_name=None, note=None)
            ).rowcount  # fmt: skip
            changed += conn.execute(
                sa.update(E).where(_is_person(E, "subject", user)).values(
                    subject_platform=None, subject_external_id=None, subject_name=None)
            ).rowcount  # fmt: skip
            return changed

        return await self.db.write_connection(tx)


# --- statements and helpers (run inside a transaction) --------------------------------------


def _until_settled(
    conn: Connection, task_id: int, attempt: Callable[[TaskView], "Result | None"]
) -> Result:
    """Run ``attempt`` on the task as it is now until it settles.

    Unknown and closed tasks are answered here. ``attempt`` returns None when its conditional
    update lost a race with another writer (possible on PostgreSQL); the task is read again.
    """
    for _ in range(_RETRIES):
        task = _view(conn, task_id)
        if task is None:
            return Result(Outcome.NOT_FOUND)
        if task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
            return Result(Outcome.CLOSED, task)
        result = attempt(task)
        if result is not None:
            return result
    raise RuntimeError(f"task {task_id}: a change kept losing races")  # pragma: no cover


def _claim_batch(conn: Connection, *, requests: list[_ClaimRequest]) -> list[Result]:
    """Run claims one after another in this transaction.

    The history rows of the winners are written together at the end, and their open-claim
    counts follow from the count looked up with each claimer.
    """
    people = _claimers(conn, (r.user for r in requests))
    held: dict[int, int] = {}
    results: list[Result] = []
    events: list[dict[str, Any]] = []
    for r in requests:
        me = people.get((r.user.platform, r.user.external_id))
        if me is None:
            results.append(Result(Outcome.NOT_REGISTERED))
            continue
        if r.task_id is not None:
            result = _claim_one(conn, me, r.task_id, r.place, r.now, r.max_open, events)
        else:
            result = _claim_next(conn, me, r.place, r.now, r.max_open, r.kind, r.language, events)
            if not result.ok:
                result = replace(result, roles=tuple(sorted(me.roles)), languages=me.languages)
        if result.ok:
            held[me.id] = held.get(me.id, me.held) + 1
            result = Result(Outcome.OK, result.task, held[me.id])
        results.append(result)
    _insert_events(conn, events)
    return results


def _claim_one(
    conn: Connection,
    me: _Claimer,
    task_id: int,
    place: str,
    now: datetime,
    max_open: int,
    events: list[dict[str, Any]],
) -> Result:
    claim, sql = _claim_by_id(len(me.kinds))
    params: dict[str, Any] = {f"k{i}": k for i, k in enumerate(me.kinds)}
    params |= {"task_id": task_id, "vid": me.id, "max_open": max_open, "now": now,
               "due_limit": now + DUE_REMINDER, "place": place[:255]}  # fmt: skip
    for _ in range(_RETRIES):
        won = _returning(conn, claim, sql, params)
        if won is not None:
            events.append(_event_row(task_id, "claimed", now, me.user))
            return Result(Outcome.OK, _claimed_view(won, me.user))
        task = _view(conn, task_id)
        if task is None:
            return Result(Outcome.NOT_FOUND)
        if task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
            return Result(Outcome.CLOSED, task)
        if task.status is TaskStatus.CLAIMED:
            if task.claimed_by == me.id:
                _touch(conn, task_id, me.id, now)
                return Result(Outcome.ALREADY_YOURS, task, _open_count(conn, me.id))
            return Result(Outcome.TAKEN, task)
        if task.kind.value not in me.kinds:
            return Result(Outcome.NO_ROLE, task)
        count = _open_count(conn, me.id)
        if count >= max_open:
            return Result(Outcome.LIMIT, task, count)
    raise RuntimeError("claim kept losing races")  # pragma: no cover


def _conn(session: Session) -> Connection:
    return session.connection()


# Statements on the hot path are built once, with named parameters: building SQLAlchemy
# expressions costs more than running them.
_HELD = (
    sa.select(sa.func.count())
    .select_from(T)
    .where(T.c.claimed_by == V.c.id, T.c.status == CLAIMED)
    .scalar_subquery()
)
_CLAIMER_COLUMNS = (
    sa.select(V.c.id, V.c.external_id, V.c.languages, V.c.display_name, R.c.role,
              _HELD.label("held"))
    .select_from(V.outerjoin(R, R.c.volunteer_id == V.c.id))
)  # fmt: skip
_CLAIMER = _CLAIMER_COLUMNS.where(
    V.c.platform == sa.bindparam("platform"), V.c.external_id == sa.bindparam("ext")
)
_CLAIMERS = _CLAIMER_COLUMNS.where(
    V.c.platform == sa.bindparam("platform"),
    V.c.external_id.in_(sa.bindparam("ids", expanding=True)),
)
_OPEN_COUNT = (
    sa.select(sa.func.count())
    .select_from(T)
    .where(T.c.claimed_by == sa.bindparam("vid"), T.c.status == CLAIMED)
)
_EVENT_INSERT = E.insert()
# The tasks one volunteer holds; the claimer is the volunteer the caller already has.
_HELD_BY = (
    sa.select(T).where(T.c.claimed_by == sa.bindparam("vid"), IS_CLAIMED).order_by(*QUEUE_ORDER)
)


def _claimer(conn: Connection, user: UserRef) -> _Claimer | None:
    rows = conn.execute(_CLAIMER, {"platform": user.platform, "ext": user.external_id}).all()
    return _as_claimer(user.platform, [tuple(r) for r in rows]) if rows else None


# The same lookup for the SQLite driver: the identities travel as one JSON array, so the
# statement's text (and sqlite3's prepared statement) is the same for any number of them.
_CLAIMERS_SQL = (
    "SELECT v.id, v.external_id, v.languages, v.display_name, r.role, "
    "(SELECT count(*) FROM task WHERE claimed_by = v.id AND status = 'claimed') "
    "FROM volunteer AS v LEFT JOIN volunteer_role AS r ON r.volunteer_id = v.id "
    "WHERE v.platform = ? AND v.external_id IN (SELECT value FROM json_each(?))"
)


def _claimers(conn: Connection, users: Iterable[UserRef]) -> dict[tuple[str, str], _Claimer]:
    """Several volunteers with one query per platform."""
    by_platform: dict[str, set[str]] = {}
    for user in users:
        by_platform.setdefault(user.platform, set()).add(user.external_id)
    driver = _sqlite_driver(conn)
    found: dict[tuple[str, str], _Claimer] = {}
    for platform, ids in by_platform.items():
        rows: dict[str, list[Sequence[Any]]] = {}
        if driver is not None:
            cursor = driver.execute(_CLAIMERS_SQL, (platform, json.dumps(sorted(ids))))
            try:
                for row in cursor:
                    rows.setdefault(row[1], []).append(row)
            finally:
                cursor.close()
        else:
            for row in conn.execute(_CLAIMERS, {"platform": platform, "ids": sorted(ids)}):
                rows.setdefault(row.external_id, []).append(tuple(row))
        for ext, mine in rows.items():
            found[(platform, ext)] = _as_claimer(platform, mine)
    return found


def _as_claimer(platform: str, rows: Sequence[Sequence[Any]]) -> _Claimer:
    """A claimer from rows of (id, external_id, languages, display_name, role, held)."""
    vid, ext, languages, name, _, held = rows[0]
    return _Claimer(
        id=vid,
        user=UserRef(platform, ext, name),
        roles=frozenset(r[4] for r in rows if r[4] is not None),
        languages=tuple(code for code in languages.split(",") if code),
        held=held,
    )


def _open_count(conn: Connection, volunteer_id: int) -> int:
    return int(conn.execute(_OPEN_COUNT, {"vid": volunteer_id}).scalar_one())


def _has_room(volunteer_id: int, max_open: int) -> sa.ColumnElement[bool]:
    """True while the volunteer holds fewer than ``max_open`` claims (evaluated in the UPDATE)."""
    count = (
        sa.select(sa.func.count())
        .select_from(T)
        .where(T.c.claimed_by == volunteer_id, T.c.status == CLAIMED)
        .correlate(None)
        .scalar_subquery()
    )
    return count < max_open


def _same_claimer(volunteer_id: int | None) -> sa.ColumnElement[bool]:
    return T.c.claimed_by.is_(None) if volunteer_id is None else T.c.claimed_by == volunteer_id


def _claim_values(volunteer_id: int, place: str, now: datetime) -> dict[str, Any]:
    return {
        "status": CLAIMED,
        "claimed_by": volunteer_id,
        "claimed_at": now,
        "claim_place": place[:255],
        "claim_count": T.c.claim_count + 1,
        "last_activity_at": now,
        "nudged_at": None,
        # A claim taken less than a day before the due date needs no reminder.
        "due_reminded_at": sa.case((T.c.due_at <= now + DUE_REMINDER, now), else_=None),
    }


_RELEASE_VALUES: dict[str, Any] = {
    "status": OPEN,
    "claimed_by": None,
    "claimed_at": None,
    "claim_place": None,
    "last_activity_at": None,
    "nudged_at": None,
    "due_reminded_at": None,
}


def _release(conn: Connection, task: TaskView, values: dict[str, Any]) -> bool:
    """Change a task only if it is still as ``task`` saw it; returns whether it changed."""
    result = conn.execute(
        sa.update(T)
        .where(
            T.c.id == task.id,
            T.c.status == task.status.value,
            _same_claimer(task.claimed_by),
        )
        .values(values)
    )
    return bool(result.rowcount)


# (An UPDATE's own parameters may not share a name with one of the table's columns.)
_TOUCH = (
    sa.update(T)
    .where(
        T.c.id == sa.bindparam("task_id"),
        T.c.status == CLAIMED,
        T.c.claimed_by == sa.bindparam("vid"),
    )
    .values(last_activity_at=sa.bindparam("now"), nudged_at=None)
)


def _touch(conn: Connection, task_id: int, volunteer_id: int, now: datetime) -> bool:
    result = conn.execute(_TOUCH, {"task_id": task_id, "vid": volunteer_id, "now": now})
    return bool(result.rowcount)


# What a claim sets, and the open-claim limit it checks in the same statement, as SQL text
# shared by the claim of one task and `task next` (``:vid``, ``:now``, ``:due_limit``,
# ``:place``, ``:max_open``): the same as _claim_values and _has_room.
_CLAIM_SET = (
    "UPDATE task SET status = 'claimed', claimed_by = :vid, claimed_at = :now, "
    "claim_place = :place, claim_count = claim_count + 1, last_activity_at = :now, "
    "nudged_at = NULL, due_reminded_at = CASE WHEN due_at <= :due_limit THEN :now END "
)
_HAS_ROOM = (
    "(SELECT count(*) FROM task AS held "
    "WHERE held.claimed_by = :vid AND held.status = 'claimed') < :max_open"
)
_RETURNING = "RETURNING " + ", ".join(c.name for c in T.c)


def _claim_statement(sql: str) -> Any:
    """A claim's SQL text as a SQLAlchemy statement (for databases other than SQLite)."""
    stamps = (
        sa.bindparam("now", type_=UTCDateTime()),
        sa.bindparam("due_limit", type_=UTCDateTime()),
    )
    return sa.text(sql).bindparams(*stamps).columns(*T.c)


@functools.lru_cache(maxsize=16)
def _claim_by_id(kinds: int) -> tuple[Any, str]:
    """The claim of task ``:task_id`` by a volunteer whose roles allow ``kinds`` kinds.

    Built once per number of kinds (``:k0``…): the task must be open and of one of them,
    and the volunteer under the limit, all in the one conditional UPDATE.
    """
    names = ", ".join(f":k{i}" for i in range(kinds))
    sql = (
        f"{_CLAIM_SET}WHERE id = :task_id AND status = 'open' AND kind IN ({names}) "
        f"AND {_HAS_ROOM} {_RETURNING}"
    )
    return _claim_statement(sql), sql


@functools.lru_cache(maxsize=256)
def _next_claim(kinds: int, targets: tuple[bool, ...], sources: int) -> tuple[Any, Any, str]:
    """The `task next` claim for one shape of volunteer, and its candidate query.

    ``kinds`` kinds (``:k0``…), one target per entry of ``targets`` (True: tasks without a
    target language; False: ``:t<i>``), ``sources`` source languages (``:s0``…). One index
    seek per (kind, target) on ``ix_task_match``, the best of those few rows, one
    conditional UPDATE: the cost does not grow with the queue.

    Written as SQL text (standard SQL that SQLite and PostgreSQL both run): SQLite plans
    the literal ``LIMIT 1`` subqueries SQLAlchemy would bind as parameters several times
    faster, and the statement is the one the benchmark's raw-sqlite3 floor runs.
    """
    source = "source_language IS NULL"
    if sources:
        names = ", ".join(f":s{i}" for i in range(sources))
        source = f"(source_language IS NULL OR source_language IN ({names}))"
    order = "priority DESC, due_at IS NULL, due_at, id"
    branches = [
        f"SELECT * FROM (SELECT id, priority, due_at FROM task WHERE status = 'open' "
        f"AND kind = :k{k} AND {'language IS NULL' if untargeted else f'language = :t{i}'} "
        f"AND {source} ORDER BY {order} LIMIT 1) AS b{k}_{i}"
        for k in range(kinds)
        for i, untargeted in enumerate(targets)
    ]
    best = f"SELECT id FROM ({' UNION ALL '.join(branches)}) AS best ORDER BY {order} LIMIT 1"
    claim = f"{_CLAIM_SET}WHERE id = ({best}) AND status = 'open' AND {_HAS_ROOM} {_RETURNING}"
    return _claim_statement(claim), sa.text(best).columns(T.c.id), claim


def _claim_next(
    conn: Connection,
    me: _Claimer,
    place: str,
    now: datetime,
    max_open: int,
    kind: TaskKind | None,
    language: str | None,
    events: list[dict[str, Any]],
) -> Result:
    kinds = me.kinds
    if kind is not None:
        if kind.value not in kinds:
            return Result(Outcome.NO_ROLE, detail=kind.value)
        kinds = (kind.value,)
    if language is not None and language not in me.languages:
        return Result(Outcome.NOT_YOUR_LANGUAGE, detail=language)
    targets: list[str | None] = [language] if language else [None, *me.languages]
    claim, best, sql = _next_claim(
        len(kinds), tuple(t is None for t in targets), len(me.languages)
    )
    params: dict[str, Any] = {f"k{i}": k for i, k in enumerate(kinds)}
    params |= {f"t{i}": t for i, t in enumerate(targets) if t is not None}
    params |= {f"s{i}": s for i, s in enumerate(me.languages)}
    for _ in range(_RETRIES):
        row = _returning(
            conn, claim, sql,
            {**params, "vid": me.id, "max_open": max_open, "now": now,
             "due_limit": now + DUE_REMINDER, "place": place[:255]},
        )  # fmt: skip
        if row is not None:
            events.append(_event_row(row["id"], "claimed", now, me.user))
            return Result(Outcome.OK, _claimed_view(row, me.user))
        count = _open_count(conn, me.id)
        if count >= max_open:
            return Result(Outcome.LIMIT, open_claims=count)
        if conn.execute(best, params).scalar() is None:
            return _why_nothing(conn, me, kind, language)
    raise RuntimeError("task next kept losing races")  # pragma: no cover


_COLUMNS = tuple(T.c.keys())
_STAMPS = tuple(c.name for c in T.c if isinstance(c.type, UTCDateTime))


@functools.lru_cache(maxsize=8)
def _stamp_processors(dialect: sa.Dialect) -> tuple[Any, Any]:
    """How a timestamp goes to and comes from the driver (a batch shares a few ``now``s)."""
    stamp = UTCDateTime().dialect_impl(dialect)
    bind = stamp.bind_processor(dialect)
    assert bind is not None
    return functools.lru_cache(maxsize=64)(bind), stamp.result_processor(dialect, None)


def _sqlite_driver(conn: Connection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under this transaction, or None on other databases.

    The claim path sends its few statements straight to it (``sqlite3`` takes ``:name``
    and ``?`` parameters): a claim is the hottest work of the bot, and SQLAlchemy's
    per-execution work costs more than SQLite's.
    """
    if conn.dialect.driver != "pysqlite":
        return None
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _returning(
    conn: Connection, statement: Any, sql: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """Run a claim UPDATE … RETURNING and give back the row, or None if it changed nothing.

    On SQLite ``sql`` goes straight to the driver; elsewhere ``statement`` runs as ordinary
    SQLAlchemy text.
    """
    driver = _sqlite_driver(conn)
    if driver is None:
        row = conn.execute(statement, params).first()
        return dict(row._mapping) if row is not None else None
    to_db, from_db = _stamp_processors(conn.dialect)
    raw = {k: to_db(v) if isinstance(v, datetime) else v for k, v in params.items()}
    cursor = driver.execute(sql, raw)
    try:
        found = cursor.fetchone()
    finally:
        cursor.close()
    if found is None:
        return None
    m = dict(zip(_COLUMNS, found, strict=True))
    for name in _STAMPS:
        if m[name] is not None:
            m[name] = from_db(m[name])
    return m


_EVENT_SQL = (
    f"INSERT INTO task_event ({', '.join(c.name for c in E.c if c.name != 'id')}) "
    f"VALUES ({', '.join(':' + c.name for c in E.c if c.name != 'id')})"
)


def _insert_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Write history rows (from :func:`_event_row`) with one statement."""
    if not events:
        return
    driver = _sqlite_driver(conn)
    if driver is None:
        conn.execute(_EVENT_INSERT, events)
        return
    to_db, _ = _stamp_processors(conn.dialect)
    driver.executemany(_EVENT_SQL, [{**e, "at": to_db(e["at"])} for e in events]).close()


def _why_nothing(
    conn: Connection, me: _Claimer, kind: TaskKind | None, language: str | None
) -> Result:
    """Explain an empty ``task next``: nothing open, nothing for the roles, or the languages."""

    def exists(*where: sa.ColumnElement[bool]) -> bool:
        query = sa.select(T.c.id).where(IS_OPEN, *where).limit(1)
        return conn.execute(query).first() is not None

    filters = []
    if kind is not None:
        filters.append(T.c.kind == kind.value)
    if language is not None:
        filters.append(T.c.language == language)
    if not exists(*filters):
        return Result(Outcome.EMPTY, detail=kind.value if kind else None)
    if not exists(T.c.kind.in_(me.kinds), *filters):
        return Result(Outcome.NO_ROLE)
    return Result(Outcome.NO_LANGUAGE)


def _event(
    conn: Connection,
    task_id: int,
    action: str,
    now: datetime,
    *,
    actor: UserRef | None,
    subject: UserRef | None = None,
    note: str | None = None,
) -> None:
    conn.execute(_EVENT_INSERT, _event_row(task_id, action, now, actor, subject, note))


def _event_row(
    task_id: int,
    action: str,
    now: datetime,
    actor: UserRef | None,
    subject: UserRef | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "at": now,
        "action": action,
        "actor_platform": actor.platform if actor else None,
        "actor_external_id": actor.external_id if actor else None,
        "actor_name": actor.label if actor else None,
        "subject_platform": subject.platform if subject else None,
        "subject_external_id": subject.external_id if subject else None,
        "subject_name": subject.label if subject else None,
        "note": note,
    }


def _view_query() -> sa.Select[Any]:
    claimer = V.alias("claimer")
    return sa.select(
        T, claimer.c.platform.label("claimer_platform"),
        claimer.c.external_id.label("claimer_external_id"),
        claimer.c.display_name.label("claimer_name"),
    ).select_from(T.outerjoin(claimer, claimer.c.id == T.c.claimed_by))  # fmt: skip


_VIEW = _view_query().where(T.c.id == sa.bindparam("task_id"))
_EVENT_COUNT = sa.select(sa.func.count()).select_from(E).where(E.c.task_id == sa.bindparam("t"))
_LATEST_EVENTS = (
    sa.select(E)
    .where(E.c.task_id == sa.bindparam("t"))
    .order_by(E.c.id.desc())
    .limit(sa.bindparam("n"))
)


def _history(conn: Connection, task_id: int, limit: int) -> tuple[list[EventView], int]:
    """A task's latest ``limit`` events, oldest first, and how many there are."""
    total = conn.execute(_EVENT_COUNT, {"t": task_id}).scalar_one()
    rows = conn.execute(_LATEST_EVENTS, {"t": task_id, "n": limit}).all()
    return [_event_view(r) for r in reversed(rows)], int(total)


def _view(conn: Connection, task_id: int) -> TaskView | None:
    row = conn.execute(_VIEW, {"task_id": task_id}).first()
    return _task_view(row) if row is not None else None


def _require(conn: Connection, task_id: int) -> TaskView:
    task = _view(conn, task_id)
    assert task is not None
    return task


def _claim_seq(conn: Connection, task_id: int) -> int:
    return int(conn.execute(sa.select(T.c.claim_count).where(T.c.id == task_id)).scalar_one())


_PRIORITIES = tuple(Priority)


def _task_view(row: Row[Any] | dict[str, Any]) -> TaskView:
    m = row if isinstance(row, dict) else row._mapping
    creator = (
        UserRef(m["creator_platform"], m["creator_external_id"], m["creator_name"] or "")
        if m["creator_platform"] is not None
        else None
    )
    claimer = (
        UserRef(m["claimer_platform"], m["claimer_external_id"], m["claimer_name"] or "")
        if m["claimer_platform"] is not None
        else None
    )
    return TaskView(
        id=m["id"],
        kind=TaskKind(m["kind"]),
        title=m["title"],
        description=m["description"],
        language=m["language"],
        source_language=m["source_language"],
        priority=_PRIORITIES[m["priority"]],
        due_at=m["due_at"],
        status=TaskStatus(m["status"]),
        created_at=m["created_at"],
        creator=creator,
        claimed_by=m["claimed_by"],
        claimer=claimer,
        claimed_at=m["claimed_at"],
        claim_place=m["claim_place"],
        last_activity_at=m["last_activity_at"],
        closed_at=m["closed_at"],
    )


def _claimed_view(row: Row[Any] | dict[str, Any], claimer: UserRef) -> TaskView:
    """A task just claimed, from the row its UPDATE returned."""
    m = dict(row if isinstance(row, dict) else row._mapping)
    m |= {"claimer_platform": claimer.platform, "claimer_external_id": claimer.external_id,
          "claimer_name": claimer.display_name}  # fmt: skip
    return _task_view(m)


def _person(m: Any, prefix: str) -> UserRef | None:
    platform = m[f"{prefix}_platform"]
    if platform is None:
        return None
    return UserRef(platform, m[f"{prefix}_external_id"], m[f"{prefix}_name"] or "")


def _event_view(row: Row[Any]) -> EventView:
    m = row._mapping
    return EventView(m["at"], m["action"], _person(m, "actor"), _person(m, "subject"), m["note"])


def _is_person(table: sa.Table, prefix: str, user: UserRef) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c[f"{prefix}_platform"] == user.platform,
        table.c[f"{prefix}_external_id"] == user.external_id,
    )


def _is_creator(user: UserRef) -> Iterable[sa.ColumnElement[bool]]:
    return (T.c.creator_platform == user.platform, T.c.creator_external_id == user.external_id)


def _names(row: Row[Any], prefix: str, user: UserRef) -> bool:
    m = row._mapping
    return bool(
        m[f"{prefix}_platform"] == user.platform and m[f"{prefix}_external_id"] == user.external_id
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _won(
    conn: Connection,
    conditions: Sequence[sa.ColumnElement[bool]],
    values: dict[str, Any],
    batch: int,
    *,
    guard: Callable[[TaskView], Sequence[sa.ColumnElement[bool]]] = lambda task: (),
) -> Iterator[tuple[TaskView, int]]:
    """Claimed tasks matching ``conditions`` that this sweep moved to ``values``.

    Each is its own conditional update on the same claim (``claim_count``) and the same
    conditions, so a task another writer changed meanwhile is skipped, never acted on twice.
    """
    rows = conn.execute(_view_query().where(IS_CLAIMED, *conditions).limit(batch)).all()
    for row in rows:
        task = _task_view(row)
        seq = row._mapping["claim_count"]
        changed = conn.execute(
            sa.update(T)
            .where(
                T.c.id == task.id,
                T.c.status == CLAIMED,
                T.c.claim_count == seq,
                *conditions,
                *guard(task),
            )
            .values(values)
        ).rowcount
        if changed:
            yield task, seq


def _sweep_once(
    session: Session, now: datetime, ttl: timedelta, notices: Notices, batch: int
) -> _Sweep:
    conn = _conn(session)
    done = _Sweep()
    release_cutoff = now - ttl
    # Expired claims, and claims whose volunteer record vanished, go back to the queue.
    stale = sa.or_(T.c.last_activity_at <= release_cutoff, T.c.claimed_by.is_(None))
    for task, seq in _won(conn, [stale], _RELEASE_VALUES, batch):
        done.released += 1
        done.touched.add(task.id)
        _event(conn, task.id, "expired", now, actor=None, subject=task.claimer)
        if task.claimer is not None and task.claim_place:
            enqueue(session, key=f"task:{task.id}:claim:{seq}:expired", target=task.claim_place,
                    body=notices.expired(task), now=now,
                    recipient_id=task.claimer.external_id)  # fmt: skip
    # Idle claims get one "still on it?" per idle stretch.
    idle = [T.c.nudged_at.is_(None), T.c.last_activity_at <= now - ttl * IDLE_NOTICE_AT]

    def same_stretch(task: TaskView) -> list[sa.ColumnElement[bool]]:
        return [T.c.last_activity_at == task.last_activity_at]

    for task, seq in _won(conn, idle, {"nudged_at": now}, batch, guard=same_stretch):
        if task.claimer is None or not task.claim_place:
            continue
        done.nudged += 1
        done.touched.add(task.id)
        assert task.last_activity_at is not None
        stamp = int(task.last_activity_at.timestamp())
        enqueue(session, key=f"task:{task.id}:claim:{seq}:idle:{stamp}", target=task.claim_place,
                body=notices.idle(task, task.last_activity_at + ttl), now=now,
                recipient_id=task.claimer.external_id)  # fmt: skip
    # Due dates: one reminder a day ahead.
    due = [T.c.due_reminded_at.is_(None), T.c.due_at <= now + DUE_REMINDER]
    for task, seq in _won(conn, due, {"due_reminded_at": now}, batch):
        if task.claimer is None or not task.claim_place:
            continue
        done.reminded += 1
        done.touched.add(task.id)
        enqueue(session, key=f"task:{task.id}:claim:{seq}:due", target=task.claim_place,
                body=notices.due(task), now=now,
                recipient_id=task.claimer.external_id)  # fmt: skip
    return done
