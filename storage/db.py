"""The database: one engine, pragmas, and a worker thread that runs every transaction.

Repositories are the only code that opens sessions, and they do so through
:meth:`Database.read` and :meth:`Database.write`, which run a function in a transaction on
the database's own executor so no handler ever blocks the event loop. On SQLite a single
worker serialises this process's writes and ``BEGIN IMMEDIATE`` with a busy timeout queues
it behind other processes, so "database is locked" never reaches a user.
"""

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

log = logging.getLogger(__name__)
T = TypeVar("T")
CHECKPOINT_ATTEMPTS = 5


class DatabaseUnavailable(RuntimeError):
    """The database cannot be used (read-only, missing directory, locked for too long)."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


class Database:
    """Owns the engine and the executor that runs transactions."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int = 5000, workers: int | None = None
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.busy_timeout_ms = busy_timeout_ms
        if self.is_sqlite:
            self.engine = create_engine(
                self.url,
                hide_parameters=True,
                connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            )
            event.listen(self.engine, "connect", self._on_sqlite_connect)
            event.listen(self.engine, "begin", self._on_sqlite_begin)
        else:
            self.engine = create_engine(self.url, hide_parameters=True, pool_pre_ping=True)
        self._executor = ThreadPoolExecutor(
            max_workers=workers or (1 if self.is_sqlite else 8), thread_name_prefix="db"
        )

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @property
    def path(self) -> Path | None:
        """The SQLite file, if this is one."""
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            return Path(self.url.database)
        return None

    def _on_sqlite_connect(self, dbapi_conn: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA secure_delete = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        # A queue of a million tasks keeps its hot index pages in a 64 MiB cache.
        cur.execute("PRAGMA cache_size = -65536")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.close()

    @staticmethod
    def _on_sqlite_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    @contextmanager
    def session(self, *, write: bool) -> Iterator[Session]:
        """A session inside one transaction, committed on success (synchronous)."""
        with self.engine.connect() as conn:
            if self.is_sqlite and write:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    def run_sync(self, fn: Callable[[Session], T], *, write: bool) -> T:
        """Run ``fn`` in a transaction, retrying a few times if the database stays locked."""
        delay = 0.05
        deadline = time.monotonic() + max(1.0, self.busy_timeout_ms / 1000 * 3)
        while True:
            try:
                with self.session(write=write) as session:
                    return fn(session)
            except OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() > deadline:
                    raise explain(exc) from exc
                log.warning("database busy; retrying in %.2f s", delay)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read-only transaction off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.run_sync(fn, write=False))

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run a read-write transaction off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.run_sync(fn, write=True))

    async def checkpoint(self) -> bool:
        """Fold the SQLite write-ahead log into the file and empty it; True if it did.

        After an erasure the log may still hold page images from before it; a TRUNCATE
        checkpoint copies the current pages (with ``secure_delete`` zeroes where the data
        was) into the file and cuts the log to nothing. Other databases: nothing to do.
        """
        if not self.is_sqlite:
            return True
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._checkpoint_sync)

    def _checkpoint_sync(self) -> bool:
        for attempt in range(CHECKPOINT_ATTEMPTS):
            with self.engine.connect() as conn:
                # The raw connection: no BEGIN, a checkpoint cannot run inside a transaction.
                raw = conn.connection.dbapi_connection
                assert raw is not None
                cursor = raw.cursor()
                try:
                    busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    cursor.close()
            if not busy:
                return True
            time.sleep(0.05 * (attempt + 1))
        log.warning("the write-ahead log stayed busy; it is folded in at the next checkpoint")
        return False

    def check_writable(self) -> None:
        """Raise DatabaseUnavailable now if writes can never succeed (a read-only file).

        A database that is merely locked by another process passes: that is waited out later.
        """
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin() as transaction:
                    # A real write, undone: SQLite only notices a read-only file on writing.
                    conn.exec_driver_sql("CREATE TABLE write_probe (x INTEGER)")
                    transaction.rollback()
        except OperationalError as exc:
            problem = explain(exc)
            if not isinstance(problem, DatabaseUnavailable):
                raise
            if not problem.busy:
                raise problem from exc
            log.warning("database is locked by another process at start; continuing")

    def close(self) -> None:
        """Stop the executor and close every connection."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def explain(exc: OperationalError) -> Exception:
    """Turn a driver error about the file itself into DatabaseUnavailable; others pass."""
    text = str(exc.orig).lower()
    if "readonly" in text or "read-only" in text:
        return DatabaseUnavailable("the database file is read-only")
    if "unable to open" in text:
        return DatabaseUnavailable("the database file cannot be opened (does its folder exist?)")
    if _is_locked(exc):
        return DatabaseUnavailable("the database stayed locked by another process", busy=True)
    return exc


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` on this session's database."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    raise NotImplementedError(f"no upsert for {name}")
