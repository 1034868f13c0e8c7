"""Coordinator rights on Discord: the campaign's server decides, no other server does."""

from pathlib import Path

import pytest

from bot.adapters.discord_adapter import ELSEWHERE
from bot.rights import PlaceKind
from tests.discord_fake import MANAGE_GUILD, MEMBER_PERMISSIONS, FakeDiscord
from tests.e2e.discord_support import COORDINATOR_ROLE, BotRunner
from tests.rights_matrix import REFUSAL, coordinator_specs, sample_options

pytestmark = pytest.mark.e2e

ADMIN_ROLE = 4400
FOREIGN_GUILD = 9900


async def outcomes(fake, runner, who, target, **where) -> dict[str, str]:
    """Every coordinator command as ``who``: its answer's text, by command."""
    assert runner.app is not None
    found = {}
    for spec in coordinator_specs(runner.app.services.registry.specs):
        options = sample_options(spec, target)
        answer = await (await fake.slash(who, spec.qualified_name, **where, **options)).answer()
        found[spec.qualified_name] = answer.content
    return found


async def test_only_the_campaign_server_and_the_config_make_coordinators(
    fake: FakeDiscord, tmp_path: Path
):
    named = fake.user("named")
    by_role = fake.user("byrole", roles=[COORDINATOR_ROLE])
    admin = fake.user("admin", roles=[ADMIN_ROLE], permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)
    fake.role_permissions[ADMIN_ROLE] = MEMBER_PERMISSIONS | MANAGE_GUILD
    plain = fake.user("plain")
    # Owns a server of their own that added the bot; not a member of the campaign's.
    owner = fake.user("owner", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD, in_guild=False)
    runner = BotRunner(fake, tmp_path, coordinators=[named.id])
    await runner.start()
    try:
        refused = ELSEWHERE[PlaceKind.OTHER].body.plain()
        cases = [
            (named, {}, "allowed", "named in config"),
            (named, {"guild": False}, "allowed", "named in config, by direct message"),
            (by_role, {}, "allowed", "the coordinator role"),
            (admin, {}, "allowed", "Manage Server in the campaign's server"),
            (admin, {"guild": False}, "allowed", "Manage Server there, by direct message"),
            (plain, {}, "refused", "a plain member"),
            (plain, {"guild": False}, "refused", "a plain member, by direct message"),
            (owner, {"guild": False}, "refused", "a stranger, by direct message"),
            (owner, {"guild_id": FOREIGN_GUILD}, "elsewhere", "Manage Server of another server"),
        ]
        for who, where, expected, why in cases:
            found = await outcomes(fake, runner, who, plain, **where)
            for command, text in found.items():
                if expected == "elsewhere":
                    assert text == refused, (why, command, text)
                else:
                    assert (REFUSAL in text) is (expected == "refused"), (why, command, text)
        assert runner.app is not None
        trail = await runner.app.services.audit.recent(1000)
        ran = [c for c in cases if c[2] != "elsewhere"]
        specs = coordinator_specs(runner.app.services.registry.specs)
        assert len(trail) == len(ran) * len(specs), "commands from another server never ran"
    finally:
        await runner.stop()


async def test_a_member_lookup_failure_grants_nothing(fake: FakeDiscord, tmp_path: Path):
    admin = fake.user("admin", roles=[ADMIN_ROLE])
    fake.role_permissions[ADMIN_ROLE] = MEMBER_PERMISSIONS | MANAGE_GUILD
    runner = BotRunner(fake, tmp_path)
    await runner.start()
    try:
        fake.fail("GET", r"/guilds/\d+/members/\d+", status=403, code=50001)
        answer = await (await fake.slash(admin, "signatures set", guild=False, count=10)).answer()
        assert answer.ephemeral and REFUSAL in answer.content
        answer = await (await fake.slash(admin, "signatures set", guild=False, count=10)).answer()
        assert REFUSAL not in answer.content, "with the lookup answered, the rights are there"
    finally:
        await runner.stop()
