"""Assembles the bot from settings: database, services, core, cogs, outbox and adapters."""

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import loader
from bot.adapters import Adapter
from bot.audit import Auditor
from bot.clock import Clock, SystemClock
from bot.commands import Cog
from bot.config import ConfigError, Settings
from bot.context import Ctx
from bot.core import BotCore
from bot.domain import UserRef
from bot.leases import Leases
from bot.logs import describe_error
from bot.privacy import PersonalData
from bot.services import Services
from storage import backup, migrations
from storage.db import Database, DatabaseUnavailable
from storage.leases import LeaseRepo

if TYPE_CHECKING:
    from bot.web.server import WebServer

log = logging.getLogger(__name__)

TOUCH_EVERY = timedelta(hours=1)
LATE_START_RETRY = 5.0  # seconds
STOP_STEP_TIMEOUT = 30.0  # seconds one part may take to stop before the rest go on
# Platforms whose connection is a duty: one process at a time serves each.
LEASED_PLATFORMS = frozenset({"matrix", "discord"})


def _freeze_start_up_heap() -> None:
    """Keep what the process built to start (modules, specs, cogs) out of full collections.

    Those objects live as long as the process, yet every full garbage collection walks all
    of them: some 90,000 objects, 30-50 ms on a small machine, during which neither the event
    loop nor the database thread runs. Frozen once, a full collection walks only what came
    after. Done once per process; later apps (tests build many) leave it as it is.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class App:
    """One running bot: shared by every adapter, on one database."""

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.storage.url, busy_timeout_ms=settings.storage.busy_timeout_ms)
        if migrate:
            if self.db.path is not None:
                backup.check(self.db.path)  # a damaged file is refused before anything runs
            migrations.upgrade(self.db)
            self.db.check_writable()
        self.services = Services.build(settings, self.clock, self.db)
        self.core = BotCore(
            self.services.registry,
            timezone=settings.campaign.timezone,
            prefix=settings.bot.command_prefix,
        )
        self.core.readers = self.services.readers
        self.core.auditor = Auditor(self.services.audit)
        self.core.observer = self.services.metrics.command
        self.cogs: list[Cog] = loader.load(settings.bot.cogs, self.services)
        self._touched: dict[tuple[str, str, str], datetime] = {}
        self.core.activity_hooks.append(self._touch)
        self.adapters: list[Adapter] = []
        self.web: WebServer | None = None
        self.leases = Leases(
            LeaseRepo(self.db), self.clock, ttl=settings.bot.lease_ttl, on_failure=self._failed
        )
        self._failure: Exception | None = None
        self._started = False
        self._late_starts: list[asyncio.Task[None]] = []
        # Set when an adapter ends on its own (input ended, credentials refused): the bot stops.
        self.ended = asyncio.Event()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        _freeze_start_up_heap()

    async def _touch(self, user: UserRef, ctx: Ctx) -> None:
        """Record activity for retention, at most once an hour per person (days matter)."""
        key = (user.platform, user.external_id, user.display_name)
        last = self._touched.get(key)
        if last is not None and timedelta(0) <= ctx.now - last < TOUCH_EVERY:
            return
        await self.services.volunteers.touch(user, ctx.now)
        self._touched[key] = ctx.now

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
        """Start the scheduler, the outbox, then cogs and adapters, each under its duty's lease.

        Background work of a cog with a ``duty``, and the Matrix and Discord connections, run
        only while this process holds that duty's lease; a process alone on its database
        takes every lease in the first heartbeat, before this returns.
        """
        self.adapters = list(adapters)
        await self.finish_erasures()
        self.services.scheduler.start()
        for cog in self.cogs:
            if cog.duty is None:
                await self._start_cog(cog)
            else:
                self.leases.add(cog.duty, functools.partial(self._start_cog, cog), cog.stop)
        if self.settings.web.enabled and self.web is None:
            from bot.web.server import WebServer

            self.web = WebServer(
                self.settings, self.services, lambda: self.adapters, self.core.quiet
            )
            leases = self.leases
            self.web.duties = lambda: {name: leases.holds(name) for name in leases.duties}
            await self.web.start()
        for adapter in self.adapters:
            if adapter.platform in LEASED_PLATFORMS:
                self.leases.add(
                    adapter.platform,
                    functools.partial(self._start_adapter, adapter),
                    functools.partial(self._stop_adapter, adapter),
                )
            else:
                await self._start_adapter(adapter)
        await self.services.outbox.start()
        await self.leases.start()
        self._started = True
        if self._failure is not None:
            raise self._failure
        served = self.services.outbox.platforms | {
            a.platform for a in self.adapters if a.platform in LEASED_PLATFORMS
        }
        targets = self.settings.announce_targets
        if not targets:
            log.warning(
                "announcements go nowhere: no announce.targets and no Matrix rooms; set "
                'announce.targets = ["discord:<channel id>"] to announce on Discord'
            )
        for target in targets:
            if target.partition(":")[0] not in served:
                log.warning("announce target %s: no adapter for it runs; posts wait", target)

    async def finish_erasures(self) -> int:
        """Finish the erasures a killed or failed process left half done; how many."""
        s = self.services
        personal = PersonalData(s.registry, s.volunteers, s.outbox_repo, s.db,
                                s.outbox.renderers, s.direct_chats)  # fmt: skip
        try:
            return await personal.resume()
        except DatabaseUnavailable as exc:
            log.warning("unfinished erasures wait for the next start or retry: %s", exc)
            return 0

    async def _start_cog(self, cog: Cog) -> None:
        try:
            await cog.start()
        except DatabaseUnavailable as exc:
            if not exc.busy:
                raise
            log.warning("%s waits for the database to start: %s", type(cog).__name__, exc)
            self._late_starts.append(
                asyncio.create_task(self._start_later(cog), name=f"start-{cog.group}")
            )

    async def _start_adapter(self, adapter: Adapter) -> None:
        await adapter.start()
        self._watchers[adapter.platform] = asyncio.create_task(
            self._watch(adapter), name=f"{adapter.platform}-watch"
        )

    async def _stop_adapter(self, adapter: Adapter) -> None:
        watcher = self._watchers.pop(adapter.platform, None)
        if watcher is not None:
            watcher.cancel()
        self.services.outbox.unregister(adapter.platform)
        await adapter.stop()

    def _failed(self, duty: str, exc: Exception) -> None:
        """A duty could not start: the bot stops, and ``run`` raises what went wrong."""
        if not isinstance(exc, ConfigError | DatabaseUnavailable):
            log.error("%s could not start (%s)", duty, describe_error(exc), exc_info=exc)
        self._failure = self._failure or exc
        self.ended.set()

    async def _watch(self, adapter: Adapter) -> None:
        """Stop the bot when an adapter ends by itself (not when its lease was given up)."""
        await adapter.wait_closed()
        log.info("%s adapter ended", adapter.platform)
        self.ended.set()

    async def _start_later(self, cog: Cog) -> None:
        """Start a cog whose start found the database locked, once it is free."""
        while True:
            await asyncio.sleep(LATE_START_RETRY)
            try:
                await cog.start()
            except DatabaseUnavailable as exc:
                log.warning("%s still waits for the database: %s", type(cog).__name__, exc)
            else:
                log.info("%s started", type(cog).__name__)
                return

    async def stop(self) -> None:
        """Stop everything started, in reverse order, then close the database.

        A part that fails to stop is logged in one line, and the rest still stop.
        """
        for task in self._late_starts:
            task.cancel()
        self._late_starts.clear()
        if self.web is not None:
            await _stop_step("the web server", self.web.stop)
            self.web = None
        if self._started:
            for watcher in self._watchers.values():
                watcher.cancel()
            self._watchers.clear()
            # The post in flight finishes and every other leased post goes back; then leased
            # adapters and cogs stop, and their leases go back at once, so a standby takes
            # over without waiting for them to expire.
            await _stop_step("the outbox", self.services.outbox.stop)
            await _stop_step("the leases", self.leases.stop)
            for adapter in reversed(self.adapters):
                if adapter.platform not in LEASED_PLATFORMS:
                    await _stop_step(f"the {adapter.platform} adapter", adapter.stop)
            for cog in reversed(self.cogs):
                if cog.duty is None:
                    await _stop_step(f"the {type(cog).__name__} cog", cog.stop)
            await _stop_step("the scheduler", self.services.scheduler.stop)
            self._started = False
        await _stop_step("the database", self.db.close)

    async def run(self, adapters: Sequence[Adapter]) -> int:
        """Serve until an adapter ends by itself or SIGINT/SIGTERM arrives.

        Returns the exit status: 1 when an adapter stopped on a problem an operator must fix
        (it says which in the log), else 0.
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await self.start(adapters)
            waiters: list[asyncio.Task[object]] = [
                asyncio.create_task(_wait(self.ended.wait()), name="adapter-wait"),
                asyncio.create_task(_wait(stop.wait()), name="signal-wait"),
            ]
            done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    log.error("adapter ended with %s", describe_error(error))
            if self._failure is not None:
                raise self._failure
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return 1 if any(getattr(a, "failed", False) for a in adapters) else 0


async def _wait(awaitable: Awaitable[object]) -> object:
    return await awaitable


async def _stop_step(
    what: str, stop: Callable[[], object], *, within: float | None = None
) -> None:
    """Run one part's stop (plain or async); a failure is logged in one line, not raised.

    A stop that has not ended ``within`` seconds is given up on, so one stuck part (a
    connection that never closes) cannot keep the process from stopping.
    """
    within = STOP_STEP_TIMEOUT if within is None else within
    try:
        result = stop()
        if inspect.isawaitable(result):
            await asyncio.wait_for(_wait(result), within)
    except TimeoutError:
        log.warning("stopping %s took over %.0f s; stopping the rest", what, within)
    except Exception as exc:
        log.warning("stopping %s failed (%s); stopping the rest", what, describe_error(exc))
