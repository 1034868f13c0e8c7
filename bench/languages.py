"""Languages benchmark: what answering in a reader's language costs, against English.

    python bench/languages.py [--commands 400] [--languages pl,de,fr,ga]

The bot runs in this process on a fresh SQLite file with a queue of tasks and a registered
volunteer. The same commands (``task list``, ``task show 1``, ``volunteer profile``,
``help task claim``, an unknown command) go through the core as an adapter sends them, first
for a reader who chose nothing (English: the floor, measured in the same run), then for one
reader per language. Each command's answer is rendered to the text the platform sends.

Printed: per language, the commands' mean and p99 in ms and the mean as a share of the English
floor; and the time to read each language's catalog the first time it is needed.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean, quantiles

sys.path.pop(0)  # run as a script, bench/ would come first and its queue.py hide the stdlib's
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import App
from bot.config import Settings
from bot.context import Actor, Ctx, Place
from bot.domain import UserRef
from bot.domain.i18n import EU_LANGUAGES, translation

COMMANDS = ("task list", "task show 1", "volunteer profile", "help task claim", "tsak lsit")


async def timed(app: App, user: UserRef, line: str) -> float:
    ctx = Ctx(Actor(user), Place("matrix:!bench:example.org"), app.clock.now())
    started = time.perf_counter()
    reply = await app.core.handle_text(ctx, line, prefixes=("",))
    assert reply is not None
    reply.body.html()
    reply.body.plain()
    return (time.perf_counter() - started) * 1000


async def sample(app: App, user: UserRef, line: str) -> str:
    """One answer's first line, to show the commands answer (and in which language)."""
    ctx = Ctx(Actor(user), Place("matrix:!bench:example.org"), app.clock.now())
    reply = await app.core.handle_text(ctx, line, prefixes=("",))
    assert reply is not None
    return reply.body.plain().splitlines()[0][:70]


async def main(commands: int, languages: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(storage={"url": f"sqlite:///{tmp}/bench.db"},
                            console={"coordinators": ["coco"]})  # fmt: skip
        app = App(settings)
        coco = UserRef("console", "coco", "Coco")
        ctx = Ctx(Actor(coco, True), Place("console"), app.clock.now())
        await app.core.handle_text(ctx, "volunteer join organiser", prefixes=("",))
        for n in range(40):
            await app.core.handle_text(
                ctx, f"task post translation Leaflet {n} --language pl", prefixes=("",)
            )
        readers = {"en": UserRef("matrix", "@en:example.org", "En")}
        loads: dict[str, float] = {}
        for code in languages:
            person = UserRef("matrix", f"@{code}:example.org", code)
            started = time.perf_counter()
            translation(code)
            loads[code] = (time.perf_counter() - started) * 1000
            choose = Ctx(Actor(person), Place("console"), app.clock.now())
            await app.core.handle_text(choose, f"volunteer language {code}", prefixes=("",))
            readers[code] = person
        for person in readers.values():
            join = Ctx(Actor(person), Place("console"), app.clock.now())
            await app.core.handle_text(join, "volunteer join translator --languages pl",
                                       prefixes=("",))  # fmt: skip
        for code, person in readers.items():
            print(
                f"{code}: "
                + " | ".join([await sample(app, person, line) for line in COMMANDS[:2]])
            )
            for line in COMMANDS:  # warm: the first use of each answer builds its statements
                await timed(app, person, line)
        times: dict[str, list[float]] = {code: [] for code in readers}
        for i in range(commands):
            line = COMMANDS[i % len(COMMANDS)]
            for code, person in readers.items():  # interleaved: the same neighbours for all
                times[code].append(await timed(app, person, line))
        floor = mean(times["en"])
        print(f"{commands} commands per reader, {len(COMMANDS)} kinds, rendered as Matrix sends")
        print(f"{'reader':8} {'mean ms':>8} {'p99 ms':>8} {'of English':>11} {'catalog ms':>11}")
        for code, values in times.items():
            p99 = quantiles(values, n=100)[98]
            load = f"{loads[code]:.1f}" if code in loads else "-"
            print(
                f"{code:8} {mean(values):8.2f} {p99:8.2f} {mean(values) / floor:10.0%} {load:>11}"
            )
        await app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=400)
    parser.add_argument("--languages", default="pl,de,fr,ga")
    args = parser.parse_args()
    chosen = [c for c in args.languages.split(",") if c in EU_LANGUAGES and c != "en"]
    asyncio.run(main(args.commands, chosen))
