"""Chaos: reminders fire once each although the process firing them is killed at random.

Two bot processes share one database and the Discord fake. Each round a coordinator sets
reminders due one to three seconds later, and the process holding the scheduler is killed
at a random moment among their firing times, then started again; the other one takes over
and fires what is left from the table. Afterwards every reminder must be done and on the
channel exactly once, on SQLite and PostgreSQL.
"""

import asyncio

import pytest
from sqlmodel import col, select

from storage.models import OutboxMessage, Reminder
from tests.chaos.discord_bots import Fleet, rounds

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

REMINDERS = 6  # per round


async def _round(fleet: Fleet, number: int) -> None:
    texts = [f"chaos-reminder-{number}-{n}-end" for n in range(REMINDERS)]
    for n, text in enumerate(texts):
        answer = await (
            await fleet.fake.slash(fleet.coordinator, "reminder add", message=text,
                                   **{"in": f"{1 + n * 2 // REMINDERS}s"})
        ).answer(30)  # fmt: skip
        assert "#" in answer.content, answer.content
    await asyncio.sleep(fleet.rng.uniform(0.0, 3.0))  # a random point among their firings
    await fleet.kill_and_restart("scheduler")

    async def all_done() -> bool:
        states = await _states(fleet, texts)
        return (
            len(states) == len(texts)
            and all(s == "done" for s in states.values())
            and all(await _sent(fleet, list(states)))
        )

    await fleet.wait(all_done, f"round {number}'s reminders")
    seen = fleet.contents()
    for text in texts:
        times = sum(count for content, count in seen.items() if text in content)
        if times != 1:
            fleet.violations.append(f"reminder {text!r} posted {times} times")


async def _states(fleet: Fleet, texts: list[str]) -> dict[int, str]:
    def tx(session: object) -> dict[int, str]:
        rows = session.exec(  # type: ignore[attr-defined]
            select(Reminder.id, Reminder.state).where(col(Reminder.message).in_(texts))
        ).all()
        return {int(rid): state for rid, state in rows}

    return await fleet.db.read(tx)


async def _sent(fleet: Fleet, ids: list[int]) -> list[bool]:
    def tx(session: object) -> list[bool]:
        return [
            all(
                sent is not None
                for sent in session.exec(  # type: ignore[attr-defined]
                    select(OutboxMessage.sent_at).where(
                        col(OutboxMessage.key).startswith(f"reminder:{rid}:")
                    )
                ).all()
            )
            for rid in ids
        ]

    return await fleet.db.read(tx)


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
    return fleet, fleet.verdict("reminders", done)


async def test_no_reminder_fires_twice_or_never_when_its_process_is_killed(tmp_path, db_url):
    fleet, line = await _run(tmp_path, db_url, rounds(2))
    assert not fleet.violations, f"{line}: {fleet.violations[:5]}"


@pytest.mark.sqlite_only  # the harness, not the engine, is under test
async def test_the_harness_catches_reminders_fired_again_at_every_start(tmp_path, db_url):
    fleet, line = await _run(tmp_path, db_url, rounds(2) + 2, broken="refire-at-start")
    assert any("times" in v and "posted 1 times" not in v for v in fleet.violations), line
