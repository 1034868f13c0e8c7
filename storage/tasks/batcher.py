"""Claims that arrive together share one write transaction, in arrival order."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")
Run = Callable[[Sequence[Request]], Awaitable[list[Answer]]]


class Batcher(Generic[Request, Answer]):
    """Runs requests that arrive while a batch is in hand as the next batch.

    Each claim is still its own conditional UPDATE; sharing the transaction saves a commit
    and a trip to the database thread per claim, which is what keeps a burst of claimers
    from queueing behind each other's commits. If a batch fails, nothing of it was committed
    and its requests run again one by one, so a request that fails takes only itself down.
    """

    MAX_BATCH = 100

    def __init__(self, run: Run[Request, Answer], *, name: str) -> None:
        self._run = run
        self._name = name
        self._pending: list[tuple[Request, asyncio.Future[Answer]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Answer:
        """Queue one request and wait for its answer."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name=self._name)
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.MAX_BATCH]
            del self._pending[: self.MAX_BATCH]
            try:
                answers = await self._run([request for request, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                for request, future in batch:
                    try:
                        [answer] = await self._run([request])
                    except Exception as one:
                        _settle(future, one)
                    else:
                        _settle(future, answer)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                _settle(future, answer)


def _settle(future: "asyncio.Future[Answer]", outcome: Answer | Exception) -> None:
    """Hand an answer to a waiting caller (unless it stopped waiting)."""
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
