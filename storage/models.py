"""The tables. Every timestamp is aware UTC; identities are (platform, external_id)."""

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime

# Tables that never hold anything about a person. Every other table must be covered by
# some cog's export_data and erase_data; tests/test_privacy_coverage.py checks both.
# (erasure_pending names a person only while their erasure runs: its row goes last.)
NO_PERSONAL_DATA: frozenset[str] = frozenset(
    {
        "schema_version",
        "bot_state",
        "reached_milestone",
        "lease",
        "bot_process",
        "claimed_event",
        "web_token_used",
        "erasure_pending",
        "task_tally",
    }
)


def utc_column(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    """A UTC timestamp column."""
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Volunteer(SQLModel, table=True):
    """A registered person: the minimum we need to match them to tasks."""

    __tablename__ = "volunteer"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    external_id: str = Field(max_length=255)
    display_name: str = Field(max_length=255)
    languages: str = Field(default="", max_length=255)  # comma-separated codes, in order given
    country: str | None = Field(default=None, max_length=2)
    created_at: datetime = Field(sa_column=utc_column())
    last_active_at: datetime = Field(sa_column=utc_column(index=True))

    @property
    def language_list(self) -> list[str]:
        """The languages as a list."""
        return [code for code in self.languages.split(",") if code]


class VolunteerRole(SQLModel, table=True):
    """One role a volunteer has taken on."""

    __tablename__ = "volunteer_role"

    volunteer_id: int = Field(foreign_key="volunteer.id", primary_key=True, ondelete="CASCADE")
    role: str = Field(primary_key=True, max_length=32)
    since: datetime = Field(sa_column=utc_column())


class OutboxMessage(SQLModel, table=True):
    """A post the bot owes someone: written with the change that causes it, sent once."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "platform", "sent_at", "due_at"),
        Index("ix_outbox_recipient", "recipient_platform", "recipient_id"),
        Index("ix_outbox_subject", "subject_platform", "subject_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    platform: str = Field(max_length=16)
    target: str = Field(max_length=255)
    # Whom it is for, and whom its facts name (by ``subject_name``): stable platform ids,
    # never display names, are what export and erasure match a post to a person by.
    recipient_platform: str | None = Field(default=None, max_length=16)
    recipient_id: str | None = Field(default=None, max_length=255, index=True)
    subject_platform: str | None = Field(default=None, max_length=16)
    subject_id: str | None = Field(default=None, max_length=255)
    subject_name: str | None = Field(default=None, max_length=255)
    # What happened, as a kind of post and its facts (JSON); put in words at delivery.
    kind: str = Field(default="markup", max_length=32)
    body: str
    attachment_name: str | None = Field(default=None, max_length=255)
    attachment: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(sa_column=utc_column())
    due_at: datetime = Field(sa_column=utc_column())
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_error: str | None = Field(default=None, max_length=255)


class BotState(SQLModel, table=True):
    """Small named values the bot keeps between runs (sync tokens, command hashes)."""

    __tablename__ = "bot_state"

    key: str = Field(primary_key=True, max_length=255)
    value: str
    updated_at: datetime = Field(sa_column=utc_column())


class Job(SQLModel, table=True):
    """One piece of work fanned out as a task per target language (a leaflet into 23).

    The creator is a bare identity, as on a task; erasure sets it to NULL.
    """

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_creator", "creator_platform", "creator_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    source_language: str | None = Field(default=None, max_length=2)
    source_url: str | None = Field(default=None, max_length=2000)  # what to work from
    priority: int = 1
    due_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    created_at: datetime = Field(sa_column=utc_column())
    creator_platform: str | None = Field(default=None, max_length=16)
    creator_external_id: str | None = Field(default=None, max_length=255)
    creator_name: str | None = Field(default=None, max_length=255)


class Task(SQLModel, table=True):
    """A job in the shared queue.

    ``claimed_by`` is the registered volunteer holding it. The creator is kept as a bare
    identity (coordinators need not be volunteers); erasure sets it to NULL, which reads as
    "a former volunteer".
    """

    __tablename__ = "task"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    language: str | None = Field(default=None, max_length=2)  # the target language
    source_language: str | None = Field(default=None, max_length=2)
    priority: int = 1  # Priority.rank: 3 urgent ... 0 low
    due_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    status: str = Field(default="open", max_length=16)
    created_at: datetime = Field(sa_column=utc_column())
    creator_platform: str | None = Field(default=None, max_length=16)
    creator_external_id: str | None = Field(default=None, max_length=255)
    creator_name: str | None = Field(default=None, max_length=255)
    claimed_by: int | None = Field(default=None, foreign_key="volunteer.id", ondelete="SET NULL")
    claimed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    claim_place: str | None = Field(default=None, max_length=255)
    # Counts claims over the task's life: outbox keys of notices about one claim include it.
    claim_count: int = 0
    last_activity_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    nudged_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    due_reminded_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    # The job it is one language of, if it was fanned out.
    job_id: int | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    source_url: str | None = Field(default=None, max_length=2000)  # what to work from
    # The deliverable, recorded by ``task done``: a link found in the note, and the note.
    result_link: str | None = Field(default=None, max_length=2000)
    result_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # While in review ``claimed_by`` stays the submitter; ``reviewer_id`` holds the review.
    review_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reviewer_id: int | None = Field(default=None, foreign_key="volunteer.id", ondelete="SET NULL")
    submitted_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class TaskEvent(SQLModel, table=True):
    """One change to a task: who did what, when. NULL identities read "a former volunteer"."""

    __tablename__ = "task_event"
    __table_args__ = (
        Index("ix_task_event_task", "task_id"),
        Index("ix_task_event_actor", "actor_platform", "actor_external_id"),
        Index("ix_task_event_subject", "subject_platform", "subject_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", ondelete="CASCADE")
    at: datetime = Field(sa_column=utc_column())
    action: str = Field(max_length=16)
    actor_platform: str | None = Field(default=None, max_length=16)
    actor_external_id: str | None = Field(default=None, max_length=255)
    actor_name: str | None = Field(default=None, max_length=255)
    subject_platform: str | None = Field(default=None, max_length=16)
    subject_external_id: str | None = Field(default=None, max_length=255)
    subject_name: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


def _task_indexes() -> None:
    """The queue's indexes; they need column expressions, so they are added after the class."""
    c = Task.__table__.c  # type: ignore[attr-defined]
    # Queue order: priority, then due date with undated tasks last, then age.
    order = (c.priority.desc(), c.due_at.is_(None), c.due_at, c.id)
    is_open = text("status = 'open'")
    Index("ix_task_queue", c.status, *order)
    # Ends with the source language so `task next` can tell from the index alone whether a
    # candidate fits, without reading the task's row.
    Index("ix_task_match", c.kind, c.language, *order, c.source_language,
          sqlite_where=is_open, postgresql_where=is_open)  # fmt: skip
    # Only tasks someone holds or held: a claim then adds one entry to each instead of also
    # removing one from among a million open tasks (a random page to read and rewrite).
    has_claimer = text("claimed_by IS NOT NULL")
    is_claimed = text("status = 'claimed'")
    Index("ix_task_claimer", c.claimed_by, c.status,
          sqlite_where=has_claimer, postgresql_where=has_claimer)  # fmt: skip
    Index("ix_task_claimed", c.status, c.last_activity_at,
          sqlite_where=is_claimed, postgresql_where=is_claimed)  # fmt: skip
    Index("ix_task_creator", c.creator_platform, c.creator_external_id)
    Index("ix_task_job", c.job_id, c.language)
    in_review = text("status = 'in_review'")
    Index("ix_task_review", c.kind, c.language, *order,
          sqlite_where=in_review, postgresql_where=in_review)  # fmt: skip
    has_reviewer = text("reviewer_id IS NOT NULL")
    Index("ix_task_reviewer", c.reviewer_id,
          sqlite_where=has_reviewer, postgresql_where=has_reviewer)  # fmt: skip
    # The oldest open tasks first, for the coordinators' report.
    Index("ix_task_open_age", c.id, sqlite_where=is_open, postgresql_where=is_open)


_task_indexes()


class Reminder(SQLModel, table=True):
    """A post the bot makes later in the place it was asked for, once or on a cron schedule.

    This row is the truth: the scheduler only holds a job per active row, carrying its id.
    """

    __tablename__ = "reminder"
    __table_args__ = (Index("ix_reminder_due", "state", "next_run_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Who made it; both None once the creator has erased their data.
    creator_platform: str | None = Field(default=None, max_length=16)
    creator_id: str | None = Field(default=None, max_length=255)
    target: str = Field(max_length=255)  # outbox address of the place it was made in
    message: str = Field(max_length=1000)
    kind: str = Field(max_length=8)  # "once" or "cron"
    cron: str | None = Field(default=None, max_length=100)
    timezone: str = Field(max_length=64)
    next_run_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    last_fired_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    state: str = Field(max_length=16)  # "active", "done" or "missed"
    created_at: datetime = Field(sa_column=utc_column())


class SignatureCount(SQLModel, table=True):
    """One recorded count: the total (country None) or one member state's."""

    __tablename__ = "signature_count"
    __table_args__ = (Index("ix_signature_count_country", "country", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    country: str | None = Field(default=None, max_length=2)
    count: int
    recorded_at: datetime = Field(sa_column=utc_column())
    source: str = Field(max_length=32)  # "manual", "json", "eci_register", "eci_cocs"
    # The coordinator who typed it; None for polled counts and after erasure.
    recorded_by_platform: str | None = Field(default=None, max_length=16)
    recorded_by_id: str | None = Field(default=None, max_length=255, index=True)


class ReachedMilestone(SQLModel, table=True):
    """A milestone that has been announced; its key makes that happen once, ever."""

    __tablename__ = "reached_milestone"

    key: str = Field(primary_key=True, max_length=64)  # "total:100000", "country:DE", ...
    count: int
    reached_at: datetime = Field(sa_column=utc_column())


class AuditEvent(SQLModel, table=True):
    """One coordinator-only command someone ran (or was refused): who, what, where, when."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_actor", "actor_platform", "actor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=utc_column(index=True))
    # Who ran it; both None (and the name "a former volunteer") once they erased their data.
    actor_platform: str | None = Field(default=None, max_length=16)
    actor_id: str | None = Field(default=None, max_length=255)
    actor_name: str = Field(max_length=255)
    command: str = Field(max_length=64)  # "task cancel"
    detail: str = Field(max_length=500)  # the arguments, shortened: "id=1"
    place: str = Field(max_length=255)  # outbox address of where it was run
    place_private: bool = False  # a direct chat: the address says whose it is
    outcome: str = Field(max_length=16)  # "done", "refused" or "failed"
    # A person the command was about (task assign's user), for export and erase.
    subject_platform: str | None = Field(default=None, max_length=16)
    subject_id: str | None = Field(default=None, max_length=255, index=True)


class UsedToken(SQLModel, table=True):
    """A sign-in link already used, or a dashboard session ended: its random id, nothing else.

    Kept until the token would have expired anyway, then deleted.
    """

    __tablename__ = "web_token_used"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8)  # "link" or "session"
    expires_at: datetime = Field(sa_column=utc_column(index=True))
    used_at: datetime = Field(sa_column=utc_column())


class Lease(SQLModel, table=True):
    """Which process serves one duty (the Matrix sync, the scheduler, ...) and until when.

    ``token`` grows by one whenever the holder changes: a write that must not happen twice
    checks that its process still holds the lease with the token it was given (fencing).
    """

    __tablename__ = "lease"

    duty: str = Field(primary_key=True, max_length=32)
    holder: str | None = Field(default=None, max_length=128)
    token: int = 0
    expires_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    acquired_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class BotProcess(SQLModel, table=True):
    """A running bot process, for ``volunteer-bot status``; refreshed by its heartbeat."""

    __tablename__ = "bot_process"

    id: str = Field(primary_key=True, max_length=128)  # host:pid:random
    host: str = Field(max_length=255)
    pid: int
    version: str = Field(max_length=32)
    started_at: datetime = Field(sa_column=utc_column())
    heartbeat_at: datetime = Field(sa_column=utc_column())


class ClaimedEvent(SQLModel, table=True):
    """An incoming platform event one process has taken on, so no other handles it again."""

    __tablename__ = "claimed_event"

    key: str = Field(primary_key=True, max_length=255)  # "matrix:$event_id"
    claimed_at: datetime = Field(sa_column=utc_column(index=True))
    # The answer, kept from when it is ready until it is sent, so a process that takes over
    # sends what its predecessor could not (JSON; None once sent).
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    answered_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class PendingErasure(SQLModel, table=True):
    """A person whose erasure has begun and not finished: written first, deleted last.

    While it exists no command writes anything about the person (see ``storage.erasure``),
    and a process that starts finishes the erasure a killed one left behind.
    """

    __tablename__ = "erasure_pending"

    platform: str = Field(primary_key=True, max_length=16)
    external_id: str = Field(primary_key=True, max_length=255)
    started_at: datetime = Field(sa_column=utc_column())


class DirectChat(SQLModel, table=True):
    """A direct chat the bot opened with one person, to answer them confidentially.

    The room id says who talks with the bot, so it is personal data: exported and erased
    with the person.
    """

    __tablename__ = "direct_chat"

    platform: str = Field(primary_key=True, max_length=16)
    external_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)
    created_at: datetime = Field(sa_column=utc_column())


class UploadedMedia(SQLModel, table=True):
    """A file the bot uploaded for one person (their data export, a picture only for them).

    Its address and the message that carried it are personal data: exported with the person,
    and deleted from the homeserver (or its message redacted) when they are erased.
    """

    __tablename__ = "uploaded_media"

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    external_id: str = Field(max_length=255)
    uri: str = Field(max_length=1024)
    room_id: str = Field(max_length=255)
    event_id: str | None = Field(default=None, max_length=255)
    uploaded_at: datetime = Field(sa_column=utc_column())


class Preference(SQLModel, table=True):
    """How a person wants to be answered: language and time zone (personal data)."""

    __tablename__ = "preference"

    platform: str = Field(primary_key=True, max_length=16)
    external_id: str = Field(primary_key=True, max_length=255)
    language: str | None = Field(default=None, max_length=8)
    timezone: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_column=utc_column())
