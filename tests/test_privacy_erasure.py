"""Erasure cannot be raced: commands by (or about) a person being erased are refused, and a
half-done erasure is finished by a retry or by the next start. Both databases."""

import importlib
import pkgutil
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage
from bot.commands import Cog
from bot.context import Ctx
from bot.domain import UserRef
from storage.acting import ErasurePending, acting_for
from storage.db import ride
from storage.erasure import IDENTITY_COLUMNS, ErasureRepo
from tests.harness import Harness

ERASING_YOU = "Your data is being erased"


def names_of(h: Harness, external_id: str) -> list[str]:
    """Every ``table.column`` holding ``external_id``, and every pending erasure marker."""
    found: list[str] = []
    with h.app.db.engine.connect() as conn:
        for table, _, column in IDENTITY_COLUMNS:
            rows = conn.exec_driver_sql(
                f'SELECT 1 FROM "{table}" WHERE "{column}" = ?'
                if h.app.db.is_sqlite
                else f'SELECT 1 FROM "{table}" WHERE "{column}" = %s',
                (external_id,),
            ).all()
            if rows:
                found.append(f"{table}.{column}")
        if conn.exec_driver_sql("SELECT 1 FROM erasure_pending").first() is not None:
            found.append("erasure_pending")
    return found


def task_rows(h: Harness) -> list[tuple[Any, ...]]:
    with h.app.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT id, status, claimed_by FROM task ORDER BY id"))]  # fmt: skip


async def two_tasks_one_claimed(h: Harness) -> None:
    await h.ok("alice", "volunteer join translator")
    await h.ok("coco", "task post translation Leaflet one")
    await h.ok("coco", "task post translation Leaflet two")
    await h.ok("alice", "task claim 1")


class _ClaimsMidErasure(Cog):
    """Between the task queue's erasure and the volunteer record's, the person claims again.

    It stands for a Claim button or a ✋ arriving while ``privacy forget`` runs.
    """

    erase_order = 50

    def __init__(self, h: Harness, line: str) -> None:
        self.h = h
        self.line = line
        self.replies: list[str] = []

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        return {}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        if not self.replies:
            self.replies.append((await self.h.run(user.external_id, self.line)).body.plain())


async def test_a_claim_arriving_during_forget_is_refused_and_leaves_no_trace(harness: Harness):
    h = harness
    await two_tasks_one_claimed(h)
    meddler = _ClaimsMidErasure(h, "task claim 2")
    h.app.services.registry.add(meddler)
    assert "Done." in await h.ok("alice", "privacy forget --confirm")
    assert meddler.replies and ERASING_YOU in meddler.replies[0]
    assert task_rows(h) == [(1, "open", None), (2, "open", None)]
    assert names_of(h, "alice") == []


async def test_an_assignment_naming_someone_being_erased_is_refused(harness: Harness):
    h = harness
    await two_tasks_one_claimed(h)
    await ErasureRepo(h.app.db).begin(h.ctx("alice").user, h.clock.now())
    text = await h.err("coco", "task assign 2 alice")
    assert "That person's data is being erased" in text
    assert task_rows(h)[1] == (2, "open", None)


async def test_every_writing_command_of_someone_being_erased_is_refused(harness: Harness):
    h = harness
    await two_tasks_one_claimed(h)
    await ErasureRepo(h.app.db).begin(h.ctx("alice").user, h.clock.now())
    for line in ("task claim 2", "task next", "task unclaim 1", "task done 1",
                 "volunteer join networker", "volunteer leave translator"):  # fmt: skip
        assert ERASING_YOU in await h.err("alice", line), line
    assert task_rows(h) == [(1, "claimed", task_rows(h)[0][2]), (2, "open", None)]
    # Reading is not writing: she can still see what is kept until it is gone.
    assert "Roles: translator" in await h.ok("alice", "volunteer profile")
    # Others carry on.
    await h.ok("bob", "volunteer join translator")
    await h.ok("bob", "task claim 2")


async def test_a_half_done_erasure_is_finished_by_running_forget_again(harness: Harness):
    h = harness
    await two_tasks_one_claimed(h)
    alice = h.ctx("alice").user
    # What a process killed after the marker and the first step leaves behind.
    await ErasureRepo(h.app.db).begin(alice, h.clock.now())
    await h.app.services.tasks.erase(alice, h.clock.now())
    assert ERASING_YOU in await h.err("alice", "task claim 2")
    assert "Done." in await h.ok("alice", "privacy forget --confirm")
    assert names_of(h, "alice") == []
    # Afterwards she is someone new.
    await h.ok("alice", "volunteer join translator")
    await h.ok("alice", "task claim 2")


async def test_a_half_done_erasure_is_finished_when_a_process_starts(harness: Harness):
    h = harness
    await two_tasks_one_claimed(h)
    alice = h.ctx("alice").user
    await ErasureRepo(h.app.db).begin(alice, h.clock.now())
    assert await h.app.finish_erasures() == 1
    assert names_of(h, "alice") == []
    assert task_rows(h) == [(1, "open", None), (2, "open", None)]


async def test_a_finished_erasure_after_a_kill_says_done_on_retry(harness: Harness):
    h = harness
    await h.ok("alice", "volunteer join translator")
    alice = h.ctx("alice").user
    await ErasureRepo(h.app.db).begin(alice, h.clock.now())
    await h.app.services.volunteers.erase(alice)  # every step ran; only the marker is left
    assert "finished erasing" in await h.ok("alice", "privacy forget --confirm")
    assert names_of(h, "alice") == []


async def test_a_volunteer_record_holding_a_claim_is_not_deleted(harness: Harness):
    """Deleting it would leave the task claimed by nobody; the erasure releases it first."""
    h = harness
    await two_tasks_one_claimed(h)
    assert not await h.app.services.volunteers.erase(h.ctx("alice").user)
    assert task_rows(h)[0][1] == "claimed" and task_rows(h)[0][2] is not None


async def test_a_direct_chat_is_not_kept_for_someone_being_erased(harness: Harness):
    h = harness
    await h.ok("alice", "volunteer join translator")
    alice = h.ctx("alice").user
    await ErasureRepo(h.app.db).begin(alice, h.clock.now())
    chats = h.app.services.direct_chats
    with pytest.raises(ErasurePending):
        await chats.remember(alice, "!dm:example.org", h.clock.now())
    assert await chats.room_of(alice) is None


async def test_a_refused_write_does_not_take_its_incoming_event_on(harness: Harness):
    """The check runs before the rider, so the event stays free to be answered."""
    h = harness
    await h.ok("alice", "volunteer join translator")
    alice = h.ctx("alice").user
    await ErasureRepo(h.app.db).begin(alice, h.clock.now())
    ran: list[bool] = []
    with (
        acting_for([alice]),
        ride(lambda conn: ran.append(True)) as rider,
        pytest.raises(ErasurePending),
    ):
        await h.app.services.volunteers.touch(alice, h.clock.now())
    assert not ran and not rider.done


def test_the_final_sweep_knows_every_column_that_stores_a_persons_platform():
    """A table added later with a person's platform and id must join IDENTITY_COLUMNS."""
    for info in pkgutil.iter_modules(storage.__path__):
        importlib.import_module(f"storage.{info.name}")
    listed = {(table, platform) for table, platform, _ in IDENTITY_COLUMNS}
    not_people = {("outbox", "platform"), ("erasure_pending", "platform")}  # a target; the marker
    found = {
        (table.name, column.name)
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("platform")
    }
    assert found - not_people == listed
