"""Configuration: TOML < environment, clear errors, warnings for unknown keys, secrets hidden."""

import os
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, find_config_file, load_settings
from tests.cli import bot

CANARY = "canary-secret-7f3a9c"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("VOLUNTEER_BOT_"):
            monkeypatch.delenv(name)


def test_defaults_apply_without_a_file():
    settings, warnings = load_settings(None)
    assert settings.storage.url == "sqlite:///volunteer-bot.db"
    assert settings.tasks.claim_ttl == timedelta(days=7)
    assert warnings == []


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = _write(
        tmp_path, '[storage]\nurl = "sqlite:///from-file.db"\n[tasks]\nmax_open_claims = 5\n'
    )
    monkeypatch.setenv("VOLUNTEER_BOT_STORAGE__URL", "sqlite:///from-env.db")
    settings, _ = load_settings(path)
    assert settings.storage.url == "sqlite:///from-env.db"
    assert settings.tasks.max_open_claims == 5


def test_durations_read_like_commands(tmp_path):
    settings, _ = load_settings(_write(tmp_path, '[tasks]\nclaim_ttl = "36h"\n'))
    assert settings.tasks.claim_ttl == timedelta(hours=36)


def test_a_wrong_type_names_the_key_path(tmp_path):
    with pytest.raises(ConfigError, match=r"tasks\.max_open_claims: .*integer"):
        load_settings(_write(tmp_path, '[tasks]\nmax_open_claims = "many"\n'))


def test_a_bad_time_zone_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"campaign\.timezone: .*Mars/Base"):
        load_settings(_write(tmp_path, '[campaign]\ntimezone = "Mars/Base"\n'))


def test_unknown_keys_and_variables_are_warned_about_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("VOLUNTEER_BOT_TASKS__MAX_CLAIMS", "3")
    _, warnings = load_settings(_write(tmp_path, "[tasks]\nmax_claims = 3\n[colour]\nx = 1\n"))
    assert "unknown config key 'tasks.max_claims' is ignored" in warnings
    assert "unknown config key 'colour' is ignored" in warnings
    assert any("VOLUNTEER_BOT_TASKS__MAX_CLAIMS" in w for w in warnings)


def test_config_file_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VOLUNTEER_BOT_CONFIG", raising=False)
    assert find_config_file(None) is None
    (tmp_path / "config.toml").write_text("")
    assert find_config_file(None) == Path("config.toml")
    monkeypatch.setenv("VOLUNTEER_BOT_CONFIG", "other.toml")
    assert find_config_file(None) == Path("other.toml")
    assert find_config_file("cli.toml") == Path("cli.toml")


def test_invalid_toml_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "[tasks\n"))


def test_secrets_never_appear_in_reprs_errors_or_output(tmp_path):
    path = _write(tmp_path, f'[discord]\ntoken = "{CANARY}"\n[matrix]\npassword = "{CANARY}"\n')
    settings, _ = load_settings(path)
    assert CANARY not in repr(settings) and CANARY not in str(settings.model_dump())
    assert settings.discord.token is not None
    assert settings.discord.token.get_secret_value() == CANARY
    env = {"VOLUNTEER_BOT_MATRIX__ACCESS_TOKEN": CANARY}
    runs = [
        bot("--config", str(path), "check-config", cwd=tmp_path, env=env),
        bot("--config", str(path), "--log-level", "DEBUG", "--as", "a", stdin="help\n", cwd=tmp_path,
            env=env),
        bot("check-config", cwd=tmp_path,
            env={"VOLUNTEER_BOT_DISCORD__TOKEN": CANARY, "VOLUNTEER_BOT_DISCORD__GUILD_IDS": "x"}),
    ]  # fmt: skip
    for run in runs:
        assert CANARY not in run.stdout + run.stderr


def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path):
    path = _write(tmp_path, '[tasks]\nmax_open_claims = "lots"\n')
    run = bot("--config", str(path), "check-config", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert "tasks.max_open_claims" in run.stderr and "Traceback" not in run.stderr


def test_a_missing_config_file_exits_2(tmp_path):
    run = bot("--config", "nope.toml", cwd=tmp_path)
    assert run.returncode == 2 and "does not exist" in run.stderr


def test_unknown_key_warning_reaches_the_log(tmp_path):
    path = _write(tmp_path, "[tasks]\nmax_claims = 3\n")
    run = bot("--config", str(path), "check-config", cwd=tmp_path)
    assert run.returncode == 0
    assert "unknown config key 'tasks.max_claims'" in run.stderr


def test_an_unreadable_environment_list_exits_2_naming_the_section(tmp_path):
    run = bot("check-config", cwd=tmp_path, env={"VOLUNTEER_BOT_DISCORD__GUILD_IDS": "12,13"})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "VOLUNTEER_BOT_DISCORD__*" in run.stderr


def test_a_json_list_in_the_environment_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("VOLUNTEER_BOT_DISCORD__GUILD_IDS", "[12, 13]")
    settings, _ = load_settings(None)
    assert settings.discord.guild_ids == [12, 13]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[campaign]\nregistered = 2019-05-01\n", r"campaign\.registered: .*2020-02-01"),
        ('[announce]\ndigest_cron = "0 9 * *"\n', r"announce\.digest_cron"),
        ('[announce]\ntargets = ["#general"]\n', r"announce\.targets\.0: .*not a target"),
        ('[announce]\ntargets = ["matrix:"]\n', r"announce\.targets\.0: .*not a target"),
        ("[campaign]\ncountries_needed = 30\n", r"campaign\.countries_needed"),
        ("[tasks]\nmax_open_claims = 0\n", r"tasks\.max_open_claims"),
    ],
)
def test_values_the_bot_could_not_run_with_are_config_errors(tmp_path, toml, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, toml))


MATRIX_ROOMS = {"enabled": True, "rooms": ["!campaign:example.org", "#volunteers:example.org"]}


@pytest.mark.parametrize(
    ("sections", "targets"),
    [
        ({}, ["console"]),
        ({"matrix": MATRIX_ROOMS},
         ["matrix:!campaign:example.org", "matrix:#volunteers:example.org"]),
        ({"matrix": MATRIX_ROOMS, "discord": {"enabled": True}},
         ["matrix:!campaign:example.org", "matrix:#volunteers:example.org"]),
        ({"discord": {"enabled": True}}, []),
        ({"matrix": MATRIX_ROOMS, "announce": {"targets": ["discord:42"]}}, ["discord:42"]),
        ({"announce": {"targets": []}}, []),
    ],
)  # fmt: skip
def test_unset_announce_targets_are_the_rooms_the_bot_serves(sections, targets):
    assert Settings(**sections).announce_targets == targets
