"""The Discord adapter end to end: unmodified discord.py against the wire-level fake."""

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
from sqlmodel import select

from bot.context import Attachment
from bot.domain import Markup
from storage.models import OutboxMessage
from tests.discord_fake import (
    EPHEMERAL,
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    PRIVILEGED_INTENTS,
    FakeDiscord,
)
from tests.e2e.discord_support import COORDINATOR_ROLE, BotRunner

pytestmark = pytest.mark.e2e

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = yarl.URL("wss://gateway.discord.gg/")
OPTION_TYPE = {"string": 3, "integer": 4, "boolean": 5, "user": 6, "attachment": 11}
COMMANDS_PUT = r"^/applications/\d+/guilds/\d+/commands$"
CALLBACK = r"^/interactions/\d+/[^/]+/callback$"


@pytest.fixture(autouse=True)
def endpoints_restored() -> Iterator[None]:
    """Every test leaves discord.py pointing at Discord again."""
    yield
    assert Route.BASE == DISCORD_API
    assert DiscordWebSocket.DEFAULT_GATEWAY == DISCORD_GATEWAY


@pytest.fixture
async def bot(runner: BotRunner) -> BotRunner:
    await runner.start()
    return runner


async def run(fake: FakeDiscord, user: Any, command: str, /, **options: Any):
    return await (await fake.slash(user, command, **options)).answer()


# --- the command schema ---------------------------------------------------------------------


def expected_option(arg: Any) -> dict[str, Any]:
    """What Discord should hold for one parameter, read straight off the cog declaration."""
    option: dict[str, Any] = {
        "name": arg.name,
        "description": arg.description,
        "type": OPTION_TYPE[arg.kind.wire],
        "required": arg.required,
    }
    if arg.choices:
        option["choices"] = [{"name": c, "value": c} for c in arg.choices]
    if arg.kind.wire == "integer":
        for key, bound in (("min_value", arg.param.min), ("max_value", arg.param.max)):
            if bound is not None:
                option[key] = bound
    if arg.kind.wire == "string" and arg.param.max_length is not None:
        option["min_length"], option["max_length"] = 1, arg.param.max_length
    if arg.param.autocomplete:
        option["autocomplete"] = True
    return option


def expected_schema(registry: Any) -> list[dict[str, Any]]:
    commands: dict[str, dict[str, Any]] = {}
    for spec in registry.specs:
        leaf = {
            "name": spec.name,
            "description": spec.description,
            "options": [expected_option(a) for a in spec.args],
        }
        if spec.group is None:
            commands[spec.name] = {**leaf, "type": 1}
            continue
        group = commands.setdefault(
            spec.group,
            {
                "name": spec.group,
                "description": registry.group_descriptions[spec.group],
                "type": 1,
                "options": [],
            },
        )
        group["options"].append({**leaf, "type": 1})
    return sorted(commands.values(), key=lambda c: c["name"])


KEYS = (
    "name",
    "description",
    "type",
    "required",
    "choices",
    "min_value",
    "max_value",
    "min_length",
    "max_length",
    "autocomplete",
    "options",
)


def normalise(option: dict[str, Any]) -> dict[str, Any]:
    """Keep what the schema means; leaf options always say whether they are required."""
    out = {k: option[k] for k in KEYS if option.get(k) not in (None, False, [])}
    if "choices" in out:  # their localised names are checked in test_discord_languages.py
        out["choices"] = [{"name": c["name"], "value": c["value"]} for c in out["choices"]]
    if option.get("type", 1) not in (1, 2):
        out["required"] = bool(option.get("required"))
    if option.get("options"):
        out["options"] = [normalise(o) for o in option["options"]]
    return out


async def test_synced_schema_is_exactly_what_the_cogs_declare(fake, bot):
    [put] = fake.requests_to("PUT", COMMANDS_PUT)
    assert put.path == f"/applications/{fake.application_id}/guilds/{fake.guild_id}/commands"
    synced = sorted((normalise(c) for c in put.json), key=lambda c: c["name"])
    expected = [normalise(c) for c in expected_schema(bot.app.services.registry)]
    assert synced == expected
    names = {c["name"] for c in synced}
    assert {"volunteer", "help"} <= names


