"""Signatures through the core: progress, counts, milestones once, digest, polled sources."""

import asyncio
import io
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from PIL import Image

from bot.clock import ManualClock
from bot.domain.eci import ANNOUNCEMENT
from bot.domain.i18n import Reader
from cogs.signatures import Signatures
from tests.harness import START, Harness, make_app

TARGETS = ["test:announce", "test:lobby"]
SECTIONS: dict[str, Any] = {
    "announce": {"targets": TARGETS},
    "campaign": {"collection_ends": "2026-12-31"},
}


def app_at(
    tmp_path: Path, clock: ManualClock | None = None, *, url: str | None = None, **extra: Any
) -> Harness:
    return Harness(
        make_app(tmp_path, clock or ManualClock(START), url=url, **{**SECTIONS, **extra})
    )


@pytest.fixture
async def h(tmp_path: Path, db_url: str) -> AsyncIterator[Harness]:
    harness = app_at(tmp_path, url=db_url)
    try:
        yield harness
    finally:
        await harness.app.stop()


def signatures(h: Harness) -> Signatures:
    return next(cog for cog in h.app.cogs if isinstance(cog, Signatures))


async def announced(h: Harness) -> list[tuple[str, str]]:
    return [(post.target, post.body.plain()) for post in await h.deliver()]


async def test_no_count_yet_says_how_to_record_one(h: Harness):
    assert "No signature count is recorded yet" in await h.ok("alice", "signatures")


async def test_crossing_several_totals_announces_them_in_one_message_per_target(h: Harness):
    reply = await h.ok("coco", "signatures set 120000")
    assert "Recorded 120,000 signatures in total." in reply
    assert "Announced: 10,000 signatures, 25,000 signatures, 50,000 signatures, " in reply
    posts = await h.deliver()
    assert sorted(p.target for p in posts) == sorted(TARGETS)
    for post in posts:
        text = post.body.plain()
        for mark in ("10,000", "25,000", "50,000", "100,000"):
            assert f"• {mark} signatures" in text
        assert "250,000 signatures" not in text
        assert "Now: 120,000 signatures (12.0% of 1,000,000), 0 of 7 countries" in text
        assert post.attachment is not None and post.attachment.filename == "signatures.png"
        assert Image.open(io.BytesIO(post.attachment.data)).format == "PNG"
    assert {p.key for p in posts} == {f"milestone:total:10000:{t}" for t in TARGETS}


async def outbox_rows(h: Harness) -> list[tuple[str, str, str, bytes | None]]:
    def read(conn: sa.Connection) -> list[tuple[str, str, str, bytes | None]]:
        rows = conn.exec_driver_sql("SELECT key, kind, body, attachment FROM outbox ORDER BY key")
        return [tuple(row) for row in rows]  # type: ignore[misc]

    return await h.app.db.read_connection(read)


async def test_an_announcement_is_stored_as_facts_and_worded_and_drawn_at_delivery(h: Harness):
    """Recording a count renders nothing: the words and the chart come when it is sent."""
    renderers = h.app.services.outbox.renderers
    cog = signatures(h)
    drawn: list[str] = []

    def picture(data: dict[str, Any], reader: Reader) -> Any:
        drawn.append(threading.current_thread().name)
        return cog._picture(data, reader)

    renderers.register(ANNOUNCEMENT, cog._announcement, picture)
    await h.ok("coco", "signatures set 120000")
    rows = await outbox_rows(h)
    assert [(key, kind) for key, kind, _, _ in rows] == [
        (f"milestone:total:10000:{t}", ANNOUNCEMENT) for t in sorted(TARGETS)
    ]
    for _, _, body, attachment in rows:
        facts = json.loads(body)
        assert facts["progress"]["total"] == 120000
        assert [m["key"] for m in facts["reached"]] == [
            "total:10000",
            "total:25000",
            "total:50000",
            "total:100000",
        ]
        assert attachment is None, "no picture is stored"
    assert drawn == [], "nothing was drawn while recording"
    posts = await h.deliver()
    assert len(posts) == len(TARGETS)
    assert drawn and len(drawn) == 1, "one chart for every target of the announcement"
    assert drawn[0] != threading.current_thread().name, "not on the event loop"
    assert not drawn[0].startswith("db"), "not on the database's thread"
    assert posts[0].attachment is posts[1].attachment


