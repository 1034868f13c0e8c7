"""Task-queue benchmark: `task next` claims, `task list`, concurrency and memory.

    python bench/queue.py                      # 100,000 and 1,000,000 open tasks, both engines
    python bench/queue.py --sizes 20000        # a quick run
    python bench/queue.py --engines postgresql # only PostgreSQL

For each engine and size it seeds a real, migrated database (an SQLite file with executemany;
a PostgreSQL database, on the embedded server the tests use, with COPY), then measures `task
next` claims through the repository layer (16 claimers in flight, and one at a time) and
through ``BotCore.invoke``, beside the raw driver (``sqlite3``, or ``psycopg``) running the
repository's own claim statement on a copy of the same data. It also compares `task list` /
`task next` latency with a 1,000-task queue, measures p99 claim latency in bursts of 200
different claimers at once, and reports peak RSS. Prints a table and one JSON line. Not part
of the test run.
"""

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# standard library's `queue`; the project root goes there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Iterator  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402

from bot.app import App  # noqa: E402
from bot.clock import ManualClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.context import Actor, Ctx, Place  # noqa: E402
from bot.domain import LANGUAGES, TaskKind, UserRef  # noqa: E402
from bot.domain.tasks import Search, search_for  # noqa: E402
from storage import migrations  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.tasks.claims import claim_params, next_claim  # noqa: E402

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KINDS = [k.value for k in TaskKind]
LANGS = list(LANGUAGES)
ROLES = ("organiser", "translator")
CLAIMER_LANGS = "pl,en"
MAX_OPEN = 3
VOLUNTEERS = 5000
SEQUENTIAL = 3000  # volunteers 1..3000 claim one after another; the rest in bursts
BURST = 200
IN_FLIGHT = 16  # claimers at once when measuring throughput
MIN_SIZE = 20_000  # about 29 % of the tasks fit the claimers; a run claims about 5,000

# The claim `task next` makes for a translator+organiser working in pl and en: the
# repository's own statement, which the raw floor sends to sqlite3 itself.
RAW_SEARCH = search_for(frozenset(ROLES), tuple(CLAIMER_LANGS.split(",")))
assert isinstance(RAW_SEARCH, Search)
RAW_SHAPE, RAW_TERMS = next_claim(RAW_SEARCH)
SQLITE = sqlite.dialect()
PSYCOPG = postgresql.psycopg.dialect()  # type: ignore[attr-defined]


def raw_claim(volunteer_id: int, now: datetime, engine: str = "sqlite") -> tuple[str, Any]:
    """The claim's SQL and parameters as the repository sends them to this engine's driver.

    On SQLite the one statement the fast path runs; on PostgreSQL the first one the repository
    tries, which passes over tasks other claimers hold locked.
    """
    params = {
        **RAW_TERMS,
        **claim_params(volunteer_id, place="bench:room", now=now, max_open=MAX_OPEN),
    }
    if engine == "sqlite":
        return RAW_SHAPE.waiting.for_driver(SQLITE, params)
    return RAW_SHAPE.skipping.for_driver(PSYCOPG, params)


# --- seeding ------------------------------------------------------------------------------


