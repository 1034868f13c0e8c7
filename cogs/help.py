"""``help``: generated from the command specs, so it can never drift from them."""

from typing import Annotated

from bot.commands import Cog, CommandSpec, command
from bot.context import Ctx, Reply
from bot.core import Registry
from bot.domain import Markup, NotFound
from bot.params import Param
from bot.services import Services

PREFIX = {"matrix": "!", "discord": "/", "console": ""}


class Help(Cog):
    """Explains the commands."""

    personal_data = False

    def __init__(self, services: Services) -> None:
        self.registry: Registry = services.registry
        self.matrix_prefix = (
            services.settings.matrix.command_prefix or services.settings.bot.command_prefix
        )

    def _prefix(self, ctx: Ctx) -> str:
        platform = ctx.place.platform
        return self.matrix_prefix if platform == "matrix" else PREFIX.get(platform, "")

    @command()
    async def help(
        self,
        ctx: Ctx,
        topic: Annotated[
            str | None, Param("A command or group, e.g. task claim", rest=True, max_length=100)
        ] = None,
    ) -> Reply:
        """List the commands, or explain one."""
        prefix = self._prefix(ctx)
        if topic is None:
            return Reply(self._overview(prefix))
        words = topic.lower().lstrip("!/").split()
        if len(words) == 1 and words[0] in self.registry.groups:
            return Reply(self._group(words[0], prefix))
        try:
            spec, used = self.registry.find(words)
        except NotFound as exc:
            raise NotFound("{text}", text=exc.markup) from None
        if used < len(words) and spec.default:
            return Reply(self._group(spec.group or "", prefix))
        return Reply(self._detail(spec, prefix))

    def _overview(self, prefix: str) -> Markup:
        lines = [Markup.trusted("**Commands** (coordinator-only ones are marked ★)")]
        for spec in self.registry.specs:
            lines.append(_line(spec, prefix))
        lines.append(Markup.format("Type `{p}help <command>` for details.", p=prefix))
        return Markup.trusted("\n").join(lines)

    def _group(self, group: str, prefix: str) -> Markup:
        head = Markup.format(
            "**{g}** — {d}", g=group, d=self.registry.group_descriptions.get(group, "")
        )
        return Markup.trusted("\n").join(
            [head, *(_line(s, prefix) for s in self.registry.in_group(group))]
        )

    def _detail(self, spec: CommandSpec, prefix: str) -> Markup:
        lines = [
            Markup.format("`{p}{usage}`", p=prefix, usage=spec.usage()),
            Markup.format("{d}", d=spec.description),
        ]
        for arg in spec.args:
            name = arg.name.replace("_", "-") if arg.positional else arg.option
            choices = f". One of: {', '.join(arg.choices)}" if arg.choices else ""
            need = "required" if arg.required else "optional"
            lines.append(
                Markup.format(
                    "• `{n}` ({need}, {kind}): {d}{c}.",
                    n=name, need=need, kind=arg.kind.name, d=arg.description, c=choices,
                )
            )  # fmt: skip
        if "coordinator" in spec.requires:
            lines.append(Markup.trusted("Only coordinators can run this."))
        return Markup.trusted("\n").join(lines)


def _line(spec: CommandSpec, prefix: str) -> Markup:
    star = " ★" if spec.requires else ""
    return Markup.format("`{p}{usage}`{star} — {d}", p=prefix, usage=spec.usage(), star=star,
                         d=spec.description)  # fmt: skip
