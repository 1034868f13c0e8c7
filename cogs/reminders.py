"""``reminder``: posts in the place they were made, later, once or on a cron schedule.

The reminder table is the truth. At start every active reminder becomes one scheduler job
carrying its id; when a job wakes, the reminder is advanced and its post written to the
outbox in one conditional transaction, so a run posts once however many processes or
restarts see it.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any

from bot.commands import Cog, command, requires
from bot.context import Ctx, Reply
from bot.domain import BadArgument, Markup, NotFound, NotPermitted, UserRef
from bot.domain.i18n import Msg, _, ngettext
from bot.domain.markup import cmd, usage
from bot.domain.text import preview
from bot.logs import describe_error
from bot.params import Duration, Param, ParseEnv, TimeZone, parse_when
from bot.scheduler import Action, CronError, Run, Schedule, parse_cron, plan_run
from bot.services import Services
from storage.outbox import Post
from storage.reminders import ACTIVE, DONE, MISSED, Advance, Fired, ReminderView

log = logging.getLogger(__name__)

MAX_MESSAGE = 1000
LIST_LIMIT = 25
RETRY = timedelta(seconds=5)
POST_KIND = "reminder"  # the kind of outbox row a run writes

# What a run posts, by what plan_run decided; a skipped run posts nothing.
POSTS: dict[Action, Msg] = {
    # Translators: {message} is the reminder's text, as its creator typed it.
    Action.POST: _("⏰ **Reminder:** {message}"),
    # Translators: {when} is the date and time it was due.
    Action.LATE: _("⏰ **Reminder** (late — it was due {when}, while I was offline): {message}"),
    # Translators: {grace} is a short duration such as 6h; {command} is the command to add one.
    Action.MISSED: _(
        "Reminder **#{id}** was due {when}, while I was offline, and is now more than {grace} "
        "late, so I did not post it: {message}\nAdd it again with {command} if it still matters."
    ),
}
# A line of `reminder list`, by whether the reminder repeats and whether its room is shown.
LIST_LINES: dict[tuple[bool, bool], Msg] = {
    (False, False): _("• **#{id}** next {when}: {message}"),
    # Translators: {cron} is a cron schedule such as "0 9 * * 1"; {zone} a time zone name.
    (True, False): _("• **#{id}** next {when} (repeats `{cron}`, {zone} time): {message}"),
    # Translators: {place} is the room the reminder posts in.
    (False, True): _("• **#{id}** next {when} in {place}: {message}"),
    (True, True): _(
        "• **#{id}** next {when} (repeats `{cron}`, {zone} time) in {place}: {message}"
    ),
}


def job_id(reminder_id: int) -> str:
    """The scheduler job of one reminder."""
    return f"reminder:{reminder_id}"


class Reminders(Cog):
    """Post reminders here later, once or on a schedule."""

    group = "reminder"
    duty = "scheduler"
    erase_order = 20
    # Seconds between sweeps of the table for due reminders no job woke.
    sweep_interval = 10.0

    def __init__(self, services: Services) -> None:
        self.repo = services.reminders
        self.scheduler = services.scheduler
        self.outbox = services.outbox
        self.clock = services.clock
        self.zone = services.settings.campaign.timezone
        self.grace = services.settings.reminders.late_grace
        self.metrics = services.metrics
        self._pending: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        services.outbox.renderers.register(POST_KIND, self._words)

    # --- commands -----------------------------------------------------------------------

    @command()
    @requires("coordinator")
    async def add(
        self,
        ctx: Ctx,
        message: Annotated[
            str, Param("What to post", rest=True, max_length=MAX_MESSAGE, multiline=True)
        ],
        *,
        at: Annotated[
            str | None, Param("When: 2026-05-01 09:00, 14:30, tomorrow", max_length=64)
        ] = None,
        in_: Annotated[Duration | None, Param("After this long: 90s, 15m, 2h, 3d")] = None,
        cron: Annotated[
            str | None, Param('Repeat on a cron schedule: "0 9 * * 1"', max_length=100)
        ] = None,
        timezone: Annotated[TimeZone | None, Param("Zone for --at and --cron")] = None,
    ) -> Reply:
        """Post a message here later, once or on a schedule."""
        given = [name for name, value in (("at", at), ("in", in_), ("cron", cron))
                 if value is not None]  # fmt: skip
        if len(given) != 1:
            example = cmd("reminder add", message="Call for translators", **{"in": "2h"})
            if given:
                raise BadArgument(
                    # Translators: at, in and cron are option names; {given} lists those given.
                    _("Say when with only one of the options at, in or cron (you gave "
                      "{given}). Usage: {usage}. Example: {command}."),
                    given=", ".join(given), usage=usage("reminder add"), command=example,
                )  # fmt: skip
            raise BadArgument(
                # Translators: at, in and cron are option names.
                _("Say when with exactly one of the options at, in or cron. Usage: {usage}. "
                  "Example: {command}."),
                usage=usage("reminder add"), command=example,
            )  # fmt: skip
        zone = timezone or self.zone
        now = ctx.now
        if cron is not None:
            try:
                next_run = Schedule("cron", zone, cron).next_after(now)
            except CronError as exc:
                raise BadArgument(
                    # Translators: {why} says which part of the schedule is wrong.
                    _("`{cron}` is not a cron schedule I can use: {why}. Five fields: minute "
                      "hour day-of-month month day-of-week, e.g. `0 9 * * 1` for Mondays "
                      "09:00."),
                    cron=preview(cron),
                    why=exc.markup,  # quotes a field of the cron, which is short
                ) from None  # fmt: skip
            assert next_run is not None
            kind, expr = "cron", parse_cron(cron).expr
        else:
            if at is not None:
                env = ParseEnv(now=now, timezone=zone, platform=ctx.user.platform)
                next_run = parse_when(at, env, zone=zone)
                if next_run <= now:
                    raise BadArgument(
                        _("`{when}` is in the past ({moment}). Give a time ahead, e.g. "
                          "{tomorrow} or {later}."),
                        when=preview(at),
                        moment=next_run,
                        tomorrow=cmd("reminder add", message="…", at="tomorrow"),
                        later=cmd("reminder add", message="…", **{"in": "2h"}),
                    )  # fmt: skip
            else:
                assert in_ is not None
                next_run = now + in_
            kind, expr = "once", None
        view = await self.repo.add(
            creator=ctx.user,
            target=ctx.place.target,
            message=message,
            kind=kind,
            cron=expr,
            timezone=zone,
            next_run_at=next_run,
            now=now,
        )
        self._schedule(view.id, next_run)
        said = (
            # Translators: {message} is the reminder's text; {cron} a cron schedule, {zone} a
            # time zone name.
            _("Reminder **#{id}** will post here {when} and then on `{cron}`, {zone} time: "
              "{message}")
            if expr
            else _("Reminder **#{id}** will post here {when}: {message}")
        )  # fmt: skip
        return Reply(
            Markup.format(said, id=view.id, when=next_run, cron=expr, zone=zone, message=message)
        )

    @command("list")
    @requires("coordinator")
    async def list_(
        self,
        ctx: Ctx,
        *,
        anywhere: Annotated[bool, Param("Every room's reminders, not only this one's")] = False,
    ) -> Reply:
        """The reminders that post here."""
        found = await self.repo.active_in(None if anywhere else ctx.place.target)
        if not found:
            none = (
                _("No reminders post anywhere. Add one with {command}.")
                if anywhere
                else _("No reminders post here. Add one with {command}.")
            )
            return Reply.text(none, command=cmd("reminder add", message="…", **{"in": "1h"}))
        head = (
            ngettext("**{n:,} reminder posts anywhere**", "**{n:,} reminders post anywhere**")
            if anywhere
            else ngettext("**{n:,} reminder posts here**", "**{n:,} reminders post here**")
        )
        lines = [Markup.format(head, n=len(found))]
        for view in found[:LIST_LIMIT]:
            lines.append(
                Markup.format(
                    LIST_LINES[(bool(view.cron), anywhere)],
                    id=view.id,
                    when=view.next_run_at or "—",
                    cron=view.cron,
                    zone=view.timezone,
                    place=view.target,
                    message=preview(view.message, 80),
                )
            )
        if len(found) > LIST_LIMIT:
            lines.append(
                Markup.format(
                    ngettext("…and {n:,} more.", "…and {n:,} more."), n=len(found) - LIST_LIMIT
                )
            )
        return Reply(Markup.trusted("\n").join(lines))

    @command()
    @requires("coordinator")
    async def delete(
        self,
        ctx: Ctx,
        id: Annotated[int, Param("Reminder number", min=1)],
        *,
        anywhere: Annotated[bool, Param("Also a reminder that posts in another room")] = False,
    ) -> Reply:
        """Delete a reminder."""
        view = await self.repo.delete(id, target=None if anywhere else ctx.place.target)
        if view is None:
            found = None if anywhere else await self.repo.get(id)
            if found is not None:
                raise NotPermitted(
                    _("Reminder **#{id}** posts in another room ({place}), so it is not "
                      "deleted from here. Delete it there, or run {command}."),
                    id=id,
                    place=found.target,
                    command=cmd("reminder delete", id=id, anywhere=True),
                )  # fmt: skip
            raise NotFound(
                _("`{id}` is not a reminder number — try {command}."),
                id=id, command=cmd("reminder list"),
            )  # fmt: skip
        self.scheduler.cancel(job_id(id))
        return Reply(
            Markup.format(_("Deleted reminder **#{id}**: {message}"), id=id,
                          message=preview(view.message, 80))
        )  # fmt: skip

    # --- firing -------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the schedule from the table and start firing."""
        if self._task is None:
            self._task = asyncio.create_task(self._fire_loop(), name="reminders-fire")
        count = await self.rebuild()
        log.info("scheduled %d reminders", count)

    async def stop(self) -> None:
        """Stop firing; the jobs go with the scheduler."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def rebuild(self) -> int:
        """One scheduler job per active reminder, at its stored next run (now if overdue)."""
        rows = await self.repo.schedule()
        return self.scheduler.at_many((job_id(rid), at, self._due, (rid,)) for rid, at in rows)

    def _schedule(self, reminder_id: int, when: datetime) -> None:
        self.scheduler.at(job_id(reminder_id), when, self._due, reminder_id)

    async def _due(self, reminder_id: int) -> None:
        """A scheduler job: hand the id to the firing loop, which batches what is due."""
        self._pending.add(reminder_id)
        self._wake.set()

    async def _fire_loop(self) -> None:
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):
                woken = await asyncio.wait_for(self._wake.wait(), self.sweep_interval)
            self._wake.clear()
            ids, self._pending = self._pending, set()
            try:
                if not woken:
                    # A sweep catches what this process's scheduler cannot know about,
                    # such as a reminder added by another process on the same database.
                    ids |= set(await self.repo.due(self.clock.now()))
                if ids:
                    await self.fire(ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "firing %d reminders failed (%s); retrying", len(ids), describe_error(exc)
                )
                self._pending |= ids
                await asyncio.sleep(RETRY.total_seconds())
                self._wake.set()

    async def fire(self, ids: Iterable[int]) -> list[Fired]:
        """Advance these reminders if due, writing their posts; reschedule what recurs."""
        now = self.clock.now()
        lateness: dict[int, float] = {}
        fired = await self.repo.fire(ids, now, self._decider(now, lateness))
        for item in fired:
            if item.posted and item.id in lateness:
                self.metrics.reminder_lateness.observe(lateness[item.id])
            if item.next_run_at is not None:
                self._schedule(item.id, item.next_run_at)
        if any(item.posted for item in fired):
            self.outbox.wake()
        return fired

    async def run_due(self) -> list[Fired]:
        """Fire everything due by the clock now, whatever the scheduler did."""
        return await self.fire(await self.repo.due(self.clock.now()))

    def _decider(
        self, now: datetime, lateness: dict[int, float]
    ) -> Callable[[ReminderView], Advance]:
        def decide(view: ReminderView) -> Advance:
            assert view.next_run_at is not None
            schedule = Schedule(view.kind, view.timezone, view.cron)
            run = plan_run(schedule, view.next_run_at, now, self.grace)
            if run.action is not Action.MISSED:
                lateness[view.id] = max((now - view.next_run_at).total_seconds(), 0.0)
            if run.next_run_at is not None:
                state = ACTIVE
            else:
                state = MISSED if run.action is Action.MISSED else DONE
            return Advance(run.next_run_at, state, self._post(view, run))

        return decide

    def _post(self, view: ReminderView, run: Run) -> Post | None:
        """What a run posts, as facts: put in words when it is delivered."""
        if run.action not in POSTS:
            return None
        assert view.next_run_at is not None
        key = f"reminder:{view.id}:{view.next_run_at.isoformat()}"
        facts = {"id": view.id, "action": run.action.value, "message": view.message,
                 "due": run.occurrence.isoformat(), "timezone": view.timezone}  # fmt: skip
        if run.action is Action.MISSED:  # a notice for its creator, in the same place
            creator = view.creator
            return Post(f"{key}:missed", view.target, POST_KIND, facts,
                        creator.external_id if creator else None,
                        creator.platform if creator else None)  # fmt: skip
        return Post(key, view.target, POST_KIND, facts)

    def _words(self, data: dict[str, Any]) -> Markup:
        """A run's post in words."""
        return Markup.format(
            POSTS[Action(data["action"])],
            id=data["id"],
            when=datetime.fromisoformat(data["due"]),
            grace=_span(self.grace),
            message=data["message"],
            command=cmd("reminder add"),
        )

    # --- personal data ------------------------------------------------------------------

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """The reminders this person made."""
        return {"reminders": await self.repo.export(user)}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Keep the campaign's reminders, but forget who made them."""
        await self.repo.forget_creator(user)


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
