"""Platform adapters: each turns native events into core invocations and renders replies."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Status:
    """Whether an adapter is connected to its platform, for ``/healthz`` and ``/metrics``.

    ``lag`` is in seconds and means what the platform can tell: for Matrix the time since
    the last completed sync, for Discord the gateway's heartbeat latency; None when unknown.
    """

    connected: bool
    lag: float | None = None


class Adapter(Protocol):
    """What the app needs from a running platform connection."""

    platform: str

    async def start(self) -> None:
        """Connect and begin serving; registers the adapter's outbox deliverer."""
        ...

    async def stop(self) -> None:
        """Disconnect and release everything started."""
        ...

    async def wait_closed(self) -> None:
        """Return when the adapter ends on its own (the console at end of input)."""
        ...

    def status(self) -> Status:
        """Connected or not, right now; cheap, no network."""
        ...
