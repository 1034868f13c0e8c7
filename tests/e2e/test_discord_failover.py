"""Two bot processes on one database and one Discord application: one gateway at a time."""

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.discord_fake import FakeDiscord

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TAKEOVER_BOUND = 30.0


class Bot:
    """``python -m bot run`` against the fake, its log read as it comes."""

    def __init__(self, config: Path, token: str) -> None:
        self.config = config
        self.token = token
        self.log: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> "Bot":
        env = {**os.environ, "VOLUNTEER_BOT_DISCORD__TOKEN": self.token, "PYTHONPATH": str(ROOT)}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(self.config),
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace"))

    async def logged(self, text: str, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not any(text in line for line in self.log):
            assert time.monotonic() < deadline, f"no {text!r}:\n" + "".join(self.log[-20:])
            await asyncio.sleep(0.05)

    async def end(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None:
            return 0
        if self.process.returncode is None:
            self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), 30)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        self.process = None
        return code


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord(token="failover-token").start()
    try:
        yield server
    finally:
        await server.stop()


def config(tmp_path: Path, fake: FakeDiscord, db_url: str) -> Path:
    path = tmp_path / "config.toml"
    url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    path.write_text(
        f"""
[bot]
lease_ttl = "3s"

[storage]
url = "{url}"

[discord]
enabled = true
guild_ids = [{fake.guild_id}]
api_base = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"
""",
        encoding="utf-8",
    )
    return path


async def test_the_standby_connects_the_gateway_when_the_active_process_dies(
    fake, tmp_path, db_url
):
    path = config(tmp_path, fake, db_url)
    one = await Bot(path, fake.token).start()
    two: Bot | None = None
    try:
        await fake.wait_connected(seconds=30)
        two = await Bot(path, fake.token).start()
        await two.logged("standby for discord")
        alice = fake.user("alice")
        before = await (await fake.slash(alice, "volunteer join", role="networker")).answer()
        assert "registered as **networker**" in before.content
        assert len(fake.identifies) == 1, "the standby did not connect"

        killed = time.monotonic()
        await one.end(signal.SIGKILL)
        await fake.wait_connected(after=1, seconds=TAKEOVER_BOUND)
        window = time.monotonic() - killed
        print(f"Discord had no gateway connection for {window:.1f} s")
        assert window < TAKEOVER_BOUND
        after = await (await fake.slash(alice, "volunteer profile")).answer()
        assert "networker" in after.content, "the new process answers from the same database"
        assert len(fake.identifies) == 2
        syncs = fake.requests_to("PUT", rf"^/applications/\d+/guilds/{fake.guild_id}/commands$")
        assert len(syncs) == 1, "the commands were not synced again by the standby"
    finally:
        await one.end(signal.SIGKILL)
        if two is not None:
            assert await two.end() == 0, "".join(two.log[-20:])
