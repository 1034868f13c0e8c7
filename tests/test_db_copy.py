"""`volunteer-bot db copy`: a campaign moves SQLite → PostgreSQL → SQLite and answers the same."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.transfer import tables
from tests.cli import ROOT, bot
from tests.harness import Harness, make_app
from tests.postgres import Postgres

# What people see of a campaign; each must read the same after the move.
QUESTIONS = [
    ("x", "task list --status all"),
    ("x", "task list"),
    ("x", "task show 1"),
    ("x", "task show 3"),
    ("x", "volunteer profile alice"),
    ("x", "volunteer profile bob"),
    ("x", "volunteer list"),
    ("coco", "reminder list"),
    ("x", "signatures"),
]


async def build_campaign(h: Harness) -> None:
    """A small campaign made through the core: people, tasks in every state, the rest."""
    for line in [
        "task post translation Leaflet for Warsaw --language pl --source-language en "
        '--priority high --due "in 5d"',
        "task post investigation Camera contracts in Kraków --description Public tenders",
        "task post translation Poster for Brno --language cs",
        "task post networking Call the Lyon group",
        "task post other Count the flyers --priority low",
    ]:
        await h.ok("coco", line)
    await h.ok("alice", "volunteer join translator --languages pl,en --country PL")
    await h.ok("bob", "volunteer join investigator --languages de")
    await h.ok("bob", "volunteer join networker")
    await h.ok("carol", "volunteer join organiser --country FR")
    await h.ok("alice", "task claim 1")
    await h.ok("alice", "task done 1 sent to the printer")
    await h.ok("bob", "task claim 2")
    await h.ok("bob", "task claim 4")
    await h.ok("coco", "task cancel 5")
    await h.ok("coco", 'reminder add "Weekly call" --cron "50 18 * * 2"')
    await h.ok("coco", "reminder add Leaflets go to print --in 2h")
    await h.ok("coco", "signatures set 30000")
    await h.ok("coco", "signatures set 4000 --country DE")
    await h.deliver()


async def answers(h: Harness) -> list[str]:
    return [await h.text(who, line) for who, line in QUESTIONS]


def copy(source: str, target: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return bot("db", "copy", source, target, cwd=cwd)


def row_counts(url: str) -> dict[str, int]:
    """Rows per table, read from the database itself."""
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                      for t in tables()}  # fmt: skip
    finally:
        db.close()
    return counts


def _summary(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert run.returncode == 0, run.stdout + run.stderr
    assert "█" not in run.stderr and "\r" not in run.stderr, "a bar only on a terminal"
    line = run.stdout.strip()
    assert line.startswith("copied "), line
    head, _, listing = line.partition("): ")
    counts = {name: int(n.replace(",", "")) for name, n in re.findall(r"(\w+) ([\d,]+)", listing)}
    assert head.startswith(f"copied {sum(counts.values()):,} rows in {len(counts)} tables"), line
    return counts


@pytest.mark.slow
async def test_a_campaign_copied_to_postgresql_and_back_answers_the_same_and_numbers_on(
    tmp_path: Path, postgres: Postgres, pg_url: str
):
    sqlite_url = f"sqlite:///{tmp_path / 'campaign.db'}"
    first = Harness(make_app(tmp_path, url=sqlite_url))
    try:
        await build_campaign(first)
        before = await answers(first)
    finally:
        await first.app.stop()
    assert "Leaflet for Warsaw" in before[0] and "Count the flyers" in before[0]

    rows = _summary(copy(sqlite_url, pg_url, tmp_path))
    assert rows == row_counts(sqlite_url) == row_counts(pg_url), "every table, every row"
    assert rows["task"] == 5 and rows["volunteer"] == 3 and rows["task_event"] >= 9

    on_postgres = Harness(make_app(tmp_path, url=pg_url))
    try:
        assert await answers(on_postgres) == before
    finally:
        await on_postgres.app.stop()

    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    assert _summary(copy(pg_url, back_url, tmp_path)) == row_counts(pg_url)
    for url in (pg_url, back_url):
        h = Harness(make_app(tmp_path, url=url))
        try:
            assert await answers(h) == before, url.split(":")[0]
            assert "Posted task #6" in await h.ok("coco", "task post other Fold the leaflets")
            await h.ok("alice", "task claim 6")
            assert "Reminder #3" in await h.ok("coco", "reminder add Tea --in 1h")
        finally:
            await h.app.stop()


def test_a_target_that_holds_data_is_refused_with_one_line(tmp_path: Path, pg_url: str):
    sqlite_url = f"sqlite:///{tmp_path / 'campaign.db'}"
    assert bot("--as", "alice", stdin="volunteer join translator\n", cwd=tmp_path,
               env={"VOLUNTEER_BOT_STORAGE__URL": sqlite_url}).returncode == 0  # fmt: skip
    assert _summary(copy(sqlite_url, pg_url, tmp_path))["volunteer"] == 1
    again = copy(sqlite_url, pg_url, tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "Traceback" not in again.stderr
    assert "not empty" in again.stderr and "volunteer" in again.stderr
    missing = copy(f"sqlite:///{tmp_path / 'nothing-here.db'}", pg_url, tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "nothing-here.db").exists(), "a missing source is not created"


def test_on_a_terminal_a_progress_bar_shows_each_table(tmp_path: Path, pg_url: str):
    sqlite_url = f"sqlite:///{tmp_path / 'campaign.db'}"
    script = "".join(f"task post other Job {n}\n" for n in range(30))
    bot("--as", "coco", "--coordinator", "coco", stdin=script, cwd=tmp_path,
        env={"VOLUNTEER_BOT_STORAGE__URL": sqlite_url})  # fmt: skip
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    env["PYTHONPATH"] = str(ROOT)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "db", "copy", sqlite_url, pg_url], cwd=tmp_path,
            env=env, stdout=subprocess.PIPE, stderr=secondary, text=True,
        )  # fmt: skip
        os.close(secondary)
        out, _ = proc.communicate(timeout=120)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0, out
    text = shown.decode()
    assert "\r" in text and "█" in text
    assert re.search(r"task\s+█+\s+30 / 30", text), text
    assert "copied" in out
