"""Text commands, shared by Matrix and the console: `!task post translation Leaflet --language pl`.

Quoting is shell-like, but forgiving where people type prose: a quote only opens a quoted
token at the start of a word, so ``don't`` needs no escaping. Smart quotes count as quotes.
"""

from dataclasses import dataclass

from bot.commands import CommandSpec
from bot.domain import BadArgument, Markup
from bot.domain.i18n import _, described
from bot.domain.markup import cmd, usage
from bot.domain.text import preview

_SMART = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"',
                        "‘": "'", "’": "'", "‚": "'"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    """A word of the command line and where it stood, so free text keeps its spacing."""

    text: str
    start: int
    end: int
    quoted: bool = False


def normalise(line: str) -> str:
    """Turn typographic quotes into plain ones (phones insert them)."""
    return line.translate(_SMART)


def tokenize(line: str) -> list[Token]:
    """Split a line into tokens; raises BadArgument on an unclosed quote."""
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start = i
        if line[i] in "\"'":
            quote = line[i]
            i += 1
            chars: list[str] = []
            while i < n and line[i] != quote:
                if line[i] == "\\" and quote == '"' and i + 1 < n and line[i + 1] in '"\\':
                    i += 1
                chars.append(line[i])
                i += 1
            if i >= n:
                raise BadArgument(
                    # Translators: {fragment} is the start of the quoted text; {q} the quote mark.
                    _(
                        "The quote that opens `{fragment}` is never closed. Close it with `{q}`, "
                        "or leave the quotes out."
                    ),
                    fragment=preview(line[start : start + 21], 20),
                    q=quote,
                )
            i += 1
            tokens.append(Token("".join(chars), start, i, quoted=True))
            continue
        while i < n and not line[i].isspace():
            i += 1
        tokens.append(Token(line[start:i], start, i))
    return tokens


def bind(spec: CommandSpec, line: str, tokens: list[Token]) -> dict[str, str | bool]:
    """Assign the argument tokens of one command to its parameters, still as text.

    Raises BadArgument for unknown options, missing values, missing or extra arguments.
    """
    options = {arg.option: arg for arg in spec.args if not arg.positional}
    positional_specs = [arg for arg in spec.args if arg.positional]
    values: dict[str, str | bool] = {}
    loose: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.quoted and tok.text.startswith("--") and len(tok.text) > 2:
            name, eq, inline = tok.text.partition("=")
            arg = options.get(name.lower().replace("_", "-"))
            if arg is None:
                raise _unknown_option(spec, preview(name))
            if arg.name in values:
                raise BadArgument(_("`{option}` is given twice."), option=preview(name))
            if eq:
                values[arg.name] = inline
            elif arg.kind.wire == "boolean":
                nxt = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
                if nxt in ("yes", "no", "true", "false", "on", "off"):
                    values[arg.name] = nxt
                    i += 1
                else:
                    values[arg.name] = True
            else:
                if i + 1 >= len(tokens):
                    raise BadArgument(
                        _("`{option}` needs a value: {usage}."),
                        option=preview(name),
                        usage=usage(spec.qualified_name),
                    )
                values[arg.name] = tokens[i + 1].text
                i += 1
        else:
            loose.append(tok)
        i += 1
    for arg in positional_specs:
        if not loose:
            break
        if arg.rest:
            values[arg.name] = _free_text(line, loose)
            loose = []
        else:
            values[arg.name] = loose.pop(0).text
    if loose:
        raise BadArgument(
            _("I did not expect `{extra}`. Usage: {usage}."),
            extra=preview(" ".join(t.text for t in loose[:20])),
            usage=usage(spec.qualified_name),
        )
    for arg in spec.args:
        if arg.required and arg.name not in values:
            shown = f"<{arg.name}>" if arg.positional else arg.option
            raise BadArgument(
                # Translators: {shown} is the missing part, e.g. <title> or --language; {what} its
                # description.
                _("{command} needs {shown} ({what}). Usage: {usage}."),
                command=cmd(spec.qualified_name),
                shown=shown,
                what=described(arg.description),
                usage=usage(spec.qualified_name),
            )
    return values


def _free_text(line: str, tokens: list[Token]) -> str:
    if len(tokens) == 1:
        return tokens[0].text
    # Keep the spacing the person typed within each run of adjacent words.
    runs: list[str] = []
    run_start = tokens[0]
    prev = tokens[0]
    for tok in tokens[1:]:
        if not _adjacent(line, prev, tok):
            runs.append(line[run_start.start : prev.end])
            run_start = tok
        prev = tok
    runs.append(line[run_start.start : prev.end])
    return " ".join(runs)


def _adjacent(line: str, a: Token, b: Token) -> bool:
    return not line[a.end : b.start].strip()


def _unknown_option(spec: CommandSpec, option: str) -> BadArgument:
    """The error for an option the command does not have, naming those it has."""
    opts = [arg.option for arg in spec.args if not arg.positional]
    if not opts:
        return BadArgument(
            _("`{option}` is not an option of {command}. It takes no options: {usage}."),
            option=option, command=cmd(spec.qualified_name), usage=usage(spec.qualified_name),
        )  # fmt: skip
    return BadArgument(
        _("`{option}` is not an option of {command}. Its options: {options}."),
        option=option,
        command=cmd(spec.qualified_name),
        options=Markup.trusted(", ").join(Markup.format("`{o}`", o=o) for o in opts),
    )
