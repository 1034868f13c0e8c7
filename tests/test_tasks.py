"""The task queue through the core: lifecycle, permissions, matching, bad input, privacy."""

import re

import pytest

from bot.context import Button
from bot.domain import UserRef
from tests.harness import Harness


def task_id(text: str) -> int:
    match = re.search(r"#(\d+)", text)
    assert match, text
    return int(match.group(1))


async def post(h: Harness, line: str) -> int:
    return task_id(await h.ok("coco", f"task post {line}"))


async def test_whole_lifecycle_post_claim_show_done(harness: Harness):
    h = harness
    reply = await h.run(
        "coco",
        "task post translation Leaflet for Warsaw --language pl --source-language en "
        "--priority high --due 'in 3d' --description 'Two pages, A5.'",
    )
    assert not reply.is_error and not reply.private
    tid = task_id(reply.body.plain())
    assert list(reply.buttons) == [Button("Claim", f"task claim {tid}")]
    assert reply.subject == ("task", tid)
    assert "translation en→pl" in reply.body.plain() and "high" in reply.body.plain()

    await h.ok("alice", "volunteer join translator --languages pl,en")
    assert f"You have task #{tid}" in await h.ok("alice", f"task claim {tid}")
    assert "Leaflet for Warsaw" in await h.ok("alice", "task mine")
    assert f"#{tid} Leaflet for Warsaw" in await h.ok("alice", "volunteer profile")

    shown = await h.ok("bob", f"task show {tid}")
    assert "Status: claimed" in shown and "Held by: Alice" in shown and "Two pages, A5." in shown

    done = await h.ok("alice", f"task done {tid} sent to the printer, thanks Eva")
    assert "is handed in for review" in done  # translations are reviewed by default
    shown = await h.ok("bob", f"task show {tid}")
    assert "Status: in review" in shown and "Submitted by: Alice" in shown
    history = shown.split("History", 1)[1]
    assert [line.split(" — ", 1)[1] for line in history.strip().splitlines()] == [
        "posted by Coco",
        "claimed by Alice",
        "handed in for review by Alice: “sent to the printer, thanks Eva”",
    ]
    assert "You hold no tasks" in await h.ok("alice", "task mine")
    assert "Open claims: none" in await h.ok("alice", "volunteer profile")


async def test_profile_lists_only_the_claims_held_most_urgent_first(harness: Harness):
    h = harness
    low = await post(h, "other Low stand --priority low")
    urgent = await post(h, "other Urgent stand --priority urgent")
    given_back = await post(h, "other Given back")
    bobs = await post(h, "other Bob's stand")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("bob", "volunteer join organiser")
    for tid in (low, urgent, given_back):
        await h.ok("alice", f"task claim {tid}")
    await h.ok("alice", f"task unclaim {given_back}")
    await h.ok("bob", f"task claim {bobs}")
    shown = await h.ok("bob", "volunteer profile alice")
    assert shown.startswith("Alice\n") and "Roles: organiser" in shown
    assert f"Open claims: #{urgent} Urgent stand, #{low} Low stand" in shown
    assert f"#{bobs} Bob's stand" in await h.ok("alice", "volunteer profile bob")


async def test_unclaim_returns_the_task_and_history_says_so(harness: Harness):
    h = harness
    tid = await post(h, "other Set up the stand")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("alice", f"task claim {tid}")
    assert "back in the queue" in await h.ok("alice", f"task unclaim {tid}")
    assert f"#{tid} Set up the stand" in await h.ok("bob", "task list")
    assert "given back to the queue by Alice" in await h.ok("bob", f"task show {tid}")


async def test_show_gives_the_latest_history_and_counts_the_earlier_events(harness: Harness):
    h = harness
    tid = await post(h, "other Set up the stand")
    await h.ok("alice", "volunteer join organiser")
    for _ in range(8):  # posted + 16 events: 17 in all
        await h.ok("alice", f"task claim {tid}")
        await h.ok("alice", f"task unclaim {tid}")
    shown = await h.ok("bob", f"task show {tid}")
    history = shown.split("History", 1)[1].strip().splitlines()
    assert history[0] == "…2 earlier events"
    # Not shown: "posted" and the first claim; shown, oldest first, the 15 after them.
    assert len(history) == 16
    assert [line.split(" — ", 1)[1] for line in history[1:3]] == [
        "given back to the queue by Alice",
        "claimed by Alice",
    ]
    assert history[-1].endswith("given back to the queue by Alice")


