"""The aiohttp application and its runner, on the bot's own event loop.

Public: ``/progress`` (and ``.json``, ``.png``), ``/embed`` for campaign sites, ``/healthz``
and ``/metrics``. Coordinators: ``/signin`` (from a ``dashboard link``), ``/dashboard`` and
its CSV export. Every answer carries the security headers; every failure is a page (or JSON)
that says what happened, and an unexpected one a short ref that matches a log line.
"""

import asyncio
import csv
import io
import json
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.adapters import Adapter
from bot.config import ConfigError, Settings
from bot.domain import COUNTRIES, LANGUAGES, TaskStatus
from bot.domain.i18n import (
    SOURCE_LANGUAGE,
    CountryName,
    LanguageName,
    Msg,
    Reader,
    _,
    day,
    number,
    translation,
    when,
)
from bot.logs import describe_error
from bot.services import Services
from bot.web.addresses import client_address, parse_listen
from bot.web.limits import MAX_WAIT, ClientBuckets, Pace
from bot.web.progress import Figures, ProgressFeed, figures
from bot.web.tokens import Grant, Refusal, TokenRefused
from storage.dashboard import CSV_COLUMNS, QUEUE_STATUSES, csv_cell, priorities

log = logging.getLogger(__name__)
access_log = logging.getLogger("bot.web.access")

HERE = Path(__file__).parent
STATIC = {
    "style.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
COOKIE = "vb_session"
MAX_BODY = 16 * 1024
HEALTH_TIMEOUT = 2.0
EXPIRING_WINDOW_SHARE = 0.2  # "about to expire": the last fifth of a claim's time, as nudged
PUBLIC = frozenset({"progress", "progress-json", "progress-png", "embed", "static", "home"})
STATUSES = ("open", "claimed", "in_review", "done", "cancelled")
DASHBOARD_JOBS = 25  # the newest jobs shown with their progress
SOURCE_LABELS = {
    "manual": _("entered by a coordinator"),
    "eci_register": _("official: the European Commission's register"),
    "eci_cocs": _("official: the Commission's online collection system"),
    "json": _("the campaign's own count"),
}
BASE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'"
)

AdapterList = Callable[[], Sequence[Adapter]]


def page_language(requested: str | None, default: str = SOURCE_LANGUAGE) -> str:
    """The language asked for with ``?lang=``, if it is one of the 24; else the campaign's."""
    code = (requested or "").strip().lower()
    return code if code in LANGUAGES else default


def page_gettext(language: str) -> tuple[Callable[[str], str], Callable[[str, str, int], str]]:
    """The pages' ``gettext`` and ``ngettext`` for one language, from the bot's catalogs."""
    catalog = translation(language)

    def gettext(message: str) -> str:
        return catalog.text(Msg(message))

    def ngettext(singular: str, plural: str, n: int) -> str:
        return catalog.text(Msg(singular, plural=plural), n)

    return gettext, ngettext


