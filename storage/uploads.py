"""Files the bot uploaded for one person: recorded as sent, exported, erased with them."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from bot.domain import UserRef
from storage.db import Database
from storage.models import UploadedMedia

_TABLE: sa.Table = UploadedMedia.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file: its address, and the room and message that carried it."""

    id: int
    uri: str
    room_id: str
    event_id: str | None


def _of(user: UserRef) -> sa.ColumnElement[bool]:
    return sa.and_(_TABLE.c.platform == user.platform, _TABLE.c.external_id == user.external_id)


class UploadRepo:
    """Which files the bot uploaded for whom."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self, user: UserRef, uri: str, room_id: str, event_id: str | None, now: datetime
    ) -> int:
        """Remember a file uploaded for ``user`` (and the message that carried it); its id."""

        def tx(session: Session) -> int:
            row = session.connection().execute(
                _TABLE.insert()
                .values(
                    platform=user.platform, external_id=user.external_id, uri=uri,
                    room_id=room_id, event_id=event_id, uploaded_at=now,
                )
                .returning(_TABLE.c.id)
            ).one()  # fmt: skip
            return int(row[0])

        return await self.db.write(tx)

    async def carried(self, upload_id: int, event_id: str) -> None:
        """Record the message that carried an upload."""

        def tx(session: Session) -> None:
            session.connection().execute(
                _TABLE.update().where(_TABLE.c.id == upload_id).values(event_id=event_id)
            )

        await self.db.write(tx)

    async def of(self, user: UserRef) -> list[Upload]:
        """The person's uploaded files, oldest first."""

        def tx(session: Session) -> list[Upload]:
            c = _TABLE.c
            rows = session.connection().execute(
                sa.select(c.id, c.uri, c.room_id, c.event_id).where(_of(user)).order_by(c.id)
            )
            return [Upload(int(i), str(u), str(r), e) for i, u, r, e in rows]

        return await self.db.read(tx)

    async def export(self, user: UserRef) -> list[dict[str, object]]:
        """The person's uploaded files, for ``privacy mydata``."""

        def tx(session: Session) -> list[dict[str, object]]:
            c = _TABLE.c
            rows = session.connection().execute(
                sa.select(c.uri, c.room_id, c.event_id, c.uploaded_at)
                .where(_of(user))
                .order_by(c.id)
            )
            return [
                {"file": uri, "room": room, "message": event, "uploaded_at": at}
                for uri, room, event, at in rows
            ]

        return await self.db.read(tx)

    async def forget(self, user: UserRef) -> int:
        """Erase the record of the person's uploads; returns how many there were."""

        def tx(session: Session) -> int:
            result = session.connection().execute(_TABLE.delete().where(_of(user)))
            return int(result.rowcount or 0)

        return await self.db.write(tx)
