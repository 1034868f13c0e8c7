"""`volunteer-bot tasks import FILE.csv`: every row checked first, then all posted or none."""

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain import Priority, TaskKind
from bot.importing import ImportRefused, read_csv
from bot.params import ParseEnv
from storage.db import Database
from tests.cli import ROOT, bot

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENV = ParseEnv(NOW, "Europe/Brussels", "console")

GOOD = (
    "kind,title,language,source_language,priority,due,description,source\n"
    "translation,Leaflet for the fair,pl;de;fr,en,high,{due},Two pages,"
    "https://example.org/leaflet.odt\n"
    "other,Stand at the fair,,,,,,\n"
)
# The command line reads due dates by the real clock.
GOOD_NOW = GOOD.format(due="in 10d")


def problems(text: str) -> list[str]:
    with pytest.raises(ImportRefused) as refused:
        read_csv(text.encode(), ENV)
    return [str(p) for p in refused.value.problems]


def tasks_in(url: str) -> list[tuple[object, ...]]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(
                "SELECT kind, title, language, source_language, priority, status, job_id, "
                "source_url FROM task ORDER BY id"
            )]  # fmt: skip
    finally:
        db.close()


def tally(url: str) -> dict[tuple[str, str], int]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT language, status, sum(n) FROM task_tally GROUP BY language, status"
            )
            return {(lang, status): int(n) for lang, status, n in rows if n}
    finally:
        db.close()


def test_a_good_file_reads_as_one_task_per_target_language():
    first, second = read_csv(GOOD.format(due="2026-03-20").encode(), ENV)
    assert (first.line, second.line) == (2, 3)
    assert [t.language for t in first.job.tasks()] == ["pl", "de", "fr"] and first.job.grouped
    task = first.job.tasks()[0]
    assert (task.kind, task.title, task.source_language, task.priority, task.description) == (
        TaskKind.TRANSLATION,
        "Leaflet for the fair",
        "en",
        Priority.HIGH,
        "Two pages",
    )
    assert task.due_at == datetime(2026, 3, 20, 8, 0, tzinfo=UTC), "09:00 in Brussels"
    assert task.source_url == "https://example.org/leaflet.odt"
    assert [(t.kind, t.language, t.priority) for t in second.job.tasks()] == [
        (TaskKind.OTHER, None, Priority.NORMAL)
    ]


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        ("kind,title\nwizard,Spells\n",
         ["line 2, column kind: `wizard` is not a valid kind"]),
        ("kind,title\nother,\n", ["line 2, column title: title is required"]),
        ("kind,title,language\nother,Stand,xx\n",
         ["line 2, column language: `xx` is not an official EU language"]),
        ("kind,title,due\nother,Stand,2020-01-01\n",
         ["line 2, column due: that due date is already past"]),
        ("kind,title,due\nother,Stand,someday\n",
         ["line 2, column due: `someday` is not a date or time I can read"]),
        ("kind,title,priority\nother,Stand,asap\n",
         ["line 2, column priority: `asap` is not a valid priority"]),
        ("kind,title,language,source_language\ntranslation,Flyer,pl;en,en\n",
         ["line 2, column source_language: `en` is also a target language"]),
        ("kind,title,source\nother,Stand,ftp://x\n",
         ["line 2, column source: `ftp://x` is not a link"]),
        ("kind,title\nother,Stand,extra\n", ["line 2: it has 3 values and the header 2"]),
        ('kind,title,description\nother,"Two\nlines",ok\nwizard,Stand,\n',
         ["line 4, column kind: `wizard`"]),
        ("kind,name\nother,Stand\n",
         ["line 1, column name: `name` is not a column I know",
          "line 1: the header lacks the column title"]),
        ("", ["line 1: the file is empty"]),
        ("kind,title\n\n", ["line 2: there are no rows under the header"]),
    ],
)  # fmt: skip
def test_each_bad_value_is_named_by_line_and_column(csv_text: str, expected: list[str]):
    found = problems(csv_text)
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert got.startswith(want), (got, want)


def test_every_bad_row_is_named_not_only_the_first():
    found = problems("kind,title\nother,Fine\nwizard,A\nother,Fine too\nelf,B\n")
    assert [p.split(":")[0] for p in found] == ["line 3, column kind", "line 5, column kind"]


def test_bad_bytes_are_refused_as_not_utf8():
    with pytest.raises(ImportRefused) as refused:
        read_csv("kind,title\nother,Caf\xe9\n".encode("latin-1"), ENV)
    assert str(refused.value.problems[0]).startswith("line 2: this is not UTF-8 text")


def test_a_spreadsheet_export_with_a_byte_order_mark_and_capitals_reads():
    [row] = read_csv("\ufeffKind,Title,Source Language\r\nTranslation,Flyer,EN\r\n".encode(), ENV)
    assert row.job.kind is TaskKind.TRANSLATION and row.job.source_language == "en"


