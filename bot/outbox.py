"""Delivery of bot-initiated posts: reminders, milestones, notices.

Rows are written by repositories in the same transaction as the change that causes them, as
facts: a kind and JSON data. The dispatcher leases due rows for the platforms that are
running, renders each with the renderer registered for its kind (pictures are drawn in a
worker thread, once for all the rows of one announcement), hands it to that platform's
deliverer, and marks it sent; a failure is retried with exponential backoff. A lease keeps
two processes from sending the same row.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.background import Periodic
from bot.clock import Clock
from bot.context import Attachment, Button
from bot.domain import Markup
from storage.outbox import MARKUP, Leased, OutboxRepo

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
MAX_BACKOFF = timedelta(hours=1)
PICTURES_KEPT = 8  # announcements whose picture is kept for their other targets


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row, rendered, ready to send."""

    id: int
    key: str
    platform: str
    target: str
    recipient_id: str | None
    body: Markup
    attachment: Attachment | None
    attempts: int
    due_at: datetime
    # What the reader can do about it: buttons on Discord, reactions to ``subject`` on Matrix.
    buttons: tuple[Button, ...] = ()
    subject: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Actions:
    """What a post offers its reader: buttons, and the subject its reactions act on."""

    buttons: tuple[Button, ...] = ()
    subject: tuple[str, int] | None = None


Deliverer = Callable[[Delivery], Awaitable[None]]
Words = Callable[[Any], Markup]
Picture = Callable[[Any], Attachment]
Offers = Callable[[Any], Actions]


class PermanentDeliveryError(Exception):
    """The target can never take this post (deleted room, unknown channel); stop retrying."""


class UnknownKind(LookupError):
    """No renderer is registered for a kind of post (its cog is not loaded)."""


class Renderers:
    """How each kind of post reads, registered by whoever writes posts of that kind."""

    def __init__(self) -> None:
        self._words: dict[str, Words] = {MARKUP: _written}
        self._pictures: dict[str, Picture] = {}
        self._actions: dict[str, Offers] = {}
        self._drawn: OrderedDict[tuple[str, str], asyncio.Future[Attachment]] = OrderedDict()

    def register(
        self,
        kind: str,
        words: Words,
        picture: Picture | None = None,
        actions: Offers | None = None,
    ) -> None:
        """Render posts of ``kind`` with ``words``; attach ``picture`` and offer ``actions``."""
        self._words[kind] = words
        if picture is not None:
            self._pictures[kind] = picture
        if actions is not None:
            self._actions[kind] = actions

    def actions(self, kind: str, data: Any) -> Actions:
        """What a post of ``kind`` offers its reader (nothing, for most)."""
        offers = self._actions.get(kind)
        return offers(data) if offers is not None else Actions()

    def words(self, kind: str, data: Any) -> Markup:
        """A post's text; raises UnknownKind."""
        render = self._words.get(kind)
        if render is None:
            raise UnknownKind(kind)
        return render(data)

    async def picture(self, kind: str, data: Any, body: str) -> Attachment | None:
        """A post's picture, if its kind has one.

        Drawn in a worker thread, off the event loop and the database's thread, and once for
        every row with the same facts (``body``): one announcement to several places.
        """
        draw = self._pictures.get(kind)
        if draw is None:
            return None
        key = (kind, body)
        drawn = self._drawn.get(key)
        if drawn is None or (drawn.done() and (drawn.cancelled() or drawn.exception())):
            drawn = asyncio.ensure_future(asyncio.to_thread(draw, data))
            self._drawn[key] = drawn
            while len(self._drawn) > PICTURES_KEPT:
                self._drawn.popitem(last=False)
        self._drawn.move_to_end(key)
        return await asyncio.shield(drawn)

    async def render(self, row: Leased) -> Delivery:
        """A leased row in words (and picture) for its target."""
        picture = await self.picture(row.kind, row.data, row.body)
        if picture is None and row.file is not None:
            picture = Attachment(row.file[0], row.file[1], "image/png")
        actions = self.actions(row.kind, row.data)
        return Delivery(
            id=row.id,
            key=row.key,
            platform=row.platform,
            target=row.target,
            recipient_id=row.recipient_id,
            body=self.words(row.kind, row.data),
            attachment=picture,
            attempts=row.attempts,
            due_at=row.due_at,
            buttons=actions.buttons,
            subject=actions.subject,
        )


def _written(data: Any) -> Markup:
    return Markup(tuple((bool(trusted), str(text)) for trusted, text in data))


class Outbox:
    """Owns the dispatch loop and the renderers."""

    def __init__(self, repo: OutboxRepo, clock: Clock, *, poll_interval: float = 1.0) -> None:
        self.repo = repo
        self.clock = clock
        self.poll_interval = poll_interval
        self.renderers = Renderers()
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
            for row in batch:
                sent += await self._deliver(row)

    async def _deliver(self, row: Leased) -> int:
        deliverer = self._deliverers[row.platform]
        try:
            await deliverer(await self.renderers.render(row))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            backoff = timedelta(days=3650) if permanent else _backoff(row.attempts)
            log.warning(
                "delivery %d to %s failed (attempt %d, %s); %s",
                row.id,
                row.platform,
                row.attempts,
                type(exc).__name__,
                "giving up" if permanent else f"retrying in {backoff.total_seconds():.0f} s",
            )
            await self.repo.mark_failed(row.id, self.clock.now() + backoff, type(exc).__name__)
            return 0
        await self.repo.mark_sent(row.id, self.clock.now())
        return 1

    async def start(self) -> None:
        """Start the dispatch loop."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the dispatch loop."""
        await self._loop.stop()


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)
