import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.e2e.matrix_kit import Person
from tests.synapse import Account, Synapse, synapse

__all__ = ["synapse"]

_names = itertools.count(1)


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
    synapse: Synapse, account: Callable[..., Account]
) -> AsyncIterator[Callable[..., Awaitable[Person]]]:
    """A registered user with a started client; closed at the end of the test."""
    people: list[Person] = []

    async def make(name: str, displayname: str | None = None) -> Person:
        who = await Person(synapse, account(name, displayname)).start()
        people.append(who)
        return who

    yield make
    for who in people:
        await who.close()
