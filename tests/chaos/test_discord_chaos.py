"""The real bot process against a Discord fake that cuts the gateway and fails REST calls at random.

While interactions arrive, the fake closes the gateway (the client resumes), asks it to
reconnect (op 7), or invalidates its session (it identifies again, and gets READY again), and
answers random REST calls with 429s (``retry_after``) and 5xx; some channel posts fail only
after they were made, so the answer is lost and the post is retried. Afterwards: every
interaction was answered exactly once, every announcement reached the channel once (the
nonce), and the bot still runs, logged no traceback, and stops cleanly.
"""

import asyncio
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.chaos.discord_child import BROKEN
from tests.discord_fake import FakeDiscord, Interaction, RandomFaults, User

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CHAOS_SEED", "1016"))
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "3"))
PER_ROUND = 6
COORDINATOR_ROLE = 4300
STEP = 150  # each count crosses at least one milestone of 100, 200, ...
ANSWER_WITHIN = 60.0
ROLES = ["organiser", "investigator", "programmer", "translator", "networker"]
CUTS = ("drop", "reconnect", "invalidate")
MILESTONE = re.compile(r"\*\*([\d,]+) signatures\*\* —")  # one line of an announcement
SAID = re.compile(r"([\d,]+) signatures")  # after "Announced:" in the answer to a set


@dataclass
class Report:
    """What the chaos did and what it found."""

    rounds: int = 0
    cuts: Counter[str] = field(default_factory=Counter)
    interactions: list[Interaction] = field(default_factory=list)
    sets: list[Interaction] = field(default_factory=list)  # each announces a milestone
    reached: int = 0  # milestones the answers to those said were announced
    announcements: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"chaos discord: {self.rounds} rounds, {sum(self.cuts.values())} kills, "
                f"{len(self.violations)} violations")  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord(token="chaos-token").start()
    try:
        yield server
    finally:
        await server.stop()


def _config(tmp_path: Path, fake: FakeDiscord, url: str) -> Path:
    path = tmp_path / "config.toml"
    totals = ", ".join(str(n * 100) for n in range(1, 200))
    path.write_text(
        f"""
[storage]
url = "{url}"

[discord]
enabled = true
guild_ids = [{fake.guild_id}]
coordinator_role_ids = [{COORDINATOR_ROLE}]
api_base = "{fake.api_base}"
gateway_url = "{fake.gateway_url}"

[announce]
targets = ["discord:{fake.channel_id}"]

[milestones]
totals = [{totals}]
""",
        encoding="utf-8",
    )
    return path


async def _start(config: Path, token: str, broken: str | None) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLUNTEER_BOT_")}
    env.update(VOLUNTEER_BOT_DISCORD__TOKEN=token, PYTHONPATH=str(ROOT))
    env.pop(BROKEN, None)
    if broken:
        env[BROKEN] = broken
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.chaos.discord_child", "run", "--config", str(config),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _cut(fake: FakeDiscord, how: str) -> None:
    """Cut the gateway one way; an invalidated session is waited for (its events are gone)."""
    await fake.wait_for(fake.live, seconds=ANSWER_WITHIN)  # the last cut has healed
    identified = len(fake.identifies)
    if how == "drop":
        await fake.drop_gateway(code=4000)
    elif how == "reconnect":
        await fake.request_reconnect()
    else:
        await fake.invalidate_session()
        await fake.wait_connected(after=identified, seconds=ANSWER_WITHIN)


async def _round(
    fake: FakeDiscord, rng: random.Random, report: Report, people: list[User], coco: User
) -> None:
    cut_at = {rng.randrange(PER_ROUND): rng.choice(CUTS) for _ in range(rng.randint(1, 2))}
    sent: list[Interaction] = []
    for step in range(PER_ROUND):
        if step in cut_at:
            await _cut(fake, cut_at[step])
            report.cuts[cut_at[step]] += 1
        await fake.wait_for(fake.live, seconds=ANSWER_WITHIN)
        roll = rng.random()
        if step == 0 or roll < 0.35:  # every round announces at least once
            report.announcements += 1
            count = report.announcements * STEP
            sent.append(await fake.slash(coco, "signatures set", count=count))
            report.sets.append(sent[-1])
        elif roll < 0.7:
            who = rng.choice(people)
            sent.append(await fake.slash(who, "volunteer join", role=rng.choice(ROLES)))
        else:
            sent.append(await fake.slash(rng.choice(people), "volunteer profile"))
        await asyncio.sleep(rng.uniform(0.0, 0.15))
    for inter in sent:
        try:
            await inter.answer(ANSWER_WITHIN)
        except TimeoutError:
            report.violations.append(f"interaction {inter.data['data']} never answered")
    report.interactions += sent
    report.rounds += 1


def _announcements(fake: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in fake.channel_messages(fake.channel_id) if m["type"] == 0]


