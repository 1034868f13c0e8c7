"""Jobs in the queue: fanned out per language in one transaction, read back with their tasks."""

from collections.abc import AsyncIterator

import pytest

from bot.domain import Priority, TaskKind, TaskStatus, UserRef
from storage import migrations
from storage.db import Database
from storage.tasks import NewJob, NewTask, TaskRepo
from tests.harness import START

COCO = UserRef("test", "coco", "Coco")


@pytest.fixture
async def repo(db_url: str) -> AsyncIterator[TaskRepo]:
    db = Database(db_url)
    migrations.upgrade(db)
    try:
        yield TaskRepo(db)
    finally:
        db.close()


async def test_a_job_posts_one_task_per_language_with_its_source(repo: TaskRepo):
    new = NewJob(TaskKind.TRANSLATION, "Leaflet", ("pl", "de", "fr"), source_language="en",
                 source_url="https://example.org/leaflet.odt", priority=Priority.HIGH)  # fmt: skip
    job, tasks = await repo.post_job(COCO, new, now=START)
    assert job is not None and job.title == "Leaflet" and job.creator == COCO
    assert job.source_url == "https://example.org/leaflet.odt"
    assert [t.language for t in tasks] == ["pl", "de", "fr"]
    assert {(t.job_id, t.source_language, t.source_url, t.priority) for t in tasks} == {
        (job.id, "en", "https://example.org/leaflet.odt", Priority.HIGH)
    }
    found = await repo.job(job.id)
    assert found is not None
    assert found[0] == job and [t.id for t in found[1]] == [t.id for t in tasks]
    assert await repo.job(job.id + 1) is None


async def test_a_single_language_stands_alone_without_a_job(repo: TaskRepo):
    job, [task] = await repo.post_job(COCO, NewJob(TaskKind.OTHER, "Stand", (None,)), now=START)
    assert job is None and task.job_id is None and task.language is None
    assert await repo.jobs() == []


async def test_many_jobs_post_together_and_list_newest_first_with_counts(repo: TaskRepo):
    jobs = [NewJob(TaskKind.VIDEO_EDITING, f"Video {n}", ("it", "es")) for n in range(3)]
    posted = await repo.post_jobs(COCO, [*jobs, NewJob(TaskKind.OTHER, "Alone", ("pl",))],
                                  now=START)  # fmt: skip
    assert [len(p.task_ids) for p in posted] == [2, 2, 2, 1]
    assert posted[3].job_id is None
    await repo.post(COCO, NewTask(TaskKind.OTHER, "Plain"), now=START)
    listed = await repo.jobs(limit=2)
    assert [s.job.title for s in listed] == ["Video 2", "Video 1"]
    assert all(s.counts == {TaskStatus.OPEN: 2} and s.total == 2 for s in listed)
    assert [s.job.title for s in await repo.jobs(offset=2)] == ["Video 0"]


async def test_suggestions_match_open_tasks_by_number_prefix_or_title(repo: TaskRepo):
    for title in ["Leaflet for Warsaw", "Poster", "Stand 10%_off"]:
        await repo.post(COCO, NewTask(TaskKind.OTHER, title), now=START)
    for n in range(4, 13):
        await repo.post(COCO, NewTask(TaskKind.OTHER, f"Task {n}", language="pl"), now=START)
    await repo.cancel(5, by=COCO, now=START)
    assert await repo.suggest("WARSAW") == [(1, "Leaflet for Warsaw")]
    # Numbers starting with the digits first, then titles containing them.
    assert [n for n, _ in await repo.suggest("1")] == [1, 10, 11, 12, 3]
    assert [n for n, _ in await repo.suggest("#12")] == [12]
    assert [n for n, _ in await repo.suggest("5")] == [], "a cancelled task is not offered"
    assert (4, "Task 4 (pl)") in await repo.suggest("task")
    assert [n for n, _ in await repo.suggest("10%_")] == [3], (
        "wildcards typed are plain characters"
    )
    assert len(await repo.suggest("", 5)) == 5
