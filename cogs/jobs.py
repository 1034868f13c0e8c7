"""Jobs: one piece of work posted into many languages, followed language by language."""

from typing import Annotated

from bot.commands import Cog, command
from bot.context import Ctx, Reply
from bot.domain import LANGUAGES, Markup, NotFound, TaskStatus, UserRef
from bot.domain.i18n import LanguageName, Msg, _, ngettext, npgettext
from bot.domain.markup import cmd
from bot.params import Param
from bot.services import Services
from storage.tasks import JobSummary, JobView, TaskView

NEWLINE = Markup.trusted("\n")
COMMA = Markup.trusted(", ")
FORMER = _("a former volunteer")
# The order statuses are counted in, and how a count of each reads in a job's progress.
STATUS_COUNTS: dict[TaskStatus, Msg] = {
    TaskStatus.DONE: npgettext("job progress", "{n:,} done", "{n:,} done"),
    TaskStatus.IN_REVIEW: npgettext("job progress", "{n:,} in review", "{n:,} in review"),
    TaskStatus.CLAIMED: npgettext("job progress", "{n:,} claimed", "{n:,} claimed"),
    TaskStatus.OPEN: npgettext("job progress", "{n:,} open", "{n:,} open"),
    TaskStatus.CANCELLED: npgettext("job progress", "{n:,} cancelled", "{n:,} cancelled"),
}
# One language of a job, by its task's status and whether it names a volunteer, a reviewer.
ROWS: dict[tuple[TaskStatus, bool, bool], Msg] = {
    # Translators: {code} is a language code, {language} its name, {id} the task's number.
    (TaskStatus.OPEN, False, False): _("• {code} {language} — #{id} open"),
    (TaskStatus.CANCELLED, False, False): _("• {code} {language} — #{id} cancelled"),
    (TaskStatus.CLAIMED, True, False): _("• {code} {language} — #{id} claimed by {claimer}"),
    (TaskStatus.IN_REVIEW, True, False): _("• {code} {language} — #{id} in review by {claimer}"),
    (TaskStatus.IN_REVIEW, True, True): _(
        "• {code} {language} — #{id} in review by {claimer}, reviewer {reviewer}"
    ),
    (TaskStatus.DONE, False, False): _("• {code} {language} — #{id} done"),
    (TaskStatus.DONE, True, False): _("• {code} {language} — #{id} done by {claimer}"),
    (TaskStatus.DONE, False, True): _("• {code} {language} — #{id} done, approved by {reviewer}"),
    (TaskStatus.DONE, True, True): _(
        "• {code} {language} — #{id} done by {claimer}, approved by {reviewer}"
    ),
}
# Translators: {row} is a job's line for one language; {url} the link to its result.
WITH_LINK = _("{row}: {url}")
# Translators: {row} is a job's line for one language; {note} its result in the volunteer's words.
WITH_NOTE = _("{row}: “{note}”")
# Translators: {row} is a job's line for one language; {note} the changes a reviewer asked for.
CHANGES_ASKED = _("{row} (changes asked: “{note}”)")

JobId = Annotated[int, Param("Job number", min=1)]