def task_rows(count: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(seed)
    created = NOW.replace(tzinfo=None) - timedelta(days=30)
    for n in range(count):
        kind = rnd.choice(KINDS)
        lang = rnd.choice(LANGS) if kind == "translation" else None
        source = (
            rnd.choice(["en", "en", "fr", None])
            if kind == "translation" and lang != "en"
            else None
        )
        due = created + timedelta(days=rnd.randint(31, 120)) if rnd.random() < 0.5 else None
        yield (
            kind, f"Task {n}", None, lang, source, rnd.randint(0, 3),
            due.isoformat(sep=" ") if due else None, "open",
            (created + timedelta(seconds=n)).isoformat(sep=" "), "bench", "coco", "Coco", 0,
        )  # fmt: skip


TASK_COLUMNS = (
    "kind, title, description, language, source_language, priority, due_at, status, "
    "created_at, creator_platform, creator_external_id, creator_name, claim_count"
)


def seed_postgres(url: str, tasks: int) -> None:
    """A migrated PostgreSQL database with ``tasks`` open tasks and the claimers (COPY)."""
    import psycopg

    db = Database(url)
    migrations.upgrade(db)
    db.close()
    stamp = NOW.replace(tzinfo=None).isoformat(sep=" ") + "+00"
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY task ({TASK_COLUMNS}) FROM STDIN") as copy:
                for row in task_rows(tasks, seed=tasks):
                    due, created = row[6], row[8]
                    copy.write_row((*row[:6], due and due + "+00", row[7], created + "+00",
                                    *row[9:]))  # fmt: skip
            with cur.copy("COPY volunteer (id, platform, external_id, display_name, languages, "
                          "created_at, last_active_at) FROM STDIN") as copy:  # fmt: skip
                for i in range(1, VOLUNTEERS + 1):
                    copy.write_row((i, "bench", f"v{i}", f"V{i}", CLAIMER_LANGS, stamp, stamp))
            with cur.copy("COPY volunteer_role (volunteer_id, role, since) FROM STDIN") as copy:
                for i in range(1, VOLUNTEERS + 1):
                    for role in ROLES:
                        copy.write_row((i, role, stamp))
            cur.execute("SELECT setval('volunteer_id_seq', (SELECT max(id) FROM volunteer))")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def seed(path: Path, tasks: int) -> None:
    """A migrated file with ``tasks`` open tasks and the claimers."""
    db = Database(f"sqlite:///{path}")
    migrations.upgrade(db)
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO task ({TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        task_rows(tasks, seed=tasks),
    )
    stamp = NOW.replace(tzinfo=None).isoformat(sep=" ")
    conn.executemany(
        "INSERT INTO volunteer (id, platform, external_id, display_name, languages, "
        "created_at, last_active_at) VALUES (?, 'bench', ?, ?, ?, ?, ?)",
        ((i, f"v{i}", f"V{i}", CLAIMER_LANGS, stamp, stamp) for i in range(1, VOLUNTEERS + 1)),
    )
    conn.executemany(
        "INSERT INTO volunteer_role (volunteer_id, role, since) VALUES (?, ?, ?)",
        ((i, role, stamp) for i in range(1, VOLUNTEERS + 1) for role in ROLES),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# --- measuring ----------------------------------------------------------------------------


class Claimers:
    """Hands out volunteers so nobody hits the open-claim limit.

    ``each`` claims per volunteer in a row (sequential runs), from ids ``first``..``last``.
    """

    def __init__(self, first: int = 1, last: int = SEQUENTIAL, each: int = MAX_OPEN) -> None:
        self.next_id = first
        self.last = last
        self.each = each
        self.used = 0

    def take(self) -> int:
        if self.next_id > self.last:
            raise SystemExit("benchmark ran out of claimers; raise VOLUNTEERS")
        vid = self.next_id
        self.used += 1
        if self.used % self.each == 0:
            self.next_id += 1
        return vid


def stats(samples: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "per_s": len(samples) / seconds if seconds else 0.0,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def raw_claims(path: Path, count: int, claimers: Claimers) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("busy_timeout = 5000", "foreign_keys = ON", "secure_delete = ON",
                   "synchronous = NORMAL", "journal_mode = WAL"):  # fmt: skip
        conn.execute(f"PRAGMA {pragma}")
    samples = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(*raw_claim(claimers.take(), NOW)).fetchone()
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
        assert row is not None, "raw claim found nothing"
    elapsed = time.perf_counter() - started
    conn.close()
    return stats(samples, elapsed)


def raw_claims_postgres(url: str, count: int, claimers: Claimers) -> dict[str, float]:
    """The same statement sent by psycopg itself, one claim per transaction."""
    import psycopg

    samples = []
    with psycopg.connect(url, prepare_threshold=None) as conn:  # as the repository connects
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            row = conn.execute(*raw_claim(claimers.take(), NOW, "postgresql")).fetchone()
            conn.commit()
            samples.append(time.perf_counter() - t0)
            assert row is not None, "raw claim found nothing"
        elapsed = time.perf_counter() - started
    return stats(samples, elapsed)


async def timed(
    count: int, call: Callable[[int], Awaitable[Any]], claimers: Claimers
) -> dict[str, float]:
    samples = []
    started = time.perf_counter()
    for _ in range(count):
        vid = claimers.take()
        t0 = time.perf_counter()
        await call(vid)
        samples.append(time.perf_counter() - t0)
    return stats(samples, time.perf_counter() - started)


async def in_flight(
    count: int, width: int, call: Callable[[int], Awaitable[Any]], claimers: Claimers
) -> dict[str, float]:
    """``width`` claimers claiming back to back until ``count`` claims are made."""
    samples: list[float] = []
    left = [count]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            vid = claimers.take()
            t0 = time.perf_counter()
            await call(vid)
            samples.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return stats(samples, time.perf_counter() - started)


def user(vid: int) -> UserRef:
    return UserRef("bench", f"v{vid}", f"V{vid}")


def make_app(url: str) -> App:
    settings = Settings(storage={"url": url}, tasks={"max_open_claims": MAX_OPEN})  # type: ignore[arg-type]
    return App(settings, clock=ManualClock(NOW))


def ctx_for(vid: int) -> Ctx:
    return Ctx(Actor(user(vid)), Place("bench:room"), NOW)


async def repo_claim(app: App, vid: int) -> None:
    result = await app.services.tasks.claim_next(
        user(vid), place="bench:room", now=NOW, max_open=MAX_OPEN
    )
    assert result.ok, result.outcome


async def core_claim(app: App, vid: int) -> None:
    spec = app.core.registry.get("task", "next")
    assert spec is not None
    reply = await app.core.invoke(ctx_for(vid), spec, {})
    assert not reply.is_error, reply.body.plain()


async def core_list(app: App, vid: int) -> None:
    spec = app.core.registry.get("task", "list")
    assert spec is not None
    reply = await app.core.invoke(ctx_for(vid), spec, {"page": "3"})
    assert not reply.is_error, reply.body.plain()


async def concurrent(app: App, width: int, rounds: int) -> dict[str, float]:
    """``rounds`` bursts of ``width`` different volunteers claiming at the same moment."""
    claimers = Claimers(SEQUENTIAL + 1, VOLUNTEERS, each=1)
    samples: list[float] = []

    async def one(vid: int) -> None:
        t0 = time.perf_counter()
        await repo_claim(app, vid)
        samples.append(time.perf_counter() - t0)

    started = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(one(claimers.take()) for _ in range(width)))
    return stats(samples, time.perf_counter() - started)


async def next_then_release(app: App, vid: int) -> float:
    """Time one `task next` through the core, then give the task back (untimed)."""
    t0 = time.perf_counter()
    await core_claim(app, vid)
    elapsed = time.perf_counter() - t0
    held = await app.services.tasks.claims_of(user(vid))
    assert held
    for task in held:
        await app.services.tasks.unclaim(task.id, user(vid), now=NOW)
    return elapsed


async def latency_keeping_size(app: App, count: int) -> dict[str, float]:
    samples = [await next_then_release(app, 1 + n % VOLUNTEERS) for n in range(count)]
    return stats(samples, sum(samples))


async def measure_size(
    workdir: Path, size: int, claims: int, full: bool, server: Any = None
) -> dict[str, Any]:
    """One queue size on SQLite, or on PostgreSQL when ``server`` (tests.postgres) is given."""
    here = Path(tempfile.mkdtemp(dir=workdir))
    t0 = time.perf_counter()
    if server is None:
        path = here / f"queue-{size}.db"
        seed(path, size)
        url = f"sqlite:///{path}"
    else:
        url = server.url(server.create_database(f"queue{size}"))
        seed_postgres(url, size)
    seeded = time.perf_counter() - t0
    out: dict[str, Any] = {
        "engine": "sqlite" if server is None else "postgresql",
        "tasks": size,
        "seed_s": round(seeded, 1),
    }
    if full and server is None:
        raw_path = here / f"queue-{size}-raw.db"
        shutil.copyfile(path, raw_path)
        out["raw"] = raw_claims(raw_path, claims, Claimers())
        raw_path.unlink()
    elif full:
        # A copy of the same data, so the repository claims from an untouched queue.
        raw_name = f"queue{size}raw_{time.monotonic_ns()}"
        with server.admin() as admin:
            admin.execute(f'CREATE DATABASE "{raw_name}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
        out["raw"] = raw_claims_postgres(server.url(raw_name), claims, Claimers())
        server.drop_database(raw_name)
    app = make_app(url)
    try:
        await latency_keeping_size(app, 20)  # warm caches
        # Latency of `task next` and `task list` with the queue kept at its size.
        out["next_latency"] = await latency_keeping_size(app, 200)
        out["list_latency"] = await timed(200, lambda v: core_list(app, v), Claimers())
        if full:
            claimers = Claimers()
            out["repo_serial"] = await timed(claims, lambda v: repo_claim(app, v), claimers)
            out["repo"] = await in_flight(claims, IN_FLIGHT, lambda v: repo_claim(app, v),
                                          claimers)  # fmt: skip
            out["core"] = await timed(claims, lambda v: core_claim(app, v), claimers)
            out["concurrent"] = await concurrent(app, BURST, 5)
    finally:
        await app.stop()
    shutil.rmtree(here)
    if server is not None:
        server.drop_database(url.rsplit("/", 1)[1])
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        help="comma-separated queue sizes (default 100000,1000000)")  # fmt: skip
    parser.add_argument("--claims", type=int, default=2000, help="claims per measurement")
    parser.add_argument("--baseline", type=int, default=1000, help="the small queue to compare")
    parser.add_argument("--dir", default=None, help="where to put the database files")
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")  # fmt: skip
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    engines = [e for e in args.engines.split(",") if e]
    if min(sizes) < MIN_SIZE:
        parser.error(f"--sizes: at least {MIN_SIZE}, or the claims run out of fitting tasks")
    if set(engines) - {"sqlite", "postgresql"}:
        parser.error("--engines: sqlite, postgresql")
    bases: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    server = None
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            workdir = Path(tmp)
            for engine in engines:
                if engine == "postgresql":
                    from tests.postgres import start_postgres

                    server = start_postgres()
                on = server if engine == "postgresql" else None
                bases.append(await measure_size(workdir, args.baseline, 0, False, on))
                results += [await measure_size(workdir, n, args.claims, True, on) for n in sizes]
    finally:
        if server is not None:
            server.stop()
    rss = peak_rss_mb()
    ratios: dict[str, float] = {}
    targets: dict[str, bool] = {}
    floor = {"sqlite": 0.25, "postgresql": 0.5}
    for base in bases:
        engine = base["engine"]
        mine = [r for r in results if r["engine"] == engine]
        largest = mine[-1]
        for r in mine:
            ratios[f"{engine}_repo_vs_raw_{r['tasks']}"] = r["repo"]["per_s"] / r["raw"]["per_s"]
            ratios[f"{engine}_repo_serial_vs_raw_{r['tasks']}"] = (
                r["repo_serial"]["per_s"] / r["raw"]["per_s"]
            )
        targets |= {
            f"{engine}_repo_throughput_ge_{floor[engine]:.0%}_of_raw": all(
                r["repo"]["per_s"] >= floor[engine] * r["raw"]["per_s"] for r in mine
            ),
            f"{engine}_list_at_largest_le_2x_baseline": largest["list_latency"]["p50_ms"]
            <= 2 * base["list_latency"]["p50_ms"],
            f"{engine}_next_at_largest_le_2x_baseline": largest["next_latency"]["p50_ms"]
            <= 2 * base["next_latency"]["p50_ms"],
            f"{engine}_p99_200_concurrent_le_50ms": all(
                r["concurrent"]["p99_ms"] <= 50 for r in mine
            ),
        }
    targets["peak_rss_le_300mb"] = rss <= 300
    print_table(bases, results, ratios, rss, targets)
    print(json.dumps({"benchmark": "queue", "baselines": bases, "results": results,
                      "ratios": ratios, "peak_rss_mb": round(rss, 1),
                      "targets": targets}))  # fmt: skip
    return 0 if all(targets.values()) else 1


def print_table(
    bases: list[dict[str, Any]],
    results: list[dict[str, Any]],
    ratios: dict[str, float],
    rss: float,
    targets: dict[str, bool],
) -> None:
    print(f"{'engine':<11}{'tasks':>9} {'layer':<14} {'claims/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    print(
        "  raw: sqlite3 or psycopg, one claim per transaction; repo: TaskRepo.claim_next with "
        f"{IN_FLIGHT} claimers in flight; repo_serial: one at a time; core: BotCore.invoke "
        f"one at a time; concurrent: bursts of {BURST} different claimers"
    )
    for r in [*bases, *results]:
        for layer in ("raw", "repo", "repo_serial", "core", "concurrent", "next_latency",
                      "list_latency"):  # fmt: skip
            if layer in r:
                s = r[layer]
                rated = ("raw", "repo", "repo_serial", "core")
                rate = f"{s['per_s']:10.0f}" if layer in rated else " " * 10
                print(f"{r['engine']:<11}{r['tasks']:>9} {layer:<14} {rate} "
                      f"{s['p50_ms']:8.3f} {s['p99_ms']:8.3f}")  # fmt: skip
    for name, value in ratios.items():
        print(f"{name}: {value:.0%}")
    print(f"peak RSS: {rss:.0f} MB")
    for name, ok in targets.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
