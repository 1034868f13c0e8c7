"""Chaos: outbox delivery survives kill -9 at random points, on SQLite and PostgreSQL.

Two bot processes share one database and the Discord fake; each round queues posts and
kills the process delivering them at a random moment (before the first post, or after a
random number of them), then starts it again. Afterwards every post must be on the channel
exactly once: a retry after a kill between Discord taking a post and the row being marked
is absorbed by the post's nonce, as on Discord.
"""

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from bot.domain import Markup
from storage.db import Database
from storage.models import OutboxMessage
from storage.outbox import OutboxRepo
from tests.chaos.discord_bots import Fleet, rounds

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

POSTS = 15  # per round


async def _round(fleet: Fleet, number: int) -> None:
    repo = OutboxRepo(fleet.db)
    channel = f"discord:{fleet.fake.channel_id}"
    texts = [f"chaos post {number}.{n}" for n in range(POSTS)]
    for n, text in enumerate(texts):
        await repo.add(key=f"chaos:{number}:{n}", target=channel, now=datetime.now(UTC),
                       body=Markup.format("{text}", text=text))  # fmt: skip
    after = fleet.rng.randrange(POSTS)  # kill once this many have arrived
    await fleet.fake.wait_for(lambda: sum(fleet.contents()[t] > 0 for t in texts) >= after, 60)
    await fleet.kill_and_restart("discord")

    async def all_sent() -> bool:
        return not await _unsent(fleet, f"chaos:{number}:")

    await fleet.wait(all_sent, f"round {number}'s posts")
    seen = fleet.contents()
    for text in texts:
        if seen[text] != 1:
            fleet.violations.append(f"{text!r} posted {seen[text]} times")


async def _unsent(fleet: Fleet, prefix: str) -> list[str]:
    def tx(session: object) -> list[str]:
        return list(
            session.exec(  # type: ignore[attr-defined]
                select(OutboxMessage.key).where(
                    col(OutboxMessage.key).startswith(prefix), col(OutboxMessage.sent_at).is_(None)
                )
            ).all()
        )

    return await fleet.db.read(tx)


async def _leased(db: Database) -> int:
    def tx(session: object) -> int:
        rows = session.exec(  # type: ignore[attr-defined]
            select(OutboxMessage.id).where(
                col(OutboxMessage.sent_at).is_(None), col(OutboxMessage.lease_until).is_not(None)
            )
        ).all()
        return len(rows)

    return await db.read(tx)


async def _run(tmp_path, db_url, count: int, broken: str | None = None) -> tuple[Fleet, str]:
    fleet = await Fleet.start(tmp_path, db_url, broken=broken)
    done = 0
    try:
        for number in range(count):
            await _round(fleet, number)
            done += 1
            if broken and fleet.violations:
                break
    finally:
        codes = await fleet.stop()
    if not broken:
        assert codes == [0] * len(codes), fleet.logs()
        db = Database(db_url)
        try:
            if await _leased(db):
                fleet.violations.append("posts left leased after every process stopped cleanly")
        finally:
            db.close()
    return fleet, fleet.verdict("delivery", done)


async def test_no_post_is_lost_or_posted_twice_when_the_deliverer_is_killed(tmp_path, db_url):
    fleet, line = await _run(tmp_path, db_url, rounds(2))
    assert not fleet.violations, f"{line}: {fleet.violations[:5]}"


@pytest.mark.sqlite_only  # the harness, not the engine, is under test
async def test_the_harness_catches_an_outbox_that_marks_posts_sent_before_sending(
    tmp_path, db_url
):
    fleet, line = await _run(tmp_path, db_url, rounds(2) + 2, broken="mark-before-send")
    assert any("posted 0 times" in v for v in fleet.violations), line
