"""Two bot processes, one database, one Matrix account: they behave as one bot.

The active process is killed (SIGKILL) or paused past its lease (SIGSTOP); the standby takes
over, and every command sent meanwhile is answered exactly once, and acted on once.
"""

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.e2e.matrix_kit import BotProcess, body, in_reply_to, matrix_section, toml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTL = "3s"
TAKEOVER_BOUND = 30.0


def engine_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def pair(tmp_path, db_url, synapse, bot, room) -> tuple[BotProcess, BotProcess]:
    config = toml(
        {
            "bot": {"lease_ttl": TTL},
            "storage": {"url": engine_url(db_url)},
            "matrix": matrix_section(synapse, bot, rooms=[room], store_path=str(tmp_path / "s")),
        }
    )
    made = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        made.append(BotProcess(tmp_path / name, config, {}))
    return made[0], made[1]


def status(process: BotProcess) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(process.config_path), "status"],
        capture_output=True, text=True, env=process.env, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def sent_posts(db_url: str, prefix: str) -> list[bool]:
    """For each outbox row whose key starts with ``prefix``: whether it is marked sent."""
    engine = sa.create_engine(engine_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT sent_at IS NOT NULL FROM outbox WHERE key LIKE :p ORDER BY id"),
                {"p": prefix + "%"},
            )
            return [bool(sent) for (sent,) in rows]
    finally:
        engine.dispose()


