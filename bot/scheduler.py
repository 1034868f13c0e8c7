"""The clock: APScheduler 3.x wakes the bot at the right moments; our tables say what is due.

Jobs carry only an id. What a run means (on time, late, missed, the next run of a cron
schedule across daylight-saving changes) is decided by the pure functions here, given the
stored schedule and the injected clock's ``now``, so tests drive them with a ManualClock.

Cron schedules follow wall-clock time in their zone: ``30 2 * * *`` fires at 02:30 local
every day. On the spring-forward day, a time the clocks skip fires as far after the change as
it was into the gap (02:30 becomes 03:30 in Europe/Brussels); on the autumn day a repeated
time fires once, at its first occurrence.
"""

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.date import DateTrigger

from bot.clock import Clock
from bot.domain.i18n import Msg, _, ngettext, pgettext
from bot.domain.markup import Markup

log = logging.getLogger(__name__)

# A run this close to its time counts as on time; later ones are marked late.
ON_TIME = timedelta(minutes=1)
# How far ahead a cron expression is searched before it is declared impossible (Feb 30).
CRON_HORIZON_DAYS = 4 * 366 + 1

# misfire_grace_time=None: APScheduler never drops a late job (its 1 s default would drop
# runs silently after a stall); our own table decides what a late run means.
# coalesce=True: runs that piled up while the loop was busy wake us once.
JOB_DEFAULTS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


class CronError(ValueError):
    """A cron expression that cannot be read; the message says what is wrong, for people.

    ``markup`` is that message, marked for translation; ``str()`` is its English text.
    """

    def __init__(self, template: str, /, **values: object) -> None:
        self.markup = Markup.format(template, **values)
        super().__init__(self.markup.plain())


# --- cron expressions -------------------------------------------------------------------

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


@dataclass(frozen=True, slots=True)
class _Field:
    name: Msg  # how the field is called in a sentence
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field(pgettext("cron field", "minute"), 0, 59, {}),
    _Field(pgettext("cron field", "hour"), 0, 23, {}),
    _Field(pgettext("cron field", "day of month"), 1, 31, {}),
    _Field(pgettext("cron field", "month"), 1, 12, _MONTHS),
    _Field(pgettext("cron field", "day of week"), 0, 7, _DAYS),
)
# Translators: {item} is part of a cron schedule; {field} is a field's name ("hour").
_NOT_VALID = _("`{item}` is not a valid {field}")
_ITEM = re.compile(r"^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/(\d+))?$")


def _value(text: str, spec: _Field) -> int:
    number = spec.names.get(text) if not text.isdigit() else int(text)
    if number is None or not spec.low <= number <= spec.high:
        raise CronError(
            # Translators: {field} is a cron field's name ("hour"); {low}–{high} its range.
            _("`{item}` is not a valid {field} ({low}–{high})"),
            item=text, field=spec.name, low=spec.low, high=spec.high,
        )  # fmt: skip
    return number


def _parse_field(text: str, spec: _Field) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    for item in text.lower().split(","):
        match = _ITEM.match(item)
        if not match:
            raise CronError(_NOT_VALID, item=item, field=spec.name)
        start, end, step = match.groups()
        if start == "*":
            if end is not None:
                raise CronError(_NOT_VALID, item=item, field=spec.name)
            low, high = spec.low, spec.high
        else:
            low = _value(start, spec)
            high = _value(end, spec) if end is not None else (spec.high if step else low)
        stride = int(step) if step else 1
        if stride < 1 or low > high:
            # Translators: {field} is a cron field's name ("hour").
            raise CronError(_("`{item}` is an empty range for the {field}"), item=item,
                            field=spec.name)  # fmt: skip
        values.update(range(low, high + 1, stride))
    return frozenset(values), text == "*"


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron expression: minute hour day-of-month month day-of-week."""

    expr: str
    times: tuple[time, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # Python's numbering: Monday 0 … Sunday 6
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expr: str) -> "Cron":
        """Read an expression; raises CronError saying which field is wrong."""
        fields = expr.split()
        if len(fields) != len(_FIELDS):
            raise CronError(
                ngettext(
                    "a cron schedule has five fields (minute hour day month weekday), not {n:,}",
                    "a cron schedule has five fields (minute hour day month weekday), not {n:,}",
                ),
                n=len(fields),
            )
        parsed = [_parse_field(text, spec) for text, spec in zip(fields, _FIELDS, strict=True)]
        (minutes, _m), (hours, _h), (days, any_day), (months, _mo), (cron_days, any_wd) = parsed
        cron = cls(
            expr=" ".join(fields),
            times=tuple(time(h, m) for h in sorted(hours) for m in sorted(minutes)),
            days=days,
            months=months,
            weekdays=frozenset((d - 1) % 7 for d in cron_days),  # cron: Sunday is 0 and 7
            any_day=any_day,
            any_weekday=any_wd,
        )
        if not any(cron.matches(date(2028, 1, 1) + timedelta(days=n)) for n in range(366)):
            raise CronError(_("that day never comes (check the day of month against the month)"))
        return cron

    def matches(self, day: date) -> bool:
        """Whether the schedule runs on ``day``.

        Cron's rule: when both the day of month and the weekday are restricted, either matches.
        """
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday


@functools.lru_cache(maxsize=256)
def parse_cron(expr: str) -> Cron:
    """:meth:`Cron.parse`, remembered: stored schedules are read again at every run."""
    return Cron.parse(expr)


def wall_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time in ``zone`` as UTC.

    A repeated time (autumn) is its first occurrence; a skipped one (spring) is shifted
    forward by the length of the gap.
    """
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def next_cron_run(cron: Cron, zone: ZoneInfo, after: datetime) -> datetime:
    """The first run strictly after ``after`` (aware), following wall-clock time."""
    local = after.astimezone(zone).replace(tzinfo=None)
    day = local.date()
    earliest = local - timedelta(hours=3)  # no zone shifts a wall time further than this
    for _day in range(CRON_HORIZON_DAYS):
        if cron.matches(day):
            for at in cron.times:
                wall = datetime.combine(day, at)
                if wall < earliest:
                    continue
                moment = wall_to_utc(wall, zone)
                if moment > after:
                    return moment
        day += timedelta(days=1)
    raise CronError(_("that schedule never runs"))


