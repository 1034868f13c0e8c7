"""Progress pictures: the total against the goal, and each country against its minimum.

The words in a picture are in its reader's language, with their number format, drawn in a
sans-serif the system has (DejaVu, Noto, Liberation or FreeSans), else in Pillow's own font,
which has little beyond ASCII. A picture whose words the font cannot draw is drawn in English
instead, so none ever shows empty boxes.
"""

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from bot.context import Attachment
from bot.domain.i18n import ENGLISH, Msg, Reader, _, ngettext, number
from bot.domain.markup import Markup
from bot.domain.vocab import STATUS_WORDS, TaskStatus

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


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
# Sans-serif fonts with Greek and Cyrillic as well as every Latin letter of the EU languages,
# by the names Pillow looks for in the system's font folders.
SYSTEM_FONTS = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf",
                "FreeSans.ttf")  # fmt: skip

TOTAL = ngettext("{total:,} of {goal:,} signature ({share:.1%})",
                 "{total:,} of {goal:,} signatures ({share:.1%})", count="goal")  # fmt: skip
COUNTRIES_OVER = _("Countries over their national minimum: {over:,} of {needed:,}")
COVERAGE_TITLE = _("Tasks by language and status")
NO_TASKS = _("No tasks yet.")


@cache
def _font(size: int) -> Font:
    for name in SYSTEM_FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


@cache
def _missing_glyph(font: Font) -> bytes:
    """What ``font`` draws for a character it lacks (a private-use one nobody has)."""
    return bytes(font.getmask("\U000f0000"))


@cache
def _has(font: Font, char: str) -> bool:
    return bytes(font.getmask(char)) != _missing_glyph(font)


def drawable(font: Font, text: str) -> bool:
    """Whether ``font`` has a glyph for every character of ``text``."""
    return all(_has(font, c) for c in set(text) if c != " ")


def _say(reader: Reader, template: Msg, **values: object) -> str:
    return Markup.format(template, **values).plain(reader)


def _count(reader: Reader, value: int) -> str:
    return number(value, reader, ",")


def _lines_for(font: Font, reader: Reader, lines: Callable[[Reader], list[str]]) -> list[str]:
    """A picture's ``lines`` for ``reader``, if ``font`` can draw them all; else in English."""
    said = lines(reader)
    if reader is ENGLISH or all(drawable(font, line) for line in said):
        return said
    return lines(ENGLISH)


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


def _progress_lines(data: ChartData, over: int, share: float, reader: Reader) -> list[str]:
    lines = [
        _say(reader, TOTAL, total=data.total, goal=data.goal, share=share),
        _say(reader, COUNTRIES_OVER, over=over, needed=data.needed),
    ]
    lines += [
        f"{_count(reader, data.counts.get(code, 0))} / {_count(reader, need)}"
        for code, need in data.minimums.items()
    ]
    return lines


def progress_png(data: ChartData, reader: Reader = ENGLISH) -> bytes:
    """A PNG: the total's bar to the goal, then one bar per country to its minimum."""
    rows = list(data.minimums.items())
    height = MARGIN * 2 + 96 + ROW * len(rows)
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, small = _font(18), _font(13)
    over = sum(1 for code, need in rows if data.counts.get(code, 0) >= need)
    share = data.total / data.goal if data.goal else 0.0
    lines = _lines_for(small, reader, lambda r: _progress_lines(data, over, share, r))
    total, over_line, *numbers = lines
    draw.text((MARGIN, MARGIN), data.title, fill=INK, font=big)
    draw.text((MARGIN, MARGIN + 26), total, fill=INK, font=small)
    _bar(draw, (MARGIN, MARGIN + 46, WIDTH - MARGIN, MARGIN + 62), share, GOAL)
    draw.text((MARGIN, MARGIN + 72), over_line, fill=INK, font=small)
    top = MARGIN + 96
    for (code, need), count_line in zip(rows, numbers, strict=True):
        count = data.counts.get(code, 0)
        colour = DONE if count >= need else BELOW
        draw.text((MARGIN, top + 2), code, fill=INK, font=small)
        box = (MARGIN + LABEL, top + 4, WIDTH - MARGIN - NUMBERS, top + ROW - 4)
        _bar(draw, box, count / need if need else 0.0, colour)
        draw.text((WIDTH - MARGIN - NUMBERS + 8, top + 2), count_line, fill=INK, font=small)
        top += ROW
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def progress_attachment(data: ChartData, reader: Reader = ENGLISH) -> Attachment:
    """The chart as a reply or post attachment."""
    return Attachment("signatures.png", progress_png(data, reader), "image/png")


