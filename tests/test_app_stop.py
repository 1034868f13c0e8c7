"""Stopping the app: a part that fails to stop is logged in one line, and the rest still stop."""

import asyncio
import errno
import logging
from pathlib import Path

import pytest

import bot.app as app_module
from bot.adapters import Status
from bot.app import App
from tests.harness import make_app


class Part:
    """An adapter that records its stop, and fails it when told to."""

    def __init__(self, platform: str, stopped: list[str], error: Exception | None = None):
        self.platform = platform
        self.stopped = stopped
        self.error = error

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        self.stopped.append(self.platform)
        if self.error is not None:
            raise self.error

    async def wait_closed(self) -> None:
        """Never ends by itself."""

    def status(self) -> Status:
        return Status(connected=True)


@pytest.mark.sqlite_only
async def test_a_part_failing_to_stop_is_logged_and_the_rest_still_stop(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
):
    app: App = make_app(tmp_path, url=db_url)
    stopped: list[str] = []
    first = Part("first", stopped)
    failing = Part("failing", stopped, OSError(errno.EIO, "Input/output error"))
    await app.start([first, failing])
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        await app.stop()
    assert stopped == ["failing", "first"], "the adapter after the failing one still stopped"
    with pytest.raises(RuntimeError, match="after shutdown"):
        await app.db.read(lambda session: None)  # the database was still closed
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping")]
    assert line == (
        "stopping the failing adapter failed (OSError (errno 5 EIO: Input/output error)); "
        "stopping the rest"
    )


class Stuck(Part):
    """An adapter whose stop never ends (a connection that never closes)."""

    async def stop(self) -> None:
        self.stopped.append(self.platform)
        await asyncio.Event().wait()


@pytest.mark.sqlite_only
async def test_a_part_that_never_stops_is_given_up_on_and_the_rest_still_stop(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(app_module, "STOP_STEP_TIMEOUT", 0.2)
    app: App = make_app(tmp_path, url=db_url)
    stopped: list[str] = []
    await app.start([Part("first", stopped), Stuck("stuck", stopped)])
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        await asyncio.wait_for(app.stop(), 10)
    assert stopped == ["stuck", "first"]
    with pytest.raises(RuntimeError, match="after shutdown"):
        await app.db.read(lambda session: None)
    assert "stopping the stuck adapter took over 0 s; stopping the rest" in caplog.text
