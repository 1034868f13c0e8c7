"""European Citizens' Initiative rules: national minimums, milestones, counts from feeds.

Pure functions on plain values; the signatures cog, its poller and its storage call them.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.domain.vocab import COUNTRIES, COUNTRY_ALIASES

# The kinds of outbox row the signature counts write.
ANNOUNCEMENT = "signatures.milestone"
DIGEST = "signatures.digest"

# National minimums (the state's MEPs × the Parliament's size), by registration date.
# Commission Delegated Regulation (EU) 2024/1082: initiatives registered from 2024-07-16.
MINIMUMS_720: dict[str, int] = {
    "BE": 15840, "BG": 12240, "CZ": 15120, "DK": 10800, "DE": 69120, "EE": 5040, "IE": 10080,
    "EL": 15120, "ES": 43920, "FR": 58320, "HR": 8640, "IT": 54720, "CY": 4320, "LV": 6480,
    "LT": 7920, "LU": 4320, "HU": 15120, "MT": 4320, "NL": 22320, "AT": 14400, "PL": 38160,
    "PT": 15120, "RO": 23760, "SI": 6480, "SK": 10800, "FI": 10800, "SE": 15120,
}  # fmt: skip
# Commission Delegated Regulation (EU) 2019/1673: registered 2020-02-01 … 2024-07-15.
MINIMUMS_705: dict[str, int] = {
    "BE": 14805, "BG": 11985, "CZ": 14805, "DK": 9870, "DE": 67680, "EE": 4935, "IE": 9165,
    "EL": 14805, "ES": 41595, "FR": 55695, "HR": 8460, "IT": 53580, "CY": 4230, "LV": 5640,
    "LT": 7755, "LU": 4230, "HU": 14805, "MT": 4230, "NL": 20445, "AT": 13395, "PL": 36660,
    "PT": 14805, "RO": 23265, "SI": 5640, "SK": 9870, "FI": 9870, "SE": 14805,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One national-minimum table and the date range it applies to."""

    multiplier: int
    registered_from: date
    minimums: Mapping[str, int]


TABLES: tuple[Thresholds, ...] = (
    Thresholds(720, date(2024, 7, 16), MINIMUMS_720),
    Thresholds(705, date(2020, 2, 1), MINIMUMS_705),
)


def thresholds_for(registered: date) -> Thresholds:
    """The table for an initiative registered on ``registered``.

    Raises ValueError before 2020-02-01 (the ×751 table with the United Kingdom, not kept).
    """
    for table in TABLES:
        if registered >= table.registered_from:
            return table
    raise ValueError(
        f"campaign.registered {registered.isoformat()} is before 2020-02-01; the national "
        "minimums of that time are not built in"
    )


# --- milestones -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Milestone:
    """Something worth announcing once: a total, a country over its minimum, enough countries."""

    key: str
    count: int
    kind: str  # "total", "country" or "countries"
    value: int  # the total, the country's minimum, or how many countries
    country: str | None = None

    def data(self) -> dict[str, Any]:
        """JSON-ready facts, for an announcement's outbox row."""
        return {"key": self.key, "count": self.count, "kind": self.kind, "value": self.value,
                "country": self.country}  # fmt: skip

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Milestone":
        """Inverse of :meth:`data`."""
        return cls(data["key"], data["count"], data["kind"], data["value"], data["country"])


def countries_over(counts: Mapping[str, int], minimums: Mapping[str, int]) -> list[str]:
    """Member states at or over their minimum, in table order."""
    return [code for code, need in minimums.items() if counts.get(code, 0) >= need]


def closest_below(
    counts: Mapping[str, int], minimums: Mapping[str, int], limit: int = 3
) -> list[tuple[str, int, int]]:
    """(country, count, minimum) of the states nearest their minimum without reaching it."""
    below = [
        (code, counts[code], need)
        for code, need in minimums.items()
        if 0 < counts.get(code, 0) < need
    ]
    below.sort(key=lambda item: (-item[1] / item[2], item[0]))
    return below[:limit]


def milestones(
    total: int | None,
    counts: Mapping[str, int],
    *,
    totals: Iterable[int],
    minimums: Mapping[str, int],
    needed: int,
) -> list[Milestone]:
    """Every milestone the counts satisfy now (the caller keeps those already announced)."""
    found = [
        Milestone(f"total:{mark}", total, "total", mark)
        for mark in sorted(set(totals))
        if total is not None and total >= mark
    ]
    over = countries_over(counts, minimums)
    found += [
        Milestone(f"country:{code}", counts[code], "country", minimums[code], code)
        for code in over
    ]
    if needed > 0 and len(over) >= needed:
        found.append(Milestone(f"countries:{needed}", len(over), "countries", needed))
    return found


