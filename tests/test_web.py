"""The web server over real HTTP: public pages, sign-in, the dashboard, health, metrics, limits."""

import asyncio
import csv
import io
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.adapters.console_adapter import ConsoleAdapter
from bot.app import App
from bot.config import ConfigError, load_settings
from bot.context import UserRef
from bot.web.limits import ClientBuckets, Pace
from bot.web.tokens import Basis, Grant, Signer
from tests.harness import Harness
from tests.test_charts import has_system_font
from tests.web_site import (
    COCO,
    as_person,
    client,
    record_counts,
    running,
    sign_in_link,
    token_of,
    web_app,
)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(web_app(tmp_path)) as h:
        yield h


def url(h: Harness, path: str) -> str:
    assert h.app.web is not None
    return h.app.web.url + path


class Page(HTMLParser):
    """What a page's markup holds: headings, scripts, inline styles, progress bars."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inline_styles = 0
        self.bars: list[dict[str, str | None]] = []
        self.images: list[dict[str, str | None]] = []
        self.lang: str | None = None
        self._heading: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "style" in a or tag == "style":
            self.inline_styles += 1
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "script":
            self.scripts.append(a)
        if tag == "progress":
            self.bars.append(a)
        if tag == "img":
            self.images.append(a)
        if tag in ("h1", "h2", "h3"):
            self._heading = ""

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None


# --- public pages -------------------------------------------------------------------------


async def test_progress_shows_total_every_member_state_and_n_of_7_without_personal_data(
    site: Harness,
):
    await record_counts(site)
    async with client() as http, http.get(url(site, "/progress")) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        text = await response.text()
    page = Page(text)
    assert page.headings[0] == "Reclaim Your Face"
    assert "Member states" in page.headings
    country_bars = [b for b in page.bars if b.get("class") == "country-bar"]
    assert len(country_bars) == 27
    germany = next(b for b in country_bars if b.get("aria-labelledby") == "c-DE")
    assert (germany["max"], germany["value"]) == ("69120", "69120")  # capped at its minimum
    assert "312,345" in text and "of 1,000,000" in text
    assert re.search(r'data-field="over">3</span> of 7 countries', text)  # DE, FR and MT
    assert "days left" in text and "collection ends December 31, 2026" in text
    assert "manual" in text and "entered by a coordinator" in text
    assert page.images and "312,345 of 1,000,000" in (page.images[0]["alt"] or "")
    for personal in ("coco", "Coco", "test:room"):
        assert personal not in text


async def test_progress_json_has_the_same_figures(site: Harness):
    await record_counts(site)
    async with client() as http, http.get(url(site, "/progress.json")) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        data = await response.json()
    assert data["total"] == 312345 and data["goal"] == 1_000_000
    assert data["countries_over_minimum"] == 3 and data["countries_needed"] == 7
    by_code = {c["code"]: c for c in data["countries"]}
    assert len(by_code) == 27
    assert by_code["DE"] == {"code": "DE", "name": "Germany", "count": 70000, "minimum": 69120,
                             "share": round(70000 / 69120, 6), "over_minimum": True}  # fmt: skip
    assert by_code["MT"]["over_minimum"] is True and by_code["PL"]["over_minimum"] is False
    assert data["minimums"] == {"registered": "2025-01-15", "multiplier": 720}
    assert data["last_count"]["source"] == "manual" and data["last_count"]["official"] is False
    assert data["days_left"] == 305  # 2026-03-02 through 2026-12-31
    assert "coco" not in json.dumps(data).lower()


async def test_the_chart_is_a_png_drawn_once_per_count_and_revalidated_by_etag(site: Harness):
    await record_counts(site)
    async with client() as http:
        async with http.get(url(site, "/progress.png")) as response:
            assert response.status == 200 and response.content_type == "image/png"
            first = await response.read()
            etag = response.headers["ETag"]
        assert first.startswith(b"\x89PNG\r\n\x1a\n")
        async with http.get(url(site, "/progress.png"), headers={"If-None-Match": etag}) as again:
            assert again.status == 304
        await site.ok("coco", "signatures set 400000")
        async with http.get(url(site, "/progress.png"), headers={"If-None-Match": etag}) as new:
            assert new.status == 200 and new.headers["ETag"] != etag
            assert await new.read() != first


async def test_the_chart_follows_the_pages_language(site: Harness):
    await record_counts(site)
    async with client() as http:
        async with http.get(url(site, "/progress?lang=de")) as page:
            assert 'src="/progress.png?lang=de"' in await page.text()
        async with http.get(url(site, "/progress.png")) as english:
            plain, plain_tag = await english.read(), english.headers["ETag"]
        async with http.get(url(site, "/progress.png?lang=de")) as german:
            assert german.status == 200 and german.headers["ETag"] != plain_tag
            drawn, tag = await german.read(), german.headers["ETag"]
        assert drawn.startswith(b"\x89PNG") and (drawn != plain or not has_system_font())
        headers = {"If-None-Match": tag}
        async with http.get(url(site, "/progress.png?lang=de"), headers=headers) as again:
            assert again.status == 304
        async with http.get(url(site, "/progress.png?lang=fr"), headers=headers) as french:
            assert french.status == 200, "another language is another picture"


@pytest.mark.parametrize(
    ("query", "lang"), [("", "en"), ("?lang=de", "de"), ("?lang=GA", "ga"), ("?lang=xx", "en"),
                        ("?lang=", "en"), ("?lang=%3Cscript%3E", "en")],
)  # fmt: skip
async def test_lang_picks_one_of_the_24_or_falls_back_to_the_default(
    site: Harness, query: str, lang: str
):
    async with client() as http, http.get(url(site, "/progress" + query)) as response:
        assert response.status == 200
        assert Page(await response.text()).lang == lang


async def test_progress_is_in_the_campaigns_language_or_the_one_asked_for(tmp_path: Path):
    async with running(web_app(tmp_path, language="fr")) as h, client() as http:
        await h.ok("coco", "signatures set 1234567")
        async with http.get(url(h, "/progress")) as response:
            french = await response.text()
        async with http.get(url(h, "/progress?lang=de")) as response:
            german = await response.text()
        async with http.get(url(h, "/progress?lang=en")) as response:
            english = await response.text()
    assert Page(french).lang == "fr" and "1\u202f234\u202f567" in french
    assert "décembre 2026" in french and "Allemagne" in french, "dates and countries in French"
    assert Page(german).lang == "de" and "1.234.567" in german and "Deutschland" in german
    assert "1,234,567" in english and "Germany" in english
    assert Page(german).headings != Page(english).headings, "the headings are translated"


async def test_pages_have_no_inline_script_or_style_and_send_the_security_headers(
    site: Harness,
):
    async with client() as http:
        for path in ("/progress", "/embed", "/nothing-here"):
            async with http.get(url(site, path)) as response:
                page = Page(await response.text())
                headers = response.headers
            assert all(s.get("src") for s in page.scripts), path
            assert page.inline_styles == 0, path
            csp = headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "same-origin"
            if path == "/embed":
                assert "frame-ancestors *" in csp and "X-Frame-Options" not in headers
            else:
                assert "frame-ancestors 'none'" in csp and headers["X-Frame-Options"] == "DENY"


async def test_static_files_are_served_by_name_only(site: Harness):
    async with client() as http:
        async with http.get(url(site, "/static/live.js")) as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
        for path in ("/static/../server.py", "/static/%2e%2e%2fserver.py", "/static/nope.css"):
            async with http.get(url(site, path)) as response:
                assert response.status == 404, path


async def test_unknown_pages_and_methods_get_their_status_and_a_page(site: Harness):
    async with client() as http:
        async with http.get(url(site, "/nothing-here")) as response:
            assert response.status == 404
            assert "There is no such page." in await response.text()
        async with http.post(url(site, "/progress")) as response:
            assert response.status == 405
        async with http.get(url(site, "/"), allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/progress"


async def test_a_failure_is_a_500_page_with_a_ref_that_matches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    async with running(web_app(tmp_path)) as h:
        h.app.db.close()  # the database goes away under the running server
        with caplog.at_level(logging.ERROR):
            async with client() as http, http.get(url(h, "/progress")) as response:
                assert response.status == 500
                text = await response.text()
        ref = re.search(r"Something went wrong \(ref: ([0-9a-f]{4})\)", text)
        assert ref, text
        assert "Traceback" not in text and "RuntimeError" not in text
        assert f"(ref: {ref.group(1)})" in caplog.text


# --- signing in ---------------------------------------------------------------------------


async def sign_in(http: aiohttp.ClientSession, h: Harness, link: str) -> aiohttp.ClientResponse:
    async with http.get(link) as landing:
        assert landing.status == 200
        assert "Sign in" in await landing.text()
    response = await http.post(url(h, "/signin"), data={"t": token_of(link)},
                               allow_redirects=False)  # fmt: skip
    response.release()
    return response


async def test_a_coordinator_signs_in_from_a_link_and_sees_the_dashboard(site: Harness):
    await site.ok("coco", "task post translation Leaflet for Warsaw --language pl")
    await site.ok("coco", "reminder add Call the press --in 2h")
    await site.ok("alice", "volunteer join translator --languages pl,de --country PL")
    link = await sign_in_link(site.app)
    assert link.startswith(url(site, "/signin?t="))
    async with client() as http:
        response = await sign_in(http, site, link)
        assert response.status == 303 and response.headers["Location"] == "/dashboard"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
        async with http.get(url(site, "/dashboard")) as page:
            assert page.status == 200
            assert page.headers["Cache-Control"] == "no-store"
            text = await page.text()
    headings = Page(text).headings
    for heading in ("Queue by language and status", "Jobs", "Claims about to expire",
                    "Upcoming reminders", "Volunteers' coverage"):  # fmt: skip
        assert heading in headings
    assert "Leaflet for Warsaw" in text and "Call the press" in text
    assert "Polish (pl)" in text and "Poland (PL)" in text
    assert "Coco Ordinator" in text


async def test_the_dashboard_lists_jobs_by_status_and_work_in_review(site: Harness):
    await site.ok("coco", "task post translation Leaflet for the fair --language pl,de")
    await site.ok("alice", "volunteer join translator --languages pl,de")
    await site.ok("alice", "task claim 1")
    await site.ok("alice", "task done 1 https://example.org/pl.odt")
    link = await sign_in_link(site.app)
    async with client() as http:
        assert (await sign_in(http, site, link)).status == 303
        async with http.get(url(site, "/dashboard")) as page:
            text = await page.text()
    jobs = text[text.index('id="jobs"') : text.index('id="expiring"')]
    assert "Leaflet for the fair" in jobs
    row = jobs[jobs.index("Leaflet for the fair") :]
    row = row[: row.index("</tr>")]
    cells = [c.split(">")[-1] for c in row.split("</td>")[:-1]]
    # kind, languages, then open / claimed / in review / done / cancelled
    assert cells[1:] == ["translation", "2", "1", "0", "1", "0", "0"], cells
    queue = text[: text.index('id="jobs"')]
    assert "in_review" in queue or "in review" in queue


async def test_a_replayed_link_is_refused(site: Harness, caplog: pytest.LogCaptureFixture):
    link = await sign_in_link(site.app)
    with caplog.at_level(logging.INFO, logger="bot.web.server"):
        async with client() as http:
            assert (await sign_in(http, site, link)).status == 303
        async with client() as other:
            response = await other.post(url(site, "/signin"), data={"t": token_of(link)})
            assert response.status == 403
            assert "used already" in await response.text()
            async with other.get(url(site, "/dashboard")) as page:
                assert page.status == 401
    assert "dashboard sign-in accepted (1 since start)" in caplog.text
    assert "dashboard sign-in refused: used" in caplog.text
    assert "coco" not in caplog.text.lower()


async def test_an_expired_link_is_refused(site: Harness):
    link = await sign_in_link(site.app)
    site.clock.advance(timedelta(minutes=10, seconds=1))
    async with client() as http:
        async with http.get(link) as landing:
            assert landing.status == 403 and "expired" in await landing.text()
        response = await http.post(url(site, "/signin"), data={"t": token_of(link)})
        assert response.status == 403
        async with http.get(url(site, "/dashboard")) as page:
            assert page.status == 401


def _flip(token: str, at: int) -> str:
    swap = "a" if token[at] != "a" else "b"
    return token[:at] + swap + token[at + 1 :]


async def test_forged_links_are_refused(site: Harness):
    token = token_of(await sign_in_link(site.app))
    _, payload, _mac = token.split(".")
    other_key = Signer("not the bot's secret").sign(
        "link", Grant("x" * 32, COCO, Basis.NAMED, site.clock.now() + timedelta(minutes=5))
    )
    forged = [
        _flip(token, 5),  # the payload changed
        _flip(token, len(token) - 1),  # the mac changed
        other_key,  # signed with another key
        f"v1.{payload}",
        "",
        "v1." + "a" * 5000,
    ]
    async with client() as http:
        for bad in forged:
            response = await http.post(url(site, "/signin"), data={"t": bad})
            assert response.status == 403, bad[:40]
            response.release()
        async with http.get(url(site, "/dashboard")) as page:
            assert page.status == 401


async def test_without_a_valid_session_nothing_of_the_dashboard_is_shown(site: Harness):
    await site.ok("coco", "task post translation Secret plans --language pl")
    link = await sign_in_link(site.app)
    async with client() as http:
        await sign_in(http, site, link)
        cookie = next(c.value for c in http.cookie_jar if c.key == "vb_session")
    someone_else = UserRef("console", "mallory", "Mallory")
    signer = await site.app.services.signin.signer()
    grant = signer.verify("session", cookie, site.clock.now())
    cookies = {
        "missing": None,
        "garbage": "v1.abc.def",
        "another person's, edited": cookie.replace(cookie.split(".")[1], signer.sign(
            "session", Grant(grant.id, someone_else, grant.basis, grant.expires_at)
        ).split(".")[1]),
        "a link used as a cookie": token_of(await sign_in_link(site.app)),
    }  # fmt: skip
    for what, value in cookies.items():
        async with aiohttp.ClientSession() as http:
            headers = {"Cookie": f"vb_session={value}"} if value else {}
            for path in ("/dashboard", "/dashboard/queue.csv"):
                async with http.get(url(site, path), headers=headers) as page:
                    assert page.status == 401, (what, path)
                    text = await page.text()
                    assert "Secret plans" not in text and "dashboard link" in text


async def test_a_session_of_someone_no_longer_named_a_coordinator_is_refused(tmp_path: Path):
    async with running(web_app(tmp_path)) as h, client() as http:
        await sign_in(http, h, await sign_in_link(h.app))
        cookie = next(c.value for c in http.cookie_jar if c.key == "vb_session")
        async with http.get(url(h, "/dashboard")) as page:
            assert page.status == 200
    # The operator takes coco out of the configuration and restarts the bot.
    headers = {"Cookie": f"vb_session={cookie}"}
    async with (
        running(web_app(tmp_path, coordinators=())) as h2,
        aiohttp.ClientSession() as http,
        http.get(url(h2, "/dashboard"), headers=headers) as page,
    ):
        assert page.status == 401


async def test_a_session_from_platform_standing_is_short(site: Harness):
    # The test platform's coordinator is recognised by the adapter, not named in config.
    reply = await site.run("coco", "dashboard link")
    link = re.search(r"(http://\S+)", reply.body.plain())
    assert link
    async with client() as http:
        response = await sign_in(http, site, link.group(1))
        assert "Max-Age=1800" in response.headers["Set-Cookie"]
        site.clock.advance(timedelta(minutes=31))
        async with http.get(url(site, "/dashboard")) as page:
            assert page.status == 401


async def test_signing_out_ends_the_session_everywhere(site: Harness):
    async with client() as http:
        await sign_in(http, site, await sign_in_link(site.app))
        cookie = next(c.value for c in http.cookie_jar if c.key == "vb_session")
        async with http.post(url(site, "/signout"), allow_redirects=False) as out:
            assert out.status == 303
    async with (
        aiohttp.ClientSession() as http,
        http.get(url(site, "/dashboard"), headers={"Cookie": f"vb_session={cookie}"}) as p,
    ):
        assert p.status == 401


async def test_a_sign_in_form_sent_from_another_site_is_refused(site: Harness):
    link = await sign_in_link(site.app)
    async with client() as http:
        response = await http.post(url(site, "/signin"), data={"t": token_of(link)},
                                   headers={"Origin": "https://evil.example"})  # fmt: skip
        assert response.status == 403
    async with client() as http:  # the link was not spent by the refused attempt
        assert (await sign_in(http, site, link)).status == 303


async def test_the_queue_exports_as_csv_without_names_and_without_formulas(site: Harness):
    await site.ok("coco", "task post translation =HYPERLINK(1) --language pl")
    await site.ok("coco", "task post video-editing Clip for the launch --priority urgent")
    await site.ok("alice", "volunteer join translator --languages pl")
    await site.ok("alice", "task claim 1")
    async with client() as http:
        await sign_in(http, site, await sign_in_link(site.app))
        async with http.get(url(site, "/dashboard/queue.csv")) as response:
            assert response.status == 200 and response.content_type == "text/csv"
            text = await response.text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["id", "kind", "title"]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["1"][2] == "'=HYPERLINK(1)" and by_id["1"][6] == "claimed"
    assert by_id["2"][5] == "urgent"
    assert "alice" not in text.lower() and "coco" not in text.lower()


async def test_dashboard_link_is_for_coordinators_and_audited(site: Harness):
    refusal = await as_person(site.app, UserRef("console", "eve", "Eve"), "dashboard link",
                              coordinator=False)  # fmt: skip
    assert refusal.is_error and "for coordinators" in refusal.body.plain()
    await sign_in_link(site.app)
    trail = await site.app.services.audit.recent(5)
    assert [(e.command, e.outcome) for e in trail][:2] == [
        ("dashboard link", "done"),
        ("dashboard link", "refused"),
    ]
    assert "t=" not in " ".join(e.detail for e in trail)


async def test_dashboard_link_says_so_when_the_web_server_is_off(harness: Harness):
    reply = await harness.run("coco", "dashboard link")
    assert reply.private and "not switched on" in reply.body.plain()
    assert "with `[web] enabled = true` (and `public_url`)" in reply.body.markdown()


async def test_no_secret_link_or_cookie_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.DEBUG):
        async with running(web_app(tmp_path)) as h:
            link = await sign_in_link(h.app)
            async with client() as http:
                await sign_in(http, h, link)
                cookie = next(c.value for c in http.cookie_jar if c.key == "vb_session")
                async with http.get(url(h, "/dashboard")) as page:
                    assert page.status == 200
            secret = await h.app.services.state.get("web.signing_secret")
    assert secret
    logged = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    for value in (token_of(link), token_of(link).split(".")[2], cookie, secret):
        assert value not in logged
    assert "web GET signin 200" in caplog.text  # the access log names routes, not addresses
    assert secret not in repr(h.app.services.signin)


# --- health and metrics -------------------------------------------------------------------


async def test_healthz_is_200_when_the_database_answers(site: Harness):
    async with client() as http, http.get(url(site, "/healthz")) as response:
        assert response.status == 200
        assert await response.json() == {"database": "up", "platforms": {}, "duties": {},
                                         "role": "active", "status": "ok"}  # fmt: skip


async def test_healthz_is_503_naming_the_database_when_it_is_gone(tmp_path: Path):
    async with running(web_app(tmp_path)) as h:
        h.app.db.close()
        async with client() as http, http.get(url(h, "/healthz")) as response:
            assert response.status == 503
            body = await response.json()
    assert body["database"] == "down" and body["status"] == "down"


async def test_healthz_names_a_platform_that_is_not_connected(tmp_path: Path):
    app = web_app(tmp_path)
    read, write = socket.socketpair()
    console = ConsoleAdapter(app, user="coco", coordinators={"coco"},
                             stdin=read.makefile("r"), stdout=io.StringIO(),
                             interactive=False)  # fmt: skip
    await app.start([console])
    try:
        async with client() as http:
            async with http.get(url_of(app, "/healthz")) as response:
                assert response.status == 200
                assert (await response.json())["platforms"] == {"console": "up"}
            write.close()  # end of input: the console adapter is done
            await asyncio.wait_for(console.wait_closed(), 10)
            async with http.get(url_of(app, "/healthz")) as response:
                assert response.status == 503
                assert (await response.json())["platforms"] == {"console": "down"}
    finally:
        await app.stop()
        read.close()


async def test_a_standby_is_healthy_says_so_and_its_lease_gauges_read_0(tmp_path: Path):
    from tests.harness import make_app

    def app(name: str) -> App:
        (tmp_path / name).mkdir()
        return make_app(
            tmp_path / name,
            storage={"url": f"sqlite:///{tmp_path / 'shared.db'}"},
            bot={"lease_ttl": "30s"},
            web={"enabled": True, "listen": "127.0.0.1:0", "cache_ttl": 0},
            campaign={"collection_ends": "2026-12-31"},
        )

    async def health(a: App) -> tuple[int, dict]:
        async with client() as http, http.get(url_of(a, "/healthz")) as response:
            return response.status, await response.json()

    async def held(a: App) -> dict[str, float]:
        async with client() as http, http.get(url_of(a, "/metrics")) as response:
            families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        return {s.labels["duty"]: s.value for s in families["volunteer_bot_lease_held"].samples}

    duties = ["poller", "retention", "scheduler"]
    first, second = app("one"), app("two")
    try:
        await first.start([])
        await second.start([])
        assert await health(first) == (200, {
            "database": "up", "platforms": {}, "duties": dict.fromkeys(duties, "held"),
            "role": "active", "status": "ok",
        })  # fmt: skip
        status, body = await health(second)
        assert status == 200 and body["role"] == "standby"
        assert body["duties"] == dict.fromkeys(duties, "standby")
        assert await held(first) == dict.fromkeys(duties, 1.0)
        assert await held(second) == dict.fromkeys(duties, 0.0)
        await first.stop()
        await second.leases.beat()
        assert (await health(second))[1]["role"] == "active"
        assert await held(second) == dict.fromkeys(duties, 1.0)
    finally:
        await first.stop()
        await second.stop()


def url_of(app: App, path: str) -> str:
    assert app.web is not None
    return app.web.url + path


async def test_metrics_parse_and_count_commands_without_personal_data(site: Harness):
    await site.ok("alice", "volunteer join translator --languages pl")
    await site.ok("coco", "signatures set 1000")
    await site.err("alice", "signatures set 5")
    await site.ok("coco", "reminder add Call the press --in 1m")
    site.clock.advance(timedelta(minutes=1, seconds=3))
    await site.app.cogs[[type(c).__name__ for c in site.app.cogs].index("Reminders")].run_due()
    async with client() as http, http.get(url(site, "/metrics")) as response:
        assert response.status == 200
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    commands = {
        (s.labels["command"], s.labels["outcome"]): s.value
        for s in families["volunteer_bot_commands"].samples
        if s.name.endswith("_total")
    }
    assert commands[("signatures set", "done")] == 1
    assert commands[("signatures set", "refused")] == 1
    assert commands[("volunteer join", "done")] == 1
    latency = families["volunteer_bot_command_latency_seconds"]
    counts = [s for s in latency.samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts) >= 4
    lateness = families["volunteer_bot_reminder_lateness_seconds"]
    total = next(s for s in lateness.samples if s.name.endswith("_sum")).value
    assert 2.9 <= total <= 3.1
    assert "volunteer_bot_outbox_backlog" in families
    assert "volunteer_bot_outbox_oldest_age_seconds" in families
    labels = " ".join(
        str(v) for f in families.values() for s in f.samples for v in s.labels.values()
    )
    for personal in ("alice", "coco", "Coco", "press", "test:room"):
        assert personal not in labels


async def test_the_outbox_backlog_is_measured_from_the_table(site: Harness):
    repo = site.app.services.outbox_repo
    from bot.domain import Markup

    await repo.add(key="t:1", target="nowhere:1", body=Markup.trusted("x"), now=site.clock.now())
    site.clock.advance(timedelta(seconds=90))
    async with client() as http, http.get(url(site, "/metrics")) as response:
        families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    assert families["volunteer_bot_outbox_backlog"].samples[0].value == 1
    assert families["volunteer_bot_outbox_oldest_age_seconds"].samples[0].value == 90


# --- hardening ----------------------------------------------------------------------------


async def test_a_client_over_its_rate_gets_429_with_retry_after(tmp_path: Path):
    async with running(web_app(tmp_path, rate=0.01, burst=3)) as h, client() as http:
        statuses = []
        for _ in range(4):
            async with http.get(url(h, "/progress.json")) as response:
                statuses.append(response.status)
                retry = response.headers.get("Retry-After")
        assert statuses == [200, 200, 200, 429]
        # One token takes 100 s at this rate; the header rounds up what is left of it, and the
        # few milliseconds between the requests refill almost nothing.
        assert retry is not None and 99 <= int(retry) <= 100


def test_buckets_refill_at_their_rate_and_forget_the_least_recent_client():
    buckets = ClientBuckets(rate=2.0, burst=2, max_clients=2)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("a", now=1.0) == 0.0  # refilled
    buckets.take("b", now=1.0)
    buckets.take("c", now=1.0)
    assert "a" not in buckets._buckets and len(buckets._buckets) == 2


async def test_the_pace_spaces_requests_and_refuses_a_queue_too_long():
    pace = Pace(rate=20.0, max_wait=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(pace.admit() for _ in range(20)))
    assert results.count(True) == 11  # now, then one per 50 ms up to 500 ms ahead
    assert results[-1] is False
    assert loop.time() - started >= 0.45


async def test_a_public_page_lets_a_command_being_answered_go_first():
    gate = asyncio.Event()  # clear: a command is being answered
    pace = Pace(rate=1000.0, gate=gate)
    order: list[str] = []

    async def page() -> None:
        assert await pace.admit()
        order.append("page")

    waiting = asyncio.create_task(page())
    for _ in range(3):
        await asyncio.sleep(0)  # let the page reach the gate
    order.append("command answered")
    gate.set()
    await waiting
    assert order == ["command answered", "page"]


async def test_a_page_waits_for_commands_only_so_long():
    gate = asyncio.Event()  # a command that never ends
    pace = Pace(rate=1000.0, gate=gate)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await pace.admit()
    assert 0.04 <= loop.time() - started < 1.0


async def test_the_core_is_quiet_only_between_commands(site: Harness):
    core = site.app.core
    seen: list[bool] = []
    assert core.quiet.is_set()
    reply = site.run("alice", "volunteer profile")
    task = asyncio.ensure_future(reply)
    while not task.done():
        seen.append(core.quiet.is_set())
        await asyncio.sleep(0)
    await task
    assert False in seen, "not quiet while the command ran"
    assert core.quiet.is_set()


async def test_a_request_body_over_the_limit_gets_413(site: Harness):
    async with client() as http:
        response = await http.post(url(site, "/signin"), data={"t": "x" * 40_000})
        assert response.status == 413


async def test_the_server_listens_on_the_configured_address_only(site: Harness):
    assert site.app.web is not None
    host, port = site.app.web.address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert site.app.web._runner is not None and len(site.app.web._runner.addresses) == 1
    for other in ("127.0.0.2", "::1"):
        family = socket.AF_INET6 if ":" in other else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                code = probe.connect_ex((other, int(port)))
            except OSError as exc:  # no IPv6 on this machine: nothing listens there either
                code = exc.errno or 1
            assert code != 0, other


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('listen = "bot.example.org:8080"', "not a host name"),
        ('listen = "127.0.0.1"', "not an address like"),
        ('listen = "127.0.0.1:99999"', "not an address like"),
        ('public_url = "bot.example.org"', "https://bot.example.org"),
    ],
)
def test_a_web_address_that_cannot_be_used_stops_the_bot_naming_the_key(
    tmp_path: Path, line: str, problem: str
):
    config = tmp_path / "config.toml"
    config.write_text(f"[web]\n{line}\n")
    with pytest.raises(ConfigError, match="web") as caught:
        load_settings(config)
    assert problem in str(caught.value)


def test_web_addresses_in_the_config_are_read_as_written(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('[web]\nlisten = "[::1]:8081"\npublic_url = "https://bot.example.org/"\n')
    settings, warnings = load_settings(config)
    assert warnings == []
    assert settings.web.listen == "[::1]:8081"
    assert settings.web.public_url == "https://bot.example.org"


async def test_an_address_already_taken_stops_the_bot_with_one_line(site: Harness, tmp_path: Path):
    assert site.app.web is not None
    (tmp_path / "other").mkdir()
    other = web_app(tmp_path / "other", listen=site.app.web.address)
    try:
        with pytest.raises(ConfigError, match=r"web.listen: cannot listen on 127.0.0.1:\d+"):
            await other.start([])
    finally:
        await other.stop()
