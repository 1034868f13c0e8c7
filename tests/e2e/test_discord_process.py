"""``volunteer-bot run --config …`` as a real process serving Discord through the fake."""

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.discord_fake import FakeDiscord

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord(token="process-secret-token").start()
    try:
        yield server
    finally:
        await server.stop()


def write_config(tmp_path: Path, fake: FakeDiscord) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[storage]
url = "sqlite:///{tmp_path / "bot.db"}"

[discord]
enabled = true
guild_ids = [{fake.guild_id}]
api_base = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"
""",
        encoding="utf-8",
    )
    return path


async def start_bot(config: Path, token: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "VOLUNTEER_BOT_DISCORD__TOKEN": token, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_the_cli_syncs_the_commands_and_serves_them_until_sigterm(fake, tmp_path):
    proc = await start_bot(write_config(tmp_path, fake), fake.token)
    try:
        await fake.wait_connected(seconds=30)
        alice = fake.user("alice")
        asked = await fake.slash(alice, "help")
        await asyncio.wait_for(asked.answer(), 10)
        # The list runs over more than one message; the volunteer commands come last.
        await fake.wait_for(lambda: any("/volunteer join" in a.content for a in asked.answers))
        assert fake.requests_to("PUT", rf"^/applications/\d+/guilds/{fake.guild_id}/commands$")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert fake.token not in (out + err).decode(), "the token never reaches the logs"


async def test_a_refused_token_ends_the_process_with_a_clear_message(fake, tmp_path):
    proc = await start_bot(write_config(tmp_path, fake), "wrong-token")
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "discord.token was refused" in err.decode()
    assert "wrong-token" not in (out + err).decode()
    assert "Traceback" not in err.decode()
