"""An in-memory adapter for driving cogs through the core: a line in, a reply out."""

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import App
from bot.clock import ManualClock
from bot.config import Settings
from bot.context import Actor, Ctx, Place, Reply
from bot.domain import UserRef
from bot.outbox import Delivery

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Harness:
    """Runs text commands as named people and records what the outbox delivers."""

    platform = "test"

    def __init__(self, app: App, coordinators: Iterable[str] = ("coco",)) -> None:
        self.app = app
        self.clock: ManualClock = app.clock  # type: ignore[assignment]
        self.coordinators = set(coordinators)
        self.posts: list[Delivery] = []
        app.services.outbox.register(self.platform, self._deliver)

    async def _deliver(self, delivery: Delivery) -> None:
        self.posts.append(delivery)

    def ctx(self, name: str, *, target: str = "test:room") -> Ctx:
        user = UserRef(self.platform, name, name.title())
        return Ctx(Actor(user, name in self.coordinators), Place(target), self.clock.now())

    async def run(self, name: str, line: str, *, target: str = "test:room") -> Reply:
        reply = await self.app.core.handle_text(
            self.ctx(name, target=target), line, prefixes=("",)
        )
        assert reply is not None, line
        return reply

    async def text(self, name: str, line: str) -> str:
        return (await self.run(name, line)).body.plain()

    async def ok(self, name: str, line: str) -> str:
        reply = await self.run(name, line)
        assert not reply.is_error, f"{line!r} failed: {reply.body.plain()}"
        return reply.body.plain()

    async def err(self, name: str, line: str) -> str:
        reply = await self.run(name, line)
        assert reply.is_error, f"{line!r} should have failed: {reply.body.plain()}"
        assert reply.private, "errors are private"
        return reply.body.plain()

    async def deliver(self) -> list[Delivery]:
        """Run the outbox once; returns what it delivered just now."""
        before = len(self.posts)
        await self.app.services.outbox.run_once()
        return self.posts[before:]


def make_app(
    tmp_path: Path, clock: ManualClock | None = None, *, url: str | None = None, **sections: Any
) -> App:
    """An app with a manual clock, on ``url`` or else a real SQLite file in ``tmp_path``."""
    data: dict[str, Any] = {"storage": {"url": url or f"sqlite:///{tmp_path / 'bot.db'}"}}
    data.update(sections)
    return App(Settings(**data), clock=clock or ManualClock(START))
