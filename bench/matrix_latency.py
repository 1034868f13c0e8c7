"""Command round trips on Matrix: the bot beside a bare matrix-nio echo bot, one local Synapse.

    python bench/matrix_latency.py [--rounds 200] [--warmup 10]

Starts a throwaway Synapse, the bot (``python -m bot run``) and an echo bot answering
``!ping`` (each its own process), then times ``rounds`` sequential round trips of each kind,
interleaved: a command is sent and the clock stops when the sender's own sync shows the reply.
``!task claim`` is measured only when the tasks cog is installed. The same commands are also
timed in an end-to-end encrypted room, from an encrypting client (its own device and store):
the command is encrypted on the way in, the reply on the way out, and the clock stops when
the sender has decrypted it. Prints a table and a JSON line; the targets are the bot's p50 at
most 1.25x the (unencrypted) echo bot's in a plain room, 1.3x in an encrypted one.
"""

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path and its queue.py would hide the
# standard library's: the project root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(ROOT))

from nio import (  # noqa: E402 (the bench drives Matrix directly)
    AsyncClient,
    AsyncClientConfig,
    MatrixRoom,
    RoomMessageText,
    RoomPreset,
    SyncError,
)

from tests.synapse import Synapse, start_synapse, stop_process  # noqa: E402

TARGET = 1.25
TARGET_ENCRYPTED = 1.3
TOKEN_ENV = "MATRIX_LATENCY_TOKEN"
CLAIM = re.compile(r"`!task claim (\d+)`")


# -- the floor: a bare echo bot ----------------------------------------------------------------


async def echo_bot(homeserver: str, user_id: str) -> None:
    """Answer every ``!ping`` with an m.notice reply, nothing else."""
    client = AsyncClient(homeserver, user_id, config=AsyncClientConfig(max_limit_exceeded=0))
    client.access_token = os.environ[TOKEN_ENV]
    first = await client.sync(timeout=0, full_state=True)
    assert not isinstance(first, SyncError), first

    async def on_message(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender != user_id and event.body == "!ping":
            await client.room_send(
                room.room_id,
                "m.room.message",
                {
                    "msgtype": "m.notice",
                    "body": "pong",
                    "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
                    "m.mentions": {},
                },
            )

    client.add_event_callback(on_message, RoomMessageText)  # type: ignore[arg-type]
    print("echo ready", flush=True)
    await client.sync_forever(timeout=30_000, since=first.next_batch)


# -- the sender --------------------------------------------------------------------------------


class Sender:
    """A client that sends a command and waits until it sees the reply.

    With ``store`` it encrypts and decrypts like Element (matrix-nio with vodozemac).
    """

    def __init__(self, server: Synapse, account: Any, store: Path | None = None) -> None:
        self.encrypting = store is not None
        self.client = AsyncClient(
            server.url, account.user_id, store_path=str(store or ""),
            config=AsyncClientConfig(max_limit_exceeded=0, encryption_enabled=self.encrypting),
        )  # fmt: skip
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        self.client.restore_login(account.user_id, account.device_id, account.access_token)
        self.since: str | None = None
        self.replies: dict[str, str] = {}
        self.count = 0
        self.last_reply = ""

    async def start(self) -> None:
        if self.encrypting:
            await self.client.keys_upload()
        response = await self.client.sync(timeout=0, sync_filter=_filter(0))
        assert not isinstance(response, SyncError), response
        self.since = response.next_batch
        await self._keep_keys()

    async def _keep_keys(self) -> None:
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

    async def knows(self, room_id: str, member: str | None = None) -> None:
        """Sync until the room (with ``member`` joined) is known: keys then reach them."""

        def known() -> bool:
            room = self.client.rooms.get(room_id)
            if room is None or member is None:
                return room is not None
            user = room.users.get(member)
            return user is not None and not user.invited

        while not known():
            response = await self.client.sync(
                timeout=1000, since=self.since, sync_filter=_filter(100)
            )
            assert not isinstance(response, SyncError), response
            self.since = response.next_batch
            await self._keep_keys()

    async def round_trip(self, room_id: str, text: str) -> float:
        self.count += 1
        started = time.perf_counter()
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text},
            tx_id=f"bench-{self.count}-{time.monotonic_ns()}", ignore_unverified_devices=True,
        )  # fmt: skip
        event_id = sent.event_id
        deadline = started + 30
        while event_id not in self.replies:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no reply to {text!r} within 30 s")
            response = await self.client.sync(
                timeout=30_000, since=self.since, sync_filter=_filter(100)
            )
            assert not isinstance(response, SyncError), response
            self.since = response.next_batch
            await self._keep_keys()
            for info in response.rooms.join.values():
                for event in info.timeline.events:
                    relates = event.source.get("content", {}).get("m.relates_to") or {}
                    if replied := (relates.get("m.in_reply_to") or {}).get("event_id"):
                        self.replies[replied] = str(event.source["content"].get("body", ""))
        self.last_reply = self.replies[event_id]
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        await self.client.close()


