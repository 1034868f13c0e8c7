"""``dashboard link``: a one-time sign-in link to the coordinators' web dashboard."""

from bot.commands import Cog, command, requires
from bot.context import Ctx, Reply
from bot.domain import Markup
from bot.services import Services

OFF = (
    "The web dashboard is not switched on. An operator can enable it with `[web] enabled = "
    "true` (and `public_url`) in the bot's configuration."
)


class Dashboard(Cog):
    """The coordinators' web dashboard."""

    group = "dashboard"
    personal_data = False  # a used link leaves only its random id behind

    def __init__(self, services: Services) -> None:
        self.signin = services.signin

    @command(private=True)
    @requires("coordinator")
    async def link(self, ctx: Ctx) -> Reply:
        """A one-time sign-in link to the web dashboard, only for you."""
        if not self.signin.enabled:
            return Reply(Markup.trusted(OFF), private=True)
        link = await self.signin.link_for(ctx.user)
        minutes = max(1, round((link.expires_at - ctx.now).total_seconds() / 60))
        # The address is the bot's own (configured base, base32 and hex): no user text in it.
        return Reply(
            Markup.format(
                "**Your sign-in link to the dashboard** — it works once, for {minutes} "
                "minutes, and only for you; do not pass it on:\n",
                minutes=minutes,
            )
            + Markup.trusted(link.url),
            private=True,
        )
