"""Volunteer records and their roles."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import delete, func, literal
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from bot.domain import UserRef
from storage.db import Database, dialect_insert
from storage.models import Task, Volunteer, VolunteerRole

V = cast(sa.Table, Volunteer.__table__)  # type: ignore[attr-defined]
R = cast(sa.Table, VolunteerRole.__table__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Profile:
    """A volunteer as the cogs see it."""

    id: int
    user: UserRef
    roles: tuple[str, ...]
    languages: tuple[str, ...]
    country: str | None
    created_at: datetime
    last_active_at: datetime


# Statements asked for on every command are built once, with named parameters: building a
# SQLAlchemy statement (and loading ORM objects) costs far more than SQLite takes to run it.
_PROFILE = sa.select(
    V.c.id, V.c.platform, V.c.external_id, V.c.display_name, V.c.languages, V.c.country,
    V.c.created_at, V.c.last_active_at, R.c.role,
).select_from(V.outerjoin(R, R.c.volunteer_id == V.c.id)).where(
    V.c.platform == sa.bindparam("platform"), V.c.external_id == sa.bindparam("ext")
)  # fmt: skip
_ROLES = sa.select(R.c.volunteer_id, R.c.role).where(
    R.c.volunteer_id.in_(sa.bindparam("ids", expanding=True))
)
# (An UPDATE's own parameters may not share a name with one of the table's columns.)
_TOUCH = (
    V.update()
    .where(V.c.platform == sa.bindparam("who_platform"), V.c.external_id == sa.bindparam("who"))
    .values(last_active_at=sa.bindparam("now"), display_name=sa.bindparam("name"))
)


T = cast(sa.Table, Task.__table__)  # type: ignore[attr-defined]
_ERASE = V.delete().where(
    V.c.platform == sa.bindparam("who_platform"),
    V.c.external_id == sa.bindparam("who"),
    ~sa.exists().where(T.c.claimed_by == V.c.id, T.c.status == "claimed"),
)


def find_volunteer(session: Session, user: UserRef) -> Volunteer | None:
    """The row for a person, inside an existing transaction."""
    return session.exec(
        select(Volunteer).where(
            Volunteer.platform == user.platform, Volunteer.external_id == user.external_id
        )
    ).first()


def roles_of(session: Session, volunteer_id: int) -> tuple[str, ...]:
    """A volunteer's roles, sorted."""
    return _roles_of(session, [volunteer_id]).get(volunteer_id, ())


