"""The console adapter and the command line, run as a real process."""

import sqlite3
import threading

from bot import __version__
from tests.cli import bot


def test_scripted_session_registers_and_shows_a_profile(tmp_path):
    run = bot(
        "--as", "alice",
        stdin="volunteer join translator --languages de,fr --country DE\nvolunteer profile\n",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Welcome, alice! You are registered as translator." in run.stdout
    assert "Languages: de (German), fr (French)" in run.stdout
    assert "Country: DE (Germany)" in run.stdout
    assert (tmp_path / "volunteer-bot.db").exists(), "the embedded database is in the working dir"


def test_bad_input_answers_friendly_errors_and_exits_0(tmp_path):
    run = bot(
        "--as", "alice",
        stdin="volunteer join wizard\nvolunteer join translator --languages xx\n"
        'volunteer join "unclosed\nfly away\nvolunteer join\n',
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0
    out = run.stdout
    assert "`wizard` is not a valid role" in out and "video-editor" in out
    assert "`xx` is not an official EU language" in out and "pl" in out
    assert "never closed" in out
    assert "`fly` is not a command" in out
    assert "needs <role>" in out
    assert "Traceback" not in out + run.stderr


def test_as_switches_the_acting_user_and_prefixes_are_optional(tmp_path):
    run = bot(
        "--as", "alice",
        stdin="!volunteer join networker\n:as bob\n/volunteer profile alice\nvolunteer profile\n",
        cwd=tmp_path,
    )  # fmt: skip
    assert "now acting as bob" in run.stdout
    assert "Roles: networker" in run.stdout
    assert "You are not registered yet" in run.stdout


def test_coordinator_flag_grants_rights(tmp_path):
    run = bot("--as", "coco", "--coordinator", "coco", stdin=":as coco\n", cwd=tmp_path)
    assert "now acting as coco — coordinator" in run.stdout


def test_version_help_and_db_upgrade(tmp_path):
    assert __version__ in bot("--version", cwd=tmp_path).stdout
    assert "check-config" in bot("--help", cwd=tmp_path).stdout
    first = bot("db", "upgrade", cwd=tmp_path)
    assert first.returncode == 0 and "applied 1:" in first.stdout
    again = bot("db", "upgrade", cwd=tmp_path)
    assert again.returncode == 0 and "applied" not in again.stdout
    assert "schema is at version" in again.stdout


def test_a_read_only_database_is_one_clear_line(tmp_path):
    bot("db", "upgrade", cwd=tmp_path)
    url = f"sqlite:///file:{tmp_path / 'volunteer-bot.db'}?mode=ro&uri=true"
    run = bot("--as", "a", stdin="volunteer join translator\n", cwd=tmp_path,
              env={"VOLUNTEER_BOT_STORAGE__URL": url})  # fmt: skip
    assert run.returncode == 1, run.stdout
    assert "read-only" in run.stderr and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0


def test_a_database_locked_by_another_process_waits_then_answers_friendly(tmp_path):
    bot("db", "upgrade", cwd=tmp_path)
    env = {"VOLUNTEER_BOT_STORAGE__BUSY_TIMEOUT_MS": "200"}
    holder = sqlite3.connect(tmp_path / "volunteer-bot.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        run = bot("--as", "alice", stdin="volunteer join translator\n", cwd=tmp_path, env=env)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.returncode == 0 and "Traceback" not in run.stdout + run.stderr
    assert "database is busy" in run.stdout and "nothing was changed" in run.stdout
    again = bot("--as", "alice", stdin="volunteer join translator\n", cwd=tmp_path, env=env)
    assert "Welcome, alice!" in again.stdout, "the refused command left no partial record"


def test_a_lock_released_within_the_timeout_is_waited_out(tmp_path):
    bot("db", "upgrade", cwd=tmp_path)
    holder = sqlite3.connect(
        tmp_path / "volunteer-bot.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        run = bot("--as", "alice", stdin="volunteer join translator\n", cwd=tmp_path)
    finally:
        release.join()
        holder.close()
    assert "Welcome, alice!" in run.stdout


def test_only_the_configured_cogs_are_loaded(tmp_path):
    (tmp_path / "config.toml").write_text('[bot]\ncogs = ["volunteers", "help"]\n')
    run = bot("--as", "alice", stdin="help\ntask list\n", cwd=tmp_path)
    assert "volunteer join" in run.stdout
    assert "task post" not in run.stdout
    assert "`task` is not a command" in run.stdout


def test_an_unknown_cog_in_the_config_is_one_clear_line(tmp_path):
    (tmp_path / "config.toml").write_text('[bot]\ncogs = ["volunteers", "karaoke"]\n')
    run = bot("--as", "alice", stdin="help\n", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "config error: bot.cogs: no cog named 'karaoke'" in run.stderr
    check = bot("check-config", cwd=tmp_path)
    assert check.returncode == 2 and "karaoke" in check.stderr


def test_quiet_and_confidential_answers_are_shown_to_the_one_person_at_the_terminal(tmp_path):
    run = bot(
        "--as", "alice",
        stdin="volunteer join networker\ntask mine\nprivacy mydata\n",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "You hold no tasks" in run.stdout  # quiet
    assert "What I store about you" in run.stdout and '"external_id"' not in run.stderr
    assert '"volunteer"' in run.stdout, "the confidential export is shown in full"


def test_a_chart_is_saved_as_a_file_whose_path_is_printed(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    run = bot("--as", "coco", "--coordinator", "coco", stdin="task post other Stand\ntask report\n",
              cwd=tmp_path, env={"TMPDIR": str(files)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "(attached: coverage.png," in run.stdout
    [line] = [line for line in run.stdout.splitlines() if "saved as " in line]
    saved = line.split("saved as ", 1)[1]
    assert saved.startswith(str(files / "volunteer-bot" / "coverage-")) and saved.endswith(".png")
    with open(saved, "rb") as png:
        assert png.read(4) == b"\x89PNG"
