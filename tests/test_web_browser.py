"""The pages in a real headless Chromium: what renders, at desktop and phone width, and errors.

Skips when Chromium is missing, except under CI or with REQUIRE_E2E=1, where that fails.
Screenshots go to ``test-artifacts/browser/`` (or ``$ARTIFACTS_DIR/browser``), printed below.
"""

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from tests.devtools import Browser, browser, chromium, required
from tests.harness import Harness
from tests.web_site import record_counts, running, sign_in_link, web_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "test-artifacts")) / "browser"
WIDTHS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}

# What the progress page shows once rendered, read from the DOM.
PROGRESS_FACTS = """(() => {
  const bars = [...document.querySelectorAll("progress.country-bar")];
  const img = document.querySelector("figure img");
  return {
    h1: document.querySelector("h1").textContent.trim(),
    bars: bars.length,
    filled: bars.filter(b => b.value > 0).length,
    over: document.querySelectorAll(".country.over").length,
    countries: document.getElementById("countries-over").textContent.replace(/\\s+/g, " ").trim(),
    total: document.querySelector('[data-field="total"]').textContent,
    chart: img.complete && img.naturalWidth > 0,
    alt: img.alt,
    overflow: document.documentElement.scrollWidth > window.innerWidth,
    styled: getComputedStyle(document.body).fontFamily.length > 0
      && getComputedStyle(document.querySelector("progress")).appearance === "none",
  };
})()"""

DASHBOARD_FACTS = """(() => ({
  path: location.pathname,
  headings: [...document.querySelectorAll("h2")].map(h => h.textContent.trim()),
  rows: document.querySelectorAll("#jobs tbody tr").length,
  expiring: document.querySelectorAll("#expiring tbody tr").length,
  cookieVisible: document.cookie.includes("vb_session"),
  overflow: document.documentElement.scrollWidth > window.innerWidth,
}))()"""


@pytest.fixture(scope="module")
def binary() -> str:
    found = chromium()
    if found is None:
        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if required():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
async def chrome(binary: str, tmp_path: Path) -> AsyncIterator[Browser]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with browser(binary, profile) as instance:
        yield instance


@pytest.fixture
def artifacts(capsys: pytest.CaptureFixture[str]) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\nbrowser screenshots: {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(web_app(tmp_path)) as h:
        await record_counts(h)
        yield h


def base(h: Harness) -> str:
    assert h.app.web is not None
    return h.app.web.url


async def test_progress_renders_its_bars_and_n_of_7_at_desktop_and_phone_width(
    site: Harness, chrome: Browser, artifacts: Path
):
    for label, (width, height, mobile) in WIDTHS.items():
        tab = await chrome.new_tab()
        await tab.viewport(width, height, mobile=mobile)
        await tab.open(base(site) + "/progress")
        facts = await tab.run(PROGRESS_FACTS)
        await tab.screenshot(artifacts / f"progress-{label}.png")
        assert facts["h1"] == "Reclaim Your Face"
        assert facts["bars"] == 27 and facts["filled"] == 4 and facts["over"] == 3
        assert facts["countries"].startswith("3 of 7 countries over their national minimum")
        assert facts["total"] == "312,345"
        assert facts["chart"], "the chart image loaded"
        assert "312,345 of 1,000,000" in facts["alt"]
        assert facts["styled"], "the stylesheet applied"
        assert not facts["overflow"], f"{label}: the page is wider than the screen"
        assert tab.errors == [], tab.errors


async def campaign_site(embed: str, progress: str) -> web.AppRunner:
    """Another origin's page that frames the counter, and (wrongly) the progress page."""
    html = (
        "<!doctype html><title>Campaign</title><h1>Sign the initiative</h1>"
        f'<iframe id="counter" src="{embed}" width="420" height="190"'
        ' style="border:0"></iframe>'
        f'<iframe id="full" src="{progress}" width="420" height="190"></iframe>'
    )

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def direct_fit(chrome: Browser, address: str) -> bool:
    tab = await chrome.new_tab()
    await tab.viewport(420, 190)
    await tab.open(address)
    return bool(await tab.run("document.documentElement.scrollHeight <= window.innerHeight"))


async def test_a_campaign_site_can_frame_the_embed_but_not_the_other_pages(
    site: Harness, chrome: Browser, artifacts: Path
):
    runner = await campaign_site(base(site) + "/embed", base(site) + "/progress")
    try:
        host, port = runner.addresses[0][:2]
        tab = await chrome.new_tab()
        await tab.viewport(900, 320)
        await tab.open(f"http://{host}:{port}/")
        await tab.screenshot(artifacts / "embed-on-a-campaign-site.png")
        tree = await tab.send("Page.getFrameTree")
        fits = await direct_fit(chrome, base(site) + "/embed")
    finally:
        await runner.cleanup()
    frames = {child["frame"]["url"] for child in tree["frameTree"].get("childFrames", [])}
    assert base(site) + "/embed" in frames, frames
    assert base(site) + "/progress" not in frames, "the full page refuses to be framed"
    assert fits, "the counter fits the README's 420 x 190 frame without scrolling"
    direct = await chrome.new_tab()
    await direct.viewport(420, 260)
    await direct.open(base(site) + "/embed")
    text = await direct.run("document.body.innerText")
    await direct.screenshot(artifacts / "embed.png")
    assert "312,345" in text and "3 of 7 countries" in text
    assert direct.errors == [], direct.errors


async def test_a_coordinator_signs_in_from_the_link_and_the_dashboard_renders(
    site: Harness, chrome: Browser, artifacts: Path
):
    await site.ok("coco", "task post translation Leaflet for Warsaw --language pl")
    await site.ok("coco", "task post video-editing Launch clip --priority urgent")
    await site.ok("coco", 'reminder add Weekly call --cron "0 18 * * 2"')
    await site.ok("alice", "volunteer join translator --languages pl,de --country PL")
    await site.ok("alice", "task claim 1")
    site.clock.advance(timedelta(days=6))  # the claim (7 days) is in its last fifth
    link = await sign_in_link(site.app)
    for label, (width, height, mobile) in WIDTHS.items():
        tab = await chrome.new_tab()
        await tab.viewport(width, height, mobile=mobile)
        if label == "desktop":
            await tab.open(link)
            await tab.screenshot(artifacts / "signin.png")
            await tab.submit("form button")
        else:  # the session cookie is shared with the first tab
            await tab.open(base(site) + "/dashboard")
        facts = await tab.run(DASHBOARD_FACTS)
        await tab.screenshot(artifacts / f"dashboard-{label}.png")
        assert facts["path"] == "/dashboard"
        assert facts["headings"] == [
            "Queue by language and status", "Jobs", "Claims about to expire",
            "Upcoming reminders", "Volunteers' coverage",
        ]  # fmt: skip
        assert facts["rows"] == 2 and facts["expiring"] == 1
        assert not facts["cookieVisible"], "the session cookie is HttpOnly"
        assert tab.errors == [], tab.errors


async def test_the_used_link_shows_why_it_no_longer_works(
    site: Harness, chrome: Browser, artifacts: Path
):
    link = await sign_in_link(site.app)
    tab = await chrome.new_tab()
    await tab.open(link)
    await tab.submit("form button")
    again = await chrome.new_tab()
    await again.open(link)
    await again.submit("form button")
    text = await again.run("document.body.innerText")
    await again.screenshot(artifacts / "signin-used.png")
    assert "used already" in text