async def test_unchanged_commands_are_not_synced_again_but_changed_ones_are(fake, runner):
    await runner.start()
    assert len(fake.requests_to("PUT", COMMANDS_PUT)) == 1
    await runner.restart()
    assert len(fake.requests_to("PUT", COMMANDS_PUT)) == 1, "a restart alone must not sync"
    await runner.restart(bot={"cogs": ["volunteers"]})
    puts = fake.requests_to("PUT", COMMANDS_PUT)
    assert len(puts) == 2
    assert [c["name"] for c in puts[-1].json] == ["volunteer"]
    await runner.restart()
    assert len(fake.requests_to("PUT", COMMANDS_PUT)) == 3
    alice = fake.user("alice")
    assert "Commands" in (await run(fake, alice, "help")).content


async def test_commands_sync_globally_when_no_guild_is_configured(fake, tmp_path):
    bot = BotRunner(fake, tmp_path, guild_ids=[])
    try:
        await bot.start()
        assert fake.requests_to("PUT", rf"^/applications/{fake.application_id}/commands$")
        assert not fake.requests_to("PUT", COMMANDS_PUT)
        alice = fake.user("alice")
        # No server is the campaign's: servers are answered only when told to.
        refused = await run(fake, alice, "volunteer join", role="networker")
        assert refused.ephemeral and "campaign's own Discord server only" in refused.content
        await bot.restart(bot={"answer_elsewhere": "everywhere"})
        answer = await run(fake, alice, "volunteer join", role="networker")
        assert "registered as **networker**" in answer.content
    finally:
        await bot.stop()


async def test_no_privileged_intent_is_requested(fake, bot):
    intents = int(fake.identifies[0]["intents"])
    assert intents & PRIVILEGED_INTENTS == 0
    assert intents & 1, "the guilds intent (not privileged) is used"


async def test_endpoints_point_at_the_configuration_only_while_running(fake, runner):
    await runner.start()
    assert fake.api_base == Route.BASE
    await runner.stop()
    assert Route.BASE == DISCORD_API


# --- volunteers -----------------------------------------------------------------------------


async def test_volunteer_join_and_profile_through_slash_commands(fake, bot):
    alice, bob = fake.user("alice"), fake.user("bob")
    joined = await run(
        fake, alice, "volunteer join", role="translator", languages="de,fr", country="DE"
    )
    assert not joined.ephemeral
    assert "registered as **translator**" in joined.content
    mine = await run(fake, alice, "volunteer profile")
    assert "German" in mine.content and "Germany" in mine.content
    theirs = await run(fake, bob, "volunteer profile", user=alice)
    assert "**Alice**" in theirs.content and "translator" in theirs.content


async def test_user_errors_arrive_ephemeral(fake, bot):
    alice = fake.user("alice")
    missing = await run(fake, alice, "volunteer profile")
    assert missing.flags & EPHEMERAL
    assert "not registered yet" in missing.content
    bad_country = await run(fake, alice, "volunteer join", role="translator", country="xx")
    assert bad_country.flags & EPHEMERAL
    assert "is not an EU member state" in bad_country.content
    [callback] = fake.requests_to("POST", CALLBACK)[-1:]
    assert callback.json["data"]["flags"] & EPHEMERAL


async def test_quiet_and_confidential_answers_are_both_ephemeral(fake, bot):
    alice = fake.user("alice")
    joined = await run(fake, alice, "volunteer join", role="networker")
    assert not joined.ephemeral
    # Quiet: only she needs her (empty) task list.
    mine = await run(fake, alice, "task mine")
    assert mine.flags & EPHEMERAL and "You hold no tasks" in mine.content
    # Confidential: only she may see her data export.
    export = await run(fake, alice, "privacy mydata")
    assert export.flags & EPHEMERAL and "What I store about you" in export.content


async def test_a_display_name_of_at_everyone_pings_nobody(fake, bot):
    sneaky = fake.user("@everyone")
    answer = await run(fake, sneaky, "volunteer join", role="networker")
    assert answer.allowed_mentions == {"parse": []}
    assert "@everyone" not in answer.content, "the mention is defused in the text as well"


async def test_language_autocomplete_completes_the_last_item_of_a_list(fake, bot):
    alice = fake.user("alice")
    inter = await fake.slash(
        alice, "volunteer join", role="translator", languages="de,p", focused="languages"
    )
    values = [c["value"] for c in await inter.autocomplete_choices()]
    assert "de,pl" in values and "de,pt" in values
    assert all(v.startswith("de,") for v in values)


async def test_a_slow_command_is_deferred_and_then_answered(fake, bot):
    bot.adapter.defer_after = 0
    alice = fake.user("alice")
    inter = await fake.slash(alice, "volunteer join", role="organiser")
    answer = await inter.answer()
    assert inter.callbacks[0]["type"] == 5, "deferred first"
    assert "registered as **organiser**" in answer.content
    assert fake.requests_to("PATCH", r"/messages/@original$")


