"""Several real bot processes on one database and the Discord fake, killed at random.

The fake is the receiving side and honours the idempotency key as Discord does: a message
posted again with a nonce it already has (``enforce_nonce``) is not posted twice. What the
fake shows is compared with the outbox rows and the reminders on the database afterwards.
"""

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage import migrations
from storage.db import Database
from storage.leases import LeaseRepo
from tests.discord_fake import FakeDiscord, User

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("bot_child.py")
TOKEN = "chaos-token"
SETTLE = 60.0  # seconds a round may take to deliver everything after its kill


def seed() -> int:
    """The round's randomness: CHAOS_SEED, else a fixed number."""
    return int(os.environ.get("CHAOS_SEED", "1616"))


def rounds(default: int) -> int:
    """How many rounds: CHAOS_ROUNDS, else ``default``."""
    return int(os.environ.get("CHAOS_ROUNDS", str(default)))


def sql_url(db_url: str) -> str:
    """The URL the bot's config takes (psycopg named for PostgreSQL)."""
    return db_url.replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass
class Bot:
    """``bot_child.py run`` against the fake; its log goes to a file."""

    config: Path
    log: Path
    broken: str | None = None
    process: asyncio.subprocess.Process | None = None
    offset: int = 0  # where this run's log starts

    async def start(self) -> "Bot":
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        env = {**os.environ, "VOLUNTEER_BOT_DISCORD__TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
        if self.broken:
            env["CHAOS_BREAK"] = self.broken
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, str(CHILD), "run", "--config", str(self.config),
                cwd=self.config.parent, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        self.process = None

    async def ready(self, within: float = 60.0) -> None:
        """Until this run serves Discord or stands by for it (its signal handlers are set)."""
        deadline = time.monotonic() + within
        while True:
            text = self.log.read_bytes()[self.offset :].decode(errors="replace")
            if "serving discord" in text or "standby for discord" in text:
                return
            assert time.monotonic() < deadline, f"bot not up:\n{text[-2000:]}"
            await asyncio.sleep(0.05)  # a log file has no event to wait on

    async def end(self) -> int | None:
        """SIGTERM and wait; returns the exit status (None if it was not running)."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            await self.kill()
            return -9
        self.process = None
        return code


@dataclass
class Fleet:
    """The fake, the database and the bot processes of one chaos test."""

    fake: FakeDiscord
    db: Database
    bots: list[Bot]
    rng: random.Random
    coordinator: User
    kills: int = 0
    violations: list[str] = field(default_factory=list)

    @classmethod
    async def start(
        cls, tmp_path: Path, db_url: str, *, size: int = 2, broken: str | None = None,
        extra: str = "",
    ) -> "Fleet":  # fmt: skip
        fake = await FakeDiscord(token=TOKEN).start()
        coordinator = fake.user("coco")
        db = Database(db_url)
        migrations.upgrade(db)
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[bot]
lease_ttl = "1s"

[storage]
url = "{sql_url(db_url)}"

[discord]
enabled = true
guild_ids = [{fake.guild_id}]
coordinators = [{coordinator.id}]
api_base = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"

[announce]
targets = ["discord:{fake.channel_id}"]
{extra}
""",
            encoding="utf-8",
        )
        bots = [Bot(config, tmp_path / f"bot{i}.log", broken) for i in range(size)]
        fleet = cls(fake, db, bots, random.Random(seed()), coordinator)
        for bot in bots:
            await bot.start()
        await fake.wait_connected(seconds=60)
        return fleet

    async def stop(self) -> list[int | None]:
        """SIGTERM every bot (a clean stop), then the fake; returns their exit statuses."""
        for bot in self.bots:
            if bot.process is not None:
                await bot.ready()
        codes = [await bot.end() for bot in self.bots]
        await self.fake.stop()
        self.db.close()
        return codes

    def logs(self) -> str:
        return "".join(bot.log.read_text(errors="replace")[-3000:] for bot in self.bots)

    async def holder(self, duty: str) -> Bot | None:
        """The bot process holding ``duty`` now, if one does."""
        _, leases = await LeaseRepo(self.db).status()
        holder = next((lease.holder for lease in leases if lease.duty == duty), None)
        pid = int(holder.split(":")[-2]) if holder else None
        return next((bot for bot in self.bots if bot.pid == pid), None)

    async def kill_and_restart(self, duty: str) -> None:
        """SIGKILL the holder of ``duty`` (any bot if nobody holds it), then start it again."""
        bot = await self.holder(duty) or self.rng.choice(self.bots)
        await bot.kill()
        self.kills += 1
        await bot.start()

    def posts(self) -> list[dict[str, Any]]:
        """The bot's own posts on the campaign channel (not its answers to commands)."""
        messages = self.fake.channel_messages(self.fake.channel_id)
        return [m for m in messages if "interaction_metadata" not in m]

    def contents(self) -> Counter[str]:
        """How many times each text was posted to the campaign channel."""
        return Counter(m["content"] for m in self.posts())

    def deduplicated(self) -> int:
        """Posts the fake did not create again because their nonce was known (retries)."""
        posts = self.fake.requests_to("POST", rf"^/channels/{self.fake.channel_id}/messages$")
        return len(posts) - len(self.posts())

    async def wait(self, done: Any, what: str, within: float = SETTLE) -> bool:
        """Poll the database until ``done()`` (a coroutine) is true; False on time-out."""
        deadline = time.monotonic() + within
        while not await done():
            if time.monotonic() > deadline:
                self.violations.append(f"not settled within {within:.0f} s: {what}")
                return False
            await asyncio.sleep(0.1)  # the database has no event to wait on
        return True

    def verdict(self, area: str, count: int) -> str:
        line = (
            f"chaos {area}: {count} rounds, {self.kills} kills, {len(self.violations)} violations"
        )
        print(line, f"(seed {seed()}, {self.deduplicated()} retries absorbed by the nonce)")
        return line
