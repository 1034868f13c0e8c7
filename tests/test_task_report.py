"""`task report`: counts per language and status against a seeded queue, on both databases."""

import io
from datetime import timedelta

from PIL import Image

from bot.domain import LANGUAGES
from tests.harness import Harness
from tests.test_tasks_expiry import TTL, tasks_cog


async def post(h: Harness, line: str) -> int:
    text = await h.ok("coco", f"task post {line}")
    return int(text.split("#", 1)[1].split(":", 1)[0])


async def counted(h: Harness) -> dict[str, dict[str, int]]:
    """Tasks per language and status, counted from the task table itself."""
    rows = await h.app.db.read_connection(
        lambda conn: conn.exec_driver_sql(
            "SELECT coalesce(language, ''), status, count(*) FROM task GROUP BY 1, 2"
        ).all()
    )
    found: dict[str, dict[str, int]] = {}
    for language, status, n in rows:
        found.setdefault(language, {})[status] = n
    return found


async def tallied(h: Harness) -> dict[str, dict[str, int]]:
    report = await h.app.services.tasks.report(idle_since=h.clock.now())
    return report.counts


def section(text: str, heading: str) -> list[str]:
    """The heading's line and those after it."""
    lines = text.split("\n")
    return lines[lines.index(heading) :]


async def seed(h: Harness) -> dict[str, int]:
    """Polish: 3 open, 1 claimed, 1 in review; German: 1 open, 1 claimed; French: 1 cancelled;
    without a language: 1 done."""
    ids = {}
    for i in range(5):
        ids[f"pl{i}"] = await post(h, f"translation Leaflet part {i} --language pl")
    ids["de0"] = await post(h, "translation Flyer --language de")
    ids["de1"] = await post(h, "translation Poster --language de")
    ids["fr0"] = await post(h, "translation Banner --language fr")
    ids["none"] = await post(h, "other Stand at the fair")
    await h.ok("alice", "volunteer join translator --languages pl,de")
    await h.ok("bob", "volunteer join organiser --languages de")
    await h.ok("alice", f"task claim {ids['pl0']}")
    await h.ok("alice", f"task claim {ids['pl1']}")
    await h.ok("alice", f"task done {ids['pl1']}")
    await h.ok("alice", f"task claim {ids['de0']}")
    await h.ok("coco", f"task cancel {ids['fr0']}")
    await h.ok("bob", f"task claim {ids['none']}")
    await h.ok("bob", f"task done {ids['none']}")
    return ids


async def test_report_counts_each_language_by_status(harness: Harness):
    h = harness
    await seed(h)
    reply = await h.run("coco", "task report")
    assert not reply.is_error
    text = reply.body.plain()
    assert "pl: 3 open · 1 claimed · 1 in review · 0 done" in text
    assert "de: 1 open · 1 claimed · 0 in review · 0 done" in text
    assert "fr: 0 open · 0 claimed · 0 in review · 0 done" in text, "cancelled counts nowhere"
    assert "—: 0 open · 0 claimed · 0 in review · 1 done" in text, "tasks with no language"
    assert text.index("de:") < text.index("fr:") < text.index("pl:") < text.index("—:")


async def test_report_names_the_languages_nobody_registered_speaks(harness: Harness):
    h = harness
    await seed(h)
    text = await h.ok("coco", "task report")
    unspoken = text.split("No volunteer speaks: ", 1)[1].split("\n")[0]
    named = {part.rsplit("(", 1)[1].rstrip(")") for part in unspoken.split(", ")}
    assert named == set(LANGUAGES) - {"pl", "de"}
    await h.ok("bob", "privacy forget --confirm")
    text = await h.ok("coco", "task report")
    assert "German (de)" not in text, "Alice still speaks it"
    await h.ok("alice", "privacy forget --confirm")
    text = await h.ok("coco", "task report")
    assert "German (de)" in text and "Polish (pl)" in text


async def test_report_lists_claims_running_out_and_the_oldest_open_tasks(harness: Harness):
    h = harness
    ids = await seed(h)
    text = await h.ok("coco", "task report")
    assert section(text, "Claims running out")[1] == "None."
    oldest = section(text, "Oldest unclaimed")[1:5]
    assert [line.split(" ", 1)[0] for line in oldest] == [
        f"#{ids[k]}" for k in ("pl2", "pl3", "pl4", "de1")
    ]
    h.clock.advance(TTL * 0.8 + timedelta(minutes=1))
    await h.ok("alice", f"task show {ids['de0']}")  # activity: that claim starts again
    text = await h.ok("coco", "task report")
    [running_out] = section(text, "Claims running out")[1:2]
    assert running_out.startswith(f"#{ids['pl0']} Leaflet part 0 — Alice, back to the queue ")


async def test_report_comes_with_a_coverage_chart(harness: Harness):
    h = harness
    await seed(h)
    reply = await h.run("coco", "task report")
    [chart] = reply.attachments
    assert chart.filename == "coverage.png" and chart.content_type == "image/png"
    image = Image.open(io.BytesIO(chart.data))
    assert image.format == "PNG" and image.width == 760 and image.height > 100


async def test_report_is_for_coordinators_only(harness: Harness):
    text = await harness.err("alice", "task report")
    assert "coordinator" in text


async def test_the_tally_follows_every_change_a_task_goes_through(harness: Harness):
    """Post, claim, give back, finish, cancel, expiry and erasure all keep the counts true."""
    h = harness
    ids = await seed(h)
    assert await tallied(h) == await counted(h)
    await h.ok("alice", f"task unclaim {ids['de0']}")
    await h.ok("coco", f"task assign {ids['pl2']} alice")
    assert await tallied(h) == await counted(h)
    h.clock.advance(TTL + timedelta(minutes=1))
    assert (await tasks_cog(h).sweep()).released == 2
    assert await tallied(h) == await counted(h)
    await h.ok("alice", f"task claim {ids['pl3']}")
    await h.ok("alice", "privacy forget --confirm")
    assert await tallied(h) == await counted(h)
    assert (await counted(h))["pl"] == {"open": 4, "in_review": 1}