async def test_an_error_after_a_public_defer_is_still_ephemeral(fake, bot):
    bot.adapter.defer_after = 0
    alice = fake.user("alice")
    inter = await fake.slash(alice, "volunteer leave", role="programmer")
    answer = await inter.answer()
    assert inter.callbacks[0]["type"] == 5
    assert answer.flags & EPHEMERAL
    assert fake.requests_to("DELETE", r"/messages/@original$"), "the public 'thinking' goes away"


# --- resilience -----------------------------------------------------------------------------


async def test_a_429_on_the_interaction_callback_is_waited_out_and_retried(fake, bot):
    alice = fake.user("alice")
    fake.fail("POST", CALLBACK, status=429, retry_after=0.3)
    answer = await run(fake, alice, "volunteer join", role="programmer")
    assert "registered as **programmer**" in answer.content
    assert [r.status for r in fake.requests_to("POST", CALLBACK)] == [429, 200]


async def test_a_closed_gateway_is_resumed_and_the_next_command_answered(fake, bot):
    alice = fake.user("alice")
    await fake.drop_gateway(code=4000)
    answer = await run(fake, alice, "volunteer join", role="investigator")
    assert "registered as **investigator**" in answer.content
    assert len(fake.resumes) == 1 and len(fake.identifies) == 1, "resumed, not re-identified"


async def test_ready_after_a_new_session_does_nothing_twice(fake, bot, caplog):
    caplog.set_level(logging.INFO, logger="bot.adapters.discord_adapter")
    await fake.wait_for(lambda: "Discord gateway ready" in caplog.text, seconds=15)
    await fake.invalidate_session()
    await fake.wait_connected(after=1)
    await fake.wait_for(lambda: "ready again" in caplog.text, seconds=15)
    alice = fake.user("alice")
    inter = await fake.slash(alice, "volunteer join", role="networker")
    await inter.answer()
    await asyncio.sleep(0.2)
    assert len(inter.callbacks) == 1, "answered once"
    assert len(fake.requests_to("PUT", COMMANDS_PUT)) == 1, "no second sync"


# --- outbox ---------------------------------------------------------------------------------


async def enqueue(
    bot: BotRunner,
    key: str,
    target: str,
    text: str,
    recipient: str | None = None,
    attachment: Attachment | None = None,
):
    app = bot.app
    await app.services.outbox_repo.add(
        key=key,
        target=target,
        body=Markup.format("{t}", t=text),
        now=bot.clock.now(),
        recipient_id=recipient,
        attachment=attachment,
    )
    app.services.outbox.wake()


async def sent(bot: BotRunner, key: str) -> bool:
    return key in await bot.app.services.outbox_repo.sent_keys(key)


async def test_an_outbox_post_reaches_the_channel_once_even_when_the_answer_is_lost(fake, bot):
    path = rf"^/channels/{fake.channel_id}/messages$"
    fake.fail("POST", path, status=500, after_handling=True)
    await enqueue(bot, "notice:1", f"discord:{fake.channel_id}", "Leaflet @everyone is ready")
    await fake.wait_for(lambda: len(fake.requests_to("POST", path)) == 2)
    posts = fake.requests_to("POST", path)
    assert posts[0].json["nonce"] == posts[1].json["nonce"] and posts[0].json["enforce_nonce"]
    messages = fake.channel_messages(fake.channel_id)
    assert len(messages) == 1
    assert "Leaflet" in messages[0]["content"]
    assert posts[0].json["allowed_mentions"] == {"parse": []}


async def test_an_outbox_attachment_is_uploaded_with_the_post(fake, bot):
    chart = Attachment("progress.png", b"\x89PNG fake chart", "image/png")
    await enqueue(bot, "chart:1", f"discord:{fake.channel_id}", "Progress", attachment=chart)
    await fake.wait_for(lambda: fake.channel_messages(fake.channel_id))
    post = fake.requests_to("POST", rf"^/channels/{fake.channel_id}/messages$")[0]
    assert post.files == [("progress.png", b"\x89PNG fake chart")]
    assert post.json["content"] == "Progress"