def _filter(limit: int) -> dict[str, Any]:
    return {"presence": {"not_types": ["*"]}, "room": {"timeline": {"limit": limit}}}


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "mean": statistics.fmean(samples)}


async def run(rounds: int, warmup: int, workdir: Path) -> dict[str, Any]:
    server = start_synapse(workdir / "synapse")
    processes: list[subprocess.Popen[bytes]] = []
    sender: Sender | None = None
    secret: Sender | None = None
    try:
        bot = server.register("volunteerbot", displayname="Volunteer Bot")
        echo = server.register("echobot", displayname="Echo")
        alice = server.register("alice", displayname="Alice")
        carol = server.register("carol", displayname="Carol")
        has_tasks = importlib.util.find_spec("cogs.tasks") is not None
        sender = Sender(server, alice)
        secret = Sender(server, carol, workdir / "carol-store")
        owner = AsyncClient(server.url, alice.user_id)
        owner.access_token = alice.access_token
        rooms = {}
        for name, member in (("bot", bot), ("echo", echo)):
            created = await owner.room_create(
                preset=RoomPreset.private_chat, invite=[member.user_id]
            )
            rooms[name] = created.room_id
        created = await owner.room_create(
            preset=RoomPreset.private_chat, invite=[bot.user_id, carol.user_id],
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
        )  # fmt: skip
        rooms["secret"] = created.room_id
        await owner.close()
        await sender.start()
        await secret.start()
        await secret.client.join(rooms["secret"])
        await secret.knows(rooms["secret"])

        config = workdir / "config.toml"
        config.write_text(
            f'[storage]\nurl = "sqlite:///{workdir / "bot.db"}"\n'
            f"[tasks]\nmax_open_claims = {rounds + warmup + 10}\n"
            f'[matrix]\nenabled = true\nhomeserver = "{server.url}"\n'
            f'user_id = "{bot.user_id}"\nrooms = ["{rooms["bot"]}", "{rooms["secret"]}"]\n'
            f'coordinators = ["{alice.user_id}", "{carol.user_id}"]\n'
            f'store_path = "{workdir / "store"}"\n'
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with (workdir / "bot.log").open("wb") as bot_log:
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 (started once, before timing)
                    [sys.executable, "-m", "bot", "run", "--config", str(config)],
                    cwd=workdir, stdout=bot_log, stderr=subprocess.STDOUT,
                    env={**env, "VOLUNTEER_BOT_MATRIX__ACCESS_TOKEN": bot.access_token},
                )
            )  # fmt: skip
        echo_process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, __file__, "--echo-bot", server.url, echo.user_id],
            stdout=subprocess.PIPE, env={**env, TOKEN_ENV: echo.access_token},
        )  # fmt: skip
        processes.append(echo_process)
        assert echo_process.stdout is not None
        echo_process.stdout.readline()  # "echo ready"
        joiner = AsyncClient(server.url, echo.user_id)
        joiner.access_token = echo.access_token
        await joiner.join(rooms["echo"])
        await joiner.close()
        await _wait_ready(workdir / "bot.log")
        await secret.knows(rooms["secret"], member=bot.user_id)

        await sender.round_trip(rooms["bot"], "!volunteer join translator --languages pl")
        await secret.round_trip(rooms["secret"], "!volunteer join translator --languages pl")
        kinds: dict[str, tuple[Sender, str, Any]] = {
            "echo": (sender, rooms["echo"], lambda i: "!ping")
        }
        kinds["profile"] = (sender, rooms["bot"], lambda i: "!volunteer profile")
        kinds["profile_e2ee"] = (secret, rooms["secret"], lambda i: "!volunteer profile")
        if has_tasks:
            for who, room, kind in ((sender, rooms["bot"], "claim"),
                                    (secret, rooms["secret"], "claim_e2ee")):  # fmt: skip
                ids: list[int] = []
                for _ in range(rounds + warmup):
                    await who.round_trip(room, "!task post translation Bench --language pl")
                    ids.append(int(CLAIM.search(who.last_reply).group(1)))  # type: ignore[union-attr]
                kinds[kind] = (who, room, lambda i, ids=ids: f"!task claim {ids[i]}")
        samples: dict[str, list[float]] = {kind: [] for kind in kinds}
        for i in range(rounds + warmup):
            for kind, (who, room_id, line) in kinds.items():
                took = await who.round_trip(room_id, line(i))
                if i >= warmup:
                    samples[kind].append(took)
        return {
            "bench": "matrix_latency",
            "rounds": rounds,
            "tasks_cog": has_tasks,
            "results": {kind: percentiles(values) for kind, values in samples.items()},
        }
    finally:
        for client in (sender, secret):
            if client is not None:
                await client.close()
        for process in processes:
            stop_process(process)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        server.stop()


