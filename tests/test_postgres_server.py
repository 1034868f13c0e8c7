"""The test run's own PostgreSQL server: reachable only on 127.0.0.1, one database per test."""

import socket
from pathlib import Path

from tests.postgres import Postgres


def test_the_server_listens_on_loopback_only_and_wants_a_password(postgres: Postgres):
    with postgres.admin() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
    import psycopg

    wrong = postgres.url().replace(postgres.password, "not-the-password")
    try:
        psycopg.connect(wrong, connect_timeout=5).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("a wrong password was accepted")


def test_the_server_is_a_process_of_its_own_and_never_root(postgres: Postgres):
    assert postgres.process.poll() is None
    assert Path(f"/proc/{postgres.process.pid}").stat().st_uid != 0
    with socket.create_connection((postgres.host, postgres.port), timeout=5):
        pass


def test_each_test_gets_an_empty_database_of_its_own(pg_url: str, postgres: Postgres):
    name = pg_url.rsplit("/", 1)[1]
    assert name != "postgres"
    with postgres.admin(name) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE scratch (x int)")
    other = postgres.create_database()
    try:
        with postgres.admin(other) as conn:
            assert conn.execute("SELECT to_regclass('scratch')").fetchone() == (None,)
    finally:
        postgres.drop_database(other)
