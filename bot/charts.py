"""Progress pictures: the total against the goal, and each country against its minimum."""

import io
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from bot.context import Attachment

WIDTH = 760
ROW = 20
MARGIN = 16
LABEL = 44
NUMBERS = 150
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
TRACK = (228, 230, 235)
DONE = (46, 139, 87)
BELOW = (230, 145, 56)
GOAL = (52, 101, 164)


@dataclass(frozen=True, slots=True)
class ChartData:
    """What the chart shows; the same numbers go into the message text."""

    title: str
    total: int
    goal: int
    counts: Mapping[str, int]
    minimums: Mapping[str, int]
    needed: int


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _bar(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    share: float,
    colour: tuple[int, ...],
) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, fill=TRACK)
    filled = left + round((right - left) * max(0.0, min(share, 1.0)))
    if filled > left:
        draw.rectangle((left, top, filled, bottom), fill=colour)


def progress_png(data: ChartData) -> bytes:
    """A PNG: the total's bar to the goal, then one bar per country to its minimum."""
    rows = list(data.minimums.items())
    height = MARGIN * 2 + 96 + ROW * len(rows)
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, small = _font(18), _font(13)
    over = sum(1 for code, need in rows if data.counts.get(code, 0) >= need)
    share = data.total / data.goal if data.goal else 0.0
    draw.text((MARGIN, MARGIN), data.title, fill=INK, font=big)
    draw.text(
        (MARGIN, MARGIN + 26),
        f"{data.total:,} of {data.goal:,} signatures ({share:.1%})",
        fill=INK,
        font=small,
    )
    _bar(draw, (MARGIN, MARGIN + 46, WIDTH - MARGIN, MARGIN + 62), share, GOAL)
    draw.text(
        (MARGIN, MARGIN + 72),
        f"Countries over their national minimum: {over} of {data.needed}",
        fill=INK,
        font=small,
    )
    top = MARGIN + 96
    for code, need in rows:
        count = data.counts.get(code, 0)
        colour = DONE if count >= need else BELOW
        draw.text((MARGIN, top + 2), code, fill=INK, font=small)
        box = (MARGIN + LABEL, top + 4, WIDTH - MARGIN - NUMBERS, top + ROW - 4)
        _bar(draw, box, count / need if need else 0.0, colour)
        draw.text(
            (WIDTH - MARGIN - NUMBERS + 8, top + 2), f"{count:,} / {need:,}", fill=INK, font=small
        )
        top += ROW
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def progress_attachment(data: ChartData) -> Attachment:
    """The chart as a reply or post attachment."""
    return Attachment("signatures.png", progress_png(data), "image/png")


# The statuses of the coverage chart, in order along each bar, with their colours.
COVERAGE_COLOURS: dict[str, tuple[int, int, int]] = {
    "open": (214, 96, 77),
    "claimed": (230, 145, 56),
    "in review": (52, 101, 164),
    "done": DONE,
}


@dataclass(frozen=True, slots=True)
class CoverageData:
    """Tasks per language (its label) and status (keys of :data:`COVERAGE_COLOURS`)."""

    title: str
    rows: Mapping[str, Mapping[str, int]]


def coverage_png(data: CoverageData) -> bytes:
    """A PNG: one bar per language, split by status, on one scale for all."""
    rows = list(data.rows.items())
    height = MARGIN * 2 + 56 + ROW * max(len(rows), 1)
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, small = _font(18), _font(13)
    draw.text((MARGIN, MARGIN), data.title, fill=INK, font=big)
    left = MARGIN
    for status, colour in COVERAGE_COLOURS.items():
        draw.rectangle((left, MARGIN + 30, left + 12, MARGIN + 42), fill=colour)
        draw.text((left + 16, MARGIN + 29), status, fill=INK, font=small)
        left += 110
    top = MARGIN + 56
    if not rows:
        draw.text((MARGIN, top + 2), "No tasks yet.", fill=INK, font=small)
    widest = max((sum(counts.values()) for _, counts in rows), default=0) or 1
    span = WIDTH - 2 * MARGIN - LABEL - NUMBERS
    for label, counts in rows:
        draw.text((MARGIN, top + 2), label, fill=INK, font=small)
        x = MARGIN + LABEL
        draw.rectangle((x, top + 4, x + span, top + ROW - 4), fill=TRACK)
        for status, colour in COVERAGE_COLOURS.items():
            width = round(span * counts.get(status, 0) / widest)
            if width > 0:
                draw.rectangle((x, top + 4, x + width, top + ROW - 4), fill=colour)
                x += width
        numbers = " / ".join(f"{counts.get(s, 0):,}" for s in COVERAGE_COLOURS)
        draw.text((WIDTH - MARGIN - NUMBERS + 8, top + 2), numbers, fill=INK, font=small)
        top += ROW
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def coverage_attachment(data: CoverageData) -> Attachment:
    """The coverage chart as a reply attachment."""
    return Attachment("coverage.png", coverage_png(data), "image/png")