def check(fake: FakeDiscord, report: Report) -> list[str]:
    """Every promise the bot broke, as the fake saw it."""
    found = list(report.violations)
    for inter in report.interactions:
        what = f"/{inter.data['data'].get('name')} ({inter.id})"
        if len(inter.callbacks) != 1:
            found.append(f"{what}: {len(inter.callbacks)} callbacks")
        if len(inter.answers) > 1:
            found.append(f"{what}: answered {len(inter.answers)} times")
    posts = _announcements(fake)
    for nonce, times in Counter(m.get("nonce") for m in posts if m.get("nonce")).items():
        if times > 1:
            found.append(f"nonce {nonce} posted {times} times")
    # A post is worded at delivery, so a second copy may differ in its progress line; the
    # milestones it names say which post it is.
    named = Counter(n for m in posts for n in MILESTONE.findall(m["content"]))
    for milestone, times in sorted(named.items()):
        if times > 1:
            found.append(f"milestone {milestone} posted {times} times")
    if len(named) != report.reached:
        found.append(f"{report.reached} milestones reached, {len(named)} announced")
    return found


def _unsent(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM outbox WHERE platform = 'discord' AND sent_at IS NULL"
            )).scalar_one())  # fmt: skip
    finally:
        engine.dispose()


async def run(fake: FakeDiscord, tmp_path: Path, url: str, rounds: int, seed: int,
              broken: str | None = None) -> Report:  # fmt: skip
    """Start the bot, run the rounds under random faults, stop it; the report says what broke."""
    rng = random.Random(seed)
    report = Report()
    # Made before the bot connects: the guild it is sent knows the coordinators' role.
    people = [fake.user(f"volunteer{n}") for n in range(4)]
    coco = fake.user("coco", roles=[COORDINATOR_ROLE])
    proc = await _start(_config(tmp_path, fake, url), fake.token, broken)
    try:
        await fake.wait_connected(seconds=ANSWER_WITHIN)
        await fake.wait_for(lambda: fake.commands, seconds=ANSWER_WITHIN)
        faults = RandomFaults(
            rng, re.compile(r"^/(interactions|webhooks|channels)/"), rate_429=0.2,
            rate_5xx=0.1, lost_answer=re.compile(rf"^/channels/{fake.channel_id}/messages$"),
            rate_lost=0.3,
        )  # fmt: skip
        fake.fail_at_random(faults)
        for _ in range(rounds):
            await _round(fake, rng, report, people, coco)
            if proc.returncode is not None:
                break
        fake.fail_at_random(None)
        # The outbox has delivered (or, on a lost answer, delivered again) every post.
        try:
            await fake.wait_for(lambda: _unsent(url) == 0, ANSWER_WITHIN)
        except TimeoutError:
            report.violations.append(f"{_unsent(url)} posts never delivered")
        report.reached = sum(
            len(SAID.findall(i.answers[0].content.partition("Announced:")[2].split("\n")[0]))
            for i in report.sets
            if i.answers and not i.answers[0].ephemeral
        )
        if proc.returncode is not None:
            report.violations.append(f"the bot ended during the chaos ({proc.returncode})")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), ANSWER_WITHIN)
    (tmp_path / "bot-stderr.log").write_bytes(err)  # what the bot logged, to look into
    if proc.returncode != 0:
        report.violations.append(f"the bot exited {proc.returncode}: {err.decode()[-2000:]}")
    elif b"Traceback" in err:
        report.violations.append(f"the bot logged a traceback (see {tmp_path}/bot-stderr.log)")
    report.violations = check(fake, report)
    print(
        f"injected: {dict(faults.injected)}; cuts: {dict(report.cuts)}; "
        f"{len(report.interactions)} interactions, {len(_announcements(fake))} announcements"
    )
    return report


async def test_gateway_cuts_and_rest_faults_leave_every_interaction_answered_once(
    fake, tmp_path, db_url
):
    report = await run(fake, tmp_path, db_url, ROUNDS, SEED)
    print("\n" + report.line())  # on a line of its own, for bench/chaos.py
    assert report.rounds == ROUNDS and sum(report.cuts.values()) >= ROUNDS
    assert report.sets, "some milestones were announced"
    assert report.violations == [], f"{report.line()} (CHAOS_SEED={SEED}): {report.violations}"


@pytest.mark.sqlite_only
async def test_the_harness_catches_a_post_retried_with_a_fresh_nonce(fake, tmp_path, db_url):
    # The first announcement's answer is lost after it was posted (a 503, which discord.py
    # does not retry): the outbox sends it again later, and only the nonce makes that safe.
    fake.fail("POST", rf"^/channels/{fake.channel_id}/messages$", status=503,
              after_handling=True)  # fmt: skip
    report = await run(fake, tmp_path, db_url, 1, SEED, broken="fresh-nonce")
    print(f"\nbroken bot caught: {report.line()}")  # not a summary line: no totals
    assert any("posted 2 times" in v for v in report.violations), (
        f"{report.line()} (CHAOS_SEED={SEED}): the harness missed a post sent twice"
    )