async def _wait_ready(log: Path) -> None:
    deadline = time.monotonic() + 60
    while "matrix: ready" not in (text := log.read_text(errors="replace")):  # noqa: ASYNC240
        if time.monotonic() > deadline:
            raise TimeoutError("the bot did not start:\n" + text)
        await asyncio.sleep(0.05)


def report(result: dict[str, Any]) -> None:
    results = result["results"]
    floor = results["echo"]["p50"]
    print(f"{'command':<28}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'x echo p50':>12}")
    names = {
        "echo": "!ping (echo bot)",
        "profile": "!volunteer profile",
        "claim": "!task claim",
        "profile_e2ee": "!volunteer profile, e2ee",
        "claim_e2ee": "!task claim, e2ee",
    }
    for kind, figures in results.items():
        ratio = figures["p50"] / floor
        figures["ratio_p50"] = round(ratio, 3)
        print(
            f"{names[kind]:<28}{figures['p50']:>9.1f}{figures['p95']:>9.1f}"
            f"{figures['p99']:>9.1f}{ratio:>12.2f}"
        )
    if not result["tasks_cog"]:
        print("(the tasks cog is not installed: `!task claim` was not measured)")
    plain = max(f["ratio_p50"] for k, f in results.items() if k in ("profile", "claim"))
    secret = max(f["ratio_p50"] for k, f in results.items() if k.endswith("_e2ee"))
    result["target_ratio_p50"] = TARGET
    result["target_ratio_p50_e2ee"] = TARGET_ENCRYPTED
    result["within_target"] = plain <= TARGET and secret <= TARGET_ENCRYPTED
    print(f"bot p50 / echo p50: {plain:.2f} plain (target <= {TARGET}), "
          f"{secret:.2f} encrypted (target <= {TARGET_ENCRYPTED})")  # fmt: skip
    print(json.dumps(result, separators=(",", ":")))


def main() -> int:
    # matrix-nio warns about every session it sets up; the figures are what matter here.
    logging.getLogger("nio").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--echo-bot", nargs=2, metavar=("HOMESERVER", "USER_ID"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.echo_bot:
        asyncio.run(echo_bot(*args.echo_bot))
        return 0
    with tempfile.TemporaryDirectory(prefix="matrix-latency-") as workdir:
        report(asyncio.run(run(args.rounds, args.warmup, Path(workdir))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
