"""Long chaos run: every chaos scenario in ``tests/chaos`` with many more rounds than CI's.

    python bench/chaos.py                  # CHAOS_ROUNDS=100 for every scenario
    python bench/chaos.py --rounds 20 -k claims
    python bench/chaos.py --seed 7

Each scenario kills, stops and cuts off real processes (bot processes, Synapse, PostgreSQL
clients, the Discord fake's gateway) and checks its invariants on the database afterwards.
This prints each scenario's own summary line (``chaos <area>: N rounds, M kills, 0
violations``), the total, and the time taken; the exit status is pytest's. Not part of the test
run.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(
    r"\bchaos (?P<area>[^:]+): (?P<rounds>\d+) rounds, (?P<kills>\d+) kills, "
    r"(?P<violations>\d+) violations"
)


def main() -> int:
    """Run the chaos suite with more rounds and print what it did."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=100, help="CHAOS_ROUNDS for every scenario (CI runs a few)"
    )
    parser.add_argument("--seed", type=int, default=None, help="CHAOS_SEED")
    parser.add_argument("-k", default=None, help="only scenarios matching this pytest -k")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHAOS_ROUNDS": str(args.rounds)}
    if args.seed is not None:
        env["CHAOS_SEED"] = str(args.seed)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "chaos",
        "tests/chaos",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    if args.k:
        command += ["-k", args.k]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    rounds = kills = violations = 0
    for line in done.stdout.splitlines():
        found = SUMMARY.search(line.strip())
        if found:
            print(line.strip()[found.start() :])
            rounds += int(found["rounds"])
            kills += int(found["kills"])
            violations += int(found["violations"])
    tail = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(
        f"total: {rounds} rounds, {kills} kills, {violations} violations in {took:.0f} s"
        f" - pytest: {tail[0]}"
    )
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-2000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
