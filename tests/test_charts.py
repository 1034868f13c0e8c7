"""The charts: drawn in their reader's language, where the font can draw it, else in English."""

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageFont

from bot import charts
from bot.charts import ChartData, CoverageData, coverage_png, progress_png
from bot.domain.i18n import ENGLISH, Reader
from tests.harness import Harness
from tests.test_signatures import app_at

DATA = ChartData(
    title="Reclaim Your Face",
    total=312_345,
    goal=1_000_000,
    counts={"DE": 70_000, "PL": 12_000, "MT": 5_000},
    minimums={"DE": 69_120, "PL": 38_160, "MT": 4_320},
    needed=7,
)
COVERAGE = CoverageData({"de": {"open": 3, "claimed": 1, "in review": 0, "done": 2},
                         "pl": {"open": 1, "claimed": 0, "in review": 2, "done": 0}})  # fmt: skip


@pytest.fixture
def ascii_font(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No system font: Pillow's own, which has no letters beyond ASCII."""
    monkeypatch.setattr(charts, "SYSTEM_FONTS", ())
    charts._font.cache_clear()
    yield
    charts._font.cache_clear()


def has_system_font() -> bool:
    font = charts._font(13)
    return isinstance(font, ImageFont.FreeTypeFont) and font.getname()[0] != "Aileron"


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


@pytest.mark.parametrize("language", ["de", "pl", "el", "bg", "mt"])
def test_a_chart_in_another_language_is_drawn_with_its_words(language):
    if not has_system_font():
        pytest.skip("no system font with these letters: the English fallback is tested below")
    english, other = progress_png(DATA, ENGLISH), progress_png(DATA, Reader(language))
    assert picture(english).size == picture(other).size
    assert other != english
    assert coverage_png(COVERAGE, Reader(language)) != coverage_png(COVERAGE, ENGLISH)


def test_the_system_font_has_every_letter_of_the_eu_languages():
    if not has_system_font():
        pytest.skip("no DejaVu, Noto, Liberation or FreeSans font on this machine")
    font = charts._font(13)
    assert charts.drawable(font, "Ąłőűșțħġż ÄÖÜß ΣύνολοΠ Подписи ščžřě")


@pytest.mark.usefixtures("ascii_font")
@pytest.mark.parametrize("language", ["el", "bg", "pl"])
def test_a_language_the_font_cannot_draw_falls_back_to_english_not_to_boxes(language):
    font = charts._font(13)
    assert not charts.drawable(font, "Σύνολο") and not charts.drawable(font, "zadań")
    assert progress_png(DATA, Reader(language)) == progress_png(DATA, ENGLISH)
    assert coverage_png(COVERAGE, Reader(language)) == coverage_png(COVERAGE, ENGLISH)


async def test_an_announcement_carries_the_chart_in_each_rooms_language(tmp_path: Path):
    h: Harness = app_at(tmp_path, bot={"room_languages": {"test:lobby": "de"}})
    try:
        await h.ok("coco", "signatures set 120000")
        posts = {post.target: post for post in await h.deliver()}
        lobby, announce = posts["test:lobby"], posts["test:announce"]
        assert lobby.reader.language == "de" and announce.reader.language == "en"
        assert lobby.attachment is not None and announce.attachment is not None
        assert picture(lobby.attachment.data).size == picture(announce.attachment.data).size
        if has_system_font():
            assert lobby.attachment.data != announce.attachment.data
        # A reply's chart is in the language of the person it answers.
        await h.ok("ada", "volunteer language de")
        german = (await h.run("ada", "signatures")).attachments[0].data
        assert german == lobby.attachment.data
        english = (await h.run("bob", "signatures")).attachments[0].data
        assert english == announce.attachment.data
    finally:
        await h.app.stop()
