"""The task tables: migration matches the models, and the queue queries stay on indexes."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex

from storage import migrations
from storage.db import Database
from storage.models import Job, Task, TaskEvent, Volunteer
from storage.prepared import Prepared, sqlite_driver
from storage.tasks import statements as q


def migrated(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    migrations.upgrade(db)
    return db


def test_migration_creates_the_task_tables_the_models_describe(tmp_path: Path):
    db = migrated(tmp_path)
    try:
        inspector = sa.inspect(db.engine)
        for model in (Job, Task, TaskEvent):
            table = model.__table__  # type: ignore[attr-defined]
            columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name: c.nullable for c in table.columns}, table.name
            stored = db.run_sync(
                lambda session, name=table.name: {
                    row[0]: " ".join(row[1].split())
                    for row in session.execute(
                        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                "AND tbl_name = :t AND sql IS NOT NULL"), {"t": name})
                },
                write=False,
            )  # fmt: skip
            expected = {
                index.name: " ".join(
                    str(CreateIndex(index).compile(dialect=db.engine.dialect)).split()
                )
                for index in table.indexes
            }
            assert stored == expected, table.name
            # What SQLite enforces, from its own list: the inspector reads ON DELETE only
            # from table constraints, not from columns added later with REFERENCES.
            fks = db.run_sync(
                lambda session, name=table.name: {
                    ((row[3],), row[2], None if row[6] == "NO ACTION" else row[6])
                    for row in session.execute(sa.text(f"PRAGMA foreign_key_list({name})"))
                },
                write=False,
            )
            assert fks == {
                ((fk.parent.name,), fk.column.table.name, fk.ondelete) for fk in table.foreign_keys
            }, table.name
    finally:
        db.close()


NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLAIMING = {"vid": 1, "now": NOW, "place": "p", "due_limit": NOW, "max_open": 3}


def plan(db: Database, sql: str | Prepared, params: dict[str, object]) -> str:
    """SQLite's query plan for a statement, as the fast path sends it."""
    values: object = params
    if isinstance(sql, Prepared):
        sql, values = sql.for_driver(db.engine.dialect, params)

    def read(session):
        raw = session.connection().connection.driver_connection
        return " | ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql, values))

    return db.run_sync(read, write=False)


def test_task_next_seeks_the_match_index_once_per_kind_and_language(tmp_path: Path):
    db = migrated(tmp_path)
    try:
        shape = q.claim_next(2, (True, False), 1)
        params = {"k0": "translation", "k1": "other", "t1": "pl", "s0": "pl"}
        text = plan(db, shape.best, params)
        assert text.count("SEARCH task USING INDEX ix_task_match (kind=? AND language=?)") == 4
        assert "SCAN task" not in text
        for claim in (shape.skipping, shape.waiting):
            claim_plan = plan(db, claim, params | CLAIMING)
            assert "SEARCH task USING INTEGER PRIMARY KEY" in claim_plan
            assert "ix_task_claimer" in claim_plan and "SCAN task" not in claim_plan
    finally:
        db.close()


def test_claiming_a_task_by_number_seeks_its_row_and_counts_on_the_claimer_index(
    tmp_path: Path,
):
    db = migrated(tmp_path)
    try:
        params = {"k0": "translation", "k1": "other", "task_id": 7, **CLAIMING}
        text = plan(db, q.claim(2), params)
        assert "SEARCH task USING INTEGER PRIMARY KEY" in text
        assert "ix_task_claimer" in text and "SCAN task" not in text
    finally:
        db.close()


@pytest.mark.parametrize("fast", [False, True], ids=["sqlalchemy", "sqlite3"])
def test_the_claim_statement_decides_kind_state_and_limit(tmp_path: Path, fast: bool):
    """Through SQLAlchemy or straight to sqlite3, timestamps bound and read by their type."""
    db = migrated(tmp_path)
    now = NOW
    task, volunteer = Task.__table__, Volunteer.__table__  # type: ignore[attr-defined]
    try:

        def tx(conn: Connection) -> list[object]:
            conn.execute(volunteer.insert().values(
                id=1, platform="test", external_id="1", display_name="Alice", languages="pl",
                created_at=now, last_active_at=now))  # fmt: skip
            for tid, kind in ((1, "translation"), (2, "video"), (3, "translation"), (4, "other")):
                conn.execute(task.insert().values(
                    id=tid, kind=kind, title=f"t{tid}", priority=1, status="open",
                    created_at=now, claim_count=0, due_at=now + timedelta(hours=2)))  # fmt: skip
            claim = q.claim(2)
            base = {
                "k0": "translation",
                "k1": "other",
                "vid": 1,
                "now": now,
                "place": "test:room",
                "due_limit": now + timedelta(days=1),
                "max_open": 2,
            }
            # Task 4 is open and of a fitting kind, but Alice holds two by then.
            return [
                claim.first(
                    conn, {**base, "task_id": tid}, driver=sqlite_driver(conn) if fast else None
                )
                for tid in (1, 1, 2, 3, 4)
            ]

        first, again, wrong_kind, second, over_limit = db.run_sync_connection(tx, write=True)
        assert first is not None and first["status"] == "claimed" and first["claimed_by"] == 1
        assert first["claimed_at"] == now and first["due_reminded_at"] == now
        assert first["claim_count"] == 1 and first["claim_place"] == "test:room"
        assert again is None and wrong_kind is None and over_limit is None
        assert second is not None and second["id"] == 3
    finally:
        db.close()


