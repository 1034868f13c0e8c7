"""Numbered, described schema upgrades, applied in order at start and by ``db upgrade``.

Each migration spells out its own DDL (it must keep meaning the same thing when the models
move on). ``schema_version`` records what has been applied; running again is a no-op. Every
step runs in a transaction of its own (DDL is transactional on both databases), so a step
either happened completely or not at all. Processes starting together take turns: SQLite's
``BEGIN IMMEDIATE`` lets one writer in at a time, and on PostgreSQL each step's transaction
first takes a transaction-scoped advisory lock, so the second process waits and then finds
the step recorded.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from storage.db import Database
from storage.faults import SchemaTooNew
from storage.types import UTCDateTime

log = logging.getLogger(__name__)

Upgrade = Callable[[Connection], None]
# pg_advisory_xact_lock key for schema changes: b"volbot" read as an integer.
MIGRATION_LOCK_KEY = 0x766F6C626F74


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    description: str
    upgrade: Upgrade


MIGRATIONS: list[Migration] = []


def migration(version: int, description: str) -> Callable[[Upgrade], Upgrade]:
    """Register an upgrade step; versions must be unique and ascending.

    A version may be left unused for a while (branches number their steps ahead of merging);
    :func:`upgrade` applies every registered step that a database has not recorded yet.
    """

    def register(fn: Upgrade) -> Upgrade:
        if MIGRATIONS and version <= MIGRATIONS[-1].version:
            raise ValueError(f"migration {version} out of order")
        MIGRATIONS.append(Migration(version, description, fn))
        return fn

    return register


_version_table = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)


def current_version(conn: Connection) -> int:
    """The highest applied version (0 for an empty database)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(_version_table.c.version))).scalar() or 0)


def applied_versions(conn: Connection) -> set[int]:
    """Every version recorded as applied."""
    if not sa.inspect(conn).has_table("schema_version"):
        return set()
    return {int(v) for v in conn.execute(sa.select(_version_table.c.version)).scalars()}


def upgrade(db: Database, steps: Sequence[Migration] | None = None) -> list[Migration]:
    """Apply every registered step not applied yet, each in its own transaction.

    Returns the steps applied. Raises SchemaTooNew when the database records a version
    that ``steps`` (by default every registered migration) does not know, and
    DatabaseUnavailable (or CannotConnect) when the database cannot be used.
    """
    try:
        return _upgrade(db, MIGRATIONS if steps is None else steps)
    except DBAPIError as exc:
        raise db.explain(exc) from exc


def _upgrade(db: Database, steps: Sequence[Migration]) -> list[Migration]:
    known = {step.version for step in steps}
    applied: list[Migration] = []
    with db.engine.connect() as conn:
        with conn.begin():  # a plain read first: an up-to-date schema needs no write lock
            done = applied_versions(conn)
        _refuse_unknown(done - known)
        if known <= done:
            return applied
        if db.is_sqlite:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        for step in steps:
            if step.version in done:
                continue
            with conn.begin():
                _take_turn(conn)
                _version_table.create(conn, checkfirst=True)
                done = applied_versions(conn)  # another process may have moved on meanwhile
                _refuse_unknown(done - known)
                if step.version in done:
                    continue
                step.upgrade(conn)
                conn.execute(
                    _version_table.insert().values(
                        version=step.version,
                        description=step.description,
                        applied_at=datetime.now(UTC),
                    )
                )
            log.info("schema upgraded to %d: %s", step.version, step.description)
            applied.append(step)
    return applied


