"""INTERACTION_CREATE → interaction callback latency through the wire-level Discord fake.

Measures, in one run and through the same fake: a bare discord.py client answering ``/ping``
(the floor), then the bot answering ``/volunteer profile`` and, when the task queue is present,
``/task claim`` — each a fresh task, so every claim succeeds. Target: the bot's p50 at most 2×
the bare client's p50.

Each command also runs through ``BotCore.invoke`` alone, interleaved, with the database's
transactions timed on the worker thread and on the event loop, so the table ends with where
the bot's time goes: the Discord path beyond the bare client's, the core and cog on the loop,
the hops to the database thread, and the transactions themselves (beside an empty one).
A second bare client, whose ``/ping`` awaits one empty read transaction through the same
``Database`` class first, shows what no command that touches the database can go below.

    python bench/discord_latency.py [--n 300] [--warmup 30]
"""

import argparse
import asyncio
import importlib.util
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path and its queue.py would hide the
# standard library's: the project root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discord
from discord import app_commands

from bot.adapters.discord_adapter import DiscordAdapter, Endpoints
from bot.app import App
from bot.config import Settings
from bot.context import Actor, Ctx, Place
from bot.domain import UserRef
from storage.db import Database
from tests.discord_fake import FakeDiscord, User

TARGET = 2.0
COORDINATOR_ROLE = 4300


class BareClient(discord.Client):
    """The floor: discord.py and one command, nothing else.

    Given a database, ``/ping`` first awaits one empty read transaction through it: the
    reference for what any command that touches the database cannot avoid.
    """

    def __init__(self, guild_id: int, db: Database | None = None) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents)
        self.guild = discord.Object(guild_id)
        self.tree = app_commands.CommandTree(self)
        self.db = db

    async def setup_hook(self) -> None:
        db = self.db

        async def ping(interaction: discord.Interaction) -> None:
            if db is not None:
                await db.read(lambda session: None)
            await interaction.response.send_message("pong")

        self.tree.add_command(
            app_commands.Command(name="ping", description="Answer pong", callback=ping),
            guild=self.guild,
        )
        await self.tree.sync(guild=self.guild)


async def measure(
    fake: FakeDiscord, user: User, command: str, n: int, warmup: int, options=None
) -> list[float]:
    """Sequential invocations; milliseconds from INTERACTION_CREATE sent to callback received."""
    samples = []
    for i in range(warmup + n):
        values = options(i) if options else {}
        interaction = await fake.slash(user, command, **values)
        answer = await interaction.answer()
        assert not answer.ephemeral, f"{command}: {answer.content}"
        if i >= warmup:
            samples.append((interaction.callback_at - interaction.dispatched_at) * 1000)
    return samples


class DatabaseMeter:
    """Times the database's transactions: inside them on its thread, and awaited on the loop.

    It wraps the instance's own transaction methods (two clock reads each), so
    the bot runs unchanged; the Discord and core-alone runs carry the same meter. Awaited
    time is wall time with at least one transaction outstanding, so overlapping awaits
    count once.
    """

    def __init__(self, db: Database) -> None:
        self.reset()
        self._outstanding = 0
        self._since = 0.0

        def timed_sync(run_sync):
            def in_thread(fn, *, write):
                started = time.perf_counter()
                try:
                    return run_sync(fn, write=write)
                finally:
                    self.in_thread += time.perf_counter() - started
                    self.transactions += 1

            return in_thread

        def timed(call):
            async def awaited(fn):
                if not self._outstanding:
                    self._since = time.perf_counter()
                self._outstanding += 1
                try:
                    return await call(fn)
                finally:
                    self._outstanding -= 1
                    if not self._outstanding:
                        self.awaited += time.perf_counter() - self._since

            return awaited

        # Session-based and Connection-based transactions alike.
        db.run_sync = timed_sync(db.run_sync)
        db.run_sync_connection = timed_sync(db.run_sync_connection)
        for name in ("read", "write", "read_connection", "write_connection"):
            setattr(db, name, timed(getattr(db, name)))

    def reset(self) -> None:
        self.transactions, self.in_thread, self.awaited = 0, 0.0, 0.0


