"""Storage: migrations, pragmas, aware timestamps, and the platform-free rule."""

import ast
import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.models
from storage import migrations
from storage.db import WAL_FILE_LIMIT_BYTES, Database
from storage.state import StateRepo

ROOT = Path(__file__).resolve().parent.parent


def test_migrations_build_an_empty_database_and_rerun_as_no_ops(db_url):
    db = Database(db_url)
    try:
        applied = migrations.upgrade(db)
        assert [m.version for m in applied] == [m.version for m in migrations.MIGRATIONS]
        assert migrations.upgrade(db) == []
        with db.engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.MIGRATIONS[-1].version
    finally:
        db.close()


def test_migrated_schema_matches_the_models(db_url):
    db = Database(db_url)
    try:
        migrations.upgrade(db)
        inspector = sa.inspect(db.engine)
        for table in SQLModel.metadata.sorted_tables:
            assert inspector.has_table(table.name), f"no migration creates {table.name}"
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
    finally:
        db.close()


@pytest.mark.sqlite_only
def test_sqlite_pragmas_are_set_on_every_connection(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'a.db'}", busy_timeout_ms=1234)
    try:
        with db.engine.connect() as conn:
            get = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert get("journal_mode") == "wal"
            assert get("foreign_keys") == 1
            assert get("secure_delete") == 1
            assert get("busy_timeout") == 1234
            # Checkpoints run beside the writer, not inside a commit.
            assert get("wal_autocheckpoint") == 0
            assert get("journal_size_limit") == WAL_FILE_LIMIT_BYTES
    finally:
        db.close()


async def test_a_failed_write_leaves_nothing_and_the_next_write_runs(db_url):
    db = Database(db_url)
    try:
        migrations.upgrade(db)
        stamp = datetime(2026, 3, 2, tzinfo=UTC)

        def fails(conn: sa.Connection) -> None:
            conn.execute(sa.text("INSERT INTO bot_state VALUES ('lost', 'x', :t)"), {"t": stamp})
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await db.write_connection(fails)
        await StateRepo(db).set("kept", "y", stamp)
        assert await StateRepo(db).get("lost") is None
        assert await StateRepo(db).get("kept") == "y"
    finally:
        db.close()


@pytest.mark.sqlite_only
async def test_writes_reach_the_database_file_without_anyone_asking_for_a_checkpoint(tmp_path):
    path = tmp_path / "a.db"
    db = Database(f"sqlite:///{path}")

    def file_size() -> int:
        return path.stat().st_size

    try:
        migrations.upgrade(db)
        before = file_size()
        blob = b"x" * 100_000
        await db.write_connection(lambda conn: conn.exec_driver_sql(
            "CREATE TABLE filler (data BLOB)"))  # fmt: skip
        for _ in range(30):
            await db.write_connection(
                lambda conn: conn.exec_driver_sql("INSERT INTO filler VALUES (?)", (blob,))
            )
        deadline = time.monotonic() + 30
        while file_size() < before + 3_000_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await db.write_connection(lambda conn: conn.exec_driver_sql("SELECT 1"))
        assert file_size() >= before + 3_000_000
    finally:
        db.close()