class AccessLog(AbstractAccessLogger):
    """One DEBUG line per request: method, route name, status, time.

    Never the path, the query (sign-in tokens travel there) or the client's address.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write the line."""
        route = getattr(getattr(request, "match_info", None), "route", None)
        name = getattr(route, "name", None) or "unmatched"
        self.logger.debug(
            "web %s %s %d %.1f ms", request.method, name, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        """Only when DEBUG is on."""
        return self.logger.isEnabledFor(logging.DEBUG)


class WebServer:
    """Serves the pages on ``[web] listen`` until stopped."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        adapters: AdapterList,
        quiet: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.web = settings.web
        self.services = services
        self.adapters = adapters
        self.signin = services.signin
        self.metrics = services.metrics
        self.zone = ZoneInfo(settings.campaign.timezone)
        self.host, self.port = parse_listen(self.web.listen)
        self.buckets = ClientBuckets(self.web.rate, self.web.burst)
        self.pace = Pace(self.web.max_rate, gate=quiet)
        self.feed = ProgressFeed(self._load_figures, self.web.cache_ttl.total_seconds())
        # Several processes on one database: each duty (a platform connection, the scheduler,
        # ...) and whether this process holds its lease now. Set by the app.
        self.duties: Callable[[], dict[str, bool]] = dict
        self._pages: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._static = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
        self._signins = 0
        self._refused = 0
        self._runner: web.AppRunner | None = None
        self._counted: dict[tuple[str, int], Callable[[], None]] = {}
        self._embed_headers, self._page_headers = self._security_headers()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
        )
        self.language = settings.bot.language
        self.app = self._build()

    def __repr__(self) -> str:
        return f"WebServer(listen={self.web.listen!r})"

    # --- lifecycle ----------------------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors, self._limits])
        app.on_response_prepare.append(self._headers)
        r = app.router
        r.add_get("/", self.home, name="home")
        r.add_get("/progress", self.progress, name="progress")
        r.add_get("/progress.json", self.progress_json, name="progress-json")
        r.add_get("/progress.png", self.progress_png, name="progress-png")
        r.add_get("/embed", self.embed, name="embed")
        r.add_get("/static/{name}", self.static, name="static")
        r.add_get("/signin", self.signin_page, name="signin")
        r.add_post("/signin", self.signin_post, name="signin-post")
        r.add_post("/signout", self.signout, name="signout")
        r.add_get("/dashboard", self.dashboard, name="dashboard")
        r.add_get("/dashboard/queue.csv", self.queue_csv, name="queue-csv")
        r.add_get("/healthz", self.healthz, name="healthz")
        r.add_get("/metrics", self.metrics_page, name="metrics")
        return app

    async def start(self) -> None:
        """Listen on the configured address only."""
        runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log_class=AccessLog,
            access_log=access_log,
            max_line_size=4096,
            max_field_size=8190,
            max_headers=64,
            keepalive_timeout=75.0,
            shutdown_timeout=5.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=512)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            problem = f"config error: web.listen: cannot listen on {self.web.listen}"
            raise ConfigError(f"{problem} ({exc.strerror})") from None
        self._runner = runner
        self.signin.listening = self.address
        log.info("web server listening on %s", self.address)

    @property
    def address(self) -> str:
        """``host:port`` actually listened on (the port may have been 0)."""
        if self._runner is not None:
            for sockname in self._runner.addresses:
                host, port = sockname[0], sockname[1]
                return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return self.web.listen

    @property
    def url(self) -> str:
        """The listening address as a URL."""
        return f"http://{self.address}"

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- middleware ---------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every failure becomes a page; no traceback reaches anyone but the log."""
        name = _route_name(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = self._error_response(request, exc.status, exc.reason, exc.headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            ref = secrets.token_hex(2)
            log.exception("web page %s failed (ref: %s)", name, ref)
            response = self._error_response(
                request,
                500,
                page_gettext(page_language(request.query.get("lang"), self.language))[0](
                    "Something went wrong (ref: %(ref)s)."
                )
                % {"ref": ref},
            )
        key = (name, response.status)
        count = self._counted.get(key)
        if count is None:
            count = self._counted[key] = self.metrics.web_requests.labels(name, str(key[1])).inc
        count()
        return response

    @web.middleware
    async def _limits(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A token bucket per client; the public pages together keep to ``max_rate``."""
        client = client_address(
            request.remote, request.headers.get("X-Forwarded-For"), self.web.trusted_proxies
        )
        wait = self.buckets.take(client)
        if wait > 0:
            raise web.HTTPTooManyRequests(headers={"Retry-After": str(max(1, math.ceil(wait)))})
        if _route_name(request) in PUBLIC and not await self.pace.admit():
            raise web.HTTPServiceUnavailable(headers={"Retry-After": str(int(MAX_WAIT))})
        return await handler(request)

    def _security_headers(self) -> tuple[dict[str, str], dict[str, str]]:
        """The headers of every answer, built once: (for /embed, for every other page)."""
        common = {
            "X-Content-Type-Options": "nosniff",
            # Same-origin: a form then carries its Origin (with no-referrer it is "null"),
            # and no address of ours (a sign-in link) is ever sent to another site.
            "Referrer-Policy": "same-origin",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        }
        if self.signin.secure:
            common["Strict-Transport-Security"] = "max-age=31536000"
        ancestors = " ".join(self.web.embed_origins) or "'none'"
        embed = {**common, "Content-Security-Policy": f"{BASE_CSP}; frame-ancestors {ancestors}"}
        other = {
            **common,
            "Content-Security-Policy": f"{BASE_CSP}; frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
        }
        return embed, other

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        name = _route_name(request)
        response.headers.update(self._embed_headers if name == "embed" else self._page_headers)
        if name not in PUBLIC:
            response.headers["Cache-Control"] = "no-store"

    def _error_response(
        self,
        request: web.Request,
        status: int,
        message: str,
        headers: Any = None,
    ) -> web.Response:
        extra = {k: v for k, v in (headers or {}).items() if k in ("Retry-After", "Allow")}
        if _wants_json(request):
            body = json.dumps({"error": message, "status": status})
            return web.json_response(text=body, status=status, headers=extra)
        html = self._render(
            "error.html", request, status=status, message=_ERROR_TEXT.get(status, message)
        )
        return web.Response(
            text=html, status=status, content_type="text/html", charset="utf-8", headers=extra
        )

    # --- rendering ----------------------------------------------------------------------

    def _render(self, template: str, request: web.Request, **values: Any) -> str:
        lang = page_language(request.query.get("lang"), self.language)
        query = f"?lang={lang}" if "lang" in request.query else ""
        reader = Reader(lang, timezone=self.zone, platform="web")
        # Rendering does not wait on anything, so setting the language here holds for the
        # whole of this page, whatever other requests come in meanwhile.
        gettext, ngettext = page_gettext(lang)
        self.env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
        self.env.filters["number"] = lambda n: number(n, reader, ",")
        self.env.filters["percent"] = lambda x: number(x, reader, ".1%")
        self.env.filters["local"] = lambda moment: "—" if moment is None else when(moment, reader)
        self.env.filters["day"] = lambda value: day(value, reader, "long")
        return self.env.get_template(template).render(
            lang=lang, query=query, language_name=lambda code: LanguageName(code).name(reader),
            country_name=lambda code: CountryName(code).name(reader), **values,
        )  # fmt: skip

    async def _load_figures(self) -> Figures:
        progress = await self.services.signatures.progress()
        today = self.services.clock.now().astimezone(self.zone).date()
        return figures(progress, self.settings.campaign, today)

    async def _cached_page(self, request: web.Request, template: str) -> web.Response:
        current = await self.feed.get()
        lang = page_language(request.query.get("lang"))
        key = (template, lang + ("?" if "lang" in request.query else ""))
        etag = f'"{current.version}-{lang}"'
        cached = self._pages.get(key)
        if cached is None or cached[0] != current.version:
            html = self._render(
                template, request, f=current, sources=SOURCE_LABELS, countries=COUNTRIES
            )
            cached = (current.version, html.encode())
            self._pages[key] = cached
        return self._public(request, cached[1], "text/html; charset=utf-8", etag)

    def _public(self, request: web.Request, body: bytes, kind: str, etag: str) -> web.Response:
        headers = {
            "ETag": etag,
            "Cache-Control": f"public, max-age={max(1, int(self.feed.ttl))}",
            "Content-Type": kind,
        }
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers=headers)

    # --- public pages -------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        """The progress page is the front page."""
        return _see_other("/progress" + _lang_query(request))

    async def progress(self, request: web.Request) -> web.Response:
        """The campaign's progress, for people."""
        return await self._cached_page(request, "progress.html")

    async def embed(self, request: web.Request) -> web.Response:
        """The compact counter campaign sites frame."""
        return await self._cached_page(request, "embed.html")

    async def progress_json(self, request: web.Request) -> web.Response:
        """The same figures, for programs."""
        current = await self.feed.get()
        cached = self._pages.get(("json", ""))
        if cached is None or cached[0] != current.version:
            cached = (current.version, json.dumps(current.to_json(), ensure_ascii=False).encode())
            self._pages[("json", "")] = cached
        body = cached[1]
        response = self._public(
            request, body, "application/json; charset=utf-8", f'"{current.version}"'
        )
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    async def progress_png(self, request: web.Request) -> web.Response:
        """The chart the announcements carry, in the page's language."""
        current = await self.feed.get()
        lang = page_language(request.query.get("lang"), self.language)
        etag = f'"{current.version}-{lang}"'
        if request.headers.get("If-None-Match") == etag:
            return self._public(request, b"", "image/png", etag)
        reader = Reader(lang, timezone=self.zone, platform="web")
        chart = await self.feed.chart(current, reader)
        response = self._public(request, chart, "image/png", etag)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    async def static(self, request: web.Request) -> web.Response:
        """The stylesheet and the live-update script; nothing else."""
        name = request.match_info["name"]
        if name not in self._static:
            raise web.HTTPNotFound()
        return web.Response(
            body=self._static[name],
            headers={"Content-Type": STATIC[name], "Cache-Control": "public, max-age=3600"},
        )

    # --- health and metrics -------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """200 when the database answers and every platform is connected; 503 otherwise."""
        body: dict[str, Any] = {"database": "up" if await self._database_up() else "down"}
        duties = self.duties()
        # A platform whose lease another process holds is served there: this one's standby
        # for it is healthy, not down.
        body["platforms"] = {
            adapter.platform: (
                "standby"
                if duties.get(adapter.platform) is False
                else "up"
                if adapter.status().connected
                else "down"
            )
            for adapter in self.adapters()
        }
        body["duties"] = {name: "held" if held else "standby" for name, held in duties.items()}
        body["role"] = "standby" if duties and not any(duties.values()) else "active"
        down = body["database"] == "down" or "down" in body["platforms"].values()
        body["status"] = "down" if down else "ok"
        return web.json_response(body, status=503 if down else 200)

    async def _database_up(self) -> bool:
        def probe(conn: Any) -> int:
            return int(conn.exec_driver_sql("SELECT 1").scalar_one())

        try:
            return (
                await asyncio.wait_for(self.services.db.read_connection(probe), HEALTH_TIMEOUT)
                == 1
            )
        except Exception as exc:
            log.warning("health: the database does not answer (%s)", describe_error(exc))
            return False

    async def metrics_page(self, request: web.Request) -> web.Response:
        """Prometheus text format."""
        m = self.metrics
        now = self.services.clock.now()
        try:
            backlog, oldest = await asyncio.wait_for(
                self.services.dashboard.outbox_backlog(now), HEALTH_TIMEOUT
            )
        except Exception as exc:
            log.warning("metrics: outbox backlog unread (%s)", describe_error(exc))
        else:
            m.outbox_backlog.set(backlog)
            m.outbox_oldest.set(oldest)
        for duty, held in self.duties().items():
            m.lease_held.labels(duty).set(1 if held else 0)
        for adapter in self.adapters():
            status = adapter.status()
            m.connected.labels(adapter.platform).set(1 if status.connected else 0)
            if status.lag is not None:
                m.sync_lag.labels(adapter.platform).set(status.lag)
        return web.Response(
            body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # --- signing in ---------------------------------------------------------------------

    async def signin_page(self, request: web.Request) -> web.Response:
        """A link's landing page: a button that uses it (chat previews only ever GET)."""
        token = request.query.get("t", "")
        try:
            grant = (await self.signin.signer()).verify("link", token, self.signin.clock.now())
        except TokenRefused as exc:
            return self._refuse(request, exc.why)
        html = self._render("signin.html", request, token=token, name=grant.user.label)
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def signin_post(self, request: web.Request) -> web.Response:
        """Use the link once: a session cookie, then the dashboard."""
        self._same_origin(request)
        form = await request.post()
        token = form.get("t")
        try:
            session = await self.signin.redeem(token if isinstance(token, str) else "")
        except TokenRefused as exc:
            return self._refuse(request, exc.why)
        self._signins += 1
        self.metrics.signins.labels("accepted").inc()
        log.info("dashboard sign-in accepted (%d since start)", self._signins)
        response = _see_other("/dashboard" + _lang_query(request))
        max_age = int((session.expires_at - self.signin.clock.now()).total_seconds())
        response.set_cookie(
            COOKIE,
            await self.signin.cookie(session),
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.signin.secure,
        )
        return response

    def _refuse(self, request: web.Request, why: Refusal) -> web.Response:
        self._refused += 1
        self.metrics.signins.labels(why.value).inc()
        log.info("dashboard sign-in refused: %s (%d since start)", why.value, self._refused)
        html = self._render("refused.html", request, why=why.value)
        return web.Response(text=html, status=403, content_type="text/html", charset="utf-8")

    def _same_origin(self, request: web.Request) -> None:
        """Refuse a form sent from another site."""
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise web.HTTPForbidden()
        origin = request.headers.get("Origin")
        if origin is None:
            return
        allowed = {f"{request.scheme}://{request.host}"}
        if self.web.public_url:
            parts = urlsplit(self.web.public_url)
            allowed.add(f"{parts.scheme}://{parts.netloc}")
        if origin not in allowed:
            raise web.HTTPForbidden()

    async def _session(self, request: web.Request) -> Grant:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            raise web.HTTPUnauthorized()
        try:
            return await self.signin.session(cookie)
        except TokenRefused:
            raise web.HTTPUnauthorized() from None

    async def signout(self, request: web.Request) -> web.Response:
        """End the session for good and forget the cookie."""
        self._same_origin(request)
        session = await self._session(request)
        await self.signin.end(session)
        response = _see_other("/progress" + _lang_query(request))
        response.del_cookie(COOKIE, path="/")
        return response

    # --- the dashboard ------------------------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.Response:
        """The queue, jobs, expiring claims, reminders and coverage, for a coordinator."""
        session = await self._session(request)
        ttl = self.settings.tasks.claim_ttl
        now = self.services.clock.now()
        overview = await self.services.dashboard.overview(
            now, claim_ttl=ttl, window=ttl * EXPIRING_WINDOW_SHARE
        )
        languages = sorted({lang for lang, _ in overview.queue}, key=lambda x: (x is None, x))
        html = self._render(
            "dashboard.html",
            request,
            name=session.user.label,
            platform=session.user.platform,
            o=overview,
            statuses=STATUSES,
            queue_languages=languages,
            language_names=LANGUAGES,
            countries=COUNTRIES,
            now=now,
            jobs=await self.services.tasks.jobs(limit=DASHBOARD_JOBS),
            job_statuses=[TaskStatus(s) for s in STATUSES],
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def queue_csv(self, request: web.Request) -> web.StreamResponse:
        """The queue (open and claimed tasks; ``?status=all`` for every task) as CSV."""
        await self._session(request)
        statuses = STATUSES if request.query.get("status") == "all" else QUEUE_STATUSES
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": 'attachment; filename="queue.csv"',
            }
        )
        await response.prepare(request)
        await response.write(_csv_line(CSV_COLUMNS))
        after = 0
        while rows := await self.services.dashboard.queue_rows(after, statuses):
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerows([csv_cell(v) for v in row] for row in priorities(rows))
            await response.write(out.getvalue().encode())
            after = rows[-1][0]
        await response.write_eof()
        return response


_ERROR_TEXT = {
    400: _("That request could not be read."),
    401: _("Please sign in first: ask the bot for a link with `dashboard link` in chat."),
    403: _("That is not allowed from here."),
    404: _("There is no such page."),
    405: _("That page does not take this kind of request."),
    413: _("That request is too large."),
    429: _("Too many requests from your address; please wait a moment."),
    503: _("The server is busy; please try again in a moment."),
}


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    return getattr(route, "name", None) or "unmatched"


def _wants_json(request: web.Request) -> bool:
    return _route_name(request) in ("progress-json", "healthz", "metrics")


def _lang_query(request: web.Request) -> str:
    lang = request.query.get("lang")
    return f"?lang={page_language(lang)}" if lang else ""


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _csv_line(values: Sequence[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()
