"""A damaged or full database: one clear line, nothing lost, and a backup to put back."""

import logging
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli import bot, console
from tests.harness import Harness, make_app

PAGE = 4096
RESTORE = "volunteer-bot db restore BACKUP"


def _url(path: Path) -> dict[str, str]:
    return {"VOLUNTEER_BOT_STORAGE__URL": f"sqlite:///{path}"}


def _campaign(tmp_path: Path, name: str = "bot.db", tasks: int = 120) -> Path:
    """A real database file made by the bot, with ``tasks`` tasks and one volunteer."""
    path = tmp_path / name
    script = "".join(f"task post other Task {i} --description {'d' * 200}\n" for i in range(tasks))
    run = bot("--as", "coco", "--coordinator", "coco", stdin=script + "volunteer join networker\n",
              cwd=tmp_path, env=_url(path))  # fmt: skip
    assert run.returncode == 0, run.stderr
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


def _leaf_pages(path: Path, table: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (table,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def _corrupt_page(path: Path, table: str = "task") -> int:
    """Overwrite the header of one leaf page of ``table`` in the file; its number."""
    pages = _leaf_pages(path, table)
    assert len(pages) > 2, pages
    victim = pages[len(pages) // 2]
    with path.open("r+b") as f:
        f.seek((victim - 1) * PAGE)
        f.write(b"\xff" * 64)
    return victim


def _truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _garbage(path: Path) -> None:
    path.write_bytes(b"certainly not a database\n" * 1000)


DAMAGE = {"truncated": _truncate, "garbage": _garbage, "one corrupted page": _corrupt_page}


def _refused_in_one_line(run: subprocess.CompletedProcess[str], path: Path) -> str:
    err = run.stderr.strip()
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stdout + run.stderr
    assert err.count("\n") == 0, err
    assert "damaged" in err and str(path) in err and RESTORE in err, err
    return err


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_file_is_refused_at_start_in_one_line_saying_how_to_restore(tmp_path, damage):
    path = _campaign(tmp_path)
    DAMAGE[damage](path)
    before = path.read_bytes()
    for command in (["--as", "coco"], ["db", "upgrade"]):
        run = bot(*command, stdin="volunteer join translator\n", cwd=tmp_path, env=_url(path))
        _refused_in_one_line(run, path)
        assert run.stdout == ""  # no command ran
    assert path.read_bytes() == before, "a refused start writes nothing into the file"


async def test_a_page_damaged_while_running_answers_one_clear_line_for_reads_and_writes(
    tmp_path, caplog
):
    app = make_app(tmp_path)
    h = Harness(app)
    try:
        for i in range(120):
            await h.ok("coco", f"task post other Task {i} --description {'d' * 200}")
        await app.db.checkpoint()
        path = tmp_path / "bot.db"
        _corrupt_page(path)
        # Another writer: the bot's connection sees the file changed and drops its cache.
        with sqlite3.connect(path) as other:
            other.execute("UPDATE bot_state SET value = value")
        caplog.set_level(logging.WARNING)
        for who, line in [("vera", "task show 60"), ("vera", "task claim 60"),
                          ("coco", "task post other After"),
                          ("vera", "volunteer join translator")]:  # fmt: skip
            text = await h.err(who, line)
            assert text.startswith("The database file is damaged - nothing was changed."), text
            assert RESTORE in text
        assert "SQLITE_CORRUPT" in caplog.text and "damaged" in caplog.text
        assert "Traceback" not in caplog.text, "nor for the activity it could not record"
    finally:
        await app.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM volunteer").fetchone() == (0,)


async def test_a_full_disk_answers_that_nothing_was_saved(tmp_path, caplog):
    """SQLite's page limit, set to the file's size, makes every growing write SQLITE_FULL."""
    app = make_app(tmp_path)
    h = Harness(app)
    try:
        await h.ok("coco", "task post other First")

        def cap(conn):
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {int(pages)}")

        await app.db.read_connection(cap)  # on the bot's own connection
        caplog.set_level(logging.ERROR)
        for i in range(100):  # until the free room left in the file's pages is used up
            reply = await h.run("coco", f"task post other Big{i} --description {'x' * 2000}")
            if reply.is_error:
                break
        text = reply.body.plain()
        assert text.startswith("The database's disk is full - nothing was saved."), text
        assert "try again" not in text
        assert "SQLITE_FULL" in caplog.text
        assert "First" in await h.ok("coco", "task list")
        assert "no task" in await h.err("coco", f"task show {i + 2}"), (
            "the refused one is not stored"
        )
    finally:
        await app.stop()


def test_backup_while_running_and_restore_over_a_damaged_file(tmp_path):
    path = _campaign(tmp_path, tasks=30)
    running = console(f"sqlite:///{path}", "coco", cwd=tmp_path, coordinator=True)
    try:
        assert running.stdin is not None and running.stdout is not None
        running.stdin.write("task post other Made while the backup ran\n")
        running.stdin.flush()
        assert "Posted task #31" in running.stdout.readline()
        made = bot("db", "backup", cwd=tmp_path, env=_url(path))
        assert made.returncode == 0, made.stderr
        backups = list(tmp_path.glob("bot-backup-*.db"))
        assert len(backups) == 1 and str(backups[0]) in made.stdout
        refused = bot("db", "restore", str(backups[0]), cwd=tmp_path, env=_url(path))
        assert refused.returncode == 1 and "stop the bot first" in refused.stderr, refused
        assert refused.stderr.strip().count("\n") == 0
    finally:
        running.communicate("", timeout=60)
    _corrupt_page(path)
    restored = bot("db", "restore", str(backups[0]), cwd=tmp_path, env=_url(path))
    assert restored.returncode == 0, restored.stderr
    aside = list(tmp_path.glob("bot.db.damaged-*"))
    assert len(aside) == 1 and str(aside[0]) in restored.stdout
    assert "Traceback" not in restored.stderr
    run = bot("--as", "coco", stdin="task show 31\n", cwd=tmp_path, env=_url(path))
    assert run.returncode == 0, run.stderr
    assert "Made while the backup ran" in run.stdout


@pytest.mark.parametrize("bad", ["missing", "damaged", "not ours"])
def test_restore_refuses_a_bad_backup_and_leaves_the_database_alone(tmp_path, bad):
    path = _campaign(tmp_path, tasks=5)
    backup = tmp_path / "backup.db"
    if bad == "damaged":
        _campaign(tmp_path, "backup.db", tasks=120)
        _corrupt_page(backup)
    elif bad == "not ours":
        with sqlite3.connect(backup) as conn:
            conn.execute("CREATE TABLE something (x)")
    before = path.read_bytes()
    run = bot("db", "restore", str(backup), cwd=tmp_path, env=_url(path))
    assert run.returncode == 1, run
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr, run.stderr
    assert path.read_bytes() == before and not list(tmp_path.glob("bot.db.*-*"))


def test_backup_never_overwrites_a_file(tmp_path):
    path = _campaign(tmp_path, tasks=1)
    (tmp_path / "taken.db").write_text("mine")
    run = bot("db", "backup", str(tmp_path / "taken.db"), cwd=tmp_path, env=_url(path))
    assert run.returncode == 1 and "exists already" in run.stderr, run
    assert (tmp_path / "taken.db").read_text() == "mine"


def test_postgresql_backs_up_into_a_sqlite_file_and_says_how_to_restore(tmp_path, pg_url):
    env = {"VOLUNTEER_BOT_STORAGE__URL": pg_url}
    posted = bot("--as", "coco", "--coordinator", "coco", stdin="task post other On PG\n",
                 cwd=tmp_path, env=env)  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    target = tmp_path / "pg-backup.db"
    made = bot("db", "backup", str(target), cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    assert "db copy" in made.stdout
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT title FROM task").fetchall() == [("On PG",)]
    refused = bot("db", "restore", str(target), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "pg_restore" in refused.stderr, refused
    assert refused.stderr.strip().count("\n") == 0


def test_a_file_locked_by_another_process_at_start_is_waited_out_not_called_damaged(tmp_path):
    path = _campaign(tmp_path, tasks=1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")  # keeps even readers out, in WAL too
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE bot_state SET value = value")
    try:
        run = bot("--as", "coco", stdin="volunteer profile\n", cwd=tmp_path,
                  env={**_url(path), "VOLUNTEER_BOT_STORAGE__BUSY_TIMEOUT_MS": "200"})  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "Traceback" not in run.stderr and "damaged" not in run.stderr, run.stderr
