"""Small named values kept between runs: sync tokens, command-set hashes."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from storage.db import Database
from storage.leases import Fence, held
from storage.models import BotState


class StateRepo:
    """Get and set named strings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        """The stored value, or None."""

        def tx(session: Session) -> str | None:
            row = session.get(BotState, key)
            return row.value if row else None

        return await self.db.read(tx)

    async def set(
        self, key: str, value: str, now: datetime, *, fence: Fence | None = None
    ) -> bool:
        """Store a value, replacing the old one; returns whether it was stored.

        With a ``fence``, only while that lease is still held: a process that lost its duty
        cannot overwrite what the new holder keeps there (the Matrix sync position).
        """

        def tx(session: Session) -> bool:
            if fence is not None and not session.execute(sa.select(held(fence, now))).scalar():
                return False
            row = session.get(BotState, key) or BotState(key=key, value=value, updated_at=now)
            row.value = value
            row.updated_at = now
            session.add(row)
            return True

        return await self.db.write(tx)