async def test_setting_the_same_count_again_or_after_a_restart_announces_nothing_new(
    tmp_path: Path, db_url: str
):
    first = app_at(tmp_path, url=db_url)
    await first.ok("coco", "signatures set 120000")
    assert len(await first.deliver()) == 2
    reply = await first.ok("coco", "signatures set 120000")
    assert "Announced" not in reply
    assert await first.deliver() == []
    await first.app.stop()
    second = app_at(tmp_path, url=db_url)
    try:
        await second.ok("coco", "signatures set 120000")
        assert await second.deliver() == []
        await second.ok("coco", "signatures set 260000")
        [(_, text), _] = await announced(second)
        assert "• 250,000 signatures" in text and "100,000" not in text.split("Now:")[0]
    finally:
        await second.app.stop()


async def test_a_count_that_falls_and_rises_again_does_not_reannounce(h: Harness):
    await h.ok("coco", "signatures set 30000")
    await h.deliver()
    await h.ok("coco", "signatures set 8000")  # a correction
    await h.ok("coco", "signatures set 30000")
    assert await h.deliver() == []


async def test_countries_passing_their_minimum_and_the_seventh_one(h: Harness):
    await h.ok("coco", "signatures set 70000 --country DE")
    [(_, text), _] = await announced(h)
    assert "Germany passed its national minimum of 69,120 (70,000 signed)" in text
    await h.ok("coco", "signatures set 15200 --country GR")
    [(_, text), _] = await announced(h)
    assert "Greece passed its national minimum of 15,120" in text
    for code in ("FR 60000", "IT 60000", "MT 5000", "LU 5000"):
        country, count = code.split()
        await h.ok("coco", f"signatures set {count} --country {country}")
    await h.deliver()
    assert "countries" not in " ".join(await signatures(h).repo.reached())
    reply = await h.ok("coco", "signatures set 5000 --country CY")
    assert "Announced: Cyprus over its minimum, 7 countries over their minimum." in reply
    [(_, text), _] = await announced(h)
    assert "Cyprus passed its national minimum" in text
    assert "7 countries over their national minimum — the country requirement is met!" in text


async def test_signatures_shows_the_charts_numbers_in_text(h: Harness):
    await h.ok("coco", "signatures set 250000")
    await h.ok("coco", "signatures set 70000 --country DE")
    await h.ok("coco", "signatures set 30000 --country PL")
    await h.ok("coco", "signatures set 4000 --country MT")
    reply = await h.run("alice", "signatures")
    text = reply.body.plain()
    assert "Reclaim Your Face: 250,000 signatures — 25.0% of the 1,000,000 goal" in text
    assert "Countries over their national minimum: 1 of 7 — Germany (70,000 / 69,120)" in text
    assert "Closest below: Malta 4,000 / 4,320 (93%); Poland 30,000 / 38,160 (79%)" in text
    assert "Days left: 305 (collection ends Dec 31, 2026); needed: 2,460 a day" in text
    assert "Last count: Mar 2, 2026, 10:00\u202fAM (manual)" in text
    [chart] = reply.attachments
    image = Image.open(io.BytesIO(chart.data))
    assert image.format == "PNG" and image.width > 500
    assert text == (await h.run("alice", "signatures show")).body.plain()


async def test_signature_numbers_are_written_the_way_the_readers_language_writes_them(h: Harness):
    await h.ok("dora", "volunteer language de")
    assert "Recorded 1,234,567 signatures in total." in await h.ok(
        "coco", "signatures set 1234567"
    )
    await h.ok("coco", "signatures set 70000 --country DE")
    progress = (await h.run("dora", "signatures")).body.plain()
    assert "1.234.567" in progress and "1,234,567" not in progress
    assert "123,5\xa0%" in progress and "1.000.000" in progress
    assert "Deutschland (70.000 / 69.120)" in progress
    posts = await announced(h)  # the rooms are English
    assert any("69,120" in text for _, text in posts) and not any("69.120" in t for _, t in posts)


async def test_the_minimum_table_follows_the_registration_date(tmp_path: Path):
    h = app_at(tmp_path, campaign={"registered": "2022-06-01"})
    try:
        await h.ok("coco", "signatures set 68000 --country DE")
        assert "Germany passed its national minimum of 67,680" in (await announced(h))[0][1]
    finally:
        await h.app.stop()


async def test_only_coordinators_record_counts_and_bad_counts_are_refused(h: Harness):
    assert "is for coordinators" in await h.err("alice", "signatures set 100")
    assert "too small" in await h.err("coco", "signatures set -5")
    assert "not a whole number" in await h.err("coco", "signatures set many")
    assert "not an EU member state" in await h.err("coco", "signatures set 5 --country UK")


