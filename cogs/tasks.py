"""The shared task queue: coordinators post jobs, volunteers claim them and see them through."""

import functools
import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from bot.background import Periodic
from bot.charts import CoverageData, coverage_attachment
from bot.commands import Cog, command, requires
from bot.context import Attachment, Button, Ctx, Reply
from bot.domain import (
    KIND_ROLE,
    LANGUAGES,
    BadArgument,
    Conflict,
    Markup,
    NotFound,
    NotPermitted,
    Priority,
    TaskKind,
    TaskStatus,
    UserError,
    UserRef,
)
from bot.domain.tasks import Change, Expiry, Notice, Outcome, TaskNotice, Verdict
from bot.importing import ImportRefused, read_csv, summary
from bot.outbox import Actions
from bot.params import Language, Param, ParseEnv, Targets, Url, When, find_url
from bot.services import Services
from storage.tasks import (
    EventView,
    JobView,
    NewJob,
    QueueReport,
    Result,
    SweepReport,
    TaskView,
)

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 60.0  # seconds between expiry sweeps
HISTORY_SHOWN = 15
MAX_IMPORT_BYTES = 5 * 1024 * 1024  # a CSV sent in chat; the command line takes any size
REPORT_LISTED = 5  # claims running out, and oldest open tasks, in the report
# The report's columns: heading, and the statuses counted under it.
REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "open": (TaskStatus.OPEN.value,),
    "claimed": (TaskStatus.CLAIMED.value,),
    "in review": (TaskStatus.IN_REVIEW.value,),
    "done": (TaskStatus.DONE.value,),
}
NO_LANGUAGE = "—"
FORMER = "a former volunteer"
NEWLINE = Markup.trusted("\n")


class Status(StrEnum):
    """Which tasks ``task list`` shows."""

    OPEN = "open"
    CLAIMED = "claimed"
    IN_REVIEW = "in-review"
    DONE = "done"
    CANCELLED = "cancelled"
    ALL = "all"

    @property
    def task_status(self) -> TaskStatus | None:
        """The stored status it shows; None for all."""
        return None if self is Status.ALL else TaskStatus(self.value.replace("-", "_"))


TaskId = Annotated[int, Param("Task number", min=1, autocomplete=True)]

# Why a change did not happen, in words. Values: id, holder, status, kind, role, roles,
# languages, language, count. A (outcome, command) entry overrides the general one.
REFUSALS: dict[Outcome | tuple[Outcome, str], tuple[type[UserError], str]] = {
    Outcome.NOT_FOUND: (NotFound, "There is no task `{id}`. See the open ones with `task list`."),
    Outcome.NOT_REGISTERED: (
        NotPermitted,
        "You are not registered as a volunteer yet. Join first, e.g. "
        "`volunteer join translator --languages pl`.",
    ),
    (Outcome.NOT_REGISTERED, "assign"): (
        NotFound,
        "`{holder}` is not a registered volunteer. They can join with `volunteer join <role>`.",
    ),
    Outcome.NO_ROLE: (
        NotPermitted,
        "Task #{id} is a {kind} job, for a {role}. Take on that role first: "
        "`volunteer join {role}`.",
    ),
    (Outcome.NO_ROLE, "next"): (
        NotFound,
        "There are open tasks, but none of a kind your roles take (your roles: {roles}). "
        "See them with `task list`; add a role with `volunteer join <role>`.",
    ),
    (Outcome.NO_ROLE, "next-kind"): (
        NotPermitted,
        "{kind} tasks are for a {role}, and you are not one. Take on the role with "
        "`volunteer join {role}`.",
    ),
    Outcome.NO_LANGUAGE: (
        NotFound,
        "There are open tasks for your roles, but none in your languages ({languages}). "
        "Add languages with `volunteer join <role> --languages pl,de`.",
    ),
    Outcome.NOT_YOUR_LANGUAGE: (
        BadArgument,
        "`{language}` is not one of your languages ({languages}). Add it with "
        "`volunteer join <role> --languages …` or leave `--language` out.",
    ),
    Outcome.EMPTY: (NotFound, "The queue is empty: no open tasks{what} right now."),
    Outcome.LIMIT: (
        Conflict,
        "You already hold {count} tasks, the most anyone can at once. Finish one with "
        "`task done <id>` or give one back with `task unclaim <id>` first.",
    ),
    (Outcome.LIMIT, "assign"): (
        Conflict,
        "{holder} already holds {count} tasks, the most anyone can at once.",
    ),
    Outcome.TAKEN: (Conflict, "Too late: task #{id} is already claimed by {holder}."),
    Outcome.CLOSED: (Conflict, "Task #{id} is {status}; it cannot change any more."),
    Outcome.NOT_CLAIMED: (
        Conflict,
        "Nobody holds task #{id}: it is open. Claim it with `task claim {id}`.",
    ),
    Outcome.NOT_YOURS: (
        NotPermitted,
        "Task #{id} is held by {holder}, not by you; only they can finish it or give it back.",
    ),
    (Outcome.ALREADY_YOURS, "assign"): (Conflict, "{holder} already holds task #{id}."),
    Outcome.NOT_IN_REVIEW: (
        Conflict,
        "Task #{id} is not in review: it is {status}. Work is reviewed once its holder hands "
        "it in with `task done {id}`.",
    ),
    Outcome.IN_REVIEW: (
        Conflict,
        "Task #{id} is handed in and waits for review; it changes hands only through "
        "`task review {id} approve` or `task review {id} changes <note…>`.",
    ),
    Outcome.OWN_WORK: (
        NotPermitted,
        "Task #{id} is your own work; another {role} has to review it.",
    ),
    Outcome.WRONG_LANGUAGE: (
        NotPermitted,
        "Task #{id} is a translation into {language}, which is not among your languages "
        "({languages}); its reviewer must work in it.",
    ),
    Outcome.REVIEW_TAKEN: (Conflict, "{holder} is already reviewing task #{id}."),
    (Outcome.NO_ROLE, "review"): (
        NotPermitted,
        "Task #{id} is a {kind} job: its reviewer must be a {role}. Take on the role with "
        "`volunteer join {role}`.",
    ),
    (Outcome.NO_ROLE, "next-review"): (
        NotFound,
        "None of your roles ({roles}) reviews work. Reviewers are translators, video-editors "
        "and the other roles with kinds of their own.",
    ),
    (Outcome.EMPTY, "next-review"): (
        NotFound,
        "Nothing waits for a review you can give right now (your languages: {languages}).",
    ),
    (Outcome.LIMIT, "next-review"): (
        Conflict,
        "You already hold {count} reviews, the most anyone can at once. Give your verdict "
        "on one with `task review <id> approve` first.",
    ),
}

