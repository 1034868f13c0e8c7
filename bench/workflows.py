"""Coordinator workflows benchmark: CSV import, `task report` and `job show`.

    python bench/workflows.py                         # both engines, the full sizes
    python bench/workflows.py --rows 20000 --sizes 1000,100000 --engines sqlite   # quick

- **Import**: a CSV of ``--rows`` rows (one target language each) goes through what
  ``volunteer-bot tasks import`` runs (every row read and checked with the commands' parsers,
  then posted in one transaction with its history lines), against the floor: a plain
  ``executemany`` of the same, already parsed rows into the task table of an equally fresh,
  migrated database (``sqlite3``, or ``psycopg``), in one transaction. Target: at least 25 %
  of the floor's rows per second.
- **Report and job show**: a migrated database holding each of ``--sizes`` tasks (1 % of them
  claimed, 10 % done, the rest open, every tenth in a job of 10 languages) and 5,000
  volunteers; ``task report`` (with its chart) and ``job show`` run through ``BotCore``, as a
  coordinator, ``--repeat`` times each. Target: p50 at the largest size within 2x of the
  smallest. ``job show`` goes through the repository (``TaskRepo.job``) when no cog serves it.

PostgreSQL runs on the embedded server the tests use (as bench/queue.py does). Prints a
table and one JSON line. Not part of the test run.
"""

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Iterator  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from bot.app import App  # noqa: E402
from bot.clock import ManualClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.context import Actor, Ctx, Place  # noqa: E402
from bot.domain import LANGUAGES, TaskKind, UserRef  # noqa: E402
from bot.importing import read_csv  # noqa: E402
from bot.params import ParseEnv  # noqa: E402
from storage import migrations  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.tasks import TaskRepo  # noqa: E402
from storage.tasks.bulk import task_row  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LANGS = list(LANGUAGES)
KINDS = [k.value for k in TaskKind]
PRIORITIES = ["low", "normal", "high", "urgent"]
VOLUNTEERS = 5000
JOB_LANGUAGES = 10
COORDINATOR = UserRef("bench", "coco", "Coco")
TASK_COLUMNS = (
    "kind", "title", "description", "language", "source_language", "priority", "due_at",
    "source_url", "status", "created_at", "claim_count", "job_id", "creator_platform",
    "creator_external_id", "creator_name",
)  # fmt: skip


# --- import ---------------------------------------------------------------------------------


def csv_text(rows: int, seed: int = 1) -> str:
    """A CSV of ``rows`` rows, one target language each, every column used."""
    rnd = random.Random(seed)
    lines = ["kind,title,language,source_language,priority,due,description,source"]
    for n in range(rows):
        lang = rnd.choice(LANGS[1:])
        due = (NOW + timedelta(days=rnd.randint(1, 90))).date().isoformat()
        lines.append(f"translation,Leaflet {n},{lang},{LANGS[0]},{rnd.choice(PRIORITIES)},"
                     f"{due},Two pages,https://example.org/leaflet/{n}.odt")  # fmt: skip
    return "\n".join(lines) + "\n"


def fresh(url_for: Callable[[str], str], name: str) -> str:
    url = url_for(name)
    db = Database(url)
    migrations.upgrade(db)
    db.close()
    return url


def floor_rows(data: bytes, engine: str) -> list[tuple[Any, ...]]:
    """The rows the import posts, as plain tuples for the driver (parsed before timing)."""
    env = ParseEnv(NOW, "Europe/Brussels", "console")
    out = []
    for row in read_csv(data, env):
        for task in row.job.tasks():
            values = task_row(task, None, COORDINATOR, NOW)
            out.append(for_driver(tuple(values[c] for c in TASK_COLUMNS), engine))
    return out


def for_driver(row: tuple[Any, ...], engine: str) -> tuple[Any, ...]:
    """SQLite keeps timestamps as naive UTC text, as the bot's column type writes them."""
    if engine != "sqlite":
        return row
    return tuple(
        v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
        for v in row
    )


