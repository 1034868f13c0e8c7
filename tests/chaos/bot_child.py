"""``python -m bot`` for the chaos suites, with a deliberately broken variant patched in.

``CHAOS_BREAK`` exists only here, so the companion tests can show that a harness catches a
wrong implementation; the bot itself has no such switch.

- ``mark-before-send``: the outbox marks every post it leases as sent before sending it.
- ``refire-at-start``: every reminder that ever fired fires again when the schedule is
  rebuilt (at start or takeover), under a new key, as if the table were not checked.
"""

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import update
from sqlmodel import Session, col

import storage.reminders as reminders
from bot.__main__ import main
from storage.models import OutboxMessage
from storage.outbox import Leased, OutboxRepo, enqueue


def _mark_before_send() -> None:
    lease_due = OutboxRepo.lease_due

    async def leased_and_marked(
        self: OutboxRepo, platforms: Sequence[str], now: datetime, *, lease: timedelta,
        limit: int = 20,
    ) -> list[Leased]:  # fmt: skip
        rows = await lease_due(self, platforms, now, lease=lease, limit=limit)

        def tx(session: Session) -> None:
            ids = [row.id for row in rows]
            session.execute(
                update(OutboxMessage).where(col(OutboxMessage.id).in_(ids)).values(sent_at=now)
            )

        if rows:
            await self.db.write(tx)
        return rows

    OutboxRepo.lease_due = leased_and_marked  # type: ignore[method-assign]


def _refire_at_start() -> None:
    table = reminders._TABLE

    async def schedule(self: reminders.ReminderRepo) -> list[tuple[int, datetime]]:
        def tx(session: Session) -> list[tuple[int, datetime]]:
            at = sa.func.coalesce(table.c.next_run_at, table.c.last_fired_at)
            rows = session.execute(sa.select(table.c.id, at).where(at.is_not(None))).all()
            return [(int(rid), when) for rid, when in rows]

        return await self.db.read(tx)

    def fire_one(
        session: Session, row: Any, now: datetime,
        decide: Callable[[reminders.ReminderView], reminders.Advance],
    ) -> reminders.Fired:  # fmt: skip
        run_at = row.next_run_at or row.last_fired_at
        if run_at is None or run_at > now:
            return reminders.Fired(row.id, False, run_at)
        advance = decide(dataclasses.replace(reminders._view(row), next_run_at=run_at))
        session.execute(
            sa.update(table).where(table.c.id == row.id).values(
                next_run_at=advance.next_run_at, state=advance.state, last_fired_at=now
            )
        )  # fmt: skip
        post = advance.post
        if post is not None:
            post = dataclasses.replace(post, key=f"{post.key}:{now.isoformat()}")
        posted = post is not None and enqueue(session.connection(), post, now)
        return reminders.Fired(row.id, posted, advance.next_run_at)

    reminders.ReminderRepo.schedule = schedule  # type: ignore[method-assign]
    reminders._fire_one = fire_one


BREAKS = {"mark-before-send": _mark_before_send, "refire-at-start": _refire_at_start}

if __name__ == "__main__":
    broken = os.environ.get("CHAOS_BREAK")
    if broken:
        BREAKS[broken]()
    sys.exit(main(sys.argv[1:]))