# How each history event reads. Values: actor, subject, note.
EVENT_TEXT: dict[str, str] = {
    Change.POSTED: "posted by {actor}",
    Change.CLAIMED: "claimed by {actor}",
    Change.RELEASED: "given back to the queue by {actor}",
    Change.ASSIGNED: "assigned to {subject} by {actor}",
    Change.EXPIRED: "released after no activity (was {subject})",
    Change.DONE: "done by {actor}",
    Change.CANCELLED: "cancelled by {actor}",
    Change.SUBMITTED: "handed in for review by {actor}",
    Change.REVIEWING: "review taken by {actor}",
    Change.APPROVED: "approved by {actor} (work of {subject})",
    Change.CHANGES: "changes asked by {actor} (back to {subject})",
    Change.EXTENDED: "claim extended by {actor}",
}


class Tasks(Cog):
    """Post jobs, claim them and see them through."""

    group = "task"
    duty = "scheduler"

    def __init__(self, services: Services) -> None:
        self.tasks = services.tasks
        self.clock = services.clock
        self.outbox = services.outbox
        self.settings = services.settings.tasks
        self.timezone = services.settings.campaign.timezone
        self.zone = ZoneInfo(self.timezone)
        self.notices = TaskNotices(self)
        for notice in Notice:
            services.outbox.renderers.register(
                notice.value, functools.partial(self._notice, notice),
                actions=self._still_on_it if notice is Notice.IDLE else None,
            )  # fmt: skip
        self._sweeper = Periodic("task-sweep", self.sweep, SWEEP_INTERVAL)

    @property
    def sweep_interval(self) -> float:
        """Seconds between background expiry sweeps."""
        return self._sweeper.every

    @sweep_interval.setter
    def sweep_interval(self, seconds: float) -> None:
        self._sweeper.every = self._sweeper.retry = seconds

    # --- commands ---------------------------------------------------------------------

    @command()
    @requires("coordinator")
    async def post(
        self,
        ctx: Ctx,
        kind: Annotated[TaskKind, Param("What kind of job")],
        title: Annotated[str, Param("A short title", max_length=200, rest=True)],
        *,
        language: Annotated[
            Targets | None,
            Param("Target language: pl, several (pl,de,fr) or all", autocomplete=True),
        ] = None,
        source_language: Annotated[
            Language | None, Param("Language to translate from, e.g. en")
        ] = None,
        source: Annotated[Url | None, Param("Link to what to work from")] = None,
        due: Annotated[When | None, Param("When it is due: 2026-12-01, 14:30 or in 3d")] = None,
        priority: Annotated[Priority | None, Param("How urgent (default normal)")] = None,
        description: Annotated[str | None, Param("Details", max_length=2000)] = None,
    ) -> Reply:
        """Add a job to the queue, one task per target language."""
        if due is not None and due <= ctx.now:
            raise BadArgument(
                "The due date {when} is already past. Give a later one, e.g. `--due in 3d`.",
                when=self.when(due),
            )
        targets: tuple[str | None, ...] = tuple(language) if language else (None,)
        if language is not None and language.every:
            targets = tuple(code for code in language if code != source_language)
        elif source_language is not None and source_language in targets:
            raise BadArgument(
                "The source and target language are both `{code}`. Translate from another "
                "language, or leave `--source-language` out.",
                code=source_language,
            )
        new = NewJob(
            kind=kind,
            title=" ".join(title.split()),
            languages=targets,
            description=description.strip() if description else None,
            source_language=source_language,
            source_url=source,
            priority=priority or Priority.NORMAL,
            due_at=due,
        )
        job, tasks = await self.tasks.post_job(ctx.user, new, now=ctx.now)
        if job is not None:
            return Reply(self.job_posted(job, tasks), subject=("job", job.id))
        [task] = tasks
        body = Markup.format("Posted task **#{id}**: ", id=task.id)
        body += self.line(task, numbered=False)
        body += Markup.format(
            "\nClaim it with `task claim {id}`, or let `task next` find it.", id=task.id
        )
        return Reply(body, buttons=[Button("Claim", f"task claim {task.id}")],
                     subject=("task", task.id))  # fmt: skip

    @command("list")
    async def list_(
        self,
        ctx: Ctx,
        *,
        kind: Annotated[TaskKind | None, Param("Only this kind of job")] = None,
        language: Annotated[Language | None, Param("Only tasks into this language")] = None,
        status: Annotated[
            Status | None, Param("open (default), claimed, in-review, done, cancelled, all")
        ] = None,
        page: Annotated[int | None, Param("Page number", min=1, max=100_000)] = None,
    ) -> Reply:
        """The queue, most urgent first."""
        shown = status or Status.OPEN
        number = page or 1
        size = self.settings.page_size
        tasks = await self.tasks.page(
            status=shown.task_status,
            kind=kind,
            language=language,
            offset=(number - 1) * size,
            limit=size + 1,
        )
        more = len(tasks) > size
        what = " ".join(filter(None, [
            "" if shown is Status.ALL else shown.value,
            LANGUAGES.get(language or ""), kind.value if kind else None,
        ]))  # fmt: skip
        if not tasks:
            if number > 1:
                return Reply.text("There is no page {n} of {what} tasks.", n=number, what=what)
            return Reply.text("No {what} tasks.", what=what or "")
        urgent = (Status.OPEN, Status.CLAIMED, Status.IN_REVIEW)
        order = "most urgent first" if shown in urgent else "newest first"
        head = Markup.format("**{what} tasks**, {order} (page {n})",
                             what=what.capitalize() or "All", order=order, n=number)  # fmt: skip
        lines = [head, *(self.line(t, status=shown is not Status.OPEN) for t in tasks[:size])]
        if more:
            lines.append(Markup.format("More: `task list{opts} --page {n}`",
                                       opts=_list_options(kind, language, status),
                                       n=number + 1))  # fmt: skip
        return Reply(NEWLINE.join(lines))

    @command()
    async def show(self, ctx: Ctx, id: TaskId) -> Reply:
        """One task with its history."""
        # The task and its history in one trip to the database.
        found = await self.tasks.with_history(id, limit=HISTORY_SHOWN)
        if found is None:
            self._check(Result(Outcome.NOT_FOUND), "show", id=id)
            raise AssertionError("unreachable")
        task, events, total = found
        if task.held_by(ctx.user):
            await self.tasks.touch(id, ctx.user, ctx.now)
        lines = [Markup.format("**#{id} {title}**", id=task.id, title=task.title)]
        lines.append(self.facts(task))
        if task.description:
            lines.append(Markup.format("{text}", text=task.description))
        lines.append(Markup.trusted("**History**"))
        if total > len(events):
            lines.append(Markup.format("…{n} earlier events", n=total - len(events)))
        lines += [self.event(e) for e in events]
        return Reply(NEWLINE.join(lines), subject=("task", task.id))

    @command()
    async def claim(self, ctx: Ctx, id: TaskId) -> Reply:
        """Take a task from the queue."""
        result = await self.tasks.claim(
            id, ctx.user, place=ctx.place.target, now=ctx.now,
            max_open=self.settings.max_open_claims,
        )  # fmt: skip
        if result.outcome is Outcome.ALREADY_YOURS:
            return Reply(Markup.format("You already have task #{id}.", id=id), private=True)
        self._check(result, "claim", id=id)
        return Reply(self._claimed(result))

    @command("next")
    async def next_(
        self,
        ctx: Ctx,
        *,
        kind: Annotated[TaskKind | None, Param("Only this kind of job")] = None,
        language: Annotated[Language | None, Param("Only tasks into this language")] = None,
        review: Annotated[bool, Param("Take work to review instead")] = False,
    ) -> Reply:
        """Claim the best open task for my roles and languages (or work to review)."""
        if review:
            return await self._next_review(ctx, language)
        result = await self.tasks.claim_next(
            ctx.user, place=ctx.place.target, now=ctx.now,
            max_open=self.settings.max_open_claims, kind=kind, language=language,
        )  # fmt: skip
        context = "next-kind" if result.outcome is Outcome.NO_ROLE and result.detail else "next"
        self._check(result, context, kind=kind, language=language)
        return Reply(self._claimed(result))

    async def _next_review(self, ctx: Ctx, language: str | None) -> Reply:
        result = await self.tasks.claim_review(
            ctx.user, now=ctx.now, max_open=self.settings.max_open_claims, language=language
        )
        self._check(result, "next-review", language=language)
        task = result.task
        assert task is not None
        body = Markup.format("You are reviewing task **#{id}**: ", id=task.id)
        body += self.line(task, status=False, numbered=False)
        body += Markup.format(", by {name}", name=_name(task.claimer))
        for row in self.deliverable(task):
            body += NEWLINE + row
        body += Markup.format(
            "\nApprove it with `task review {id} approve`, or send it back: "
            "`task review {id} changes <what needs changing>`.",
            id=task.id,
        )
        return Reply(body)

    @command()
    async def unclaim(self, ctx: Ctx, id: TaskId) -> Reply:
        """Give a task back to the queue."""
        result = await self.tasks.unclaim(
            id, ctx.user, now=ctx.now, override=ctx.actor.is_coordinator
        )
        self._check(result, "unclaim", id=id)
        assert result.task is not None
        return Reply.text("Task #{id} “{title}” is back in the queue.",
                          id=id, title=result.task.title)  # fmt: skip

    @command()
    async def done(
        self,
        ctx: Ctx,
        id: TaskId,
        note: Annotated[str | None, Param("What came of it", rest=True, max_length=1000)] = None,
    ) -> Reply:
        """Mark my task as done, with a link to the result or a note."""
        note = " ".join(note.split()) if note else None
        result = await self.tasks.finish(
            id, ctx.user, note=note or None, now=ctx.now, link=find_url(note or ""),
            review_kinds=self.settings.review_kinds,
        )  # fmt: skip
        self._check(result, "done", id=id)
        task = result.task
        assert task is not None
        kept = Markup.format(" Result: {url}", url=task.result_link) if task.result_link else ""
        if task.status is TaskStatus.IN_REVIEW:
            body = Markup.format(
                "Task #{id} “{title}” is handed in for review. Thank you, {name}! Another "
                "{role} checks it next (`task review {id} approve`).",
                id=id, title=task.title, name=ctx.user.label, role=_role(task.kind),
            )  # fmt: skip
            return Reply(body + kept)
        body = Markup.format("Task #{id} “{title}” is done. Thank you, {name}!",
                             id=id, title=task.title, name=ctx.user.label)  # fmt: skip
        return Reply(body + kept)

    @command()
    async def review(
        self,
        ctx: Ctx,
        id: TaskId,
        verdict: Annotated[Verdict, Param("approve, or changes with a note")],
        note: Annotated[
            str | None, Param("What needs changing", rest=True, max_length=1000)
        ] = None,
    ) -> Reply:
        """Approve work in review, or send it back with what needs changing."""
        note = " ".join(note.split()) if note else None
        if verdict is Verdict.CHANGES and not note:
            raise BadArgument(
                "Say what needs changing, e.g. `task review {id} changes the title is wrong`.",
                id=id,
            )
        result = await self.tasks.review(
            id, ctx.user, verdict, note=note, now=ctx.now, coordinator=ctx.actor.is_coordinator
        )
        task = result.task
        holder = _name(task.reviewer) if task is not None else None
        language = _language_name(task.language) if task and task.language else None
        self._check(result, "review", id=id, holder=holder, language=language)
        assert task is not None
        self.outbox.wake()
        if verdict is Verdict.APPROVE:
            return Reply.text("Task #{id} “{title}” is approved and done. Thank you, {name}!",
                              id=id, title=task.title, name=ctx.user.label)  # fmt: skip
        if task.status is TaskStatus.OPEN:
            return Reply.text("Task #{id} “{title}” is back in the queue with your note: its "
                              "translator is no longer registered.", id=id,
                              title=task.title)  # fmt: skip
        return Reply.text("Task #{id} “{title}” goes back to {name} with your note.",
                          id=id, title=task.title, name=_name(task.claimer))  # fmt: skip

    @command()
    async def extend(self, ctx: Ctx, id: TaskId) -> Reply:
        """Keep my claim on a task: restart its time to live."""
        result = await self.tasks.extend(id, ctx.user, now=ctx.now)
        self._check(result, "extend", id=id)
        assert result.task is not None
        until = self.when(ctx.now + self.settings.claim_ttl)
        return Reply.text("Task #{id} “{title}” stays yours; without activity it would go "
                          "back to the queue at {when}.", id=id, title=result.task.title,
                          when=until)  # fmt: skip

    @command()
    async def mine(self, ctx: Ctx) -> Reply:
        """The tasks I hold."""
        held = await self.tasks.claims_of(ctx.user)
        if held is None:
            self._check(Result(Outcome.NOT_REGISTERED), "mine")
            raise AssertionError("unreachable")
        if not held:
            return Reply.text("You hold no tasks. `task next` finds one that fits you.",
                              private=True)  # fmt: skip
        head = Markup.format("**You hold {n} of {max} tasks**", n=len(held),
                             max=self.settings.max_open_claims)  # fmt: skip
        lines = [head, *(self.line(t, status=False) for t in held)]
        return Reply(NEWLINE.join(lines), private=True)

    @command()
    @requires("coordinator")
    async def assign(
        self, ctx: Ctx, id: TaskId, user: Annotated[UserRef, Param("Who gets it")]
    ) -> Reply:
        """Give a task to a volunteer."""
        result = await self.tasks.assign(
            id, user, by=ctx.user, place=ctx.place.target, now=ctx.now,
            max_open=self.settings.max_open_claims,
        )  # fmt: skip
        self._check(result, "assign", id=id, holder=result.detail or user.label)
        assert result.task is not None and result.task.claimer is not None
        self.outbox.wake()
        return Reply.text("Task #{id} “{title}” is now {name}'s.", id=id,
                          title=result.task.title, name=result.task.claimer.label)  # fmt: skip

    @command()
    @requires("coordinator")
    async def cancel(self, ctx: Ctx, id: TaskId) -> Reply:
        """Cancel a task."""
        result = await self.tasks.cancel(id, by=ctx.user, now=ctx.now)
        self._check(result, "cancel", id=id)
        assert result.task is not None
        self.outbox.wake()
        return Reply.text("Task #{id} “{title}” is cancelled.", id=id, title=result.task.title)

    @command("import")
    @requires("coordinator")
    async def import_(
        self,
        ctx: Ctx,
        file: Annotated[Attachment, Param("A CSV file: kind,title,language,… one task a row")],
        *,
        dry_run: Annotated[bool | None, Param("Only check the file; post nothing")] = None,
    ) -> Reply:
        """Post the tasks of a CSV file."""
        if len(file.data) > MAX_IMPORT_BYTES:
            raise BadArgument(
                "`{name}` is {size:,} bytes; a file sent in chat may have {limit:,}. Split it, "
                "or run `volunteer-bot tasks import` where the bot runs.",
                name=file.filename, size=len(file.data), limit=MAX_IMPORT_BYTES,
            )  # fmt: skip
        env = ParseEnv(now=ctx.now, timezone=self.timezone, platform=ctx.user.platform)
        try:
            rows = read_csv(file.data, env)
        except ImportRefused as exc:
            raise BadArgument("`{name}`: {problems}", name=file.filename,
                              problems=str(exc)) from None  # fmt: skip
        if dry_run:
            return Reply.text("`{name}`: every row is fine; {summary}. Nothing was posted "
                              "(dry run).", name=file.filename, summary=summary(rows))  # fmt: skip
        posted = await self.tasks.post_many(ctx.user, [row.job for row in rows], now=ctx.now)
        return Reply.text("Imported `{name}`: {summary}.", name=file.filename,
                          summary=summary(rows, posted))  # fmt: skip

    @command()
    @requires("coordinator")
    async def report(self, ctx: Ctx) -> Reply:
        """Coverage by language and status, with a chart."""
        expiry = Expiry(self.settings.claim_ttl)
        found = await self.tasks.report(idle_since=expiry.nudge_cutoff(ctx.now),
                                        limit=REPORT_LISTED)  # fmt: skip
        rows = _coverage(found)
        lines = [Markup.trusted("**Tasks by language**: " + ", ".join(REPORT_COLUMNS))]
        lines += [
            Markup.format("{lang}: {numbers}", lang=label,
                          numbers=" · ".join(f"{counts[c]:,} {c}" for c in REPORT_COLUMNS))
            for label, counts in rows.items()
        ] or [Markup.trusted("No tasks yet.")]  # fmt: skip
        lines.append(Markup.trusted("**Claims running out**"))
        lines += [
            Markup.format("#{id} {title} — {name}, back to the queue {when}", id=t.id,
                          title=t.title, name=_name(t.claimer),
                          when=self.when(expiry.release_at(t.last_activity_at or t.created_at)))
            for t in found.expiring
        ] or [Markup.trusted("None.")]  # fmt: skip
        lines.append(Markup.trusted("**Oldest unclaimed**"))
        lines += [
            Markup.format("{line}, posted {when}", line=self.line(t), when=self.when(t.created_at))
            for t in found.oldest_open
        ] or [Markup.trusted("None: every task is taken.")]  # fmt: skip
        unspoken = found.unspoken
        lines.append(Markup.format(
            "**No volunteer speaks**: {langs}",
            langs=", ".join(f"{LANGUAGES[c]} ({c})" for c in unspoken) if unspoken else "none",
        ))  # fmt: skip
        chart = coverage_attachment(CoverageData(
            "Tasks by language and status",
            {label: {c: counts[c] for c in REPORT_COLUMNS} for label, counts in rows.items()},
        ))  # fmt: skip
        return Reply(NEWLINE.join(lines), attachments=[chart])

    # --- expiry -----------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        """Nudge idle claims, release expired ones and send due-date reminders."""
        report = await self.tasks.sweep(now or self.clock.now(), ttl=self.settings.claim_ttl)
        if report.nudged or report.released or report.reminded:
            self.outbox.wake()
        return report

    async def start(self) -> None:
        """Start the expiry sweeps."""
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop the expiry sweeps."""
        await self._sweeper.stop()

    # --- personal data ----------------------------------------------------------------

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """Claims, tasks created and task history naming the person."""
        return {"tasks": await self.tasks.export(user)}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Release their claims; they become "a former volunteer" in tasks and history."""
        await self.tasks.erase(user, ctx.now if ctx else self.clock.now())

    # --- rendering --------------------------------------------------------------------

    def _still_on_it(self, data: dict[str, Any]) -> Actions:
        """The "still on it?" notice offers to keep the claim: a button, or a reaction."""
        task_id = TaskNotice.from_data(Notice.IDLE, data).task_id
        return Actions((Button("Keep it", f"task extend {task_id}"),), ("claim", task_id))

    def _notice(self, notice: Notice, data: dict[str, Any]) -> Markup:
        return self.notices.render(TaskNotice.from_data(notice, data))

    def when(self, moment: datetime) -> str:
        """A moment in the campaign's time zone."""
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")

    def line(self, task: TaskView, *, status: bool = True, numbered: bool = True) -> Markup:
        """One task on one line; ``status`` adds its status and holder when not open."""
        langs = _languages(task)
        extra = []
        if task.priority is not Priority.NORMAL:
            extra.append(task.priority.value)
        if task.due_at:
            extra.append(f"due {self.when(task.due_at)}")
        if status and task.status is not TaskStatus.OPEN:
            extra.append(_status(task.status))
        body = Markup.format(
            "{number}{title} — {kind}{langs}{extra}",
            number=f"#{task.id} " if numbered else "", title=task.title, kind=task.kind.value,
            langs=f" {langs}" if langs else "",
            extra=f" ({', '.join(extra)})" if extra else "",
        )  # fmt: skip
        if status and task.status is TaskStatus.CLAIMED:
            body += Markup.format(", held by {name}", name=_name(task.claimer))
        return body

    def facts(self, task: TaskView) -> Markup:
        """The details block of ``task show``."""
        rows: list[Markup] = [
            Markup.format("Kind: {kind}", kind=task.kind.value),
            Markup.format("Status: {status}", status=_status(task.status)),
            Markup.format("Priority: {p}", p=task.priority.value),
        ]
        if task.language:
            rows.append(Markup.format("Into: {lang}", lang=_language_name(task.language)))
        if task.source_language:
            rows.append(Markup.format("From: {lang}", lang=_language_name(task.source_language)))
        if task.due_at:
            rows.append(Markup.format("Due: {when}", when=self.when(task.due_at)))
        if task.job_id is not None:
            rows.append(Markup.format("Job: #{job} (`job show {job}`)", job=task.job_id))
        if task.source_url:
            rows.append(Markup.format("Source: {url}", url=task.source_url))
        if task.status is TaskStatus.CLAIMED:
            since = self.when(task.claimed_at or task.created_at)
            rows.append(Markup.format("Held by: {name} since {when}",
                                      name=_name(task.claimer), when=since))  # fmt: skip
        if task.status is TaskStatus.IN_REVIEW:
            rows.append(Markup.format("Submitted by: {name}", name=_name(task.claimer)))
            if task.reviewer_id is not None:
                rows.append(Markup.format("Review taken by: {name}", name=_name(task.reviewer)))
        rows += self.deliverable(task)
        return NEWLINE.join(rows)

    def deliverable(self, task: TaskView) -> list[Markup]:
        """The result and the latest review note of a task, as lines."""
        rows: list[Markup] = []
        if task.result_link:
            rows.append(Markup.format("Result: {url}", url=task.result_link))
        if task.result_note and task.result_note != task.result_link:
            rows.append(Markup.format("Result note: {note}", note=task.result_note))
        if task.review_note:
            rows.append(Markup.format(
                "Changes asked by {name}: {note}", name=_name(task.reviewer), note=task.review_note
            ))  # fmt: skip
        return rows

    def event(self, event: EventView) -> Markup:
        """One history line."""
        text = Markup.format(
            "• {when} — " + EVENT_TEXT.get(event.action, event.action.replace("{", "")),
            when=self.when(event.at), actor=_name(event.actor), subject=_name(event.subject),
        )  # fmt: skip
        if event.note:
            text += Markup.format(": “{note}”", note=event.note)
        return text

    def job_posted(self, job: JobView, tasks: list[TaskView]) -> Markup:
        """The answer to posting a job: its number, and each task's number and language."""
        head = Markup.format(
            "Posted job **#{job}** “{title}” — {kind}{source}, {n} tasks:",
            job=job.id, title=job.title, kind=job.kind.value, n=len(tasks),
            source=f" from {job.source_language}" if job.source_language else "",
        )  # fmt: skip
        lines = [head]
        lines += [Markup.format("#{id} {lang}", id=t.id, lang=_language_name(t.language or ""))
                  for t in tasks]  # fmt: skip
        lines.append(Markup.format(
            "Claim one with `task claim <id>` or `task next`; the whole job: `job show {job}`.",
            job=job.id,
        ))  # fmt: skip
        return NEWLINE.join(lines)

    def _claimed(self, result: Result) -> Markup:
        task = result.task
        assert task is not None
        body = Markup.format("You have task **#{id}**: ", id=task.id)
        body += self.line(task, status=False, numbered=False)
        body += Markup.format(
            "\nYou hold {n} of {max}. When it is done: `task done {id}`; to give it back: "
            "`task unclaim {id}`.",
            n=result.open_claims, max=self.settings.max_open_claims, id=task.id,
        )  # fmt: skip
        return body

    def _check(
        self,
        result: Result,
        context: str,
        *,
        id: int | None = None,
        holder: str | None = None,
        kind: TaskKind | None = None,
        language: str | None = None,
    ) -> None:
        """Raise the friendly error for a change that did not happen."""
        if result.ok:
            return
        cls, template = REFUSALS.get((result.outcome, context)) or REFUSALS[result.outcome]
        task = result.task
        if task is not None:
            kind = task.kind
        role = KIND_ROLE.get(kind) if kind else None
        values: dict[str, object] = {
            "id": id if id is not None else (task.id if task else ""),
            "holder": holder or (_name(task.claimer) if task else ""),
            "status": _status(task.status) if task else "",
            "kind": kind.value if kind else "",
            "role": role.value if role else "volunteer",
            "roles": ", ".join(result.roles) or "none",
            "languages": ", ".join(result.languages) or "none given",
            "language": language or "",
            "count": result.open_claims,
            "what": f" of kind {kind.value}" if kind and context.startswith("next") else "",
        }
        raise cls(template, **values)