def test_import_posts_every_row_on_both_databases(tmp_path: Path, db_url: str):
    (tmp_path / "tasks.csv").write_text(GOOD_NOW)
    done = bot("--as", "coco", "tasks", "import", "tasks.csv", cwd=tmp_path,
               env={"VOLUNTEER_BOT_STORAGE__URL": db_url})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 rows posted 4 tasks #1–#4" in done.stdout
    assert "1 job of several languages (job 1)" in done.stdout
    link = "https://example.org/leaflet.odt"
    assert tasks_in(db_url) == [
        ("translation", "Leaflet for the fair", "pl", "en", 2, "open", 1, link),
        ("translation", "Leaflet for the fair", "de", "en", 2, "open", 1, link),
        ("translation", "Leaflet for the fair", "fr", "en", 2, "open", 1, link),
        ("other", "Stand at the fair", None, None, 1, "open", None, None),
    ]
    assert tally(db_url) == {("pl", "open"): 1, ("de", "open"): 1, ("fr", "open"): 1,
                             ("", "open"): 1}, "the report's counts know the imported tasks"  # fmt: skip
    shown = bot("--as", "alice", stdin="task show 4\n", cwd=tmp_path,
                env={"VOLUNTEER_BOT_STORAGE__URL": db_url})  # fmt: skip
    assert "posted by coco" in shown.stdout, shown.stdout


def test_one_bad_row_imports_nothing_and_exits_non_zero(tmp_path: Path, db_url: str):
    (tmp_path / "tasks.csv").write_text(GOOD_NOW + "translation,Banner,pl,,,tomorrow,,\n"
                                        "wizard,Spells,,,,,,\n")  # fmt: skip
    env = {"VOLUNTEER_BOT_STORAGE__URL": db_url}
    refused = bot("tasks", "import", "tasks.csv", cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert "1 of 4 rows are not right, so nothing was imported" in refused.stderr
    assert "line 5, column kind: `wizard` is not a valid kind" in refused.stderr
    assert "Traceback" not in refused.stderr
    (tmp_path / "tasks.csv").write_text(GOOD_NOW)
    assert bot("tasks", "import", "tasks.csv", cwd=tmp_path, env=env).returncode == 0
    assert len(tasks_in(db_url)) == 4, "the refused file left nothing behind"


@pytest.mark.sqlite_only
def test_a_dry_run_checks_and_posts_nothing(tmp_path: Path, db_url: str):
    (tmp_path / "tasks.csv").write_text(GOOD_NOW)
    env = {"VOLUNTEER_BOT_STORAGE__URL": db_url}
    checked = bot("tasks", "import", "tasks.csv", "--dry-run", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "every row is fine; 2 rows would post 4 tasks" in checked.stdout
    assert "Nothing was posted (--dry-run)" in checked.stdout
    assert not (tmp_path / "bot.db").exists() or tasks_in(db_url) == []
    (tmp_path / "bad.csv").write_text("kind,title\nwizard,Spells\n")
    refused = bot("tasks", "import", "bad.csv", "--dry-run", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "line 2, column kind" in refused.stderr


@pytest.mark.sqlite_only
def test_a_missing_file_is_one_line_and_status_2(tmp_path: Path, db_url: str):
    missing = bot("tasks", "import", "nowhere.csv", cwd=tmp_path,
                  env={"VOLUNTEER_BOT_STORAGE__URL": db_url})  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "volunteer-bot: tasks import: cannot read nowhere.csv: No such file or directory"
    ]


@pytest.mark.sqlite_only
def test_a_thousand_rows_import_with_a_progress_bar_on_a_terminal(tmp_path: Path, db_url: str):
    lines = ["kind,title,language,priority"]
    lines += [f"translation,Leaflet {n},{'pl' if n % 2 else 'de'},low" for n in range(1000)]
    (tmp_path / "many.csv").write_text("\n".join(lines) + "\n")
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    env.update(PYTHONPATH=str(ROOT), VOLUNTEER_BOT_STORAGE__URL=db_url)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "tasks", "import", "many.csv"], cwd=tmp_path,
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
    assert re.search(r"checking rows\s+█{30}\s+1,001 / 1,001", text), text
    assert re.search(r"posting tasks\s+█{30}\s+1,000 / 1,000", text), text
    assert "1,000 rows posted 1,000 tasks #1–#1000" in out
    assert "by target language: de 500, pl 500" in out
    assert len(tasks_in(db_url)) == 1000


@pytest.mark.sqlite_only
def test_without_a_terminal_there_is_no_progress_bar(tmp_path: Path, db_url: str):
    (tmp_path / "tasks.csv").write_text(GOOD_NOW)
    done = bot("tasks", "import", "tasks.csv", cwd=tmp_path,
               env={"VOLUNTEER_BOT_STORAGE__URL": db_url})  # fmt: skip
    assert done.returncode == 0 and "█" not in done.stderr, done.stderr