@dataclass(frozen=True, slots=True)
class Goals:
    """What a campaign announces: totals to pass, national minimums, countries needed."""

    totals: tuple[int, ...]
    minimums: Mapping[str, int]
    needed: int

    def reached(self, total: int | None, counts: Mapping[str, int]) -> list[Milestone]:
        """Every milestone the counts satisfy now (see :func:`milestones`)."""
        return milestones(
            total, counts, totals=self.totals, minimums=self.minimums, needed=self.needed
        )


def days_left(today: date, ends: date | None) -> int | None:
    """Days of collection left, counting today; None without an end date."""
    if ends is None:
        return None
    return max((ends - today).days + 1, 0)


def daily_rate(total: int, goal: int, days: int | None) -> int | None:
    """Signatures a day needed to reach the goal in time; None when it cannot be said."""
    if days is None or days <= 0 or total >= goal:
        return None
    return math.ceil((goal - total) / days)


# --- counts from feeds ------------------------------------------------------------------


class FeedError(ValueError):
    """A feed answer that is not a usable count; the message names the problem, no data."""


def feed_urls(kind: str, url: str) -> list[str]:
    """The addresses to fetch for a source kind (``eci_cocs`` needs two)."""
    if kind == "eci_cocs":
        base = url.rstrip("/")
        return [f"{base}/public/api/report/progression", f"{base}/public/api/report/map"]
    return [url]


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FeedError(f"{what} is not a whole number")
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if not text.lstrip("-").isdigit():
            raise FeedError(f"{what} is not a whole number")
        value = int(text)
    if value < 0:
        raise FeedError(f"{what} is negative")
    return value


def _country(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    up = code.strip().upper()
    up = COUNTRY_ALIASES.get(up, up)
    return up if up in COUNTRIES else None


def _dig(payload: Any, path: str, what: str) -> Any:
    node = payload
    for part in (p for p in path.split(".") if p):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise FeedError(f"{what}: no `{part}` in the answer")
    return node


def _entries(items: object, code_key: str, count_key: str) -> dict[str, int]:
    if not isinstance(items, list):
        raise FeedError("the per-country counts are not a list")
    found: dict[str, int] = {}
    for item in items:
        if not isinstance(item, dict):
            raise FeedError("a per-country entry is not an object")
        code = _country(item.get(code_key))
        if code is not None:
            found[code] = _count(item.get(count_key), f"the count for {code}")
    return found


def _by_country(node: object) -> dict[str, int]:
    if isinstance(node, dict):
        found: dict[str, int] = {}
        for key, value in node.items():
            code = _country(key)
            if code is not None:
                found[code] = _count(value, f"the count for {code}")
        return found
    if isinstance(node, list):
        first = next((i for i in node if isinstance(i, dict)), {})
        code_key = next((k for k in ("country", "countryCode", "code") if k in first), "country")
        return _entries(node, code_key, "count")
    raise FeedError("the per-country counts are neither an object nor a list")


def parse_feed(
    kind: str, payloads: Sequence[Any], *, total_path: str = "total", countries_path: str = ""
) -> dict[str | None, int]:
    """Counts from decoded JSON answers (None is the total); raises FeedError on nonsense.

    ``eci_register``: ``sosReport.totalSignatures`` and ``sosReport.entry[]``;
    ``eci_cocs``: ``signatureCount`` then ``signatureCountryCount[]``; ``json``: the dotted
    paths given. Greece arrives as GR and is stored as EL.
    """
    counts: dict[str | None, int] = {}
    if kind == "eci_register":
        report = _dig(payloads[0], "sosReport", "register")
        counts[None] = _count(_dig(report, "totalSignatures", "register"), "the total")
        counts.update(_entries(report.get("entry", []), "countryCodeType", "total"))
    elif kind == "eci_cocs":
        counts[None] = _count(_dig(payloads[0], "signatureCount", "progression"), "the total")
        if len(payloads) > 1:
            items = _dig(payloads[1], "signatureCountryCount", "map")
            counts.update(_entries(items, "countryCode", "count"))
    elif kind == "json":
        counts[None] = _count(_dig(payloads[0], total_path, "total_path"), "the total")
        if countries_path:
            counts.update(_by_country(_dig(payloads[0], countries_path, "countries_path")))
    else:
        raise FeedError(f"no feed format for source kind {kind}")
    return counts


def implausible_drop(previous: Mapping[str | None, int], counts: Mapping[str | None, int]) -> str:
    """Why a reading must be ignored for falling by more than half, or ``""``."""
    for key, value in counts.items():
        before = previous.get(key)
        if before and value * 2 < before:
            return f"{'the total' if key is None else key} fell from {before} to {value}"
    return ""
