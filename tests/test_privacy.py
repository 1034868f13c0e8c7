"""privacy mydata / privacy forget through the core, and the retention purge."""

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.commands import Cog
from bot.config import ConfigError, load_settings
from bot.context import Actor, Ctx, Place, Reply
from bot.domain import Markup, UserRef
from bot.privacy import FORMER_VOLUNTEER
from cogs.privacy import Privacy
from storage.models import OutboxMessage
from tests.harness import START, Harness, make_app


def export_of(reply: Reply) -> dict[str, Any]:
    (attachment,) = reply.attachments
    assert attachment.filename == "mydata.json"
    assert attachment.content_type == "application/json"
    return json.loads(attachment.data)


def privacy_cog(h: Harness) -> Privacy:
    (cog,) = [c for c in h.app.cogs if isinstance(c, Privacy)]
    return cog


async def notify(
    h: Harness, key: str, recipient: str | None, text: Markup, *, naming: str | None = None
) -> None:
    """Queue a post for ``recipient`` whose words quote the person ``naming`` (by id)."""
    subject = h.ctx(naming).user if naming else None
    await h.app.services.outbox_repo.add(
        key=key, target="test:room", body=text, now=h.clock.now(), recipient_id=recipient,
        subject=subject,
    )  # fmt: skip


async def test_mydata_is_a_private_reply_with_the_callers_record_as_json(harness: Harness):
    await harness.ok("alice", "volunteer join translator --languages pl,de --country DE")
    await harness.ok("bob", "volunteer join programmer --country FR")
    reply = await harness.run("alice", "privacy mydata")
    assert reply.private and not reply.is_error
    record = export_of(reply)["stored"]["volunteer"]["volunteer"]
    assert record["id"] == "alice" and record["display_name"] == "Alice"
    assert record["roles"] == ["translator"]
    assert record["languages"] == ["pl", "de"] and record["country"] == "DE"
    assert "bob" not in reply.attachments[0].data.decode().lower()


async def test_mydata_summary_says_what_why_how_long_and_how_to_erase(harness: Harness):
    await harness.ok("alice", "volunteer join translator --languages pl")
    text = await harness.ok("alice", "privacy mydata")
    assert (
        "your `volunteer` record (`platform`, `id`, `display_name`, `roles`, `languages`" in text
    )
    assert "match volunteers to tasks" in text
    assert "after 365 days without a command" in text
    assert "`privacy forget`" in text and "mydata.json" in text


async def test_mydata_of_someone_never_registered_says_nothing_is_stored(harness: Harness):
    reply = await harness.run("stranger", "privacy mydata")
    assert "I store nothing about you" in reply.body.plain()
    assert export_of(reply)["stored"] == {}


async def test_mydata_lists_bot_messages_addressed_to_or_naming_the_caller(harness: Harness):
    await notify(harness, "n:1", "alice", Markup.format("Reminder for {n}", n="Alice"))
    await notify(harness, "n:2", "bob", Markup.format("Reminder for {n}", n="Bob"))
    await notify(harness, "n:3", None, Markup.format("{n} claimed task 3", n="Alice"),
                 naming="alice")  # fmt: skip
    # Quoting her name is not naming her: only a post's stored subject id counts.
    await notify(harness, "n:4", None, Markup.format("{n} claimed task 4", n="Alice"))
    assert len(await harness.deliver()) == 4
    await notify(harness, "n:5", "alice", Markup.format("Later, {n}", n="Alice"))
    stored = export_of(await harness.run("alice", "privacy mydata"))["stored"]
    messages = stored["messages_for_you"]
    assert [m["text"] for m in messages] == ["Reminder for Alice", "Later, Alice"]
    assert messages[0]["sent_at"] is not None and messages[1]["sent_at"] is None
    assert [p["text"] for p in stored["posts_naming_you"]] == ["Alice claimed task 3"]


async def test_forget_says_what_became_of_the_posts_and_files_that_named_the_caller(
    harness: Harness,
):
    await harness.ok("alice", "volunteer join translator")
    await notify(harness, "n:1", None, Markup.format("{n} claimed task 3", n="Alice"),
                 naming="alice")  # fmt: skip
    await notify(harness, "n:2", "alice", Markup.format("Reminder for {n}", n="Alice"))
    alice = harness.ctx("alice").user
    for n in (1, 2):  # the test platform has no adapter to delete them with
        await harness.app.services.uploads.uploaded(alice, f"mxc://example.org/f{n}",
                                                    "!dm:example.org", harness.clock.now())  # fmt: skip
    asked = (await harness.run("alice", "privacy forget")).body.plain()
    assert (
        "`last_active_at`); 1 bot message addressed to you; 1 bot message that names you; "
        "2 files the bot sent only to you. Tasks you claimed go back"
    ) in asked
    done = (await harness.run("alice", "privacy forget --confirm")).body.plain()
    assert done.startswith("Done. I erased your `volunteer` record (")
    assert (
        "shared history now says “a former volunteer” where it named you (also in 1 bot post). "
        "2 files I had sent only to you could not be deleted from the server: the bot is not "
        "connected to that platform right now. If you use the bot again, it starts from nothing."
    ) in done


