"""The homeserver dies or stops between a command and its answer: answered once, run once."""

import asyncio
import logging
import sqlite3

import pytest

from tests.e2e.matrix_kit import Person, body, is_reply, running_bot

pytestmark = pytest.mark.e2e

SEND_FAILED = ("a reply could not be sent", "an event could not be handled")


class LogSeen(logging.Handler):
    """An asyncio event set when a log line containing one of ``texts`` is emitted."""

    def __init__(self, texts: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.texts = texts
        self.seen = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if any(text in record.getMessage() for text in self.texts):
            self._loop.call_soon_threadsafe(self.seen.set)


def tasks_titled(db, title: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM task WHERE title = ?", (title,)).fetchone()[0]


async def test_an_answer_lost_to_a_killed_homeserver_is_sent_once_it_is_back_and_runs_once(
    tmp_path, own_synapse
):
    server = own_synapse
    bot = server.register("bot")
    alice = await Person(server, server.register("alice")).start()
    room = await alice.create_room(invite=[bot.user_id])
    watcher = LogSeen(SEND_FAILED)
    logging.getLogger("bot").addHandler(watcher)
    try:
        async with running_bot(
            tmp_path, server, bot, rooms=[room], coordinators=[alice.user_id]
        ) as (app, _adapter):
            original = app.core.handle_text

            async def run_then_drop(ctx, line, **kwargs):
                reply = await original(ctx, line, **kwargs)
                if "Flyers" in line:
                    # The command has run and written; the homeserver goes before the answer.
                    server.kill()
                return reply

            app.core.handle_text = run_then_drop
            command = await alice.send(room, "!task post other Flyers")
            await asyncio.wait_for(watcher.seen.wait(), 60)
            await asyncio.to_thread(server.restart)
            answer = await alice.reply_to(command, bot.user_id, within=60)
            # A later command is answered after the resent one: nothing else is in flight.
            await alice.ask(room, "!task list", bot.user_id)
    finally:
        logging.getLogger("bot").removeHandler(watcher)
        await alice.close()
    assert "Flyers" in body(answer) and "#1" in body(answer), body(answer)
    answers = [e for e in alice.events if is_reply(e, command, bot.user_id)]
    assert len(answers) == 1, f"answered {len(answers)} times"
    assert tasks_titled(tmp_path / "bot.db", "Flyers") == 1, "the command ran once"


async def test_a_command_done_by_a_process_that_died_before_keeping_its_answer_is_not_rerun(
    tmp_path, synapse, account, person
):
    """The sender is told the answer was lost; the command does not run a second time."""
    from datetime import UTC, datetime

    from bot.adapters.matrix_adapter import ANSWER_LOST_NOTE, NEXT_BATCH_KEY
    from storage import migrations
    from storage.db import Database
    from storage.leases import Fence, LeaseRepo
    from storage.state import StateRepo
    from tests.test_leases import TTL, process

    bot = account("bot")
    carol = await person("carol")
    room = await carol.create_room(invite=[bot.user_id])
    synapse.request("POST", f"/_matrix/client/v3/join/{room}", {}, token=bot.access_token)
    await carol.sees_join(room, bot.user_id)
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    migrations.upgrade(db)
    # The bot had synced up to here (a sync position is the server's, not the account's).
    await StateRepo(db).set(NEXT_BATCH_KEY, str(carol.since), datetime.now(UTC))
    command = await carol.send(room, "!task post other Posted before the crash")
    # What a process leaves when it dies after the command's transaction, before keeping
    # the answer: the event taken on, no answer kept.
    repo = LeaseRepo(db)
    dead = process("dead")
    now = datetime.now(UTC)
    tokens = await repo.tick(dead, {}, ["matrix"], now, TTL)
    assert await repo.claim_event(f"matrix:{command}", Fence("matrix", dead.id, tokens["matrix"]),
                                  now)  # fmt: skip
    await repo.release(dead.id)
    db.close()
    async with running_bot(tmp_path, synapse, bot, rooms=[room], coordinators=[carol.user_id]) as (
        app,
        _adapter,
    ):
        answer = await carol.reply_to(command, bot.user_id)
        later = await carol.ask(room, "!task list", bot.user_id)
        assert await app.leases.repo.unanswered("matrix:") == []
    assert body(answer).startswith(ANSWER_LOST_NOTE.split(":")[0]), body(answer)
    assert len([e for e in carol.events if is_reply(e, command, bot.user_id)]) == 1
    assert tasks_titled(tmp_path / "bot.db", "Posted before the crash") == 0, "not run again"
    assert "Posted before the crash" not in body(later)