def _roles_of(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The sorted roles of several volunteers, in one query."""
    found: dict[int, list[str]] = {}
    if ids:
        for volunteer_id, role in session.connection().execute(_ROLES, {"ids": list(ids)}):
            found.setdefault(volunteer_id, []).append(role)
    return {volunteer_id: tuple(sorted(roles)) for volunteer_id, roles in found.items()}


def _profile(session: Session, row: Volunteer, roles: tuple[str, ...] | None = None) -> Profile:
    assert row.id is not None
    return Profile(
        id=row.id,
        user=UserRef(row.platform, row.external_id, row.display_name),
        roles=roles_of(session, row.id) if roles is None else roles,
        languages=tuple(row.language_list),
        country=row.country,
        created_at=row.created_at,
        last_active_at=row.last_active_at,
    )


def profile_of(conn: Connection, user: UserRef) -> Profile | None:
    """A profile with its roles in one query, inside an existing transaction."""
    rows = conn.execute(_PROFILE, {"platform": user.platform, "ext": user.external_id}).all()
    if not rows:
        return None
    first = rows[0]
    return Profile(
        id=first.id,
        user=UserRef(first.platform, first.external_id, first.display_name),
        roles=tuple(sorted(r.role for r in rows if r.role is not None)),
        languages=tuple(code for code in first.languages.split(",") if code),
        country=first.country,
        created_at=first.created_at,
        last_active_at=first.last_active_at,
    )


class VolunteerRepo:
    """Registration, roles, lookups, export and erasure of volunteers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def join(
        self,
        user: UserRef,
        role: str,
        *,
        languages: Sequence[str] | None,
        country: str | None,
        now: datetime,
    ) -> tuple[Profile, bool]:
        """Register ``user`` or add ``role``; returns the profile and whether the role is new.

        Languages and country replace the stored ones only when given. Two upserts, so the
        same person joining from several processes at once gets one record and no error.
        """
        languages_text = ",".join(languages) if languages is not None else ""

        def tx(conn: Connection) -> tuple[Profile, bool]:
            person = dialect_insert(conn, V).values(
                platform=user.platform, external_id=user.external_id, display_name=user.label,
                languages=languages_text, country=country, created_at=now, last_active_at=now,
            )  # fmt: skip
            changes: dict[str, Any] = {
                "display_name": person.excluded.display_name,
                "last_active_at": person.excluded.last_active_at,
            }
            if languages is not None:
                changes["languages"] = person.excluded.languages
            if country is not None:
                changes["country"] = person.excluded.country
            volunteer_id = conn.execute(
                person.on_conflict_do_update(
                    index_elements=[V.c.platform, V.c.external_id], set_=changes
                ).returning(V.c.id)
            ).scalar_one()
            new_role = (
                dialect_insert(conn, R)
                .values(volunteer_id=volunteer_id, role=role, since=now)
                .on_conflict_do_nothing(index_elements=[R.c.volunteer_id, R.c.role])
                .returning(R.c.role)
            )
            added = conn.execute(new_role).first() is not None
            profile = profile_of(conn, user)
            assert profile is not None
            return profile, added

        return await self.db.write_connection(tx)

    async def leave(self, user: UserRef, role: str) -> Profile | None:
        """Drop one role; returns the updated profile, or None if they did not have it."""

        def tx(session: Session) -> Profile | None:
            row = find_volunteer(session, user)
            if row is None or row.id is None:
                return None
            result = session.execute(
                delete(VolunteerRole).where(
                    col(VolunteerRole.volunteer_id) == row.id, col(VolunteerRole.role) == role
                )
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                return None
            return _profile(session, row)

        return await self.db.write(tx)

    async def profile(self, user: UserRef) -> Profile | None:
        """One volunteer, or None."""
        return await self.db.read_connection(lambda conn: profile_of(conn, user))

    async def search(
        self,
        *,
        platform: str | None = None,
        role: str | None = None,
        language: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Profile], int]:
        """Volunteers by role and language, most recently active first; and the total."""

        def tx(session: Session) -> tuple[list[Profile], int]:
            query = select(Volunteer)
            if platform:
                query = query.where(Volunteer.platform == platform)
            if role:
                query = query.where(
                    col(Volunteer.id).in_(
                        select(VolunteerRole.volunteer_id).where(VolunteerRole.role == role)
                    )
                )
            if language:
                padded = literal(",") + col(Volunteer.languages) + literal(",")
                query = query.where(padded.contains(f",{language},"))
            total = session.exec(select(func.count()).select_from(query.subquery())).one()
            rows = session.exec(
                query.order_by(col(Volunteer.last_active_at).desc()).limit(limit)
            ).all()
            roles = _roles_of(session, [row.id for row in rows if row.id is not None])
            return [_profile(session, row, roles.get(row.id or 0, ())) for row in rows], int(total)

        return await self.db.read(tx)

    async def touch(self, user: UserRef, now: datetime) -> None:
        """Record activity (for retention) and the current display name, if registered."""
        values = {"who_platform": user.platform, "who": user.external_id, "now": now,
                  "name": user.label}  # fmt: skip

        def tx(session: Session) -> None:
            session.connection().execute(_TOUCH, values)

        await self.db.write(tx)

    async def export(self, user: UserRef) -> dict[str, Any]:
        """The stored record, JSON-ready; empty if unknown."""
        found = await self.profile(user)
        if found is None:
            return {}
        return {
            "platform": found.user.platform,
            "id": found.user.external_id,
            "display_name": found.user.display_name,
            "roles": list(found.roles),
            "languages": list(found.languages),
            "country": found.country,
            "registered_at": found.created_at.isoformat(),
            "last_active_at": found.last_active_at.isoformat(),
        }

    async def erase(self, user: UserRef) -> bool:
        """Delete the record and its roles, unless they still hold a claimed task.

        Returns whether it is gone now. A record whose claims were not released first stays
        (deleting it would leave those tasks claimed by nobody): the erasure sweeps again.
        """

        def tx(conn: Connection) -> bool:
            conn.execute(_ERASE, {"who_platform": user.platform, "who": user.external_id})
            return profile_of(conn, user) is None

        return await self.db.write_connection(tx)

    async def inactive_since(self, cutoff: datetime) -> list[UserRef]:
        """People with no activity since ``cutoff`` (for the retention purge)."""

        def tx(session: Session) -> list[UserRef]:
            rows = session.exec(
                select(Volunteer.platform, Volunteer.external_id, Volunteer.display_name).where(
                    col(Volunteer.last_active_at) < cutoff
                )
            ).all()
            return [UserRef(platform, ext, name) for platform, ext, name in rows]

        return await self.db.read(tx)
