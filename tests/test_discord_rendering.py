"""Pure helpers of the Discord adapter: message splitting, mentions, buttons, autocomplete."""

import discord

from bot.adapters.discord_adapter import (
    MAX_CONTENT,
    allowed_mentions,
    button_view,
    language_choices,
    render,
    split_content,
)
from bot.context import Button, Reply
from bot.domain import Markup, UserRef


def test_long_text_splits_at_line_breaks_within_discords_limit():
    lines = [f"line {i} " + "x" * 50 for i in range(100)]
    parts = split_content("\n".join(lines))
    assert len(parts) > 1
    assert all(len(p) <= MAX_CONTENT for p in parts)
    assert "\n".join(parts) == "\n".join(lines), "nothing lost or reordered"


def test_a_single_overlong_line_is_cut_not_dropped():
    parts = split_content("y" * (MAX_CONTENT * 2 + 5))
    assert [len(p) for p in parts] == [MAX_CONTENT, MAX_CONTENT, 5]


def test_empty_text_still_makes_a_sendable_message():
    assert split_content("") == ["\u200b"]


def test_allowed_mentions_never_allow_everyone_or_roles():
    assert allowed_mentions([]).to_dict() == {"parse": []}
    assert allowed_mentions([discord.Object(5)]).to_dict() == {"parse": [], "users": [5]}


def test_only_discord_mentions_are_rendered_as_pings_and_values_are_escaped():
    reply = Reply(
        Markup.format("Over to you: {title}", title="@everyone *now*"),
        mentions=[UserRef("discord", "42", "Ann"), UserRef("matrix", "@b:x", "B")],
    )
    text = render(reply)
    assert text.startswith("<@42> Over to you:")
    assert "@b:x" not in text
    assert "@everyone" not in text and r"\*now\*" in text


async def test_buttons_become_vb_custom_ids_and_the_view_is_not_kept_in_memory():
    reply = Reply(
        Markup.trusted("Task #7"),
        buttons=[Button("Claim", "task claim 7"), Button("Too long", "x" * 120)],
    )
    view = button_view(reply)
    assert view is not None
    assert [c.custom_id for c in view.children] == ["vb:task claim 7"]
    assert view.is_finished(), "clicks are answered by the registered dynamic item instead"


def test_language_autocomplete_by_code_or_name_and_for_lists():
    assert [c.value for c in language_choices("pol", many=False)] == ["pl"]
    assert "fr" in [c.value for c in language_choices("fr", many=False)]
    values = [c.value for c in language_choices("pl, e", many=True)]
    assert values and all(v.startswith("pl,e") for v in values)
    assert "pl,en" in values
