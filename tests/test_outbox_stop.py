"""Scripted console runs that end while the outbox is mid-batch lose and repeat no post."""

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.domain import Markup
from storage import migrations
from storage.db import Database
from storage.models import OutboxMessage
from storage.outbox import OutboxRepo
from tests.cli import console

POSTS = 120


def _seed(url: str) -> None:
    db = Database(url)
    try:
        migrations.upgrade(db)
        repo = OutboxRepo(db)
        now = datetime.now(UTC)

        async def add() -> None:
            for n in range(POSTS):
                body = Markup.format("post {n}", n=n)
                await repo.add(key=f"stop:{n}", target="console", now=now, body=body)

        asyncio.run(add())
    finally:
        db.close()


def _rows(url: str) -> list[tuple[bool, bool]]:
    db = Database(url)
    try:
        rows = asyncio.run(db.read(lambda s: s.exec(select(OutboxMessage)).all()))
        return [(r.sent_at is not None, r.lease_until is not None) for r in rows]
    finally:
        db.close()


def _printed(out: str) -> list[str]:
    return [line.removeprefix("📣 ") for line in out.splitlines() if line.startswith("📣 ")]


@pytest.mark.parametrize("end", ["end of input", "SIGTERM"])
def test_two_console_runs_ending_mid_batch_print_every_due_post_exactly_once(
    tmp_path: Path, db_url: str, end: str
):
    _seed(db_url)
    first = console(db_url, "ann", cwd=tmp_path)
    assert first.stdin is not None and first.stdout is not None
    if end == "SIGTERM":
        line = first.stdout.readline()  # the first post is out: the dispatcher is mid-batch
        assert line.startswith("📣 "), line + first.communicate(timeout=60)[1]
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
        out = line + out
    else:
        out, err = first.communicate("", timeout=60)
    assert first.returncode == 0, err
    assert not any(leased for sent, leased in _rows(db_url) if not sent), (
        "a clean stop leaves nothing leased"
    )
    second = console(db_url, "ann", cwd=tmp_path)
    out2, err2 = second.communicate("", timeout=60)
    assert second.returncode == 0, err2
    counts = Counter(_printed(out) + _printed(out2))
    assert counts == Counter(f"post {n}" for n in range(POSTS)), (
        f"missing {sorted(set(f'post {n}' for n in range(POSTS)) - set(counts))[:5]}, "
        f"twice {[p for p, c in counts.items() if c > 1][:5]}"
    )
    assert _rows(db_url) == [(True, False)] * POSTS
