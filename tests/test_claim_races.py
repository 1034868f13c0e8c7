"""Claim races between OS processes, on SQLite and PostgreSQL, and proof that they can fail.

Each session is a process of its own with its own connections (tests/race_child.py); the
harness (tests/race.py) fixes how their steps interleave and checks the outcome against the
queue's promises: one holder per task, every loser told who holds it, nobody over the limit.
"""

import asyncio
from collections import Counter

import pytest

from bot.domain import Role, TaskKind
from storage import migrations
from storage.db import Database
from storage.tasks import NewTask, TaskRepo
from storage.volunteers import VolunteerRepo
from tests.race import race, violations
from tests.race_child import NOW, person

SESSIONS = [f"s{n}" for n in range(8)]

pytestmark = pytest.mark.slow


def prepare(url: str, *, tasks: int, volunteers: list[str]) -> None:
    """A migrated database with ``tasks`` open tasks and these volunteers (organisers)."""
    db = Database(url)

    async def fill() -> None:
        repo, people = TaskRepo(db), VolunteerRepo(db)
        for n in range(tasks):
            await repo.post(person("coco"), NewTask(TaskKind.OTHER, f"Job {n}"), now=NOW)
        for name in volunteers:
            await people.join(person(name), Role.ORGANISER.value, languages=None,
                              country=None, now=NOW)  # fmt: skip

    try:
        migrations.upgrade(db)
        asyncio.run(fill())
    finally:
        db.close()


def one_volunteer_eight_tasks() -> dict[str, dict[str, object]]:
    """Eight sessions claim eight different tasks, all as the same volunteer."""
    return {
        name: {"op": "claim", "task": n + 1, "user": "v", "max_open": 1}
        for n, name in enumerate(SESSIONS)
    }


def eight_volunteers_one_task() -> dict[str, dict[str, object]]:
    """Eight sessions claim the same task, each as a volunteer of its own."""
    return {name: {"op": "claim", "task": 1, "user": name, "max_open": 3} for name in SESSIONS}


def test_one_volunteer_claiming_eight_tasks_from_eight_processes_holds_one(db_url: str):
    prepare(db_url, tasks=8, volunteers=["v"])
    with race(db_url, SESSIONS) as r:
        r.together(one_volunteer_eight_tasks())
    assert violations(db_url, r.told, max_open=1) == []
    assert Counter(a["outcome"] for a in r.told.values()) == {"ok": 1, "limit": 7}


def test_eight_volunteers_racing_for_one_task_leave_one_holder_and_seven_who_know_it(
    db_url: str,
):
    prepare(db_url, tasks=1, volunteers=SESSIONS)
    with race(db_url, SESSIONS) as r:
        r.together(eight_volunteers_one_task())
    assert violations(db_url, r.told, max_open=3) == []
    [winner] = [name for name, a in r.told.items() if a["outcome"] == "ok"]
    losers = [a for name, a in r.told.items() if name != winner]
    assert [a["outcome"] for a in losers] == ["taken"] * 7
    assert {a["holder"] for a in losers} == {person(winner).label}


def test_eight_processes_taking_task_next_take_eight_different_tasks(db_url: str):
    prepare(db_url, tasks=10, volunteers=SESSIONS)
    with race(db_url, SESSIONS) as r:
        r.together({name: {"op": "next", "user": name, "max_open": 3} for name in SESSIONS})
    assert violations(db_url, r.told, max_open=3) == []
    assert sorted(a["task"] for a in r.told.values()) == list(range(1, 9)), "the oldest eight"


@pytest.mark.parametrize(
    ("steps", "volunteers", "broken"),
    [
        (one_volunteer_eight_tasks, ["v"], "V holds 8 tasks, over the limit of 1"),
        (eight_volunteers_one_task, SESSIONS, "task 1: 8 sessions were told it is theirs"),
    ],
    ids=["limit", "one-holder"],
)
def test_the_races_catch_a_claim_that_reads_then_writes(db_url, steps, volunteers, broken):
    """Every session reads before any writes, so the broken claim fails every time."""
    prepare(db_url, tasks=8, volunteers=volunteers)
    with race(db_url, SESSIONS, implementation="read-then-write") as r:
        r.together(steps(), gate=False)
    assert all(a["outcome"] == "ok" for a in r.told.values()), "each thought it won"
    assert broken in violations(db_url, r.told, max_open=1 if volunteers == ["v"] else 3)
