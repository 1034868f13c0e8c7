"""One session of a claim race: an OS process of its own, driven a step at a time.

    python -m tests.race_child DATABASE_URL

It reads one JSON command per line and answers one JSON line per command:
``{"op": "claim", "task": 3, "user": "v1", "max_open": 1}`` runs ``TaskRepo.claim`` and
answers ``{"op": "done", "outcome": "taken", "holder": "V0", ...}``; ``{"op": "quit"}``
ends it. An implementation may stop at a named point between its steps: it answers
``{"op": "paused", "at": "read"}`` and goes on at ``{"op": "resume"}``, which is how a race
puts every session's read before any session's write.

``{"op": "unclaim", "task": 3, "user": "v1"}`` gives a task back. Commands may be sent
ahead of their answers (a burst); they run one after another, each answered once it has
committed.

``RACE_CLAIM`` (read here only, never by the bot) swaps in a deliberately broken claim, to
show that the races catch it: ``read-then-write`` reads in one transaction and writes in
another; ``ack-first`` answers "it is yours" before it writes, as a claim queued in memory
would, so a process killed after the answer loses the claim it acknowledged.
"""

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bot.domain import TaskKind, UserRef
from bot.domain.tasks import Change, Outcome, check_claim, due_cutoff
from storage.db import Database
from storage.tasks import Result, TaskRepo
from storage.tasks import statements as q
from storage.tasks.tx import Tx, claimer, open_count, record, require, view

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLACE = "race:room"
IMPLEMENTATION = "RACE_CLAIM"
Pause = Callable[[str], Awaitable[None]]


def person(name: str) -> UserRef:
    return UserRef("race", name, name.upper())


class ReadThenWrite(TaskRepo):
    """The claim the conditional update exists to prevent: look, decide, then write.

    The read is its own transaction, so on SQLite too nothing holds the write lock between
    the look and the write; ``pause`` lets a race put every session's read first.
    """

    def __init__(self, db: Database, pause: Pause) -> None:
        super().__init__(db)
        self.pause = pause

    async def claim(
        self, task_id: int, user: UserRef, *, place: str, now: datetime, max_open: int
    ) -> Result:
        def look(conn: sa.Connection) -> Any:
            tx = Tx(conn, None)
            me = claimer(tx, user)
            task = view(tx, task_id)
            return me, task, open_count(tx, me.id) if me else 0

        me, task, held = await self.db.read_connection(look)
        if me is None or task is None:
            return Result(Outcome.NOT_REGISTERED if me is None else Outcome.NOT_FOUND)
        outcome = check_claim(task, me.id, me.roles, held, max_open)
        if outcome is not Outcome.OK:
            return Result(outcome, task, held)
        await self.pause("read")

        def write(conn: sa.Connection) -> Result:
            tx = Tx(conn, None)
            conn.execute(
                sa.update(q.T).where(q.T.c.id == task_id).values(q.CLAIM_VALUES),
                {"vid": me.id, "now": now, "place": place, "due_limit": due_cutoff(now)},
            )
            record(tx, task_id, Change.CLAIMED, now, actor=me.user)
            return Result(Outcome.OK, require(tx, task_id), held + 1)

        return await self.db.write_connection(write)


class AckFirst(TaskRepo):
    """A claim that says "yours" once it has looked, and writes a moment later."""

    WRITE_AFTER_S = 0.5

    def __init__(self, db: Database, tell: Callable[[Result], None]) -> None:
        super().__init__(db)
        self.tell = tell

    async def claim(
        self, task_id: int, user: UserRef, *, place: str, now: datetime, max_open: int
    ) -> Result:
        def look(conn: sa.Connection) -> Any:
            tx = Tx(conn, None)
            me = claimer(tx, user)
            task = view(tx, task_id)
            return me, task, open_count(tx, me.id) if me else 0

        me, task, held = await self.db.read_connection(look)
        if me is None or task is None:
            return Result(Outcome.NOT_REGISTERED if me is None else Outcome.NOT_FOUND)
        outcome = check_claim(task, me.id, me.roles, held, max_open)
        if outcome is not Outcome.OK:
            return Result(outcome, task, held)
        told = Result(Outcome.OK, task, held + 1)
        self.tell(told)
        await asyncio.sleep(self.WRITE_AFTER_S)
        await super().claim(task_id, user, place=place, now=now, max_open=max_open)
        return told


def answer(result: Result) -> dict[str, Any]:
    """What a session was told, as the cog would tell it."""
    task = result.task
    holder = task.claimer.label if task is not None and task.claimer is not None else None
    return {"op": "done", "outcome": result.outcome.value, "task": task.id if task else None,
            "holder": holder, "open_claims": result.open_claims}  # fmt: skip


async def serve(url: str) -> None:
    loop = asyncio.get_running_loop()

    async def line() -> dict[str, Any]:
        text = await loop.run_in_executor(None, sys.stdin.readline)
        if not text:
            raise SystemExit(0)
        command: dict[str, Any] = json.loads(text)
        return command

    def say(**message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def pause(at: str) -> None:
        say(op="paused", at=at)
        command = await line()
        assert command["op"] == "resume", command

    told: list[Result] = []

    def tell(result: Result) -> None:
        told.append(result)
        say(**answer(result))

    db = Database(url)
    repo: TaskRepo
    if os.environ.get(IMPLEMENTATION) == "read-then-write":
        repo = ReadThenWrite(db, pause)
    elif os.environ.get(IMPLEMENTATION) == "ack-first":
        repo = AckFirst(db, tell)
    else:
        repo = TaskRepo(db)
    try:
        say(op="ready", pid=os.getpid())
        while True:
            command = await line()
            if command["op"] == "quit":
                return
            user = person(command["user"])
            if command["op"] == "claim":
                result = await repo.claim(command["task"], user, place=PLACE, now=NOW,
                                          max_open=command["max_open"])  # fmt: skip
            elif command["op"] == "next":
                result = await repo.claim_next(user, place=PLACE, now=NOW,
                                               max_open=command["max_open"],
                                               kind=TaskKind.OTHER)  # fmt: skip
            elif command["op"] == "unclaim":
                result = await repo.unclaim(command["task"], user, now=NOW)
            else:
                raise ValueError(f"unknown step {command['op']!r}")
            if told and told[-1] is result:
                told.clear()  # answered already, before it was written
            else:
                say(**answer(result))
    finally:
        db.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(sys.argv[1]))