def _take_turn(conn: Connection) -> None:
    """On PostgreSQL, wait (however long) for any other process's schema step to finish."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE has already let this one writer in
    conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))


def _refuse_unknown(unknown: set[int]) -> None:
    if unknown:
        versions = ", ".join(str(v) for v in sorted(unknown))
        raise SchemaTooNew(
            f"the database is newer than this code: it has schema version {versions}, which "
            "this version of volunteer-bot does not know; run a newer volunteer-bot"
        )


def _ts(name: str, *, nullable: bool = False, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, UTCDateTime(), nullable=nullable, index=index)


@migration(1, "volunteers, roles, outbox and bot state")
def _v1(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "volunteer", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("languages", sa.String(255), nullable=False),
        sa.Column("country", sa.String(2)),
        _ts("created_at"),
        _ts("last_active_at", index=True),
        sa.UniqueConstraint("platform", "external_id"),
    )  # fmt: skip
    sa.Table(
        "volunteer_role", md,
        sa.Column("volunteer_id", sa.Integer, sa.ForeignKey("volunteer.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        _ts("since"),
    )  # fmt: skip
    sa.Table(
        "outbox", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("recipient_id", sa.String(255), index=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attachment_name", sa.String(255)),
        sa.Column("attachment", sa.LargeBinary),
        _ts("created_at"),
        _ts("due_at"),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("lease_until", nullable=True),
        _ts("sent_at", nullable=True),
        sa.Column("last_error", sa.String(255)),
        sa.Index("ix_outbox_pending", "platform", "sent_at", "due_at"),
    )  # fmt: skip
    sa.Table(
        "bot_state", md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        _ts("updated_at"),
    )  # fmt: skip
    md.create_all(conn)


@migration(2, "task queue and task history")
def _v2(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table("volunteer", md, sa.Column("id", sa.Integer, primary_key=True))
    task = sa.Table(
        "task", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("language", sa.String(2)),
        sa.Column("source_language", sa.String(2)),
        sa.Column("priority", sa.Integer, nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.Column("creator_platform", sa.String(16)),
        sa.Column("creator_external_id", sa.String(255)),
        sa.Column("creator_name", sa.String(255)),
        sa.Column("claimed_by", sa.Integer, sa.ForeignKey("volunteer.id", ondelete="SET NULL")),
        _ts("claimed_at", nullable=True),
        sa.Column("claim_place", sa.String(255)),
        sa.Column("claim_count", sa.Integer, nullable=False),
        _ts("last_activity_at", nullable=True),
        _ts("nudged_at", nullable=True),
        _ts("due_reminded_at", nullable=True),
        _ts("closed_at", nullable=True),
    )  # fmt: skip
    c = task.c
    order = (c.priority.desc(), c.due_at.is_(None), c.due_at, c.id)
    is_open = sa.text("status = 'open'")
    sa.Index("ix_task_queue", c.status, *order)
    sa.Index("ix_task_match", c.kind, c.language, *order,
             sqlite_where=is_open, postgresql_where=is_open)  # fmt: skip
    sa.Index("ix_task_claimer", c.claimed_by, c.status)
    sa.Index("ix_task_claimed", c.status, c.last_activity_at)
    sa.Index("ix_task_creator", c.creator_platform, c.creator_external_id)
    sa.Table(
        "task_event", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("task.id", ondelete="CASCADE"),
                  nullable=False),
        _ts("at"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor_platform", sa.String(16)),
        sa.Column("actor_external_id", sa.String(255)),
        sa.Column("actor_name", sa.String(255)),
        sa.Column("subject_platform", sa.String(16)),
        sa.Column("subject_external_id", sa.String(255)),
        sa.Column("subject_name", sa.String(255)),
        sa.Column("note", sa.Text),
        sa.Index("ix_task_event_task", "task_id"),
        sa.Index("ix_task_event_actor", "actor_platform", "actor_external_id"),
        sa.Index("ix_task_event_subject", "subject_platform", "subject_external_id"),
    )  # fmt: skip
    md.create_all(conn, tables=[md.tables["task"], md.tables["task_event"]])


@migration(3, "reminders, signature counts and reached milestones")
def _v3(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "reminder", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("creator_platform", sa.String(16)),
        sa.Column("creator_id", sa.String(255)),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("cron", sa.String(100)),
        sa.Column("timezone", sa.String(64), nullable=False),
        _ts("next_run_at", nullable=True),
        _ts("last_fired_at", nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.Index("ix_reminder_due", "state", "next_run_at"),
    )  # fmt: skip
    sa.Table(
        "signature_count", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("country", sa.String(2)),
        sa.Column("count", sa.Integer, nullable=False),
        _ts("recorded_at"),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("recorded_by_platform", sa.String(16)),
        sa.Column("recorded_by_id", sa.String(255), index=True),
        sa.Index("ix_signature_count_country", "country", "id"),
    )  # fmt: skip
    sa.Table(
        "reached_milestone", md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        _ts("reached_at"),
    )  # fmt: skip
    md.create_all(conn)


@migration(4, "queue indexes: match covers source languages, claimer and claimed only claims")
def _v4(conn: Connection) -> None:
    md = sa.MetaData()
    task = sa.Table(
        "task", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("language", sa.String(2)),
        sa.Column("source_language", sa.String(2)),
        sa.Column("priority", sa.Integer, nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.Integer),
        _ts("last_activity_at", nullable=True),
    )  # fmt: skip
    c = task.c
    order = (c.priority.desc(), c.due_at.is_(None), c.due_at, c.id)
    is_open = sa.text("status = 'open'")
    has_claimer = sa.text("claimed_by IS NOT NULL")
    is_claimed = sa.text("status = 'claimed'")
    for name in ("ix_task_match", "ix_task_claimer", "ix_task_claimed"):
        conn.exec_driver_sql(f"DROP INDEX {name}")
    sa.Index("ix_task_match", c.kind, c.language, *order, c.source_language,
             sqlite_where=is_open, postgresql_where=is_open).create(conn)  # fmt: skip
    sa.Index("ix_task_claimer", c.claimed_by, c.status,
             sqlite_where=has_claimer, postgresql_where=has_claimer).create(conn)  # fmt: skip
    sa.Index("ix_task_claimed", c.status, c.last_activity_at,
             sqlite_where=is_claimed, postgresql_where=is_claimed).create(conn)  # fmt: skip


@migration(5, "audit trail of coordinator-only commands")
def _v5(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "audit_event", md,
        sa.Column("id", sa.Integer, primary_key=True),
        _ts("at", index=True),
        sa.Column("actor_platform", sa.String(16)),
        sa.Column("actor_id", sa.String(255)),
        sa.Column("actor_name", sa.String(255), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("place", sa.String(255), nullable=False),
        sa.Column("place_private", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("subject_platform", sa.String(16)),
        sa.Column("subject_id", sa.String(255), index=True),
        sa.Index("ix_audit_actor", "actor_platform", "actor_id"),
    )  # fmt: skip
    md.create_all(conn)


@migration(6, "leases: which process serves each duty; live processes; claimed events")
def _v6(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "lease", md,
        sa.Column("duty", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(128)),
        sa.Column("token", sa.Integer, nullable=False),
        _ts("expires_at", nullable=True),
        _ts("acquired_at", nullable=True),
    )  # fmt: skip
    sa.Table(
        "bot_process", md,
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        _ts("started_at"),
        _ts("heartbeat_at"),
    )  # fmt: skip
    sa.Table(
        "claimed_event", md,
        sa.Column("key", sa.String(255), primary_key=True),
        _ts("claimed_at", index=True),
        sa.Column("reply", sa.Text),
        _ts("answered_at", nullable=True),
    )  # fmt: skip
    md.create_all(conn)


@migration(7, "outbox rows say what happened: a kind of post and its facts, worded at delivery")
def _v7(conn: Connection) -> None:
    # Rows already queued hold their words (Markup JSON): that is the kind "markup".
    conn.exec_driver_sql(
        "ALTER TABLE outbox ADD COLUMN kind VARCHAR(32) DEFAULT 'markup' NOT NULL"
    )


@migration(8, "direct chats in their own table (personal data), out of bot_state")
def _v8(conn: Connection) -> None:
    md = sa.MetaData()
    direct = sa.Table(
        "direct_chat", md,
        sa.Column("platform", sa.String(16), primary_key=True),
        sa.Column("external_id", sa.String(255), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        _ts("created_at"),
    )  # fmt: skip
    state = sa.Table(
        "bot_state", md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        _ts("updated_at"),
    )  # fmt: skip
    md.create_all(conn, tables=[direct])
    # Until now the Matrix adapter kept them as bot_state rows "matrix:dm:<user id>".
    prefix = "matrix:dm:"
    kept = conn.execute(
        sa.select(state.c.key, state.c.value, state.c.updated_at).where(
            state.c.key.startswith(prefix)
        )
    ).all()
    for key, room_id, updated_at in kept:
        conn.execute(
            direct.insert().values(
                platform="matrix", external_id=key[len(prefix):], room_id=room_id,
                created_at=updated_at,
            )
        )  # fmt: skip
    conn.execute(state.delete().where(state.c.key.startswith(prefix)))


@migration(9, "PostgreSQL: joint statistics of task kind and language, for task next")
def _v9(conn: Connection) -> None:
    # Without them the planner multiplies the two columns' frequencies, expects thousands of
    # untargeted translations, and walks the whole queue in order for a branch that has none.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "CREATE STATISTICS IF NOT EXISTS task_kind_language (mcv, dependencies) "
            "ON kind, language FROM task"
        )


@migration(10, "used sign-in links and ended dashboard sessions")
def _v10(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "web_token_used", md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        _ts("expires_at", index=True),
        _ts("used_at"),
    )  # fmt: skip
    md.create_all(conn)


@migration(12, "outbox rows name their recipient and subject by platform id; pending erasures")
def _v12(conn: Connection) -> None:
    for column in (
        "recipient_platform VARCHAR(16)",
        "subject_platform VARCHAR(16)",
        "subject_id VARCHAR(255)",
        "subject_name VARCHAR(255)",
    ):
        conn.exec_driver_sql(f"ALTER TABLE outbox ADD COLUMN {column}")
    # Until now a recipient was on the platform the post goes to.
    conn.exec_driver_sql(
        "UPDATE outbox SET recipient_platform = platform WHERE recipient_id IS NOT NULL"
    )
    conn.exec_driver_sql(
        "CREATE INDEX ix_outbox_recipient ON outbox (recipient_platform, recipient_id)"
    )
    conn.exec_driver_sql("CREATE INDEX ix_outbox_subject ON outbox (subject_platform, subject_id)")
    md = sa.MetaData()
    sa.Table(
        "erasure_pending", md,
        sa.Column("platform", sa.String(16), primary_key=True),
        sa.Column("external_id", sa.String(255), primary_key=True),
        _ts("started_at"),
    )  # fmt: skip
    md.create_all(conn)


@migration(13, "files the bot uploaded for one person (personal data: exported and deleted)")
def _v13(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "uploaded_media", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("uri", sa.String(1024), nullable=False),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=True),
        _ts("uploaded_at"),
        sa.Index("ix_uploaded_media_person", "platform", "external_id"),
    )  # fmt: skip
    md.create_all(conn)


@migration(15, "jobs: tasks fanned out per language; source, result and review on each task")
def _v15(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "job", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("source_language", sa.String(2)),
        sa.Column("source_url", sa.String(2000)),
        sa.Column("priority", sa.Integer, nullable=False),
        _ts("due_at", nullable=True),
        _ts("created_at"),
        sa.Column("creator_platform", sa.String(16)),
        sa.Column("creator_external_id", sa.String(255)),
        sa.Column("creator_name", sa.String(255)),
        sa.Index("ix_job_creator", "creator_platform", "creator_external_id"),
    )  # fmt: skip
    md.create_all(conn)
    timestamp = UTCDateTime().compile(dialect=conn.dialect)
    added = [
        "job_id INTEGER REFERENCES job (id) ON DELETE SET NULL",
        "source_url VARCHAR(2000)",
        "result_link VARCHAR(2000)",
        "result_note TEXT",
        "review_note TEXT",
        "reviewer_id INTEGER REFERENCES volunteer (id) ON DELETE SET NULL",
        f"submitted_at {timestamp}",
    ]
    for column in added:
        conn.exec_driver_sql(f"ALTER TABLE task ADD COLUMN {column}")
    task = sa.Table(
        "task", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("language", sa.String(2)),
        sa.Column("priority", sa.Integer, nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("job_id", sa.Integer),
        sa.Column("reviewer_id", sa.Integer),
    )  # fmt: skip
    c = task.c
    order = (c.priority.desc(), c.due_at.is_(None), c.due_at, c.id)
    sa.Index("ix_task_job", c.job_id, c.language).create(conn)
    # Review work, found like open work: by kind and language, in queue order.
    in_review = sa.text("status = 'in_review'")
    sa.Index("ix_task_review", c.kind, c.language, *order,
             sqlite_where=in_review, postgresql_where=in_review).create(conn)  # fmt: skip
    has_reviewer = sa.text("reviewer_id IS NOT NULL")
    sa.Index("ix_task_reviewer", c.reviewer_id,
             sqlite_where=has_reviewer, postgresql_where=has_reviewer).create(conn)  # fmt: skip


# Tasks counted per (target language, status, shard) by the database itself, so that the
# coordinators' report reads a few hundred rows however long the queue grows. A task's shard
# is its id modulo TALLY_SHARDS: claims of different tasks in one language seldom wait on the
# same counter row on PostgreSQL. '' stands for tasks without a target language.
TALLY_SHARDS = 8
_SQLITE_TALLY = """
CREATE TRIGGER task_tally_insert AFTER INSERT ON task BEGIN
  INSERT INTO task_tally VALUES (coalesce(new.language, ''), new.status, new.id % {shards}, 1)
  ON CONFLICT (language, status, shard) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER task_tally_delete AFTER DELETE ON task BEGIN
  UPDATE task_tally SET n = n - 1
  WHERE language = coalesce(old.language, '') AND status = old.status
    AND shard = old.id % {shards};
