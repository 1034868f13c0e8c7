"""Owned background loops: started once, cancelled on stop, never ended by a failing step."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``step`` at start and then every ``every`` seconds, or sooner when woken.

    A step that finds the database busy is logged in one line and tried again after
    ``retry`` seconds; any other failure is logged with its traceback and the loop goes on.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        every: float,
        *,
        retry: float | None = None,
    ) -> None:
        self.name = name
        self.step = step
        self.every = every
        self.retry = every if retry is None else retry
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the loop is started and not stopped."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop; a second start does nothing."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the step now rather than at the next interval."""
        self._wake.set()

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            wait = self.every
            self._wake.clear()
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as exc:
                log.warning("%s waits for the database: %s", self.name, exc)
                wait = self.retry
            except Exception:
                log.exception("%s failed; it runs again later", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
