"""The command line on a database it cannot use: one line, exit status 2, no password shown."""

import pytest

from tests.cli import bot
from tests.postgres import Postgres, free_port

SECRET = "Pa55-canary-Xq7"


def _one_clear_line(run, *expected: str) -> str:
    err = run.stderr.strip()
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert err.count("\n") == 0, err
    assert "Traceback" not in run.stdout + run.stderr
    for part in expected:
        assert part in err, err
    return err


@pytest.mark.parametrize("command", [["db", "upgrade"], ["--as", "alice"], ["run"]])
def test_a_server_that_is_not_there_is_one_line_and_status_2(tmp_path, command):
    url = f"postgresql://bot:{SECRET}@127.0.0.1:{free_port()}/campaign"
    run = bot(*command, stdin="volunteer profile\n", cwd=tmp_path,
              env={"VOLUNTEER_BOT_STORAGE__URL": url})  # fmt: skip
    err = _one_clear_line(run, "cannot connect", "campaign", "127.0.0.1")
    assert SECRET not in run.stdout + err


def test_a_wrong_password_is_one_line_and_status_2(tmp_path, postgres: Postgres, pg_url: str):
    url = pg_url.replace(postgres.password, SECRET)
    run = bot("db", "upgrade", cwd=tmp_path, env={"VOLUNTEER_BOT_STORAGE__URL": url})
    err = _one_clear_line(run, "cannot connect", "password")
    assert SECRET not in run.stdout + err


def test_a_missing_database_is_one_line_and_status_2(tmp_path, postgres: Postgres):
    url = postgres.url("no_such_campaign")
    run = bot("--as", "alice", stdin="volunteer profile\n", cwd=tmp_path,
              env={"VOLUNTEER_BOT_STORAGE__URL": url})  # fmt: skip
    err = _one_clear_line(run, "no_such_campaign", "does not exist")
    assert postgres.password not in run.stdout + err


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://bot:{SECRET}@127.0.0.1:port/db",  # not a port number
        f"postgresql//bot:{SECRET}@127.0.0.1/db",  # not a URL at all
        f"nosuchdb://bot:{SECRET}@127.0.0.1/db",  # no such database kind
    ],
)
def test_a_storage_url_that_cannot_be_used_is_one_line_and_status_2(tmp_path, url):
    run = bot("db", "upgrade", cwd=tmp_path, env={"VOLUNTEER_BOT_STORAGE__URL": url})
    err = _one_clear_line(run, "storage")
    assert SECRET not in run.stdout + err


def test_postgresql_url_works_as_given_for_upgrade_and_commands(tmp_path, pg_url: str):
    assert pg_url.startswith("postgresql://")
    env = {"VOLUNTEER_BOT_STORAGE__URL": pg_url}
    upgrade = bot("db", "upgrade", cwd=tmp_path, env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "schema is at version" in upgrade.stdout
    run = bot("--as", "alice", stdin="volunteer join translator --languages pl\n"
              "volunteer profile\n", cwd=tmp_path, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Welcome, alice!" in run.stdout and "pl (Polish)" in run.stdout


def test_the_password_never_shows_in_logs_or_check_config(tmp_path, postgres: Postgres, pg_url):
    env = {"VOLUNTEER_BOT_STORAGE__URL": pg_url}
    runs = [
        bot("check-config", cwd=tmp_path, env=env),
        bot("--log-level", "DEBUG", "--as", "a", stdin="volunteer join translator\n",
            cwd=tmp_path, env=env),
    ]  # fmt: skip
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert postgres.password not in run.stdout + run.stderr


def test_reprs_of_the_settings_and_the_database_hide_the_password(pg_url: str, postgres):
    from bot.config import Settings
    from storage.db import Database

    settings = Settings(storage={"url": pg_url})
    db = Database(settings.storage.url)
    try:
        for text in (repr(settings), str(settings.model_dump()), repr(db), repr(db.engine)):
            assert postgres.password not in text, text
    finally:
        db.close()
