"""Failover benchmark: kill the active bot process again and again under a trickle of commands.

    python bench/failover.py                         # 20 kills, PostgreSQL, lease_ttl 10s
    python bench/failover.py --kills 5 --engine sqlite --ttl 3s

Starts a local Synapse, a database (the embedded PostgreSQL server, or an SQLite file) and two
bot processes with one configuration. A person sends a command every ``--every`` seconds the
whole time. Each round SIGKILLs the process that serves Matrix, starts a fresh standby in its
place, and measures the takeover: from the kill to the first answer to a command sent after
it. At the end every command must have been answered exactly once. Prints p50, p95 and max
takeover and the doubled and lost counts, then one JSON line. Loopback only; bounded in rounds
and time. Not part of the test run.
"""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from tests.e2e.matrix_kit import BotProcess, Person, in_reply_to, matrix_section, toml  # noqa: E402
from tests.synapse import start_synapse  # noqa: E402

ROUND_LIMIT = 120.0  # seconds one round may take before the run gives up


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="vb-failover-"))
    synapse = start_synapse(work / "synapse")
    postgres = None
    bots: list[BotProcess] = []
    try:
        if args.engine == "postgresql":
            from tests.postgres import start_postgres

            postgres = start_postgres()
            url = postgres.url(postgres.create_database("bench"))
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        else:
            url = f"sqlite:///{work / 'bot.db'}"
        bot = synapse.register("bot")
        carol = await Person(synapse, synapse.register("carol")).start()
        room = await carol.create_room(invite=[bot.user_id])
        config = toml(
            {
                "bot": {"lease_ttl": args.ttl, "log_level": "INFO"},
                "storage": {"url": url},
                "matrix": matrix_section(synapse, bot, rooms=[room], store_path=str(work / "s")),
            }
        )
        made = 0

        def fresh() -> BotProcess:
            nonlocal made
            made += 1
            folder = work / f"bot{made}"
            folder.mkdir()
            return BotProcess(folder, config, {})

        active, standby = fresh(), fresh()
        bots += [active, standby]
        await active.start()
        await standby.start(ready="standby for matrix")

        sent: list[tuple[float, str]] = []
        stop = asyncio.Event()

        async def trickle() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                event_id = await carol.send(room, f"!task post other Trickle {n}")
                sent.append((time.monotonic(), event_id))
                await asyncio.sleep(args.every)

        async def answers() -> dict[str, float]:
            """When each command was first answered (by the time this sync saw it)."""
            await carol.sync(500)
            return {
                str(in_reply_to(e)): time.monotonic()
                for e in reversed(carol.events)
                if e.get("sender") == bot.user_id and in_reply_to(e)
            }

        sender = asyncio.create_task(trickle())
        takeovers: list[float] = []
        for round_no in range(1, args.kills + 1):
            await asyncio.sleep(args.every * 2)  # some commands answered before the kill
            active.signal(signal.SIGKILL)
            killed = time.monotonic()
            active.reap()
            deadline = killed + ROUND_LIMIT
            while True:
                seen = await answers()
                after = [eid for at, eid in sent if at > killed and eid in seen]
                if after:
                    takeovers.append(min(seen[eid] for eid in after) - killed)
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"round {round_no}: no answer within {ROUND_LIMIT:.0f} s")
            print(f"round {round_no}: answering again after {takeovers[-1]:.1f} s", flush=True)
            # The old standby serves now; a new one takes its place.
            active, standby = standby, fresh()
            bots.append(standby)
            await standby.start(ready="standby for matrix")
        stop.set()
        await sender
        last = sent[-1][0]
        while time.monotonic() < last + ROUND_LIMIT:
            replies = [in_reply_to(e) for e in carol.events if e.get("sender") == bot.user_id]
            if all(eid in replies for _, eid in sent):
                break
            await carol.sync(1000)
        replies = [in_reply_to(e) for e in carol.events if e.get("sender") == bot.user_id]
        doubled = sum(1 for _, eid in sent if replies.count(eid) > 1)
        lost = sum(1 for _, eid in sent if replies.count(eid) == 0)
        await carol.close()
        return {
            "engine": args.engine,
            "lease_ttl": args.ttl,
            "kills": len(takeovers),
            "commands": len(sent),
            "takeover_p50_s": round(statistics.median(takeovers), 2),
            "takeover_p95_s": round(percentile(takeovers, 0.95), 2),
            "takeover_max_s": round(max(takeovers), 2),
            "doubled": doubled,
            "lost": lost,
        }
    finally:
        for process in bots:
            process.stop()
        synapse.stop()
        if postgres is not None:
            postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--ttl", default="10s", help="[bot] lease_ttl for the bots")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between commands")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print()
    print(f"{'engine':<12}{'kills':>6}{'cmds':>6}{'p50 s':>8}{'p95 s':>8}{'max s':>8}"
          f"{'doubled':>9}{'lost':>6}")  # fmt: skip
    print(
        f"{result['engine']:<12}{result['kills']:>6}{result['commands']:>6}"
        f"{result['takeover_p50_s']:>8}{result['takeover_p95_s']:>8}{result['takeover_max_s']:>8}"
        f"{result['doubled']:>9}{result['lost']:>6}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
