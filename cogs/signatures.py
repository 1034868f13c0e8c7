"""``signatures``: progress towards the goal, counts recorded, milestones announced once.

Counts come from coordinators (``signatures set``) or from a polled source; both go through
:meth:`Signatures.record`, which stores the count and writes any milestone announcement to
the outbox in the same transaction. A weekly digest posts progress once per period.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import aiohttp

from bot.charts import ChartData, progress_attachment
from bot.commands import Cog, command, requires
from bot.context import Attachment, Ctx, Reply
from bot.domain import COUNTRIES, Markup, UserRef
from bot.domain.eci import (
    ANNOUNCEMENT,
    DIGEST,
    FeedError,
    Goals,
    Milestone,
    closest_below,
    countries_over,
    daily_rate,
    days_left,
    feed_urls,
    implausible_drop,
    parse_feed,
    thresholds_for,
)
from bot.domain.i18n import CountryName, Msg, Reader, _, ngettext, pgettext
from bot.domain.markup import cmd
from bot.logs import describe_error
from bot.params import Country, Param
from bot.scheduler import Action, Schedule, plan_run
from bot.services import Services
from storage.outbox import Post
from storage.signatures import Progress, Recorded

log = logging.getLogger(__name__)

DIGEST_MARK = "signatures.digest.next_run_at"
DIGEST_JOB = "signatures:digest"
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30)
MAX_COUNT = 100_000_000

# How each kind of milestone reads in an announcement, and in the reply to `signatures set`.
ANNOUNCE_LINES: dict[str, Msg] = {
    "total": ngettext(
        "• **{value:,} signature** — {share:.1%} of the {goal:,} goal",
        "• **{value:,} signatures** — {share:.1%} of the {goal:,} goal",
        count="value",
    ),
    # Translators: {country} is a member state's name; {value} its national minimum.
    "country": _("• **{country}** passed its national minimum of {value:,} ({count:,} signed)"),
    "countries": ngettext(
        "• **{count:,} country** over its national minimum — the country requirement is met!",
        "• **{count:,} countries** over their national minimum — the country requirement is met!",
        count="count",
    ),
}
SHORT_NAMES: dict[str, Msg] = {
    "total": ngettext("{value:,} signature", "{value:,} signatures", count="value"),
    "country": _("{country} over its minimum"),
    "countries": ngettext(
        "{count:,} country over its minimum",
        "{count:,} countries over their minimum",
        count="count",
    ),
}


class Signatures(Cog):
    """Signature counts, progress to the goal and milestones."""

    group = "signatures"
    duty = "poller"
    erase_order = 20

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.repo = services.signatures
        self.outbox = services.outbox
        self.clock = services.clock
        self.scheduler = services.scheduler
        self.campaign = settings.campaign
        self.minimums = thresholds_for(settings.campaign.registered).minimums
        self.goals = Goals(
            tuple(settings.milestones.totals), self.minimums, settings.campaign.countries_needed
        )
        self.targets = settings.announce_targets
        self.digest = Schedule("cron", settings.campaign.timezone, settings.announce.digest_cron)
        self.grace = settings.reminders.late_grace
        self.source = settings.signatures.source
        self._poller: asyncio.Task[None] | None = None
        renderers = services.outbox.renderers
        renderers.register(ANNOUNCEMENT, self._announcement, self._picture)
        renderers.register(DIGEST, self._digest, self._picture)

    # --- commands -----------------------------------------------------------------------

    @command(default=True)
    async def show(self, ctx: Ctx) -> Reply:
        """Progress: total, goal, countries over their minimum, days left."""
        progress = await self.repo.progress()
        if progress.total is None and not progress.countries:
            return Reply.text(
                _("No signature count is recorded yet. Coordinators: {command}."),
                command=cmd("signatures set", count="<count>"),
            )
        chart = await asyncio.to_thread(self._chart, progress, ctx.reader)
        return Reply(self._summary(progress, ctx.now), attachments=[chart])

    @command("set")
    @requires("coordinator")
    async def set_(
        self,
        ctx: Ctx,
        count: Annotated[int, Param("Signatures counted so far", min=0, max=MAX_COUNT)],
        *,
        country: Annotated[Country | None, Param("Only this member state, e.g. DE")] = None,
    ) -> Reply:
        """Record a signature count; crossing a milestone announces it."""
        recorded = await self.record({country: count}, source="manual", by=ctx.user, now=ctx.now)
        if country:
            done = Markup.format(
                ngettext("Recorded **{count:,}** signature in {country}.",
                         "Recorded **{count:,}** signatures in {country}.", count="count"),
                count=count, country=CountryName(country),
            )  # fmt: skip
        else:
            done = Markup.format(
                ngettext("Recorded **{count:,}** signature in total.",
                         "Recorded **{count:,}** signatures in total.", count="count"),
                count=count,
            )  # fmt: skip
        lines = [done]
        if recorded.reached:
            names = Markup.trusted(", ").join(
                _milestone_markup(SHORT_NAMES, m, self.campaign.goal) for m in recorded.reached
            )
            # Translators: {names} lists the milestones, e.g. "50,000 signatures, Malta over its
            # minimum".
            lines.append(Markup.format(_("Announced: {names}."), names=names))
        lines.append(self._summary(recorded.progress, ctx.now))
        return Reply(Markup.trusted("\n").join(lines))

    # --- recording and announcing -------------------------------------------------------

    async def record(
        self, counts: Mapping[str | None, int], *, source: str, by: UserRef | None, now: datetime
    ) -> Recorded:
        """Store counts; new milestones are announced in the same transaction."""
        recorded = await self.repo.record(
            counts, source=source, by=by, now=now, goals=self.goals, targets=self.targets
        )
        if recorded.reached:
            log.info("milestones reached: %s", ", ".join(m.key for m in recorded.reached))
            self.outbox.wake()
        return recorded

    def _announcement(self, data: dict[str, Any]) -> Markup:
        """An announcement's words, from the milestones and progress its row carries."""
        progress = Progress.from_data(data["progress"])
        reached = [Milestone.from_data(m) for m in data["reached"]]
        needed = self.campaign.countries_needed
        over = len(countries_over(progress.countries, self.minimums))
        head = (
            # Translators: {name} is the campaign's name.
            _("🎉 **{name}: a milestone!**")
            if len(reached) == 1
            # Translators: {name} is the campaign's name.
            else _("🎉 **{name}: milestones!**")
        )
        lines = [Markup.format(head, name=self.campaign.name)]
        lines += [_milestone_markup(ANNOUNCE_LINES, m, self.campaign.goal) for m in reached]
        lines.append(self._status_line(progress, over, needed))
        return Markup.trusted("\n").join(lines)

    def _digest(self, data: dict[str, Any]) -> Markup:
        """A weekly digest's words, from the progress and moment its row carries."""
        at = datetime.fromisoformat(data["at"])
        summary = self._summary(Progress.from_data(data["progress"]), at)
        return Markup.trusted("\n").join([Markup.format(_("📊 **Weekly progress**")), summary])

    def _picture(self, data: dict[str, Any], reader: Reader) -> Attachment:
        """The chart of the progress a row carries, for its room (drawn in a worker thread)."""
        return self._chart(Progress.from_data(data["progress"]), reader)

    def _status_line(self, progress: Progress, over: int, needed: int) -> Markup:
        total = progress.total or 0
        return Markup.format(
            ngettext(
                "Now: {total:,} signature ({share:.1%} of {goal:,}), {over:,} of {needed:,} "
                "countries over their minimum.",
                "Now: {total:,} signatures ({share:.1%} of {goal:,}), {over:,} of {needed:,} "
                "countries over their minimum.",
                count="total",
            ),
            total=total,
            share=total / self.campaign.goal,
            goal=self.campaign.goal,
            over=over,
            needed=needed,
        )

    def _chart(self, progress: Progress, reader: Reader) -> Attachment:
        return progress_attachment(
            ChartData(
                title=self.campaign.name,
                total=progress.total or 0,
                goal=self.campaign.goal,
                counts=progress.countries,
                minimums=self.minimums,
                needed=self.campaign.countries_needed,
            ),
            reader,
        )

    def _summary(self, progress: Progress, now: datetime) -> Markup:
        """The numbers of the chart, as text."""
        goal, needed, zone = self.campaign.goal, self.campaign.countries_needed, self.digest.zone
        total = progress.total or 0
        over = countries_over(progress.countries, self.minimums)
        lines = [
            Markup.format(
                ngettext(
                    "**{name}: {total:,} signature** — {share:.1%} of the {goal:,} goal",
                    "**{name}: {total:,} signatures** — {share:.1%} of the {goal:,} goal",
                    count="total",
                ),
                name=self.campaign.name,
                total=total,
                share=total / goal,
                goal=goal,
            )
        ]
        named = Markup.trusted(", ").join(
            Markup.format(
                # Translators: a member state over its minimum: signatures / national minimum.
                _("{country} ({count:,} / {minimum:,})"),
                country=CountryName(c), count=progress.countries[c], minimum=self.minimums[c],
            )
            for c in over
        )  # fmt: skip
        over_line = (
            _("Countries over their national minimum: **{k:,} of {needed:,}** — {named}")
            if over
            else _("Countries over their national minimum: **{k:,} of {needed:,}**")
        )
        lines.append(Markup.format(over_line, k=len(over), needed=needed, named=named))
        below = closest_below(progress.countries, self.minimums)
        if below:
            items = Markup.trusted("; ").join(
                Markup.format(
                    # Translators: a member state below its minimum: signatures / national
                    # minimum (share of it).
                    _("{country} {count:,} / {minimum:,} ({share:.0%})"),
                    country=CountryName(c), count=n, minimum=need, share=n / need,
                )
                for c, n, need in below
            )  # fmt: skip
            lines.append(Markup.format(_("Closest below: {items}"), items=items))
        today = now.astimezone(ZoneInfo(zone)).date()
        left = days_left(today, self.campaign.collection_ends)
        if left is not None and self.campaign.collection_ends is not None:
            rate = daily_rate(total, goal, left)
            days = (
                _("Days left: {left:,} (collection ends {ends}); needed: {rate:,} a day")
                if rate
                else _("Days left: {left:,} (collection ends {ends})")
            )
            lines.append(
                Markup.format(days, left=left, ends=self.campaign.collection_ends, rate=rate or 0)
            )
        if progress.updated_at is not None:
            source = progress.source or "manual"
            lines.append(
                Markup.format(
                    # Translators: {when} is a date and time; {source} how the count came in
                    # (typed by a coordinator, or the name of a feed).
                    _("Last count: {when} ({source})"),
                    when=progress.updated_at,
                    source=pgettext("signature source", "manual") if source == "manual"
                    else source,
                )
            )  # fmt: skip
        return Markup.trusted("\n").join(lines)

    # --- background: digest and polling -------------------------------------------------

    async def start(self) -> None:
        """Schedule the weekly digest and start polling a configured source."""
        await self.schedule_digest()
        if self.source.kind != "manual" and self.source.url and self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="signatures-poll")

    async def stop(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def schedule_digest(self) -> datetime:
        """Wake for the next digest: the stored one, or the first after now."""
        now = self.clock.now()
        stored = await self.repo.get_mark(DIGEST_MARK)
        if stored is None:
            first = self.digest.next_after(now)
            assert first is not None
            if not await self.repo.advance_mark(DIGEST_MARK, None, first, now):
                return await self.schedule_digest()
            stored = first
        self.scheduler.at(DIGEST_JOB, stored, self.run_digest)
        return stored

    async def run_digest(self) -> bool:
        """Post the digest if its run is due (once per period, late at most once)."""
        now = self.clock.now()
        stored = await self.repo.get_mark(DIGEST_MARK)
        if stored is None or stored > now:
            await self.schedule_digest()
            return False
        run = plan_run(self.digest, stored, now, self.grace)
        assert run.next_run_at is not None
        progress = await self.repo.progress()
        posts: list[Post] = []
        if run.action in (Action.POST, Action.LATE):
            facts = {"progress": progress.data(), "at": now.isoformat()}
            posts = [
                Post(f"digest:{run.occurrence.isoformat()}:{target}", target, DIGEST, facts)
                for target in self.targets
            ]
        posted = await self.repo.advance_mark(DIGEST_MARK, stored, run.next_run_at, now, posts)
        await self.schedule_digest()
        if posted and run.action in (Action.POST, Action.LATE):
            self.outbox.wake()
            return True
        return False

    async def _poll_loop(self) -> None:
        async with aiohttp.ClientSession(timeout=FETCH_TIMEOUT) as http:
            while True:
                try:
                    await self.poll_once(http)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("signature poll failed unexpectedly")
                await asyncio.sleep(self.source.poll_interval.total_seconds())

    async def poll_once(self, http: aiohttp.ClientSession) -> Recorded | None:
        """Fetch the source once and record a good count; a bad answer is logged and ignored."""
        kind = self.source.kind
        try:
            payloads = [await _fetch(http, url) for url in feed_urls(kind, self.source.url)]
            counts = parse_feed(
                kind,
                payloads,
                total_path=self.source.total_path,
                countries_path=self.source.countries_path,
            )
        except FeedError as exc:
            log.warning("signature source (%s) answer ignored: %s", kind, exc)
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("signature source (%s) unreachable: %s", kind, describe_error(exc))
            return None
        previous = await self.repo.progress()
        before: dict[str | None, int] = {code: n for code, n in previous.countries.items()}
        if previous.total is not None:
            before[None] = previous.total
        if reason := implausible_drop(before, counts):
            log.warning("signature source (%s) answer ignored: %s", kind, reason)
            return None
        changed = {key: value for key, value in counts.items() if before.get(key) != value}
        if not changed:
            return None
        return await self.record(changed, source=kind, by=None, now=self.clock.now())

    # --- personal data ------------------------------------------------------------------

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """The counts this person recorded."""
        return {"signature_counts": await self.repo.export(user)}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Keep the counts (campaign figures) but forget who recorded them."""
        await self.repo.forget_recorder(user)


async def _fetch(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers={"Accept": "application/json"}) as response:
        if response.status != 200:
            raise FeedError(f"HTTP status {response.status}")
        try:
            return await response.json(content_type=None)
        except ValueError:
            raise FeedError("the answer is not JSON") from None


def _milestone_markup(templates: Mapping[str, Msg], milestone: Milestone, goal: int) -> Markup:
    code = milestone.country or ""
    return Markup.format(
        templates[milestone.kind],
        value=milestone.value,
        count=milestone.count,
        share=milestone.value / goal if goal else 0.0,
        goal=goal,
        country=CountryName(code) if code in COUNTRIES else code,
    )