# --- what a due run means ---------------------------------------------------------------


class Action(StrEnum):
    """What to do about a run that fell due."""

    POST = "post"  # on time
    LATE = "late"  # post, saying it is late (the bot was down or busy)
    MISSED = "missed"  # too late to post: tell the creator instead
    SKIP = "skip"  # a recurring run too old to post; just move on to the next


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a reminder runs: once at its stored time, or on a cron expression in a zone."""

    kind: str  # "once" or "cron"
    zone: str
    cron: str | None = None

    def next_after(self, moment: datetime) -> datetime | None:
        """The next run strictly after ``moment``; None for a one-off."""
        if self.kind != "cron" or self.cron is None:
            return None
        return next_cron_run(parse_cron(self.cron), ZoneInfo(self.zone), moment)


@dataclass(frozen=True, slots=True)
class Run:
    """The decision for one due run."""

    action: Action
    occurrence: datetime  # the run posted (for a recurring one: the latest one missed)
    next_run_at: datetime | None  # None: the reminder is finished


def plan_run(schedule: Schedule, scheduled: datetime, now: datetime, grace: timedelta) -> Run:
    """Decide a run stored as due at ``scheduled``, seen at ``now``.

    A one-off posts on time, late within ``grace``, else is missed. A recurring one posts at
    most once however many runs were missed: its latest missed run, if that is within
    ``grace``; its next run is the first one after ``now``.
    """
    if schedule.kind != "cron" or schedule.cron is None:
        late = now - scheduled
        action = (
            Action.POST if late <= ON_TIME else Action.LATE if late <= grace else Action.MISSED
        )
        return Run(action, scheduled, None)
    cron, zone = parse_cron(schedule.cron), ZoneInfo(schedule.zone)
    latest: datetime | None = None
    window = now - grace
    occurrence = scheduled if scheduled >= window else next_cron_run(cron, zone, window - _TICK)
    while occurrence <= now:
        latest = occurrence
        occurrence = next_cron_run(cron, zone, occurrence)
    if latest is None:
        return Run(Action.SKIP, scheduled, occurrence)
    action = Action.POST if now - latest <= ON_TIME else Action.LATE
    return Run(action, latest, occurrence)


_TICK = timedelta(microseconds=1)


# --- the clock itself -------------------------------------------------------------------

JobFunc = Callable[..., Awaitable[object]]


class Scheduler:
    """APScheduler's AsyncIOScheduler with one date job per due thing, each carrying an id.

    APScheduler only wakes us; nothing is kept in it that is not in our tables, so it is
    rebuilt from them at start and two processes firing the same job is harmless.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)

    @property
    def running(self) -> bool:
        """Whether the scheduler has been started."""
        return bool(self._aps.running)

    def start(self) -> None:
        """Start waking jobs; needs a running event loop."""
        if not self.running:
            self._aps.start()

    def stop(self) -> None:
        """Stop and forget every job (they are rebuilt from the tables at the next start)."""
        if self.running:
            self._aps.shutdown(wait=False)
        self._aps.remove_all_jobs()

    def at(self, job_id: str, when: datetime, func: JobFunc, *args: object) -> None:
        """Call ``func(*args)`` at ``when`` (at once if past); replaces a job with this id."""
        if when.tzinfo is None:
            raise ValueError("naive datetime; use aware UTC")
        self._aps.add_job(
            func, DateTrigger(run_date=when, timezone=UTC), args=args, id=job_id,
            replace_existing=True,
        )  # fmt: skip

    def at_many(self, jobs: Iterable[tuple[str, datetime, JobFunc, tuple[object, ...]]]) -> int:
        """Schedule many jobs at once (the rebuild at start); returns how many."""
        count = 0
        with self._paused():
            for job_id, when, func, args in jobs:
                self.at(job_id, when, func, *args)
                count += 1
        return count

    @contextmanager
    def _paused(self) -> Iterator[None]:
        # A running scheduler re-plans its wake-up after every added job; pausing while a
        # batch is added makes that happen once.
        was_running = self.running and self._aps.state == STATE_RUNNING
        if was_running:
            self._aps.pause()
        try:
            yield
        finally:
            if was_running:
                self._aps.resume()

    def cancel(self, job_id: str) -> None:
        """Drop a job if it exists."""
        with suppress(JobLookupError):
            self._aps.remove_job(job_id)

    def job_ids(self, prefix: str = "") -> list[str]:
        """Ids of the scheduled jobs starting with ``prefix``."""
        return [job.id for job in self._aps.get_jobs() if job.id.startswith(prefix)]

    def next_run(self, job_id: str) -> datetime | None:
        """When a job will wake, or None."""
        job = self._aps.get_job(job_id)
        if job is None:
            return None
        # A job added before start has no next_run_time yet; its trigger knows.
        when: datetime | None = getattr(job, "next_run_time", None)
        return when or getattr(job.trigger, "run_date", None)