class TaskNotices:
    """The words of the notices the queue sends, rendered when they are delivered."""

    def __init__(self, cog: Tasks) -> None:
        self.cog = cog

    def render(self, notice: TaskNotice) -> Markup:
        """A notice in words."""
        words = {Notice.IDLE: self.idle, Notice.EXPIRED: self.expired, Notice.DUE: self.due,
                 Notice.ASSIGNED: self.assigned, Notice.CANCELLED: self.cancelled,
                 Notice.CHANGES: self.changes, Notice.APPROVED: self.approved}  # fmt: skip
        return words[notice.notice](notice)

    def idle(self, n: TaskNotice) -> Markup:
        """Still on it?"""
        assert n.when is not None
        return Markup.format(
            "Still on task #{id} “{title}”? Nothing has happened on it for a while. "
            "`task extend {id}` (or any task command on it) keeps it yours; `task unclaim "
            "{id}` gives it back. Otherwise it returns to the queue at {when}.",
            id=n.task_id, title=n.title, when=self.cog.when(n.when),
        )  # fmt: skip

    def expired(self, n: TaskNotice) -> Markup:
        """Released after no activity."""
        return Markup.format(
            "Task #{id} “{title}” went back to the queue after no activity. If you are still "
            "on it, claim it again with `task claim {id}`.",
            id=n.task_id, title=n.title,
        )  # fmt: skip

    def due(self, n: TaskNotice) -> Markup:
        """Due within a day."""
        assert n.when is not None
        return Markup.format(
            "Reminder: task #{id} “{title}” is due {when}. Done? `task done {id}`. "
            "Need help? Ask a coordinator.",
            id=n.task_id, title=n.title, when=self.cog.when(n.when),
        )  # fmt: skip

    def assigned(self, n: TaskNotice) -> Markup:
        """A coordinator gave you a task."""
        return Markup.format(
            "{coordinator} gave you task #{id} “{title}”. `task show {id}` has the details.",
            coordinator=n.by or FORMER, id=n.task_id, title=n.title,
        )  # fmt: skip

    def changes(self, n: TaskNotice) -> Markup:
        """A reviewer sent your work back."""
        return Markup.format(
            "{reviewer} asked for changes to task #{id} “{title}”: “{note}”. It is yours "
            "again; when it is ready, hand it in with `task done {id} <link>`.",
            reviewer=n.by or FORMER, id=n.task_id, title=n.title, note=n.note or "",
        )  # fmt: skip

    def approved(self, n: TaskNotice) -> Markup:
        """A reviewer approved your work."""
        return Markup.format(
            "{reviewer} approved task #{id} “{title}”: it is done. Thank you!",
            reviewer=n.by or FORMER, id=n.task_id, title=n.title,
        )  # fmt: skip

    def cancelled(self, n: TaskNotice) -> Markup:
        """A task you held was cancelled."""
        return Markup.format(
            "{coordinator} cancelled task #{id} “{title}”, which you held. Thank you for "
            "taking it on.",
            coordinator=n.by or FORMER, id=n.task_id, title=n.title,
        )  # fmt: skip


