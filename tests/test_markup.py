"""User text is rendered so it cannot ping anyone or inject markup, on every platform."""

from hypothesis import given
from hypothesis import strategies as st

from bot.domain import Markup

EVIL = "<b>@everyone</b> **bold** `x` [link](http://x) @room <@&123>"


def test_plain_keeps_values_verbatim_and_drops_bold_markers():
    m = Markup.format("**Task #{id}** {title}", id=7, title="**not bold**")
    assert m.plain() == "Task #7 **not bold**"


def test_html_escapes_values_and_turns_markers_into_tags():
    m = Markup.format("**Task** `{code}` {title}", code="<i>", title=EVIL)
    html = m.html()
    assert html.startswith("<strong>Task</strong> <code>&lt;i&gt;</code> ")
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "**bold**" in html, "markers inside values stay literal text"


def test_html_closes_tags_left_open():
    assert Markup.trusted("**open").html() == "<strong>open</strong>"


def test_markdown_escapes_values_and_defuses_mentions():
    md = Markup.format("**{title}**", title=EVIL).markdown()
    assert md.startswith("**") and md.endswith("**")
    assert "@everyone" not in md and "@room" not in md
    assert "\\*\\*bold\\*\\*" in md and "\\[link\\]" in md
    assert "\\<@\u200b&123\\>" in md, "role mention neither resolves nor pings"


def test_markdown_inside_code_cannot_close_the_code_span():
    md = Markup.format("`{v}`", v="a`b").markdown()
    assert md.count("`") == 2


def test_markup_survives_the_outbox_json_round_trip():
    m = Markup.format("**{a}** and {b}", a="x", b=EVIL)
    assert Markup.from_json(m.to_json()) == m


@given(st.text())
def test_no_value_can_produce_an_html_tag(value):
    html = Markup.format("{v}", v=value).html()
    assert "<" not in html.replace("<br>", "")


@given(st.text())
def test_no_value_can_produce_a_mass_mention_in_markdown(value):
    md = Markup.format("{v}", v=value).markdown()
    assert "@everyone" not in md and "@here" not in md
