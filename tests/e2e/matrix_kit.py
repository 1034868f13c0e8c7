"""Driving the bot on a real Synapse: people with real matrix-nio clients, and the bot itself
(in this process, or as a ``python -m bot`` subprocess for real stops and starts)."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    RoomCreateError,
    RoomPreset,
    RoomSendError,
    SyncError,
)

from bot.adapters.matrix_adapter import MatrixAdapter
from bot.app import App
from bot.config import Settings
from tests.synapse import Account, Synapse, stop_process

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0
Event = dict[str, Any]


class Person:
    """A Matrix user with a real client that records every room event it sees."""

    def __init__(self, server: Synapse, account: Account) -> None:
        self.server = server
        self.account = account
        self.user_id = account.user_id
        self.client = AsyncClient(
            server.url,
            account.user_id,
            device_id=account.device_id,
            config=AsyncClientConfig(
                max_limit_exceeded=0, max_timeouts=0, encryption_enabled=False
            ),
        )
        self.client.access_token = account.access_token
        self.events: list[Event] = []
        self.invites: set[str] = set()
        self.since: str | None = None
        self._sent = 0

    async def start(self) -> "Person":
        response = await self.client.sync(timeout=0, sync_filter=_filter(0))
        assert not isinstance(response, SyncError), response
        self.since = response.next_batch
        return self

    async def close(self) -> None:
        await self.client.close()

    async def sync(self, timeout_ms: int = 5_000) -> None:
        response = await self.client.sync(
            timeout=timeout_ms, since=self.since, sync_filter=_filter(1000)
        )
        assert not isinstance(response, SyncError), response
        self.invites.update(response.rooms.invite)
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                source = dict(getattr(event, "source", {}))
                source["room_id"] = room_id
                self.events.append(source)
        self.since = response.next_batch

    async def wait_for_invite(self, within: float = WAIT) -> str:
        """Sync until an invite arrives; returns the room id."""
        deadline = time.monotonic() + within
        while not self.invites:
            assert time.monotonic() < deadline, f"{self.user_id} got no invite"
            await self.sync(2_000)
        return self.invites.pop()

    async def wait_for(
        self, match: Callable[[Event], bool], count: int = 1, within: float = WAIT
    ) -> list[Event]:
        """Sync until ``count`` events match; fails with what was seen otherwise."""
        deadline = time.monotonic() + within
        while True:
            found = [e for e in self.events if match(e)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.user_id} saw {len(found)} of {count} expected events; last seen: "
                    + "; ".join(_brief(e) for e in self.events[-5:])
                )
            await self.sync(int(min(left, 5.0) * 1000))

    async def reply_to(self, event_id: str, bot: str, within: float = WAIT) -> Event:
        return (await self.wait_for(lambda e: is_reply(e, event_id, bot), within=within))[0]

    async def sees_join(self, room_id: str, user_id: str) -> None:
        """Wait until ``user_id`` has joined the room."""
        await self.wait_for(
            lambda e: (
                e.get("room_id") == room_id
                and e.get("type") == "m.room.member"
                and e.get("state_key") == user_id
                and (e.get("content") or {}).get("membership") == "join"
            )
        )

    async def send(self, room_id: str, text: str, **content: Any) -> str:
        return await self.send_content(room_id, {"msgtype": "m.text", "body": text, **content})

    async def send_content(self, room_id: str, content: dict[str, Any],
                           event_type: str = "m.room.message") -> str:  # fmt: skip
        self._sent += 1
        response = await self.client.room_send(
            room_id, event_type, content, tx_id=f"t{time.monotonic_ns()}-{self._sent}"
        )
        assert not isinstance(response, RoomSendError), response
        return str(response.event_id)

    async def ask(self, room_id: str, text: str, bot: str) -> Event:
        """Send a command and wait for the bot's reply to it."""
        return await self.reply_to(await self.send(room_id, text), bot)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        return await self.send_content(
            room_id,
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}},
            "m.reaction",
        )

    async def create_room(
        self,
        invite: Sequence[str] = (),
        power: dict[str, int] | None = None,
        alias: str | None = None,
    ) -> str:
        # The creator outranks every power level (room version 12), so is not listed.
        response = await self.client.room_create(
            preset=RoomPreset.private_chat,
            invite=list(invite),
            power_level_override={"users": power} if power else None,
            alias=alias,
        )
        assert not isinstance(response, RoomCreateError), response
        return str(response.room_id)

    async def join(self, room_id: str) -> None:
        response = await self.client.join(room_id)
        assert not isinstance(response, JoinError), response

    async def membership(self, room_id: str, user_id: str) -> str | None:
        response = await self.client.room_get_state_event(room_id, "m.room.member", user_id)
        content = getattr(response, "content", None) or {}
        return content.get("membership")

    def notifications(self) -> list[dict[str, Any]]:
        return self.server.request(
            "GET", "/_matrix/client/v3/notifications?limit=100", token=self.account.access_token
        )["notifications"]


