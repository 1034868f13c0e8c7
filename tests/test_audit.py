"""Coordinator-only commands: refused to others, scoped to their place, and all audited."""

import pytest

from bot.commands import CommandSpec
from bot.domain import UserRef
from tests.harness import Harness
from tests.rights_matrix import REFUSAL, coordinator_specs, sample_line

ROOM_A = "test:room-a"
ROOM_B = "test:room-b"


def specs(h: Harness) -> list[CommandSpec]:
    found = coordinator_specs(h.app.services.registry.specs)
    assert {"task post", "signatures set", "reminder delete", "audit"} <= {
        s.qualified_name for s in found
    }, "the matrix is generated from the real cogs"
    return found


async def trail(h: Harness) -> list[tuple[str, str, str]]:
    return [
        (e.actor_name, e.command, e.outcome)
        for e in reversed(await h.app.services.audit.recent(1000))
    ]


async def test_every_coordinator_command_is_refused_to_a_volunteer_and_audited(harness):
    await harness.ok("vera", "volunteer join translator")
    for spec in specs(harness):
        reply = await harness.run("vera", sample_line(spec, "vera"))
        assert reply.is_error and REFUSAL in reply.body.plain(), spec.qualified_name
    lines = await trail(harness)
    assert lines == [("Vera", s.qualified_name, "refused") for s in specs(harness)]


async def test_every_coordinator_command_runs_for_a_coordinator_and_is_audited(harness):
    for spec in specs(harness):
        reply = await harness.run("coco", sample_line(spec, "vera"))
        assert REFUSAL not in reply.body.plain(), spec.qualified_name
    lines = await trail(harness)
    assert [(who, command) for who, command, _ in lines] == [
        ("Coco", s.qualified_name) for s in specs(harness)
    ]
    assert all(outcome in ("done", "failed") for *_, outcome in lines), lines


async def test_the_trail_says_who_did_what_where_and_coordinators_can_read_it(harness):
    first = await harness.run("coco", "audit")
    assert first.body.plain() == "No coordinator has run a command yet."
    await harness.ok("coco", "task post other Fix the stand --priority high")
    await harness.run("coco", "task cancel 99")
    await harness.run("vera", "signatures set 1000000")
    reply = await harness.run("coco", "audit --limit 4")
    assert reply.private and not reply.is_error
    text = reply.body.plain()
    assert "The last 4 coordinator actions" in text
    newest, middle, oldest, _first = text.splitlines()[1:]
    # In the campaign's time zone (Brussels) and the reader's language.
    assert newest.startswith("• Mar 2, 2026, 10:00\u202fAM · ")
    assert "Vera (test) · `signatures set count=1000000` · test:room — refused" in newest
    assert "Coco (test) · `task cancel id=99` · test:room — failed" in middle
    assert '`task post kind=other title="Fix the stand" priority=high`' in oldest
    assert REFUSAL in (await harness.err("vera", "audit"))
    assert (await trail(harness))[-1] == ("Vera", "audit", "refused")


async def test_the_trail_is_exported_and_erasure_keeps_the_deed_but_not_the_doer(harness):
    await harness.ok("coco", "volunteer join organiser")
    await harness.ok("vera", "volunteer join organiser")
    await harness.ok("coco", "task post other Secret venue")
    await harness.ok("coco", "task assign 1 vera")
    audit = next(c for c in harness.app.cogs if c.group is None and hasattr(c, "repo"))
    exported = await audit.export_data(harness.ctx("vera").user)
    assert [line["command"] for line in exported["audit"]] == ["task assign"]
    assert exported["audit"][0]["you"] == "it was about you"
    await audit.erase_data(harness.ctx("vera").user)
    await audit.erase_data(harness.ctx("coco").user)
    entries = await harness.app.services.audit.recent(10)
    assert {e.actor_name for e in entries} == {"a former volunteer"}
    assert all(e.actor is None and e.subject is None for e in entries)
    assert [e.detail for e in entries if e.command == "task assign"] == ["(erased)"]
    assert [e.command for e in entries] == ["task assign", "task post"], "the deeds stay"


@pytest.mark.parametrize("verb", ["list", "delete 1"])
async def test_a_reminder_is_managed_only_from_its_own_room_unless_asked_anywhere(harness, verb):
    made = await harness.run("coco", "reminder add Phone bank tonight --in 2h", target=ROOM_A)
    assert not made.is_error
    elsewhere = await harness.run("coco", f"reminder {verb}", target=ROOM_B)
    if verb == "list":
        assert "No reminders post here" in elsewhere.body.plain()
    else:
        assert elsewhere.is_error and "posts in another room (test:room-a)" in (
            elsewhere.body.plain()
        )
    assert "#1" in (await harness.run("coco", "reminder list", target=ROOM_A)).body.plain()
    anywhere = await harness.run("coco", f"reminder {verb} --anywhere", target=ROOM_B)
    assert not anywhere.is_error
    if verb == "list":
        assert "#1" in anywhere.body.plain() and "in test:room-a" in anywhere.body.plain()
    else:
        assert "Deleted reminder #1" in anywhere.body.plain()
        listed = await harness.run("coco", "reminder list", target=ROOM_A)
        assert "No reminders post here" in listed.body.plain()


async def test_a_refused_command_naming_someone_with_a_broken_name_is_still_audited(harness):
    """Discord hands over people already typed; a refused command's are not cleaned by parsing."""
    spec = harness.app.services.registry.get("task", "assign")
    assert spec is not None
    hostile = UserRef("discord", "1001", "Bad\ud800\x07 name")
    reply = await harness.app.core.invoke(harness.ctx("vera"), spec, {"id": 1, "user": hostile})
    assert reply.is_error and REFUSAL in reply.body.plain()
    [entry] = await harness.app.services.audit.recent(10)
    assert (entry.command, entry.outcome) == ("task assign", "refused")
    assert "\ud800" not in entry.detail and "\x07" not in entry.detail
    assert entry.subject is not None and entry.subject.external_id == "1001"
