"""Public, quiet and confidential replies: what each command answers with, and how it is built."""

from bot.context import Reply
from tests.harness import Harness


def test_reply_text_takes_private_as_a_mark_not_as_a_template_value():
    reply = Reply.text("You hold {n} tasks.", n=0, private=True)
    assert reply.private and not reply.confidential
    assert reply.body.plain() == "You hold 0 tasks."


def test_a_confidential_reply_is_private_too():
    reply = Reply.text("Only for you.", confidential=True)
    assert reply.confidential and reply.private


async def test_task_mine_is_quiet_whether_or_not_it_has_tasks(harness: Harness):
    h = harness
    await h.ok("alice", "volunteer join networker")
    empty = await h.run("alice", "task mine")
    assert empty.private and not empty.confidential and not empty.is_error
    assert "You hold no tasks" in empty.body.plain()
    await h.ok("coco", "task post other Flyers")
    await h.ok("alice", "task claim 1")
    held = await h.run("alice", "task mine")
    assert held.private and not held.confidential
    assert "You hold 1 of 3" in held.body.plain()


async def test_the_data_export_is_confidential_and_errors_are_only_quiet(harness: Harness):
    h = harness
    await h.ok("alice", "volunteer join networker")
    export = await h.run("alice", "privacy mydata")
    assert export.confidential and export.attachments
    error = await h.run("alice", "task claim 99")
    assert error.is_error and error.private and not error.confidential


async def test_the_audit_trail_is_confidential_because_it_names_people(harness: Harness):
    h = harness
    await h.ok("coco", "task post other Flyers")
    trail = await h.run("coco", "audit")
    assert trail.confidential and "task post" in trail.body.plain()