def test_task_list_walks_the_queue_index_without_sorting(tmp_path: Path):
    db = migrated(tmp_path)
    try:
        text = plan(
            db,
            "SELECT id FROM task WHERE status = 'open' "
            "ORDER BY priority DESC, due_at IS NULL, due_at, id LIMIT 11 OFFSET 20",
            {},
        )
        assert "ix_task_queue" in text and "TEMP B-TREE" not in text
    finally:
        db.close()


def test_sweeps_and_claim_counts_use_the_indexes_of_claimed_tasks_only(tmp_path: Path):
    db = migrated(tmp_path)
    try:
        sweep = plan(
            db,
            "SELECT id FROM task WHERE status = 'claimed' AND nudged_at IS NULL "
            "AND last_activity_at <= :cutoff LIMIT 200",
            {"cutoff": "2026-03-02 09:00:00"},
        )
        assert "USING INDEX ix_task_claimed" in sweep and "SCAN task" not in sweep
        held = plan(
            db,
            "SELECT count(*) FROM task WHERE claimed_by = :vid AND status = 'claimed'",
            {"vid": 1},
        )
        assert "ix_task_claimer" in held and "SCAN task" not in held
        # Erasing a volunteer sets their tasks' claimer to NULL through the same index.
        erase = plan(db, "UPDATE task SET claimed_by = NULL WHERE claimed_by = :vid", {"vid": 1})
        assert "ix_task_claimer" in erase and "SCAN task" not in erase
    finally:
        db.close()


def test_a_queue_with_the_first_indexes_is_upgraded_to_the_current_ones(tmp_path: Path):
    path = tmp_path / "bot.db"
    db = Database(f"sqlite:///{path}")
    try:  # the schema as the first three steps made it, indexes as migration 2 made them
        first = [m for m in migrations.MIGRATIONS if m.version < 4]
        migrations.upgrade(db, first)
    finally:
        db.close()
    db = Database(f"sqlite:///{path}")
    try:
        later = [m.version for m in migrations.MIGRATIONS if m.version >= 4]
        assert [m.version for m in migrations.upgrade(db)] == later
        stored = db.run_sync(
            lambda s: dict(
                s.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE name IN "
                                  "('ix_task_match', 'ix_task_claimer', 'ix_task_claimed')")).all()
            ),
            write=False,
        )  # fmt: skip
        assert "id, source_language) WHERE status = 'open'" in stored["ix_task_match"]
        assert "WHERE claimed_by IS NOT NULL" in stored["ix_task_claimer"]
        assert "WHERE status = 'claimed'" in stored["ix_task_claimed"]
    finally:
        db.close()


def test_task_next_judges_candidates_from_the_match_index_without_reading_task_rows(
    tmp_path: Path,
):
    db = migrated(tmp_path)
    try:
        best = q.claim_next(2, (True, False), 2).best
        params = {"k0": "translation", "k1": "other", "t1": "pl", "s0": "pl", "s1": "en"}
        sql, values = best.for_driver(db.engine.dialect, params)

        def table_reads(session) -> tuple[int, list[str]]:
            root = session.execute(
                sa.text("SELECT rootpage FROM sqlite_master WHERE name = 'task'")
            ).scalar_one()
            raw = session.connection().connection.driver_connection
            program = raw.execute("EXPLAIN " + sql, values).fetchall()
            # (opcode, p1, p2): which cursors read the task table, and what reads them.
            ops = [(row[1], row[2], row[3]) for row in program]
            cursors = {p1 for op, p1, p2 in ops if op == "OpenRead" and p2 == root}
            return len(cursors), [op for op, p1, _ in ops if op == "Column" and p1 in cursors]

        opened, reads = db.run_sync(table_reads, write=False)
        assert opened >= 1, "the plan walks the task table's index"
        assert reads == [], "a source language check read the task row"
    finally:
        db.close()
