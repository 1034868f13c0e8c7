"""The outbox renders rows by kind when it delivers them, and loses none it cannot render."""

import asyncio
from datetime import timedelta
from typing import Any

from bot.domain import Markup
from bot.outbox import Delivery, Outbox
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


async def _rows(h: Harness) -> list[tuple[str, bool, bool, int]]:
    """Every outbox row as (key, sent, leased, attempts), by key."""
    from sqlmodel import select

    from storage.models import OutboxMessage

    def tx(session: Any) -> list[tuple[str, bool, bool, int]]:
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.key)).all()
        return [(r.key, r.sent_at is not None, r.lease_until is not None, r.attempts)
                for r in rows]  # fmt: skip

    return await h.app.db.read(tx)


async def test_a_stop_mid_batch_finishes_the_post_in_flight_and_gives_back_the_rest(
    harness: Harness,
):
    h = harness
    outbox = h.app.services.outbox
    for n in range(6):
        await h.app.services.outbox_repo.add(
            key=f"post:{n}", target="slow:room", now=h.clock.now(), body=Markup.format("{n}", n=n)
        )
    started, go = asyncio.Event(), asyncio.Event()
    taken: list[str] = []

    async def slow(delivery: Delivery) -> None:
        if len(taken) == 1:  # the second post is in flight when the stop comes
            started.set()
            await go.wait()
        taken.append(delivery.key)

    outbox.register("slow", slow)
    dispatch = asyncio.create_task(outbox.run_once())
    await started.wait()
    stopping = asyncio.create_task(outbox.stop())
    await asyncio.sleep(0)
    assert not stopping.done(), "the stop waits for the post in flight"
    go.set()
    await stopping
    assert await dispatch == 2
    assert taken == ["post:0", "post:1"]
    rows = await _rows(h)
    assert [(key, sent) for key, sent, _, _ in rows] == [(f"post:{n}", n < 2) for n in range(6)], (
        "each post is marked sent as it is delivered"
    )
    assert not any(leased for _, _, leased, _ in rows), "nothing is left leased after a stop"
    assert [attempts for *_, attempts in rows[2:]] == [0] * 4, "untried posts were not tried"

    # The next process sends the rest at once, without waiting for a lease to expire.
    again = Outbox(h.app.services.outbox_repo, h.clock)
    again.register("slow", slow)
    assert await again.run_once() == 4
    assert taken == [f"post:{n}" for n in range(6)]


async def test_a_post_whose_lease_is_ending_is_given_back_rather_than_sent_late(
    harness: Harness,
):
    h = harness
    outbox = h.app.services.outbox
    for n in range(3):
        await h.app.services.outbox_repo.add(
            key=f"late:{n}", target="slow:room", now=h.clock.now(), body=Markup.format("{n}", n=n)
        )
    taken: list[str] = []

    async def slow(delivery: Delivery) -> None:
        taken.append(delivery.key)
        h.clock.advance(outbox.lease)  # took the whole lease: another process may have them

    outbox.register("slow", slow)
    assert await outbox.run_once() == 3, "each later post was leased again, not sent on old time"
    assert taken == ["late:0", "late:1", "late:2"]
    assert all(sent and not leased for _, sent, leased, _ in await _rows(h))


async def test_a_failed_delivery_keeps_the_platforms_error_code_and_words(
    harness: Harness, caplog
):
    from sqlmodel import select

    from bot.adapters.matrix_adapter import MatrixSendError
    from storage.models import OutboxMessage

    h = harness
    await h.app.services.outbox_repo.add(
        key="refused:1", target="refusing:room", now=h.clock.now(), body=Markup.format("hi")
    )

    async def refuse(delivery: Delivery) -> None:
        raise MatrixSendError("M_FORBIDDEN", detail="User @bot:x not in room !r:x")

    h.app.services.outbox.register("refusing", refuse)
    with caplog.at_level("WARNING", logger="bot.outbox"):
        assert await h.app.services.outbox.run_once() == 0
    [error] = await h.app.db.read(lambda s: s.exec(select(OutboxMessage.last_error)).all())
    assert error == "MatrixSendError (M_FORBIDDEN: User @bot:x not in room !r:x)"
    assert "M_FORBIDDEN: User @bot:x not in room" in caplog.text
