"""Every statement the task queue runs, each written once, named, in SQLAlchemy Core.

Statements are built once, with named parameters: building a SQLAlchemy expression costs
more than SQLite takes to run it. Those whose shape depends on the caller (how many kinds a
volunteer's roles allow, how many languages they speak) are built once per shape. Task
statuses are spelled as literals, not parameters, so SQLite can use the partial indexes on
open tasks (``ix_task_match``) and on claimed ones (``ix_task_claimed``, ``ix_task_claimer``).

Parameters shared by the claim statements: ``:vid`` the claimer's volunteer id, ``:now``,
``:place`` where the claim was made, ``:due_limit`` (claims due by then need no reminder),
``:max_open`` the claim limit.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import sqlalchemy as sa

from bot.domain import TaskStatus
from bot.domain.tasks import TRANSITIONS, Change
from storage.models import Job, Task, TaskEvent, Volunteer, VolunteerRole
from storage.prepared import Prepared
from storage.types import UTCDateTime

T = cast(sa.Table, Task.__table__)  # type: ignore[attr-defined]
E = cast(sa.Table, TaskEvent.__table__)  # type: ignore[attr-defined]
V = cast(sa.Table, Volunteer.__table__)  # type: ignore[attr-defined]
R = cast(sa.Table, VolunteerRole.__table__)  # type: ignore[attr-defined]
J = cast(sa.Table, Job.__table__)  # type: ignore[attr-defined]

ONE: sa.ColumnElement[int] = sa.literal_column("1")
ZERO: sa.ColumnElement[int] = sa.literal_column("0")


def status_is(status: TaskStatus, table: Any = T) -> sa.ColumnElement[bool]:
    """``status = '<status>'`` with the status as a literal (see the module's docstring)."""
    return cast(sa.ColumnElement[bool], table.c.status == sa.literal_column(f"'{status.value}'"))


def _status(status: TaskStatus) -> sa.ColumnElement[str]:
    return sa.literal_column(f"'{status.value}'")


IS_OPEN = status_is(TaskStatus.OPEN)
IS_CLAIMED = status_is(TaskStatus.CLAIMED)
IN_REVIEW = status_is(TaskStatus.IN_REVIEW)


def queue_order(c: Any) -> tuple[sa.ColumnElement[Any], ...]:
    """The queue order (priority, due date with undated last, age), as the indexes spell it."""
    return (c.priority.desc(), c.due_at.is_(None), c.due_at, c.id)


QUEUE_ORDER = queue_order(T.c)

# Parameters (an UPDATE's own parameters may not share a name with one of its columns).
VID = sa.bindparam("vid", type_=sa.Integer())
NOW = sa.bindparam("now", type_=UTCDateTime())
PLACE = sa.bindparam("place", type_=sa.String())
DUE_LIMIT = sa.bindparam("due_limit", type_=UTCDateTime())
MAX_OPEN = sa.bindparam("max_open", type_=sa.Integer())
TASK_ID = sa.bindparam("task_id", type_=sa.Integer())
SEEN_STATUS = sa.bindparam("seen_status", type_=sa.String())
SEEN_HOLDER = sa.bindparam("seen_holder", type_=sa.Integer())
SEQ = sa.bindparam("seq", type_=sa.Integer())

_held = T.alias("held")
# The claimer's open claims, counted in the statement that claims: under the limit or no claim.
HAS_ROOM = (
    sa.select(sa.func.count())
    .select_from(_held)
    .where(_held.c.claimed_by == VID, status_is(TaskStatus.CLAIMED, _held))
    .scalar_subquery()
    < MAX_OPEN
)
# What a claim sets (claim, task next, assign).
CLAIM_VALUES: dict[str, Any] = {
    "status": _status(TRANSITIONS[Change.CLAIMED].end),
    "claimed_by": VID,
    "claimed_at": NOW,
    "claim_place": PLACE,
    "claim_count": T.c.claim_count + ONE,
    "last_activity_at": NOW,
    "nudged_at": sa.null(),
    # A claim taken less than a day before the due date needs no reminder.
    "due_reminded_at": sa.case((T.c.due_at <= DUE_LIMIT, NOW), else_=sa.null()),
}
# What giving a task back sets (unclaim, expiry, erasure).
RELEASE_VALUES: dict[str, Any] = {
    "status": _status(TRANSITIONS[Change.RELEASED].end),
    "claimed_by": sa.null(),
    "claimed_at": sa.null(),
    "claim_place": sa.null(),
    "last_activity_at": sa.null(),
    "nudged_at": sa.null(),
    "due_reminded_at": sa.null(),
}
# The task as it was seen: a change conditional on it loses to any writer in between.
AS_SEEN = (
    T.c.id == TASK_ID,
    T.c.status == SEEN_STATUS,
    T.c.claimed_by.is_not_distinct_from(SEEN_HOLDER),
)

# --- reading tasks ---------------------------------------------------------------------------

_claimer = V.alias("claimer")
_reviewer = V.alias("reviewer")
# Each task with its claimer's identity, and its reviewer's.
TASK_VIEW = sa.select(
    T,
    _claimer.c.platform.label("claimer_platform"),
    _claimer.c.external_id.label("claimer_external_id"),
    _claimer.c.display_name.label("claimer_name"),
    _reviewer.c.platform.label("reviewer_platform"),
    _reviewer.c.external_id.label("reviewer_external_id"),
    _reviewer.c.display_name.label("reviewer_name"),
).select_from(
    T.outerjoin(_claimer, _claimer.c.id == T.c.claimed_by).outerjoin(
        _reviewer, _reviewer.c.id == T.c.reviewer_id
    )
)

TASK = Prepared("one task", TASK_VIEW.where(T.c.id == TASK_ID))
HELD_BY = Prepared(
    "the tasks one volunteer holds, most urgent first",
    sa.select(T).where(T.c.claimed_by == VID, IS_CLAIMED).order_by(*QUEUE_ORDER),
)
EVENT_COUNT = Prepared(
    "how many history lines a task has",
    sa.select(sa.func.count()).select_from(E).where(E.c.task_id == TASK_ID),
)
LATEST_EVENTS = Prepared(
    "a task's latest history lines, newest first",
    sa.select(E)
    .where(E.c.task_id == TASK_ID)
    .order_by(E.c.id.desc())
    .limit(sa.bindparam("n", type_=sa.Integer())),
)
JOB_ID = sa.bindparam("job_id", type_=sa.Integer())
JOB = Prepared("one job", sa.select(J).where(J.c.id == JOB_ID))
JOB_TASKS = Prepared(
    "a job's tasks with their claimers, in the order they were posted",
    TASK_VIEW.where(T.c.job_id == JOB_ID).order_by(T.c.id),
)
JOB_PAGE = Prepared(
    "a page of jobs, newest first",
    sa.select(J)
    .order_by(J.c.id.desc())
    .offset(sa.bindparam("offset", type_=sa.Integer()))
    .limit(sa.bindparam("limit", type_=sa.Integer())),
)
JOB_COUNTS = Prepared(
    "how many tasks of the jobs :lo to :hi are in each status",
    sa.select(T.c.job_id, T.c.status, sa.func.count().label("n"))
    .where(T.c.job_id.between(sa.bindparam("lo", type_=sa.Integer()),
                              sa.bindparam("hi", type_=sa.Integer())))
    .group_by(T.c.job_id, T.c.status),
)  # fmt: skip
_LIKE = sa.bindparam("like", type_=sa.String())
SUGGEST = Prepared(
    "open tasks whose number is :number or whose title contains :like, most urgent first",
    sa.select(T.c.id, T.c.title, T.c.language)
    .where(IS_OPEN, sa.or_(T.c.id == sa.bindparam("number", type_=sa.Integer()),
                           sa.func.lower(T.c.title).like(_LIKE, escape="\\")))
    .order_by(*QUEUE_ORDER)
    .limit(sa.bindparam("limit", type_=sa.Integer())),
)  # fmt: skip
SUGGEST_PREFIX = Prepared(
    "open tasks whose number starts with :like (digits), most urgent first",
    sa.select(T.c.id, T.c.title, T.c.language)
    .where(IS_OPEN, sa.cast(T.c.id, sa.String()).like(_LIKE))
    .order_by(*QUEUE_ORDER)
    .limit(sa.bindparam("limit", type_=sa.Integer())),
)
CLAIM_SEQ = Prepared(
    "how many claims a task has had", sa.select(T.c.claim_count).where(T.c.id == TASK_ID)
)


@lru_cache(maxsize=32)
def page(status: TaskStatus | None, kind: bool, language: bool) -> Prepared:
    """A page of the list (``:offset``, ``:limit``), filtered by ``:kind`` and ``:language``.

    Open and claimed tasks come most urgent first, others (and every status) newest first.
    """
    query = TASK_VIEW
    if status is not None:
        query = query.where(status_is(status))
    if kind:
        query = query.where(T.c.kind == sa.bindparam("kind", type_=sa.String()))
    if language:
        query = query.where(T.c.language == sa.bindparam("language", type_=sa.String()))
    urgent = status in (TaskStatus.OPEN, TaskStatus.CLAIMED, TaskStatus.IN_REVIEW)
    query = query.order_by(*QUEUE_ORDER) if urgent else query.order_by(T.c.id.desc())
    query = query.offset(sa.bindparam("offset", type_=sa.Integer()))
    query = query.limit(sa.bindparam("limit", type_=sa.Integer()))
    return Prepared(f"a page of {status or 'all'} tasks", query)


@lru_cache(maxsize=32)
def open_exists(kinds: int, kind: bool, language: bool) -> Prepared:
    """Whether any open task is there of kinds ``:k0``…, of ``:kind``, into ``:language``."""
    query = sa.select(T.c.id).where(IS_OPEN)
    if kinds:
        query = query.where(T.c.kind.in_([sa.bindparam(f"k{i}") for i in range(kinds)]))
    if kind:
        query = query.where(T.c.kind == sa.bindparam("kind", type_=sa.String()))
    if language:
        query = query.where(T.c.language == sa.bindparam("language", type_=sa.String()))
    return Prepared("whether an open task fits", query.limit(ONE))


# --- volunteers as claimers ------------------------------------------------------------------

_held_now = (
    sa.select(sa.func.count())
    .select_from(_held)
    .where(_held.c.claimed_by == V.c.id, status_is(TaskStatus.CLAIMED, _held))
    .scalar_subquery()
)


@dataclass(frozen=True, slots=True)
class Claimers:
    """The statements that find claimers: ``count`` volunteers of one platform.

    ``lock`` locks their rows until the transaction ends, in id order (``FOR UPDATE``; on
    SQLite, whose writers take turns anyway, it compiles to a plain read): whoever adds a
    claim for one of them (claim, task next, assign) waits there for any other doing so.
    ``read``, run after it, finds them with their roles (a row per role) and the tasks each
    holds; on PostgreSQL it is a statement of its own so that it counts every claim
    committed while ``lock`` waited.
    """

    lock: Prepared
    read: Prepared


@lru_cache(maxsize=128)
def claimers(count: int) -> Claimers:
    """Volunteers ``:platform`` / ``:e0``… (``count`` of them) as claimers."""
    named = [sa.bindparam(f"e{i}", type_=sa.String()) for i in range(count)]
    who = (V.c.platform == sa.bindparam("platform", type_=sa.String()), V.c.external_id.in_(named))
    lock = sa.select(V.c.id).where(*who).order_by(V.c.id).with_for_update()
    read = (
        sa.select(V.c.id, V.c.platform, V.c.external_id, V.c.languages, V.c.display_name,
                  R.c.role, _held_now.label("held"))
        .select_from(V.outerjoin(R, R.c.volunteer_id == V.c.id))
        .where(*who)
    )  # fmt: skip
    return Claimers(
        Prepared(f"lock {count} volunteers' rows", lock),
        Prepared(f"{count} volunteers with their roles and claims", read),
    )


OPEN_COUNT = Prepared(
    "how many tasks a volunteer holds",
    sa.select(sa.func.count()).select_from(T).where(T.c.claimed_by == VID, IS_CLAIMED),
)

# --- changing tasks --------------------------------------------------------------------------

# What posting sets; the claim's columns start empty.
_POSTED = ("kind", "title", "description", "language", "source_language", "priority", "due_at",
           "status", "created_at", "creator_platform", "creator_external_id", "creator_name",
           "claim_count", "source_url", "job_id")  # fmt: skip
POST = Prepared(
    "add a task to the queue",
    T.insert()
    .values({name: sa.bindparam(name, type_=T.c[name].type) for name in _POSTED})
    .returning(T.c.id),
)
EVENT = Prepared("write history lines", E.insert())
_JOB_POSTED = ("kind", "title", "description", "source_language", "source_url", "priority",
               "due_at", "created_at", "creator_platform", "creator_external_id",
               "creator_name")  # fmt: skip
POST_JOB = Prepared(
    "add a job, which its tasks then name",
    J.insert()
    .values({name: sa.bindparam(name, type_=J.c[name].type) for name in _JOB_POSTED})
    .returning(J.c.id),
)


@lru_cache(maxsize=16)
def claim(kinds: int) -> Prepared:
    """Claim task ``:task_id`` for a volunteer whose roles allow kinds ``:k0``…

    One conditional UPDATE: the task must be open and of one of those kinds, and the claimer
    under the limit. Whoever's statement changes the row has the task.
    """
    statement = (
        sa.update(T)
        .where(
            T.c.id == TASK_ID,
            IS_OPEN,
            T.c.kind.in_([sa.bindparam(f"k{i}", type_=sa.String()) for i in range(kinds)]),
            HAS_ROOM,
        )
        .values(CLAIM_VALUES)
        .returning(*T.c)
    )
    return Prepared(f"claim a task by number ({kinds} kinds)", statement)


@dataclass(frozen=True, slots=True)
class NextClaim:
    """The statements of one shape of ``task next``.

    ``skipping`` passes over candidates another transaction has locked (PostgreSQL's
    ``FOR UPDATE SKIP LOCKED``), so claimers do not queue behind one another; ``waiting``
    waits for them, for when everything that fits was locked; ``best`` finds the candidate
    without claiming (did anything fit at all?).
    """

    skipping: Prepared
    waiting: Prepared
    best: Prepared


@lru_cache(maxsize=256)
def claim_next(kinds: int, targets: tuple[bool, ...], sources: int) -> NextClaim:
    """``task next`` for kinds ``:k0``…, target languages, source languages ``:s0``…

    ``targets`` has one entry per target: True for tasks without a target language, False
    for ``:t<i>``. One index seek per (kind, target) on ``ix_task_match``, the best of those
    few rows, one conditional UPDATE: the cost does not grow with the queue.
    """
    source: sa.ColumnElement[bool] = T.c.source_language.is_(None)
    if sources:
        named = [sa.bindparam(f"s{i}", type_=sa.String()) for i in range(sources)]
        source = sa.or_(source, T.c.source_language.in_(named))

    def best(skip_locked: bool) -> sa.Select[Any]:
        branches = []
        for k in range(kinds):
            for i, untargeted in enumerate(targets):
                target = (
                    T.c.language.is_(None)
                    if untargeted
                    else T.c.language == sa.bindparam(f"t{i}", type_=sa.String())
                )
                branch = (
                    sa.select(T.c.id, T.c.priority, T.c.due_at)
                    .where(IS_OPEN, T.c.kind == sa.bindparam(f"k{k}", type_=sa.String()))
                    .where(target, source)
                    .order_by(*QUEUE_ORDER)
                    .limit(ONE)
                    .offset(ZERO)
                )
                if skip_locked:
                    branch = branch.with_for_update(skip_locked=True)
                branches.append(branch.subquery(f"b{k}_{i}").select())
        union = sa.union_all(*branches).subquery("best")
        return sa.select(union.c.id).order_by(*queue_order(union.c)).limit(ONE).offset(ZERO)

    def claiming(skip_locked: bool) -> sa.Executable:
        return (
            sa.update(T)
            .where(T.c.id == best(skip_locked).scalar_subquery(), IS_OPEN, HAS_ROOM)
            .values(CLAIM_VALUES)
            .returning(*T.c)
        )

    shape = f"{kinds} kinds, {len(targets)} targets, {sources} sources"
    return NextClaim(
        skipping=Prepared(f"task next, passing locked tasks ({shape})", claiming(True)),
        waiting=Prepared(f"task next ({shape})", claiming(False)),
        best=Prepared(f"the best task for task next ({shape})", best(False)),
    )


ASSIGN = Prepared(
    "give a task, as it was seen, to a volunteer under the limit",
    sa.update(T).where(*AS_SEEN, HAS_ROOM).values(CLAIM_VALUES),
)
RELEASE = Prepared(
    "give a task, as it was seen, back to the queue",
    sa.update(T).where(*AS_SEEN).values(RELEASE_VALUES),
)
RESULT_LINK = sa.bindparam("result_link", type_=sa.String())
RESULT_NOTE = sa.bindparam("result_note", type_=sa.Text())
FINISH = Prepared(
    "mark a task, as it was seen, done, with its deliverable",
    sa.update(T)
    .where(*AS_SEEN)
    .values(status=_status(TRANSITIONS[Change.DONE].end), closed_at=NOW, last_activity_at=NOW,
            result_link=RESULT_LINK, result_note=RESULT_NOTE, submitted_at=NOW),
)  # fmt: skip
SUBMIT = Prepared(
    "hand a task, as it was seen, in for review with its deliverable; its claimer stays",
    sa.update(T)
    .where(*AS_SEEN)
    .values(status=_status(TRANSITIONS[Change.SUBMITTED].end), last_activity_at=NOW,
            result_link=RESULT_LINK, result_note=RESULT_NOTE, submitted_at=NOW,
            reviewer_id=sa.null(), nudged_at=sa.null()),
)  # fmt: skip
SEEN_REVIEWER = sa.bindparam("seen_reviewer", type_=sa.Integer())
_REVIEW_AS_SEEN = (*AS_SEEN, T.c.reviewer_id.is_not_distinct_from(SEEN_REVIEWER))
APPROVE = Prepared(
    "approve a task in review, as it was seen: it is done",
    sa.update(T)
    .where(*_REVIEW_AS_SEEN)
    .values(status=_status(TRANSITIONS[Change.APPROVED].end), closed_at=NOW, reviewer_id=VID),
)
REVIEW_NOTE = sa.bindparam("review_note", type_=sa.Text())
SEND_BACK = Prepared(
    "send a task in review, as it was seen, back to its translator with the reviewer's note",
    sa.update(T)
    .where(*_REVIEW_AS_SEEN, T.c.claimed_by.is_not(None))
    .values(status=_status(TRANSITIONS[Change.CHANGES].end), claimed_at=NOW,
            claim_count=T.c.claim_count + ONE, last_activity_at=NOW, nudged_at=sa.null(),
            review_note=REVIEW_NOTE, reviewer_id=VID),
)  # fmt: skip
REOPEN = Prepared(
    "send a task in review, as it was seen and whose translator is gone, back to the queue",
    sa.update(T)
    .where(*_REVIEW_AS_SEEN, T.c.claimed_by.is_(None))
    .values(RELEASE_VALUES | {"review_note": REVIEW_NOTE, "reviewer_id": VID}),
)
TAKE_REVIEW = Prepared(
    "give the review of a task in review, as it was seen and nobody's, to :vid",
    sa.update(T).where(*_REVIEW_AS_SEEN, T.c.reviewer_id.is_(None)).values(reviewer_id=VID),
)
REVIEWS_HELD = Prepared(
    "the tasks whose review a volunteer holds, most urgent first",
    TASK_VIEW.where(IN_REVIEW, T.c.reviewer_id == VID).order_by(*QUEUE_ORDER),
)


@lru_cache(maxsize=64)
def next_review(kinds: int, targets: int) -> Prepared:
    """The best task in review nobody reviews yet, not the caller's own (``:vid``).

    Of kinds ``:k0``…; a translation only into ``:t0``…, other kinds in any language.
    """
    langs = [sa.bindparam(f"t{i}", type_=sa.String()) for i in range(targets)]
    translation: sa.ColumnElement[str] = sa.literal_column("'translation'")
    language_ok = sa.or_(T.c.kind != translation, T.c.language.is_(None),
                         T.c.language.in_(langs) if langs else sa.false())  # fmt: skip
    query = (
        sa.select(T.c.id)
        .where(IN_REVIEW, T.c.reviewer_id.is_(None), T.c.claimed_by.is_distinct_from(VID))
        .where(T.c.kind.in_([sa.bindparam(f"k{i}", type_=sa.String()) for i in range(kinds)]))
        .where(language_ok)
        .order_by(*QUEUE_ORDER)
        .limit(ONE)
    )
    return Prepared(f"the best review ({kinds} kinds, {targets} languages)", query)


EXTEND = Prepared(
    "restart the time to live of a claim its holder extends",
    sa.update(T)
    .where(T.c.id == TASK_ID, IS_CLAIMED, T.c.claimed_by == VID)
    .values(last_activity_at=NOW, nudged_at=sa.null()),
)
CANCEL = Prepared(
    "cancel a task, as it was seen",
    sa.update(T)
    .where(*AS_SEEN)
    .values(status=_status(TRANSITIONS[Change.CANCELLED].end), closed_at=NOW,
            reviewer_id=sa.null()),
)  # fmt: skip
TOUCH = Prepared(
    "record the claimer's activity on their task",
    sa.update(T)
    .where(T.c.id == TASK_ID, IS_CLAIMED, T.c.claimed_by == VID)
    .values(last_activity_at=NOW, nudged_at=sa.null()),
)

# --- expiry ----------------------------------------------------------------------------------
# Each step reads up to ``:batch`` claimed tasks that qualify, then moves each with its own
# update, conditional on the same claim (``:seq``) still qualifying: a task another writer
# changed meanwhile is skipped, never acted on twice.

CUTOFF = sa.bindparam("cutoff", type_=UTCDateTime())
BATCH = sa.bindparam("batch", type_=sa.Integer())
SEEN_ACTIVITY = sa.bindparam("seen_activity", type_=UTCDateTime())
_stale = sa.or_(T.c.last_activity_at <= CUTOFF, T.c.claimed_by.is_(None))
_idle = (T.c.nudged_at.is_(None), T.c.last_activity_at <= CUTOFF)
_due = (T.c.due_reminded_at.is_(None), T.c.due_at <= DUE_LIMIT)
_this_claim = (T.c.id == TASK_ID, IS_CLAIMED, T.c.claim_count == SEQ)

STALE = Prepared(
    "claims idle since :cutoff, or whose volunteer is gone",
    TASK_VIEW.where(IS_CLAIMED, _stale).limit(BATCH),
)
EXPIRE = Prepared(
    "give a stale claim back to the queue",
    sa.update(T).where(*_this_claim, _stale).values(RELEASE_VALUES),
)
IDLE = Prepared(
    "claims idle since :cutoff and not asked about yet",
    TASK_VIEW.where(IS_CLAIMED, *_idle).limit(BATCH),
)
NUDGE = Prepared(
    "mark an idle claim asked about, in the same idle stretch",
    sa.update(T)
    .where(*_this_claim, *_idle, T.c.last_activity_at == SEEN_ACTIVITY)
    .values(nudged_at=NOW),
)
DUE = Prepared(
    "claims due by :due_limit and not reminded of",
    TASK_VIEW.where(IS_CLAIMED, *_due).limit(BATCH),
)
REMIND = Prepared(
    "mark a claim reminded of its due date",
    sa.update(T).where(*_this_claim, *_due).values(due_reminded_at=NOW),
)

# --- personal data ---------------------------------------------------------------------------

PLATFORM = sa.bindparam("who_platform", type_=sa.String())
WHO = sa.bindparam("who", type_=sa.String())
_is_creator = (T.c.creator_platform == PLATFORM, T.c.creator_external_id == WHO)
_is_actor = sa.and_(E.c.actor_platform == PLATFORM, E.c.actor_external_id == WHO)
_is_subject = sa.and_(E.c.subject_platform == PLATFORM, E.c.subject_external_id == WHO)

CLAIMS_OF = Prepared(
    "every task a volunteer claimed and still has on record, with what they delivered",
    sa.select(T.c.id, T.c.title, T.c.status, T.c.claimed_at, T.c.result_link, T.c.result_note)
    .where(T.c.claimed_by == VID)
    .order_by(T.c.id),
)
REVIEWS_OF = Prepared(
    "every task whose review a volunteer holds or gave",
    sa.select(T.c.id, T.c.title, T.c.status, T.c.review_note)
    .where(T.c.reviewer_id == VID)
    .order_by(T.c.id),
)
_is_job_creator = (J.c.creator_platform == PLATFORM, J.c.creator_external_id == WHO)
JOBS_BY = Prepared(
    "every job a person posted",
    sa.select(J.c.id, J.c.title, J.c.description, J.c.created_at, J.c.creator_name)
    .where(*_is_job_creator)
    .order_by(J.c.id),
)
FORGET_JOB_CREATOR = Prepared(
    "forget who posted a person's jobs",
    sa.update(J)
    .where(*_is_job_creator)
    .values(creator_platform=sa.null(), creator_external_id=sa.null(), creator_name=sa.null()),
)
FORGET_REVIEWER = Prepared(
    "forget who reviewed, or holds the review of, tasks, with their review notes",
    sa.update(T)
    .where(T.c.reviewer_id == VID)
    .values(reviewer_id=sa.null(), review_note=sa.null()),
)
CREATED_BY = Prepared(
    "every task a person posted",
    sa.select(T.c.id, T.c.title, T.c.description, T.c.status, T.c.created_at, T.c.creator_name)
    .where(*_is_creator)
    .order_by(T.c.id),
)
EVENTS_NAMING = Prepared(
    "every history line naming a person",
    sa.select(E).where(sa.or_(_is_actor, _is_subject)).order_by(E.c.id),
)
RELEASE_ALL = Prepared(
    "give every task a volunteer holds back to the queue",
    sa.update(T).where(T.c.claimed_by == VID, IS_CLAIMED).values(RELEASE_VALUES).returning(T.c.id),
)
FORGET_CLAIMER = Prepared(
    "forget who claimed a volunteer's closed tasks, and their notes on what they delivered",
    sa.update(T).where(T.c.claimed_by == VID).values(claimed_by=sa.null(), result_note=sa.null()),
)
FORGET_CREATOR = Prepared(
    "forget who posted a person's tasks",
    sa.update(T)
    .where(*_is_creator)
    .values(creator_platform=sa.null(), creator_external_id=sa.null(), creator_name=sa.null()),
)
FORGET_ACTOR = Prepared(
    "forget a person where history says they acted, with their notes",
    sa.update(E)
    .where(_is_actor)
    .values(actor_platform=sa.null(), actor_external_id=sa.null(), actor_name=sa.null(),
            note=sa.null()),
)  # fmt: skip
FORGET_SUBJECT = Prepared(
    "forget a person where history says something happened to them",
    sa.update(E)
    .where(_is_subject)
    .values(subject_platform=sa.null(), subject_external_id=sa.null(), subject_name=sa.null()),
)
