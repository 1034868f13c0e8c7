"""Web benchmark: /progress and /progress.json under load, and what it costs the bot's answers.

    python bench/web.py [--clients 200] [--seconds 30] [--idle 30] [--max-rate 100]

The bot runs in this process on a fresh SQLite file (tasks, volunteers, counts), with its web
server on 127.0.0.1. A second process holds ``--clients`` keep-alive connections that ask
for /progress and /progress.json in a closed loop, switched on for ``--seconds`` in all, in
5 s stretches that alternate with stretches of the web server idle (``--idle`` in all); the
bot's commands are timed throughout, so both sides see the same neighbours on the machine.
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
from typing import Any

sys.path.pop(0)  # run as a script, bench/ would come first and its queue.py hide the stdlib's
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from bot.app import App
from bot.config import Settings
from bot.context import Actor, Ctx, Place, UserRef
from bot.web.limits import Pace

COMMANDS = ("task list", "task show 3", "volunteer profile", "help task")
COMMAND_EVERY = 0.02
PAGES = ("/progress", "/progress.json")
SLOT = 5.0  # seconds of each idle or loaded stretch
MAX_SECONDS = 120
MAX_CLIENTS = 1000


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- the load: a separate process -----------------------------------------------------------


class Load:
    """Closed-loop clients on keep-alive connections, running only while switched on."""

    def __init__(self, base: str, clients: int) -> None:
        self.base = base
        self.target = "bot"
        self.clients = clients
        self.on = asyncio.Event()
        self.stop = False
        self.in_flight = 0
        self.drained = asyncio.Event()
        self.latencies: dict[str, list[float]] = {"bot": [], "floor": []}
        self.statuses: dict[str, dict[int, int]] = {"bot": {}, "floor": {}}
        self.active = {"bot": 0.0, "floor": 0.0}

    async def client(self, http: aiohttp.ClientSession, n: int) -> None:
        i = n
        while not self.stop:
            await self.on.wait()
            if self.stop:
                return
            path = PAGES[i % len(PAGES)]
            i += 1
            base, target = self.base, self.target
            self.in_flight += 1
            self.drained.clear()
            started = time.perf_counter()
            try:
                async with http.get(base + path) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            self.latencies[target].append(time.perf_counter() - started)
            counts = self.statuses[target]
            counts[status] = counts.get(status, 0) + 1
            self.in_flight -= 1
            if not self.in_flight:
                self.drained.set()

    async def control(self) -> None:
        """Lines on stdin: ``run bot|floor URL``, ``pause`` (answered once nothing is in
        flight), ``end``."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        since = 0.0
        while line := (await reader.readline()).decode().strip():
            if line.startswith("run "):
                _, self.target, self.base = line.split(" ", 2)
                since = time.perf_counter()
                self.on.set()
                print("running", flush=True)
            elif line == "pause":
                self.on.clear()
                if self.in_flight:
                    await self.drained.wait()
                self.active[self.target] += time.perf_counter() - since
                print("paused", flush=True)
            else:
                break
        self.stop = True
        self.on.set()

    async def run(self) -> dict[str, object]:
        self.drained.set()
        connector = aiohttp.TCPConnector(limit=self.clients)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            clients = [asyncio.create_task(self.client(http, n)) for n in range(self.clients)]
            await self.control()
            await asyncio.gather(*clients)
        return {target: self.figures(target) for target in self.latencies}

    def figures(self, target: str) -> dict[str, object]:
        latencies, active = self.latencies[target], self.active[target]
        return {
            "requests": len(latencies),
            "seconds": active,
            "rps": len(latencies) / active if active else 0.0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "statuses": {str(k): v for k, v in sorted(self.statuses[target].items())},
        }


# --- the floor: the same answers from a process of their own ---------------------------------


