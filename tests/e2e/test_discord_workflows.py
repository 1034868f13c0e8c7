"""`/task import` with an attached CSV and `/task report` with its chart, through the fake."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from storage.models import Task
from tests.discord_fake import FakeDiscord, Upload
from tests.e2e.discord_support import COORDINATOR_ROLE, BotRunner

pytestmark = pytest.mark.e2e

CSV = (
    "kind,title,language,priority\n"
    "translation,Leaflet for the fair,pl;de;fr,high\n"
    "other,Stand at the fair,,\n"
)


@pytest.fixture
async def bot(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotRunner]:
    runner = BotRunner(fake, tmp_path)
    try:
        await runner.start()
        yield runner
    finally:
        await runner.stop()


def shown(content: str) -> str:
    """The message as a reader sees it: Discord's markdown escapes removed."""
    return content.replace("\\", "")


async def tasks(bot: BotRunner) -> list[tuple[str, str | None, int | None]]:
    rows = await bot.app.db.read(
        lambda s: s.exec(select(Task.title, Task.language, Task.job_id).order_by(Task.id)).all()
    )
    return [tuple(r) for r in rows]


async def test_a_coordinator_imports_an_attached_csv(fake: FakeDiscord, bot: BotRunner):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()  # the guild (with the coordinator role) is announced again
    checked = await (await fake.slash(
        coco, "task import", file=Upload("tasks.csv", CSV.encode()), dry_run=True
    )).answer()  # fmt: skip
    assert "every row is fine; 2 rows would post 4 tasks" in shown(checked.content), (
        checked.content
    )
    assert await tasks(bot) == []
    answer = await (await fake.slash(coco, "task import", file=Upload("tasks.csv", CSV.encode()))
                    ).answer()  # fmt: skip
    assert "Imported `tasks.csv`: 2 rows posted 4 tasks #1–#4" in shown(answer.content), (
        answer.content
    )
    assert "1 job of several languages (job 1)" in shown(answer.content)
    assert await tasks(bot) == [
        ("Leaflet for the fair", "pl", 1), ("Leaflet for the fair", "de", 1),
        ("Leaflet for the fair", "fr", 1), ("Stand at the fair", None, None),
    ]  # fmt: skip


async def test_a_bad_row_in_an_attached_csv_imports_nothing(fake: FakeDiscord, bot: BotRunner):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    bad = CSV + "wizard,Spells,,\n"
    answer = await (await fake.slash(coco, "task import", file=Upload("tasks.csv", bad.encode()))
                    ).answer()  # fmt: skip
    assert answer.ephemeral
    text = shown(answer.content)
    assert "line 4, column kind" in text and "nothing was imported" in text
    assert await tasks(bot) == []


async def test_import_is_for_coordinators(fake: FakeDiscord, bot: BotRunner):
    alice = fake.user("alice")
    answer = await (await fake.slash(alice, "task import", file=Upload("t.csv", CSV.encode()))
                    ).answer()  # fmt: skip
    assert answer.ephemeral and "coordinators" in answer.content
    assert await tasks(bot) == []


async def test_the_report_comes_with_its_chart_as_an_image(fake: FakeDiscord, bot: BotRunner):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    await (await fake.slash(coco, "task import", file=Upload("t.csv", CSV.encode()))).answer()
    answer = await (await fake.slash(coco, "task report")).answer()
    assert "pl: 1 open · 0 claimed · 0 in review · 0 done" in shown(answer.content), answer.content
    [(name, data)] = answer.files
    assert name == "coverage.png" and data.startswith(b"\x89PNG")
