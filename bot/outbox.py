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
from bot.domain.i18n import ENGLISH, Reader
from bot.logs import describe_error
from storage.outbox import MARKUP, Leased, OutboxRepo

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
STOP_GRACE = 10.0  # seconds a stop waits for the post in flight
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
    # Who it is written for: the room's language, or the recipient's when it names one.
    reader: Reader = ENGLISH


@dataclass(frozen=True, slots=True)
class Actions:
    """What a post offers its reader: buttons, and the subject its reactions act on."""

    buttons: tuple[Button, ...] = ()
    subject: tuple[str, int] | None = None


Deliverer = Callable[[Delivery], Awaitable[None]]
# The reader of a post: (platform, target, recipient id or None) -> Reader.
ReaderOf = Callable[[str, str, str | None], Awaitable[Reader]]
Words = Callable[[Any], Markup]
Picture = Callable[[Any, Reader], Attachment]
Offers = Callable[[Any], Actions]


class PermanentDeliveryError(Exception):
    """The target can never take this post (deleted room, unknown channel); stop retrying."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownKind(LookupError):
    """No renderer is registered for a kind of post (its cog is not loaded)."""


class Renderers:
    """How each kind of post reads, registered by whoever writes posts of that kind."""

    def __init__(self) -> None:
        self._words: dict[str, Words] = {MARKUP: _written}
        self._pictures: dict[str, Picture] = {}
        self._actions: dict[str, Offers] = {}
        self._drawn: OrderedDict[tuple[str, str, str], asyncio.Future[Attachment]] = OrderedDict()

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

    async def picture(
        self, kind: str, data: Any, body: str, reader: Reader = ENGLISH
    ) -> Attachment | None:
        """A post's picture for ``reader``, if its kind has one.

        Drawn in a worker thread, off the event loop and the database's thread, and once for
        every row with the same facts (``body``) and language: one announcement to several
        places.
        """
        draw = self._pictures.get(kind)
        if draw is None:
            return None
        key = (kind, body, reader.language)
        drawn = self._drawn.get(key)
        if drawn is None or (drawn.done() and (drawn.cancelled() or drawn.exception())):
            drawn = asyncio.ensure_future(asyncio.to_thread(draw, data, reader))
            self._drawn[key] = drawn
            while len(self._drawn) > PICTURES_KEPT:
                self._drawn.popitem(last=False)
        self._drawn.move_to_end(key)
        return await asyncio.shield(drawn)

    async def render(self, row: Leased, reader: Reader = ENGLISH) -> Delivery:
        """A leased row in words (and picture) for its target, read by ``reader``."""
        picture = await self.picture(row.kind, row.data, row.body, reader)
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
            reader=reader,
        )


def _written(data: Any) -> Markup:
    return Markup(tuple((bool(trusted), str(text)) for trusted, text in data))


class Outbox:
    """Owns the dispatch loop and the renderers.

    One dispatch runs at a time in a process. Each post is marked sent as soon as its
    platform took it; a stop lets the post in flight finish and gives back, at once, every
    other row it leased, so the next process sends them without waiting for the lease.
    """

    def __init__(
        self,
        repo: OutboxRepo,
        clock: Clock,
        *,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self.repo = repo
        self.clock = clock
        self.poll_interval = poll_interval
        self.lease = lease
        self.stop_grace = stop_grace
        self.renderers = Renderers()
        self.reader_of: ReaderOf | None = None
        self._deliverers: dict[str, Deliverer] = {}
        self._loop = Periodic("outbox-dispatch", self.run_once, poll_interval)
        self._dispatching = asyncio.Lock()
        self._stopping = False
        self._held: dict[int, datetime] = {}  # leased here, not yet sent or failed

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
        async with self._dispatching:
            sent = 0
            try:
                while not self._stopping and self._deliverers:
                    batch = await self.repo.lease_due(
                        list(self._deliverers), self.clock.now(), lease=self.lease
                    )
                    if not batch:
                        break
                    self._held.update((row.id, row.lease_until) for row in batch)
                    for row in batch:
                        if not self._may_send(row):
                            break
                        sent += await self._deliver(row)
                    await self._release()  # what this batch could not get to
            finally:
                if not self._stopping:
                    await asyncio.shield(self._release())
            return sent

    def _may_send(self, row: Leased) -> bool:
        """Whether to send ``row`` now: not stopping, its platform here, its lease not ending."""
        if self._stopping or row.platform not in self._deliverers:
            return False
        return self.clock.now() < row.lease_until - self.lease / 4

    async def _release(self) -> None:
        held, self._held = self._held, {}
        if held:
            released = await self.repo.release(list(held.items()))
            log.debug("outbox: gave back %d of %d leased posts", released, len(held))

    async def _deliver(self, row: Leased) -> int:
        deliverer = self._deliverers[row.platform]
        try:
            reader = ENGLISH
            if self.reader_of is not None:
                reader = await self.reader_of(row.platform, row.target, row.recipient_id)
            delivery = await self.renderers.render(row, reader)
            await deliverer(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            backoff = timedelta(days=3650) if permanent else _backoff(row.attempts)
            error = describe_error(exc)
            log.warning(
                "delivery %d to %s failed (attempt %d, %s); %s",
                row.id,
                row.platform,
                row.attempts,
                error,
                "giving up" if permanent else f"retrying in {backoff.total_seconds():.0f} s",
            )
            await self.repo.mark_failed(row.id, self.clock.now() + backoff, error)
            self._held.pop(row.id, None)
            return 0
        await self.repo.mark_sent(row.id, self.clock.now())
        self._held.pop(row.id, None)
        return 1

    async def start(self) -> None:
        """Start the dispatch loop."""
        self._stopping = False
        self._loop.start()

    async def stop(self) -> None:
        """Finish the post in flight (waiting at most ``stop_grace``), then give back the rest."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._dispatching.acquire(), self.stop_grace)
        except TimeoutError:
            log.warning("outbox: a post in flight took over %.0f s; stopped", self.stop_grace)
        else:
            self._dispatching.release()
        await self._loop.stop()
        await self._release()


def _backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)