async def test_second_claimer_is_told_who_has_it(harness: Harness):
    h = harness
    tid = await post(h, "translation Leaflet --language pl")
    await h.ok("alice", "volunteer join translator --languages pl")
    await h.ok("bob", "volunteer join translator --languages pl")
    await h.ok("alice", "task next")
    text = await h.err("bob", f"task claim {tid}")
    assert f"task #{tid} is already claimed by Alice" in text


async def test_claiming_your_own_task_again_answers_you_already_have_it(harness: Harness):
    h = harness
    tid = await post(h, "other Flyers")
    await h.ok("alice", "volunteer join networker")
    await h.ok("alice", f"task claim {tid}")
    reply = await h.run("alice", f"task claim {tid}")
    assert reply.private and not reply.is_error
    assert "You already have task" in reply.body.plain()
    assert "You hold 1 of 3" in await h.ok("alice", "task mine")


@pytest.mark.parametrize(
    ("command", "coordinator_only"),
    [
        ("task post other Something", True),
        ("task assign {id} alice", True),
        ("task cancel {id}", True),
        ("task list", False),
        ("task show {id}", False),
        ("task claim {id}", False),
        ("task next", False),
        ("task mine", False),
    ],
)
async def test_permission_matrix(harness: Harness, command: str, coordinator_only: bool):
    h = harness
    tid = await post(h, "other Permission probe")
    await h.ok("alice", "volunteer join organiser")
    line = command.format(id=tid)
    reply = await h.run("alice", line)
    refused = reply.is_error and "is for coordinators" in reply.body.plain()
    assert refused == coordinator_only, reply.body.plain()


async def test_only_the_claimer_may_finish_or_unclaim(harness: Harness):
    h = harness
    tid = await post(h, "other Phone bank")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("bob", "volunteer join organiser")
    await h.ok("alice", f"task claim {tid}")
    assert "held by Alice, not by you" in await h.err("bob", f"task done {tid}")
    assert "held by Alice, not by you" in await h.err("bob", f"task unclaim {tid}")
    assert "held by Alice, not by you" in await h.err("coco", f"task done {tid}")
    # Coordinators may put a claimed task back into the queue (an override).
    await h.ok("coco", f"task unclaim {tid}")
    assert "given back to the queue by Coco" in await h.ok("bob", f"task show {tid}")


async def test_coordinator_assigns_and_the_assignee_hears_of_it(harness: Harness):
    h = harness
    tid = await post(h, "video-editing Cut the interview")
    await h.ok("alice", "volunteer join video-editor")
    assert "now Alice's" in await h.ok("coco", f"task assign {tid} alice")
    posts = await h.deliver()
    assert [(p.recipient_id, p.target) for p in posts] == [("alice", "test:room")]
    assert "gave you task" in posts[0].body.plain()
    assert "assigned to Alice by Coco" in await h.ok("alice", f"task show {tid}")
    assert "not a registered volunteer" in await h.err("coco", f"task assign {tid} nobody")
    assert "already holds task" in await h.err("coco", f"task assign {tid} alice")


async def test_cancel_tells_the_claimer_and_closes_the_task(harness: Harness):
    h = harness
    tid = await post(h, "other Leaflets")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("alice", f"task claim {tid}")
    await h.ok("coco", f"task cancel {tid}")
    posts = await h.deliver()
    assert len(posts) == 1 and posts[0].recipient_id == "alice"
    assert "cancelled" in posts[0].body.plain()
    assert f"Task #{tid} is cancelled" in await h.err("alice", f"task done {tid}")
    assert f"Task #{tid} is cancelled" in await h.err("coco", f"task cancel {tid}")


# --- matching rules for `task next` ---------------------------------------------------