def floor_sqlite(path: Path, rows: list[tuple[Any, ...]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    marks = ", ".join("?" for _ in TASK_COLUMNS)
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO task ({', '.join(TASK_COLUMNS)}) VALUES ({marks})", rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def floor_postgres(url: str, rows: list[tuple[Any, ...]]) -> float:
    import psycopg

    marks = ", ".join("%s" for _ in TASK_COLUMNS)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO task ({', '.join(TASK_COLUMNS)}) VALUES ({marks})",
                            rows)  # fmt: skip
        conn.commit()
        return time.perf_counter() - started


async def imported(url: str, data: bytes) -> dict[str, float]:
    """What ``tasks import`` does, timed: read and check every row, then post them all."""
    db = Database(url)
    try:
        started = time.perf_counter()
        rows = read_csv(data, ParseEnv(NOW, "Europe/Brussels", "console"))
        checked = time.perf_counter()
        await TaskRepo(db).post_many(COORDINATOR, [row.job for row in rows], now=NOW)
        done = time.perf_counter()
    finally:
        db.close()
    return {"check_s": checked - started, "post_s": done - checked, "total_s": done - started}


async def measure_import(engine: str, rows: int, url_for: Callable[[str], str]) -> dict[str, Any]:
    data = csv_text(rows).encode()
    plain = floor_rows(data, engine)
    floor_url = fresh(url_for, "floor")
    if engine == "sqlite":
        floor_s = floor_sqlite(Path(floor_url.removeprefix("sqlite:///")), plain)
    else:
        floor_s = floor_postgres(floor_url, plain)
    mine = await imported(fresh(url_for, "import"), data)
    return {
        "engine": engine, "rows": rows, "floor_s": floor_s, "floor_per_s": rows / floor_s,
        **mine, "import_per_s": rows / mine["total_s"],
        "ratio": floor_s / mine["total_s"],
    }  # fmt: skip


# --- report and job show ----------------------------------------------------------------------


def seeded_rows(count: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """``count`` tasks: every tenth group of 10 in a job, 1 % claimed, 10 % done."""
    rnd = random.Random(seed)
    created = NOW - timedelta(days=60)
    for n in range(count):
        in_job = (n // JOB_LANGUAGES) % 10 == 0
        job_id = n // (JOB_LANGUAGES * 10) + 1 if in_job else None
        lang = LANGS[1 + n % JOB_LANGUAGES] if in_job else rnd.choice(LANGS)
        roll = rnd.random()
        status = "claimed" if roll < 0.01 else "done" if roll < 0.11 else "open"
        claimed_by = rnd.randint(1, VOLUNTEERS) if status == "claimed" else None
        active = (NOW - timedelta(days=rnd.uniform(0, 7))) if status == "claimed" else None
        yield (
            rnd.choice(KINDS) if not in_job else "translation", f"Task {n}", lang,
            rnd.randint(0, 3), status, created + timedelta(seconds=n), 0, job_id,
            "bench", "coco", "Coco", claimed_by, active, active,
        )  # fmt: skip


SEEDED = ("kind", "title", "language", "priority", "status", "created_at", "claim_count",
          "job_id", "creator_platform", "creator_external_id", "creator_name", "claimed_by",
          "claimed_at", "last_activity_at")  # fmt: skip


def job_rows(count: int) -> Iterator[tuple[Any, ...]]:
    for j in range(1, count // (JOB_LANGUAGES * 10) + 2):
        yield (j, "translation", f"Job {j}", 1, NOW - timedelta(days=60), "bench", "coco",
               "Coco")  # fmt: skip


JOB_COLUMNS = ("id", "kind", "title", "priority", "created_at", "creator_platform",
               "creator_external_id", "creator_name")  # fmt: skip


def volunteer_rows() -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(7)
    stamp = NOW
    for i in range(1, VOLUNTEERS + 1):
        langs = ",".join(rnd.sample(LANGS[:12], 2))  # half the languages have no speaker
        yield (i, "bench", f"v{i}", f"V{i}", langs, stamp, stamp)


VOLUNTEER_COLUMNS = ("id", "platform", "external_id", "display_name", "languages",
                     "created_at", "last_active_at")  # fmt: skip


def seed_sqlite(url: str, count: int) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    for table, columns, rows in (
        ("volunteer", VOLUNTEER_COLUMNS, volunteer_rows()),
        ("job", JOB_COLUMNS, job_rows(count)),
        ("task", SEEDED, seeded_rows(count, count)),
    ):
        marks = ", ".join("?" for _ in columns)
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                         (for_driver(row, "sqlite") for row in rows))  # fmt: skip
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def seed_postgres(url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            for table, columns, rows in (
                ("volunteer", VOLUNTEER_COLUMNS, volunteer_rows()),
                ("job", JOB_COLUMNS, job_rows(count)),
                ("task", SEEDED, seeded_rows(count, count)),
            ):
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            for table in ("volunteer", "job", "task"):
                cur.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}  # fmt: skip


async def timed(repeat: int, fn: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    for _ in range(3):
        await fn()  # warm caches and compiled statements
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return stats(samples)


async def measure_size(
    engine: str, count: int, url_for: Callable[[str], str], repeat: int
) -> dict[str, Any]:
    url = fresh(url_for, f"seeded{count}")
    started = time.perf_counter()
    (seed_sqlite if engine == "sqlite" else seed_postgres)(url, count)
    seeded = time.perf_counter() - started
    app = App(Settings(storage={"url": url}), clock=ManualClock(NOW))  # type: ignore[arg-type]
    ctx = Ctx(Actor(COORDINATOR, True), Place("bench:room"), NOW)
    try:

        async def report() -> None:
            reply = await app.core.handle_text(ctx, "task report", prefixes=("",))
            assert reply is not None and not reply.is_error and reply.attachments, reply

        job_id = max(1, count // (JOB_LANGUAGES * 10) // 2)
        probe = await app.core.handle_text(ctx, f"job show {job_id}", prefixes=("",))
        through_core = probe is not None and not probe.is_error

        async def job_show() -> None:
            if through_core:
                reply = await app.core.handle_text(ctx, f"job show {job_id}", prefixes=("",))
                assert reply is not None and not reply.is_error, reply
            else:
                found = await app.services.tasks.job(job_id)
                assert found is not None and len(found[1]) == JOB_LANGUAGES, found

        return {
            "engine": engine, "tasks": count, "seed_s": seeded,
            "report": await timed(repeat, report), "job_show": await timed(repeat, job_show),
            "job_show_layer": "core" if through_core else "repo",
        }  # fmt: skip
    finally:
        await app.stop()


# --- running --------------------------------------------------------------------------------


def database_url(tmp: Path, server: Any, name: str) -> str:
    """A new, empty database: on the PostgreSQL ``server`` if given, else a SQLite file."""
    if server is not None:
        return str(server.url(server.create_database(name)))
    return f"sqlite:///{tmp / (name + '.db')}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="CSV rows to import")
    parser.add_argument("--sizes", default="1000,1000000",
                        help="queue sizes for report and job show (default 1000,1000000)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=50, help="runs of each command")
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")  # fmt: skip
    parser.add_argument("--dir", default=None, help="where to put the database files")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - {"sqlite", "postgresql"} or len(sizes) < 2:
        parser.error("--engines: sqlite, postgresql; --sizes: at least two")
    imports: list[dict[str, Any]] = []
    sized: list[dict[str, Any]] = []
    server = None
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            for engine in engines:
                if engine == "postgresql":
                    from tests.postgres import start_postgres

                    server = start_postgres()
                url_for = functools.partial(database_url, Path(tmp), server)
                imports.append(await measure_import(engine, args.rows, url_for))
                print(json.dumps(imports[-1]), flush=True)  # each figure as soon as it is known
                for count in sizes:
                    sized.append(await measure_size(engine, count, url_for, args.repeat))
                    print(json.dumps(sized[-1]), flush=True)
    finally:
        if server is not None:
            server.stop()
    targets: dict[str, bool] = {}
    for result in imports:
        targets[f"{result['engine']}_import_ge_25%_of_executemany"] = result["ratio"] >= 0.25
    for engine in engines:
        mine = [r for r in sized if r["engine"] == engine]
        small, large = mine[0], mine[-1]
        for what in ("report", "job_show"):
            targets[f"{engine}_{what}_at_{large['tasks']}_le_2x_{small['tasks']}"] = (
                large[what]["p50_ms"] <= 2 * small[what]["p50_ms"]
            )
    print_table(imports, sized, targets)
    print(json.dumps({"benchmark": "workflows", "imports": imports, "sizes": sized,
                      "targets": targets}))  # fmt: skip
    return 0 if all(targets.values()) else 1


def print_table(
    imports: list[dict[str, Any]], sized: list[dict[str, Any]], targets: dict[str, bool]
) -> None:
    print(f"{'engine':<11}{'rows':>9} {'floor rows/s':>13} {'import rows/s':>14} "
          f"{'check s':>8} {'post s':>8} {'share':>6}")  # fmt: skip
    for r in imports:
        print(f"{r['engine']:<11}{r['rows']:>9,} {r['floor_per_s']:>13,.0f} "
              f"{r['import_per_s']:>14,.0f} {r['check_s']:>8.2f} {r['post_s']:>8.2f} "
              f"{r['ratio']:>6.0%}")  # fmt: skip
    print(f"{'engine':<11}{'tasks':>10} {'seed s':>7} {'report p50/p99 ms':>19} "
          f"{'job show p50/p99 ms':>21}")  # fmt: skip
    for r in sized:
        print(f"{r['engine']:<11}{r['tasks']:>10,} {r['seed_s']:>7.1f} "
              f"{r['report']['p50_ms']:>9.2f}/{r['report']['p99_ms']:<9.2f} "
              f"{r['job_show']['p50_ms']:>10.2f}/{r['job_show']['p99_ms']:<9.2f} "
              f"({r['job_show_layer']})")  # fmt: skip
    for name, ok in targets.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
