"""Many claimers at once never share a task: coroutines, threads and OS processes."""

import asyncio
import os
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from bot.domain import Role, TaskKind, UserRef
from bot.domain.tasks import Outcome
from storage import migrations
from storage.db import Database
from storage.tasks import NewTask, TaskRepo
from storage.volunteers import VolunteerRepo
from tests.harness import START, Harness

ROOT = Path(__file__).resolve().parent.parent
WON = re.compile(r"You have task #(\d+)")


async def test_fifty_concurrent_claimers_through_the_core_one_winner(harness: Harness):
    h = harness
    await h.ok("coco", "task post other The one task")
    names = [f"v{n:02}" for n in range(50)]
    for name in names:
        await h.ok(name, "volunteer join organiser")
    replies = await asyncio.gather(*(h.run(name, "task claim 1") for name in names))
    winners = [n for n, r in zip(names, replies, strict=True) if not r.is_error]
    assert len(winners) == 1
    holder = winners[0].title()
    losers = [r.body.plain() for r in replies if r.is_error]
    assert all(f"already claimed by {holder}" in text for text in losers)
    shown = await h.ok("x", "task show 1")
    assert shown.count("claimed by") == 1


async def test_fifty_concurrent_task_next_take_fifty_distinct_tasks(harness: Harness):
    h = harness
    for n in range(60):
        await h.ok("coco", f"task post other Job {n}")
    names = [f"v{n:02}" for n in range(50)]
    for name in names:
        await h.ok(name, "volunteer join organiser")
    replies = await asyncio.gather(*(h.run(name, "task next") for name in names))
    won = [int(WON.search(r.body.plain()).group(1)) for r in replies]  # type: ignore[union-attr]
    assert sorted(won) == list(range(1, 51)), "the 50 most urgent (oldest) tasks, once each"


def _prepare(url: str, tasks: int, volunteers: list[str], platform: str = "test") -> None:
    db = Database(url)
    try:
        migrations.upgrade(db)
        repo, people = TaskRepo(db), VolunteerRepo(db)

        async def fill() -> None:
            coco = UserRef("test", "coco", "Coco")
            for n in range(tasks):
                await repo.post(coco, NewTask(TaskKind.OTHER, f"Job {n}"), now=START)
            for name in volunteers:
                await people.join(UserRef(platform, name, name), Role.ORGANISER.value,
                                  languages=None, country=None, now=START)  # fmt: skip

        asyncio.run(fill())
    finally:
        db.close()


def test_fifty_threads_on_separate_databases_one_winner(db_url: str):
    names = [f"t{n:02}" for n in range(50)]
    _prepare(db_url, 1, names)
    barrier = threading.Barrier(len(names))
    outcomes: dict[str, Outcome] = {}

    def claimer(name: str) -> None:
        db = Database(db_url)
        try:
            repo = TaskRepo(db)
            barrier.wait()
            result = asyncio.run(
                repo.claim(1, UserRef("test", name), place="test:room", now=START, max_open=3)
            )
            outcomes[name] = result.outcome
        finally:
            db.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    counts = Counter(outcomes.values())
    assert counts == {Outcome.OK: 1, Outcome.TAKEN: 49}


def _bot(
    url: str, cwd: Path, user: str, *, coordinator: bool = False, **env: str
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "bot", "--as", user]
    if coordinator:
        args += ["--coordinator", user]
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VOLUNTEER_BOT_STORAGE__URL": url,
        **env,
    }
    return subprocess.Popen(args, cwd=cwd, env=environ, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def _run_together(procs: list[tuple[subprocess.Popen[str], str]]) -> list[str]:
    """Wait until every process answers, then give them all their input at once."""
    for proc, _ in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(":as ready\n")
        proc.stdin.flush()
    for proc, _ in procs:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "now acting as ready" in first, first
    outputs: list[str] = [""] * len(procs)

    def talk(i: int, proc: subprocess.Popen[str], script: str) -> None:
        out, err = proc.communicate(script, timeout=240)
        outputs[i] = out + err

    threads = [
        threading.Thread(target=talk, args=(i, proc, script))
        for i, (proc, script) in enumerate(procs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (proc, _), out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    assert all(outputs), "every process answered"
    return outputs


@pytest.mark.slow
def test_processes_claiming_across_a_hundred_tasks_never_share_one(tmp_path: Path, db_url: str):
    names = [f"p{n}" for n in range(5)]
    _prepare(db_url, 100, names, "console")
    procs = []
    for n, name in enumerate(names):
        order = list(range(1, 101))
        random.Random(n).shuffle(order)
        script = f":as {name}\n" + "".join(f"task claim {i}\n" for i in order)
        procs.append(
            (_bot(db_url, tmp_path, name, VOLUNTEER_BOT_TASKS__MAX_OPEN_CLAIMS="1000"), script)
        )
    outputs = _run_together(procs)
    for out in outputs:
        assert "database is locked" not in out.lower()
        assert "went wrong" not in out
    won = Counter(int(m) for out in outputs for m in WON.findall(out))
    assert set(won) == set(range(1, 101)), "every task was taken"
    assert max(won.values()) == 1, "no task was held twice"
    winners = [out for out in outputs if WON.search(out)]
    assert len(winners) > 1, "the processes really competed"
    db = Database(db_url)
    try:
        rows = db.run_sync(
            lambda s: (
                s.connection()
                .exec_driver_sql(
                    "SELECT task_id, count(*) FROM task_event WHERE action = 'claimed' "
                    "GROUP BY task_id"
                )
                .all()
            ),
            write=False,
        )
    finally:
        db.close()
    assert sorted(rows) == [(i, 1) for i in range(1, 101)]


@pytest.mark.slow
def test_console_done_when_scenario(tmp_path: Path, db_url: str):
    """Coordinator posts into Polish; a Polish translator gets it from `task next`; a second
    volunteer is told who has it; processes racing for one task produce one winner."""

    def one(user: str, *lines: str, coordinator: bool = False) -> str:
        script = "".join(f"{line}\n" for line in (f":as {user}", *lines))
        [out] = _run_together([(_bot(db_url, tmp_path, user, coordinator=coordinator), script)])
        return out

    coco = one(
        "coco",
        "task post translation Leaflet for Warsaw --language pl",
        "task post translation Poster for Kraków --language pl",
        coordinator=True,
    )
    assert "Posted task #1" in coco and "Posted task #2" in coco
    ania = one("ania", "volunteer join translator --languages pl", "task next")
    assert "You have task #1: Leaflet for Warsaw" in ania
    bart = one("bart", "volunteer join translator --languages pl,en", "task claim 1")
    assert "Too late: task #1 is already claimed by ania" in bart

    racers = [f"r{n}" for n in range(5)]
    join = "volunteer join translator --languages pl"
    outputs = _run_together(
        [(_bot(db_url, tmp_path, name), f":as {name}\n{join}\ntask claim 2\n") for name in racers]
    )
    winners = [
        name for name, out in zip(racers, outputs, strict=True) if "You have task #2" in out
    ]
    assert len(winners) == 1
    for out in outputs:
        assert "database is locked" not in out.lower()
        assert "You have task #2" in out or f"already claimed by {winners[0]}" in out
