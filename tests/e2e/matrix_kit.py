"""Driving the bot on a real Synapse: people with real matrix-nio clients, and the bot itself
(in this process, or as a ``python -m bot`` subprocess for real stops and starts)."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    MegolmEvent,
    MessageDirection,
    RoomCreateError,
    RoomMessagesError,
    RoomPreset,
    RoomSendError,
    RoomSendResponse,
    SyncError,
    ToDeviceError,
    ToDeviceMessage,
)
from nio.api import Api as NioApi
from nio.crypto import OutboundGroupSession
from nio.crypto.key_request import OutgoingKeyRequest
from nio.exceptions import EncryptionError

from bot.adapters.matrix_adapter import MatrixAdapter
from bot.adapters.matrix_signing import ensure_cross_signed
from bot.app import App
from bot.config import Settings
from tests.synapse import Account, Synapse, stop_process

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0
Event = dict[str, Any]
MEGOLM = "m.megolm.v1.aes-sha2"
ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class Person:
    """A Matrix user with a real client that records every room event it sees.

    With ``store`` it is an end-to-end encrypting client (matrix-nio with vodozemac, its own
    crypto store in that folder), like Element: it encrypts in encrypted rooms, trusts every
    device on first use, and decrypts what it can.
    """

    def __init__(self, server: Synapse, account: Account, store: Path | None = None) -> None:
        self.server = server
        self.account = account
        self.user_id = account.user_id
        self.encrypting = store is not None
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(
            server.url,
            account.user_id,
            device_id=account.device_id,
            store_path=str(store) if store is not None else "",
            config=AsyncClientConfig(
                max_limit_exceeded=0, max_timeouts=0, encryption_enabled=self.encrypting
            ),
        )
        # Opens the crypto store too, when encrypting.
        self.client.restore_login(account.user_id, account.device_id, account.access_token)
        self.events: list[Event] = []
        # Ids of the room events that arrived encrypted (and were decrypted, if in events).
        self.encrypted: set[str] = set()
        self.undecryptable: list[Event] = []
        self.to_device: list[Any] = []
        self.invites: set[str] = set()
        self.since: str | None = None
        self._seen: set[Any] = set()
        self._sent = 0

    async def start(self) -> "Person":
        if self.encrypting:
            await self.client.keys_upload()
        response = await self.client.sync(timeout=0, sync_filter=_filter(0))
        assert not isinstance(response, SyncError), response
        self.since = response.next_batch
        await self.keep_keys()
        return self

    async def keep_keys(self) -> None:
        """What an encrypting client does after each sync: keys up, down and claimed."""
        client = self.client
        if not self.encrypting:
            return
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    async def close(self) -> None:
        await self.client.close()

    async def sync(self, timeout_ms: int = 5_000) -> None:
        response = await self.client.sync(
            timeout=timeout_ms, since=self.since, sync_filter=_filter(1000)
        )
        assert not isinstance(response, SyncError), response
        self.invites.update(response.rooms.invite)
        self.to_device.extend(response.to_device_events)
        for room_id, info in response.rooms.join.items():
            events = list(info.timeline.events)
            if info.timeline.limited and self.since and info.timeline.prev_batch:
                events = await self._gap(room_id, info.timeline.prev_batch, self.since) + events
            for event in events:
                source = dict(getattr(event, "source", {}))
                if source.get("event_id") in self._seen:
                    continue
                self._seen.add(source.get("event_id"))
                source["room_id"] = room_id
                if getattr(event, "decrypted", False):
                    self.encrypted.add(str(source.get("event_id")))
                if isinstance(event, MegolmEvent):
                    self.encrypted.add(str(source.get("event_id")))
                    self.undecryptable.append(source)
                    continue
                self.events.append(source)
        self.since = response.next_batch
        await self.keep_keys()

    async def _gap(self, room_id: str, start: str, since: str) -> list[Any]:
        """What a limited sync left out, oldest first (a burst can outrun one sync)."""
        gathered: list[Any] = []
        while True:
            page = await self.client.room_messages(
                room_id, start=start, end=since, direction=MessageDirection.back, limit=100
            )
            assert not isinstance(page, RoomMessagesError), page
            gathered += page.chunk
            if not page.chunk or not page.end or page.end == start:
                break
            start = page.end
        return gathered[::-1]

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
                    + f"; {len(self.undecryptable)} could not be decrypted "
                    + str([str(e)[:300] for e in self.undecryptable])
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
        if self.encrypting:
            await self.knows_room(room_id)
        response = await self.client.room_send(
            room_id, event_type, content, tx_id=f"t{time.monotonic_ns()}-{self._sent}",
            ignore_unverified_devices=True,
        )  # fmt: skip
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

    # -- end-to-end encryption, beyond what room_send does ---------------------------------

    async def send_encrypted(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send any event type encrypted, as Element does for reactions (nio does not)."""
        await self.knows_room(room_id)
        client = self.client
        if not client.rooms[room_id].members_synced:
            await client.joined_members(room_id)
        if client.should_query_keys:
            await client.keys_query()
        if client.olm.should_share_group_session(room_id):
            await client.share_group_session(room_id, ignore_unverified_devices=True)
        encrypted_type, payload = client.encrypt(room_id, event_type, content)
        return await self._send_raw(room_id, encrypted_type, payload)

    async def _send_raw(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        self._sent += 1
        txn = f"raw{time.monotonic_ns()}-{self._sent}"
        method, path, data = NioApi.room_send(self.account.access_token, room_id, event_type,
                                              content, txn)  # fmt: skip
        response = await self.client._send(RoomSendResponse, method, path, data, (room_id,))
        assert not isinstance(response, RoomSendError), response
        return str(response.event_id)

    async def send_without_key(self, room_id: str, text: str) -> tuple[str, dict[str, Any]]:
        """Send a command under a new room key that nobody has been given (yet).

        Returns the event id and the key, as an ``m.room_key`` content to hand out later.
        """
        olm = self.client.olm
        session = OutboundGroupSession()
        key = {"algorithm": MEGOLM, "room_id": room_id, "session_id": session.id,
               "session_key": session.session_key}  # fmt: skip
        session.mark_as_shared()
        plaintext = {"type": "m.room.message", "room_id": room_id,
                     "content": {"msgtype": "m.text", "body": text}}  # fmt: skip
        payload = {
            "algorithm": MEGOLM,
            "sender_key": olm.account.identity_keys["curve25519"],
            "ciphertext": session.encrypt(json.dumps(plaintext)),
            "session_id": session.id,
            "device_id": self.client.device_id,
        }
        return await self._send_raw(room_id, "m.room.encrypted", payload), key

    async def send_room_key(self, user_id: str, device_id: str, key: dict[str, Any]) -> None:
        """Hand a room key to one device, Olm-encrypted as ``m.room_key``."""
        client = self.client
        client.olm.users_for_key_query.add(user_id)
        await client.keys_query()
        device = client.device_store[user_id][device_id]
        if client.olm.session_store.get(device.curve25519) is None:
            await client.keys_claim({user_id: [device_id]})
        session = client.olm.session_store.get(device.curve25519)
        content = client.olm._olm_encrypt(session, device, "m.room_key", key)
        response = await client.to_device(
            ToDeviceMessage("m.room.encrypted", user_id, device_id, content)
        )
        assert not isinstance(response, ToDeviceError), response

    async def request_key(
        self, user_id: str, device_id: str, room_id: str, encrypted: dict[str, Any]
    ) -> None:
        """Ask one device for the room key of an encrypted event's content."""
        body = {
            "action": "request",
            "request_id": f"req{time.monotonic_ns()}",
            "requesting_device_id": self.client.device_id,
            "body": {"algorithm": MEGOLM, "room_id": room_id,
                     "sender_key": encrypted["sender_key"],
                     "session_id": encrypted["session_id"]},
        }  # fmt: skip
        response = await self.client.to_device(
            ToDeviceMessage("m.room_key_request", user_id, device_id, body)
        )
        assert not isinstance(response, ToDeviceError), response
        # nio takes a forwarded key only for a request it knows it made.
        self.client.olm.outgoing_key_requests[encrypted["session_id"]] = OutgoingKeyRequest(
            body["request_id"], encrypted["session_id"], room_id, MEGOLM
        )

    async def wait_for_to_device(self, match: Callable[[Any], bool], within: float = WAIT) -> Any:
        """Sync until a to-device event matches."""
        deadline = time.monotonic() + within
        while True:
            found = [e for e in self.to_device if match(e)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"{self.user_id} got no such to-device event"
            await self.sync(2_000)

    async def wait_for_undecryptable(self, event_id: str, within: float = WAIT) -> None:
        """Sync until the event arrives and this client cannot decrypt it."""
        deadline = time.monotonic() + within
        while event_id not in {e.get("event_id") for e in self.undecryptable}:
            assert time.monotonic() < deadline, f"{self.user_id} never got {event_id}"
            assert event_id not in {e.get("event_id") for e in self.events}, "it decrypted"
            await self.sync(2_000)

    async def raw_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        """The event as the server holds it (encrypted, in an encrypted room)."""
        return self.server.request(
            "GET", f"/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
            token=self.account.access_token,
        )  # fmt: skip

    def forget_room_keys(self, room_id: str) -> None:
        """Drop every room key this client holds for a room (memory only)."""
        self.client.olm.inbound_group_store._entries.pop(room_id, None)

    def accept_forwarded_keys(self) -> None:
        """Accept room keys other people's devices forward (nio takes only its own)."""
        self.client.olm._should_accept_forward = lambda *_: True

    def can_decrypt(self, raw: dict[str, Any]) -> bool:
        event = MegolmEvent.from_dict(raw)
        try:
            self.client.olm.decrypt_megolm_event(event, raw["room_id"])
        except EncryptionError:
            return False
        return True

    async def cross_sign_own_device(self) -> None:
        """Give this person cross-signing keys and sign their device, as Element would."""

        async def api(method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
            try:
                return 200, self.server.request(method, path, body,
                                                token=self.account.access_token)  # fmt: skip
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read() or b"{}")

        outcome = await ensure_cross_signed(
            api, user_id=self.user_id, device_id=self.client.device_id,
            store=Path(self.client.store_path), password=self.account.password,
            show_recovery_key=lambda _key: None,
        )  # fmt: skip
        assert outcome.signed, outcome.note

    async def knows_room(self, room_id: str, within: float = WAIT) -> None:
        """Sync until the client has the room's state (an encrypting client needs it)."""
        deadline = time.monotonic() + within
        while room_id not in self.client.rooms:
            assert time.monotonic() < deadline, f"{self.user_id} never saw room {room_id}"
            await self.sync(1_000)

    async def create_room(
        self,
        invite: Sequence[str] = (),
        power: dict[str, int] | None = None,
        alias: str | None = None,
        *,
        encrypted: bool = False,
        is_direct: bool = False,
    ) -> str:
        # The creator outranks every power level (room version 12), so is not listed.
        response = await self.client.room_create(
            preset=RoomPreset.private_chat,
            invite=list(invite),
            power_level_override={"users": power} if power else None,
            alias=alias,
            is_direct=is_direct,
            initial_state=[ENCRYPTION_STATE] if encrypted else (),
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
    recovery_keys: list[str] | None = None,
    **matrix: Any,
) -> AsyncIterator[tuple[App, MatrixAdapter]]:
    """The bot in this process, ready (first sync done) when the block starts.

    Recovery keys it shows go into ``recovery_keys`` when given.
    """
    settings = Settings(
        storage={"url": f"sqlite:///{tmp_path / 'bot.db'}"},
        matrix={"store_path": str(tmp_path / "store"), **matrix_section(server, bot, **matrix)},
        **(sections or {}),
    )
    app = App(settings)
    if recovery_keys is None:
        adapter = MatrixAdapter(app)
    else:
        adapter = MatrixAdapter(app, recovery_key_shown=recovery_keys.append)
    try:
        await app.start([adapter])
        await asyncio.wait_for(adapter.ready.wait(), WAIT)
        yield app, adapter
    finally:
        await app.stop()


class BotProcess:
    """``python -m bot run`` in a subprocess, so it can be really stopped and started."""

    def __init__(
        self, workdir: Path, config: str, env: dict[str, str],
        program: Sequence[str] = ("-m", "bot"),
    ) -> None:  # fmt: skip
        self.workdir = workdir
        self.program = list(program)  # what runs under the interpreter (a child script, say)
        self.config_path = workdir / "config.toml"
        self.config_path.write_text(config)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self.stdout: list[str] = []
        self._readers: list[threading.Thread] = []

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
        process = self.process
        code = process.wait(20)
        for reader in self._readers:
            reader.join(5)
        for stream in (process.stderr, process.stdout):
            if stream is not None:
                stream.close()
        self.process = None
        return code

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *self.program, "run", "--config", str(self.config_path)],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in (
                (self.process.stderr, self.log),
                (self.process.stdout, self.stdout),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    async def exits(self, within: float = WAIT) -> int:
        """Start the bot and wait for it to stop by itself; returns the exit status."""
        self._spawn()
        assert self.process is not None
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the bot kept running:\n" + "".join(self.log[-30:]))
            await asyncio.sleep(0.05)
        return self.stop()

    async def exits_by_itself(self, within: float = WAIT) -> int:
        """Wait for the running bot to stop on its own; returns the exit status."""
        assert self.process is not None
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the bot kept running:\n" + "".join(self.log[-30:]))
            await asyncio.sleep(0.05)
        return self.stop()

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
        for reader in self._readers:
            reader.join(5)
        for stream in (process.stderr, process.stdout):
            if stream is not None:
                stream.close()
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
