"""``dashboard link``: a one-time sign-in link to the coordinators' web dashboard."""

from bot.commands import Cog, command, requires
from bot.context import Ctx, Reply
from bot.domain import Markup
from bot.domain.i18n import _, ngettext
from bot.services import Services

# Translators: {enabled} and {url} are settings of the bot's configuration file, as code.
OFF = _(
    "The web dashboard is not switched on. An operator can enable it with {enabled} "
    "(and {url}) in the bot's configuration."
)
# The settings that switch it on, as written in the configuration file.
SETTINGS = {"enabled": "`[web] enabled = true`", "url": "`public_url`"}


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
            values = {k: Markup.trusted(v) for k, v in SETTINGS.items()}
            return Reply(Markup.format(OFF, **values), private=True)
        link = await self.signin.link_for(ctx.user)
        minutes = max(1, round((link.expires_at - ctx.now).total_seconds() / 60))
        # The address is the bot's own (configured base, base32 and hex): no user text in it.
        intro = Markup.format(
            ngettext(
                "**Your sign-in link to the dashboard** — it works once, for {n:,} minute, "
                "and only for you; do not pass it on:",
                "**Your sign-in link to the dashboard** — it works once, for {n:,} minutes, "
                "and only for you; do not pass it on:",
            ),
            n=minutes,
        )
        return Reply(Markup.trusted("\n").join([intro, Markup.trusted(link.url)]), private=True)
