"""Jobs: one piece of work posted into many languages, followed language by language."""

from typing import Annotated
from zoneinfo import ZoneInfo

from bot.commands import Cog, command
from bot.context import Ctx, Reply
from bot.domain import LANGUAGES, Markup, NotFound, TaskStatus, UserRef
from bot.params import Param
from bot.services import Services
from storage.tasks import JobSummary, JobView, TaskView

NEWLINE = Markup.trusted("\n")
FORMER = "a former volunteer"
# The order statuses are counted in, and how each reads.
STATUS_WORDS: dict[TaskStatus, str] = {
    TaskStatus.DONE: "done",
    TaskStatus.IN_REVIEW: "in review",
    TaskStatus.CLAIMED: "claimed",
    TaskStatus.OPEN: "open",
    TaskStatus.CANCELLED: "cancelled",
}

JobId = Annotated[int, Param("Job number", min=1)]


class Jobs(Cog):
    """Follow jobs posted into many languages."""

    group = "job"
    personal_data = False  # jobs are exported and erased with the tasks

    def __init__(self, services: Services) -> None:
        self.tasks = services.tasks
        self.page_size = services.settings.tasks.page_size
        self.zone = ZoneInfo(services.settings.campaign.timezone)

    @command()
    async def show(self, ctx: Ctx, id: JobId) -> Reply:
        """One job: each language with its status, holder and result."""
        found = await self.tasks.job(id)
        if found is None:
            raise NotFound("There is no job `{id}`. See the jobs with `job list`.", id=id)
        job, tasks = found
        lines = [self.head(job, len(tasks))]
        if job.source_url:
            lines.append(Markup.format("Source: {url}", url=job.source_url))
        lines.append(Markup.format("Posted by {name}, {when}; progress: {counts}",
                                   name=_name(job.creator), when=self.when(job),
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
                return Reply.text("There is no page {n} of jobs.", n=number)
            return Reply.text("No jobs yet. Post one into several languages with "
                              "`task post translation <title> --language pl,de,fr`.")  # fmt: skip
        head = Markup.format("**Jobs**, newest first (page {n})", n=number)
        lines = [head, *(self.summary(s) for s in jobs[: self.page_size])]
        if len(jobs) > self.page_size:
            lines.append(Markup.format("More: `job list --page {n}`", n=number + 1))
        return Reply(NEWLINE.join(lines))

    # --- rendering --------------------------------------------------------------------

    def when(self, job: JobView) -> str:
        """When the job was posted, in the campaign's time zone."""
        return job.created_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z")

    def head(self, job: JobView, languages: int) -> Markup:
        """The job's title line."""
        return Markup.format(
            "**Job #{id} “{title}”** — {kind}{source}, {n} languages",
            id=job.id, title=job.title, kind=job.kind.value, n=languages,
            source=f" from {job.source_language}" if job.source_language else "",
        )  # fmt: skip

    def row(self, task: TaskView) -> Markup:
        """One language of the job: its task, status, holder and result."""
        code = task.language or "—"
        status = STATUS_WORDS[task.status]
        text = Markup.format("• {code} {name} — #{id} {status}", code=code,
                             name=LANGUAGES.get(code, ""), id=task.id, status=status)  # fmt: skip
        holder = _holder(task)
        if holder:
            text += Markup.format(" {holder}", holder=holder)
        if task.result_link:
            text += Markup.format(": {url}", url=task.result_link)
        elif task.result_note:
            text += Markup.format(": “{note}”", note=task.result_note)
        if task.status is TaskStatus.CLAIMED and task.review_note:
            text += Markup.format(" (changes asked: “{note}”)", note=task.review_note)
        return text

    def summary(self, s: JobSummary) -> Markup:
        """One line of ``job list``."""
        return Markup.format("#{id} {title} — {kind}, {n} languages: {counts}", id=s.job.id,
                             title=s.job.title, kind=s.job.kind.value, n=s.total,
                             counts=_counts(s.counts, s.total))  # fmt: skip


def _name(user: UserRef | None) -> str:
    return user.label if user is not None else FORMER


def _holder(task: TaskView) -> str:
    if task.status is TaskStatus.CLAIMED:
        return f"by {_name(task.claimer)}"
    if task.status is TaskStatus.IN_REVIEW:
        by = f"by {_name(task.claimer)}"
        return f"{by}, reviewer {_name(task.reviewer)}" if task.reviewer_id else by
    if task.status is TaskStatus.DONE:
        by = f"by {_name(task.claimer)}" if task.claimed_by or task.claimer else ""
        if task.reviewer is not None:
            by += f", approved by {task.reviewer.label}"
        return by
    return ""


def _tally(tasks: list[TaskView]) -> dict[TaskStatus, int]:
    counts: dict[TaskStatus, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    return counts


def _counts(counts: dict[TaskStatus, int], total: int) -> str:
    parts = [f"{counts[s]} {word}" for s, word in STATUS_WORDS.items() if counts.get(s)]
    return ", ".join(parts) if parts else f"{total} tasks"