# The statuses of the coverage chart, in order along each bar, with their colours.
COVERAGE_COLOURS: dict[str, tuple[int, int, int]] = {
    "open": (214, 96, 77),
    "claimed": (230, 145, 56),
    "in review": (52, 101, 164),
    "done": DONE,
}
# The statuses' names in the chart's legend.
COVERAGE_LEGEND: dict[str, Msg] = {
    "open": STATUS_WORDS[TaskStatus.OPEN],
    "claimed": STATUS_WORDS[TaskStatus.CLAIMED],
    "in review": STATUS_WORDS[TaskStatus.IN_REVIEW],
    "done": STATUS_WORDS[TaskStatus.DONE],
}


@dataclass(frozen=True, slots=True)
class CoverageData:
    """Tasks per language (its label) and status (keys of :data:`COVERAGE_COLOURS`)."""

    rows: Mapping[str, Mapping[str, int]]


def _coverage_lines(data: CoverageData, reader: Reader) -> list[str]:
    """The title, the empty chart's line, the legend, then each row's numbers."""
    lines = [_say(reader, COVERAGE_TITLE), _say(reader, NO_TASKS)]
    lines += [_say(reader, name) for name in COVERAGE_LEGEND.values()]
    lines += [
        " / ".join(_count(reader, counts.get(s, 0)) for s in COVERAGE_COLOURS)
        for counts in data.rows.values()
    ]
    return lines


def coverage_png(data: CoverageData, reader: Reader = ENGLISH) -> bytes:
    """A PNG: one bar per language, split by status, on one scale for all."""
    rows = list(data.rows.items())
    height = MARGIN * 2 + 56 + ROW * max(len(rows), 1)
    image = Image.new("RGB", (WIDTH, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    big, small = _font(18), _font(13)
    title, no_tasks, *rest = _lines_for(small, reader, lambda r: _coverage_lines(data, r))
    names, numbers = rest[: len(COVERAGE_LEGEND)], rest[len(COVERAGE_LEGEND) :]
    draw.text((MARGIN, MARGIN), title, fill=INK, font=big)
    left = MARGIN
    for colour, name in zip(COVERAGE_COLOURS.values(), names, strict=True):
        draw.rectangle((left, MARGIN + 30, left + 12, MARGIN + 42), fill=colour)
        draw.text((left + 16, MARGIN + 29), name, fill=INK, font=small)
        left += max(110, 16 + round(draw.textlength(name, font=small)) + 20)
    top = MARGIN + 56
    if not rows:
        draw.text((MARGIN, top + 2), no_tasks, fill=INK, font=small)
    widest = max((sum(counts.values()) for _, counts in rows), default=0) or 1
    span = WIDTH - 2 * MARGIN - LABEL - NUMBERS
    for (label, counts), row_numbers in zip(rows, numbers, strict=True):
        draw.text((MARGIN, top + 2), label, fill=INK, font=small)
        x = MARGIN + LABEL
        draw.rectangle((x, top + 4, x + span, top + ROW - 4), fill=TRACK)
        for status, colour in COVERAGE_COLOURS.items():
            width = round(span * counts.get(status, 0) / widest)
            if width > 0:
                draw.rectangle((x, top + 4, x + width, top + ROW - 4), fill=colour)
                x += width
        draw.text((WIDTH - MARGIN - NUMBERS + 8, top + 2), row_numbers, fill=INK, font=small)
        top += ROW
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def coverage_attachment(data: CoverageData, reader: Reader = ENGLISH) -> Attachment:
    """The coverage chart as a reply attachment."""
    return Attachment("coverage.png", coverage_png(data, reader), "image/png")