async def test_forget_without_confirm_explains_offers_a_button_and_erases_nothing(
    harness: Harness,
):
    await harness.ok("alice", "volunteer join translator")
    reply = await harness.run("alice", "privacy forget")
    assert reply.private and not reply.is_error
    text = reply.body.plain()
    assert "permanently erases" in text and "your `volunteer` record" in text
    assert [(b.label, b.command) for b in reply.buttons] == [
        ("Yes, erase my data", "privacy forget --confirm")
    ]
    # The command to go ahead, as each platform types it.
    for target, typed in (("console:alice", "`privacy forget --confirm`"),
                          ("matrix:!room:example.org", "`!privacy forget --confirm`"),
                          ("discord:123", "`/privacy forget confirm:True`")):  # fmt: skip
        shown = (await harness.run("alice", "privacy forget", target=target)).body.plain()
        assert f"To go ahead, run {typed} or press the button." in shown, shown
    assert await harness.app.services.volunteers.profile(harness.ctx("alice").user) is not None


async def test_forget_confirm_erases_the_record_and_messages_and_says_so(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    await harness.ok("bob", "volunteer join translator")
    await notify(harness, "n:1", "alice", Markup.format("Hi {n}", n="Alice"))
    await notify(harness, "n:2", "bob", Markup.format("Hi {n}", n="Bob"))
    reply = await harness.run("alice", "privacy forget --confirm")
    assert reply.private and not reply.is_error
    assert "Done. I erased your `volunteer` record" in reply.body.plain()
    assert "1 bot message addressed to you" in reply.body.plain()
    assert "I know no volunteer `alice`" in await harness.err("bob", "volunteer profile alice")
    assert export_of(await harness.run("alice", "privacy mydata"))["stored"] == {}
    assert "Roles: translator" in await harness.ok("bob", "volunteer profile")
    assert [d.key for d in await harness.deliver()] == ["n:2"]


async def test_forget_replaces_the_name_in_bot_posts_with_a_former_volunteer(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    await notify(harness, "n:1", None, Markup.format("{n} claimed task 3", n="Alice"),
                 naming="alice")  # fmt: skip
    await notify(harness, "n:2", None, Markup.format("{t} is done", t="Alice's leaflet"),
                 naming="alice")  # fmt: skip
    await harness.ok("alice", "privacy forget --confirm")
    texts = [d.body.plain() for d in await harness.deliver()]
    assert texts == ["a former volunteer claimed task 3", "Alice's leaflet is done"]


async def as_person(h: Harness, who: UserRef, line: str) -> Reply:
    ctx = Ctx(Actor(who, who.external_id in h.coordinators), Place("test:room"), h.clock.now())
    reply = await h.app.core.handle_text(ctx, line, prefixes=("",))
    assert reply is not None and not reply.is_error, f"{line!r}: {reply}"
    return reply


async def test_a_taken_display_name_sees_and_erases_none_of_anothers_notices(harness: Harness):
    """Posts are matched to people by platform id: a copied display name matches nothing."""
    h = harness
    await h.ok("alice", "volunteer join translator")
    await h.ok("coco", "task post translation Secret venue leaflet")
    await h.ok("coco", "task assign 1 alice")
    mallory = UserRef("test", "mallory", "Coco")  # the coordinator's display name
    await as_person(h, mallory, "volunteer join translator")
    exported = (await as_person(h, mallory, "privacy mydata")).attachments[0].data.decode()
    assert "Secret venue" not in exported and "alice" not in exported.lower()
    await as_person(h, mallory, "privacy forget --confirm")
    (notice,) = [d for d in await h.deliver() if "Secret venue" in d.body.plain()]
    assert "Coco" in notice.body.plain() and FORMER_VOLUNTEER not in notice.body.plain()


async def test_the_coordinator_named_in_a_notice_sees_it_and_their_forget_redacts_it(
    harness: Harness,
):
    h = harness
    await h.ok("alice", "volunteer join translator")
    await h.ok("coco", "task post translation Secret venue leaflet")
    await h.ok("coco", "task assign 1 alice")
    stored = export_of(await h.run("coco", "privacy mydata"))["stored"]
    assert any("Secret venue" in p["text"] for p in stored["posts_naming_you"])
    await h.ok("coco", "privacy forget --confirm")
    (notice,) = [d for d in await h.deliver() if "Secret venue" in d.body.plain()]
    assert "Coco" not in notice.body.plain() and FORMER_VOLUNTEER in notice.body.plain()
    assert "posts_naming_you" not in export_of(await h.run("coco", "privacy mydata"))["stored"]


async def test_forget_with_nothing_stored_says_there_was_nothing(harness: Harness):
    assert "nothing to erase" in await harness.ok("stranger", "privacy forget")
    assert "nothing to erase" in await harness.ok("stranger", "privacy forget --confirm")


def test_privacy_commands_take_no_user_to_act_on():
    for spec in Privacy.specs:
        assert [a.kind.wire for a in spec.args] in ([], ["boolean"]), spec.qualified_name


@pytest.mark.parametrize(
    "line",
    ["privacy mydata bob", "privacy mydata --user bob", "privacy mydata @bob"],
)
async def test_a_coordinator_cannot_export_someone_else(harness: Harness, line: str):
    await harness.ok("bob", "volunteer join translator --languages pl")
    assert "coco" in harness.coordinators
    text = await harness.err("coco", line)
    assert "did not expect" in text or "is not an option" in text


@pytest.mark.parametrize(
    "line",
    [
        "privacy forget bob --confirm",
        "privacy forget --confirm bob",
        "privacy forget --confirm --user bob",
        "privacy forget --user=bob --confirm",
    ],
)
async def test_a_coordinator_cannot_erase_someone_else(harness: Harness, line: str):
    await harness.ok("bob", "volunteer join translator --languages pl")
    await harness.err("coco", line)
    assert "Roles: translator" in await harness.ok("bob", "volunteer profile")


async def test_the_confirm_button_erases_whoever_presses_it(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    await harness.ok("coco", "volunteer join organiser")
    (button,) = (await harness.run("alice", "privacy forget")).buttons
    await harness.ok("coco", button.command)  # someone else pressing alice's button
    assert "Roles: translator" in await harness.ok("alice", "volunteer profile")
    assert "not registered" in await harness.err("coco", "volunteer profile")


class _Notes(Cog):
    """Remembers a note per person, to watch the order erasure runs in."""

    erase_order = 10

    def __init__(self, h: Harness, *, fail: bool = False) -> None:
        self.h = h
        self.fail = fail
        self.notes: dict[str, str] = {}
        self.volunteer_present_at_erase: bool | None = None

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        return {"notes": [self.notes[user.external_id]]} if user.external_id in self.notes else {}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        profile = await self.h.app.services.volunteers.profile(user)
        self.volunteer_present_at_erase = profile is not None
        if self.fail:
            raise RuntimeError("storage trouble")
        self.notes.pop(user.external_id, None)


async def test_every_cog_exports_and_erases_and_volunteers_go_last(harness: Harness):
    notes = _Notes(harness)
    harness.app.services.registry.add(notes)
    notes.notes["alice"] = "speaks at the Lyon meeting"
    await harness.ok("alice", "volunteer join translator")
    stored = export_of(await harness.run("alice", "privacy mydata"))["stored"]
    assert stored["_notes"] == {"notes": ["speaks at the Lyon meeting"]}
    assert "`_notes`: 1 `notes`" in await harness.ok("alice", "privacy forget")
    await harness.ok("alice", "privacy forget --confirm")
    assert notes.notes == {}
    assert notes.volunteer_present_at_erase is True, "the volunteer record is erased last"


async def test_a_failing_cog_stops_erasure_before_the_volunteer_record(harness: Harness):
    harness.app.services.registry.add(_Notes(harness, fail=True))
    await harness.ok("alice", "volunteer join translator")
    reply = await harness.run("alice", "privacy forget --confirm")
    assert reply.is_error and "Something went wrong on my side" in reply.body.plain()
    assert "Roles: translator" in await harness.ok("alice", "volunteer profile")


async def test_retention_purges_only_volunteers_inactive_for_longer(
    harness: Harness, caplog: pytest.LogCaptureFixture
):
    await harness.ok("alice", "volunteer join translator")
    harness.clock.advance(timedelta(days=100))
    await harness.ok("bob", "volunteer join translator")
    harness.clock.advance(timedelta(days=200))
    await harness.ok("carol", "volunteer join translator")
    harness.clock.advance(timedelta(days=190))  # alice: 490 days, bob 390, carol 190
    await harness.ok("bob", "volunteer profile")  # any command counts as activity
    await notify(harness, "n:1", "alice", Markup.format("Hi {n}", n="Alice"))
    with caplog.at_level(logging.INFO):
        purged = await privacy_cog(harness).purge_inactive(harness.clock.now())
    assert purged == 1
    assert "not registered" in await harness.err("alice", "volunteer profile")
    for name in ("bob", "carol"):
        assert "Roles: translator" in await harness.ok(name, "volunteer profile")
    assert await harness.deliver() == [], "messages for a purged volunteer are dropped"
    assert "purged 1 inactive" in caplog.text
    assert "alice" not in caplog.text.lower()


async def test_retention_keeps_someone_inactive_for_exactly_the_retention_period(
    harness: Harness,
):
    await harness.ok("alice", "volunteer join translator")
    harness.clock.advance(timedelta(days=365))
    assert await privacy_cog(harness).purge_inactive(harness.clock.now()) == 0
    harness.clock.advance(timedelta(seconds=1))
    assert await privacy_cog(harness).purge_inactive(harness.clock.now()) == 1


async def test_retention_period_comes_from_config(tmp_path: Path):
    app = make_app(tmp_path, privacy={"retention_days": 30})
    try:
        h = Harness(app)
        await h.ok("alice", "volunteer join translator")
        assert "after 30 days without a command" in await h.ok("alice", "privacy mydata")
        h.clock.advance(timedelta(days=31))
        assert await privacy_cog(h).purge_inactive(h.clock.now()) == 1
    finally:
        await app.stop()


def test_a_retention_of_zero_days_is_refused(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text("[privacy]\nretention_days = 0\n")
    with pytest.raises(ConfigError, match=r"privacy\.retention_days"):
        load_settings(config)


async def test_the_daily_purge_runs_from_start_and_stops_with_the_cog(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    harness.clock.advance(timedelta(days=400))
    cog = privacy_cog(harness)
    await cog.start()
    try:
        volunteers = harness.app.services.volunteers
        for _ in range(200):
            if await volunteers.profile(harness.ctx("alice").user) is None:
                break
            await asyncio.sleep(0.01)
        assert await volunteers.profile(harness.ctx("alice").user) is None
        assert "privacy-retention" in {t.get_name() for t in asyncio.all_tasks()}
    finally:
        await cog.stop()
    assert "privacy-retention" not in {t.get_name() for t in asyncio.all_tasks()}


async def test_export_of_start_time_is_aware_utc(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    document = export_of(await harness.run("alice", "privacy mydata"))
    assert document["exported_at"] == START.isoformat()
    assert document["stored"]["volunteer"]["volunteer"]["registered_at"].endswith("+00:00")


async def _old_and_new_messages_then_retention(harness: Harness) -> dict[str, OutboxMessage]:
    await notify(harness, "old", "bob", Markup.format("Hi {n}, task 3 is yours", n="Bob"))
    await notify(harness, "public", None, Markup.format("{n} joined", n="Bob"))
    await harness.deliver()
    harness.clock.advance(timedelta(days=366))
    await notify(harness, "recent", "bob", Markup.format("Hi again {n}", n="Bob"))
    await harness.deliver()
    await harness.app.services.outbox_repo.add(
        key="waiting", target="elsewhere:room", body=Markup.trusted("Queued"),
        now=START, recipient_id="bob",
    )  # fmt: skip
    await privacy_cog(harness).purge_inactive(harness.clock.now())

    def rows(session: Session) -> dict[str, OutboxMessage]:
        return {row.key: row for row in session.exec(select(OutboxMessage)).all()}

    return await harness.app.db.read(rows)


async def test_retention_clears_the_text_of_old_delivered_messages_but_keeps_their_keys(
    harness: Harness,
):
    stored = await _old_and_new_messages_then_retention(harness)
    for key in ("old", "public"):
        assert Markup.from_json(stored[key].body).plain() == ""
        assert stored[key].recipient_id is None and stored[key].sent_at is not None
    assert Markup.from_json(stored["recent"].body).plain() == "Hi again Bob"
    assert stored["waiting"].recipient_id == "bob", "undelivered messages are kept"
    assert sorted(await harness.app.services.outbox_repo.sent_keys("")) == [
        "old",
        "public",
        "recent",
    ], "cleared rows still count as sent, so nothing is posted twice"


@pytest.mark.sqlite_only
async def test_retention_leaves_no_cleared_text_in_the_sqlite_file(harness: Harness):
    await _old_and_new_messages_then_retention(harness)
    path = harness.app.db.path
    assert path is not None
    stored_bytes = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert b"is yours" not in stored_bytes and b"Hi again" in stored_bytes
