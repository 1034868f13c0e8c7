"""``help``: generated from the command specs, so it can never drift from them.

Usage lines and command references are spelt by each platform's own syntax when the reply is
rendered (``task claim <id>``, ``!task claim <id>``, ``/task claim id:<number>``), and the
descriptions are the declarations' own, translated for the reader.
"""

import logging
from typing import Annotated

from bot.commands import ArgSpec, Cog, CommandSpec, command
from bot.context import Ctx, Reply
from bot.core import Registry
from bot.domain import Markup, NotFound
from bot.domain.i18n import _, described
from bot.domain.markup import cmd, usage
from bot.params import KIND_WORDS, Param
from bot.services import Services

log = logging.getLogger(__name__)

NEWLINE = Markup.trusted("\n")
SPACE = Markup.trusted(" ")
COMMA = Markup.trusted(", ")
# Translators: {name} is a parameter's name as code, {kind} the kind of value it takes
# ("number", "language"), {description} what it is for.
REQUIRED = _("• {name} (required, {kind}): {description}.")
# Translators: like the required one; the parameter may be left out.
OPTIONAL = _("• {name} (optional, {kind}): {description}.")
# Translators: {usage} is a command's usage line, {description} what it does.
LINE = _("{usage} — {description}")
# Translators: like the line above; the star marks a command only coordinators can run.
STARRED_LINE = _("{usage} ★ — {description}")


class Help(Cog):
    """Explains the commands."""

    personal_data = False

    def __init__(self, services: Services) -> None:
        self.registry: Registry = services.registry

    @command()
    async def help(
        self,
        ctx: Ctx,
        topic: Annotated[
            str | None, Param("A command or group, e.g. task claim", rest=True, max_length=100)
        ] = None,
    ) -> Reply:
        """List the commands, or explain one."""
        if topic is None:
            return Reply(self._overview())
        words = topic.lower().lstrip("!/").split()
        if len(words) == 1 and words[0] in self.registry.groups:
            return Reply(self._group(words[0]))
        try:
            spec, used = self.registry.find(words)
        except NotFound as exc:
            raise NotFound("{text}", text=exc.markup) from None
        if used < len(words) and spec.default:
            return Reply(self._group(spec.group or ""))
        return Reply(self._detail(spec))

    def _overview(self) -> Markup:
        lines = [Markup.format(_("**Commands** (coordinator-only ones are marked ★)"))]
        lines += [_line(spec) for spec in self.registry.specs]
        lines.append(
            Markup.format(_("Type {command} for details."), command=cmd("help", topic="<command>"))
        )
        return NEWLINE.join(lines)

    def _group(self, group: str) -> Markup:
        head = Markup.format(
            # Translators: a command group's name in bold, then what its commands are for.
            _("**{group}** — {description}"),
            group=group,
            description=described(self.registry.group_descriptions.get(group, "")),
        )
        return NEWLINE.join([head, *(_line(s) for s in self.registry.in_group(group))])

    def _detail(self, spec: CommandSpec) -> Markup:
        lines = [usage(spec.qualified_name), Markup.format(described(spec.description))]
        lines += [_argument(arg) for arg in spec.args]
        if "coordinator" in spec.requires:
            lines.append(Markup.format(_("Only coordinators can run this.")))
        return NEWLINE.join(lines)


def _line(spec: CommandSpec) -> Markup:
    """One command of a list: its usage line and what it does."""
    template = STARRED_LINE if spec.requires else LINE
    return Markup.format(template, usage=usage(spec.qualified_name),
                         description=described(spec.description))  # fmt: skip


def _argument(arg: ArgSpec) -> Markup:
    """One parameter of a command: its name, whether it is needed, its kind, what it is for."""
    name = Markup.format("`{name}`", name=arg.name.replace("_", "-"))
    kind = KIND_WORDS.get(arg.kind.name)
    if kind is None:
        log.warning("help has no word for the parameter kind %r", arg.kind.name)
    line = Markup.format(
        REQUIRED if arg.required else OPTIONAL,
        name=name, kind=kind or arg.kind.name, description=described(arg.description),
    )  # fmt: skip
    if not arg.choices:
        return line
    # The values are typed as they are, in every language.
    values = COMMA.join(Markup.format("`{value}`", value=c) for c in arg.choices)
    # Translators: {choices} lists the values a parameter accepts, as code: `low`, `high`.
    return SPACE.join([line, Markup.format(_("One of: {choices}."), choices=values)])
