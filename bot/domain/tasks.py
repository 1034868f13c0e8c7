"""The task lifecycle: states and transitions, who may do what, the claim limit, expiry.

Pure rules: no database, no platform. Storage persists a change with one conditional
statement whose condition is the rule below, and when that statement changes nothing it asks
these functions, on the task as it is now, why (or whether to try again).
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from bot.domain.vocab import KIND_ROLE, TaskKind, TaskStatus

OPEN, CLAIMED, IN_REVIEW, DONE, CANCELLED = TaskStatus
# A claim taken less than this before the due date needs no reminder; others get one then.
DUE_REMINDER = timedelta(days=1)
# The "still on it?" notice goes out at this share of the claim's time to live.
IDLE_NOTICE_AT = 0.8


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
    NOT_IN_REVIEW = "not-in-review"
    IN_REVIEW = "in-review"
    OWN_WORK = "own-work"
    WRONG_LANGUAGE = "wrong-language"
    REVIEW_TAKEN = "review-taken"


class Change(StrEnum):
    """What can happen to a task; each is one line of its history."""

    POSTED = "posted"
    CLAIMED = "claimed"
    ASSIGNED = "assigned"
    RELEASED = "released"
    EXPIRED = "expired"
    DONE = "done"
    CANCELLED = "cancelled"
    SUBMITTED = "submitted"  # done by its claimer, now waiting for review
    REVIEWING = "reviewing"  # a reviewer took the review (``task next --review``)
    APPROVED = "approved"
    CHANGES = "changes"  # the reviewer asked for changes: back to its translator
    EXTENDED = "extended"  # the holder restarted the claim's time to live


class Verdict(StrEnum):
    """What a reviewer decides."""

    APPROVE = "approve"
    CHANGES = "changes"


@dataclass(frozen=True, slots=True)
class Transition:
    """The statuses a change may start from, and the status it leaves."""

    start: frozenset[TaskStatus]
    end: TaskStatus


TRANSITIONS: dict[Change, Transition] = {
    Change.CLAIMED: Transition(frozenset({OPEN}), CLAIMED),
    Change.ASSIGNED: Transition(frozenset({OPEN, CLAIMED}), CLAIMED),
    Change.RELEASED: Transition(frozenset({CLAIMED}), OPEN),
    Change.EXPIRED: Transition(frozenset({CLAIMED}), OPEN),
    Change.DONE: Transition(frozenset({CLAIMED}), DONE),
    Change.CANCELLED: Transition(frozenset({OPEN, CLAIMED, IN_REVIEW}), CANCELLED),
    Change.SUBMITTED: Transition(frozenset({CLAIMED}), IN_REVIEW),
    Change.REVIEWING: Transition(frozenset({IN_REVIEW}), IN_REVIEW),
    Change.APPROVED: Transition(frozenset({IN_REVIEW}), DONE),
    Change.CHANGES: Transition(frozenset({IN_REVIEW}), CLAIMED),
    Change.EXTENDED: Transition(frozenset({CLAIMED}), CLAIMED),
}
VERDICT_CHANGE: dict[Verdict, Change] = {
    Verdict.APPROVE: Change.APPROVED,
    Verdict.CHANGES: Change.CHANGES,
}
CLOSED_STATUSES = frozenset({DONE, CANCELLED})


def is_closed(status: TaskStatus) -> bool:
    """Whether a task can no longer change."""
    return status in CLOSED_STATUSES


def after(change: Change, status: TaskStatus) -> TaskStatus | None:
    """The status ``change`` leaves a task in ``status`` with; None if it cannot happen."""
    transition = TRANSITIONS[change]
    return transition.end if status in transition.start else None


class TaskFacts(Protocol):
    """What the rules need to know about a task."""

    @property
    def status(self) -> TaskStatus:
        """Where the task is in its life."""
        ...

    @property
    def kind(self) -> TaskKind:
        """What kind of job it is."""
        ...

    @property
    def claimed_by(self) -> int | None:
        """The volunteer holding it (their record's id), if any."""
        ...


# --- who may take what ---------------------------------------------------------------------


@lru_cache(maxsize=128)
def kinds_for(roles: frozenset[str]) -> tuple[TaskKind, ...]:
    """The kinds of task a volunteer with ``roles`` may take (``other`` suits everyone)."""
    return tuple(k for k, role in KIND_ROLE.items() if role is None or role in roles)


def may_take(kind: TaskKind, roles: Collection[str]) -> bool:
    """Whether someone with ``roles`` may hold a task of ``kind``."""
    role = KIND_ROLE[kind]
    return role is None or role in roles


def has_room(held: int, max_open: int) -> bool:
    """Whether a volunteer holding ``held`` claims may take one more."""
    return held < max_open


def fits(
    kind: TaskKind,
    language: str | None,
    source_language: str | None,
    *,
    roles: Collection[str],
    languages: Collection[str],
) -> bool:
    """Whether ``task next`` would give someone this task.

    Its kind's role must be theirs, and its target and source languages (where it has them)
    among their languages.
    """
    return (
        may_take(kind, roles)
        and (language is None or language in languages)
        and (source_language is None or source_language in languages)
    )


@dataclass(frozen=True, slots=True)
class Search:
    """What ``task next`` looks for: these kinds, into these targets, from these sources.

    ``None`` among the targets stands for tasks without a target language.
    """

    kinds: tuple[TaskKind, ...]
    targets: tuple[str | None, ...]
    sources: tuple[str, ...]


def search_for(
    roles: frozenset[str],
    languages: tuple[str, ...],
    *,
    kind: TaskKind | None = None,
    language: str | None = None,
) -> Search | tuple[Outcome, str]:
    """The search ``task next`` runs for someone, or why it cannot run (and about what)."""
    kinds = kinds_for(roles)
    if kind is not None:
        if kind not in kinds:
            return Outcome.NO_ROLE, kind.value
        kinds = (kind,)
    if language is not None:
        if language not in languages:
            return Outcome.NOT_YOUR_LANGUAGE, language
        return Search(kinds, (language,), languages)
    return Search(kinds, (None, *languages), languages)


def why_nothing_fits(*, any_open: bool, any_for_roles: bool) -> Outcome:
    """Why ``task next`` found nothing: an empty queue, no task for the roles, or languages."""
    if not any_open:
        return Outcome.EMPTY
    return Outcome.NO_LANGUAGE if any_for_roles else Outcome.NO_ROLE


# --- who may change a task -------------------------------------------------------------------
# Each answers OK when the change may happen to ``task`` as it is now, or the refusal. The
# storage statement making the change is conditional on the same facts, so an OK after it
# changed nothing means another writer got in between: read the task again and retry.


def check_claim(
    task: TaskFacts, me: int, roles: Collection[str], held: int, max_open: int
) -> Outcome:
    """Whether volunteer ``me`` (holding ``held`` claims, with ``roles``) may claim ``task``."""
    if is_closed(task.status):
        return Outcome.CLOSED
    if task.status is CLAIMED:
        return Outcome.ALREADY_YOURS if task.claimed_by == me else Outcome.TAKEN
    if task.status is IN_REVIEW:
        return Outcome.IN_REVIEW
    if not may_take(task.kind, roles):
        return Outcome.NO_ROLE
    if not has_room(held, max_open):
        return Outcome.LIMIT
    return Outcome.OK


def check_unclaim(task: TaskFacts, me: int | None, *, override: bool) -> Outcome:
    """Whether ``me`` may give ``task`` back; ``override`` is a coordinator's right to."""
    if is_closed(task.status):
        return Outcome.CLOSED
    if task.status is OPEN:
        return Outcome.NOT_CLAIMED
    if task.status is IN_REVIEW:
        return Outcome.IN_REVIEW
    if override or (me is not None and task.claimed_by == me):
        return Outcome.OK
    return Outcome.NOT_YOURS


def check_finish(task: TaskFacts, me: int | None) -> Outcome:
    """Whether ``me`` may mark ``task`` done: only its claimer can."""
    if is_closed(task.status):
        return Outcome.CLOSED
    if task.status is OPEN:
        return Outcome.NOT_CLAIMED
    if task.status is IN_REVIEW:
        return Outcome.IN_REVIEW
    if me is None or task.claimed_by != me:
        return Outcome.NOT_YOURS
    return Outcome.OK


def check_assign(task: TaskFacts, assignee: int, held: int, max_open: int) -> Outcome:
    """Whether a coordinator may give ``task`` to ``assignee`` (holding ``held`` claims).

    A coordinator's override: the assignee needs no role for it, but the limit holds.
    """
    if is_closed(task.status):
        return Outcome.CLOSED
    if task.status is IN_REVIEW:
        return Outcome.IN_REVIEW
    if task.claimed_by == assignee and task.status is CLAIMED:
        return Outcome.ALREADY_YOURS
    if not has_room(held, max_open):
        return Outcome.LIMIT
    return Outcome.OK


def check_cancel(task: TaskFacts) -> Outcome:
    """Whether ``task`` may be cancelled: anything not closed yet may."""
    return Outcome.CLOSED if is_closed(task.status) else Outcome.OK


def check_extend(task: TaskFacts, me: int | None) -> Outcome:
    """Whether ``me`` may restart the time to live of their claim on ``task``."""
    return check_finish(task, me)


# --- review --------------------------------------------------------------------------------

DEFAULT_REVIEW_KINDS: tuple[TaskKind, ...] = (TaskKind.TRANSLATION, TaskKind.VIDEO_EDITING)


class ReviewFacts(TaskFacts, Protocol):
    """What the review rules need to know about a task besides its status and claimer."""

    @property
    def language(self) -> str | None:
        """The target language, if any."""
        ...

    @property
    def reviewer_id(self) -> int | None:
        """The volunteer holding its review, if any."""
        ...


def finishing(kind: TaskKind, review_kinds: Collection[TaskKind]) -> Change:
    """What ``task done`` does to a task of ``kind``: submit it for review, or finish it."""
    return Change.SUBMITTED if kind in review_kinds else Change.DONE


def may_review(
    kind: TaskKind, language: str | None, roles: Collection[str], languages: Collection[str]
) -> Outcome:
    """Whether someone with ``roles`` and ``languages`` may review work of this kind.

    They need the kind's role; a translation's reviewer also works in its target language.
    """
    if not may_take(kind, roles):
        return Outcome.NO_ROLE
    if kind is TaskKind.TRANSLATION and language is not None and language not in languages:
        return Outcome.WRONG_LANGUAGE
    return Outcome.OK


def check_review(
    task: ReviewFacts,
    me: int | None,
    roles: Collection[str],
    languages: Collection[str],
    *,
    coordinator: bool,
) -> Outcome:
    """Whether ``me`` may give their verdict on ``task``.

    Nobody reviews their own work; coordinators may review anything else, whoever holds the
    review. Others need :func:`may_review` and a review nobody else holds.
    """
    if is_closed(task.status):
        return Outcome.CLOSED
    if task.status is not IN_REVIEW:
        return Outcome.NOT_IN_REVIEW
    if me is not None and task.claimed_by == me:
        return Outcome.OWN_WORK
    if coordinator:
        return Outcome.OK
    if me is None:
        return Outcome.NOT_REGISTERED
    allowed = may_review(task.kind, task.language, roles, languages)
    if allowed is not Outcome.OK:
        return allowed
    if task.reviewer_id is not None and task.reviewer_id != me:
        return Outcome.REVIEW_TAKEN
    return Outcome.OK


def review_search(
    roles: frozenset[str], languages: tuple[str, ...]
) -> tuple[tuple[TaskKind, ...], tuple[str, ...]] | Outcome:
    """The kinds and target languages ``task next --review`` looks in, or why there are none.

    Translations only into the reviewer's languages; other kinds in any language.
    """
    kinds = tuple(k for k in kinds_for(roles) if KIND_ROLE[k] is not None)
    if not kinds:
        return Outcome.NO_ROLE
    return kinds, languages


# --- expiry --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expiry:
    """When an idle claim is nudged and released, and when a due date is reminded of.

    A claim with no activity for ``ttl`` goes back to the queue; at ``IDLE_NOTICE_AT`` of
    that its holder is asked whether they are still on it, once per idle stretch (activity
    starts a new one). A claimed task due within ``DUE_REMINDER`` is reminded of once per
    claim, unless it was claimed that close to its due date already.
    """

    ttl: timedelta

    def release_cutoff(self, now: datetime) -> datetime:
        """Claims with no activity since this moment go back to the queue."""
        return now - self.ttl

    def nudge_cutoff(self, now: datetime) -> datetime:
        """Claims with no activity since this moment get a "still on it?"."""
        return now - self.ttl * IDLE_NOTICE_AT

    def release_at(self, last_activity: datetime) -> datetime:
        """When a claim last active at ``last_activity`` will be released."""
        return last_activity + self.ttl

    def expired(self, last_activity: datetime, now: datetime) -> bool:
        """Whether the claim goes back to the queue now."""
        return last_activity <= self.release_cutoff(now)

    def nudge_due(self, last_activity: datetime, nudged: bool, now: datetime) -> bool:
        """Whether the claim's holder is asked "still on it?" now."""
        return not nudged and last_activity <= self.nudge_cutoff(now)


def due_cutoff(now: datetime) -> datetime:
    """Claimed tasks due by this moment get their due-date reminder."""
    return now + DUE_REMINDER


def due_reminder_needed(due_at: datetime | None, claimed_at: datetime) -> bool:
    """Whether a claim taken at ``claimed_at`` will need a due-date reminder later."""
    return due_at is not None and due_at > due_cutoff(claimed_at)


# --- notices -------------------------------------------------------------------------------


class Notice(StrEnum):
    """The notices the queue sends a claimer; each is a kind of outbox row."""

    IDLE = "task.idle"
    EXPIRED = "task.expired"
    DUE = "task.due"
    ASSIGNED = "task.assigned"
    CANCELLED = "task.cancelled"
    CHANGES = "task.changes"  # a reviewer asked for changes: the note goes to the translator
    APPROVED = "task.approved"


@dataclass(frozen=True, slots=True)
class TaskNotice:
    """What a notice tells its recipient happened: the facts its outbox row carries.

    ``when`` is the release time (idle) or the due date (due); ``by`` the coordinator who
    assigned or cancelled the task.
    """

    notice: Notice
    task_id: int
    title: str
    when: datetime | None = None
    by: str | None = None
    note: str | None = None

    def data(self) -> dict[str, Any]:
        """The row's JSON-ready facts."""
        facts: dict[str, Any] = {"task": self.task_id, "title": self.title}
        if self.when is not None:
            facts["when"] = self.when.isoformat()
        if self.by is not None:
            facts["by"] = self.by
        if self.note is not None:
            facts["note"] = self.note
        return facts

    @classmethod
    def from_data(cls, notice: Notice, data: dict[str, Any]) -> "TaskNotice":
        """Inverse of :meth:`data`."""
        when = data.get("when")
        return cls(
            notice,
            int(data["task"]),
            str(data["title"]),
            datetime.fromisoformat(when) if when else None,
            data.get("by"),
            data.get("note"),
        )


def notice_key(notice: TaskNotice, claim: int, idle_since: datetime | None = None) -> str:
    """The notice's exactly-once key: one per claim (``claim`` counts the task's claims).

    An idle notice is once per idle stretch, named by when the stretch began.
    """
    if notice.notice is Notice.CANCELLED:
        return f"task:{notice.task_id}:cancelled"
    if notice.notice is Notice.APPROVED:
        return f"task:{notice.task_id}:approved"
    what = notice.notice.value.removeprefix("task.")
    if notice.notice is Notice.IDLE:
        assert idle_since is not None
        what = f"idle:{int(idle_since.timestamp())}"
    return f"task:{notice.task_id}:claim:{claim}:{what}"