async def test_next_takes_only_kinds_your_roles_allow(harness: Harness):
    h = harness
    await post(h, "programming Fix the bot --priority urgent")
    other = await post(h, "translation Leaflet --language pl")
    await h.ok("alice", "volunteer join translator --languages pl")
    assert f"task **#{other}**" in (await h.run("alice", "task next")).body.markdown()


async def test_next_needs_the_target_language(harness: Harness):
    h = harness
    await post(h, "translation Into French --language fr --priority urgent")
    polish = await post(h, "translation Into Polish --language pl")
    await h.ok("alice", "volunteer join translator --languages pl")
    assert task_id(await h.ok("alice", "task next")) == polish
    text = await h.err("alice", "task next")
    assert "none in your languages (pl)" in text


async def test_next_needs_the_source_language_when_the_task_has_one(harness: Harness):
    h = harness
    await post(h, "translation From German --language pl --source-language de --priority high")
    english = await post(h, "translation From English --language pl --source-language en")
    await h.ok("alice", "volunteer join translator --languages pl,en")
    assert task_id(await h.ok("alice", "task next")) == english


async def test_next_kind_filter_and_other_fits_everyone(harness: Harness):
    h = harness
    await post(h, "translation Leaflet --language pl --priority urgent")
    stand = await post(h, "other Stand at the fair")
    await h.ok("alice", "volunteer join translator --languages pl")
    assert task_id(await h.ok("alice", "task next --kind other")) == stand
    text = await h.err("alice", "task next --kind programming")
    assert "programming tasks are for a programmer" in text


async def test_next_language_filter_must_be_one_of_yours(harness: Harness):
    h = harness
    await post(h, "translation Leaflet --language pl")
    await h.ok("alice", "volunteer join translator --languages pl")
    assert "`fr` is not one of your languages (pl)" in await h.err(
        "alice", "task next --language fr"
    )
    assert "You have task" in await h.ok("alice", "task next --language pl")


async def test_next_follows_the_list_order(harness: Harness):
    h = harness
    low = await post(h, "other Low --priority low")
    later = await post(h, "other Due later --due 'in 5d'")
    undated = await post(h, "other Undated")
    sooner = await post(h, "other Due sooner --due 'in 2d'")
    urgent = await post(h, "other Urgent --priority urgent")
    listed = [task_id(line) for line in (await h.ok("x", "task list")).splitlines()[1:]]
    assert listed == [urgent, sooner, later, undated, low]
    await h.ok("alice", "volunteer join organiser")
    got = []
    for _ in range(5):
        got.append(task_id(await h.ok("alice", "task next")))
        await h.ok("alice", f"task done {got[-1]}")
    assert got == listed


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ([], "not registered as a volunteer"),
        (["volunteer join translator --languages pl"], "queue is empty"),
        (
            ["volunteer join translator --languages pl", "post:programming Fix it"],
            "none of a kind your roles take (your roles: translator)",
        ),
        (
            ["volunteer join translator --languages pl", "post:translation X --language fr"],
            "none in your languages (pl)",
        ),
    ],
)
async def test_next_with_nothing_says_why(harness: Harness, setup: list[str], expected: str):
    for step in setup:
        if step.startswith("post:"):
            await post(harness, step[5:])
        else:
            await harness.ok("alice", step)
    assert expected in await harness.err("alice", "task next")


