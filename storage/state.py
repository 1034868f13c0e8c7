"""Small named values kept between runs: sync tokens, command-set hashes."""

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from storage.db import Database, dialect_insert
from storage.leases import Fence, held
from storage.models import BotState

STATE = cast(sa.Table, BotState.__table__)  # type: ignore[attr-defined]


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

        One statement, so two first writes of a key do not race. With a ``fence``, only while
        that lease is still held: a process that lost its duty cannot overwrite what the new
        holder keeps there (the Matrix sync position).
        """

        def tx(conn: Connection) -> bool:
            if fence is not None and not conn.execute(sa.select(held(fence, now))).scalar():
                return False
            insert = dialect_insert(conn, STATE).values(key=key, value=value, updated_at=now)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[STATE.c.key],
                    set_={
                        "value": insert.excluded.value,
                        "updated_at": insert.excluded.updated_at,
                    },
                )
            )
            return True

        return await self.db.write_connection(tx)

    async def get_or_create(self, key: str, value: str, now: datetime) -> str:
        """The stored value; ``value`` is stored first if there is none (one winner)."""

        def tx(session: Session) -> str:
            session.execute(
                dialect_insert(session, BotState.__table__)  # type: ignore[attr-defined]
                .values(key=key, value=value, updated_at=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = session.get(BotState, key)
            assert row is not None
            return row.value

        return await self.db.write(tx)
