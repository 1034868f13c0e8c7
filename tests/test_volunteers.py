from tests.harness import Harness


async def test_join_registers_role_languages_and_country(harness: Harness):
    text = await harness.ok("alice", "volunteer join translator --languages de,fr --country DE")
    assert "registered as translator" in text
    profile = await harness.ok("alice", "volunteer profile")
    assert "de (German), fr (French)" in profile
    assert "DE (Germany)" in profile


async def test_joining_a_second_role_keeps_the_first(harness: Harness):
    await harness.ok("alice", "volunteer join translator --languages pl")
    await harness.ok("alice", "volunteer join networker")
    profile = await harness.ok("alice", "volunteer profile")
    assert "Roles: networker, translator" in profile
    assert "pl (Polish)" in profile, "languages are kept when not given again"


async def test_joining_the_same_role_twice_says_so(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    assert "already had the role" in await harness.ok("alice", "volunteer join translator")


async def test_leave_drops_only_that_role(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    await harness.ok("alice", "volunteer join programmer")
    await harness.ok("alice", "volunteer leave translator")
    assert "Roles: programmer" in await harness.ok("alice", "volunteer profile")


async def test_leaving_a_role_you_do_not_have_is_not_found(harness: Harness):
    await harness.ok("alice", "volunteer join translator")
    assert "do not have the role `programmer`" in await harness.err(
        "alice", "volunteer leave programmer"
    )


async def test_profile_of_someone_else_and_of_a_stranger(harness: Harness):
    await harness.ok("bob", "volunteer join investigator --country PL")
    assert "Poland" in await harness.ok("alice", "volunteer profile bob")
    assert "I know no volunteer `nobody`" in await harness.err("alice", "volunteer profile nobody")
    assert "not registered yet" in await harness.err("alice", "volunteer profile")


async def test_list_filters_by_role_and_language(harness: Harness):
    await harness.ok("alice", "volunteer join translator --languages pl,de")
    await harness.ok("bob", "volunteer join translator --languages fr")
    await harness.ok("carol", "volunteer join programmer --languages pl")
    text = await harness.ok("x", "volunteer list translator --language pl")
    assert "Alice" in text and "Bob" not in text and "Carol" not in text
    assert "3 volunteers" in await harness.ok("x", "volunteer list")


async def test_bad_role_names_the_valid_choices(harness: Harness):
    text = await harness.err("alice", "volunteer join wizard")
    assert "`wizard` is not a valid role" in text
    assert "translator" in text and "video-editor" in text


async def test_country_code_given_as_language_explains_the_difference(harness: Harness):
    text = await harness.err("alice", "volunteer join translator --languages CZ")
    assert "country Czechia" in text and "`cs`" in text


async def test_language_given_as_country_is_refused_with_a_hint(harness: Harness):
    text = await harness.err("alice", "volunteer join translator --country xx")
    assert "`xx` is not an EU member state" in text


async def test_any_command_records_activity_for_retention(harness: Harness):
    from datetime import timedelta

    from bot.domain import UserRef

    await harness.ok("alice", "volunteer join translator")
    later = harness.clock.advance(timedelta(days=30))
    await harness.ok("alice", "help")
    profile = await harness.app.services.volunteers.profile(UserRef("test", "alice"))
    assert profile is not None and profile.last_active_at == later


async def test_list_shows_each_persons_own_roles_sorted(harness: Harness):
    await harness.ok("alice", "volunteer join translator --languages pl")
    await harness.ok("alice", "volunteer join networker")
    await harness.ok("bob", "volunteer join programmer")
    await harness.ok("carol", "volunteer join organiser")
    lines = (await harness.ok("x", "volunteer list")).splitlines()
    assert "• Alice — networker, translator (pl)" in lines
    assert "• Bob — programmer" in lines
    assert "• Carol — organiser" in lines


async def test_a_profile_lists_roles_sorted_and_languages_in_the_order_given(harness: Harness):
    from bot.domain import UserRef

    await harness.ok("alice", "volunteer join video-editor --languages fr,de --country AT")
    await harness.ok("alice", "volunteer join investigator")
    profile = await harness.app.services.volunteers.profile(UserRef("test", "alice"))
    assert profile is not None
    assert profile.roles == ("investigator", "video-editor")
    assert profile.languages == ("fr", "de") and profile.country == "AT"
    assert profile.user.display_name == "Alice"
    assert profile.created_at.tzinfo is not None, "timestamps come back aware"
    assert await harness.app.services.volunteers.profile(UserRef("test", "nobody")) is None