async def test_open_claim_limit_is_enforced(tmp_path):
    from tests.harness import make_app

    app = make_app(tmp_path, tasks={"max_open_claims": 2})
    h = Harness(app)
    try:
        for n in range(3):
            await post(h, f"other Job {n}")
        await h.ok("alice", "volunteer join organiser")
        await h.ok("alice", "task next")
        await h.ok("alice", "task claim 2")
        assert "already hold 2 tasks" in await h.err("alice", "task claim 3")
        assert "already hold 2 tasks" in await h.err("alice", "task next")
        assert "Alice already holds 2 tasks" in await h.err("coco", "task assign 3 alice")
    finally:
        await app.stop()


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "line", "expected"),
    [
        ("alice", "task claim 999", "There is no task `999`"),
        ("alice", "task show 999", "There is no task `999`"),
        ("alice", "task claim abc", "`abc` is not a whole number"),
        ("alice", "task claim 0", "too small"),
        ("alice", "task done 999", "There is no task `999`"),
        ("coco", "task cancel 999", "There is no task `999`"),
        ("coco", "task post translation Leaflet --due 2020-01-01", "already past"),
        ("coco", "task post other boom --due 9999-12-31T23:30:00+00:00", "too far ahead"),
        ("alice", "task claim 1234567890123456789", "far too large"),
        ("coco", "task post translation Leaflet --due someday", "`someday` is not a date"),
        ("coco", "task post wizardry Spells", "`wizardry` is not a valid kind"),
        ("coco", "task post other Flyers --priority asap", "`asap` is not a valid priority"),
        ("coco", "task post other Flyers --language xx", "`xx` is not an official EU language"),
        ("coco", "task post translation X --language pl --source-language pl", "both `pl`"),
        ("coco", "task post other " + "x" * 201, "201 characters long; the limit is 200"),
        ("coco", "task post other X --description " + "d" * 2001, "the limit is 2,000"),
        ("coco", "task post other", "needs <title>"),
        ("alice", "task list --status lost", "`lost` is not a valid status"),
        ("alice", "task list --page 0", "too small"),
    ],
)
async def test_bad_input_gets_a_friendly_answer(harness: Harness, who, line, expected):
    await harness.ok("alice", "volunteer join organiser")
    assert expected in await harness.err(who, line)


async def test_claiming_a_done_or_cancelled_task_is_refused(harness: Harness):
    h = harness
    done = await post(h, "other Done one")
    cancelled = await post(h, "other Cancelled one")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("alice", f"task claim {done}")
    await h.ok("alice", f"task done {done}")
    await h.ok("coco", f"task cancel {cancelled}")
    await h.ok("bob", "volunteer join organiser")
    assert f"Task #{done} is done" in await h.err("bob", f"task claim {done}")
    assert f"Task #{cancelled} is cancelled" in await h.err("bob", f"task claim {cancelled}")


async def test_claim_without_the_role_says_which_role(harness: Harness):
    h = harness
    tid = await post(h, "investigation Camera contracts in Lyon")
    await h.ok("alice", "volunteer join translator --languages fr")
    text = await h.err("alice", f"task claim {tid}")
    assert "for a investigator" in text or "for an investigator" in text
    assert "`volunteer join investigator`" in text


async def test_finishing_an_open_task_says_claim_it_first(harness: Harness):
    tid = await post(harness, "other Open one")
    await harness.ok("alice", "volunteer join organiser")
    assert "Claim it with" in await harness.err("alice", f"task done {tid}")
    assert "Claim it with" in await harness.err("alice", f"task unclaim {tid}")


async def test_user_text_can_neither_ping_nor_inject_markup(harness: Harness):
    h = harness
    reply = await h.run("coco", "task post other **Hi** @everyone <b>x</b> [link](http://e.vil)")
    markdown = reply.body.markdown()
    assert "@everyone" not in markdown and "@\u200beveryone" in markdown
    assert "\\*\\*Hi\\*\\*" in markdown and "\\[link\\]\\(http://e.vil\\)" in markdown
    assert "<b>" not in reply.body.html() and "&lt;b&gt;" in reply.body.html()
    listed = (await h.run("x", "task list")).body
    assert "@\u200beveryone" in listed.markdown() and "&lt;b&gt;" in listed.html()