def _filter(limit: int) -> dict[str, Any]:
    return {"presence": {"not_types": ["*"]}, "room": {"timeline": {"limit": limit}}}


def _brief(event: Event) -> str:
    return f"{event.get('sender')} {event.get('type')} {str(event.get('content'))[:80]}"


def in_reply_to(event: Event) -> str | None:
    relates = (event.get("content") or {}).get("m.relates_to") or {}
    return (relates.get("m.in_reply_to") or {}).get("event_id")


def is_reply(event: Event, event_id: str, bot: str) -> bool:
    return (
        event.get("sender") == bot
        and event.get("type") == "m.room.message"
        and in_reply_to(event) == event_id
    )


def body(event: Event) -> str:
    return str((event.get("content") or {}).get("body", ""))


def matrix_section(server: Synapse, bot: Account, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "enabled": True,
        "homeserver": server.url,
        "user_id": bot.user_id,
        "access_token": bot.access_token,
    }
    section.update(overrides)
    return section


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    server: Synapse,
    bot: Account,
    *,
    sections: dict[str, Any] | None = None,
    **matrix: Any,
) -> AsyncIterator[tuple[App, MatrixAdapter]]:
    """The bot in this process, ready (first sync done) when the block starts."""
    settings = Settings(
        storage={"url": f"sqlite:///{tmp_path / 'bot.db'}"},
        matrix={"store_path": str(tmp_path / "store"), **matrix_section(server, bot, **matrix)},
        **(sections or {}),
    )
    app = App(settings)
    adapter = MatrixAdapter(app)
    try:
        await app.start([adapter])
        await asyncio.wait_for(adapter.ready.wait(), WAIT)
        yield app, adapter
    finally:
        await app.stop()


class BotProcess:
    """``python -m bot run`` in a subprocess, so it can be really stopped and started."""

    def __init__(self, workdir: Path, config: str, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.toml"
        self.config_path.write_text(config)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    async def start(self, ready: str = "matrix: ready") -> None:
        """Start the bot and wait until it logs ``ready`` (by default: its first sync is done)."""
        seen = self.count(ready)
        self._spawn()
        assert self.process is not None
        try:
            await self.logged(ready, after=seen)
        except AssertionError:
            self.stop()
            raise

    def count(self, text: str) -> int:
        """How many log lines so far contain ``text``."""
        return len([line for line in self.log if text in line])

    async def logged(self, text: str, *, after: int = 0, within: float = WAIT) -> None:
        """Wait until more than ``after`` log lines contain ``text``."""
        deadline = time.monotonic() + within
        while self.count(text) <= after:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"the bot ended before {text!r}:\n" + self.output[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {within} s:\n" + self.output[-3000:])
            await asyncio.sleep(0.05)

    def signal(self, sig: int) -> None:
        """Send a signal (SIGKILL, SIGSTOP, SIGCONT) to the bot process."""
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def reap(self) -> int:
        """Collect a process that was killed; returns its exit code."""
        assert self.process is not None
        code = self.process.wait(20)
        if self._reader is not None:
            self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        return code

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config_path)],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stream = self.process.stderr
        assert stream is not None
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.log.append(line)

    def stop(self) -> int:
        """SIGTERM (a clean stop), then wait; returns the exit code."""
        if self.process is None:
            return 0
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            stop_process(process)  # type: ignore[arg-type]
        if self._reader is not None:
            self._reader.join(5)
        if process.stderr is not None:
            process.stderr.close()
        self.process = None
        return int(process.returncode)

    @property
    def output(self) -> str:
        return "".join(self.log)


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """A TOML file for the flat sections a test needs."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, int):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{key} = {value(v)}" for key, v in keys.items()]
        out.append("")
    return "\n".join(out)


class Handled:
    """Which events the bot has finished handling, answered or not.

    A command the bot ignores leaves nothing to wait for; this makes its handling an event
    a test can await, instead of sleeping and hoping nothing came.
    """

    def __init__(self, adapter: MatrixAdapter) -> None:
        self._done: dict[str, asyncio.Event] = {}
        original = adapter._handle_event

        async def tracked(room: Any, event: Event) -> None:
            try:
                await original(room, event)
            finally:
                self._event(str(event.get("event_id"))).set()

        adapter._handle_event = tracked  # type: ignore[method-assign]

    def _event(self, event_id: str) -> asyncio.Event:
        return self._done.setdefault(event_id, asyncio.Event())

    async def wait(self, event_id: str, within: float = WAIT) -> None:
        await asyncio.wait_for(self._event(event_id).wait(), within)
