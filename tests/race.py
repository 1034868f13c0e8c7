"""Claim races as sessions and steps, each session an OS process (see tests/race_child.py).

Written like PostgreSQL's isolation specs: a race names its sessions and the step each takes,
and the harness fixes how they interleave. Steps start together; whenever every step still
running waits at a pause point, all of them go on, so an implementation that reads in one
transaction and writes in the next has every read done before any write, every time. On
PostgreSQL a gate (a lock the harness holds on the volunteer table) keeps every session
waiting until all of them are inside their claim, then lets them go at once.

After a race the harness checks what the sessions were told against what the database holds
and reports every violation of the queue's promises.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0


@dataclass
class Session:
    """One process with its own connections, answering one step at a time."""

    name: str
    proc: subprocess.Popen[str]
    events: "queue.Queue[tuple[str, dict[str, Any]]]"
    reader: threading.Thread | None = None

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()


@dataclass
class Race:
    """Sessions on one database, and what each was told."""

    url: str
    sessions: dict[str, Session] = field(default_factory=dict)
    told: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    events: "queue.Queue[tuple[str, dict[str, Any]]]" = field(default_factory=queue.Queue)

    def start(self, names: list[str]) -> None:
        """Start a session process for each new name, and wait until all of them are ready."""
        for name in names:
            assert name not in self.sessions, f"session {name} exists already"
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.race_child", self.url], cwd=ROOT, env=self.env,
                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            reader = threading.Thread(target=_read, args=(name, proc, self.events), daemon=True)
            self.sessions[name] = Session(name, proc, self.events, reader)
            reader.start()
        started = [self._next() for _ in names]
        assert {name for name, event in started if event["op"] == "ready"} == set(names)

    def together(self, steps: Mapping[str, dict[str, Any]], *, gate: bool = True) -> None:
        """Run one step in each named session at once; records what each was told.

        ``gate`` (PostgreSQL) holds the sessions back until every one is waiting inside its
        claim; leave it off for an implementation that stops at pause points instead.
        """
        with self._gate(len(steps)) if gate else _nothing():
            for name, step in steps.items():
                self.sessions[name].send(**step)
        running = set(steps)
        paused: set[str] = set()
        while running:
            name, event = self._next()
            if event["op"] == "paused":
                paused.add(name)
            elif event["op"] == "done":
                running.discard(name)
                paused.discard(name)
                self.told[name] = event
            else:
                raise AssertionError(f"{name}: unexpected {event}")
            if running and paused == running:
                # Everyone still running stopped between two of its steps: go on.
                for waiting in sorted(paused):
                    self.sessions[waiting].send(op="resume")
                paused.clear()

    def _next(self) -> tuple[str, dict[str, Any]]:
        try:
            return self.events.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("a race session stopped answering") from None

    @contextmanager
    def _gate(self, sessions: int) -> Iterator[None]:
        """On PostgreSQL: hold every claimer back until all are waiting, then let them go."""
        if not self.url.startswith("postgresql"):
            yield
            return
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn, conn.begin():
                # Plain reads pass; locking a volunteer's row (what a claim does first) waits.
                conn.exec_driver_sql("LOCK TABLE volunteer IN EXCLUSIVE MODE")
                yield
                waiting = sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                deadline = time.monotonic() + TIMEOUT
                with engine.connect() as watch:
                    while watch.execute(waiting).scalar_one() < sessions:
                        assert time.monotonic() < deadline, "the sessions never all waited"
                        time.sleep(0.01)
                        watch.rollback()
        finally:
            engine.dispose()

    def close(self) -> None:
        """Ask every session to quit (kill those that do not) and close their pipes."""
        for session in self.sessions.values():
            if session.proc.poll() is None:
                session.send(op="quit")
        for session in self.sessions.values():
            try:
                session.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                session.proc.kill()
                session.proc.wait()
            if session.reader is not None:
                session.reader.join(timeout=30)
            for pipe in (session.proc.stdin, session.proc.stdout):
                if pipe is not None:
                    pipe.close()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def race(url: str, names: list[str], *, implementation: str | None = None) -> Iterator[Race]:
    """Start one session per name on ``url``; ``implementation`` picks the child's claim."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RACE_CLAIM", None)
    if implementation:
        env["RACE_CLAIM"] = implementation
    result = Race(url, env=env)
    try:
        result.start(names)
        yield result
    finally:
        result.close()


def _read(name: str, proc: subprocess.Popen[str], events: "queue.Queue[Any]") -> None:
    assert proc.stdout is not None
    for text in proc.stdout:
        events.put((name, json.loads(text)))


# --- what must hold afterwards ------------------------------------------------------------


def claims_held(url: str) -> dict[int, tuple[str | None, int]]:
    """Every task: who the database says holds it, and how many claim events it has."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT t.id, v.display_name, (SELECT count(*) FROM task_event e "
                "WHERE e.task_id = t.id AND e.action = 'claimed') FROM task t "
                "LEFT JOIN volunteer v ON v.id = t.claimed_by AND t.status = 'claimed'"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    return {int(tid): (holder, int(events)) for tid, holder, events in rows}


def violations(url: str, told: Mapping[str, dict[str, Any]], *, max_open: int) -> list[str]:
    """The queue's promises a race broke: one holder per task, losers told who, the limit."""
    found: list[str] = []
    held = claims_held(url)
    winners: dict[int, list[str]] = {}
    for name, answer in sorted(told.items()):
        if answer["outcome"] == "ok":
            winners.setdefault(answer["task"], []).append(name)
    for task_id, names in sorted(winners.items()):
        if len(names) > 1:
            found.append(f"task {task_id}: {len(names)} sessions were told it is theirs")
    for task_id, (holder, events) in sorted(held.items()):
        if events > 1:
            found.append(f"task {task_id}: claimed {events} times in its history")
        names = winners.get(task_id, [])
        if holder is not None and names and holder != told[names[-1]]["holder"]:
            found.append(f"task {task_id}: held by {holder}, not by whom the winner was told")
    for name, answer in sorted(told.items()):
        if answer["outcome"] == "taken":
            actual = held.get(answer["task"], (None, 0))[0]
            if answer["holder"] != actual:
                found.append(f"{name} was told {answer['holder']} holds task {answer['task']}, "
                             f"but {actual} does")  # fmt: skip
    per_holder = Counter(holder for holder, _ in held.values() if holder is not None)
    for holder, count in sorted(per_holder.items()):
        if count > max_open:
            found.append(f"{holder} holds {count} tasks, over the limit of {max_open}")
    return found