async def test_two_concurrent_sets_crossing_a_milestone_announce_it_once(
    tmp_path: Path, db_url: str
):
    bots = [app_at(tmp_path, url=db_url), app_at(tmp_path, url=db_url)]
    try:
        replies = await asyncio.gather(
            bots[0].ok("coco", "signatures set 12000"), bots[1].ok("coco", "signatures set 13000")
        )
        posts = [*await bots[0].deliver(), *await bots[1].deliver()]
        assert sorted(p.key for p in posts) == sorted(
            f"milestone:total:10000:{t}" for t in TARGETS
        )
        assert sum("Announced: 10,000" in reply for reply in replies) == 1, replies
    finally:
        for bot in bots:
            await bot.app.stop()


async def test_two_sets_waiting_on_one_milestone_row_tell_only_the_announcer(
    tmp_path: Path, pg_url: str
):
    """PostgreSQL, READ COMMITTED: both transactions are held at the milestone's row (a third
    transaction inserted it and has not committed), then let go together. One of them
    inserts it and says so; the other finds it taken and announces nothing."""
    bots = [app_at(tmp_path, url=pg_url), app_at(tmp_path, url=pg_url)]
    blocker_db = bots[0].app.db
    database = blocker_db.url.database
    try:
        with blocker_db.engine.connect() as blocker:
            held = blocker.begin()
            blocker.exec_driver_sql(
                "INSERT INTO reached_milestone (key, count, reached_at) "
                "VALUES ('total:10000', 10000, now())"
            )
            sets = [asyncio.ensure_future(bot.ok("coco", "signatures set 120000")) for bot in bots]
            await _until_waiting_on_locks(blocker_db, database, 2)
            held.rollback()
            replies = await asyncio.gather(*sets)
        told = [reply for reply in replies if "Announced:" in reply]
        assert len(told) == 1, replies
        assert "10,000" in told[0] and "100,000" in told[0]
        posts = [*await bots[0].deliver(), *await bots[1].deliver()]
        assert sorted(p.key for p in posts) == sorted(
            f"milestone:total:10000:{t}" for t in TARGETS
        )
    finally:
        for bot in bots:
            await bot.app.stop()


async def _until_waiting_on_locks(db: Any, database: str | None, sessions: int) -> None:
    """Poll the server until ``sessions`` backends of this database wait for a lock."""

    def waiting(conn: Any) -> int:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %(db)s "
            "AND wait_event_type = 'Lock'", {"db": database}).scalar())  # fmt: skip

    async with asyncio.timeout(30):
        # The server's own view: nothing in this process to wait on instead.
        while await db.read_connection(waiting) < sessions:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_weekly_digest_posts_once_per_period_and_once_after_downtime(
    tmp_path: Path, db_url: str
):
    clock = ManualClock(START)  # Monday 10:00 in Brussels
    h = app_at(tmp_path, clock, url=db_url)
    other = app_at(tmp_path, clock, url=db_url)
    try:
        await h.ok("coco", "signatures set 5000")
        first = await signatures(h).schedule_digest()
        assert first == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)  # next Monday 09:00 CET
        assert await signatures(other).schedule_digest() == first
        clock.set(first)
        assert await signatures(h).run_digest()
        assert not await signatures(other).run_digest(), "the other bot sees it done"
        assert not await signatures(h).run_digest()
        posts = [*await h.deliver(), *await other.deliver()]
        assert sorted(p.target for p in posts) == sorted(TARGETS)
        assert posts[0].body.plain().startswith("📊 Weekly progress\nReclaim Your Face: 5,000")
        clock.set(datetime(2026, 3, 30, 7, 30, tzinfo=UTC))  # three digests missed
        assert await signatures(h).run_digest()
        assert not await signatures(h).run_digest()
        late = await h.deliver()
        assert {p.key for p in late} == {f"digest:2026-03-30T07:00:00+00:00:{t}" for t in TARGETS}
        assert await signatures(h).schedule_digest() == datetime(2026, 4, 6, 7, 0, tzinfo=UTC)
    finally:
        await h.app.stop()
        await other.app.stop()


async def test_export_lists_my_counts_and_erase_anonymises_them(h: Harness):
    await h.ok("coco", "signatures set 1234")
    coco = h.ctx("coco").user
    exported = await signatures(h).export_data(coco)
    assert [(c["count"], c["source"]) for c in exported["signature_counts"]] == [(1234, "manual")]
    await signatures(h).erase_data(coco)
    assert await signatures(h).export_data(coco) == {"signature_counts": []}
    assert "1,234 signatures" in await h.ok("alice", "signatures")


# --- a polled source on a local HTTP server ---------------------------------------------


