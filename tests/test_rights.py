"""Coordinator rights come from the configuration and the campaign's own places only."""

import pytest

from bot.config import Settings
from bot.domain import UserRef
from bot.rights import PlaceKind, Reach, Rights, Standing

CAMPAIGN = "matrix:!campaign:example.org"
OTHER_ROOM = "matrix:!elsewhere:example.org"
GUILD = "discord-guild:100"
OTHER_GUILD = "discord-guild:999"
ROLE = 4300


@pytest.fixture
def rights() -> Rights:
    return Rights.from_settings(
        Settings(
            console={"coordinators": ["coco"]},
            matrix={
                "rooms": ["!campaign:example.org", "#alias:example.org"],
                "coordinators": ["@carol:example.org"],
                "coordinator_power_level": 50,
            },
            discord={"guild_ids": [100], "coordinators": [77], "coordinator_role_ids": [ROLE]},
        )
    )


MATRIX = UserRef("matrix", "@alice:example.org")
DISCORD = UserRef("discord", "55")

CASES = [
    # (who, standings, coordinator?, why)
    (UserRef("matrix", "@carol:example.org"), [], True, "named in config"),
    (UserRef("console", "coco"), [], True, "named console coordinator"),
    (UserRef("discord", "77"), [], True, "named Discord user id"),
    (UserRef("discord", "@carol:example.org"), [], False, "a name counts on its platform only"),
    (MATRIX, [], False, "nobody in particular"),
    (MATRIX, [Standing(CAMPAIGN, level=50)], True, "moderator of a campaign room"),
    (MATRIX, [Standing(CAMPAIGN, level=49)], False, "just below the level"),
    (MATRIX, [Standing(CAMPAIGN, creator=True)], True, "creator of a campaign room (v12)"),
    (MATRIX, [Standing(OTHER_ROOM, level=100)], False, "admin of a room outside the campaign"),
    (MATRIX, [Standing(OTHER_ROOM, creator=True)], False, "creator of a direct chat"),
    (DISCORD, [Standing(GUILD, manages=True)], True, "Manage Server in the campaign's server"),
    (DISCORD, [Standing(OTHER_GUILD, manages=True)], False, "Manage Server elsewhere"),
    (DISCORD, [Standing(OTHER_GUILD, roles=frozenset({ROLE}))], True, "the configured role"),
    (DISCORD, [Standing(GUILD, roles=frozenset({1, 2}))], False, "other roles"),
]


@pytest.mark.parametrize(("who", "standings", "expected", "why"), CASES, ids=[c[3] for c in CASES])
def test_who_is_a_coordinator(rights, who, standings, expected, why):
    assert rights.is_coordinator(who, standings) is expected, why


def test_a_resolved_alias_becomes_a_campaign_room(rights):
    resolved = "matrix:!fromalias:example.org"
    assert not rights.is_coordinator(MATRIX, [Standing(resolved, level=100)])
    rights.add_campaign_place(resolved)
    assert rights.is_coordinator(MATRIX, [Standing(resolved, level=100)])


def test_the_power_level_is_configurable():
    rights = Rights.from_settings(
        Settings(matrix={"rooms": ["!campaign:example.org"], "coordinator_power_level": 75})
    )
    assert not rights.is_coordinator(MATRIX, [Standing(CAMPAIGN, level=50)])
    assert rights.is_coordinator(MATRIX, [Standing(CAMPAIGN, level=75)])


@pytest.mark.parametrize(
    ("reach", "campaign", "direct", "other"),
    [
        (Reach.NOWHERE, True, False, False),
        (Reach.DIRECT, True, True, False),
        (Reach.EVERYWHERE, True, True, True),
    ],
)
def test_where_commands_are_answered(reach, campaign, direct, other):
    rights = Rights.from_settings(
        Settings(
            bot={"answer_elsewhere": reach.value}, matrix={"rooms": ["!campaign:example.org"]}
        )
    )
    assert rights.kind_of(CAMPAIGN, direct=True) is PlaceKind.CAMPAIGN, "configured wins"
    assert rights.kind_of(OTHER_ROOM, direct=True) is PlaceKind.DIRECT
    assert rights.kind_of(OTHER_ROOM, direct=False) is PlaceKind.OTHER
    assert [rights.answers_in(k) for k in PlaceKind] == [campaign, direct, other]


def test_the_default_answers_direct_chats_and_ignores_other_rooms():
    rights = Rights.from_settings(Settings())
    assert rights.reach is Reach.DIRECT
    assert rights.answers_in(PlaceKind.DIRECT) and not rights.answers_in(PlaceKind.OTHER)
