"""The permission matrix, generated from the command specs.

Every command that requires the coordinator right gets a sample invocation built from its
declared parameters, so a coordinator command added later is covered by the matrix tests
without editing them.
"""

from collections.abc import Iterable

from bot.commands import ArgSpec, CommandSpec

REFUSAL = "is for coordinators"

# A valid text value for each parameter kind (by the kind's name in usage lines).
_SAMPLES = {
    "number": "1",
    "text": "Sample",
    "language": "pl",
    "languages": "pl",
    "country": "DE",
    "time zone": "Europe/Brussels",
    "duration": "1h",
    "when": "in 1d",
    "yes/no": "yes",
    "file": "tasks.csv",  # text carries no file: a coordinator is told so, and it is audited
}


def coordinator_specs(specs: Iterable[CommandSpec]) -> list[CommandSpec]:
    """The commands only coordinators may run."""
    return [spec for spec in specs if "coordinator" in spec.requires]


def sample(arg: ArgSpec, user: str) -> str:
    """A value this parameter accepts; ``user`` for a person."""
    if arg.kind.wire == "user":
        return user
    if arg.choices:
        return arg.choices[-1]  # e.g. "other" among the task kinds: needs no role
    return _SAMPLES[arg.kind.name]


def sample_line(spec: CommandSpec, user: str) -> str:
    """A text command line giving every required parameter a valid value."""
    words = [spec.qualified_name]
    for arg in spec.args:
        if not arg.required:
            continue
        value = sample(arg, user)
        if " " in value:
            value = f'"{value}"'
        words.append(value if arg.positional else f"{arg.option} {value}")
    return " ".join(words)


def sample_options(spec: CommandSpec, user: object) -> dict[str, object]:
    """Slash-command option values for every required parameter (Discord)."""
    values: dict[str, object] = {}
    for arg in spec.args:
        if arg.required:
            if arg.kind.wire == "user":
                values[arg.name] = user
            elif arg.kind.wire == "attachment":
                from tests.discord_fake import Upload

                values[arg.name] = Upload("tasks.csv", b"kind,title\nother,Sample\n")
            elif arg.kind.wire == "integer":
                values[arg.name] = int(sample(arg, ""))
            else:
                values[arg.name] = sample(arg, "")
    return values