async def floor(bot: str, max_rate: float) -> None:
    """Serve the bot's own /progress and /progress.json bytes, paced alike, until stdin ends."""
    async with aiohttp.ClientSession() as http:
        bodies = {}
        for path in PAGES:
            async with http.get(bot + path) as response:
                bodies[path] = (await response.read(), response.headers["Content-Type"])
    pace = Pace(max_rate)

    async def page(request: web.Request) -> web.Response:
        if not await pace.admit():
            raise web.HTTPServiceUnavailable()
        body, kind = bodies[request.path]
        return web.Response(body=body, headers={"Content-Type": kind})

    app = web.Application()
    for path in PAGES:
        app.router.add_get(path, page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    await runner.cleanup()


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


async def tell(loader: asyncio.subprocess.Process, command: str, answer: str) -> None:
    assert loader.stdin is not None and loader.stdout is not None
    loader.stdin.write(command.encode() + b"\n")
    await loader.stdin.drain()
    line = (await loader.stdout.readline()).decode().strip()
    assert line == answer, line


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
            loader = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--load", base, "--clients", str(args.clients),
                "--seconds", str(args.seconds), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            floor_server = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--floor", base, "--max-rate", str(args.max_rate),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            assert floor_server.stdout is not None and floor_server.stdin is not None
            floor_base = (await floor_server.stdout.readline()).decode().strip()
            samples: dict[str, list[float]] = {"idle": [], "bot": [], "floor": []}
            # Idle and loaded stretches alternate, so a neighbour's load on the machine falls
            # on all alike; each loaded stretch starts with the clients connected and ends
            # when their last answer is in. The floor stretches send the same load to
            # another process serving the same bytes at the same pace: what the machine
            # being busy costs, whoever serves the pages.
            rounds = max(1, round(args.seconds / SLOT))
            for _ in range(rounds):
                samples["idle"] += await time_commands(app, args.idle / rounds)
                for target, address in (("bot", base), ("floor", floor_base)):
                    await tell(loader, f"run {target} {address}", "running")
                    samples[target] += await time_commands(app, args.seconds / rounds)
                    await tell(loader, "pause", "paused")
            assert loader.stdin is not None
            loader.stdin.write(b"end\n")
            out, _ = await loader.communicate()
            floor_server.stdin.close()
            await floor_server.wait()
            web_figures = json.loads(out.decode().strip().splitlines()[-1])
        finally:
            await app.stop()
    idle, busy, floor_s = (summary(samples[k]) for k in ("idle", "bot", "floor"))
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "max_rate": args.max_rate,
        "web": web_figures["bot"],
        "web_floor": web_figures["floor"],
        "commands_idle": idle,
        "commands_under_load": busy,
        "commands_load_elsewhere": floor_s,
        "slowdown_p50": busy["p50_ms"] / idle["p50_ms"] - 1,
        "slowdown_mean": busy["mean_ms"] / idle["mean_ms"] - 1,
        "slowdown_vs_floor_p50": busy["p50_ms"] / floor_s["p50_ms"] - 1,
        "slowdown_vs_floor_mean": busy["mean_ms"] / floor_s["mean_ms"] - 1,
    }


def show(result: dict[str, Any]) -> None:
    web, idle, busy = result["web"], result["commands_idle"], result["commands_under_load"]
    elsewhere = result["commands_load_elsewhere"]
    print(
        f"web: {result['clients']} clients for {result['seconds']} s on 127.0.0.1, "
        f"max_rate {result['max_rate']}/s"
    )
    for label, row in (("the bot", web), ("floor", result["web_floor"])):
        print(
            f"  {label:<8} {row['rps']:,.0f} requests/s ({row['requests']:,} in "
            f"{row['seconds']:.1f} s), p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
            f"statuses {row['statuses']}"
        )
    print("bot commands                       n     p50       p99      mean")
    rows = (
        ("web server idle", idle),
        ("pages served by the bot", busy),
        ("same load on the floor", elsewhere),
    )
    for label, row in rows:
        print(
            f"  {label:<26} {row['n']:>6} {row['p50_ms']:>6.2f} ms {row['p99_ms']:>6.2f} ms "
            f"{row['mean_ms']:>6.2f} ms"
        )
    print(
        f"slowdown vs idle: p50 {result['slowdown_p50']:+.1%}, mean "
        f"{result['slowdown_mean']:+.1%}; vs the floor: p50 "
        f"{result['slowdown_vs_floor_p50']:+.1%}, mean {result['slowdown_vs_floor_mean']:+.1%} "
        "(goal: at most +10 %)"
    )
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--max-rate", type=float, default=100.0)
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--floor", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"at most {MAX_CLIENTS} clients and {MAX_SECONDS} s")
    if args.floor:
        asyncio.run(floor(args.floor, args.max_rate))
        return
    if args.load:
        if not args.load.startswith("http://127.0.0.1:"):
            parser.error("the load goes to 127.0.0.1 only")
        print(json.dumps(asyncio.run(Load(args.load, args.clients).run())))
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    show(asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