async def test_list_filters_pages_and_statuses(harness: Harness):
    h = harness
    for n in range(12):
        await post(h, f"other Job {n:02}")
    pl = await post(h, "translation Polish leaflet --language pl")
    first = await h.ok("x", "task list")
    assert len(first.splitlines()) == 1 + 10 + 1
    # The hint to the next page is spelt as each platform types it.
    on_console = (await h.run("x", "task list", target="console:room")).body.plain()
    assert on_console.splitlines()[-1] == "More: `task list --page 2`"
    on_matrix = (await h.run("x", "task list --kind other", target="matrix:!room")).body.plain()
    assert on_matrix.splitlines()[-1] == "More: `!task list --kind other --page 2`"
    second = await h.ok("x", "task list --page 2")
    assert len(second.splitlines()) == 1 + 3
    assert "There is no page 3" in await h.ok("x", "task list --page 3")
    assert f"#{pl} " in await h.ok("x", "task list --language pl")
    assert "Job" not in await h.ok("x", "task list --kind translation")
    await h.ok("alice", "volunteer join translator --languages pl")
    await h.ok("alice", f"task claim {pl}")
    assert f"#{pl} " not in await h.ok("x", "task list")
    assert "held by Alice" in await h.ok("x", "task list --status claimed")
    assert "No done tasks." in await h.ok("x", "task list --status done")
    assert "No tasks (done, Polish (pl))." in await h.ok(
        "x", "task list --status done --language pl"
    )
    assert f"#{pl} " in await h.ok("x", "task list --status all")


# --- personal data ------------------------------------------------------------------------


async def test_export_lists_claims_created_tasks_and_history(harness: Harness):
    h = harness
    tid = await post(h, "other Stand")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("alice", f"task claim {tid}")
    await h.ok("alice", f"task done {tid} went well")
    cog = next(c for c in h.app.cogs if c.group == "task")
    data = (await cog.export_data(UserRef("test", "alice")))["tasks"]
    assert [c["task"] for c in data["claims"]] == [tid]
    assert [e["action"] for e in data["history"]] == ["claimed", "done"]
    assert data["history"][1]["note"] == "went well"
    coco = (await cog.export_data(UserRef("test", "coco")))["tasks"]
    assert [c["task"] for c in coco["created"]] == [tid]
    assert [e["action"] for e in coco["history"]] == ["posted"]


async def test_erase_releases_claims_and_leaves_a_former_volunteer(harness: Harness):
    h = harness
    held = await post(h, "other Held")
    finished = await post(h, "other Finished")
    await h.ok("alice", "volunteer join organiser")
    await h.ok("alice", f"task claim {finished}")
    await h.ok("alice", f"task done {finished} personal note")
    await h.ok("alice", f"task claim {held}")
    for cog in sorted(h.app.cogs, key=lambda c: c.erase_order):
        await cog.erase_data(UserRef("test", "alice"), h.ctx("alice"))
    shown = await h.ok("bob", f"task show {held}")
    assert "Status: open" in shown and "Alice" not in shown
    assert "given back to the queue by a former volunteer" in shown
    done = await h.ok("bob", f"task show {finished}")
    assert "Alice" not in done and "personal note" not in done
    assert "done by a former volunteer" in done
    # The coordinator who posted is erased the same way, even without a volunteer record.
    cog = next(c for c in h.app.cogs if c.group == "task")
    await cog.erase_data(UserRef("test", "coco"), h.ctx("coco"))
    assert "posted by a former volunteer" in await h.ok("bob", f"task show {held}")
    assert (await cog.export_data(UserRef("test", "coco")))["tasks"] == {
        "claims": [],
        "reviews": [],
        "created": [],
        "jobs": [],
        "history": [],
    }


async def test_tasks_erase_before_volunteer_records():
    from cogs.tasks import Tasks
    from cogs.volunteers import Volunteers

    assert Tasks.erase_order < Volunteers.erase_order


@pytest.mark.parametrize(
    ("target", "claim", "join"),
    [
        ("console:room", "`task claim {id}`", "`volunteer join translator --languages pl`"),
        ("matrix:!room", "`!task claim {id}`", "`!volunteer join translator --languages pl`"),
        ("discord:1", "`/task claim id:{id}`", "`/volunteer join role:translator languages:pl`"),
    ],
)
async def test_hints_are_spelt_in_the_readers_platform_syntax(harness: Harness, target, claim,
                                                                join):  # fmt: skip
    h = harness
    posted = (await h.run("coco", "task post other Stand", target=target)).body.plain()
    tid = task_id(posted)
    assert claim.format(id=tid) in posted
    refused = await h.run("zed", f"task claim {tid}", target=target)
    assert refused.is_error and join in refused.body.plain()
