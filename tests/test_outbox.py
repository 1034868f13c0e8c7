"""The outbox renders rows by kind when it delivers them, and loses none it cannot render."""

from datetime import timedelta
from typing import Any

from bot.domain import Markup
from tests.harness import Harness


async def test_a_row_is_worded_by_the_renderer_of_its_kind_at_delivery(harness: Harness):
    h = harness
    renderers = h.app.services.outbox.renderers
    renderers.register("test.hello", lambda data: Markup.format("Hello {name}!", name=data["who"]))
    await h.app.services.outbox_repo.add(
        key="hello:1", target="test:room", now=h.clock.now(), kind="test.hello",
        data={"who": "@everyone"},
    )  # fmt: skip
    [post] = await h.deliver()
    assert post.body.plain() == "Hello @everyone!"
    assert post.body.parts == ((True, "Hello "), (False, "@everyone"), (True, "!")), "a value"


async def test_a_row_no_renderer_can_word_waits_and_is_sent_once_one_can(harness: Harness):
    h = harness
    await h.app.services.outbox_repo.add(
        key="later:1", target="test:room", now=h.clock.now(), kind="test.later", data={"n": 1}
    )
    assert await h.deliver() == [], "nothing to word it with yet"
    h.app.services.outbox.renderers.register("test.later", _count)
    h.clock.advance(timedelta(minutes=5))  # past the retry's backoff
    [post] = await h.deliver()
    assert post.body.plain() == "count 1"
    assert await h.deliver() == []


def _count(data: dict[str, Any]) -> Markup:
    return Markup.format("count {n}", n=data["n"])
