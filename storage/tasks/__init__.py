"""The task queue: tasks, their claims and history, persisted by the rules of bot.domain.tasks.

- :mod:`~storage.tasks.repo`: :class:`TaskRepo`, what the cogs call;
- :mod:`~storage.tasks.statements`: every statement the queue runs, each written once;
- :mod:`~storage.tasks.posting`: tasks posted, and jobs fanned out per language;
- :mod:`~storage.tasks.claims`: claims by number and ``task next``, batched;
- :mod:`~storage.tasks.expiry`: idle claims nudged and released, due dates reminded of;
- :mod:`~storage.tasks.personal`: a person's data exported and erased;
- :mod:`~storage.tasks.report`: the coordinators' report.
"""

from storage.tasks.repo import TaskRepo
from storage.tasks.report import QueueReport
from storage.tasks.views import (
    EventView,
    JobSummary,
    JobView,
    NewJob,
    NewTask,
    Posted,
    Result,
    Suggestion,
    SweepReport,
    TaskView,
)

__all__ = [
    "EventView",
    "JobSummary",
    "JobView",
    "NewJob",
    "NewTask",
    "Posted",
    "QueueReport",
    "Result",
    "Suggestion",
    "SweepReport",
    "TaskRepo",
    "TaskView",
]
