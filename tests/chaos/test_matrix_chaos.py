"""A real bot process against a real Synapse that is stopped, killed and restarted under it.

Each round a coordinator sends commands; as soon as the bot has run one, Synapse is either
paused (SIGSTOP, then SIGCONT) or killed (SIGKILL, then restarted on the same port and data),
so the answer meets a homeserver that is gone. One round revokes the bot's access token (it
logs in again with its password). Afterwards, checked on the database and on what the person
received: every command answered exactly once, each command's effect (a task) exactly once,
every kept answer marked sent, and the bot process alive throughout.
"""

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.matrix_kit import BotProcess, Person, in_reply_to, matrix_section, toml
from tests.synapse import Synapse, own_synapse

__all__ = ["own_synapse"]

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.e2e]

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "4"))
SEED = int(os.environ.get("CHAOS_SEED", "20261203"))
CHILD = Path(__file__).with_name("matrix_child.py")
ANSWER_BOUND = 90.0  # after the last fault, every answer must have come within this
# The broken bot never answers some commands: waiting less for them keeps its test short.
BROKEN_ANSWER_BOUND = 20.0


def engine_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


@dataclass
class Run:
    """What a chaos run did and what it found."""

    rounds: int = 0
    kills: int = 0
    stops: int = 0
    revoked: int = 0
    commands: dict[str, str] = field(default_factory=dict)  # event id -> task title
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"chaos matrix: {self.rounds} rounds, {self.kills + self.stops} kills "
            f"({self.kills} SIGKILL, {self.stops} SIGSTOP, {self.revoked} token revoked), "
            f"{len(self.violations)} violations (CHAOS_SEED={SEED})"
        )


def task_counts(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(engine_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT title, count(*) FROM task GROUP BY title"))
            return {str(title): int(n) for title, n in rows}
    finally:
        engine.dispose()


def unsent_answers(db_url: str) -> list[str]:
    """Claimed events whose kept answer was never marked sent."""
    engine = sa.create_engine(engine_url(db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT key FROM claimed_event WHERE answered_at IS NULL"))
            return [str(key) for (key,) in rows]
    finally:
        engine.dispose()


async def chaos(
    tmp_path: Path,
    db_url: str,
    server: Synapse,
    broken: str | None,
    *,
    kill_only: bool = False,
    answer_bound: float = ANSWER_BOUND,
) -> Run:
    """Run the rounds against a bot (``broken``: a deliberately broken one); return findings."""
    rng = random.Random(SEED)
    run = Run()
    bot = server.register("bot")
    alice = await Person(server, server.register("alice")).start()
    room = await alice.create_room(invite=[bot.user_id])
    section = matrix_section(
        server, bot, rooms=[room], store_path=str(tmp_path / "store"),
        coordinators=[alice.user_id],
    )  # fmt: skip
    del section["access_token"]  # the password logs in, and again after a revocation
    config = toml({"storage": {"url": engine_url(db_url)}, "matrix": section})
    env = {"VOLUNTEER_BOT_MATRIX__PASSWORD": bot.password}
    if broken:
        env["CHAOS_BROKEN"] = broken
    process = BotProcess(tmp_path, config, env, program=[str(CHILD)])
    credentials = tmp_path / "store" / "credentials.json"
    revoke_in = rng.randrange(ROUNDS) if ROUNDS else -1
    try:
        await process.start()
        for number in range(ROUNDS):
            run.rounds += 1
            if number == revoke_in:
                token = json.loads(credentials.read_text())["access_token"]
                server.request("POST", "/_matrix/client/v3/logout", {}, token=token)
                run.revoked += 1
            ran = process.count("command task post")
            burst = rng.randint(1, 3)
            for n in range(burst):
                title = f"Chaos {number}.{n}"
                run.commands[await alice.send(room, f"!task post other {title}")] = title
            # The first command has run: its answer is about to be sent.
            await process.logged("command task post", after=ran, within=60)
            await asyncio.sleep(rng.uniform(0, 0.05))
            down_for = rng.uniform(0.2, 2.0)
            if not kill_only and rng.random() < 0.5:
                server.pause()
                run.stops += 1
                await asyncio.sleep(down_for)
                server.resume()
            else:
                server.kill()
                run.kills += 1
                await asyncio.sleep(down_for)
                await asyncio.to_thread(server.restart)
            if process.process is None or process.process.poll() is not None:
                run.violations.append(f"round {number}: the bot process ended")
                break
        # Everything is up again: each command gets its answer, or it is a violation.
        deadline = time.monotonic() + answer_bound
        for event_id, title in run.commands.items():
            left = deadline - time.monotonic()
            try:
                await alice.wait_for(
                    lambda e, c=event_id: e.get("sender") == bot.user_id and in_reply_to(e) == c,
                    within=max(left, 1.0),
                )
            except AssertionError:
                run.violations.append(f"{title!r} was never answered")
        if not run.violations:
            # A last command answered after all the others: anything still coming came.
            last = await alice.send(room, "!task list")
            await alice.wait_for(lambda e: in_reply_to(e) == last, within=60)
        alive = process.process is not None and process.process.poll() is None
        if not alive:
            run.violations.append("the bot process ended: " + process.output[-1500:])
    finally:
        code = process.stop()
        await alice.close()
    if code != 0:
        run.violations.append(f"the bot exited with status {code}")
    answers = [in_reply_to(e) for e in alice.events if e.get("sender") == bot.user_id]
    for event_id, title in run.commands.items():
        count = answers.count(event_id)
        if count > 1:
            run.violations.append(f"{title!r} was answered {count} times")
    tasks = task_counts(db_url)
    for title in run.commands.values():
        if tasks.get(title, 0) != 1:
            run.violations.append(f"{title!r} was carried out {tasks.get(title, 0)} times")
    for key in unsent_answers(db_url):
        run.violations.append(f"the kept answer to {key} was never marked sent")
    if "Traceback" in process.output:
        run.violations.append("a traceback in the log")
    print(run.line())
    return run


async def test_synapse_stopped_and_killed_mid_answer_every_command_is_answered_and_done_once(
    tmp_path, db_url, own_synapse
):
    run = await chaos(tmp_path, db_url, own_synapse, broken=None)
    assert not run.violations, run.line() + "\n" + "\n".join(run.violations)


@pytest.mark.sqlite_only
async def test_the_harness_catches_a_bot_that_marks_answers_sent_before_sending(
    tmp_path, db_url, own_synapse
):
    run = await chaos(tmp_path, db_url, own_synapse, broken="answered-before-sent",
                      kill_only=True, answer_bound=BROKEN_ANSWER_BOUND)  # fmt: skip
    assert any("never answered" in v for v in run.violations), run.line()