@pytest.mark.sqlite_only
async def test_a_busy_writer_s_log_still_starts_over(tmp_path):
    path = tmp_path / "a.db"
    db = Database(f"sqlite:///{path}")

    def log_size() -> int:
        return Path(f"{path}-wal").stat().st_size

    try:
        migrations.upgrade(db)
        db.wal_limit_frames = 2048
        limit = db.wal_limit_frames * 4096  # bytes of 4 KiB pages
        blob = b"x" * (limit // 16)
        await db.write_connection(lambda conn: conn.exec_driver_sql(
            "CREATE TABLE filler (data BLOB)"))  # fmt: skip
        # Three times the limit, back to back: without a restart the log file would hold all.
        for _ in range(48):
            await db.write_connection(
                lambda conn: conn.exec_driver_sql("INSERT INTO filler VALUES (?)", (blob,))
            )
        assert log_size() < 2.5 * limit
    finally:
        db.close()


async def test_timestamps_come_back_aware_utc(db_url):
    db = Database(db_url)
    try:
        migrations.upgrade(db)
        state = StateRepo(db)
        await state.set("k", "v", datetime(2026, 3, 29, 3, 0, tzinfo=UTC))
        row = db.run_sync(lambda s: s.get(storage.models.BotState, "k"), write=False)
        assert row.updated_at == datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
        assert row.updated_at.tzinfo is not None
        with pytest.raises(Exception, match="naive"):
            await state.set("k", "v", datetime(2026, 1, 1))  # noqa: DTZ001
    finally:
        db.close()


def test_an_older_schema_is_upgraded_in_place(db_url):
    db = Database(db_url)
    try:
        first = migrations.upgrade(db, migrations.MIGRATIONS[:1])
        assert [m.version for m in first] == [migrations.MIGRATIONS[0].version]
        applied = migrations.upgrade(db)
        assert [m.version for m in applied] == [m.version for m in migrations.MIGRATIONS[1:]]
        assert migrations.upgrade(db) == []
    finally:
        db.close()


def _modules(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            prefix = ".".join(base) if node.level else ""
            module = ".".join(filter(None, [prefix, node.module]))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)}


def _project_imports(path: Path) -> set[str]:
    """The project's own modules a file imports (bot, cogs, storage)."""
    return {m for m in _modules(path) if m.split(".")[0] in {"bot", "cogs", "storage"}}


def _is_domain(module: str) -> bool:
    return module == "bot.domain" or module.startswith("bot.domain.")


def test_storage_imports_nothing_of_bot_but_the_domain():
    files = sorted((ROOT / "storage").rglob("*.py"))
    assert files
    for path in files:
        bad = {m for m in _project_imports(path) if m.startswith("bot") and not _is_domain(m)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_domain_imports_nothing_else_of_the_project():
    files = sorted((ROOT / "bot" / "domain").rglob("*.py"))
    assert files
    # Importing bot.domain runs bot/__init__.py first: it must stay free of imports too.
    assert not _project_imports(ROOT / "bot" / "__init__.py")
    for path in files:
        bad = {m for m in _project_imports(path) if not _is_domain(m)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["cogs", "storage"])
def test_cogs_and_storage_never_import_a_platform_sdk(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = _imports(path) & {"discord", "nio"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_adapters_never_import_cogs():
    for path in sorted((ROOT / "bot" / "adapters").rglob("*.py")):
        assert "cogs" not in _imports(path), path.name


def test_direct_chats_kept_in_bot_state_move_to_their_own_table(tmp_path: Path):
    """Migration 8: the Matrix adapter's matrix:dm:<user> rows become direct_chat rows."""
    path = tmp_path / "bot.db"
    db = Database(f"sqlite:///{path}")
    try:
        migrations.upgrade(db)
    finally:
        db.close()
    with sqlite3.connect(path) as raw:  # as a database from before migration 8 held them
        raw.execute("DELETE FROM schema_version WHERE version = 8")
        raw.execute("DROP TABLE direct_chat")
        raw.execute(
            "INSERT INTO bot_state (key, value, updated_at) VALUES (?, ?, ?)",
            ("matrix:dm:@alice:example.org", "!dm:example.org", datetime.now(UTC).isoformat()),
        )
    db = Database(f"sqlite:///{path}")
    try:
        assert [m.version for m in migrations.upgrade(db)] == [8]
    finally:
        db.close()
    with sqlite3.connect(path) as raw:
        moved = raw.execute("SELECT platform, external_id, room_id FROM direct_chat").fetchall()
        left = raw.execute("SELECT key FROM bot_state WHERE key LIKE 'matrix:dm:%'").fetchall()
    assert moved == [("matrix", "@alice:example.org", "!dm:example.org")]
    assert left == []
