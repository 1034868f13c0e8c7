"""The coordinators' report: counts per language and status, and what needs attention.

It shows claims running out, the oldest open tasks, and the languages nobody registered speaks.

Every part reads a bounded number of rows, however long the queue: the counts come from
``task_tally``, which triggers on the task table keep (migration 17); the claims from the
claimed-task index in order of last activity; the oldest open tasks from ``ix_task_open_age``.
``task_tally`` is derived data and deliberately not a model: ``db copy`` leaves it to the
target's triggers.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from bot.domain import LANGUAGES
from storage.models import Volunteer
from storage.prepared import Prepared
from storage.tasks import statements as q
from storage.tasks.tx import Tx
from storage.tasks.views import TaskView, task_view

_md = sa.MetaData()
TALLY = sa.Table(
    "task_tally", _md,
    sa.Column("language", sa.String(2), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)  # fmt: skip
V = cast(sa.Table, Volunteer.__table__)  # type: ignore[attr-defined]
T = q.T
LIMIT = sa.bindparam("limit", type_=sa.Integer())

COUNTS = Prepared(
    "tasks per target language and status",
    sa.select(TALLY.c.language, TALLY.c.status, sa.func.sum(TALLY.c.n).label("n"))
    .group_by(TALLY.c.language, TALLY.c.status)
    .having(sa.func.sum(TALLY.c.n) > 0),
)
EXPIRING = Prepared(
    "claims idle since :cutoff, the longest idle first",
    q.TASK_VIEW.where(q.IS_CLAIMED, T.c.last_activity_at <= q.CUTOFF)
    .order_by(T.c.last_activity_at, T.c.id)
    .limit(LIMIT),
)
OLDEST_OPEN = Prepared(
    "the oldest open tasks", q.TASK_VIEW.where(q.IS_OPEN).order_by(T.c.id).limit(LIMIT)
)
SPOKEN = Prepared(
    "the languages volunteers gave, and by how many",
    sa.select(V.c.languages, sa.func.count().label("n")).group_by(V.c.languages),
)


@dataclass(frozen=True, slots=True)
class QueueReport:
    """What ``task report`` shows.

    ``counts`` maps a target language ('' for none) to tasks per status; ``speakers`` maps
    each EU language to the registered volunteers who gave it.
    """

    counts: dict[str, dict[str, int]]
    expiring: list[TaskView]
    oldest_open: list[TaskView]
    speakers: dict[str, int]

    @property
    def unspoken(self) -> list[str]:
        """The EU languages no registered volunteer gave, in code order."""
        return [code for code in sorted(LANGUAGES) if not self.speakers.get(code)]


def read_report(tx: Tx, *, idle_since: datetime, limit: int) -> QueueReport:
    """The report as the queue stands; claims idle since ``idle_since`` count as running out."""
    counts: dict[str, dict[str, int]] = {}
    for row in tx.rows(COUNTS, {}):
        counts.setdefault(row["language"], {})[row["status"]] = int(row["n"])
    params: dict[str, Any] = {"cutoff": idle_since, "limit": limit}
    expiring = [task_view(r) for r in tx.rows(EXPIRING, params)]
    oldest = [task_view(r) for r in tx.rows(OLDEST_OPEN, {"limit": limit})]
    speakers: Counter[str] = Counter()
    for row in tx.rows(SPOKEN, {}):
        for code in {c for c in row["languages"].split(",") if c}:
            speakers[code] += int(row["n"])
    return QueueReport(counts, expiring, oldest, dict(speakers))
