"""One bot process of the erasure chaos scenario, driven by JSON lines on standard input.

    python -m tests.chaos.erasure_child

On ``{"op": "open", "url": ...}`` it builds the real app on that shared database (every cog,
the real core); it answers one JSON line per command:

- ``{"op": "run", "user": "p1", "lines": ["task claim 3", ...], "coordinator": false}`` runs
  the lines as that person, one after another, and answers ``{"op": "ran", "replies": [...]}``;
- ``{"op": "hammer", "user": "p1", "lines": [...]}`` runs the lines as that person over and
  over (Claim buttons, ✋ reactions) until the next input line, then answers how many it ran;
- ``{"op": "forget", "user": "p1"}`` runs ``privacy forget --confirm`` and answers
  ``{"op": "forgot", "text": ...}``;
- ``{"op": "resume"}`` does what a starting process does first (finish every erasure left half
  done) and answers ``{"op": "resumed", "finished": N}``;
- ``{"op": "quit"}`` ends it.

``ERASURE_CHAOS_BROKEN=1`` (read here only, never by the bot), or ``{"op": "break"}``, swaps
in the erasure as it was
before it could not be raced: one pass of per-cog transactions, no marker, nothing refused,
the volunteer record deleted even while it holds a claim. The chaos test shows that the
scenario catches it.
"""

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bot.app import App
from bot.context import Actor, Ctx, Place
from bot.domain import UserRef
from bot.privacy import Erasure, PersonalData
from tests.harness import make_app

BROKEN = "ERASURE_CHAOS_BROKEN"
PLATFORM = "chaos"


def break_erasure() -> None:
    """The erasure from before: per-cog transactions and nothing holding the person off."""
    import storage.db
    import storage.tasks.claims
    from storage.models import Volunteer
    from storage.volunteers import VolunteerRepo

    def no_guard(conn: Any, people: Any) -> None:
        return None

    storage.db.guard = no_guard  # type: ignore[assignment]
    storage.tasks.claims.guard = no_guard  # type: ignore[assignment]

    async def erase(self: PersonalData, user: UserRef, ctx: Ctx | None = None) -> Erasure:
        for cog in self.holders():
            await cog.erase_data(user, ctx)
            await asyncio.sleep(0.02)  # a slower machine: other processes' commands get in
        await self.direct_chats.forget(user)
        dropped = await self.outbox.drop_for(user.platform, user.external_id)
        redacted = await self.outbox.redact(user.platform, user.external_id, "a former volunteer")
        return Erasure(dropped, redacted, await self.db.checkpoint())

    async def delete_volunteer(self: VolunteerRepo, user: UserRef) -> bool:
        table = Volunteer.__table__  # type: ignore[attr-defined]

        def tx(conn: Any) -> bool:
            gone = conn.execute(
                table.delete().where(
                    table.c.platform == user.platform, table.c.external_id == user.external_id
                )
            )
            return bool(gone.rowcount)

        return await self.db.write_connection(tx)

    PersonalData.erase = erase  # type: ignore[method-assign]
    VolunteerRepo.erase = delete_volunteer  # type: ignore[method-assign]


async def serve() -> None:
    loop = asyncio.get_running_loop()
    app: App | None = None

    def say(**message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def next_command() -> dict[str, Any] | None:
        text = await loop.run_in_executor(None, sys.stdin.readline)
        return json.loads(text) if text else None

    async def run(user: str, line: str, coordinator: bool = False) -> str:
        assert app is not None, "open a database first"
        who = UserRef(PLATFORM, user, user.title())
        ctx = Ctx(Actor(who, coordinator), Place(f"{PLATFORM}:room"), app.clock.now())
        reply = await app.core.handle_text(ctx, line, prefixes=("",))
        return reply.body.plain() if reply is not None else ""

    async def hammer(user: str, lines: list[str], stop: asyncio.Event) -> int:
        sent = 0
        while not stop.is_set():
            await run(user, lines[sent % len(lines)])
            sent += 1
        return sent

    try:
        say(op="ready", pid=os.getpid())
        while (command := await next_command()) is not None:
            op = command["op"]
            if op == "quit":
                return
            if op == "open":
                if app is not None:
                    await app.stop()
                app = make_app(Path("."), url=command["url"])
                say(op="opened")
            elif op == "close":
                if app is not None:
                    await app.stop()
                app = None
                say(op="closed")
            elif op == "run":
                coordinator = bool(command.get("coordinator"))
                replies = [await run(command["user"], line, coordinator)
                           for line in command["lines"]]  # fmt: skip
                say(op="ran", replies=replies)
            elif op == "hammer":  # until the next line, which says stop
                stop = asyncio.Event()
                work = asyncio.ensure_future(hammer(command["user"], command["lines"], stop))
                say(op="hammering")
                await next_command()
                stop.set()
                say(op="stopped", sent=await work)
            elif op == "forget":
                say(op="forgot", text=await run(command["user"], "privacy forget --confirm"))
            elif op == "break":  # from now on the old erasure (see break_erasure)
                break_erasure()
                say(op="broken")
            elif op == "resume":
                assert app is not None
                say(op="resumed", finished=await app.finish_erasures())
            else:
                raise ValueError(f"unknown command {op!r}")
    finally:
        if app is not None:
            await app.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if os.environ.get(BROKEN) == "1":
        break_erasure()
    asyncio.run(serve())
