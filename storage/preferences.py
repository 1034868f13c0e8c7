"""People's own language and time zone: how they want to be answered."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.domain import UserRef
from storage.acting import guard
from storage.db import Database, dialect_insert
from storage.models import Preference

_TABLE: sa.Table = Preference.__table__  # type: ignore[attr-defined]
# Asked for on every command, so built once.
_GET = sa.select(_TABLE.c.language, _TABLE.c.timezone).where(
    _TABLE.c.platform == sa.bindparam("platform"),
    _TABLE.c.external_id == sa.bindparam("ext"),
)


@dataclass(frozen=True, slots=True)
class Preferences:
    """A person's choices; None where they chose nothing."""

    language: str | None = None
    timezone: str | None = None


NONE = Preferences()


class PreferenceRepo:
    """Each person's language and time zone."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def of(self, user: UserRef) -> Preferences:
        """What ``user`` chose (nothing, if they never did)."""

        def tx(conn: Connection) -> Preferences:
            row = conn.execute(_GET, {"platform": user.platform, "ext": user.external_id}).first()
            return Preferences(row[0], row[1]) if row else NONE

        return await self.db.read_connection(tx)

    async def choose(
        self, user: UserRef, now: datetime, what: Literal["language", "timezone"],
        value: str | None,
    ) -> Preferences:  # fmt: skip
        """Set the person's language or time zone (None drops that choice); returns both."""

        def tx(conn: Connection) -> Preferences:
            guard(conn, [user])
            insert = dialect_insert(conn, _TABLE).values(
                platform=user.platform, external_id=user.external_id, updated_at=now,
                **{what: value},
            )  # fmt: skip
            conn.execute(insert.on_conflict_do_update(
                index_elements=[_TABLE.c.platform, _TABLE.c.external_id],
                set_={what: value, "updated_at": now},
            ))  # fmt: skip
            row = conn.execute(_GET, {"platform": user.platform, "ext": user.external_id}).first()
            return Preferences(row[0], row[1]) if row else NONE

        return await self.db.write_connection(tx)

    async def export(self, user: UserRef) -> dict[str, object]:
        """The person's choices, for ``privacy mydata``; empty if none."""
        found = await self.of(user)
        if found == NONE:
            return {}
        return {"language": found.language, "timezone": found.timezone}

    async def forget(self, user: UserRef) -> int:
        """Erase the person's choices; returns how many rows there were."""

        def tx(conn: Connection) -> int:
            result = conn.execute(
                _TABLE.delete().where(
                    _TABLE.c.platform == user.platform, _TABLE.c.external_id == user.external_id
                )
            )
            return int(result.rowcount or 0)

        return await self.db.write_connection(tx)
