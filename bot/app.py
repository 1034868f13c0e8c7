"""Assembles the bot from settings: database, services, core, cogs, outbox and adapters."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Sequence

from bot import loader
from bot.adapters import Adapter
from bot.clock import Clock, SystemClock
from bot.commands import Cog
from bot.config import Settings
from bot.context import Ctx, UserRef
from bot.core import BotCore
from bot.services import Services
from storage import migrations
from storage.db import Database

log = logging.getLogger(__name__)


class App:
    """One running bot: shared by every adapter, on one database."""

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
        if migrate:
            migrations.upgrade(self.db)
        self.services = Services.build(settings, self.clock, self.db)
        self.core = BotCore(
            self.services.registry,
            timezone=settings.campaign.timezone,
            prefix=settings.bot.command_prefix,
        )
        self.cogs: list[Cog] = loader.load(settings.bot.cogs, self.services)
        self.core.activity_hooks.append(self._touch)
        self.adapters: list[Adapter] = []
        self._started = False

    async def _touch(self, user: UserRef, ctx: Ctx) -> None:
        await self.services.volunteers.touch(user, ctx.now)

    def platform_adapters(self) -> list[Adapter]:
        """The adapters the settings enable (Discord, Matrix); empty means console."""
        adapters: list[Adapter] = []
        if self.settings.matrix.enabled:
            from bot.adapters.matrix_adapter import MatrixAdapter

            adapters.append(MatrixAdapter(self))
        if self.settings.discord.enabled:
            from bot.adapters.discord_adapter import DiscordAdapter

            adapters.append(DiscordAdapter(self))
        return adapters

    async def start(self, adapters: Sequence[Adapter]) -> None:
        """Start the scheduler, cogs, the outbox and the adapters."""
        self.adapters = list(adapters)
        self.services.scheduler.start()
        for cog in self.cogs:
            await cog.start()
        for adapter in self.adapters:
            await adapter.start()
        await self.services.outbox.start()
        self._started = True

    async def stop(self) -> None:
        """Stop everything started, in reverse order, then close the database."""
        if self._started:
            await self.services.outbox.stop()
            for adapter in reversed(self.adapters):
                with contextlib.suppress(Exception):
                    await adapter.stop()
            for cog in reversed(self.cogs):
                with contextlib.suppress(Exception):
                    await cog.stop()
            self.services.scheduler.stop()
            self._started = False
        self.db.close()

    async def run(self, adapters: Sequence[Adapter]) -> None:
        """Serve until an adapter ends by itself or SIGINT/SIGTERM arrives."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await self.start(adapters)
            waiters: list[asyncio.Task[object]] = [
                asyncio.create_task(_wait(a.wait_closed()), name=f"{a.platform}-wait")
                for a in adapters
            ]
            waiters.append(asyncio.create_task(_wait(stop.wait()), name="signal-wait"))
            done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception():
                    log.error("adapter ended with %s", type(task.exception()).__name__)
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)


async def _wait(awaitable: Awaitable[object]) -> object:
    return await awaitable
