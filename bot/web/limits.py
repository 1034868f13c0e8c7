"""Rate limits in memory: a token bucket per client, and one pace for all public pages."""

import asyncio
import contextlib
import time
from collections import OrderedDict

MAX_CLIENTS = 10_000
# A public page waits at most this long for its turn before the answer is 503.
MAX_WAIT = 5.0
# How long a public page lets a command being answered go first.
YIELD_AT_MOST = 0.05


class ClientBuckets:
    """A token bucket per client address: ``burst`` tokens, refilled at ``rate`` a second.

    At most ``MAX_CLIENTS`` buckets are kept; the least recently seen goes first (it would
    be nearly full again anyway).
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float | None = None) -> float:
        """Spend a token; 0.0 if there was one, else the seconds until there will be."""
        now = time.monotonic() if now is None else now
        tokens, seen = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - seen) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class Pace:
    """Lets requests through at most ``rate`` a second overall, in arrival order.

    A request waits its turn (the clients of a closed loop then slow down instead of taking
    the event loop from the bot's own commands); one that would wait longer than
    ``max_wait`` seconds is refused at once.
    """

    def __init__(
        self, rate: float, *, max_wait: float = MAX_WAIT, gate: asyncio.Event | None = None
    ) -> None:
        self.interval = 1.0 / rate
        self.max_wait = max_wait
        # When given: a request whose turn has come still waits (at most YIELD_AT_MOST) while
        # the gate is clear, i.e. while the bot is answering a command.
        self.gate = gate
        self._next = 0.0

    async def admit(self) -> bool:
        """Wait for this request's slot; False when the queue is too long."""
        now = time.monotonic()
        slot = max(self._next, now)
        wait = slot - now
        if wait > self.max_wait:
            return False
        self._next = slot + self.interval
        if wait > 0:
            await asyncio.sleep(wait)
        gate = self.gate
        if gate is not None and not gate.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.wait(), YIELD_AT_MOST)
        return True