class Jobs(Cog):
    """Follow jobs posted into many languages."""

    group = "job"
    personal_data = False  # jobs are exported and erased with the tasks

    def __init__(self, services: Services) -> None:
        self.tasks = services.tasks
        self.page_size = services.settings.tasks.page_size

    @command()
    async def show(self, ctx: Ctx, id: JobId) -> Reply:
        """One job: each language with its status, holder and result."""
        found = await self.tasks.job(id)
        if found is None:
            raise NotFound(_("There is no job `{id}`. See the jobs with {command}."), id=id,
                           command=cmd("job list"))  # fmt: skip
        job, tasks = found
        lines = [self.head(job, len(tasks))]
        if job.source_url:
            lines.append(Markup.format(_("Source: {url}"), url=job.source_url))
        # Translators: {when} is a date and time; {counts} says how many of the job's tasks
        # are in each state ("2 done, 1 open").
        lines.append(Markup.format(_("Posted by {name}, {when}; progress: {counts}"),
                                   name=_name(job.creator), when=job.created_at,
                                   counts=_counts(_tally(tasks), len(tasks))))  # fmt: skip
        lines += [self.row(t) for t in tasks]
        return Reply(NEWLINE.join(lines), subject=("job", job.id))

    @command("list")
    async def list_(
        self,
        ctx: Ctx,
        *,
        page: Annotated[int | None, Param("Page number", min=1, max=100_000)] = None,
    ) -> Reply:
        """The jobs, newest first, with how far each has come."""
        number = page or 1
        jobs = await self.tasks.jobs(offset=(number - 1) * self.page_size,
                                     limit=self.page_size + 1)  # fmt: skip
        if not jobs:
            if number > 1:
                return Reply.text(_("There is no page {page} of jobs."), page=number)
            post = cmd("task post", kind="translation", title="<title>", language="pl,de,fr")
            return Reply.text(_("No jobs yet. Post one into several languages with {command}."),
                              command=post)  # fmt: skip
        head = Markup.format(_("**Jobs**, newest first (page {page})"), page=number)
        lines = [head, *(self.summary(s) for s in jobs[: self.page_size])]
        if len(jobs) > self.page_size:
            lines.append(Markup.format(_("More: {command}"),
                                       command=cmd("job list", page=number + 1)))  # fmt: skip
        return Reply(NEWLINE.join(lines))

    # --- rendering --------------------------------------------------------------------

    def head(self, job: JobView, languages: int) -> Markup:
        """The job's title line."""
        if job.source_language:
            # Translators: {kind} is the kind of job as typed in commands (translation,
            # video-editing); {source} the code of the language it is translated from.
            template = ngettext(
                "**Job #{id} “{title}”** — {kind} from {source}, {n:,} language",
                "**Job #{id} “{title}”** — {kind} from {source}, {n:,} languages",
            )
        else:
            # Translators: {kind} is the kind of job as typed in commands (translation,
            # video-editing).
            template = ngettext(
                "**Job #{id} “{title}”** — {kind}, {n:,} language",
                "**Job #{id} “{title}”** — {kind}, {n:,} languages",
            )
        return Markup.format(template, id=job.id, title=job.title, kind=job.kind.value,
                             source=job.source_language or "", n=languages)  # fmt: skip

    def row(self, task: TaskView) -> Markup:
        """One language of the job: its task, status, holder and result."""
        code = task.language or "—"
        claimer, reviewer = _holders(task)
        text = Markup.format(
            ROWS[(task.status, claimer is not None, reviewer is not None)],
            code=code, language=LanguageName(code) if code in LANGUAGES else "", id=task.id,
            claimer=claimer, reviewer=reviewer,
        )  # fmt: skip
        if task.result_link:
            text = Markup.format(WITH_LINK, row=text, url=task.result_link)
        elif task.result_note:
            text = Markup.format(WITH_NOTE, row=text, note=task.result_note)
        if task.status is TaskStatus.CLAIMED and task.review_note:
            text = Markup.format(CHANGES_ASKED, row=text, note=task.review_note)
        return text

    def summary(self, s: JobSummary) -> Markup:
        """One line of ``job list``."""
        # Translators: {kind} is the kind of job as typed in commands; {counts} says how many
        # of its tasks are in each state ("2 done, 1 open").
        template = ngettext("#{id} {title} — {kind}, {n:,} language: {counts}",
                            "#{id} {title} — {kind}, {n:,} languages: {counts}")  # fmt: skip
        return Markup.format(template, id=s.job.id, title=s.job.title, kind=s.job.kind.value,
                             n=s.total, counts=_counts(s.counts, s.total))  # fmt: skip


def _name(user: UserRef | None) -> str:
    return user.label if user is not None else FORMER


def _holders(task: TaskView) -> tuple[str | None, str | None]:
    """Who a job's row names for a task: the volunteer who holds or did it, and its reviewer."""
    if task.status is TaskStatus.CLAIMED:
        return _name(task.claimer), None
    if task.status is TaskStatus.IN_REVIEW:
        return _name(task.claimer), _name(task.reviewer) if task.reviewer_id else None
    if task.status is TaskStatus.DONE:
        claimer = _name(task.claimer) if task.claimed_by or task.claimer else None
        return claimer, task.reviewer.label if task.reviewer is not None else None
    return None, None


def _tally(tasks: list[TaskView]) -> dict[TaskStatus, int]:
    counts: dict[TaskStatus, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    return counts


def _counts(counts: dict[TaskStatus, int], total: int) -> Markup:
    parts = [Markup.format(m, n=counts[s]) for s, m in STATUS_COUNTS.items() if counts.get(s)]
    if parts:
        return COMMA.join(parts)
    return Markup.format(ngettext("{n:,} task", "{n:,} tasks"), n=total)
