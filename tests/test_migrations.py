"""The migration runner: every missing step applied, a newer database refused, starts in turn."""

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from storage import migrations
from storage.db import Database
from storage.faults import SchemaTooNew
from storage.migrations import Migration
from tests.cli import ROOT, bot


def creates(name: str) -> migrations.Upgrade:
    def upgrade(conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"CREATE TABLE {name} (x INTEGER)")

    return upgrade


def fails_after_creating(name: str) -> migrations.Upgrade:
    def upgrade(conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"CREATE TABLE {name} (x INTEGER)")
        raise RuntimeError("this step is broken")

    return upgrade


def steps(*versions: int) -> list[Migration]:
    return [Migration(v, f"table m{v}", creates(f"m{v}")) for v in versions]


@pytest.fixture
def db(db_url: str):
    database = Database(db_url)
    try:
        yield database
    finally:
        database.close()


def tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def recorded(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        return sorted(migrations.applied_versions(conn))


def test_a_step_registered_into_a_gap_is_applied(db: Database):
    assert [m.version for m in migrations.upgrade(db, steps(1, 2, 3, 4, 6))] == [1, 2, 3, 4, 6]
    applied = migrations.upgrade(db, steps(1, 2, 3, 4, 5, 6))
    assert [m.version for m in applied] == [5]
    assert {"m5", "m6"} <= tables(db)
    assert recorded(db) == [1, 2, 3, 4, 5, 6]
    assert migrations.upgrade(db, steps(1, 2, 3, 4, 5, 6)) == []


def test_a_database_newer_than_the_code_is_refused_and_left_alone(db: Database):
    migrations.upgrade(db, steps(1, 2, 3))
    with pytest.raises(SchemaTooNew, match=r"newer than this code.*version 3"):
        migrations.upgrade(db, steps(1, 2))
    with pytest.raises(SchemaTooNew):
        migrations.upgrade(db, steps(1, 2, 4))  # 4 is missing, but 3 is unknown: refuse first
    assert recorded(db) == [1, 2, 3]
    assert "m4" not in tables(db)


def test_a_failing_step_leaves_nothing_of_itself_and_keeps_the_steps_before(db: Database):
    broken = [*steps(1), Migration(2, "broken", fails_after_creating("m2")), *steps(3)]
    with pytest.raises(RuntimeError, match="broken"):
        migrations.upgrade(db, broken)
    assert recorded(db) == [1]
    assert "m1" in tables(db) and "m2" not in tables(db) and "m3" not in tables(db)
    assert [m.version for m in migrations.upgrade(db, steps(1, 2, 3))] == [2, 3]


def test_the_bot_refuses_a_newer_database_with_one_line_and_status_2(tmp_path, db_url):
    db = Database(db_url)
    try:
        migrations.upgrade(db)
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO schema_version (version, description, applied_at) "
                "VALUES (999, 'from the future', CURRENT_TIMESTAMP)"
            )
    finally:
        db.close()
    env = {"VOLUNTEER_BOT_STORAGE__URL": db_url}
    for command in (["db", "upgrade"], ["--as", "alice"]):
        run = bot(*command, stdin="volunteer profile\n", cwd=tmp_path, env=env)
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
        assert "newer than this code" in run.stderr and "999" in run.stderr


@pytest.mark.slow
def test_two_processes_upgrading_an_empty_database_at_once_both_succeed(tmp_path, db_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    env.update(PYTHONPATH=str(ROOT), VOLUNTEER_BOT_STORAGE__URL=db_url)
    for _ in range(3):  # rounds: each on a database emptied again
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot", "db", "upgrade"],
                cwd=tmp_path,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, out + err
            assert "schema is at version" in out
        applied = [line for out, _ in outputs for line in out.splitlines() if "applied" in line]
        assert len(applied) == len(migrations.MIGRATIONS), "each step applied once, by either"
        db = Database(db_url)
        try:
            assert recorded(db) == [m.version for m in migrations.MIGRATIONS]
            inspector = sa.inspect(db.engine)
            for table in SQLModel.metadata.sorted_tables:
                columns = {c["name"] for c in inspector.get_columns(table.name)}
                assert columns == {c.name for c in table.columns}, table.name
            with db.engine.begin() as conn:
                for table in [*SQLModel.metadata.sorted_tables[::-1], "schema_version"]:
                    conn.exec_driver_sql(f"DROP TABLE {getattr(table, 'name', table)}")
        finally:
            db.close()


def test_migration_steps_are_numbered_in_order_and_described():
    versions = [m.version for m in migrations.MIGRATIONS]
    assert versions == sorted(set(versions))
    assert all(m.description for m in migrations.MIGRATIONS)
