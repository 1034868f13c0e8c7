"""What the task queue hands back: tasks, history lines, outcomes; and rows made into them."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from bot.domain import Priority, TaskKind, TaskStatus, UserRef
from bot.domain.tasks import Outcome


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
    job_id: int | None = None
    source_url: str | None = None
    result_link: str | None = None
    result_note: str | None = None
    review_note: str | None = None
    reviewer_id: int | None = None
    submitted_at: datetime | None = None
    reviewer: UserRef | None = None

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


class Suggestion(NamedTuple):
    """An open task offered while a task number is being typed: its number and a label."""

    id: int
    label: str


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one expiry sweep did."""

    nudged: int = 0
    released: int = 0
    reminded: int = 0


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
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """What a coordinator fills in when posting one job into several target languages.

    Posted as one task per language (:meth:`tasks`); with more than one language the tasks
    are grouped as a job, otherwise the single task stands alone.
    """

    kind: TaskKind
    title: str
    languages: tuple[str | None, ...]
    description: str | None = None
    source_language: str | None = None
    source_url: str | None = None
    priority: Priority = Priority.NORMAL
    due_at: datetime | None = None

    @property
    def grouped(self) -> bool:
        """Whether posting it makes a job (more than one language)."""
        return len(self.languages) > 1

    def tasks(self) -> list["NewTask"]:
        """The task for each target language, in the order given."""
        return [
            NewTask(self.kind, self.title, self.description, language, self.source_language,
                    self.priority, self.due_at, self.source_url)
            for language in self.languages
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Posted:
    """What posting one :class:`NewJob` created: the job (None if ungrouped) and its tasks."""

    job_id: int | None
    task_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as the cogs see it; its tasks are :class:`TaskView` rows with its ``job_id``."""

    id: int
    kind: TaskKind
    title: str
    description: str | None
    source_language: str | None
    source_url: str | None
    priority: Priority
    due_at: datetime | None
    created_at: datetime
    creator: UserRef | None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One line of ``job list``: the job and how many of its tasks are in each status."""

    job: JobView
    counts: dict[TaskStatus, int]

    @property
    def total(self) -> int:
        """How many tasks (languages) the job has."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Claimer:
    """A registered volunteer as a claim needs them."""

    id: int
    user: UserRef
    roles: frozenset[str]
    languages: tuple[str, ...]
    held: int  # open claims when looked up


_PRIORITIES = tuple(Priority)


def person(m: Mapping[str, Any], prefix: str) -> UserRef | None:
    """The identity stored in a row's ``<prefix>_platform`` / ``_external_id`` / ``_name``."""
    platform = m.get(f"{prefix}_platform")
    if platform is None:
        return None
    return UserRef(platform, m[f"{prefix}_external_id"], m[f"{prefix}_name"] or "")


def task_view(m: Mapping[str, Any]) -> TaskView:
    """A task from a row of :data:`~storage.tasks.statements.TASK_VIEW`."""
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
        creator=person(m, "creator"),
        claimed_by=m["claimed_by"],
        claimer=person(m, "claimer"),
        claimed_at=m["claimed_at"],
        claim_place=m["claim_place"],
        last_activity_at=m["last_activity_at"],
        closed_at=m["closed_at"],
        job_id=m["job_id"],
        source_url=m["source_url"],
        result_link=m["result_link"],
        result_note=m["result_note"],
        review_note=m["review_note"],
        reviewer_id=m["reviewer_id"],
        submitted_at=m["submitted_at"],
        reviewer=person(m, "reviewer"),
    )


def job_view(m: Mapping[str, Any]) -> JobView:
    """A job from a row of the job table."""
    return JobView(
        id=m["id"],
        kind=TaskKind(m["kind"]),
        title=m["title"],
        description=m["description"],
        source_language=m["source_language"],
        source_url=m["source_url"],
        priority=_PRIORITIES[m["priority"]],
        due_at=m["due_at"],
        created_at=m["created_at"],
        creator=person(m, "creator"),
    )


def held_view(m: Mapping[str, Any], claimer: UserRef) -> TaskView:
    """A task row of the task table alone, held by ``claimer``."""
    return task_view(
        {**m, "claimer_platform": claimer.platform, "claimer_external_id": claimer.external_id,
         "claimer_name": claimer.display_name}
    )  # fmt: skip


def event_view(m: Mapping[str, Any]) -> EventView:
    """A history line from a row of the event table."""
    return EventView(m["at"], m["action"], person(m, "actor"), person(m, "subject"), m["note"])


def event_row(
    task_id: int,
    action: str,
    now: datetime,
    actor: UserRef | None,
    subject: UserRef | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The parameters of one history line (:data:`~storage.tasks.statements.EVENT`)."""
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


def claimer_from(rows: list[dict[str, Any]]) -> Claimer:
    """A claimer from their rows of :func:`~storage.tasks.statements.claimers` (one a role)."""
    first = rows[0]
    return Claimer(
        id=first["id"],
        user=UserRef(first["platform"], first["external_id"], first["display_name"]),
        roles=frozenset(r["role"] for r in rows if r["role"] is not None),
        languages=tuple(code for code in first["languages"].split(",") if code),
        held=int(first["held"]),
    )
