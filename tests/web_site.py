"""A running bot with its web server on 127.0.0.1, and helpers to sign in as a coordinator."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import App
from bot.context import Actor, Ctx, Place, Reply, UserRef
from bot.web.server import WebServer
from tests.harness import Harness, make_app

COCO = UserRef("console", "coco", "Coco Ordinator")
LINK = re.compile(r"(http://\S+/signin\?t=\S+)")


def web_app(
    tmp_path: Path, *, coordinators: tuple[str, ...] = ("coco",), language: str = "en", **web: Any
) -> App:
    sections: dict[str, Any] = {
        "web": {"enabled": True, "listen": "127.0.0.1:0", "cache_ttl": 0, **web},
        "console": {"coordinators": list(coordinators)},
        "campaign": {"collection_ends": "2026-12-31"},
        "bot": {"language": language},
    }
    return make_app(tmp_path, **sections)


@asynccontextmanager
async def running(app: App) -> AsyncIterator[Harness]:
    """The app's web server, started as ``App.start`` does, without the scheduler.

    The manual clock stands in the past while the scheduler keeps real time, so a started
    scheduler would wake every reminder at once; these tests fire them by hand instead.
    """
    harness = Harness(app)
    app.web = WebServer(app.settings, app.services, lambda: app.adapters)
    await app.web.start()
    try:
        yield harness
    finally:
        await app.stop()


async def as_person(app: App, who: UserRef, line: str, *, coordinator: bool = True) -> Reply:
    ctx = Ctx(Actor(who, coordinator), Place("console", is_private=True), app.clock.now())
    reply = await app.core.handle_text(ctx, line, prefixes=("",))
    assert reply is not None
    return reply


async def sign_in_link(app: App, who: UserRef = COCO) -> str:
    reply = await as_person(app, who, "dashboard link")
    assert reply.private and not reply.is_error, reply.body.plain()
    found = LINK.search(reply.body.plain())
    assert found, reply.body.plain()
    return found.group(1)


def token_of(link: str) -> str:
    return link.split("t=", 1)[1]


def client() -> aiohttp.ClientSession:
    # unsafe: the cookie jar then keeps cookies from an IP address such as 127.0.0.1
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def record_counts(h: Harness) -> None:
    """A campaign with a total and three countries over their minimum (×720 table)."""
    await h.ok("coco", "signatures set 312345")
    for country, count in (("DE", 70000), ("FR", 60000), ("MT", 5000), ("PL", 20000)):
        await h.ok("coco", f"signatures set {count} --country {country}")
