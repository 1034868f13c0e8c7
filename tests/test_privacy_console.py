"""Privacy end to end in the console (`python -m bot`), and what its log may hold."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot import loader
from bot.adapters.console_adapter import render
from bot.context import Attachment, Reply
from bot.domain import Markup

ROOT = Path(__file__).resolve().parent.parent


def console(
    tmp_path: Path, lines: list[str], *, user: str = "alice", log_level: str = "WARNING"
) -> subprocess.CompletedProcess[str]:
    """One console session on ``tmp_path/bot.db``; returns its stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    env["VOLUNTEER_BOT_STORAGE__URL"] = f"sqlite:///{tmp_path / 'bot.db'}"
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "bot", "--as", user, "--coordinator", "coco"]
    result = subprocess.run(
        [*command, "--log-level", log_level],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def stored_bytes(tmp_path: Path) -> bytes:
    """The database file and its WAL and shared-memory files, if any."""
    return b"".join(path.read_bytes() for path in tmp_path.glob("bot.db*"))


@pytest.mark.sqlite_only
def test_alice_sees_her_data_then_erases_it_from_the_database_file(tmp_path: Path):
    first = console(
        tmp_path,
        ["volunteer join translator --languages pl,de --country PL", "privacy mydata"],
    )
    assert "What I store about you:" in first.stdout
    assert "--- mydata.json ---" in first.stdout
    assert '"id": "alice"' in first.stdout and '"translator"' in first.stdout
    assert '"country": "PL"' in first.stdout
    assert b"alice" in stored_bytes(tmp_path), "the scan sees her before she is erased"

    second = console(tmp_path, ["privacy forget --confirm", "volunteer profile alice"])
    assert "Done. I erased your `volunteer` record" in second.stdout
    assert "I know no volunteer `alice`" in second.stdout
    assert b"alice" not in stored_bytes(tmp_path)


def test_alices_claimed_task_is_open_again_after_she_is_forgotten(tmp_path: Path):
    posted = console(
        tmp_path, ["task post translation Leaflet for the Kraków stand --language pl"], user="coco"
    )
    found = re.search(r"#(\d+)", posted.stdout) or re.search(r"\b(\d+)\b", posted.stdout)
    assert found, posted.stdout
    task = found.group(1)
    session = console(
        tmp_path,
        [
            "volunteer join translator --languages pl",
            f"task claim {task}",
            "privacy mydata",
            "privacy forget --confirm",
            f"task show {task}",
            "volunteer profile alice",
        ],
    )
    export = session.stdout.split("--- mydata.json ---", 1)[1].split("\n---\n", 1)[0]
    assert "Leaflet for the Kraków stand" in export, "her claim is in her export"
    shown = session.stdout.split("Done. I erased", 1)[1]
    assert re.search(r"\bopen\b", shown, re.IGNORECASE), shown
    assert "I know no volunteer `alice`" in shown
    assert b"alice" not in stored_bytes(tmp_path)


def test_the_info_log_holds_no_names_ids_or_message_text(tmp_path: Path):
    """At INFO the log says what ran and how long it took, never who or what they typed."""
    lines = [
        "volunteer join translator --languages pl --country PL",
        "volunteer join zqlrolename",
        "zqlcommand with zqltext",
        "volunteer profile zqlother",
        'volunteer list translator --language "zqllang"',
        "help zqlhelp",
        "help volunteer join zqlhelptext",
        "privacy mydata",
    ]
    available = loader.available()
    if "tasks" in available:
        lines += [
            ":as zqlcoordinator",
            "task post translation zqltitle of the leaflet --language pl "
            "--description zqldescription",
            "task list",
            ":as zqlvolunteer",
            "volunteer join translator --languages pl",
            "task claim 1",
            "task done 1 zqlnote",
        ]
    if "reminders" in available:
        lines += [":as zqlcoordinator", "reminder add zqlreminder text --in 1d"]
    if "signatures" in available:
        lines += [":as zqlcoordinator", "signatures set 1234 --country PL"]
    lines += [":as zqlvolunteer", "privacy forget --confirm"]
    result = console(tmp_path, lines, user="zqlperson", log_level="INFO")
    assert "zqlperson" in result.stdout.lower(), "the session ran as the marked person"
    assert re.search(r"INFO bot\.core: command volunteer join on console", result.stderr)
    assert re.search(r"INFO bot\.core: command privacy forget on console", result.stderr)
    leaks = sorted(set(re.findall(r"zql\w*", result.stderr, re.IGNORECASE)))
    assert not leaks, f"the log holds personal data: {leaks}\n{result.stderr}"


def test_the_console_shows_text_attachments_in_full_and_names_other_files():
    reply = Reply(
        Markup.trusted("Here you are."),
        attachments=[
            Attachment("mydata.json", '{"id": "zoë"}'.encode(), "application/json"),
            Attachment("notes.txt", b"line one", "text/plain; charset=utf-8"),
            Attachment("chart.png", b"\x89PNG\r\n", "image/png"),
        ],
    )
    assert render(reply).splitlines() == [
        "Here you are.",
        "--- mydata.json ---",
        '{"id": "zoë"}',
        "---",
        "--- notes.txt ---",
        "line one",
        "---",
        "  (attached: chart.png, 6 bytes)",
    ]
