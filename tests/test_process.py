"""The real bot process on a real SQLite file: killed mid-way, restarted, driven by stdin."""

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
POST = "📣 "
TIMEOUT = 30.0


class BotProcess:
    """``python -m bot`` in console mode, fed lines on stdin, its output collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, tmp_path: Path) -> "BotProcess":
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "VOLUNTEER_BOT_STORAGE__URL": f"sqlite:///{tmp_path / 'bot.db'}",
        }
        env.pop("VOLUNTEER_BOT_CONFIG", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--as", "coco", "--coordinator", "coco",
            cwd=tmp_path, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())

    async def wait_for(self, found: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not found(self.lines):
                if self.proc.returncode is not None:
                    raise AssertionError("bot exited early:\n" + "\n".join(self.lines))
                await asyncio.sleep(0.05)

    async def wait_line(self, text: str) -> None:
        await self.wait_for(lambda lines: any(text in line for line in lines))

    def posts(self) -> list[str]:
        return [line for line in self.lines if line.startswith(POST)]

    async def close(self) -> int:
        """End input; the console delivers what is due and exits."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            async with asyncio.timeout(TIMEOUT):
                code = await self.proc.wait()
        finally:
            await self.kill()
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def bots(tmp_path: Path) -> AsyncIterator[Callable[[], "asyncio.Future[BotProcess]"]]:
    started: list[BotProcess] = []

    async def start() -> BotProcess:
        bot = await BotProcess.start(tmp_path)
        started.append(bot)
        return bot

    try:
        yield start  # type: ignore[misc]
    finally:
        for bot in started:
            await bot.kill()


class WriteLock:
    """Holds SQLite's write lock on the bot's file, as a slow disk or another writer would."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=TIMEOUT, isolation_level=None)

    def state(self, reminder_id: int) -> str | None:
        row = self.conn.execute("SELECT state FROM reminder WHERE id = ?", (reminder_id,))
        found = row.fetchone()
        return found[0] if found else None

    def acquire(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


@pytest.mark.slow
async def test_console_prints_a_reminder_once_about_two_seconds_later(bots):
    bot = await bots()
    bot.send('reminder add "Call for translators" --in 2s')
    await bot.wait_line("Reminder #1 will post here")
    await bot.wait_for(lambda lines: any(line.startswith(POST) for line in lines))
    await asyncio.sleep(1.5)  # time enough for a second print, which must not come
    assert await bot.close() == 0
    assert bot.posts() == [f"{POST}⏰ Reminder: Call for translators"]


@pytest.mark.slow
async def test_console_announces_milestones_once_even_after_a_restart(bots):
    first = await bots()
    first.send("signatures set 120000")
    first.send("signatures set 120000")
    first.send("signatures")
    assert await first.close() == 0
    [announcement] = [i for i, line in enumerate(first.lines) if line.startswith(POST)]
    text = "\n".join(first.lines[announcement : announcement + 6])
    assert "• 10,000 signatures" in text and "• 100,000 signatures" in text
    assert "(attached: signatures.png)" in "\n".join(first.lines)
    assert "12.0% of the 1,000,000 goal" in "\n".join(first.lines)
    second = await bots()
    second.send("signatures set 120000")
    assert await second.close() == 0
    assert "Recorded 120,000 signatures in total." in second.lines
    assert second.posts() == []


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while recording the due run", "after the post was written"])
async def test_a_bot_killed_between_a_reminder_falling_due_and_delivery_posts_it_once(
    bots, tmp_path: Path, moment: str
):
    first = await bots()
    first.send('reminder add "Call for translators" --in 2s')
    await first.wait_line("Reminder #1 will post here")
    lock = WriteLock(tmp_path / "bot.db")
    try:
        if moment == "while recording the due run":
            lock.acquire()  # the run falls due and cannot be recorded or delivered
            await asyncio.sleep(3)
        else:
            async with asyncio.timeout(TIMEOUT):
                # Another process's database: nothing to wait on but the file itself.
                while lock.state(1) == "active":  # noqa: ASYNC110
                    await asyncio.sleep(0.002)
            lock.acquire()  # written; delivery now waits for the lock (unless it won)
            await asyncio.sleep(0.5)
        await first.kill()
    finally:
        lock.release()
    second = await bots()
    if not first.posts():
        await second.wait_for(lambda lines: any(line.startswith(POST) for line in lines))
    await asyncio.sleep(1)
    assert await second.close() == 0
    third = await bots()
    await asyncio.sleep(1)
    assert await third.close() == 0
    posts = first.posts() + second.posts() + third.posts()
    assert posts == [f"{POST}⏰ Reminder: Call for translators"], (moment, posts)
