"""The queue gives the same answers through SQLAlchemy or sqlite3, and on PostgreSQL.

On SQLite the repository sends its statements straight to sqlite3 (the fast path); the same
statements run through SQLAlchemy everywhere else. One scenario, run both ways on identical
databases, must give equal results and equal tables; run on PostgreSQL, equal results.
"""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.domain import Priority, Role, TaskKind, TaskStatus, UserRef
from storage import migrations
from storage.db import Database
from storage.tasks import NewTask, TaskRepo
from storage.volunteers import VolunteerRepo

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COCO = UserRef("test", "coco", "Coco")
PEOPLE = {
    "ania": (Role.TRANSLATOR, ["pl", "en"]),
    "bart": (Role.TRANSLATOR, ["pl"]),
    "cleo": (Role.ORGANISER, []),
    "dora": (Role.VIDEO_EDITOR, ["de"]),
}


def who(name: str) -> UserRef:
    return UserRef("test", name, name.title())


async def seed(db: Database) -> None:
    repo, people = TaskRepo(db, fast=False), VolunteerRepo(db)
    for name, (role, languages) in PEOPLE.items():
        await people.join(who(name), role.value, languages=languages, country=None, now=NOW)
    await people.join(who("cleo"), Role.TRANSLATOR.value, languages=["fr"], country=None,
                      now=NOW)  # fmt: skip
    jobs = [
        NewTask(TaskKind.TRANSLATION, "Leaflet", language="pl", source_language="en",
                priority=Priority.HIGH, due_at=NOW + timedelta(days=3)),
        NewTask(TaskKind.TRANSLATION, "Poster", language="pl"),
        NewTask(TaskKind.TRANSLATION, "Flyer", language="de", source_language="fr"),
        NewTask(TaskKind.OTHER, "Stand at the fair", priority=Priority.URGENT),
        NewTask(TaskKind.VIDEO_EDITING, "Clip", due_at=NOW + timedelta(hours=12)),
        NewTask(TaskKind.ORGANISING, "Meeting room", description="Ask the library"),
        NewTask(TaskKind.TRANSLATION, "Letter", language="fr", priority=Priority.LOW),
    ]  # fmt: skip
    for n, job in enumerate(jobs):
        await repo.post(COCO, job, now=NOW + timedelta(minutes=n))


async def scenario(repo: TaskRepo) -> list[Any]:
    """Every kind of call the cogs make, answers collected in order."""
    out = []
    at = NOW + timedelta(hours=1)
    place = {"place": "test:room", "now": at, "max_open": 2}
    out.append(await repo.claim_next(who("ania"), **place))
    out.append(await repo.claim_next(who("ania"), **place))
    out.append(await repo.claim_next(who("ania"), **place))  # over the limit
    out.append(await repo.claim(1, who("bart"), **place))  # taken
    out.append(await repo.claim(2, who("ania"), **place))
    out.append(await repo.claim(3, who("dora"), **place))  # no role
    out.append(await repo.claim(99, who("dora"), **place))
    out.append(await repo.claim(1, who("nobody"), **place))
    out.append(await repo.claim_next(who("dora"), **place))
    out.append(await repo.claim_next(who("dora"), **place, language="pl"))
    out.append(await repo.claim_next(who("cleo"), **place, kind=TaskKind.PROGRAMMING))
    out.append(await repo.claim_next(who("bart"), **place))
    out.append(await repo.claim_next(who("cleo"), **place, kind=TaskKind.TRANSLATION))
    out.append(await repo.unclaim(1, who("bart"), now=at))  # not theirs
    out.append(await repo.unclaim(4, who("coco"), now=at, override=True))
    out.append(await repo.finish(2, who("ania"), note="early", now=at))  # nobody holds it
    out.append(await repo.finish(1, who("ania"), note="sent", now=at))
    out.append(await repo.finish(1, who("ania"), note="again", now=at))  # closed
    given = {"by": COCO, "place": "test:room", "now": at, "max_open": 2}
    out.append(await repo.assign(4, who("bart"), **given))
    out.append(await repo.assign(4, who("bart"), **given))  # already theirs
    out.append(await repo.claim_next(who("dora"), **place, kind=TaskKind.OTHER))  # none open
    out.append(await repo.cancel(6, by=COCO, now=at))
    out.append(await repo.touch(4, who("bart"), at))
    out.append(await repo.claim_next(who("cleo"), **place))
    out.append(await repo.sweep(NOW + timedelta(days=6), ttl=timedelta(days=7)))
    out.append(await repo.sweep(NOW + timedelta(days=8), ttl=timedelta(days=7)))
    out.append(await repo.with_history(4))
    out.append(await repo.get(5))
    for status in (*TaskStatus, None):
        out.append(await repo.page(status=status, limit=3))
    out.append(await repo.page(status=TaskStatus.OPEN, kind=TaskKind.TRANSLATION, language="pl"))
    out.append(await repo.profile_with_claims(who("bart")))
    out.append(await repo.export(who("ania")))
    out.append(await repo.erase(who("ania"), at))
    out.append(await repo.export(who("ania")))
    return out


def tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    names = ("task", "task_event", "outbox", "volunteer", "volunteer_role")

    def read(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
        return {n: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {n} ORDER BY 1, 2")]
                for n in names}  # fmt: skip

    return db.run_sync_connection(read, write=False)


async def test_both_paths_give_the_same_answers_and_rows(tmp_path: Path):
    seeded = tmp_path / "seeded.db"
    db = Database(f"sqlite:///{seeded}")
    try:
        migrations.upgrade(db)
        await seed(db)
    finally:
        db.close()
    answers, rows = {}, {}
    for fast in (False, True):
        path = tmp_path / f"{fast}.db"
        shutil.copyfile(seeded, path)
        db = Database(f"sqlite:///{path}")
        try:
            answers[fast] = await scenario(TaskRepo(db, fast=fast))
            rows[fast] = tables(db)
        finally:
            db.close()
    for n, (slow, fast) in enumerate(zip(answers[False], answers[True], strict=True)):
        assert slow == fast, f"call {n} differs"
    assert rows[False] == rows[True]
    # The scenario did reach the interesting answers.
    outcomes = {getattr(a, "outcome", None) for a in answers[True]}
    assert {"ok", "limit", "taken", "no-role", "not-found", "not-registered", "closed",
            "not-yours", "already-yours", "empty", "no-language",
            "not-your-language"} <= {str(o) for o in outcomes}  # fmt: skip


async def test_postgresql_gives_the_answers_sqlite_gives(tmp_path: Path, pg_url: str):
    """The same statements on the other engine: its locking clauses change no answer."""
    answers = []
    for url in (f"sqlite:///{tmp_path / 'bot.db'}", pg_url):
        db = Database(url)
        try:
            migrations.upgrade(db)
            await seed(db)
            answers.append(await scenario(TaskRepo(db)))
        finally:
            db.close()
    for n, (sqlite, postgresql) in enumerate(zip(*answers, strict=True)):
        assert sqlite == postgresql, f"call {n} differs"
