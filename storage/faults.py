"""What a database error means, told by the driver's exception and error code, never its text.

SQLite errors are ``sqlite3`` exceptions carrying ``sqlite_errorcode``; PostgreSQL errors are
psycopg exceptions carrying a SQLSTATE. :func:`classify` maps both onto a few kinds that decide
what happens next: wait and run the transaction again, say "already", or stop and say why.
"""

import sqlite3
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class Kind(Enum):
    """What kind of trouble, and so what to do about it."""

    BUSY = "busy"  # another transaction holds what we need: wait, then run again
    CONFLICT = "conflict"  # this transaction lost a race (serialisation, deadlock): run again
    CONNECTION = "connection"  # no connection to the server, or it went away
    DUPLICATE = "duplicate"  # a unique key is taken already
    FULL = "full"  # no room left to write: nothing was saved until space is freed
    DAMAGED = "damaged"  # the file or its data is corrupt: restore it from a backup
    BROKEN = "broken"  # the database cannot take writes: read-only, no permission


TRANSIENT = frozenset({Kind.BUSY, Kind.CONFLICT, Kind.CONNECTION})


@dataclass(frozen=True, slots=True)
class Fault:
    """A classified error: its kind, a reason for a person, and the driver's code (for logs)."""

    kind: Kind
    reason: str
    code: str = field(default="", compare=False)

    @property
    def transient(self) -> bool:
        """Whether running the transaction again may succeed."""
        return self.kind in TRANSIENT


class DatabaseUnavailable(RuntimeError):
    """The database cannot be used (read-only, full, damaged, locked for too long)."""

    def __init__(
        self, message: str, *, busy: bool = False, kind: Kind | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.kind = kind or (Kind.BUSY if busy else Kind.BROKEN)
        self.busy = self.kind in (Kind.BUSY, Kind.CONFLICT)
        self.code = code  # the driver's error code, for the log (never shown in chat)

    @property
    def detail(self) -> str:
        """What is wrong, in words written for people (never the driver's text)."""
        return str(self)


class CannotConnect(DatabaseUnavailable):
    """The database cannot be reached as configured: no server, refused login, no database."""


class SchemaTooNew(DatabaseUnavailable):
    """The database was upgraded by a newer version of the bot than this one."""


class AlreadyExists(Exception):
    """A row with this unique key exists already (someone else wrote it first)."""


# By primary result code (the low byte of the extended code).
_SQLITE: dict[int, tuple[Kind, str]] = {
    sqlite3.SQLITE_BUSY: (Kind.BUSY, "the database stayed locked by another process"),
    sqlite3.SQLITE_LOCKED: (Kind.BUSY, "the database stayed locked by another connection"),
    sqlite3.SQLITE_READONLY: (Kind.BROKEN, "the database file is read-only"),
    sqlite3.SQLITE_CANTOPEN: (
        Kind.BROKEN,
        "the database file cannot be opened (does its folder exist?)",
    ),
    sqlite3.SQLITE_FULL: (Kind.FULL, "the disk holding the database file is full"),
    sqlite3.SQLITE_CORRUPT: (Kind.DAMAGED, "the database file is damaged"),
    sqlite3.SQLITE_NOTADB: (Kind.DAMAGED, "the database file is not a SQLite database"),
    sqlite3.SQLITE_IOERR: (Kind.BROKEN, "the database file cannot be read or written"),
    sqlite3.SQLITE_PERM: (Kind.BROKEN, "the database file may not be written"),
    sqlite3.SQLITE_NOMEM: (Kind.BROKEN, "SQLite ran out of memory"),
}
_SQLITE_DUPLICATE = frozenset(
    {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
)

# By SQLSTATE; what is not here is looked up by its class (the first two characters).
_POSTGRES: dict[str, tuple[Kind, str]] = {
    "40001": (Kind.CONFLICT, "a concurrent transaction got in the way"),  # serialization_failure
    "40P01": (Kind.CONFLICT, "two transactions waited on each other"),  # deadlock_detected
    "55P03": (Kind.BUSY, "a lock stayed held by another transaction"),  # lock_not_available
    # query_canceled: our own lock or statement timeout, or an operator's cancel; in every
    # case the transaction did nothing, so it may run again.
    "57014": (Kind.BUSY, "a statement took too long and was cancelled"),
    "23505": (Kind.DUPLICATE, "that exists already"),  # unique_violation
    "25006": (Kind.BROKEN, "the database server accepts no writes (a standby?)"),
    "53100": (Kind.FULL, "the database server's disk is full"),  # disk_full
    "53300": (Kind.CONNECTION, "the database server has no connection to spare"),
    "57P01": (Kind.CONNECTION, "the database server is shutting down"),  # admin_shutdown
    "57P02": (Kind.CONNECTION, "the database server restarted"),  # crash_shutdown
    "57P03": (Kind.CONNECTION, "the database server is starting up"),  # cannot_connect_now
    "3D000": (Kind.CONNECTION, "the database does not exist"),  # invalid_catalog_name
    "28000": (Kind.CONNECTION, "the database server refused the login"),
    "28P01": (Kind.CONNECTION, "the database server refused the password"),
    "XX001": (Kind.DAMAGED, "the database's data is damaged"),  # data_corrupted
    "XX002": (Kind.DAMAGED, "a database index is damaged"),  # index_corrupted
}
_POSTGRES_CLASSES: dict[str, tuple[Kind, str]] = {
    "08": (Kind.CONNECTION, "the connection to the database server failed"),
    "53": (Kind.BUSY, "the database server is short of resources"),
    "58": (Kind.BROKEN, "the database server cannot read or write its files"),
}


def classify(exc: BaseException) -> Fault | None:
    """The fault behind a driver error (wrapped by SQLAlchemy or not); None if unknown."""
    if isinstance(exc, PoolTimeout):
        return Fault(Kind.BUSY, "no database connection came free in time")
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(original, sqlite3.Error):
        return _sqlite(original)
    psycopg = sys.modules.get("psycopg")  # never imported: not a PostgreSQL error
    if psycopg is not None and isinstance(original, psycopg.Error):
        return _postgres(original, psycopg)
    return None


def _sqlite(exc: sqlite3.Error) -> Fault | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    name = getattr(exc, "sqlite_errorname", None) or f"SQLite error {code}"
    if code in _SQLITE_DUPLICATE:
        return Fault(Kind.DUPLICATE, "that exists already", name)
    found = _SQLITE.get(code & 0xFF)
    return Fault(*found, name) if found else None


def _postgres(exc: BaseException, psycopg: Any) -> Fault | None:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        found = _POSTGRES.get(state) or _POSTGRES_CLASSES.get(state[:2])
        return Fault(*found, f"SQLSTATE {state}") if found else None
    # No SQLSTATE: libpq failed to connect, or lost the connection, before a server answered.
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return Fault(Kind.CONNECTION, driver_reason(exc))
    return None


def driver_reason(exc: BaseException) -> str:
    """The driver's own words for a failed connection, on one line.

    libpq says ``connection to server at "h", port 5432 failed: FATAL:  <why>``; only
    the why is kept (the caller names the server). Used for display, never to decide.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "the connection to the database server failed"
    why = lines[0].rpartition(" failed: ")[2] or lines[0]
    for prefix in ("connection failed: ", "FATAL: "):
        why = why.removeprefix(prefix).strip()
    return why