class Feed:
    """A local JSON feed whose answer the test changes."""

    def __init__(self) -> None:
        self.status = 200
        self.body: str = "{}"
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(status=self.status, text=self.body, content_type="application/json")

    def answer(self, body: str, status: int = 200) -> None:
        self.body, self.status = body, status


@pytest.fixture
async def feed() -> AsyncIterator[tuple[Feed, str]]:
    served = Feed()
    app = web.Application()
    app.router.add_get("/report", served.handle)
    app.router.add_get("/045/public/api/report/progression", served.handle)
    app.router.add_get("/045/public/api/report/map", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield served, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_polled_source_records_good_counts_and_ignores_bad_ones(
    tmp_path: Path, feed: tuple[Feed, str], caplog: pytest.LogCaptureFixture
):
    served, base = feed
    source = {"kind": "json", "url": f"{base}/report", "countries_path": "countries"}
    h = app_at(tmp_path, signatures={"source": source})
    cog = signatures(h)
    caplog.set_level(logging.WARNING)
    try:
        async with aiohttp.ClientSession() as http:
            served.answer('{"total": 120000, "countries": {"GR": 16000}}')
            assert await cog.poll_once(http) is not None
            texts = [text for _, text in await announced(h)]
            assert "• 100,000 signatures" in texts[0] and "Greece passed" in texts[0]
            bad = [
                ("server error", '{"total": 999999}', 500, "HTTP status 500"),
                ("garbage", "<html>oops</html>", 200, "not JSON"),
                ("non-numeric", '{"total": "many"}', 200, "not a whole number"),
                ("negative", '{"total": -3}', 200, "negative"),
                (
                    "drop",
                    '{"total": 50000, "countries": {}}',
                    200,
                    "the total fell from 120000 to 50000",
                ),
            ]
            for _, body, status, says in bad:
                caplog.clear()
                served.answer(body, status)
                assert await cog.poll_once(http) is None
                assert says in caplog.text
                assert base not in caplog.text, "no addresses (or tokens in them) in logs"
            progress = await cog.repo.progress()
            assert (progress.total, progress.countries) == (120000, {"EL": 16000})
            served.answer('{"total": 130000, "countries": {"GR": 16000}}')
            recorded = await cog.poll_once(http)
            assert recorded is not None and recorded.progress.total == 130000
            assert recorded.progress.source == "json"
            served.answer('{"total": 130000, "countries": {"GR": 16000}}')
            assert await cog.poll_once(http) is None, "an unchanged count is not stored again"
            assert await h.deliver() == []
    finally:
        await h.app.stop()
    assert served.hits == 8


async def test_an_unreachable_source_is_logged_and_the_last_count_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    source = {"kind": "eci_cocs", "url": "http://127.0.0.1:9/045"}
    h = app_at(tmp_path, signatures={"source": source})
    caplog.set_level(logging.WARNING)
    try:
        await h.ok("coco", "signatures set 500")
        async with aiohttp.ClientSession() as http:
            assert await signatures(h).poll_once(http) is None
        assert "unreachable: ClientConnectorError" in caplog.text
        assert (await signatures(h).repo.progress()).total == 500
    finally:
        await h.app.stop()


async def test_the_poller_runs_in_the_background_once_started(
    tmp_path: Path, feed: tuple[Feed, str]
):
    served, base = feed
    served.answer(
        '{"signatureCount": 26000, "signatureCountryCount": [{"countryCode": "GR", "count": 12}]}'
    )
    source = {"kind": "eci_cocs", "url": f"{base}/045", "poll_interval": "1h"}
    h = app_at(tmp_path, signatures={"source": source})
    cog = signatures(h)
    h.app.services.scheduler.start()
    try:
        await cog.start()
        for _ in range(200):
            if (await cog.repo.progress()).total is not None:
                break
            await asyncio.sleep(0.05)
        progress = await cog.repo.progress()
        assert (progress.total, progress.countries) == (26000, {"EL": 12})
    finally:
        await cog.stop()
        h.app.services.scheduler.stop()
        await h.app.stop()


async def test_a_matrix_only_bot_announces_milestones_in_its_rooms_by_default(tmp_path: Path):
    rooms = ["!campaign:example.org", "!team:example.org"]
    harness = Harness(
        make_app(tmp_path, ManualClock(START), matrix={"enabled": True, "rooms": rooms})
    )
    try:
        outbox = harness.app.services.outbox
        outbox.register("matrix", harness._deliver)
        await harness.ok("coco", "signatures set 10000")
        posted = [post.target for post in await harness.deliver()]
        assert posted == [f"matrix:{room}" for room in rooms]
    finally:
        await harness.app.stop()
