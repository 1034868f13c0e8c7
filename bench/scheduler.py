"""Scheduler benchmark: rebuild time and firing lateness for N reminders, against a floor.

    python bench/scheduler.py [--count 10000] [--window 15]

The floor is APScheduler alone running the same N date jobs (a no-op job recording when it
starts), measured first in the same run. Then N reminder rows are written to a fresh SQLite
file and the bot's reminders cog rebuilds its schedule from them and fires them: lateness is
from each reminder's due time to the commit of the transaction that advanced it and wrote
its post to the outbox (what "fired" means here), and, separately, to the job's wake-up.
Targets: rebuild <= 3 s, committed lateness p99 <= 250 ms.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this folder comes first on sys.path and its queue.py would hide the
# standard library's: the project root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import insert

from bot.app import App
from bot.config import Settings
from bot.scheduler import JOB_DEFAULTS
from cogs.reminders import Reminders
from storage.models import Reminder
from storage.reminders import Fired

LEAD = timedelta(seconds=5)  # time between writing the rows and the first due run


def due_times(count: int, window: float, start: datetime) -> list[datetime]:
    step = window / count
    return [start + timedelta(seconds=i * step) for i in range(count)]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def wait_until(done: asyncio.Event, deadline: float) -> bool:
    try:
        await asyncio.wait_for(done.wait(), deadline)
    except TimeoutError:
        return False
    return True


async def floor(count: int, window: float) -> dict[str, float]:
    """APScheduler alone: add N date jobs, record each job's start lateness."""
    late: list[float] = []
    done = asyncio.Event()

    async def job(due: datetime) -> None:
        late.append((datetime.now(UTC) - due).total_seconds())
        if len(late) == count:
            done.set()

    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
    scheduler.start()
    times = due_times(count, window, datetime.now(UTC) + LEAD)
    started = time.perf_counter()
    scheduler.pause()
    for n, due in enumerate(times):
        scheduler.add_job(job, DateTrigger(due, timezone=UTC), args=(due,), id=f"floor:{n}")
    scheduler.resume()
    added = time.perf_counter() - started
    finished = await wait_until(done, LEAD.total_seconds() + window + 60)
    scheduler.shutdown(wait=False)
    return {"add_s": added, "late": late, "complete": finished}  # type: ignore[dict-item]


async def bot(count: int, window: float, folder: Path) -> dict[str, object]:
    """The reminders cog on SQLite: rebuild from N rows, fire them, record commit lateness."""
    app = App(Settings(storage={"url": f"sqlite:///{folder / 'bench.db'}"}))
    cog = next(c for c in app.cogs if isinstance(c, Reminders))
    now = datetime.now(UTC)
    times = due_times(count, window, now + LEAD)
    rows = [
        {
            "creator_platform": "console", "creator_id": "bench", "target": "console",
            "message": f"reminder {n}", "kind": "once", "cron": None,
            "timezone": "Europe/Brussels", "next_run_at": due, "state": "active",
            "created_at": now,
        }
        for n, due in enumerate(times)
    ]  # fmt: skip
    await app.db.write(lambda session: session.execute(insert(Reminder), rows))
    due_by_id = dict(zip(sorted(await _ids(app)), times, strict=True))

    woke: list[float] = []
    committed: list[float] = []
    done = asyncio.Event()
    original_due, original_fire = cog._due, cog.repo.fire

    async def due(reminder_id: int) -> None:
        woke.append((datetime.now(UTC) - due_by_id[reminder_id]).total_seconds())
        await original_due(reminder_id)

    async def fire(ids: Iterable[int], at: datetime, decide: object) -> list[Fired]:
        fired = await original_fire(ids, at, decide)  # type: ignore[arg-type]
        moment = datetime.now(UTC)
        committed.extend((moment - due_by_id[f.id]).total_seconds() for f in fired if f.posted)
        if len(committed) >= count:
            done.set()
        return fired

    cog._due = due  # type: ignore[method-assign]
    cog.repo.fire = fire  # type: ignore[method-assign]
    app.services.scheduler.start()
    started = time.perf_counter()
    await cog.start()  # reads the table, one job per reminder
    rebuild = time.perf_counter() - started
    first_due = (times[0] - datetime.now(UTC)).total_seconds()
    finished = await wait_until(done, first_due + window + 60)
    await cog.stop()
    app.services.scheduler.stop()
    await app.stop()
    return {"rebuild_s": rebuild, "woke": woke, "late": committed, "complete": finished,
            "slack_s": first_due}  # fmt: skip


async def _ids(app: App) -> list[int]:
    return [rid for rid, _ in await app.services.reminders.schedule()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=15.0, help="seconds the runs span")
    args = parser.parse_args()
    base = asyncio.run(floor(args.count, args.window))
    with tempfile.TemporaryDirectory() as folder:
        ours = asyncio.run(bot(args.count, args.window, Path(folder)))
    ms = 1000.0
    base_late, woke, late = base["late"], ours["woke"], ours["late"]
    assert isinstance(base_late, list) and isinstance(woke, list) and isinstance(late, list)
    rows = [
        ("APScheduler alone: job start", base_late),
        ("bot: job wake-up", woke),
        ("bot: post committed", late),
    ]
    print(f"{args.count} reminders due over {args.window:.0f} s")
    print(f"rebuild: APScheduler add {base['add_s']:.3f} s | bot read table + schedule "
          f"{ours['rebuild_s']:.3f} s (target <= 3 s)")  # fmt: skip
    print(f"{'lateness (ms)':<32}{'n':>7}{'p50':>9}{'p99':>9}{'max':>9}")
    for label, values in rows:
        print(
            f"{label:<32}{len(values):>7}{percentile(values, 0.5) * ms:>9.1f}"
            f"{percentile(values, 0.99) * ms:>9.1f}{max(values) * ms:>9.1f}"
        )
    result = {
        "bench": "scheduler",
        "count": args.count,
        "window_s": args.window,
        "floor_add_s": round(float(base["add_s"]), 3),  # type: ignore[arg-type]
        "rebuild_s": round(float(ours["rebuild_s"]), 3),  # type: ignore[arg-type]
        "floor_p50_ms": round(percentile(base_late, 0.5) * ms, 1),
        "floor_p99_ms": round(percentile(base_late, 0.99) * ms, 1),
        "wake_p50_ms": round(percentile(woke, 0.5) * ms, 1),
        "wake_p99_ms": round(percentile(woke, 0.99) * ms, 1),
        "p50_ms": round(percentile(late, 0.5) * ms, 1),
        "p99_ms": round(percentile(late, 0.99) * ms, 1),
        "complete": bool(base["complete"]) and bool(ours["complete"]),
    }
    print(json.dumps(result))
    ok = result["rebuild_s"] <= 3.0 and result["p99_ms"] <= 250.0 and result["complete"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
