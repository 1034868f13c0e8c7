"""A headless Chromium driven over the DevTools protocol, with nothing but aiohttp."""

import asyncio
import base64
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-dev-shm-usage", "--remote-debugging-port=0",
)  # fmt: skip
START_TIMEOUT = 60.0
STEP_TIMEOUT = 30.0


def chromium() -> str | None:
    """The browser binary, if installed."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def required() -> bool:
    """Whether a missing browser is a failure rather than a skip (CI, REQUIRE_E2E=1)."""
    return bool(os.environ.get("CI")) or os.environ.get("REQUIRE_E2E") == "1"


class Tab:
    """One page target, attached with a flat session."""

    def __init__(self, browser: "Browser", session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.errors: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, session_id=self.session_id)

    async def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        loaded = self.browser.expect("Page.loadEventFired", self.session_id)
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, STEP_TIMEOUT)

    async def run(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; returns the value (JSON-able)."""
        answer = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in answer:
            raise AssertionError(f"script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def submit(self, selector: str) -> None:
        """Click a form's button and wait for the page it leads to."""
        loaded = self.browser.expect("Page.loadEventFired", self.session_id)
        await self.run(f"document.querySelector({json.dumps(selector)}).click()")
        await asyncio.wait_for(loaded, STEP_TIMEOUT)

    async def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=mobile,
        )  # fmt: skip

    async def screenshot(self, path: Path) -> None:
        """The whole page, as a PNG file."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


class Browser:
    """A Chromium process and its DevTools websocket."""

    def __init__(self, process: asyncio.subprocess.Process, ws: aiohttp.ClientWebSocketResponse):
        self.process = process
        self.ws = ws
        self._ids = 0
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self.tabs: dict[str, Tab] = {}
        self._reader = asyncio.create_task(self._read(), name="devtools-read")

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._calls.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            self._event(data)

    def _event(self, data: dict[str, Any]) -> None:
        method, session = data.get("method", ""), data.get("sessionId")
        tab = self.tabs.get(session or "")
        params = data.get("params", {})
        if tab is not None:
            if method == "Runtime.exceptionThrown":
                tab.errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "assert",
            ):
                tab.errors.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                tab.errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url')}")
        for waiter in list(self._waiters):
            name, wanted, future = waiter
            if name == method and wanted in (None, session) and not future.done():
                future.set_result(params)
                self._waiters.remove(waiter)

    def expect(self, method: str, session_id: str | None = None) -> "asyncio.Future[Any]":
        """A future for the next event of this kind (create it before causing the event)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, session_id, future))
        return future

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[self._ids] = future
        await self.ws.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, STEP_TIMEOUT)
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def new_tab(self) -> Tab:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        tab = Tab(self, attached["sessionId"])
        self.tabs[tab.session_id] = tab
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            await tab.send(domain)
        return tab


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    while True:
        line = await process.stderr.readline()
        if not line:
            raise RuntimeError(f"chromium exited ({await process.wait()}) before DevTools")
        text = line.decode(errors="replace").strip()
        if text.startswith("DevTools listening on "):
            return text.removeprefix("DevTools listening on ")


async def _drain(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and await stream.readline():
        pass


@asynccontextmanager
async def browser(binary: str, profile: Path) -> AsyncIterator[Browser]:
    """Chromium with a fresh profile; stopped (by its pid) on leaving."""
    process = await asyncio.create_subprocess_exec(
        binary, *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    drain: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(_devtools_url(process), START_TIMEOUT)
        drain = asyncio.create_task(_drain(process.stderr), name="chromium-stderr")
        async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
            instance = Browser(process, ws)
            try:
                yield instance
            finally:
                with contextlib.suppress(Exception):  # asks it to quit; no answer awaited
                    await ws.send_str(json.dumps({"id": 0, "method": "Browser.close"}))
                instance._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await instance._reader
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
