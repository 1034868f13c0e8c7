"""INTERACTION_CREATE → interaction callback latency through the wire-level Discord fake.

Measures, in one run and through the same fake: a bare discord.py client answering ``/ping``
(the floor), then the bot answering ``/volunteer profile`` and, when the task queue is present,
``/task claim`` — each a fresh task, so every claim succeeds. Target: the bot's p50 at most 2×
the bare client's p50.

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
from bot.context import Actor, Ctx, Place, UserRef
from tests.discord_fake import FakeDiscord, User

TARGET = 2.0
COORDINATOR_ROLE = 4300


class BareClient(discord.Client):
    """The floor: discord.py and one command, nothing else."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(intents=intents)
        self.guild = discord.Object(guild_id)
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        async def ping(interaction: discord.Interaction) -> None:
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


async def measure_both(
    fake: FakeDiscord, app: App, who: User, command: str, n: int, warmup: int, options=None
) -> tuple[list[float], list[float]]:
    """Alternate the command through Discord and through ``BotCore.invoke`` alone.

    Interleaving puts both under the same conditions (cache, CPU, the shared machine), so
    their difference is what the Discord path adds to the command's own work.
    """
    spec = app.services.registry.get(*command.split())
    assert spec is not None, command
    user = UserRef("discord", str(who.id), who.name.title())
    via_discord, core_alone = [], []
    for i in range(warmup + n):
        interaction = await fake.slash(who, command, **(options(2 * i) if options else {}))
        answer = await interaction.answer()
        assert not answer.ephemeral, f"{command}: {answer.content}"
        ctx = Ctx(Actor(user), Place(f"discord:{fake.channel_id}"), app.clock.now())
        started = time.perf_counter()
        reply = await app.core.invoke(ctx, spec, options(2 * i + 1) if options else {})
        elapsed = (time.perf_counter() - started) * 1000
        assert not reply.is_error, reply.body.plain()
        if i >= warmup:
            via_discord.append((interaction.callback_at - interaction.dispatched_at) * 1000)
            core_alone.append(elapsed)
    return via_discord, core_alone


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(p99, 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


async def bare_floor(fake: FakeDiscord, n: int, warmup: int) -> list[float]:
    endpoints = Endpoints(fake.api_base, fake.gateway_url)
    endpoints.apply()
    client = BareClient(fake.guild_id)
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


async def bot_runs(fake: FakeDiscord, tmp: Path, n: int, warmup: int) -> dict[str, list[float]]:
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
        results: dict[str, list[float]] = {}
        profile = await measure_both(fake, app, alice, "volunteer profile", n, warmup)
        results["volunteer profile"], results["volunteer profile (core alone)"] = profile
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
            claims = await measure_both(
                fake, app, alice, "task claim", n, warmup, options=lambda i: {"id": ids[i]}
            )
            results["task claim"], results["task claim (core alone)"] = claims
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
            runs = await bot_runs(fake, Path(tmp), args.n, args.warmup)
    finally:
        await fake.stop()
    base = summary(floor)
    stats = {k: summary(v) for k, v in runs.items()}
    rows = {"bare /ping (floor)": base} | {f"bot /{k}": v for k, v in stats.items()}
    print(f"{'command':<38}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}{'p50 ratio':>11}")
    for name, row in rows.items():
        ratio = row["p50_ms"] / base["p50_ms"]
        print(
            f"{name:<38}{row['n']:>6}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['mean_ms']:>10.2f}{ratio:>10.2f}×"
        )
    commands = [k for k in stats if not k.endswith("(core alone)")]
    ratios = {k: round(stats[k]["p50_ms"] / base["p50_ms"], 3) for k in commands}
    # What the Discord path adds on top of the command's own work (interleaved runs).
    overhead = {
        k: round(stats[k]["p50_ms"] - stats[f"{k} (core alone)"]["p50_ms"], 3) for k in commands
    }
    ok = all(r <= TARGET for r in ratios.values())
    print(f"target: bot p50 ≤ {TARGET}× bare p50 — {'met' if ok else 'MISSED'}")
    for k in commands:
        print(
            f"  /{k}: the Discord path adds {overhead[k]:.2f} ms to the core's own work; "
            f"the bare client's whole round trip is {base['p50_ms']:.2f} ms"
        )
    print(
        json.dumps(
            {
                "benchmark": "discord_latency",
                "floor": base,
                "bot": stats,
                "p50_ratio": ratios,
                "adapter_overhead_p50_ms": overhead,
                "target": TARGET,
                "ok": ok,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
