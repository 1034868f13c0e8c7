"""On whose behalf a write is made, and the check that refuses it while they are being erased.

The core runs each command inside :func:`acting_for` its caller (and anyone it names); every
write transaction that task makes then starts with :func:`guard`, which raises
:class:`ErasurePending` if one of them has an ``erasure_pending`` row (see
:mod:`storage.erasure`). Nothing here depends on the database module, which calls it.
"""

import asyncio
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.domain import UserRef
from storage.models import PendingErasure

P = cast(sa.Table, PendingErasure.__table__)  # type: ignore[attr-defined]
# The first key of the two-key advisory locks taken for erasures: b"eras" as an integer.
LOCK_SPACE = 0x65726173
Person = tuple[str, str]
# Built once: the check runs in every write transaction of a command.
_PENDING = sa.select(P.c.platform).where(
    P.c.platform == sa.bindparam("platform"), P.c.external_id == sa.bindparam("ext")
)
_SHARED = sa.select(sa.func.pg_advisory_xact_lock_shared(LOCK_SPACE, sa.bindparam("key")))


class ErasurePending(Exception):
    """A write for a person whose erasure has begun and not finished; nothing was written."""

    def __init__(self, person: Person) -> None:
        super().__init__("an erasure is pending for a person this change is about")
        self.person = person

    def __repr__(self) -> str:
        return "ErasurePending()"

    def about(self, user: UserRef) -> bool:
        """Whether it is ``user``'s erasure."""
        return self.person == (user.platform, user.external_id)


def person_of(user: UserRef) -> Person:
    """A person's identity as stored: (platform, external id)."""
    return (user.platform, user.external_id)


def lock_key(person: Person) -> int:
    """The person's advisory lock key (a signed 32-bit number; two people may share one)."""
    digest = hashlib.blake2b("\0".join(person).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def guard(conn: Connection, people: Iterable[UserRef | Person]) -> None:
    """Raise ErasurePending, inside this write transaction, if any of ``people`` is being erased.

    On PostgreSQL it first takes each person's shared advisory lock until the transaction
    ends (in key order, so two guards never wait on each other).
    """
    wanted = sorted({p if isinstance(p, tuple) else person_of(p) for p in people})
    if not wanted:
        return
    if conn.dialect.name == "postgresql":
        for key in sorted({lock_key(p) for p in wanted}):
            conn.execute(_SHARED, {"key": key})
    for platform, ext in wanted:
        if conn.execute(_PENDING, {"platform": platform, "ext": ext}).first() is not None:
            raise ErasurePending((platform, ext))


_ACTING: ContextVar[tuple["asyncio.Task[object] | None", tuple[Person, ...]] | None] = ContextVar(
    "storage_acting_for", default=None
)


@contextmanager
def acting_for(users: Iterable[UserRef]) -> Iterator[None]:
    """Within the block, this task's write transactions are on behalf of ``users``.

    Each one checks (see :func:`guard`) that none of them is being erased, and is refused
    if one is. Work another task does for this one (a batch of claims) checks on its own.
    """
    people = tuple(sorted({person_of(u) for u in users}))
    token = _ACTING.set((asyncio.current_task(), people))
    try:
        yield
    finally:
        _ACTING.reset(token)


@contextmanager
def unguarded() -> Iterator[None]:
    """Within the block, writes are on nobody's behalf (the erasure's own, a batch's)."""
    token = _ACTING.set(None)
    try:
        yield
    finally:
        _ACTING.reset(token)


def acting_people() -> tuple[Person, ...] | None:
    """Whom this task's writes are for, if anyone (set by :func:`acting_for`)."""
    acting = _ACTING.get()
    if acting is None or acting[0] is not asyncio.current_task() or not acting[1]:
        return None
    return acting[1]
