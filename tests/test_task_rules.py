"""The task lifecycle rules, table by table: no database, no platform."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain import TaskKind, TaskStatus
from bot.domain.tasks import (
    DEFAULT_REVIEW_KINDS,
    TRANSITIONS,
    Change,
    Expiry,
    Notice,
    Outcome,
    Search,
    TaskNotice,
    after,
    check_assign,
    check_cancel,
    check_claim,
    check_finish,
    check_review,
    check_unclaim,
    due_reminder_needed,
    finishing,
    fits,
    has_room,
    is_closed,
    kinds_for,
    may_take,
    notice_key,
    search_for,
    why_nothing_fits,
)

OPEN, CLAIMED, IN_REVIEW, DONE, CANCELLED = TaskStatus
ME, OTHER = 1, 2
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class T:
    status: TaskStatus
    kind: TaskKind = TaskKind.OTHER
    claimed_by: int | None = None


def held(by: int, kind: TaskKind = TaskKind.OTHER) -> T:
    return T(CLAIMED, kind, by)


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        (Change.CLAIMED, OPEN, CLAIMED),
        (Change.CLAIMED, CLAIMED, None),
        (Change.CLAIMED, DONE, None),
        (Change.ASSIGNED, OPEN, CLAIMED),
        (Change.ASSIGNED, CLAIMED, CLAIMED),
        (Change.ASSIGNED, CANCELLED, None),
        (Change.RELEASED, CLAIMED, OPEN),
        (Change.RELEASED, OPEN, None),
        (Change.EXPIRED, CLAIMED, OPEN),
        (Change.DONE, CLAIMED, DONE),
        (Change.DONE, OPEN, None),
        (Change.CANCELLED, OPEN, CANCELLED),
        (Change.CANCELLED, CLAIMED, CANCELLED),
        (Change.CANCELLED, DONE, None),
        (Change.CANCELLED, IN_REVIEW, CANCELLED),
        (Change.SUBMITTED, CLAIMED, IN_REVIEW),
        (Change.SUBMITTED, OPEN, None),
        (Change.APPROVED, IN_REVIEW, DONE),
        (Change.APPROVED, CLAIMED, None),
        (Change.CHANGES, IN_REVIEW, CLAIMED),
        (Change.CHANGES, DONE, None),
        (Change.EXTENDED, CLAIMED, CLAIMED),
        (Change.EXTENDED, OPEN, None),
    ],
)
def test_transitions(change, status, expected):
    assert after(change, status) is expected


def test_closed_tasks_never_change_again():
    for status in (DONE, CANCELLED):
        assert is_closed(status)
        assert all(after(change, status) is None for change in Change if change in TRANSITIONS)
    assert not is_closed(OPEN) and not is_closed(CLAIMED)


def test_posting_is_the_only_change_without_a_transition():
    assert set(Change) - set(TRANSITIONS) == {Change.POSTED}


@pytest.mark.parametrize(
    ("roles", "kinds"),
    [
        (set(), {TaskKind.OTHER}),
        ({"translator"}, {TaskKind.TRANSLATION, TaskKind.OTHER}),
        ({"video-editor", "organiser"},
         {TaskKind.VIDEO_EDITING, TaskKind.ORGANISING, TaskKind.OTHER}),
        ({"organiser", "investigator", "programmer", "translator", "networker", "video-editor"},
         set(TaskKind)),
    ],
)  # fmt: skip
def test_roles_decide_the_kinds_someone_may_take(roles, kinds):
    assert set(kinds_for(frozenset(roles))) == kinds
    assert {k for k in TaskKind if may_take(k, roles)} == kinds


@pytest.mark.parametrize(
    ("held_now", "limit", "room"), [(0, 1, True), (1, 1, False), (2, 3, True), (3, 3, False)]
)
def test_the_claim_limit(held_now, limit, room):
    assert has_room(held_now, limit) is room


@pytest.mark.parametrize(
    ("task", "roles", "held_now", "expected"),
    [
        (T(OPEN), set(), 0, Outcome.OK),
        (T(OPEN, TaskKind.TRANSLATION), {"translator"}, 2, Outcome.OK),
        (T(OPEN, TaskKind.TRANSLATION), {"organiser"}, 0, Outcome.NO_ROLE),
        (T(OPEN), set(), 3, Outcome.LIMIT),
        (T(OPEN, TaskKind.TRANSLATION), {"organiser"}, 3, Outcome.NO_ROLE),
        (held(OTHER), set(), 0, Outcome.TAKEN),
        (held(OTHER), set(), 3, Outcome.TAKEN),
        (held(ME), set(), 3, Outcome.ALREADY_YOURS),
        (T(DONE, claimed_by=ME), set(), 0, Outcome.CLOSED),
        (T(CANCELLED), set(), 0, Outcome.CLOSED),
    ],
)
def test_who_may_claim(task, roles, held_now, expected):
    assert check_claim(task, ME, roles, held_now, 3) is expected


@pytest.mark.parametrize(
    ("task", "me", "override", "expected"),
    [
        (held(ME), ME, False, Outcome.OK),
        (held(OTHER), ME, False, Outcome.NOT_YOURS),
        (held(OTHER), ME, True, Outcome.OK),
        (held(OTHER), None, True, Outcome.OK),
        (held(OTHER), None, False, Outcome.NOT_YOURS),
        (T(OPEN), ME, True, Outcome.NOT_CLAIMED),
        (T(DONE, claimed_by=ME), ME, False, Outcome.CLOSED),
        (T(CANCELLED), ME, True, Outcome.CLOSED),
    ],
)
def test_who_may_give_a_task_back(task, me, override, expected):
    assert check_unclaim(task, me, override=override) is expected


@pytest.mark.parametrize(
    ("task", "me", "expected"),
    [
        (held(ME), ME, Outcome.OK),
        (held(OTHER), ME, Outcome.NOT_YOURS),
        (held(OTHER), None, Outcome.NOT_YOURS),
        (T(OPEN), ME, Outcome.NOT_CLAIMED),
        (T(DONE, claimed_by=ME), ME, Outcome.CLOSED),
    ],
)
def test_only_the_claimer_may_finish(task, me, expected):
    assert check_finish(task, me) is expected


@pytest.mark.parametrize(
    ("task", "held_now", "expected"),
    [
        (T(OPEN), 0, Outcome.OK),
        (T(OPEN, TaskKind.TRANSLATION), 0, Outcome.OK),  # an override needs no role
        (held(OTHER), 0, Outcome.OK),
        (held(ME), 0, Outcome.ALREADY_YOURS),
        (held(ME), 3, Outcome.ALREADY_YOURS),
        (T(OPEN), 3, Outcome.LIMIT),
        (T(CANCELLED), 0, Outcome.CLOSED),
    ],
)
def test_who_may_be_given_a_task(task, held_now, expected):
    assert check_assign(task, ME, held_now, 3) is expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [(T(OPEN), Outcome.OK), (held(OTHER), Outcome.OK), (T(DONE), Outcome.CLOSED),
     (T(CANCELLED), Outcome.CLOSED)],
)  # fmt: skip
def test_what_may_be_cancelled(task, expected):
    assert check_cancel(task) is expected


@pytest.mark.parametrize(
    ("kind", "language", "source", "fit"),
    [
        (TaskKind.OTHER, None, None, True),
        (TaskKind.TRANSLATION, "pl", "en", True),
        (TaskKind.TRANSLATION, "pl", None, True),
        (TaskKind.TRANSLATION, "de", "en", False),
        (TaskKind.TRANSLATION, "pl", "fr", False),
        (TaskKind.PROGRAMMING, None, None, False),
    ],
)
def test_what_task_next_gives_a_polish_english_translator(kind, language, source, fit):
    roles, languages = {"translator"}, ("pl", "en")
    assert fits(kind, language, source, roles=roles, languages=languages) is fit


@pytest.mark.parametrize(
    ("kind", "language", "expected"),
    [
        (None, None,
         Search((TaskKind.TRANSLATION, TaskKind.OTHER), (None, "pl", "en"), ("pl", "en"))),
        (TaskKind.TRANSLATION, "pl", Search((TaskKind.TRANSLATION,), ("pl",), ("pl", "en"))),
        (TaskKind.PROGRAMMING, None, (Outcome.NO_ROLE, "programming")),
        (None, "de", (Outcome.NOT_YOUR_LANGUAGE, "de")),
    ],
)  # fmt: skip
def test_the_search_task_next_runs(kind, language, expected):
    found = search_for(frozenset({"translator"}), ("pl", "en"), kind=kind, language=language)
    assert found == expected


@pytest.mark.parametrize(
    ("any_open", "any_for_roles", "expected"),
    [(False, False, Outcome.EMPTY), (True, False, Outcome.NO_ROLE),
     (True, True, Outcome.NO_LANGUAGE)],
)  # fmt: skip
def test_why_task_next_found_nothing(any_open, any_for_roles, expected):
    assert why_nothing_fits(any_open=any_open, any_for_roles=any_for_roles) is expected


TTL = timedelta(days=10)


@pytest.mark.parametrize(
    ("idle_for", "nudged", "nudge", "release"),
    [
        (timedelta(days=1), False, False, False),
        (timedelta(days=8) - timedelta(seconds=1), False, False, False),
        (timedelta(days=8), False, True, False),
        (timedelta(days=8), True, False, False),
        (timedelta(days=10) - timedelta(seconds=1), True, False, False),
        (timedelta(days=10), True, False, True),
        (timedelta(days=30), False, True, True),
    ],
)
def test_idle_claims_are_nudged_at_80_percent_and_released_at_their_ttl(
    idle_for, nudged, nudge, release
):
    expiry = Expiry(TTL)
    last = NOW - idle_for
    assert expiry.nudge_due(last, nudged, NOW) is nudge
    assert expiry.expired(last, NOW) is release
    assert expiry.release_at(last) == last + TTL
    # The cut-offs the storage statements compare with say the same.
    assert (last <= expiry.nudge_cutoff(NOW)) is (idle_for >= TTL * 0.8)
    assert (last <= expiry.release_cutoff(NOW)) is release


@pytest.mark.parametrize(
    ("due_in", "needed"),
    [(None, False), (timedelta(hours=23), False), (timedelta(days=1), False),
     (timedelta(days=1, seconds=1), True), (timedelta(days=5), True)],
)  # fmt: skip
def test_a_claim_taken_within_a_day_of_its_due_date_gets_no_reminder(due_in, needed):
    due = NOW + due_in if due_in is not None else None
    assert due_reminder_needed(due, NOW) is needed


@pytest.mark.parametrize(
    ("notice", "key"),
    [
        (TaskNotice(Notice.EXPIRED, 7, "Leaflet"), "task:7:claim:2:expired"),
        (TaskNotice(Notice.DUE, 7, "Leaflet", when=NOW), "task:7:claim:2:due"),
        (TaskNotice(Notice.ASSIGNED, 7, "Leaflet", by="Coco"), "task:7:claim:2:assigned"),
        (TaskNotice(Notice.CANCELLED, 7, "Leaflet", by="Coco"), "task:7:cancelled"),
        (
            TaskNotice(Notice.IDLE, 7, "Leaflet", when=NOW),
            f"task:7:claim:2:idle:{int(NOW.timestamp())}",
        ),
    ],
)
def test_each_notice_has_one_key_per_claim(notice, key):
    assert notice_key(notice, 2, idle_since=NOW) == key


@pytest.mark.parametrize("notice", list(Notice))
def test_a_notice_travels_as_json_facts_and_back(notice):
    sent = TaskNotice(notice, 3, "Poster", when=NOW, by="Coco")
    assert TaskNotice.from_data(notice, sent.data()) == sent


@dataclass(frozen=True)
class R:
    status: TaskStatus = IN_REVIEW
    kind: TaskKind = TaskKind.TRANSLATION
    claimed_by: int | None = OTHER
    language: str | None = "pl"
    reviewer_id: int | None = None


TRANSLATOR = {"translator"}


@pytest.mark.parametrize(
    ("task", "me", "roles", "languages", "coordinator", "expected"),
    [
        (R(), ME, TRANSLATOR, ("pl",), False, Outcome.OK),
        (R(claimed_by=ME), ME, TRANSLATOR, ("pl",), False, Outcome.OWN_WORK),
        (R(claimed_by=ME), ME, TRANSLATOR, ("pl",), True, Outcome.OWN_WORK),
        (R(), ME, TRANSLATOR, ("de",), False, Outcome.WRONG_LANGUAGE),
        (R(), ME, TRANSLATOR, ("de",), True, Outcome.OK),
        (R(), None, set(), (), True, Outcome.OK),
        (R(), None, set(), (), False, Outcome.NOT_REGISTERED),
        (R(), ME, {"organiser"}, ("pl",), False, Outcome.NO_ROLE),
        (R(kind=TaskKind.VIDEO_EDITING), ME, {"video-editor"}, ("fr",), False, Outcome.OK),
        (R(reviewer_id=OTHER + 1), ME, TRANSLATOR, ("pl",), False, Outcome.REVIEW_TAKEN),
        (R(reviewer_id=ME), ME, TRANSLATOR, ("pl",), False, Outcome.OK),
        (R(reviewer_id=OTHER + 1), ME, TRANSLATOR, ("pl",), True, Outcome.OK),
        (R(status=CLAIMED), ME, TRANSLATOR, ("pl",), False, Outcome.NOT_IN_REVIEW),
        (R(status=OPEN, claimed_by=None), ME, TRANSLATOR, ("pl",), True, Outcome.NOT_IN_REVIEW),
        (R(status=DONE), ME, TRANSLATOR, ("pl",), False, Outcome.CLOSED),
    ],
)
def test_who_may_review(task, me, roles, languages, coordinator, expected):
    assert check_review(task, me, roles, languages, coordinator=coordinator) is expected


@pytest.mark.parametrize(
    ("kind", "review_kinds", "change"),
    [
        (TaskKind.TRANSLATION, DEFAULT_REVIEW_KINDS, Change.SUBMITTED),
        (TaskKind.VIDEO_EDITING, DEFAULT_REVIEW_KINDS, Change.SUBMITTED),
        (TaskKind.OTHER, DEFAULT_REVIEW_KINDS, Change.DONE),
        (TaskKind.TRANSLATION, (), Change.DONE),
    ],
)
def test_done_work_of_review_kinds_goes_to_review(kind, review_kinds, change):
    assert finishing(kind, review_kinds) is change


def test_work_in_review_changes_hands_only_by_a_verdict():
    waiting = R(claimed_by=ME)
    assert check_claim(waiting, OTHER, TRANSLATOR, 0, 3) is Outcome.IN_REVIEW
    assert check_unclaim(waiting, ME, override=True) is Outcome.IN_REVIEW
    assert check_finish(waiting, ME) is Outcome.IN_REVIEW
    assert check_assign(waiting, OTHER, 0, 3) is Outcome.IN_REVIEW
    assert check_cancel(waiting) is Outcome.OK
