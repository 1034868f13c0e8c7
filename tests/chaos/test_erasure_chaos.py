"""Erasure under fire: ``privacy forget`` in one OS process while the same person claims and
gives back tasks from two others, the eraser killed with SIGKILL at random points.

Each round a fresh person joins, a coordinator posts tasks and the person claims one. Then,
together: two processes hammer ``task claim`` / ``task unclaim`` / ``task next`` as that
person (Claim buttons and ✋ reactions) until it is over, and a third runs ``privacy forget
--confirm``. Every second round the eraser is killed after a random pause (0-300 ms, about as
long as an erasure takes on a busy machine) and a new process takes over, by starting
(which finishes erasures left half done) or by the person running forget again. Afterwards,
checked on the database (and on SQLite in the file's bytes): the person's id is in no row of
any table, no erasure is left pending, and no task is claimed by nobody.

``CHAOS_ROUNDS`` (default 4) rounds per database, ``CHAOS_SEED`` seeds the pauses and kills.
"""

import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from storage import migrations
from storage.db import Database
from tests.chaos.erasure_child import BROKEN

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "4"))
SEED = int(os.environ.get("CHAOS_SEED", "1616"))
TIMEOUT = 90.0
KILL_EVERY = 2  # rounds: every second one kills the eraser (a spare has a round to start)
COORDINATOR = "coco"


