"""Which process serves which duty when several run on one database.

Every process with the same configuration registers the same duties: the Matrix sync, the
Discord gateway, the scheduler, the signature poller, retention. A heartbeat renews the
leases this process holds and takes those that are free or expired (``storage.leases``);
a duty runs only while its lease is held, and the others wait as standbys.

A holder stops a duty on its own clock before the lease can expire in the database: it
counts from the moment it *sent* its last successful renewal, less a margin, so a process
that was paused or cut off from the database stops before anyone else may start. Writes that
must not happen twice are fenced with the lease's token as well (:meth:`Leases.fence`).
"""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta

from bot import __version__
from bot.clock import Clock
from bot.logs import describe_error
from storage.db import Rider
from storage.leases import AlreadyTakenOn, Fence, LeaseRepo, ProcessInfo

log = logging.getLogger(__name__)

# Claims of incoming events are kept this long (an event is never delivered again later).
CLAIM_MEMORY = timedelta(days=2)
FORGET_EVERY = 3600.0


@dataclass
class Duty:
    """Work only one process may do at a time, with how to start and stop it here."""

    name: str
    starts: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


class Leases:
    """Holds, renews and gives back this process's leases, starting and stopping duties."""

    def __init__(
        self,
        repo: LeaseRepo,
        clock: Clock,
        *,
        ttl: timedelta,
        on_failure: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self.repo = repo
        # Told when a duty fails to start (refused credentials): the owner decides what follows.
        self.on_failure = on_failure
        self.clock = clock
        self.ttl = ttl
        self.every = max(ttl.total_seconds() / 10, 0.1)
        # Stop this long before the lease could expire: two heartbeats' worth.
        self.margin = 2 * self.every
        self.process = ProcessInfo(
            id=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            started_at=clock.now(),
        )
        self.duties: dict[str, Duty] = {}
        self._tokens: dict[str, int] = {}
        self._deadline: dict[str, float] = {}
        self._running: set[str] = set()
        self._waiting: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._last_forget = 0.0

    def __repr__(self) -> str:
        return f"Leases(duties={sorted(self.duties)}, held={sorted(self._tokens)})"

    def add(
        self,
        name: str,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        """Run ``start`` when this process gets the lease on ``name``, ``stop`` when it ends."""
        duty = self.duties.setdefault(name, Duty(name))
        duty.starts.append(start)
        duty.stops.append(stop)

    # -- what the duties ask -----------------------------------------------------------------

    def holds(self, name: str) -> bool:
        """Whether this process may serve ``name`` right now, by its own clock."""
        return name in self._running and time.monotonic() < self._deadline.get(name, 0.0)

    def fence(self, name: str) -> Fence | None:
        """The lease on ``name`` for a fenced write, or None when it is not held."""
        if not self.holds(name):
            return None
        return Fence(name, self.process.id, self._tokens[name])

    async def claim_event(self, name: str, key: str, *, reply: str | None = None) -> bool:
        """Take on one incoming event for duty ``name``: True for exactly one process."""
        fence = self.fence(name)
        if fence is None:
            return False
        return await self.repo.claim_event(key, fence, self.clock.now(), reply=reply)

    def claim_with_first_write(self, name: str, key: str) -> AbstractContextManager[Rider]:
        """Within the block, the first write also takes the event on (or fails if taken).

        Raises :class:`storage.leases.AlreadyTakenOn` from that write when the event was taken
        on already; when ``name`` is not held, nothing can be taken on at all.
        """
        fence = self.fence(name)
        if fence is None:
            raise AlreadyTakenOn(key)
        return self.repo.claim_with_first_write(key, fence, self.clock.now())

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Take what is free now (so a lone process starts everything at once), then beat."""
        await self.beat()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="leases")

    async def stop(self) -> None:
        """Stop every duty, give back every lease at once, and leave the register."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            for name in list(self._running):
                await self._stop_duty(name, "stopping")
            self._tokens.clear()
        try:
            await self.repo.leave(self.process.id)
        except Exception as exc:
            log.warning("leases not given back (%s); they expire in %s",
                        describe_error(exc), self.ttl)  # fmt: skip

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await asyncio.wait_for(self.beat(), timeout=max(self.every * 3, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease heartbeat failed (%s)", describe_error(exc))
            await self._expire_overdue()

    async def beat(self) -> None:
        """One heartbeat: renew, take, and start or stop duties to match."""
        async with self._lock:
            await self._expire_overdue_locked()
            sent = time.monotonic()
            try:
                now_held = await self.repo.tick(
                    self.process, dict(self._tokens), list(self.duties), self.clock.now(),
                    self.ttl,
                )  # fmt: skip
            except Exception as exc:
                log.warning("lease heartbeat failed (%s); duties stop when their leases run out",
                            describe_error(exc))  # fmt: skip
                return
            for name in list(self._tokens):
                if name not in now_held:
                    self._tokens.pop(name)
                    await self._stop_duty(name, "its lease was taken over")
            for name, token in now_held.items():
                self._tokens[name] = token
                self._deadline[name] = sent + self.ttl.total_seconds() - self.margin
                if name not in self._running:
                    await self._start_duty(name)
            await self._log_standby(set(self.duties) - set(now_held))
        await self._forget_old_claims()

    async def _expire_overdue(self) -> None:
        async with self._lock:
            await self._expire_overdue_locked()

    async def _expire_overdue_locked(self) -> None:
        """Stop duties whose lease may have run out (no renewal reached the database)."""
        now = time.monotonic()
        for name in list(self._running):
            if now >= self._deadline.get(name, 0.0):
                self._tokens.pop(name, None)
                await self._stop_duty(name, "its lease ran out before it could be renewed")

    async def _start_duty(self, name: str) -> None:
        self._running.add(name)
        self._waiting.discard(name)
        log.info("serving %s (lease token %d)", name, self._tokens[name])
        for start in self.duties[name].starts:
            try:
                await start()
            except Exception as exc:
                if self.on_failure is None:
                    log.exception("starting %s failed", name)
                else:
                    self.on_failure(name, exc)

    async def _stop_duty(self, name: str, why: str) -> None:
        if name not in self._running:
            return
        self._running.discard(name)
        log.info("no longer serving %s: %s", name, why)
        for stop in reversed(self.duties[name].stops):
            try:
                await stop()
            except Exception:
                log.exception("stopping %s failed", name)

    async def _log_standby(self, waiting: set[str]) -> None:
        new = waiting - self._waiting
        self._waiting = waiting
        if not new:
            return
        try:
            _, leases = await self.repo.status()
        except Exception:
            leases = []
        holders = {lease.duty: lease.holder for lease in leases}
        for name in sorted(new):
            log.info("standby for %s: waiting for its lease (held by %s)", name,
                     holders.get(name) or "nobody yet")  # fmt: skip

    async def _forget_old_claims(self) -> None:
        if time.monotonic() - self._last_forget < FORGET_EVERY or not self._running:
            return
        self._last_forget = time.monotonic()
        with contextlib.suppress(Exception):
            await self.repo.forget_events(self.clock.now() - CLAIM_MEMORY)
