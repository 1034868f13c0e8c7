"""Background loops keep going through failures and stop cleanly."""

import asyncio
import logging

from bot.background import Periodic
from storage.db import DatabaseUnavailable


async def test_a_failing_step_is_logged_and_the_loop_goes_on(caplog):
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        if len(calls) == 2:
            raise DatabaseUnavailable("the database stayed locked", busy=True)

    loop = Periodic("demo-loop", step, every=0.01)
    loop.start()
    try:
        for _ in range(200):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await loop.stop()
    assert len(calls) >= 3
    messages = [r.getMessage() for r in caplog.records if r.name == "bot.background"]
    assert any("demo-loop failed" in m for m in messages)
    busy = [r for r in caplog.records if "waits for the database" in r.getMessage()]
    assert busy and busy[0].levelno == logging.WARNING and busy[0].exc_info is None


async def test_wake_runs_the_step_before_the_interval():
    ran = asyncio.Event()
    count = 0

    async def step() -> None:
        nonlocal count
        count += 1
        if count == 2:
            ran.set()

    loop = Periodic("demo-wake", step, every=3600)
    loop.start()
    try:
        await asyncio.sleep(0.05)
        loop.wake()
        await asyncio.wait_for(ran.wait(), 5)
    finally:
        await loop.stop()
    assert not loop.running
