"""``audit``: the trail of coordinator-only commands, for coordinators to read."""

from typing import Annotated, Any

from bot.commands import Cog, command, requires
from bot.context import Ctx, Reply
from bot.domain import Markup, UserRef
from bot.domain.i18n import _, ngettext, pgettext
from bot.params import Param
from bot.services import Services
from storage.audit import AuditEntry

DEFAULT_LIMIT = 20
# One line of the trail per way a command ended.
OUTCOMES = {
    # Translators: {when} is a date and time, {who} a person's name with their platform,
    # {command} the command as code with what it was given, {place} the room it ran in.
    "done": _("• {when} · {who} · {command} · {place}"),
    "refused": _("• {when} · {who} · {command} · {place} — refused"),
    "failed": _("• {when} · {who} · {command} · {place} — failed"),
    "error": _("• {when} · {who} · {command} · {place} — error"),
}
# Translators: like the other lines of the trail; {outcome} is how the command ended, in English.
OTHER_OUTCOME = _("• {when} · {who} · {command} · {place} — {outcome}")


class Audit(Cog):
    """Shows who ran which coordinator command, where and when."""

    def __init__(self, services: Services) -> None:
        self.repo = services.audit

    @command(confidential=True)  # it names people: not for the whole room to read
    @requires("coordinator")
    async def audit(
        self,
        ctx: Ctx,
        *,
        limit: Annotated[int | None, Param("How many lines, newest first", min=1, max=100)] = None,
    ) -> Reply:
        """The latest coordinator actions: who, what, where."""
        entries = await self.repo.recent(limit or DEFAULT_LIMIT)
        if not entries:
            return Reply.text(_("No coordinator has run a command yet."), confidential=True)
        head = Markup.format(
            ngettext(
                "**The last {n:,} coordinator action**", "**The last {n:,} coordinator actions**"
            ),
            n=len(entries),
        )
        lines = [head, *(_line(entry) for entry in entries)]
        return Reply(Markup.trusted("\n").join(lines), confidential=True)

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """The coordinator commands this person ran, or that named them."""
        return {"audit": await self.repo.export(user)}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Keep the trail of what was done, without who did it or whom it named."""
        await self.repo.erase(user)


def _line(entry: AuditEntry) -> Markup:
    """One line of the trail: when, who, what and where, and how it ended unless it was done."""
    who = entry.actor_name
    if entry.actor is not None:
        who += f" ({entry.actor.platform})"
    shown = f"{entry.command} {entry.detail}" if entry.detail else entry.command
    values: dict[str, object] = {
        "when": entry.at,
        "who": who,
        "command": Markup.format("`{command}`", command=shown),
        "place": entry.place or pgettext("audit place", "a direct chat"),
    }
    template = OUTCOMES.get(entry.outcome)
    if template is None:
        return Markup.format(OTHER_OUTCOME, outcome=entry.outcome, **values)
    return Markup.format(template, **values)
