"""Delivery of bot-initiated posts: reminders, milestones, notices.

Rows are written by repositories in the same transaction as the change that causes them.
The dispatcher leases due rows for the platforms that are running, hands each to that
platform's deliverer, and marks it sent; a failure is retried with exponential backoff.
A lease keeps two processes from sending the same row.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.background import Periodic
from bot.clock import Clock
from storage.outbox import Delivery, OutboxRepo

log = logging.getLogger(__name__)

Deliverer = Callable[[Delivery], Awaitable[None]]

LEASE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(hours=1)


class PermanentDeliveryError(Exception):
    """The target can never take this post (deleted room, unknown channel); stop retrying."""


class Outbox:
    """Owns the dispatch loop."""

    def __init__(self, repo: OutboxRepo, clock: Clock, *, poll_interval: float = 1.0) -> None:
        self.repo = repo
        self.clock = clock
        self.poll_interval = poll_interval
        self._deliverers: dict[str, Deliverer] = {}
        self._loop = Periodic("outbox-dispatch", self.run_once, poll_interval)

    def register(self, platform: str, deliverer: Deliverer) -> None:
        """Send rows whose target starts with ``platform`` through ``deliverer``."""
        self._deliverers[platform] = deliverer
        self.wake()

    def unregister(self, platform: str) -> None:
        """Stop sending to ``platform`` (its connection stopped, or moved to another process)."""
        self._deliverers.pop(platform, None)

    @property
    def platforms(self) -> set[str]:
        """The platforms with a registered deliverer."""
        return set(self._deliverers)

    def wake(self) -> None:
        """Look for due rows now rather than at the next poll."""
        self._loop.wake()

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many were sent."""
        if not self._deliverers:
            return 0
        sent = 0
        while True:
            batch = await self.repo.lease_due(
                list(self._deliverers), self.clock.now(), lease=LEASE
            )
            if not batch:
                return sent
            for delivery in batch:
                sent += await self._deliver(delivery)

    async def _deliver(self, delivery: Delivery) -> int:
        deliverer = self._deliverers[delivery.platform]
        try:
            await deliverer(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            backoff = timedelta(days=3650) if permanent else _backoff(delivery.attempts)
            log.warning(
                "delivery %d to %s failed (attempt %d, %s); %s",
                delivery.id,
                delivery.platform,
                delivery.attempts,
                type(exc).__name__,
                "giving up" if permanent else f"retrying in {backoff.total_seconds():.0f} s",
            )
            await self.repo.mark_failed(
                delivery.id, self.clock.now() + backoff, type(exc).__name__
            )
            return 0
        await self.repo.mark_sent(delivery.id, self.clock.now())
        return 1

    async def start(self) -> None:
        """Start the dispatch loop."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the dispatch loop."""
        await self._loop.stop()


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)
