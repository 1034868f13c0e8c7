"""The database: one engine, pragmas, and a worker thread that runs every transaction.

Repositories are the only code that opens sessions, and they do so through
:meth:`Database.read` and :meth:`Database.write`, which run a function in a transaction on
the database's own executor so no handler ever blocks the event loop. On SQLite a single
worker serialises this process's writes and ``BEGIN IMMEDIATE`` with a busy timeout queues
it behind other processes, so "database is locked" never reaches a user. That worker keeps
one connection open for its whole life, and the write-ahead log is folded into the file by
a thread of its own, so no commit waits for a checkpoint.

PostgreSQL is chosen by URL (``postgresql://user:password@host/database``, run by psycopg 3)
with a pool of connections and as many workers. On both, a transaction that failed for a
reason that passes (a lock held too long, a lost race, a dropped connection) runs again a
bounded number of times after a jittered pause; see :mod:`storage.faults` for how errors are
told apart.
"""

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from storage.acting import acting_people, guard
from storage.faults import AlreadyExists as AlreadyExists
from storage.faults import CannotConnect as CannotConnect
from storage.faults import DatabaseUnavailable as DatabaseUnavailable
from storage.faults import Fault, Kind, classify

log = logging.getLogger(__name__)
T = TypeVar("T")
CHECKPOINT_ATTEMPTS = 5
# Checkpoints run beside the writer (see Database._after_write): one at a time, at most
# this often, each copying what the log holds by then into the database file.
CHECKPOINT_EVERY_S = 0.02
# The log starts over only when a write begins with all of it copied, which a writer that
# never pauses does not allow; a log this long (64 MiB of 4 KiB pages) then gets one last
# checkpoint between two writes, so that it can.
WAL_LIMIT_FRAMES = 16384
# The log file keeps its largest size between restarts (rewriting it is cheaper than
# growing it again); past this it is cut back.
WAL_FILE_LIMIT_BYTES = 128 * 1024 * 1024
# A transaction that failed for a passing reason runs again at most this often in all, the
# pauses doubling from the first (each between half and one and a half times its length).
RETRY_ATTEMPTS = 8
RETRY_FIRST_DELAY_S = 0.02
RETRY_MAX_DELAY_S = 1.0
POSTGRES_CONNECT_TIMEOUT_S = 10
DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def database_url(url: str) -> URL:
    """Parse a storage URL; a bare ``postgresql://`` means psycopg 3.

    Raises CannotConnect for a URL that cannot be read or names no known database; the
    message never repeats the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise CannotConnect(
            "the storage URL cannot be read; it looks like sqlite:///path/to/file.db or "
            "postgresql://user:password@host/database"
        ) from None
    driver = DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


class Database:
    """Owns the engine and the executor that runs transactions."""

    def __init__(
        self, url: str, *, busy_timeout_ms: int = 5000, workers: int | None = None
    ) -> None:
        self.url = database_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self.busy_timeout_ms = busy_timeout_ms
        workers = workers or (1 if self.is_sqlite else 8)
        try:
            if self.is_sqlite:
                self.engine = create_engine(
                    self.url,
                    hide_parameters=True,
                    connect_args={
                        "check_same_thread": False,
                        "timeout": busy_timeout_ms / 1000,
                    },
                )
                event.listen(self.engine, "connect", self._on_sqlite_connect)
                event.listen(self.engine, "begin", self._on_sqlite_begin)
            elif self.is_postgres:
                self.engine = create_engine(
                    self.url,
                    hide_parameters=True,
                    pool_size=workers,
                    max_overflow=2,
                    connect_args={
                        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                        "application_name": "volunteer-bot",
                        # Waiting for a row lock is bounded like SQLite's busy timeout; past
                        # it the transaction fails with 55P03 and runs again.
                        "options": f"-c lock_timeout={int(busy_timeout_ms)}",
                        # No server-side prepared statements: their generic plans cannot see
                        # which (kind, language) branch of task next is empty, and walked the
                        # whole queue for it (6 ms a claim at 20,000 tasks, 2 ms planned anew).
                        "prepare_threshold": None,
                    },
                )
            else:
                self.engine = create_engine(self.url, hide_parameters=True)
        except (NoSuchModuleError, ImportError):
            raise CannotConnect(
                f"no database driver for {self.url.drivername!r} URLs; use sqlite:/// or "
                "postgresql://"
            ) from None
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="db",
            initializer=self._worker_started,
        )
        # The SQLite worker's own connection: a transaction then costs a BEGIN and a COMMIT,
        # not a pool checkout, a reset and a rollback-on-return.
        self._local = threading.local()
        self._kept: list[Connection] = []
        self._kept_lock = threading.Lock()
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpointing: Future[None] | None = None
        self._next_checkpoint = 0.0
        self._log_too_long = False
        self.wal_limit_frames = WAL_LIMIT_FRAMES
        # The first damage met in the SQLite file at run time: from then on writes are
        # refused with it (PostgreSQL tells each statement that meets damage itself).
        self.damage: Fault | None = None
        if self.path is not None:
            self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="db-checkpoint")

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
        # Checkpoints run in the background (see _after_write), not inside a COMMIT: with
        # synchronous = NORMAL a checkpoint syncs both files, which made the commit that
        # crossed 1,000 pages of log take ten times as long as the others.
        cur.execute("PRAGMA wal_autocheckpoint = 0")
        cur.execute(f"PRAGMA journal_size_limit = {WAL_FILE_LIMIT_BYTES}")
        cur.close()

    @staticmethod
    def _on_sqlite_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    def _worker_started(self) -> None:
        self._local.worker = True

    def _kept_connection(self) -> Connection | None:
        """The SQLite worker thread's own connection (opened on first use); None elsewhere."""
        if not self.is_sqlite or not getattr(self._local, "worker", False):
            return None
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect()
            self._local.conn = conn
            with self._kept_lock:
                self._kept.append(conn)
        return conn

    def _drop_kept(self, conn: Connection) -> None:
        self._local.conn = None
        with self._kept_lock:
            if conn in self._kept:
                self._kept.remove(conn)
        try:
            conn.close()
        except Exception:  # pragma: no cover - closing a broken connection
            log.warning("could not close a database connection", exc_info=True)

    @contextmanager
    def connection(self, *, write: bool) -> Iterator[Connection]:
        """A connection inside one transaction, committed on success (synchronous)."""
        kept = self._kept_connection()
        if kept is None:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
                with conn.begin():
                    yield conn
            return
        kept.execution_options(sqlite_begin="IMMEDIATE" if write else "DEFERRED")
        try:
            with kept.begin():
                yield kept
        except BaseException:
            if kept.invalidated or kept.in_transaction():
                self._drop_kept(kept)  # the next transaction starts on a fresh connection
            raise

    def run_sync(self, fn: Callable[[Session], T], *, write: bool) -> T:
        """Run ``fn`` in a transaction; one that fails for a passing reason runs again.

        Raises DatabaseUnavailable when it keeps failing or cannot succeed, CannotConnect
        when the server cannot be reached, AlreadyExists on a taken unique key.
        """

        def body(conn: Connection) -> T:
            with Session(bind=conn, expire_on_commit=False) as session:
                result = fn(session)
                session.flush()
                return result

        return self._retrying(body, write=write)

    def run_sync_connection(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """Like :meth:`run_sync`, handing ``fn`` the connection instead of an ORM session.

        For repositories that only run Core statements: a session costs more to set up
        than a short transaction costs to run.
        """
        return self._retrying(fn, write=write)

    def _retrying(self, body: Callable[[Connection], T], *, write: bool) -> T:
        if write and self.damage is not None:
            raise self.translate(self.damage)  # writing into a damaged file spreads the damage
        delay = RETRY_FIRST_DELAY_S
        deadline = time.monotonic() + max(1.0, self.busy_timeout_ms / 1000 * 3)
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            stage = "connect"
            try:
                with self.connection(write=write) as conn:
                    stage = "run"
                    result = body(conn)
                    stage = "commit"
            except Exception as exc:  # driver errors, wrapped by SQLAlchemy or raw (prepared)
                fault = classify(exc)
                if fault is None:
                    raise
                if fault.kind is Kind.DAMAGED and self.is_sqlite and self.damage is None:
                    self.damage = fault
                    log.error("the database is damaged (%s: %s); writes are refused until it "
                              "is restored from a backup", fault.code, fault.reason)  # fmt: skip
                # A connection lost while committing may have committed: never run twice.
                unsure = write and stage == "commit" and fault.kind is Kind.CONNECTION
                if (
                    not fault.transient
                    or unsure
                    or attempt == RETRY_ATTEMPTS
                    or time.monotonic() > deadline
                ):
                    raise self.translate(fault) from exc
                pause = delay * (0.5 + random.random())
                log.warning("database %s (%s); running again in %.2f s",
                            fault.kind.value, fault.reason, pause)  # fmt: skip
                time.sleep(pause)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)
            else:
                if write and self._checkpointer is not None:
                    self._after_write()
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def translate(self, fault: Fault) -> Exception:
        """The exception a classified fault is raised as."""
        if fault.kind is Kind.DUPLICATE:
            return AlreadyExists(fault.reason)
        if fault.kind is Kind.CONNECTION:
            return CannotConnect(self._scrub(f"cannot connect to {self._where()}: {fault.reason}"))
        return DatabaseUnavailable(fault.reason, kind=fault.kind, code=fault.code)

    def explain(self, exc: BaseException) -> BaseException:
        """``exc`` as DatabaseUnavailable, CannotConnect or AlreadyExists if it is one."""
        fault = classify(exc)
        return exc if fault is None else self.translate(fault)

    def _where(self) -> str:
        url = self.url
        if not self.is_postgres:
            return f"the {url.get_backend_name()} database"
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        user = f" as {url.username!r}" if url.username else ""
        return f"PostgreSQL database {url.database or ''!r} on {host}{port}{user}"

    def _scrub(self, text: str) -> str:
        """``text`` with the URL's password, should a driver ever repeat it, blotted out."""
        password = self.url.password
        if password:
            text = text.replace(str(password), "***")
        return text

    def _after_write(self) -> None:
        """Start a background checkpoint if none ran lately; let a long log start over."""
        if self._log_too_long:
            self._log_too_long = False
            # Queued behind this transaction, on the writer's own thread: nothing writes
            # while it copies the little the background checkpoint left, so the next write
            # finds the whole log copied and starts it over.
            with contextlib.suppress(RuntimeError):  # shutting down
                self._executor.submit(self._passive_checkpoint)
            return
        now = time.monotonic()
        running = self._checkpointing
        if now < self._next_checkpoint or (running is not None and not running.done()):
            return
        self._next_checkpoint = now + CHECKPOINT_EVERY_S
        assert self._checkpointer is not None
        # Shutting down refuses new work: closing the last connection checkpoints anyway.
        with contextlib.suppress(RuntimeError):
            self._checkpointing = self._checkpointer.submit(self._background_checkpoint)

    def _background_checkpoint(self) -> None:
        if self._passive_checkpoint() >= self.wal_limit_frames:
            self._log_too_long = True

    def _passive_checkpoint(self) -> int:
        """Copy what the log holds into the file without waiting for anyone; its length."""
        try:
            with self.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                cursor = raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
                try:
                    _, frames, _ = cursor.fetchone()
                finally:
                    cursor.close()
                return int(frames)
        except Exception as exc:  # the next write tries again
            log.warning("background checkpoint failed: %s", type(exc).__name__)
            return 0

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read-only transaction off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.run_sync(fn, write=False))

    async def write(self, fn: Callable[[Session], T]) -> T:
        """Run a read-write transaction off the event loop.

        Made on someone's behalf (:func:`storage.acting.acting_for`), it first checks that
        they are not being erased, and is refused with ErasurePending if they are.
        """
        loop = asyncio.get_running_loop()
        people = acting_people()
        if people:
            unchecked = fn

            def fn(session: Session) -> T:
                guard(session.connection(), people)
                return unchecked(session)

        rider = _take_rider()
        if rider is not None:
            inner = fn

            def fn(session: Session) -> T:
                rider(session.connection())
                return inner(session)

        return await loop.run_in_executor(self._executor, lambda: self.run_sync(fn, write=True))

    async def read_connection(self, fn: Callable[[Connection], T]) -> T:
        """Run a read-only transaction of Core statements off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self.run_sync_connection(fn, write=False)
        )

    async def write_connection(self, fn: Callable[[Connection], T]) -> T:
        """Run a read-write transaction of Core statements off the event loop (checked alike)."""
        loop = asyncio.get_running_loop()
        people = acting_people()
        if people:
            unchecked = fn

            def fn(conn: Connection) -> T:
                guard(conn, people)
                return unchecked(conn)

        rider = _take_rider()
        if rider is not None:
            inner = fn

            def fn(conn: Connection) -> T:
                rider(conn)
                return inner(conn)

        return await loop.run_in_executor(
            self._executor, lambda: self.run_sync_connection(fn, write=True)
        )

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
        except DBAPIError as exc:
            problem = self.explain(exc)
            if not isinstance(problem, DatabaseUnavailable):
                raise
            if not problem.busy:
                raise problem from exc
            log.warning("database is locked by another process at start; continuing")

    def close(self) -> None:
        """Stop the executor and close every connection."""
        self._executor.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.shutdown(wait=True)
        with self._kept_lock:
            kept, self._kept = self._kept, []
        for conn in kept:
            conn.close()
        self.engine.dispose()


@dataclass
class Rider:
    """A statement to run inside the next write transaction of one task (see :func:`ride`)."""

    task: "asyncio.Task[Any] | None"
    run: Callable[[Connection], None]
    done: bool = False


_RIDER: ContextVar[Rider | None] = ContextVar("storage_rider", default=None)


@contextmanager
def ride(run: Callable[[Connection], None]) -> Iterator[Rider]:
    """Within the block, run ``run`` in the first write transaction this task makes.

    It commits with that transaction or not at all, and may raise to abort it. Used to record
    that an incoming event was taken on in the same transaction as its first effect. Work that
    another task does for this one (a batch) does not carry it: check ``done`` afterwards.
    """
    rider = Rider(asyncio.current_task(), run)
    token = _RIDER.set(rider)
    try:
        yield rider
    finally:
        _RIDER.reset(token)


def _take_rider() -> Callable[[Connection], None] | None:
    rider = _RIDER.get()
    if rider is None or rider.done or rider.task is not asyncio.current_task():
        return None

    def once(conn: Connection) -> None:
        rider.run(conn)
        rider.done = True  # set only once the statement ran; a retried transaction runs it again

    return once


def dialect_insert(bind: Session | Connection, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing/do_update`` for this database's dialect."""
    dialect = bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect
    if dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    raise NotImplementedError(f"no upsert for {dialect.name}")
