"""Platform adapters: each turns native events into core invocations and renders replies."""

from typing import Protocol


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
