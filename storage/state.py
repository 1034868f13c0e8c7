"""Small named values kept between runs: sync tokens, command-set hashes."""

from datetime import datetime

from sqlmodel import Session

from storage.db import Database, dialect_insert
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

    async def set(self, key: str, value: str, now: datetime) -> None:
        """Store a value, replacing the old one."""

        def tx(session: Session) -> None:
            row = session.get(BotState, key) or BotState(key=key, value=value, updated_at=now)
            row.value = value
            row.updated_at = now
            session.add(row)

        await self.db.write(tx)

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