def task_titles(db_url: str) -> list[str]:
    engine = sa.create_engine(engine_url(db_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT title FROM task ORDER BY id")).scalars())
    finally:
        engine.dispose()


async def answered_once(person, bot, commands: list[str]) -> None:
    for event_id in commands:
        await person.reply_to(event_id, bot.user_id, within=TAKEOVER_BOUND + 15)
    replies = [in_reply_to(e) for e in person.events if e.get("sender") == bot.user_id]
    assert {c: replies.count(c) for c in commands} == dict.fromkeys(commands, 1)


async def test_a_killed_active_process_is_replaced_and_nothing_is_lost_or_doubled(
    tmp_path, db_url, synapse, account, person
):
    bot = account("bot")
    carol = await person("carol")  # creator of the campaign room: a coordinator
    room = await carol.create_room(invite=[bot.user_id])
    one, two = pair(tmp_path, db_url, synapse, bot, room)
    try:
        await one.start()
        await two.start(ready="standby for matrix")
        before = await carol.send(room, "!task post other Before the crash")
        await carol.reply_to(before, bot.user_id)
        # Falls due while no process serves: the standby posts it, once.
        reminder = await carol.send(room, "!reminder add Phone bank in the gap --in 4s")
        await carol.reply_to(reminder, bot.user_id)
        one.signal(signal.SIGKILL)
        killed = time.monotonic()
        one.reap()
        during = [await carol.send(room, f"!task post other During the gap {i}") for i in range(5)]
        await carol.reply_to(during[0], bot.user_id, within=TAKEOVER_BOUND)
        assert time.monotonic() - killed < TAKEOVER_BOUND
        await answered_once(carol, bot, [before, reminder, *during])

        def is_post(e):
            return (
                e.get("sender") == bot.user_id
                and "Phone bank in the gap" in body(e)
                and not in_reply_to(e)
            )

        await carol.wait_for(is_post)
        assert sent_posts(db_url, "reminder:1:") == [True], "one outbox row, marked sent"
        await answered_once(carol, bot, [await carol.send(room, "!help")])  # later than a double
        assert len([e for e in carol.events if is_post(e)]) == 1
        assert task_titles(db_url) == ["Before the crash"] + [
            f"During the gap {i}" for i in range(5)
        ]
        assert "Traceback" not in two.output
    finally:
        one.stop()
        two.stop()


async def test_a_paused_active_process_never_acts_after_its_lease_moved(
    tmp_path, db_url, synapse, account, person
):
    bot = account("bot")
    carol = await person("carol")
    room = await carol.create_room(invite=[bot.user_id])
    one, two = pair(tmp_path, db_url, synapse, bot, room)
    try:
        await one.start()
        await two.start(ready="standby for matrix")
        one.signal(signal.SIGSTOP)  # its heartbeat stops; its lease runs out
        await two.logged("serving matrix")
        while_paused = [await carol.send(room, f"!task post other Paused {i}") for i in range(3)]
        await answered_once(carol, bot, while_paused)
        lost = one.count("no longer serving matrix")
        one.signal(signal.SIGCONT)
        await one.logged("no longer serving matrix", after=lost)
        after = [await carol.send(room, f"!task post other Resumed {i}") for i in range(3)]
        await answered_once(carol, bot, [*while_paused, *after])
        assert task_titles(db_url) == [f"Paused {i}" for i in range(3)] + [
            f"Resumed {i}" for i in range(3)
        ]
        assert one.count("serving matrix (lease token") == 1, "it never took Matrix back"
    finally:
        one.stop()
        two.stop()


async def test_a_clean_stop_hands_over_at_once(tmp_path, db_url, synapse, account, person):
    bot = account("bot")
    carol = await person("carol")
    room = await carol.create_room(invite=[bot.user_id])
    one, two = pair(tmp_path, db_url, synapse, bot, room)
    try:
        await one.start()
        await two.start(ready="standby for matrix")
        shown = status(one)
        assert "2 live processes" in shown, shown
        assert shown.count(": matrix, poller, retention, scheduler") == 1, shown
        assert shown.count(": standby") == 1, shown
        assert "matrix: lease 1, expires in" in shown, shown
        stopped = time.monotonic()
        assert one.stop() == 0
        await two.logged("serving matrix", within=5.0)
        assert time.monotonic() - stopped < 5.0
        await answered_once(carol, bot, [await carol.send(room, "!task post other After")])
    finally:
        one.stop()
        two.stop()


async def test_kills_in_the_middle_of_a_batch_leave_every_command_done_and_answered_once(
    tmp_path, db_url, synapse, account, person
):
    bot = account("bot")
    carol = await person("carol")
    room = await carol.create_room(invite=[bot.user_id])
    active, standby = pair(tmp_path, db_url, synapse, bot, room)
    processes = [active, standby]
    sent: list[str] = []
    titles: list[str] = []
    try:
        await active.start()
        await standby.start(ready="standby for matrix")
        for round_no in range(3):
            done = active.count("command task post")
            burst = [f"Burst {round_no}.{i}" for i in range(8)]
            titles += burst
            sent += [await carol.send(room, f"!task post other {title}") for title in burst]
            await active.logged("command task post", after=done + 2)  # mid-batch
            served = standby.count("serving matrix")
            active.signal(signal.SIGKILL)
            active.reap()
            await standby.logged("serving matrix", after=served)  # then a new standby
            folder = tmp_path / f"spare{round_no}"
            folder.mkdir()
            active, standby = standby, BotProcess(folder, standby.config_path.read_text(), {})
            processes.append(standby)
            await standby.start(ready="standby for matrix")
        await answered_once(carol, bot, sent)
        assert task_titles(db_url) == titles, "every command acted on once, none lost"
    finally:
        for process in processes:
            process.stop()


async def test_an_answer_kept_by_a_process_that_died_is_sent_by_the_next(
    tmp_path, synapse, account, person
):
    from bot import replies
    from bot.context import Reply
    from storage import migrations
    from storage.db import Database
    from storage.leases import Fence, LeaseRepo
    from tests.e2e.matrix_kit import running_bot
    from tests.test_leases import TTL, process

    bot = account("bot")
    carol = await person("carol")
    room = await carol.create_room(invite=[bot.user_id])
    command = await carol.send(room, "!task post other Done before the crash")
    # What a process leaves when it dies after the command's transaction, before answering.
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    migrations.upgrade(db)
    repo = LeaseRepo(db)
    dead = process("dead")
    now = datetime.now(UTC)
    await repo.tick(dead, {}, ["matrix"], now, TTL)
    kept = replies.dumps(
        Reply.text("Posted task #1: Done before the crash"), room=room, sender=carol.user_id,
        name="Carol", answers=command, reply_to=command, thread=None, mention=None,
    )  # fmt: skip
    assert await repo.claim_event(
        f"matrix:{command}", Fence("matrix", dead.id, 1), now, reply=kept
    )
    await repo.release(dead.id)
    db.close()
    async with running_bot(tmp_path, synapse, bot, rooms=[room]) as (app, _adapter):
        answer = await carol.reply_to(command, bot.user_id)
        assert "Posted task #1: Done before the crash" in body(answer)
        assert await app.leases.repo.unanswered("matrix:") == []
        await answered_once(carol, bot, [command, await carol.send(room, "!help")])
