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