END;
CREATE TRIGGER task_tally_update AFTER UPDATE OF status, language ON task
WHEN old.status IS NOT new.status OR old.language IS NOT new.language BEGIN
  UPDATE task_tally SET n = n - 1
  WHERE language = coalesce(old.language, '') AND status = old.status
    AND shard = old.id % {shards};
  INSERT INTO task_tally VALUES (coalesce(new.language, ''), new.status, new.id % {shards}, 1)
  ON CONFLICT (language, status, shard) DO UPDATE SET n = n + excluded.n;
END
"""
_POSTGRES_TALLY = """
CREATE OR REPLACE FUNCTION task_tally_add(lang TEXT, st TEXT, sh INTEGER, delta INTEGER)
RETURNS VOID LANGUAGE SQL AS $$
  INSERT INTO task_tally VALUES (lang, st, sh, delta)
  ON CONFLICT (language, status, shard) DO UPDATE SET n = task_tally.n + excluded.n
$$;
CREATE OR REPLACE FUNCTION task_tally_count() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
  was TEXT[];
  becomes TEXT[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM task_tally_add(coalesce(NEW.language, ''), NEW.status, mod(NEW.id, {shards}), 1);
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM task_tally_add(coalesce(OLD.language, ''), OLD.status, mod(OLD.id, {shards}), -1);
  ELSIF OLD.status IS DISTINCT FROM NEW.status OR OLD.language IS DISTINCT FROM NEW.language THEN
    was := ARRAY[coalesce(OLD.language, ''), OLD.status];
    becomes := ARRAY[coalesce(NEW.language, ''), NEW.status];
    -- The two counters in key order: two changes between the same two never deadlock.
    IF was < becomes THEN
      PERFORM task_tally_add(was[1], was[2], mod(OLD.id, {shards}), -1);
      PERFORM task_tally_add(becomes[1], becomes[2], mod(NEW.id, {shards}), 1);
    ELSE
      PERFORM task_tally_add(becomes[1], becomes[2], mod(NEW.id, {shards}), 1);
      PERFORM task_tally_add(was[1], was[2], mod(OLD.id, {shards}), -1);
    END IF;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER task_tally AFTER INSERT OR DELETE OR UPDATE OF status, language ON task
FOR EACH ROW EXECUTE FUNCTION task_tally_count()
"""


@migration(17, "tasks counted by language and status; open tasks by age, for the report")
def _v17(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "task_tally", md,
        sa.Column("language", sa.String(2), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )  # fmt: skip
    md.create_all(conn)
    postgres = conn.dialect.name == "postgresql"
    shard = f"mod(id, {TALLY_SHARDS})" if postgres else f"id % {TALLY_SHARDS}"
    conn.exec_driver_sql(
        "INSERT INTO task_tally (language, status, shard, n) "
        f"SELECT coalesce(language, ''), status, {shard}, count(*) FROM task "
        f"GROUP BY coalesce(language, ''), status, {shard}"
    )
    script = _POSTGRES_TALLY if postgres else _SQLITE_TALLY
    # Split on the statements' ends (";" then a line break), not inside function bodies.
    for statement in script.format(shards=TALLY_SHARDS).split(";\nCREATE"):
        sql = statement.strip()
        conn.exec_driver_sql(sql if sql.startswith("CREATE") else "CREATE " + sql)
    conn.exec_driver_sql("CREATE INDEX ix_task_open_age ON task (id) WHERE status = 'open'")


# Statement-level counting on PostgreSQL: each statement adds its changes to the tally once,
# grouped, instead of once per row. A COPY or an UPDATE of many tasks in one transaction then
# touches each counter row once, not once per task (which rewrote it thousands of times).
_POSTGRES_STATEMENT_TALLY = """
CREATE OR REPLACE FUNCTION task_tally_inserted() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO task_tally AS t (language, status, shard, n)
    SELECT coalesce(language, ''), status, mod(id, {shards}), count(*) FROM new_rows
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (language, status, shard) DO UPDATE SET n = t.n + excluded.n;
  RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION task_tally_deleted() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO task_tally AS t (language, status, shard, n)
    SELECT coalesce(language, ''), status, mod(id, {shards}), -count(*) FROM old_rows
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (language, status, shard) DO UPDATE SET n = t.n + excluded.n;
  RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION task_tally_updated() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO task_tally AS t (language, status, shard, n)
    SELECT lang, st, sh, sum(delta) FROM (
      SELECT coalesce(o.language, '') AS lang, o.status AS st, mod(o.id, {shards}) AS sh,
             -1 AS delta
        FROM old_rows o JOIN new_rows w ON w.id = o.id
        WHERE o.status IS DISTINCT FROM w.status OR o.language IS DISTINCT FROM w.language
      UNION ALL
      SELECT coalesce(w.language, ''), w.status, mod(w.id, {shards}), 1
        FROM old_rows o JOIN new_rows w ON w.id = o.id
        WHERE o.status IS DISTINCT FROM w.status OR o.language IS DISTINCT FROM w.language
    ) AS changed
    GROUP BY lang, st, sh HAVING sum(delta) <> 0 ORDER BY lang, st, sh
  ON CONFLICT (language, status, shard) DO UPDATE SET n = t.n + excluded.n;
  RETURN NULL;
END
$$;
CREATE TRIGGER task_tally_inserted AFTER INSERT ON task
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_tally_inserted();
CREATE TRIGGER task_tally_deleted AFTER DELETE ON task
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_tally_deleted();
CREATE TRIGGER task_tally_updated AFTER UPDATE ON task
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION task_tally_updated()
"""


@migration(18, "PostgreSQL: the task tally counted once per statement, not once per row")
def _v18(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite has no statement-level triggers; its row triggers stay
    conn.exec_driver_sql("DROP TRIGGER task_tally ON task")
    conn.exec_driver_sql("DROP FUNCTION task_tally_count()")
    script = _POSTGRES_STATEMENT_TALLY.format(shards=TALLY_SHARDS)
    for statement in script.split(";\nCREATE"):
        sql = statement.strip()
        conn.exec_driver_sql(sql if sql.startswith("CREATE") else "CREATE " + sql)


@migration(19, "people's own language and time zone (personal data: exported and erased)")
def _v19(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "preference", md,
        sa.Column("platform", sa.String(16), primary_key=True),
        sa.Column("external_id", sa.String(255), primary_key=True),
        sa.Column("language", sa.String(8)),
        sa.Column("timezone", sa.String(64)),
        _ts("updated_at"),
    )  # fmt: skip
    md.create_all(conn)