async def measure_both(
    fake: FakeDiscord,
    app: App,
    meter: DatabaseMeter,
    who: User,
    command: str,
    n: int,
    warmup: int,
    options=None,
) -> dict[str, list[float]]:
    """Alternate the command through Discord and through ``BotCore.invoke`` alone.

    Interleaving puts both under the same conditions (cache, CPU, the shared machine), so
    their difference is what the Discord path adds to the command's own work. The core-alone
    call is split further by the meter, and an empty read transaction is timed alongside.
    """
    spec = app.services.registry.get(*command.split())
    assert spec is not None, command
    user = UserRef("discord", str(who.id), who.name.title())
    runs: dict[str, list[float]] = {
        key: []
        for key in ("discord", "core", "db awaited", "db in thread", "transactions", "empty")
    }
    for i in range(warmup + n):
        interaction = await fake.slash(who, command, **(options(2 * i) if options else {}))
        answer = await interaction.answer()
        assert not answer.ephemeral, f"{command}: {answer.content}"
        ctx = Ctx(Actor(user), Place(f"discord:{fake.channel_id}"), app.clock.now())
        meter.reset()
        started = time.perf_counter()
        reply = await app.core.invoke(ctx, spec, options(2 * i + 1) if options else {})
        elapsed = time.perf_counter() - started
        assert not reply.is_error, reply.body.plain()
        db = (meter.awaited, meter.in_thread, meter.transactions)
        started = time.perf_counter()
        await app.db.read(lambda session: None)
        empty = time.perf_counter() - started
        if i >= warmup:
            runs["discord"].append((interaction.callback_at - interaction.dispatched_at) * 1000)
            runs["core"].append(elapsed * 1000)
            runs["db awaited"].append(db[0] * 1000)
            runs["db in thread"].append(db[1] * 1000)
            runs["transactions"].append(db[2])
            runs["empty"].append(empty * 1000)
    return runs


