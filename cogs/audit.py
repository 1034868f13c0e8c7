"""``audit``: the trail of coordinator-only commands, for coordinators to read."""

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from bot.commands import Cog, command, requires
from bot.context import Ctx, Reply
from bot.domain import Markup, UserRef
from bot.params import Param
from bot.services import Services

DEFAULT_LIMIT = 20
OUTCOMES = {"done": "", "refused": " — refused", "failed": " — failed", "error": " — error"}


class Audit(Cog):
    """Shows who ran which coordinator command, where and when."""

    def __init__(self, services: Services) -> None:
        self.repo = services.audit
        self.zone = ZoneInfo(services.settings.campaign.timezone)

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
        lines = [Markup.format("**The last {n} coordinator actions**", n=len(entries))]
        for entry in entries:
            who = entry.actor_name
            if entry.actor is not None:
                who += f" ({entry.actor.platform})"
            lines.append(
                Markup.format(
                    "• {when} · {who} · `{command}{detail}` · {place}{outcome}",
                    when=self._local(entry.at),
                    who=who,
                    command=entry.command,
                    detail=f" {entry.detail}" if entry.detail else "",
                    place=entry.place or "a direct chat",
                    outcome=OUTCOMES.get(entry.outcome, f" — {entry.outcome}"),
                )
            )
        return Reply(Markup.trusted("\n").join(lines), confidential=True)

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """The coordinator commands this person ran, or that named them."""
        return {"audit": await self.repo.export(user)}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Keep the trail of what was done, without who did it or whom it named."""
        await self.repo.erase(user)
