"""Ids of used sign-in links and ended sessions, so neither works a second time."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.db import Database
from storage.models import UsedToken

_T: sa.Table = UsedToken.__table__  # type: ignore[attr-defined]


def _insert(conn: Connection) -> sa.Insert:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(_T).on_conflict_do_nothing(index_elements=["id"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(_T).on_conflict_do_nothing(index_elements=["id"])


class UsedTokenRepo:
    """Records token ids once; the first to record one wins."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def use(self, token_id: str, kind: str, expires_at: datetime, now: datetime) -> bool:
        """Record ``token_id`` as used; False if it was already (a replay).

        Ids of tokens that have expired since are deleted in the same transaction.
        """

        def tx(conn: Connection) -> bool:
            conn.execute(sa.delete(_T).where(_T.c.expires_at < now))
            result = conn.execute(
                _insert(conn).values(id=token_id, kind=kind, expires_at=expires_at, used_at=now)
            )
            return bool(result.rowcount)

        return await self.db.write_connection(tx)

    async def is_used(self, token_id: str) -> bool:
        """Whether ``token_id`` was recorded."""

        def tx(conn: Connection) -> bool:
            return conn.execute(sa.select(_T.c.id).where(_T.c.id == token_id)).first() is not None

        return await self.db.read_connection(tx)
