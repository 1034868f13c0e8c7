"""Review: a second speaker approves work or sends it back; nobody reviews their own."""

import asyncio
import re

import pytest

from bot.domain import UserRef
from tests.harness import Harness


def number(text: str) -> int:
    found = re.search(r"#(\d+)", text)
    assert found, text
    return int(found.group(1))


async def handed_in(h: Harness, line: str = "translation Leaflet --language pl") -> int:
    """A task posted, claimed by Ana (a Polish translator) and handed in with a link."""
    tid = number(await h.ok("coco", f"task post {line}"))
    await h.ok("ana", "volunteer join translator --languages pl")
    await h.ok("ana", "volunteer join video-editor --languages pl")
    await h.ok("ana", f"task claim {tid}")
    done = await h.ok("ana", f"task done {tid} https://example.org/pl.odt")
    assert "handed in for review" in done
    return tid


async def test_a_second_speaker_approves_and_the_task_is_done(harness: Harness):
    h = harness
    tid = await handed_in(h)
    await h.ok("piotr", "volunteer join translator --languages pl,en")
    assert "approved and done" in await h.ok("piotr", f"task review {tid} approve")
    shown = await h.ok("bob", f"task show {tid}")
    assert "Status: done" in shown and "Result: https://example.org/pl.odt" in shown
    history = [line.split(" — ", 1)[1] for line in shown.split("History", 1)[1].split("\n")[1:]]
    assert history[-2:] == ["handed in for review by Ana: “https://example.org/pl.odt”",
                            "approved by Piotr (work of Ana)"]  # fmt: skip
    delivered = await h.deliver()
    assert any("Piotr approved task" in d.body.plain() and d.recipient_id == "ana"
               for d in delivered)  # fmt: skip


async def test_changes_send_the_work_back_to_its_translator_with_the_note(harness: Harness):
    h = harness
    tid = await handed_in(h)
    await h.ok("piotr", "volunteer join translator --languages pl")
    answer = await h.ok("piotr", f"task review {tid} changes the second page is missing")
    assert "goes back to Ana" in answer
    shown = await h.ok("bob", f"task show {tid}")
    assert "Status: claimed" in shown and "Held by: Ana" in shown
    assert "Changes asked by Piotr: the second page is missing" in shown
    assert "changes asked by Piotr (back to Ana): “the second page is missing”" in shown
    [told] = [d for d in await h.deliver() if d.recipient_id == "ana"]
    assert "Piotr asked for changes to task" in told.body.plain()
    assert "the second page is missing" in told.body.plain()
    # Ana fixes it and hands it in again; this time it passes.
    await h.ok("ana", f"task done {tid} https://example.org/pl-v2.odt")
    await h.ok("piotr", f"task review {tid} approve")
    assert "Result: https://example.org/pl-v2.odt" in await h.ok("bob", f"task show {tid}")


async def test_refusals_own_work_wrong_language_wrong_role_and_not_in_review(harness: Harness):
    h = harness
    open_one = number(await h.ok("coco", "task post translation Open one --language pl"))
    tid = await handed_in(h)
    assert f"Task #{tid} is your own work; another translator" in await h.err(
        "ana", f"task review {tid} approve"
    )
    await h.ok("hans", "volunteer join translator --languages de")
    assert "translation into Polish (pl), which is not among your languages (de)" in await h.err(
        "hans", f"task review {tid} approve"
    )
    await h.ok("olga", "volunteer join organiser --languages pl")
    assert "its reviewer must be a translator" in await h.err("olga", f"task review {tid} approve")
    await h.ok("piotr", "volunteer join translator --languages pl")
    assert f"Task #{open_one} is not in review: it is open" in await h.err(
        "piotr", f"task review {open_one} approve"
    )
    assert "Say what needs changing" in await h.err("piotr", f"task review {tid} changes")
    assert "not registered" in await h.err("nobody", f"task review {tid} approve")
    assert "There is no task `99`" in await h.err("piotr", "task review 99 approve")
    await h.ok("piotr", f"task review {tid} approve")
    assert f"Task #{tid} is done" in await h.err("piotr", f"task review {tid} approve")


async def test_a_coordinator_may_approve_anything_but_their_own_work(harness: Harness):
    h = harness
    tid = await handed_in(h)
    assert "approved and done" in await h.ok("coco", f"task review {tid} approve")


async def test_video_editing_is_reviewed_by_a_video_editor_in_any_language(harness: Harness):
    h = harness
    tid = await handed_in(h, "video-editing Subtitles --language pl")
    await h.ok("vera", "volunteer join video-editor --languages fr")
    assert "approved and done" in await h.ok("vera", f"task review {tid} approve")