def breakdown(runs: dict[str, list[float]], floor_p50: float) -> dict[str, float]:
    """Where the bot's p50 goes, from medians of the interleaved runs (ms)."""
    p50 = {key: statistics.median(values) for key, values in runs.items()}
    return {
        "bare round trip (floor)": floor_p50,
        "Discord path beyond the bare client's": p50["discord"] - p50["core"] - floor_p50,
        "core and cog on the event loop": p50["core"] - p50["db awaited"],
        "hops to and from the database thread": p50["db awaited"] - p50["db in thread"],
        "inside transactions (database thread)": p50["db in thread"],
        "transactions per command": p50["transactions"],
        "one empty read transaction, awaited": p50["empty"],
    }


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(p99, 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


async def bare_floor(
    fake: FakeDiscord, n: int, warmup: int, db: Database | None = None
) -> list[float]:
    endpoints = Endpoints(fake.api_base, fake.gateway_url)
    endpoints.apply()
    client = BareClient(fake.guild_id, db)
    try:
        before = len(fake.identifies)
        await client.login(fake.token)
        task = asyncio.create_task(client.connect())
        await fake.wait_connected(after=before)
        samples = await measure(fake, fake.user("pinger"), "ping", n, warmup)
        await client.close()
        task.cancel()
        return samples
    finally:
        endpoints.restore()


async def bot_runs(
    fake: FakeDiscord, tmp: Path, n: int, warmup: int
) -> dict[str, dict[str, list[float]]]:
    settings = Settings(
        storage={"url": f"sqlite:///{tmp / 'bench.db'}"},
        tasks={"max_open_claims": 10 * (n + warmup)},
        discord={
            "enabled": True,
            "token": fake.token,
            "guild_ids": [fake.guild_id],
            "coordinator_role_ids": [COORDINATOR_ROLE],
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
        },
    )
    app = App(settings)
    adapter = DiscordAdapter(app)
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    alice = fake.user("alice")
    before = len(fake.identifies)
    await app.start([adapter])
    try:
        await fake.wait_connected(after=before)
        joined = await (
            await fake.slash(alice, "volunteer join", role="translator", languages="pl,en")
        ).answer()
        assert not joined.ephemeral, joined.content
        meter = DatabaseMeter(app.db)
        results = {
            "volunteer profile": await measure_both(
                fake, app, meter, alice, "volunteer profile", n, warmup
            )
        }
        if importlib.util.find_spec("cogs.tasks") is not None:
            ids = []
            for i in range(2 * (n + warmup)):
                posted = await (
                    await fake.slash(
                        coco,
                        "task post",
                        kind="translation",
                        title=f"Leaflet part {i}",
                        language="pl",
                    )
                ).answer()
                assert not posted.ephemeral, posted.content
                [custom_id] = [c for c in posted.custom_ids if c.startswith("vb:task claim ")]
                ids.append(int(custom_id.rsplit(" ", 1)[1]))
            results["task claim"] = await measure_both(
                fake, app, meter, alice, "task claim", n, warmup, options=lambda i: {"id": ids[i]}
            )
        return results
    finally:
        await app.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="measured invocations per command")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured invocations first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fake = await FakeDiscord().start()
    try:
        floor = await bare_floor(fake, args.n, args.warmup)
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'reference.db'}")
            try:
                floor_db = await bare_floor(fake, args.n, args.warmup, db)
            finally:
                db.close()
            runs = await bot_runs(fake, Path(tmp), args.n, args.warmup)
    finally:
        await fake.stop()
    base = summary(floor)
    with_db = summary(floor_db)
    stats: dict[str, dict[str, float]] = {}
    for command, values in runs.items():
        stats[command] = summary(values["discord"])
        stats[f"{command} (core alone)"] = summary(values["core"])
    rows = {"bare /ping (floor)": base, "bare /ping + 1 empty transaction": with_db}
    rows |= {f"bot /{k}": v for k, v in stats.items()}
    print(f"{'command':<38}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'p50 ratio':>11}")
    for name, row in rows.items():
        ratio = row["p50_ms"] / base["p50_ms"]
        print(
            f"{name:<38}{row['n']:>6}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['mean_ms']:>10.2f}{ratio:>10.2f}×"
        )
    ratios = {k: round(stats[k]["p50_ms"] / base["p50_ms"], 3) for k in runs}
    # What the Discord path adds on top of the command's own work (interleaved runs).
    overhead = {
        k: round(stats[k]["p50_ms"] - stats[f"{k} (core alone)"]["p50_ms"], 3) for k in runs
    }
    parts = {k: breakdown(v, base["p50_ms"]) for k, v in runs.items()}
    ok = all(r <= TARGET for r in ratios.values())
    print(f"target: bot p50 ≤ {TARGET}× bare p50 — {'met' if ok else 'MISSED'}")
    for k in runs:
        print(
            f"  /{k}: the Discord path adds {overhead[k]:.2f} ms to the core's own work; "
            f"the bare client's whole round trip is {base['p50_ms']:.2f} ms"
        )
    print("where the bot's time goes (medians of the interleaved runs, ms):")
    print(f"  {'':<42}" + "".join(f"{'/' + k:>20}" for k in runs))
    for part in next(iter(parts.values())):
        print(f"  {part:<42}" + "".join(f"{parts[k][part]:>20.3f}" for k in runs))
    print(
        json.dumps(
            {
                "benchmark": "discord_latency",
                "floor": base,
                "floor_with_one_empty_transaction": with_db,
                "bot": stats,
                "p50_ratio": ratios,
                "adapter_overhead_p50_ms": overhead,
                "breakdown_p50_ms": {
                    k: {part: round(v, 3) for part, v in p.items()} for k, p in parts.items()
                },
                "target": TARGET,
                "ok": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
