"""Claims: a task by number and ``task next``, run together in one transaction.

Every claim is one conditional ``UPDATE … WHERE status = 'open' … RETURNING``: whoever's
statement changes the row has the task, nobody reads first and writes after. The same
statement checks the claimer's open-claim limit; the claimer's volunteer row is locked first
(on PostgreSQL), so two transactions claiming for one person take turns and the second counts
the first's claim. When a claim changes nothing, the rules of :mod:`bot.domain.tasks`, asked
about the task as it is then, say why.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from bot.domain import TaskKind, UserRef
from bot.domain.tasks import (
    Change,
    Outcome,
    Search,
    check_claim,
    due_cutoff,
    has_room,
    kinds_for,
    search_for,
    why_nothing_fits,
)
from storage.acting import guard
from storage.tasks import statements as q
from storage.tasks.tx import RETRIES, Tx, claimers, open_count, view
from storage.tasks.views import Claimer, Result, event_row, held_view


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One claim: of task ``task_id``, or (None) the best that fits (``task next``)."""

    user: UserRef
    place: str
    now: datetime
    max_open: int
    task_id: int | None = None
    kind: TaskKind | None = None
    language: str | None = None


def claim_batch(tx: Tx, requests: Sequence[ClaimRequest]) -> list[Result]:
    """Run claims one after another in this transaction, in the order given.

    The claimers are looked up together, their rows locked first (see
    :func:`~storage.tasks.tx.claimers`); if one of them is being erased the whole batch is
    refused with ErasurePending (the batcher then runs the others on their own). The history
    lines of the winners are written together at the end.
    """
    # Nobody being erased may claim: the batch runs in a task of its own, so it checks here.
    guard(tx.conn, [r.user for r in requests])
    people = claimers(tx, (r.user for r in requests), lock=True)
    held = {me.id: me.held for me in people.values()}
    results: list[Result] = []
    events: list[dict[str, Any]] = []
    for r in requests:
        me = people.get((r.user.platform, r.user.external_id))
        if me is None:
            results.append(Result(Outcome.NOT_REGISTERED))
            continue
        if r.task_id is not None:
            result = _claim(tx, me, held[me.id], r, r.task_id)
        else:
            result = _claim_next(tx, me, held[me.id], r)
        if result.ok:
            assert result.task is not None
            held[me.id] += 1
            events.append(event_row(result.task.id, Change.CLAIMED.value, r.now, me.user))
        results.append(result)
    tx.many(q.EVENT, events)
    return results


def claim_params(volunteer_id: int, *, place: str, now: datetime, max_open: int) -> dict[str, Any]:
    """The parameters every claim statement takes (see :mod:`storage.tasks.statements`)."""
    return {"vid": volunteer_id, "max_open": max_open, "now": now, "due_limit": due_cutoff(now),
            "place": place[:255]}  # fmt: skip


@lru_cache(maxsize=256)
def next_claim(search: Search) -> tuple[q.NextClaim, Mapping[str, Any]]:
    """The statements of ``task next`` for one search, and the parameters naming its terms."""
    shape = q.claim_next(
        len(search.kinds), tuple(t is None for t in search.targets), len(search.sources)
    )
    params: dict[str, Any] = {f"k{i}": k.value for i, k in enumerate(search.kinds)}
    params |= {f"t{i}": t for i, t in enumerate(search.targets) if t is not None}
    params |= {f"s{i}": s for i, s in enumerate(search.sources)}
    return shape, MappingProxyType(params)


def _params(me: Claimer, r: ClaimRequest) -> dict[str, Any]:
    return claim_params(me.id, place=r.place, now=r.now, max_open=r.max_open)


def _claim(tx: Tx, me: Claimer, held: int, r: ClaimRequest, task_id: int) -> Result:
    kinds = kinds_for(me.roles)
    params = {f"k{i}": k.value for i, k in enumerate(kinds)}
    params |= _params(me, r) | {"task_id": task_id}
    statement = q.claim(len(kinds))
    for _ in range(RETRIES):
        won = tx.first(statement, params)
        if won is not None:
            return Result(Outcome.OK, held_view(won, me.user), held + 1)
        task = view(tx, task_id)
        if task is None:
            return Result(Outcome.NOT_FOUND)
        count = open_count(tx, me.id)
        outcome = check_claim(task, me.id, me.roles, count, r.max_open)
        if outcome is Outcome.ALREADY_YOURS:  # asking again counts as activity
            tx.change(q.TOUCH, {"task_id": task_id, "vid": me.id, "now": r.now})
        if outcome is not Outcome.OK:
            return Result(outcome, task, count)
    raise RuntimeError("claim kept losing races")  # pragma: no cover


def _claim_next(tx: Tx, me: Claimer, held: int, r: ClaimRequest) -> Result:
    search = search_for(me.roles, me.languages, kind=r.kind, language=r.language)
    roles, languages = tuple(sorted(me.roles)), me.languages
    if isinstance(search, tuple):
        outcome, detail = search
        return Result(outcome, detail=detail, roles=roles, languages=languages)
    shape, terms = next_claim(search)
    params = {**terms, **_params(me, r)}
    for attempt in range(RETRIES):
        # First pass over what other claimers have locked; if that left nothing, wait.
        row = tx.first(shape.skipping if attempt == 0 else shape.waiting, params)
        if row is not None:
            return Result(Outcome.OK, held_view(row, me.user), held + 1)
        count = open_count(tx, me.id)
        if not has_room(count, r.max_open):
            return Result(Outcome.LIMIT, open_claims=count)
        if tx.scalar(shape.best, params) is None:
            return replace(_why_nothing(tx, me, r), roles=roles, languages=languages)
    raise RuntimeError("task next kept losing races")  # pragma: no cover


def _why_nothing(tx: Tx, me: Claimer, r: ClaimRequest) -> Result:
    """Explain an empty ``task next``: nothing open, nothing for the roles, or the languages."""
    filters: dict[str, Any] = {}
    if r.kind is not None:
        filters["kind"] = r.kind.value
    if r.language is not None:
        filters["language"] = r.language
    shape = (r.kind is not None, r.language is not None)
    any_open = tx.scalar(q.open_exists(0, *shape), filters) is not None
    kinds = kinds_for(me.roles)
    fitting = filters | {f"k{i}": k.value for i, k in enumerate(kinds)}
    any_for_roles = any_open and tx.scalar(q.open_exists(len(kinds), *shape), fitting) is not None
    outcome = why_nothing_fits(any_open=any_open, any_for_roles=any_for_roles)
    return Result(outcome, detail=r.kind.value if r.kind and outcome is Outcome.EMPTY else None)