async def test_next_review_hands_out_review_work_not_your_own(harness: Harness):
    h = harness
    tid = await handed_in(h)
    assert "Nothing waits for a review" in await h.err("ana", "task next --review")
    await h.ok("hans", "volunteer join translator --languages de")
    assert "Nothing waits for a review" in await h.err("hans", "task next --review")
    await h.ok("piotr", "volunteer join translator --languages pl")
    await h.ok("pawel", "volunteer join translator --languages pl")
    given = await h.ok("piotr", "task next --review")
    assert f"You are reviewing task #{tid}" in given and "by Ana" in given
    assert "Result: https://example.org/pl.odt" in given
    # Taken: nobody else gets it, and another reviewer's verdict is refused.
    assert "Nothing waits for a review" in await h.err("pawel", "task next --review")
    assert f"Piotr is already reviewing task #{tid}" in await h.err(
        "pawel", f"task review {tid} approve"
    )
    assert "Review taken by: Piotr" in await h.ok("bob", f"task show {tid}")
    await h.ok("piotr", f"task review {tid} changes add the logo")
    # Handed in again, the review is free for anyone once more.
    await h.ok("ana", f"task done {tid} https://example.org/pl-v2.odt")
    assert f"You are reviewing task #{tid}" in await h.ok("pawel", "task next --review")


@pytest.mark.parametrize("kinds", [[], ["video-editing"]])
async def test_kinds_not_in_review_kinds_are_done_at_once(tmp_path, kinds):
    from tests.harness import make_app

    app = make_app(tmp_path, tasks={"review_kinds": kinds})
    h = Harness(app)
    try:
        await h.ok("coco", "task post translation Leaflet --language pl")
        await h.ok("ana", "volunteer join translator --languages pl")
        await h.ok("ana", "task claim 1")
        assert "is done" in await h.ok("ana", "task done 1 https://example.org/pl.odt")
        assert "Status: done" in await h.ok("bob", "task show 1")
    finally:
        await app.stop()


async def test_work_in_review_cannot_be_claimed_given_back_assigned_or_finished_again(
    harness: Harness,
):
    h = harness
    tid = await handed_in(h)
    await h.ok("piotr", "volunteer join translator --languages pl")
    waits = f"Task #{tid} is handed in and waits for review"
    for who, line in [("piotr", f"task claim {tid}"), ("ana", f"task unclaim {tid}"),
                      ("coco", f"task unclaim {tid}"), ("coco", f"task assign {tid} piotr"),
                      ("ana", f"task done {tid}"), ("ana", f"task extend {tid}")]:  # fmt: skip
        assert waits in await h.err(who, line), line
    listed = await h.ok("bob", "task list --status in-review")
    assert f"#{tid} Leaflet" in listed and "(in review)" in listed
    assert "Status: in review" in await h.ok("bob", f"task show {tid}")


async def test_review_data_is_exported_and_erased_with_the_reviewer(harness: Harness):
    h = harness
    tid = await handed_in(h)
    await h.ok("piotr", "volunteer join translator --languages pl")
    await h.ok("piotr", f"task review {tid} changes zqx private remark")
    cog = next(c for c in h.app.cogs if c.group == "task")
    piotr = UserRef("test", "piotr")
    data = (await cog.export_data(piotr))["tasks"]
    assert data["reviews"] == [{"task": tid, "title": "Leaflet", "status": "claimed",
                                "review_note": "zqx private remark"}]  # fmt: skip
    assert [e["action"] for e in data["history"]] == ["changes"]
    ana = (await cog.export_data(UserRef("test", "ana")))["tasks"]
    assert ana["claims"][0]["result_link"] == "https://example.org/pl.odt"
    for each in sorted(h.app.cogs, key=lambda c: c.erase_order):
        await each.erase_data(piotr, h.ctx("piotr"))
    shown = await h.ok("bob", f"task show {tid}")
    assert "zqx" not in shown and "Piotr" not in shown
    assert "changes asked by a former volunteer (back to Ana)" in shown


async def test_reviewers_asking_at_once_each_get_different_work(harness: Harness):
    h = harness
    await h.ok("coco", "task post translation Leaflet --language pl,de,fr,it,es,nl")
    for n, lang in enumerate(["pl", "de", "fr", "it", "es", "nl"], start=1):
        await h.ok(f"t{lang}", f"volunteer join translator --languages {lang}")
        await h.ok(f"t{lang}", f"task claim {n}")
        await h.ok(f"t{lang}", f"task done {n} https://example.org/{lang}.odt")
    reviewers = [f"r{n}" for n in range(8)]
    for name in reviewers:
        await h.ok(name, "volunteer join translator --languages pl,de,fr,it,es,nl")
    replies = await asyncio.gather(*(h.run(name, "task next --review") for name in reviewers))
    given = [number(r.body.plain()) for r in replies if not r.is_error]
    assert sorted(given) == [1, 2, 3, 4, 5, 6], "each review handed out once"
    assert sum(r.is_error for r in replies) == 2


async def test_changes_to_work_whose_translator_left_put_it_back_in_the_queue(harness: Harness):
    h = harness
    tid = await handed_in(h)
    for each in sorted(h.app.cogs, key=lambda c: c.erase_order):
        await each.erase_data(UserRef("test", "ana"), h.ctx("ana"))
    await h.ok("piotr", "volunteer join translator --languages pl")
    answer = await h.ok("piotr", f"task review {tid} changes the second page is missing")
    assert "back in the queue" in answer
    shown = await h.ok("bob", f"task show {tid}")
    assert (
        "Status: open" in shown and "Changes asked by Piotr: the second page is missing" in shown
    )
