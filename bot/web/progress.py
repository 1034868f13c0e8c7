"""The public figures: total against the goal, every member state against its minimum.

:func:`figures` is pure. :class:`ProgressFeed` keeps the latest figures for ``cache_ttl``
(one database read at a time, however many visitors ask at once) and the chart of each
count, drawn once off the event loop.
"""

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.charts import ChartData, progress_png
from bot.config import CampaignSection
from bot.domain import COUNTRIES
from bot.domain.eci import countries_over, days_left, thresholds_for
from bot.domain.i18n import ENGLISH, Reader
from storage.signatures import Progress

OFFICIAL_SOURCES = frozenset({"eci_register", "eci_cocs"})


@dataclass(frozen=True, slots=True)
class CountryFigure:
    """One member state's count against its national minimum."""

    code: str
    name: str
    count: int
    minimum: int

    @property
    def share(self) -> float:
        """How far to the minimum, 0..1 and beyond."""
        return self.count / self.minimum if self.minimum else 0.0

    @property
    def over(self) -> bool:
        """At or over the minimum."""
        return self.count >= self.minimum


@dataclass(frozen=True, slots=True)
class Figures:
    """What the public pages show; nothing in it is about a person."""

    campaign: str
    total: int
    goal: int
    countries: tuple[CountryFigure, ...]
    over: int
    needed: int
    registered: date
    multiplier: int
    collection_ends: date | None
    days_left: int | None
    updated_at: datetime | None
    source: str | None

    @property
    def share(self) -> float:
        """The total's share of the goal."""
        return self.total / self.goal if self.goal else 0.0

    @property
    def official(self) -> bool:
        """Whether the last count came from the Commission rather than a person or a feed."""
        return self.source in OFFICIAL_SOURCES

    @property
    def version(self) -> str:
        """Changes whenever a figure does: the ETag of every public answer."""
        key = repr((self.total, self.updated_at, self.source, self.days_left,
                    tuple((c.code, c.count) for c in self.countries)))  # fmt: skip
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The same figures for ``/progress.json``."""
        return {
            "campaign": self.campaign,
            "total": self.total,
            "goal": self.goal,
            "share": round(self.share, 6),
            "countries_over_minimum": self.over,
            "countries_needed": self.needed,
            "countries": [
                {
                    "code": c.code,
                    "name": c.name,
                    "count": c.count,
                    "minimum": c.minimum,
                    "share": round(c.share, 6),
                    "over_minimum": c.over,
                }
                for c in self.countries
            ],
            "minimums": {"registered": self.registered.isoformat(), "multiplier": self.multiplier},
            "collection_ends": self.collection_ends.isoformat() if self.collection_ends else None,
            "days_left": self.days_left,
            "last_count": {
                "at": self.updated_at.isoformat() if self.updated_at else None,
                "source": self.source,
                "official": self.official,
            },
        }

    def chart(self) -> ChartData:
        """The announcement chart's input."""
        return ChartData(
            title=self.campaign,
            total=self.total,
            goal=self.goal,
            counts={c.code: c.count for c in self.countries},
            minimums={c.code: c.minimum for c in self.countries},
            needed=self.needed,
        )


def figures(progress: Progress, campaign: CampaignSection, today: date) -> Figures:
    """The figures for the progress pages, from the latest counts."""
    table = thresholds_for(campaign.registered)
    minimums: Mapping[str, int] = table.minimums
    countries = tuple(
        CountryFigure(code, COUNTRIES[code], progress.countries.get(code, 0), need)
        for code, need in minimums.items()
    )
    return Figures(
        campaign=campaign.name,
        total=progress.total or 0,
        goal=campaign.goal,
        countries=countries,
        over=len(countries_over(progress.countries, minimums)),
        needed=campaign.countries_needed,
        registered=campaign.registered,
        multiplier=table.multiplier,
        collection_ends=campaign.collection_ends,
        days_left=days_left(today, campaign.collection_ends),
        updated_at=progress.updated_at,
        source=progress.source,
    )


class ProgressFeed:
    """The latest figures, read at most once per ``ttl`` seconds, and each count's chart."""

    def __init__(self, load: Callable[[], Awaitable[Figures]], ttl: float) -> None:
        self._load = load
        self.ttl = ttl
        self._figures: Figures | None = None
        self._loaded_at = 0.0
        self._loading: asyncio.Future[Figures] | None = None
        self._charts: dict[str, asyncio.Future[bytes]] = {}  # by language
        self._charts_version = ""

    async def get(self) -> Figures:
        """Fresh enough figures; concurrent callers share one read."""
        if self._figures is not None and time.monotonic() - self._loaded_at < self.ttl:
            return self._figures
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._loading)

    async def _refresh(self) -> Figures:
        try:
            self._figures = await self._load()
            self._loaded_at = time.monotonic()
            return self._figures
        finally:
            self._loading = None

    def invalidate(self) -> None:
        """Read again on the next request (a count was just recorded)."""
        self._loaded_at = 0.0

    async def chart(self, current: Figures, reader: Reader = ENGLISH) -> bytes:
        """The PNG for these figures in ``reader``'s language, drawn once (in a thread) each."""
        if self._charts_version != current.version:
            self._charts, self._charts_version = {}, current.version  # only the latest is kept
        drawing = self._charts.get(reader.language)
        if drawing is None:
            data = current.chart()
            drawing = asyncio.ensure_future(asyncio.to_thread(progress_png, data, reader))
            self._charts[reader.language] = drawing
        try:
            return await asyncio.shield(drawing)
        except Exception:
            if self._charts.get(reader.language) is drawing:
                del self._charts[reader.language]  # the next request draws it again
            raise
