"""The shared task queue: coordinators post jobs, volunteers claim them and see them through."""

import functools
import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from bot.background import Periodic
from bot.charts import CoverageData, coverage_attachment
from bot.commands import Cog, command, requires
from bot.context import Attachment, Button, Ctx, Reply
from bot.domain import (
    KIND_ROLE,
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
from bot.domain.i18n import LanguageName, Msg, _, ngettext, pgettext
from bot.domain.markup import cmd
from bot.domain.tasks import Change, Expiry, Notice, Outcome, TaskNotice, Verdict
from bot.domain.vocab import STATUS_WORDS
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
# How each report column counts, in words. Values: n.
REPORT_COUNTS: dict[str, Msg] = {
    "open": _("{n:,} open"),
    "claimed": _("{n:,} claimed"),
    "in review": _("{n:,} in review"),
    "done": _("{n:,} done"),
}
NO_LANGUAGE = "—"
FORMER = _("a former volunteer")
NEWLINE = Markup.trusted("\n")
COMMA = Markup.trusted(", ")
# Who takes a kind of job no role is for, as a word in a sentence ("for a volunteer").
ANY_ROLE = pgettext("role", "volunteer")


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


# The heading of ``task list``, by (most urgent first?, filtered?). Values: filters, n.
LIST_HEADS: dict[tuple[bool, bool], Msg] = {
    (True, True): _("**Tasks ({filters})**, most urgent first (page {n:,})"),
    (True, False): _("**Tasks**, most urgent first (page {n:,})"),
    (False, True): _("**Tasks ({filters})**, newest first (page {n:,})"),
    (False, False): _("**All tasks**, newest first (page {n:,})"),
}

# What ``task list`` answers when no task has the status asked for (and no other filter).
NONE_LISTED: dict[Status, Msg] = {
    Status.OPEN: _("No open tasks."),
    Status.CLAIMED: _("No claimed tasks."),
    Status.IN_REVIEW: _("No tasks in review."),
    Status.DONE: _("No done tasks."),
    Status.CANCELLED: _("No cancelled tasks."),
    Status.ALL: _("No tasks yet."),
}

TaskId = Annotated[int, Param("Task number", min=1, autocomplete=True)]

# Why a change did not happen, in words. Values: id, holder, status, kind, role, roles,
# languages, language, count, and the commands that would help: list, claim, done, done_any,
# unclaim_any, approve, approve_any, changes, join, join_role, join_example, join_languages,
# join_language. A (outcome, command) entry overrides the general one.
REFUSALS: dict[Outcome | tuple[Outcome, str], tuple[type[UserError], Msg]] = {
    Outcome.NOT_FOUND: (NotFound, _("There is no task `{id}`. See the open ones with {list}.")),
    Outcome.NOT_REGISTERED: (
        NotPermitted,
        _("You are not registered as a volunteer yet. Join first, e.g. {join_example}."),
    ),
    (Outcome.NOT_REGISTERED, "assign"): (
        NotFound,
        # Translators: {holder} is the name someone typed; {join} is a command.
        _("`{holder}` is not a registered volunteer. They can join with {join}."),
    ),
    Outcome.NO_ROLE: (
        NotPermitted,
        # Translators: {kind} is a kind of job (translation, design…); {role} a volunteer role.
        _("Task #{id} is a {kind} job, for a {role}. Take on that role first: {join_role}."),
    ),
    (Outcome.NO_ROLE, "next"): (
        NotFound,
        _(
            "There are open tasks, but none of a kind your roles take (your roles: {roles}). "
            "See them with {list}; add a role with {join}."
        ),
    ),
    (Outcome.NO_ROLE, "next-kind"): (
        NotPermitted,
        _(
            "{kind} tasks are for a {role}, and you are not one. Take on the role with "
            "{join_role}."
        ),
    ),
    Outcome.NO_LANGUAGE: (
        NotFound,
        _(
            "There are open tasks for your roles, but none in your languages ({languages}). "
            "Add languages with {join_languages}."
        ),
    ),
    Outcome.NOT_YOUR_LANGUAGE: (
        BadArgument,
        # Translators: {language} is a language code someone typed, e.g. pl.
        _(
            "`{language}` is not one of your languages ({languages}). Add it with "
            "{join_language} or leave the language out."
        ),
    ),
    Outcome.EMPTY: (NotFound, _("The queue is empty: no open tasks right now.")),
    (Outcome.EMPTY, "next-kind"): (
        NotFound,
        _("The queue is empty: no open tasks of kind {kind} right now."),
    ),
    Outcome.LIMIT: (
        Conflict,
        _(
            "You already hold {count:,} tasks, the most anyone can at once. Finish one with "
            "{done_any} or give one back with {unclaim_any} first."
        ),
    ),
    (Outcome.LIMIT, "assign"): (
        Conflict,
        _("{holder} already holds {count:,} tasks, the most anyone can at once."),
    ),
    Outcome.TAKEN: (Conflict, _("Too late: task #{id} is already claimed by {holder}.")),
    # Translators: {status} is a status word: claimed, in review, done, cancelled.
    Outcome.CLOSED: (Conflict, _("Task #{id} is {status}; it cannot change any more.")),
    Outcome.NOT_CLAIMED: (
        Conflict,
        _("Nobody holds task #{id}: it is open. Claim it with {claim}."),
    ),
    Outcome.NOT_YOURS: (
        NotPermitted,
        _("Task #{id} is held by {holder}, not by you; only they can finish it or give it back."),
    ),
    (Outcome.ALREADY_YOURS, "assign"): (Conflict, _("{holder} already holds task #{id}.")),
    Outcome.NOT_IN_REVIEW: (
        Conflict,
        _(
            "Task #{id} is not in review: it is {status}. Work is reviewed once its holder "
            "hands it in with {done}."
        ),
    ),
    Outcome.IN_REVIEW: (
        Conflict,
        _(
            "Task #{id} is handed in and waits for review; it changes hands only through "
            "{approve} or {changes}."
        ),
    ),
    Outcome.OWN_WORK: (
        NotPermitted,
        _("Task #{id} is your own work; another {role} has to review it."),
    ),
    Outcome.WRONG_LANGUAGE: (
        NotPermitted,
        _(
            "Task #{id} is a translation into {language}, which is not among your languages "
            "({languages}); its reviewer must work in it."
        ),
    ),
    Outcome.REVIEW_TAKEN: (Conflict, _("{holder} is already reviewing task #{id}.")),
    (Outcome.NO_ROLE, "review"): (
        NotPermitted,
        _(
            "Task #{id} is a {kind} job: its reviewer must be a {role}. Take on the role with "
            "{join_role}."
        ),
    ),
    (Outcome.NO_ROLE, "next-review"): (
        NotFound,
        _(
            "None of your roles ({roles}) reviews work. Reviewers are translators, "
            "video-editors and the other roles with kinds of their own."
        ),
    ),
    (Outcome.EMPTY, "next-review"): (
        NotFound,
        _("Nothing waits for a review you can give right now (your languages: {languages})."),
    ),
    (Outcome.LIMIT, "next-review"): (
        Conflict,
        _(
            "You already hold {count:,} reviews, the most anyone can at once. Give your verdict "
            "on one with {approve_any} first."
        ),
    ),
}

# How each history event reads. Values: when, actor, subject.
EVENT_TEXT: dict[str, Msg] = {
    Change.POSTED: _("• {when} — posted by {actor}"),
    Change.CLAIMED: _("• {when} — claimed by {actor}"),
    Change.RELEASED: _("• {when} — given back to the queue by {actor}"),
    Change.ASSIGNED: _("• {when} — assigned to {subject} by {actor}"),
    Change.EXPIRED: _("• {when} — released after no activity (was {subject})"),
    Change.DONE: _("• {when} — done by {actor}"),
    Change.CANCELLED: _("• {when} — cancelled by {actor}"),
    Change.SUBMITTED: _("• {when} — handed in for review by {actor}"),
    Change.REVIEWING: _("• {when} — review taken by {actor}"),
    Change.APPROVED: _("• {when} — approved by {actor} (work of {subject})"),
    Change.CHANGES: _("• {when} — changes asked by {actor} (back to {subject})"),
    Change.EXTENDED: _("• {when} — claim extended by {actor}"),
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
        description: Annotated[
            str | None, Param("Details", max_length=2000, multiline=True)
        ] = None,
    ) -> Reply:
        """Add a job to the queue, one task per target language."""
        if due is not None and due <= ctx.now:
            raise BadArgument(
                _("The due date {when} is already past. Give a later one, e.g. {example}."),
                when=due, example=cmd("task post", kind=kind.value, title=title, due="in 3d"),
            )  # fmt: skip
        targets: tuple[str | None, ...] = tuple(language) if language else (None,)
        if language is not None and language.every:
            targets = tuple(code for code in language if code != source_language)
        elif source_language is not None and source_language in targets:
            raise BadArgument(
                _(
                    "The source and target language are both `{code}`. Translate from another "
                    "language, or leave the source language out."
                ),
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
        body = NEWLINE.join([
            Markup.format(_("Posted task **#{id}**: {task}"), id=task.id,
                          task=self.line(task, numbered=False)),
            Markup.format(_("Claim it with {claim}, or let {next} find it."),
                          claim=cmd("task claim", id=task.id), next=cmd("task next")),
        ])  # fmt: skip
        return Reply(body, buttons=[Button(_("Claim"), f"task claim {task.id}")],
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
        # The filters: the status and language in the reader's words (open, Polish (pl)), the
        # kind as typed (translation).
        given: list[Markup] = []
        if shown.task_status is not None:
            given.append(Markup.format(STATUS_WORDS[shown.task_status]))
        if language:
            given.append(_language_name(language))
        if kind:
            given.append(Markup.untrusted(kind.value))
        filters = COMMA.join(given)
        if not tasks:
            if number > 1:
                return Reply.text(_("There is no page {n:,} of these tasks."), n=number)
            if kind is None and language is None:
                return Reply.text(NONE_LISTED[shown])
            # Translators: {filters} lists what was asked for, e.g. "open, Polish (pl)".
            return Reply.text(_("No tasks ({filters})."), filters=filters)
        urgent = shown in (Status.OPEN, Status.CLAIMED, Status.IN_REVIEW)
        head = Markup.format(LIST_HEADS[(urgent, bool(filters.parts))], filters=filters,
                             n=number)  # fmt: skip
        lines = [head, *(self.line(t, status=shown is not Status.OPEN) for t in tasks[:size])]
        if more:
            options = {"kind": kind.value if kind else None, "language": language,
                       "status": status.value if status else None}  # fmt: skip
            further = cmd("task list", **{k: v for k, v in options.items() if v},
                          page=number + 1)  # fmt: skip
            lines.append(Markup.format(_("More: {command}"), command=further))
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
            lines.append(Markup.untrusted(task.description))
        lines.append(Markup.format(_("**History**")))
        if total > len(events):
            earlier = ngettext("…{n:,} earlier event", "…{n:,} earlier events")
            lines.append(Markup.format(earlier, n=total - len(events)))
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
            return Reply(Markup.format(_("You already have task #{id}."), id=id), private=True)
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
        if result.outcome is Outcome.EMPTY and kind is not None:
            context = "next-kind"
        self._check(result, context, kind=kind, language=language)
        return Reply(self._claimed(result))

    async def _next_review(self, ctx: Ctx, language: str | None) -> Reply:
        result = await self.tasks.claim_review(
            ctx.user, now=ctx.now, max_open=self.settings.max_open_claims, language=language
        )
        self._check(result, "next-review", language=language)
        task = result.task
        assert task is not None
        lines = [Markup.format(
            # Translators: {task} is the task's line (title, kind, languages); {name} who did it.
            _("You are reviewing task **#{id}**: {task}, by {name}"), id=task.id,
            task=self.line(task, status=False, numbered=False), name=_name(task.claimer),
        )]  # fmt: skip
        lines += self.deliverable(task)
        lines.append(Markup.format(
            _("Approve it with {approve}, or send it back: {changes}."),
            approve=cmd("task review", id=task.id, verdict="approve"),
            changes=cmd("task review", id=task.id, verdict="changes",
                        note="<what needs changing>"),
        ))  # fmt: skip
        return Reply(NEWLINE.join(lines))

    @command()
    async def unclaim(self, ctx: Ctx, id: TaskId) -> Reply:
        """Give a task back to the queue."""
        result = await self.tasks.unclaim(
            id, ctx.user, now=ctx.now, override=ctx.actor.is_coordinator
        )
        self._check(result, "unclaim", id=id)
        assert result.task is not None
        return Reply.text(_("Task #{id} “{title}” is back in the queue."),
                          id=id, title=result.task.title)  # fmt: skip

    @command()
    async def done(
        self,
        ctx: Ctx,
        id: TaskId,
        note: Annotated[
            str | None, Param("What came of it", rest=True, max_length=1000, multiline=True)
        ] = None,
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
        if task.status is TaskStatus.IN_REVIEW:
            body = Markup.format(
                _("Task #{id} “{title}” is handed in for review. Thank you, {name}! Another "
                  "{role} checks it next ({approve})."),
                id=id, title=task.title, name=ctx.user.label, role=_role(task.kind),
                approve=cmd("task review", id=id, verdict="approve"),
            )  # fmt: skip
        else:
            body = Markup.format(_("Task #{id} “{title}” is done. Thank you, {name}!"),
                                 id=id, title=task.title, name=ctx.user.label)  # fmt: skip
        if task.result_link:
            body += Markup.trusted(" ") + Markup.format(_("Result: {url}"), url=task.result_link)
        return Reply(body)

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
                _("Say what needs changing, e.g. {example}."),
                example=cmd("task review", id=id, verdict="changes", note="the title is wrong"),
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
            return Reply.text(_("Task #{id} “{title}” is approved and done. Thank you, {name}!"),
                              id=id, title=task.title, name=ctx.user.label)  # fmt: skip
        if task.status is TaskStatus.OPEN:
            return Reply.text(_("Task #{id} “{title}” is back in the queue with your note: its "
                                "translator is no longer registered."), id=id,
                              title=task.title)  # fmt: skip
        return Reply.text(_("Task #{id} “{title}” goes back to {name} with your note."),
                          id=id, title=task.title, name=_name(task.claimer))  # fmt: skip

    @command()
    async def extend(self, ctx: Ctx, id: TaskId) -> Reply:
        """Keep my claim on a task: restart its time to live."""
        result = await self.tasks.extend(id, ctx.user, now=ctx.now)
        self._check(result, "extend", id=id)
        assert result.task is not None
        until = ctx.now + self.settings.claim_ttl
        return Reply.text(_("Task #{id} “{title}” stays yours; without activity it would go "
                            "back to the queue at {when}."), id=id, title=result.task.title,
                          when=until)  # fmt: skip

    @command()
    async def mine(self, ctx: Ctx) -> Reply:
        """The tasks I hold."""
        held = await self.tasks.claims_of(ctx.user)
        if held is None:
            self._check(Result(Outcome.NOT_REGISTERED), "mine")
            raise AssertionError("unreachable")
        if not held:
            return Reply.text(_("You hold no tasks. {next} finds one that fits you."),
                              next=cmd("task next"), private=True)  # fmt: skip
        head = Markup.format(ngettext("**You hold {n:,} of {max:,} task**",
                                      "**You hold {n:,} of {max:,} tasks**", count="max"),
                             n=len(held), max=self.settings.max_open_claims)  # fmt: skip
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
        # Translators: {name} is the volunteer who now holds the task.
        return Reply.text(_("Task #{id} “{title}” is now {name}'s."), id=id,
                          title=result.task.title, name=result.task.claimer.label)  # fmt: skip

    @command()
    @requires("coordinator")
    async def cancel(self, ctx: Ctx, id: TaskId) -> Reply:
        """Cancel a task."""
        result = await self.tasks.cancel(id, by=ctx.user, now=ctx.now)
        self._check(result, "cancel", id=id)
        assert result.task is not None
        self.outbox.wake()
        return Reply.text(_("Task #{id} “{title}” is cancelled."), id=id,
                          title=result.task.title)  # fmt: skip

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
                # Translators: `volunteer-bot tasks import` is a shell command: keep it as is.
                _("`{name}` is {size:,} bytes; a file sent in chat may have {limit:,}. Split it, "
                  "or run `volunteer-bot tasks import` where the bot runs."),
                name=file.filename, size=len(file.data), limit=MAX_IMPORT_BYTES,
            )  # fmt: skip
        env = ParseEnv(now=ctx.now, timezone=self.timezone, platform=ctx.user.platform)
        try:
            rows = read_csv(file.data, env)
        except ImportRefused as exc:
            raise BadArgument(_("`{name}`: {problems}"), name=file.filename,
                              problems=exc.markup) from None  # fmt: skip
        if dry_run:
            return Reply.text(_("`{name}`: every row is fine; {summary}. Nothing was posted "
                                "(dry run)."), name=file.filename,
                              summary=summary(rows))  # fmt: skip
        posted = await self.tasks.post_many(ctx.user, [row.job for row in rows], now=ctx.now)
        return Reply.text(_("Imported `{name}`: {summary}."), name=file.filename,
                          summary=summary(rows, posted))  # fmt: skip

    @command()
    @requires("coordinator")
    async def report(self, ctx: Ctx) -> Reply:
        """Coverage by language and status, with a chart."""
        expiry = Expiry(self.settings.claim_ttl)
        found = await self.tasks.report(idle_since=expiry.nudge_cutoff(ctx.now),
                                        limit=REPORT_LISTED)  # fmt: skip
        rows = _coverage(found)
        lines = [Markup.format(_("**Tasks by language**: open, claimed, in review, done"))]
        dot = Markup.trusted(" · ")
        lines += [
            Markup.format("{lang}: {numbers}", lang=label, numbers=dot.join(
                Markup.format(REPORT_COUNTS[c], n=counts[c]) for c in REPORT_COLUMNS))
            for label, counts in rows.items()
        ] or [Markup.format(_("No tasks yet."))]  # fmt: skip
        lines.append(Markup.format(_("**Claims running out**")))
        lines += [
            Markup.format(_("#{id} {title} — {name}, back to the queue {when}"), id=t.id,
                          title=t.title, name=_name(t.claimer),
                          when=expiry.release_at(t.last_activity_at or t.created_at))
            for t in found.expiring
        ] or [Markup.format(pgettext("claims running out", "None."))]  # fmt: skip
        lines.append(Markup.format(_("**Oldest unclaimed**")))
        lines += [
            # Translators: {line} is a task's line (number, title, kind, languages).
            Markup.format(_("{line}, posted {when}"), line=self.line(t), when=t.created_at)
            for t in found.oldest_open
        ] or [Markup.format(_("None: every task is taken."))]  # fmt: skip
        unspoken = found.unspoken
        if unspoken:
            lines.append(Markup.format(
                _("**No volunteer speaks**: {languages}"),
                languages=COMMA.join(_language_name(c) for c in unspoken),
            ))  # fmt: skip
        else:
            lines.append(Markup.format(_("**No volunteer speaks**: none")))
        chart = coverage_attachment(CoverageData(
            {label: {c: counts[c] for c in REPORT_COLUMNS} for label, counts in rows.items()},
        ), ctx.reader)  # fmt: skip
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
        return Actions((Button(_("Keep it"), f"task extend {task_id}"),), ("claim", task_id))

    def _notice(self, notice: Notice, data: dict[str, Any]) -> Markup:
        return self.notices.render(TaskNotice.from_data(notice, data))

    def line(self, task: TaskView, *, status: bool = True, numbered: bool = True) -> Markup:
        """One task on one line; ``status`` adds its status and holder when not open."""
        extra: list[Markup] = []
        if task.priority is not Priority.NORMAL:
            extra.append(Markup.untrusted(task.priority.value))
        if task.due_at:
            extra.append(Markup.format(_("due {when}"), when=task.due_at))
        if status and task.status is not TaskStatus.OPEN:
            extra.append(Markup.format(_status(task.status)))
        body = Markup.format("#{id} {title}" if numbered else "{title}", id=task.id,
                             title=task.title)  # fmt: skip
        body += Markup.format(" — {kind}", kind=task.kind.value)
        if langs := _languages(task):
            body += Markup.trusted(" ") + langs
        if extra:
            body += Markup.trusted(" (") + COMMA.join(extra) + Markup.trusted(")")
        if status and task.status is TaskStatus.CLAIMED:
            # Translators: {task} is a task's line (number, title, kind, languages…).
            body = Markup.format(_("{task}, held by {name}"), task=body, name=_name(task.claimer))
        return body

    def facts(self, task: TaskView) -> Markup:
        """The details block of ``task show``."""
        rows: list[Markup] = [
            Markup.format(_("Kind: {kind}"), kind=task.kind.value),
            Markup.format(_("Status: {status}"), status=_status(task.status)),
            Markup.format(_("Priority: {priority}"), priority=task.priority.value),
        ]
        if task.language:
            rows.append(Markup.format(_("Into: {language}"),
                                      language=_language_name(task.language)))  # fmt: skip
        if task.source_language:
            rows.append(Markup.format(_("From: {language}"),
                                      language=_language_name(task.source_language)))  # fmt: skip
        if task.due_at:
            rows.append(Markup.format(_("Due: {when}"), when=task.due_at))
        if task.job_id is not None:
            rows.append(Markup.format(_("Job: #{job} ({command})"), job=task.job_id,
                                      command=cmd("job show", id=task.job_id)))  # fmt: skip
        if task.source_url:
            rows.append(Markup.format(_("Source: {url}"), url=task.source_url))
        if task.status is TaskStatus.CLAIMED:
            rows.append(Markup.format(_("Held by: {name} since {when}"),
                                      name=_name(task.claimer),
                                      when=task.claimed_at or task.created_at))  # fmt: skip
        if task.status is TaskStatus.IN_REVIEW:
            rows.append(Markup.format(_("Submitted by: {name}"), name=_name(task.claimer)))
            if task.reviewer_id is not None:
                rows.append(Markup.format(_("Review taken by: {name}"),
                                          name=_name(task.reviewer)))  # fmt: skip
        rows += self.deliverable(task)
        return NEWLINE.join(rows)

    def deliverable(self, task: TaskView) -> list[Markup]:
        """The result and the latest review note of a task, as lines."""
        rows: list[Markup] = []
        if task.result_link:
            rows.append(Markup.format(_("Result: {url}"), url=task.result_link))
        if task.result_note and task.result_note != task.result_link:
            rows.append(Markup.format(_("Result note: {note}"), note=task.result_note))
        if task.review_note:
            rows.append(Markup.format(
                _("Changes asked by {name}: {note}"), name=_name(task.reviewer),
                note=task.review_note,
            ))  # fmt: skip
        return rows

    def event(self, event: EventView) -> Markup:
        """One history line."""
        template = EVENT_TEXT.get(event.action)
        values = {"when": event.at, "actor": _name(event.actor), "subject": _name(event.subject)}
        if template is None:  # an action this version does not know: its stored name
            text = Markup.format("• {when} — {action}", when=event.at, action=event.action)
        else:
            text = Markup.format(template, **values)
        if event.note:
            # Translators: {event} is a history line (when, what, who); {note} what they wrote.
            text = Markup.format(_("{event}: “{note}”"), event=text, note=event.note)
        return text

    def job_posted(self, job: JobView, tasks: list[TaskView]) -> Markup:
        """The answer to posting a job: its number, and each task's number and language."""
        values = {"job": job.id, "title": job.title, "kind": job.kind.value, "n": len(tasks),
                  "source": job.source_language}  # fmt: skip
        head = Markup.format(
            ngettext("Posted job **#{job}** “{title}” — {kind} from {source}, {n:,} task:",
                     "Posted job **#{job}** “{title}” — {kind} from {source}, {n:,} tasks:")
            if job.source_language else
            ngettext("Posted job **#{job}** “{title}” — {kind}, {n:,} task:",
                     "Posted job **#{job}** “{title}” — {kind}, {n:,} tasks:"),
            **values,
        )  # fmt: skip
        lines = [head]
        lines += [Markup.format("#{id} {lang}", id=t.id, lang=_language_name(t.language or ""))
                  for t in tasks]  # fmt: skip
        lines.append(Markup.format(
            _("Claim one with {claim} or {next}; the whole job: {show}."),
            claim=cmd("task claim", id="<id>"), next=cmd("task next"),
            show=cmd("job show", id=job.id),
        ))  # fmt: skip
        return NEWLINE.join(lines)

    def _claimed(self, result: Result) -> Markup:
        task = result.task
        assert task is not None
        return NEWLINE.join([
            Markup.format(_("You have task **#{id}**: {task}"), id=task.id,
                          task=self.line(task, status=False, numbered=False)),
            Markup.format(
                ngettext("You hold {n:,} of {max:,}. When it is done: {done}; to give it back: "
                         "{unclaim}.",
                         "You hold {n:,} of {max:,}. When it is done: {done}; to give it back: "
                         "{unclaim}.", count="max"),
                n=result.open_claims, max=self.settings.max_open_claims,
                done=cmd("task done", id=task.id), unclaim=cmd("task unclaim", id=task.id),
            ),
        ])  # fmt: skip

    def _check(
        self,
        result: Result,
        context: str,
        *,
        id: int | None = None,
        holder: str | None = None,
        kind: TaskKind | None = None,
        language: str | Markup | None = None,
    ) -> None:
        """Raise the friendly error for a change that did not happen."""
        if result.ok:
            return
        cls, template = REFUSALS.get((result.outcome, context)) or REFUSALS[result.outcome]
        task = result.task
        if task is not None:
            kind = task.kind
        role = KIND_ROLE.get(kind) if kind else None
        number = id if id is not None else (task.id if task else "")
        role_name = role.value if role else "<role>"
        values: dict[str, object] = {
            "id": number,
            "holder": holder or (_name(task.claimer) if task else ""),
            "status": _status(task.status) if task else "",
            "kind": kind.value if kind else "",
            "role": role.value if role else ANY_ROLE,
            "roles": ", ".join(result.roles) or pgettext("roles", "none"),
            "languages": ", ".join(result.languages) or pgettext("languages", "none given"),
            "language": language or "",
            "count": result.open_claims,
            "list": cmd("task list"),
            "claim": cmd("task claim", id=number),
            "done": cmd("task done", id=number),
            "done_any": cmd("task done", id="<id>"),
            "unclaim_any": cmd("task unclaim", id="<id>"),
            "approve": cmd("task review", id=number, verdict="approve"),
            "approve_any": cmd("task review", id="<id>", verdict="approve"),
            "changes": cmd("task review", id=number, verdict="changes", note="<note…>"),
            "join": cmd("volunteer join", role="<role>"),
            "join_role": cmd("volunteer join", role=role_name),
            "join_example": cmd("volunteer join", role="translator", languages="pl"),
            "join_languages": cmd("volunteer join", role="<role>", languages="pl,de"),
            "join_language": cmd("volunteer join", role="<role>", languages=language or "…"),
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
            _("Still on task #{id} “{title}”? Nothing has happened on it for a while. "
              "{extend} (or any task command on it) keeps it yours; {unclaim} gives it back. "
              "Otherwise it returns to the queue at {when}."),
            id=n.task_id, title=n.title, when=n.when,
            extend=cmd("task extend", id=n.task_id), unclaim=cmd("task unclaim", id=n.task_id),
        )  # fmt: skip

    def expired(self, n: TaskNotice) -> Markup:
        """Released after no activity."""
        return Markup.format(
            _("Task #{id} “{title}” went back to the queue after no activity. If you are still "
              "on it, claim it again with {claim}."),
            id=n.task_id, title=n.title, claim=cmd("task claim", id=n.task_id),
        )  # fmt: skip

    def due(self, n: TaskNotice) -> Markup:
        """Due within a day."""
        assert n.when is not None
        return Markup.format(
            _("Reminder: task #{id} “{title}” is due {when}. Done? {done}. "
              "Need help? Ask a coordinator."),
            id=n.task_id, title=n.title, when=n.when, done=cmd("task done", id=n.task_id),
        )  # fmt: skip

    def assigned(self, n: TaskNotice) -> Markup:
        """A coordinator gave you a task."""
        return Markup.format(
            _("{coordinator} gave you task #{id} “{title}”. {show} has the details."),
            coordinator=n.by or FORMER, id=n.task_id, title=n.title,
            show=cmd("task show", id=n.task_id),
        )  # fmt: skip

    def changes(self, n: TaskNotice) -> Markup:
        """A reviewer sent your work back."""
        return Markup.format(
            _("{reviewer} asked for changes to task #{id} “{title}”: “{note}”. It is yours "
              "again; when it is ready, hand it in with {done}."),
            reviewer=n.by or FORMER, id=n.task_id, title=n.title, note=n.note or "",
            done=cmd("task done", id=n.task_id, note="<link>"),
        )  # fmt: skip

    def approved(self, n: TaskNotice) -> Markup:
        """A reviewer approved your work."""
        return Markup.format(
            _("{reviewer} approved task #{id} “{title}”: it is done. Thank you!"),
            reviewer=n.by or FORMER, id=n.task_id, title=n.title,
        )  # fmt: skip

    def cancelled(self, n: TaskNotice) -> Markup:
        """A task you held was cancelled."""
        return Markup.format(
            _("{coordinator} cancelled task #{id} “{title}”, which you held. Thank you for "
              "taking it on."),
            coordinator=n.by or FORMER, id=n.task_id, title=n.title,
        )  # fmt: skip


def _status(status: TaskStatus) -> Msg:
    return STATUS_WORDS[status]


def _role(kind: TaskKind) -> str:
    role = KIND_ROLE[kind]
    return role.value if role else ANY_ROLE


def _name(user: UserRef | None) -> str:
    return user.label if user is not None else FORMER


def _language_name(code: str) -> Markup:
    return Markup.format("{name} ({code})", name=LanguageName(code), code=code)


def _languages(task: TaskView) -> Markup | None:
    if task.source_language and task.language:
        return Markup.format("{source}→{target}", source=task.source_language,
                             target=task.language)  # fmt: skip
    if task.language:
        return Markup.format(_("into {code}"), code=task.language)
    if task.source_language:
        return Markup.format(_("from {code}"), code=task.source_language)
    return None


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