async def test_a_failing_dm_falls_back_to_the_channel_pinging_only_that_person(fake, bot):
    closed = fake.user("closed", dms_closed=True)
    await enqueue(bot, "dm:1", f"discord:{fake.channel_id}", "Still on it?", str(closed.id))
    await fake.wait_for(lambda: fake.channel_messages(fake.channel_id))
    [message] = fake.channel_messages(fake.channel_id)
    assert message["content"].startswith(f"<@{closed.id}>")
    post = fake.requests_to("POST", rf"^/channels/{fake.channel_id}/messages$")[0]
    assert post.json["allowed_mentions"] == {"parse": [], "users": [closed.id]}
    assert fake.requests_to("POST", r"^/users/@me/channels$")


async def test_a_dm_that_works_does_not_touch_the_channel(fake, bot):
    open_ = fake.user("open")
    await enqueue(bot, "dm:2", f"discord:{fake.channel_id}", "Your task is due", str(open_.id))
    await fake.wait_for(lambda: fake.channel_messages(open_.id + 1))
    assert "Your task is due" in fake.channel_messages(open_.id + 1)[0]["content"]
    assert not fake.channel_messages(fake.channel_id)


async def test_an_unknown_channel_is_given_up_not_retried(fake, bot):
    await enqueue(bot, "notice:gone", "discord:999", "Nobody hears this")
    await fake.wait_for(lambda: fake.requests_to("POST", r"^/channels/999/messages$"))

    def row(session):
        return session.exec(select(OutboxMessage).where(OutboxMessage.key == "notice:gone")).one()

    async def failed() -> bool:
        error = (await bot.app.db.read(row)).last_error
        return error == "PermanentDeliveryError (Discord refused the channel (code 10003))"

    for _ in range(100):
        if await failed():
            break
        await asyncio.sleep(0.02)
    assert await failed()
    assert not await sent(bot, "notice:gone")


# --- tasks (run once the task queue is present) -----------------------------------------------


async def post_task(fake: FakeDiscord, coordinator: Any, title: str):
    answer = await run(
        fake, coordinator, "task post", kind="translation", title=title, language="pl"
    )
    assert not answer.ephemeral, answer.content
    [custom_id] = [c for c in answer.custom_ids if c.startswith("vb:task claim ")]
    return answer, int(custom_id.rsplit(" ", 1)[1])


async def volunteers(fake: FakeDiscord, *names: str):
    people = [fake.user(name) for name in names]
    for person in people:
        answer = await run(fake, person, "volunteer join", role="translator", languages="pl,en")
        assert not answer.ephemeral, answer.content
    return people


async def test_task_post_then_two_racing_claims_have_one_winner(fake, bot):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()  # the guild (with the coordinator role) is announced again
    alice, bob = await volunteers(fake, "alice", "bob")
    _, task_id = await post_task(fake, coco, "Translate the leaflet")
    first, second = await asyncio.gather(
        fake.slash(alice, "task claim", id=task_id), fake.slash(bob, "task claim", id=task_id)
    )
    answers = [await first.answer(), await second.answer()]
    winners = [a for a in answers if not a.ephemeral]
    losers = [a for a in answers if a.ephemeral]
    assert len(winners) == 1 and len(losers) == 1, [a.content for a in answers]


async def test_coordinators_are_recognised_by_role_or_manage_server(fake, bot):
    by_role = fake.user("coco", roles=[COORDINATOR_ROLE])
    admin = fake.user("admin", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)
    plain = fake.user("plain")
    await bot.restart()
    await post_task(fake, by_role, "Role-based coordinator")
    await post_task(fake, admin, "Manage Server coordinator")
    refused = await run(fake, plain, "task post", kind="translation", title="Not mine")
    assert refused.ephemeral and "coordinators" in refused.content


async def test_the_claim_button_claims_for_the_clicker_also_after_a_restart(fake, bot):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    alice, bob = await volunteers(fake, "alice", "bob")
    before, before_id = await post_task(fake, coco, "Subtitle the video")
    click = await (await fake.click(alice, before.message, f"vb:task claim {before_id}")).answer()
    assert not click.ephemeral, click.content
    again = await (await fake.click(bob, before.message, f"vb:task claim {before_id}")).answer()
    assert again.ephemeral, "the second click is told it is taken"

    after, after_id = await post_task(fake, coco, "Translate the FAQ")
    await bot.restart()
    late = await (await fake.click(bob, after.message, f"vb:task claim {after_id}")).answer()
    assert not late.ephemeral, late.content


