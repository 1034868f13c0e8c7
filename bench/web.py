"""Web benchmark: /progress and /progress.json under load, and what it costs the bot's answers.

    python bench/web.py [--clients 200] [--seconds 30] [--idle 15] [--max-rate 200]

The bot runs in this process on a fresh SQLite file (tasks, volunteers, counts), with its web
server on 127.0.0.1. First the bot's commands are timed with the web server idle; then a
second process opens ``--clients`` keep-alive connections and asks for /progress and
/progress.json in a closed loop for ``--seconds`` while the same commands are timed again.
Commands go through the core as an adapter sends them, one every 20 ms, rotating through
``task list``, ``task show``, ``volunteer profile`` and ``help task``.

Printed: web requests a second, p50/p99 latency and statuses; the commands' p50/p99/mean
idle and under load, and the slowdown. Goal: the bot answers no more than 10 % slower.
Everything stays on the loopback interface and ends after the stated time.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

sys.path.pop(0)  # run as a script, bench/ would come first and its queue.py hide the stdlib's
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bot.app import App
from bot.config import Settings
from bot.context import Actor, Ctx, Place, UserRef

COMMANDS = ("task list", "task show 3", "volunteer profile", "help task")
COMMAND_EVERY = 0.02
PAGES = ("/progress", "/progress.json")
MAX_SECONDS = 120
MAX_CLIENTS = 1000


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- the load: a separate process -----------------------------------------------------------


async def load(base: str, clients: int, seconds: float) -> dict[str, object]:
    """Closed-loop clients on keep-alive connections; returns counts and latencies."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)

    async def client(http: aiohttp.ClientSession, n: int) -> None:
        i = n
        while time.perf_counter() < deadline:
            path = PAGES[i % len(PAGES)]
            i += 1
            started = time.perf_counter()
            try:
                async with http.get(base + path) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(client(http, n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


# --- the bot: this process ------------------------------------------------------------------


async def seed(app: App) -> None:
    coco = UserRef("console", "coco", "Coco")
    lines = ["signatures set 312345"]
    lines += [
        f"signatures set {n} --country {c}"
        for c, n in (("DE", 70000), ("FR", 41000), ("PL", 39000), ("MT", 5000))
    ]
    lines += [f"task post translation Leaflet {i} --language pl" for i in range(200)]
    for line in lines:
        await run(app, coco, line, coordinator=True)
    for i in range(50):
        who = UserRef("console", f"v{i}", f"Volunteer {i}")
        await run(app, who, "volunteer join translator --languages pl,de --country PL")


async def run(app: App, who: UserRef, line: str, *, coordinator: bool = False) -> float:
    started = time.perf_counter()
    ctx = Ctx(Actor(who, coordinator), Place("console"), app.clock.now())
    reply = await app.core.handle_text(ctx, line, prefixes=("",))
    elapsed = time.perf_counter() - started
    assert reply is not None and not reply.is_error, (line, reply and reply.body.plain())
    return elapsed


async def time_commands(app: App, seconds: float) -> list[float]:
    who = UserRef("console", "v1", "Volunteer 1")
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        samples.append(await run(app, who, COMMANDS[i % len(COMMANDS)]))
        i += 1
        await asyncio.sleep(COMMAND_EVERY)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 0.50) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000,
        "mean_ms": mean(samples) * 1000,
    }


async def bench(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            storage={"url": f"sqlite:///{Path(tmp) / 'bench.db'}"},
            console={"coordinators": ["coco"]},
            campaign={"collection_ends": "2027-06-30"},
            announce={"targets": []},
            # The per-client bucket runs but never refuses (one address sends everything).
            web={"enabled": True, "listen": "127.0.0.1:0", "rate": 1e9, "burst": 10**9,
                 "max_rate": args.max_rate},
        )  # fmt: skip
        app = App(settings)
        await app.start([])
        try:
            await seed(app)
            assert app.web is not None
            base = app.web.url
            await time_commands(app, 2.0)  # warm up
            idle = await time_commands(app, args.idle)
            loader = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--load", base, "--clients", str(args.clients),
                "--seconds", str(args.seconds), stdout=subprocess.PIPE,
            )  # fmt: skip
            await asyncio.sleep(1.0)  # let the clients connect
            busy = await time_commands(app, max(1.0, args.seconds - 2.0))
            out, _ = await loader.communicate()
            web = json.loads(out.decode().strip().splitlines()[-1])
        finally:
            await app.stop()
    idle_s, busy_s = summary(idle), summary(busy)
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "max_rate": args.max_rate,
        "web": web,
        "commands_idle": idle_s,
        "commands_under_load": busy_s,
        "slowdown_p50": busy_s["p50_ms"] / idle_s["p50_ms"] - 1,
        "slowdown_mean": busy_s["mean_ms"] / idle_s["mean_ms"] - 1,
    }


def show(result: dict[str, object]) -> None:
    web = result["web"]
    idle = result["commands_idle"]
    busy = result["commands_under_load"]
    assert isinstance(web, dict) and isinstance(idle, dict) and isinstance(busy, dict)
    print(f"web: {result['clients']} clients for {result['seconds']} s on 127.0.0.1, "
          f"max_rate {result['max_rate']}/s")  # fmt: skip
    print(
        f"  {web['rps']:,.0f} requests/s ({web['requests']:,} in {web['seconds']:.1f} s), "
        f"p50 {web['p50_ms']:.1f} ms, p99 {web['p99_ms']:.1f} ms, statuses {web['statuses']}"
    )
    print("bot commands          n     p50      p99     mean")
    for label, row in (("web idle", idle), ("under load", busy)):
        print(
            f"  {label:<12} {row['n']:>6} {row['p50_ms']:>6.2f} ms {row['p99_ms']:>6.2f} ms "
            f"{row['mean_ms']:>6.2f} ms"
        )
    print(
        f"slowdown: p50 {result['slowdown_p50']:+.1%}, mean {result['slowdown_mean']:+.1%} "
        "(goal: at most +10 %)"
    )
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle", type=float, default=15.0)
    parser.add_argument("--max-rate", type=float, default=200.0)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"at most {MAX_CLIENTS} clients and {MAX_SECONDS} s")
    if args.load:
        if not args.load.startswith("http://127.0.0.1:"):
            parser.error("the load goes to 127.0.0.1 only")
        print(json.dumps(asyncio.run(load(args.load, args.clients, args.seconds))))
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    show(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
