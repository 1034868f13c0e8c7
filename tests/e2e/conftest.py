import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.discord_fake import FakeDiscord
from tests.e2e.discord_support import BotRunner
from tests.e2e.matrix_kit import Person
from tests.synapse import Account, Synapse, own_synapse, synapse

__all__ = ["own_synapse", "synapse"]

_names = itertools.count(1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """The wire-level Discord fake, on 127.0.0.1 for one test."""
    server = await FakeDiscord().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def runner(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[BotRunner]:
    """A bot against ``fake``, started by the test (``runner.start()``), stopped after it."""
    bot = BotRunner(fake, tmp_path)
    try:
        yield bot
    finally:
        await bot.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def account(synapse: Synapse) -> Callable[..., Account]:
    """Register a fresh user; names are unique within the session."""

    def make(name: str, displayname: str | None = None) -> Account:
        return synapse.register(f"{name}{next(_names)}", displayname=displayname or name.title())

    return make


@pytest.fixture
async def person(
    synapse: Synapse, account: Callable[..., Account], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Person]]]:
    """A registered user with a started client; closed at the end of the test.

    ``encrypted=True`` gives them an end-to-end encrypting client with its own store.
    """
    people: list[Person] = []

    async def make(
        name: str, displayname: str | None = None, *, encrypted: bool = False
    ) -> Person:
        who_account = account(name, displayname)
        store = tmp_path / "people" / who_account.localpart if encrypted else None
        who = await Person(synapse, who_account, store).start()
        people.append(who)
        return who

    yield make
    for who in people:
        await who.close()
