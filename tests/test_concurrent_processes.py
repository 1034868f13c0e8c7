"""First writes from several OS processes at once, on each database: no error, one record."""

import os
import subprocess
import sys
import textwrap

import pytest

from storage import migrations
from storage.db import Database
from tests.cli import ROOT, console, run_together

PROCESSES = 8


def migrated(url: str) -> None:
    db = Database(url)
    try:
        migrations.upgrade(db)
    finally:
        db.close()


def count(url: str, sql: str) -> int:
    db = Database(url)
    try:
        return int(db.run_sync_connection(lambda c: c.exec_driver_sql(sql).scalar(), write=False))
    finally:
        db.close()


@pytest.mark.slow
def test_one_person_joining_from_eight_processes_at_once_is_one_volunteer(tmp_path, db_url):
    """Eight consoles each register the same ten people, in the same order, all at once."""
    migrated(db_url)
    people = [f"person{n}" for n in range(10)]
    script = "".join(
        f":as {name}\nvolunteer join translator --languages pl,de --country PL\n"
        for name in people
    )
    outputs = run_together([(console(db_url, "x", cwd=tmp_path), script)
                            for _ in range(PROCESSES)])  # fmt: skip
    for out in outputs:
        assert "went wrong" not in out and "busy" not in out, out
    assert count(db_url, "SELECT count(*) FROM volunteer") == len(people)
    assert count(db_url, "SELECT count(*) FROM volunteer_role") == len(people)
    welcomed = sum(out.count("Welcome, person") for out in outputs)
    already = sum(out.count("You already had the role") for out in outputs)
    assert (welcomed, already) == (len(people), len(people) * (PROCESSES - 1)), (
        "each person's role was new to exactly one process"
    )


# Each writer connects first, says so, and writes when told: the writes start together.
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from storage.db import Database
    from storage.state import StateRepo

    async def main(url, key, value):
        db = Database(url)
        try:
            state = StateRepo(db)
            await state.get(key)
            print("ready", flush=True)
            sys.stdin.readline()
            await state.set(key, value, datetime.now(UTC))
        finally:
            db.close()

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_first_writes_of_one_state_key_from_eight_processes_all_succeed(tmp_path, db_url):
    migrated(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    env["PYTHONPATH"] = str(ROOT)
    for round_ in range(2):
        key = f"sync:{round_}"
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, db_url, key, f"v{n}"], cwd=tmp_path,
                             env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
            for n in range(PROCESSES)
        ]  # fmt: skip
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", _rest(proc)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, out + err
        assert count(db_url, f"SELECT count(*) FROM bot_state WHERE key = '{key}'") == 1


def _rest(proc: subprocess.Popen[str]) -> str:
    proc.kill()
    out, err = proc.communicate()
    return out + err