def _status(status: TaskStatus) -> str:
    return status.value.replace("_", " ")


def _role(kind: TaskKind) -> str:
    role = KIND_ROLE[kind]
    return role.value if role else "volunteer"


def _name(user: UserRef | None) -> str:
    return user.label if user is not None else FORMER


def _language_name(code: str) -> str:
    return f"{LANGUAGES.get(code, code)} ({code})"


def _languages(task: TaskView) -> str:
    if task.source_language and task.language:
        return f"{task.source_language}→{task.language}"
    if task.language:
        return f"into {task.language}"
    if task.source_language:
        return f"from {task.source_language}"
    return ""


def _coverage(report: QueueReport) -> dict[str, dict[str, int]]:
    """Each target language's tasks per report column, languages in code order."""
    rows: dict[str, dict[str, int]] = {}
    for code in sorted(report.counts, key=lambda c: (c == "", c)):
        counts = report.counts[code]
        rows[code or NO_LANGUAGE] = {
            column: sum(counts.get(s, 0) for s in statuses)
            for column, statuses in REPORT_COLUMNS.items()
        }
    return rows


def _list_options(kind: TaskKind | None, language: str | None, status: Status | None) -> str:
    opts = [("--kind", kind.value if kind else None), ("--language", language),
            ("--status", status.value if status else None)]  # fmt: skip
    return "".join(f" {name} {value}" for name, value in opts if value)
