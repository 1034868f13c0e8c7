"""Database errors are told apart by driver exception and error code, and acted on."""

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from storage import migrations
from storage.db import RETRY_ATTEMPTS, AlreadyExists, Database, DatabaseUnavailable
from storage.faults import Fault, Kind, classify

STAMP = datetime(2026, 3, 2, tzinfo=UTC)


def sqlite_error(code: int, cls: type[sqlite3.Error] = sqlite3.OperationalError) -> sqlite3.Error:
    error = cls("text that must not matter")
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


def postgres_error(sqlstate: str) -> psycopg.Error:
    return psycopg.errors.lookup(sqlstate)("text that must not matter")


CASES = [
    # SQLite, by primary result code (extended codes fold onto it)
    (sqlite_error(sqlite3.SQLITE_BUSY), Kind.BUSY),
    (sqlite_error(sqlite3.SQLITE_BUSY_SNAPSHOT), Kind.BUSY),
    (sqlite_error(sqlite3.SQLITE_LOCKED), Kind.BUSY),
    (sqlite_error(sqlite3.SQLITE_READONLY), Kind.BROKEN),
    (sqlite_error(sqlite3.SQLITE_READONLY_DBMOVED), Kind.BROKEN),
    (sqlite_error(sqlite3.SQLITE_FULL), Kind.FULL),
    (sqlite_error(sqlite3.SQLITE_CORRUPT, sqlite3.DatabaseError), Kind.DAMAGED),
    (sqlite_error(sqlite3.SQLITE_NOTADB, sqlite3.DatabaseError), Kind.DAMAGED),
    (sqlite_error(sqlite3.SQLITE_CANTOPEN), Kind.BROKEN),
    (sqlite_error(sqlite3.SQLITE_IOERR_WRITE), Kind.BROKEN),
    (sqlite_error(sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.IntegrityError), Kind.DUPLICATE),
    (sqlite_error(sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.IntegrityError), Kind.DUPLICATE),
    (sqlite_error(sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, sqlite3.IntegrityError), None),
    (sqlite_error(sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.IntegrityError), None),
    (sqlite_error(sqlite3.SQLITE_ERROR), None),  # e.g. a syntax error: our bug, not a fault
    (sqlite3.OperationalError("database is locked"), None),  # no code: words alone mean nothing
    # PostgreSQL, by SQLSTATE
    (postgres_error("40001"), Kind.CONFLICT),  # serialization_failure
    (postgres_error("40P01"), Kind.CONFLICT),  # deadlock_detected
    (postgres_error("55P03"), Kind.BUSY),  # lock_not_available (lock_timeout)
    (postgres_error("57014"), Kind.BUSY),  # query_canceled (statement_timeout)
    (postgres_error("08006"), Kind.CONNECTION),  # connection_failure
    (postgres_error("08001"), Kind.CONNECTION),  # sqlclient_unable_to_establish_sqlconnection
    (postgres_error("57P01"), Kind.CONNECTION),  # admin_shutdown
    (postgres_error("53300"), Kind.CONNECTION),  # too_many_connections
    (postgres_error("28P01"), Kind.CONNECTION),  # invalid_password
    (postgres_error("3D000"), Kind.CONNECTION),  # invalid_catalog_name
    (postgres_error("23505"), Kind.DUPLICATE),  # unique_violation
    (postgres_error("23503"), None),  # foreign_key_violation: a bug, not a race
    (postgres_error("53100"), Kind.FULL),  # disk_full
    (postgres_error("53200"), Kind.BUSY),  # out_of_memory
    (postgres_error("25006"), Kind.BROKEN),  # read_only_sql_transaction
    (postgres_error("XX001"), Kind.DAMAGED),  # data_corrupted
    (postgres_error("XX002"), Kind.DAMAGED),  # index_corrupted
    (postgres_error("42P01"), None),  # undefined_table
    (psycopg.OperationalError("connection failed: Connection refused"), Kind.CONNECTION),
    (psycopg.InterfaceError("the connection is closed"), Kind.CONNECTION),
    (psycopg.ProgrammingError("deadlock detected"), None),  # words alone mean nothing
    (ValueError("serialization failure"), None),
]


@pytest.mark.parametrize(("error", "kind"), CASES, ids=lambda c: getattr(c, "sqlstate", None)
                         or getattr(c, "sqlite_errorcode", None) or type(c).__name__)  # fmt: skip
