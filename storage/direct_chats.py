"""Direct chats the bot opened with people: one room per person, exported and erased."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from bot.domain import UserRef
from storage.acting import guard
from storage.db import Database
from storage.models import DirectChat

_TABLE: sa.Table = DirectChat.__table__  # type: ignore[attr-defined]


def _of(user: UserRef) -> sa.ColumnElement[bool]:
    return sa.and_(_TABLE.c.platform == user.platform, _TABLE.c.external_id == user.external_id)


class DirectChatRepo:
    """Which room is the bot's direct chat with whom."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def room_of(self, user: UserRef) -> str | None:
        """The direct chat's room id, or None when the bot has none with them."""

        def tx(session: Session) -> str | None:
            row = session.get(DirectChat, (user.platform, user.external_id))
            return row.room_id if row else None

        return await self.db.read(tx)

    async def remember(self, user: UserRef, room_id: str, now: datetime) -> None:
        """Record (or replace) the direct chat with ``user``.

        Raises ErasurePending while their erasure runs: then it is not kept.
        """

        def tx(session: Session) -> None:
            guard(session.connection(), [user])
            row = session.get(DirectChat, (user.platform, user.external_id))
            if row is None:
                row = DirectChat(platform=user.platform, external_id=user.external_id,
                                 room_id=room_id, created_at=now)  # fmt: skip
            row.room_id = room_id
            session.add(row)

        await self.db.write(tx)

    async def export(self, user: UserRef) -> list[dict[str, object]]:
        """The person's direct chats, for ``privacy mydata``."""

        def tx(session: Session) -> list[dict[str, object]]:
            rows = session.connection().execute(
                sa.select(_TABLE.c.room_id, _TABLE.c.created_at).where(_of(user))
            )
            return [{"room": room, "opened_at": at} for room, at in rows]

        return await self.db.read(tx)

    async def forget(self, user: UserRef) -> int:
        """Erase the person's direct chats; returns how many there were."""

        def tx(session: Session) -> int:
            result = session.connection().execute(_TABLE.delete().where(_of(user)))
            return int(result.rowcount or 0)

        return await self.db.write(tx)