class Child:
    """One bot process answering JSON lines (see tests/chaos/erasure_child.py)."""

    def __init__(self, env: dict[str, str], url: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.erasure_child"],
            cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._waiting = ["ready"]
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()
        if url is not None:
            self.open(url, wait=False)

    def ready(self) -> "Child":
        """Wait until it has started and opened its database (seconds, on a busy machine)."""
        while self._waiting:
            expected = self._waiting.pop(0)
            answer = self.answer()
            assert answer["op"] == expected, answer
        return self

    def open(self, url: str, *, wait: bool = True) -> None:
        """Serve ``url`` from now on (the answer is awaited now, or by :meth:`ready`)."""
        self._send(op="open", url=url)
        self._waiting.append("opened")
        if wait:
            self.ready()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)

    def _send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def send(self, **command: Any) -> None:
        self.ready()
        self._send(**command)

    def answer(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(
                f"no answer in {TIMEOUT} s: {''.join(self.errors)[-2000:]}"
            ) from None
        if line is None:
            raise AssertionError(f"the process ended: {''.join(self.errors)[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.answer()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self._close()

    def quit(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self._send(op="quit")
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=TIMEOUT)
        self._close()

    def _close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@dataclass
class Pool:
    """The processes: an eraser, a spare started ahead to succeed it, two clickers."""

    env: dict[str, str]
    eraser: Child
    spare: Child
    clickers: list[Child]

    @classmethod
    def start(cls, env: dict[str, str]) -> "Pool":
        children = [Child(env) for _ in range(4)]
        for child in children:
            child.ready()
        return cls(env, children[0], children[1], children[2:])

    def open(self, url: str) -> None:
        for child in self.everyone:
            child.open(url, wait=False)
        for child in self.everyone:
            child.ready()

    def close(self) -> None:
        """Let go of the database (after any open still under way), so it can be dropped."""
        for child in self.everyone:
            assert child.ask(op="close")["op"] == "closed"

    def take_over(self, url: str) -> None:
        """The spare becomes the eraser (the old one was killed); a new spare starts."""
        self.eraser, self.spare = self.spare.ready(), Child(self.env, url)

    @property
    def everyone(self) -> list[Child]:
        return [self.eraser, self.spare, *self.clickers]

    def stop(self) -> None:
        for child in self.everyone:
            child.quit()

    def break_erasure(self) -> None:
        """Every process, and every one started from now on, erases the old, raceable way."""
        self.env = environment(broken=True)
        for child in self.everyone:
            assert child.ask(op="break")["op"] == "broken"


@dataclass
class Chaos:
    """One run on one database, and what it found."""

    url: str
    pool: Pool
    rng: random.Random
    db: Database
    rounds: int = 0
    kills: int = 0
    half_done: int = 0  # kills that left an erasure begun and unfinished
    violations: list[str] = field(default_factory=list)

    def play(self, n: int) -> None:
        """One round with a fresh person."""
        pool = self.pool
        person = f"zqe{n}r{self.rng.randrange(10**6)}"
        posted = pool.eraser.ask(op="run", user=COORDINATOR, coordinator=True, lines=[
            f"task post translation Leaflet {n} {k}" for k in range(3)])["replies"]  # fmt: skip
        ids = [int(text.split("#", 1)[1].split()[0].rstrip(":.")) for text in posted]
        setup = pool.eraser.ask(op="run", user=person, lines=[
            "volunteer join translator", f"task claim {ids[0]}"])["replies"]  # fmt: skip
        assert "registered" in setup[0] and f"#{ids[0]}" in setup[1], setup
        lines = [f"task claim {ids[1]}", f"task unclaim {ids[0]}", f"task claim {ids[2]}",
                 "task next", f"task unclaim {ids[1]}", f"task claim {ids[0]}"]  # fmt: skip
        for k, clicker in enumerate(pool.clickers):
            assert clicker.ask(op="hammer", user=person, lines=lines[k:] + lines[:k])
        pool.eraser.send(op="forget", user=person)
        if n % KILL_EVERY == KILL_EVERY - 1:
            self._kill_and_take_over(person)
        else:
            done = pool.eraser.answer()
            if not done["text"].startswith("Done."):
                self.violations.append(f"round {n}: forget answered {done['text']!r}")
        for clicker in pool.clickers:
            clicker.send(op="stop")
        for clicker in pool.clickers:
            assert clicker.answer()["sent"] > 0
        self.rounds += 1
        self.check(n, person)

    def _kill_and_take_over(self, person: str) -> None:
        """SIGKILL the eraser mid-way; a new process finishes: at its start, or on a retry."""
        if self.rng.random() < 0.5:
            threading.Event().wait(self.rng.uniform(0.0, 0.3))  # anywhere in the command
        else:  # once the erasure has begun, somewhere in its steps
            self._wait_for_marker()
            threading.Event().wait(self.rng.uniform(0.0, 0.03))
        self.pool.eraser.kill()
        self.kills += 1
        self.pool.take_over(self.url)
        pending = self._pending()
        self.half_done += pending
        if self.rng.random() < 0.5 and pending:
            self.pool.eraser.ask(op="resume")  # a started erasure is finished by any start
            return
        # Killed before its marker was written it never began: the person, told nothing,
        # runs forget again.
        done = self.pool.eraser.ask(op="forget", user=person)
        if not done["text"].startswith(("Done.", "I stored nothing")):  # it had finished
            self.violations.append(f"a retried forget answered {done['text']!r}")

    def _wait_for_marker(self) -> None:
        """Until the erasure's marker is committed (or, having finished, it is gone again)."""
        waited = threading.Event()
        for _ in range(1000):
            if self._pending() or not self.pool.eraser.lines.empty():
                return
            waited.wait(0.002)

    def _pending(self) -> bool:
        with self.db.engine.connect() as conn:
            return bool(conn.exec_driver_sql("SELECT COUNT(*) FROM erasure_pending").scalar())

    def check(self, n: int, person: str) -> None:
        """The invariants, on the database as the processes left it."""
        with self.db.engine.connect() as conn:
            inspector = sa.inspect(conn)
            for table in inspector.get_table_names():
                columns = [c["name"] for c in inspector.get_columns(table)]
                listed = ", ".join(f'"{c}"' for c in columns)
                for row in conn.exec_driver_sql(f'SELECT {listed} FROM "{table}"'):
                    for column, value in zip(columns, row, strict=True):
                        if isinstance(value, str | bytes) and person in str(value):
                            self.violations.append(f"round {n}: {table}.{column} names them")
            pending = conn.exec_driver_sql("SELECT COUNT(*) FROM erasure_pending").scalar()
            if pending:
                self.violations.append(f"round {n}: {pending} erasure(s) left pending")
            orphans = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM task WHERE status = 'claimed' AND (claimed_by IS NULL "
                "OR claimed_by NOT IN (SELECT id FROM volunteer))"
            ).scalar()
            if orphans:
                self.violations.append(f"round {n}: {orphans} task(s) claimed by nobody")
        path = self.db.path
        if path is not None:
            for file in (path, path.with_name(path.name + "-wal")):
                if file.exists() and person.encode() in file.read_bytes():
                    self.violations.append(f"round {n}: {file.name} holds their id")


def environment(*, broken: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(BROKEN, None)
    return env | ({BROKEN: "1"} if broken else {})


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """One set of processes for both databases: starting Python is the slow part."""
    started = Pool.start(environment(broken=False))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def migrated(db_url: str) -> str:
    db = Database(db_url)
    try:
        migrations.upgrade(db)
    finally:
        db.close()
    return db_url


def run_chaos(url: str, pool: Pool, rounds: int, *, stop_at_violation: bool) -> Chaos:
    db = Database(url)
    chaos = Chaos(url, pool, random.Random(SEED), db)
    try:
        pool.open(url)
        for n in range(rounds):
            chaos.play(n)
            if stop_at_violation and chaos.violations:
                break
    finally:
        pool.close()
        db.close()
    return chaos


def test_erasure_is_complete_whatever_the_person_does_meanwhile(migrated: str, pool: Pool):
    chaos = run_chaos(migrated, pool, ROUNDS, stop_at_violation=False)
    summary = (f"chaos erasure: {chaos.rounds} rounds, {chaos.kills} kills, "
               f"{len(chaos.violations)} violations")  # fmt: skip
    print(summary)
    print(f"  ({chaos.half_done} of the kills left an erasure half done)")
    assert not chaos.violations, f"{summary} (CHAOS_SEED={SEED}): " + "; ".join(chaos.violations)
    assert chaos.rounds == ROUNDS


@pytest.mark.sqlite_only
def test_the_scenario_catches_the_erasure_that_could_be_raced(migrated: str, pool: Pool):
    """With the old erasure (no marker, nothing refused) the same rounds find violations.

    It runs last in this file: it breaks the shared processes for good.
    """
    pool.break_erasure()
    chaos = run_chaos(migrated, pool, max(ROUNDS, 10), stop_at_violation=True)
    # Not in the summary-line form: bench/chaos.py must not count these as the suite's.
    print(
        f"chaos erasure, the old erasure: caught after {chaos.rounds} round(s): "
        + "; ".join(sorted(set(chaos.violations)))
    )
    assert chaos.violations, f"no violation in {chaos.rounds} rounds (CHAOS_SEED={SEED})"
