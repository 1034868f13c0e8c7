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
