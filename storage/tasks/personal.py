"""What the task queue keeps about a person: exported on request, erased on request."""

from datetime import datetime
from typing import Any

from bot.domain import UserRef
from bot.domain.tasks import Change
from storage.tasks import statements as q
from storage.tasks.tx import Tx, claimer, record


def export(tx: Tx, user: UserRef) -> dict[str, Any]:
    """Claims, tasks created and history naming ``user``, JSON-ready."""
    me = claimer(tx, user)
    who = {"who_platform": user.platform, "who": user.external_id}
    claims = []
    reviews = []
    if me is not None:
        claims = [
            {"task": r["id"], "title": r["title"], "status": r["status"],
             "claimed_at": _iso(r["claimed_at"]), "result_link": r["result_link"],
             "result_note": r["result_note"]}
            for r in tx.rows(q.CLAIMS_OF, {"vid": me.id})
        ]  # fmt: skip
        reviews = [
            {"task": r["id"], "title": r["title"], "status": r["status"],
             "review_note": r["review_note"]}
            for r in tx.rows(q.REVIEWS_OF, {"vid": me.id})
        ]  # fmt: skip
    jobs = [
        {"job": r["id"], "title": r["title"], "description": r["description"],
         "created_at": _iso(r["created_at"]), "name": r["creator_name"]}
        for r in tx.rows(q.JOBS_BY, {"who_platform": user.platform, "who": user.external_id})
    ]  # fmt: skip
    created = [
        {"task": r["id"], "title": r["title"], "description": r["description"],
         "status": r["status"], "created_at": _iso(r["created_at"]), "name": r["creator_name"]}
        for r in tx.rows(q.CREATED_BY, who)
    ]  # fmt: skip
    events = []
    for r in tx.rows(q.EVENTS_NAMING, who):
        acted = (r["actor_platform"], r["actor_external_id"]) == (user.platform, user.external_id)
        events.append(
            {"task": r["task_id"], "at": _iso(r["at"]), "action": r["action"],
             "role": "actor" if acted else "subject",
             "name": r["actor_name"] if acted else r["subject_name"],
             "note": r["note"] if acted else None}
        )  # fmt: skip
    return {"claims": claims, "reviews": reviews, "created": created, "jobs": jobs,
            "history": events}  # fmt: skip


def erase(tx: Tx, user: UserRef, now: datetime) -> int:
    """Release ``user``'s claims and replace them with "a former volunteer" everywhere.

    Must run before the volunteer record is deleted. Returns how many rows changed.
    """
    changed = 0
    me = claimer(tx, user, lock=True)
    who = {"who_platform": user.platform, "who": user.external_id}
    if me is not None:
        released = [r["id"] for r in tx.rows(q.RELEASE_ALL, {"vid": me.id})]
        for task_id in released:
            record(tx, task_id, Change.RELEASED, now, actor=None)
        changed += len(released)
        changed += tx.change(q.FORGET_CLAIMER, {"vid": me.id})
        changed += tx.change(q.FORGET_REVIEWER, {"vid": me.id})
    changed += tx.change(q.FORGET_CREATOR, who)
    changed += tx.change(q.FORGET_JOB_CREATOR, who)
    changed += tx.change(q.FORGET_ACTOR, who)
    changed += tx.change(q.FORGET_SUBJECT, who)
    return changed


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