def test_classify_by_exception_and_code(error: BaseException, kind: Kind | None):
    base = sqlite3.Error if isinstance(error, sqlite3.Error) else psycopg.Error
    wrapped = DBAPIError.instance("SELECT 1", {}, error, base)  # as SQLAlchemy raises it
    for candidate in (error, wrapped):
        fault = classify(candidate)
        assert (fault.kind if fault else None) == kind
        if fault is not None:
            assert "must not matter" not in fault.reason


def test_only_races_and_waits_are_transient():
    transient = {kind for kind in Kind if Fault(kind, "").transient}
    assert transient == {Kind.BUSY, Kind.CONFLICT, Kind.CONNECTION}


def test_real_sqlite_errors_carry_the_codes_the_table_expects(tmp_path: Path):
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES ('x')")
        with pytest.raises(sqlite3.IntegrityError) as duplicate:
            conn.execute("INSERT INTO t VALUES ('x')")
    assert classify(duplicate.value) == Fault(Kind.DUPLICATE, "that exists already")
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as refused:
        readonly.execute("INSERT INTO t VALUES ('y')")
    readonly.close()
    assert classify(refused.value) == Fault(Kind.BROKEN, "the database file is read-only")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        waiter = sqlite3.connect(path, timeout=0.01)
        with pytest.raises(sqlite3.OperationalError) as busy:
            waiter.execute("INSERT INTO t VALUES ('z')")
        waiter.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    fault = classify(busy.value)
    assert fault is not None and fault.kind is Kind.BUSY
    (tmp_path / "junk.db").write_bytes(b"this is not a database file" * 200)
    with pytest.raises(sqlite3.DatabaseError) as junk:
        sqlite3.connect(tmp_path / "junk.db").execute("SELECT * FROM sqlite_master")
    fault = classify(junk.value)
    assert fault is not None and fault.kind is Kind.DAMAGED
    assert fault.code == "SQLITE_NOTADB"


def _migrated(url: str) -> Database:
    db = Database(url)
    migrations.upgrade(db)
    return db


def test_a_taken_unique_key_is_already_exists_and_nothing_is_retried(db_url: str):
    db = _migrated(db_url)
    runs = 0

    def insert(conn: sa.Connection) -> None:
        nonlocal runs
        runs += 1
        conn.execute(sa.text("INSERT INTO bot_state VALUES ('k', 'v', :t)"), {"t": STAMP})

    try:
        db.run_sync_connection(insert, write=True)
        with pytest.raises(AlreadyExists):
            db.run_sync_connection(insert, write=True)
        assert runs == 2
    finally:
        db.close()


def test_a_deadlock_on_postgresql_is_run_again_and_both_transactions_finish(pg_url: str):
    """Two transactions lock rows 1 and 2 in opposite orders; PostgreSQL picks a victim
    (40P01), which runs again once the other has committed."""
    db = _migrated(pg_url)
    db.run_sync_connection(lambda conn: conn.exec_driver_sql(
        "INSERT INTO bot_state VALUES ('a', '0', now()), ('b', '0', now())"), write=True)  # fmt: skip
    both_hold_one = threading.Barrier(2)
    runs = {"ab": 0, "ba": 0}
    errors: list[BaseException] = []

    def bump(conn: sa.Connection, key: str) -> None:
        conn.execute(sa.text("UPDATE bot_state SET value = (value::int + 1)::text "
                             "WHERE key = :k"), {"k": key})  # fmt: skip

    def crosswise(order: str) -> None:
        def tx(conn: sa.Connection) -> None:
            runs[order] += 1
            bump(conn, order[0])
            if runs[order] == 1:
                both_hold_one.wait(timeout=30)
            bump(conn, order[1])

        try:
            db.run_sync_connection(tx, write=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=crosswise, args=(order,)) for order in runs]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert sorted(runs.values()) == [1, 2], "exactly one of them was the victim, once"
        values = db.run_sync_connection(
            lambda conn: dict(conn.exec_driver_sql("SELECT key, value FROM bot_state").all()),
            write=False,
        )
        assert values == {"a": "2", "b": "2"}
    finally:
        db.close()


def test_a_transient_fault_that_never_passes_ends_after_a_bounded_number_of_runs(
    db_url: str,
):
    db = _migrated(db_url)
    runs = 0
    busy = sqlite_error(sqlite3.SQLITE_BUSY) if db.is_sqlite else postgres_error("40001")

    def always_loses(conn: sa.Connection) -> None:
        nonlocal runs
        runs += 1
        base = sqlite3.Error if db.is_sqlite else psycopg.Error
        raise DBAPIError.instance("UPDATE", {}, busy, base)

    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            db.run_sync_connection(always_loses, write=True)
        assert raised.value.busy
        assert 1 < runs <= RETRY_ATTEMPTS
    finally:
        db.close()