async def test_a_title_with_at_everyone_produces_a_post_that_pings_nobody(fake, bot):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    answer, _ = await post_task(fake, coco, "Flyers @everyone @here <@&4300>")
    assert answer.allowed_mentions == {"parse": []}
    assert not re.search(r"@(everyone|here)\b", answer.content)
    callback = fake.requests_to("POST", CALLBACK)[-1]
    assert callback.json["data"]["allowed_mentions"] == {"parse": []}


# --- jobs, review, extend and autocomplete ----------------------------------------------------


async def test_task_number_autocomplete_offers_open_tasks_by_number_or_title(fake, bot):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    [alice] = await volunteers(fake, "alice")
    for title in ["Leaflet for Warsaw", "Poster for Brno", "Held already"]:
        await post_task(fake, coco, title)
    await run(fake, alice, "task claim", id=3)

    async def choices(typed: str) -> list[tuple[str, int]]:
        inter = await fake.slash(alice, "task claim", id=typed, focused="id")
        return [(c["name"], c["value"]) for c in await inter.autocomplete_choices()]

    assert await choices("warsaw") == [("#1 Leaflet for Warsaw (pl)", 1)]
    assert await choices("2") == [("#2 Poster for Brno (pl)", 2)]
    assert await choices("") == [("#1 Leaflet for Warsaw (pl)", 1), ("#2 Poster for Brno (pl)", 2)]
    assert await choices("held") == [], "claimed tasks are not offered"


def unescaped(markdown: str) -> str:
    """Discord markdown with its escapes taken out."""
    return re.sub(r"\\(.)", r"\1", markdown)


async def test_a_job_is_posted_claimed_delivered_and_reviewed_through_slash_commands(fake, bot):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    ana, piotr = fake.user("ana"), fake.user("piotr")
    for person in (ana, piotr):
        await run(fake, person, "volunteer join", role="translator", languages="pl,de")
    posted = await run(fake, coco, "task post", kind="translation", title="Leaflet",
                       language="pl,de", source_language="en",
                       source="https://example.org/leaflet.odt")  # fmt: skip
    assert not posted.ephemeral, posted.content
    assert "Posted job **#1**" in posted.content
    listed = unescaped(posted.content)
    assert "#1 Polish (pl)" in listed and "#2 German (de)" in listed
    claimed = await run(fake, ana, "task claim", id=1)
    assert "You have task **#1**" in claimed.content
    done = await run(fake, ana, "task done", id=1, note="see https://example.org/pl.odt")
    assert "handed in for review" in done.content
    own = await run(fake, ana, "task review", id=1, verdict="approve")
    assert own.ephemeral and "your own work" in own.content
    given = await run(fake, piotr, "task next", review=True)
    assert "You are reviewing task **#1**" in given.content
    back = await run(fake, piotr, "task review", id=1, verdict="changes", note="add the logo")
    assert "goes back to Ana" in back.content
    await run(fake, ana, "task done", id=1, note="https://example.org/pl-v2.odt")
    approved = await run(fake, piotr, "task review", id=1, verdict="approve")
    assert "approved and done" in approved.content
    table = unescaped((await run(fake, coco, "job show", id=1)).content)
    assert "Source: https://example.org/leaflet.odt" in table
    assert (
        "• pl Polish — #1 done by Ana, approved by Piotr: https://example.org/pl-v2.odt" in table
    )
    assert "• de German — #2 open" in table
    # The translator heard of the changes asked, in a direct message.
    await fake.wait_for(lambda: any("asked for changes" in m["content"]
                                    for m in fake.channel_messages(ana.id + 1)))  # fmt: skip


async def test_the_still_on_it_notice_has_a_button_that_extends_the_claim(fake, bot):
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    await bot.restart()
    [alice] = await volunteers(fake, "alice")
    _, task_id = await post_task(fake, coco, "Translate the FAQ")
    await run(fake, alice, "task claim", id=task_id)
    tasks = next(c for c in bot.app.cogs if c.group == "task")
    bot.clock.advance(bot.app.settings.tasks.claim_ttl * 0.8)
    assert (await tasks.sweep()).nudged == 1
    dm = alice.id + 1
    await fake.wait_for(lambda: fake.channel_messages(dm))
    [notice] = fake.channel_messages(dm)
    assert "Still on task" in notice["content"]
    clicked = await (await fake.click(alice, notice, f"vb:task extend {task_id}")).answer()
    assert "stays yours" in clicked.content, clicked.content
    bot.clock.advance(bot.app.settings.tasks.claim_ttl * 0.5)
    assert (await tasks.sweep()).released == 0, "the extension restarted the time to live"
