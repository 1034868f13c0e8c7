"""Volunteer registration by role, languages and country."""

from typing import Annotated, Any

from bot.commands import Cog, command
from bot.context import Ctx, Reply
from bot.domain import COUNTRIES, LANGUAGES, Markup, NotFound, Role, UserRef
from bot.domain.text import preview
from bot.params import Country, Language, LanguageList, Param
from bot.services import Services
from storage.volunteers import Profile

LIST_LIMIT = 25


class Volunteers(Cog):
    """Register by role, languages and country; see who is available."""

    group = "volunteer"
    erase_order = 100  # last: other cogs' erasure refers to the volunteer record

    def __init__(self, services: Services) -> None:
        self.volunteers = services.volunteers
        self.tasks = services.tasks
        self.clock = services.clock

    @command()
    async def join(
        self,
        ctx: Ctx,
        role: Annotated[Role, Param("The role you take on")],
        *,
        languages: Annotated[
            LanguageList | None, Param("Languages you work in, e.g. de,fr", autocomplete=True)
        ] = None,
        country: Annotated[Country | None, Param("Your EU country, e.g. DE")] = None,
    ) -> Reply:
        """Register as a volunteer, or add a role."""
        profile, added = await self.volunteers.join(
            ctx.user, role.value, languages=languages, country=country, now=ctx.now
        )
        lead = (
            "Welcome, {name}! You are registered as **{role}**."
            if added
            else ("You already had the role **{role}**, {name}; your details are updated.")
        )
        body = Markup.format(lead, name=ctx.user.label, role=role.value) + "\n" + _summary(profile)
        if not profile.languages:
            body += "\nTip: add `--languages` so tasks in your languages find you."
        return Reply(body)

    @command()
    async def leave(self, ctx: Ctx, role: Annotated[Role, Param("The role to drop")]) -> Reply:
        """Drop one of your roles."""
        profile = await self.volunteers.leave(ctx.user, role.value)
        if profile is None:
            raise NotFound(
                "You do not have the role `{role}`. See your roles with `volunteer profile`.",
                role=role.value,
            )
        return Reply(
            Markup.format("You are no longer a **{role}**.\n", role=role.value) + _summary(profile)
        )

    @command()
    async def profile(
        self,
        ctx: Ctx,
        user: Annotated[UserRef | None, Param("Whose profile (default: yours)")] = None,
    ) -> Reply:
        """Show roles, languages and country."""
        who = user or ctx.user
        # The profile and the open claims in one trip to the database.
        read = await self.tasks.profile_with_claims(who)
        if read is None:
            if user is None:
                raise NotFound(
                    "You are not registered yet. Try `volunteer join translator --languages de`."
                )
            raise NotFound(
                "I know no volunteer `{name}`. See who is registered with `volunteer list`.",
                name=preview(who.label),
            )
        found, claims = read
        held = Markup.trusted(", ").join(
            Markup.format("#{id} {title}", id=task.id, title=task.title) for task in claims
        )
        return Reply(
            Markup.format("**{name}**\n", name=found.user.label)
            + _summary(found)
            + Markup.format("\nOpen claims: {held}", held=held if claims else "none")
        )

    @command("list")
    async def list_(
        self,
        ctx: Ctx,
        role: Annotated[Role | None, Param("Only this role")] = None,
        *,
        language: Annotated[Language | None, Param("Only people working in this language")] = None,
    ) -> Reply:
        """Who is available, by role and language."""
        people, total = await self.volunteers.search(
            platform=ctx.user.platform,
            role=role.value if role else None,
            language=language,
            limit=LIST_LIMIT,
        )
        what = " ".join(
            filter(None, [LANGUAGES.get(language or ""), role.value if role else None])
        )
        if not people:
            return Reply.text(
                "No {what}volunteers registered yet.", what=f"{what} " if what else ""
            )
        lines = [
            Markup.format(
                "• {name} — {roles}{langs}",
                name=p.user.label,
                roles=", ".join(p.roles) or "no role",
                langs=f" ({', '.join(p.languages)})" if p.languages else "",
            )
            for p in people
        ]
        head = Markup.format(
            "**{n} {what}volunteer{s}**",
            n=total, what=f"{what} " if what else "", s="" if total == 1 else "s",
        )  # fmt: skip
        more = (
            [Markup.format("…and {n} more.", n=total - len(people))] if total > len(people) else []
        )
        return Reply(Markup.trusted("\n").join([head, *lines, *more]))

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """The volunteer record and roles."""
        return {"volunteer": await self.volunteers.export(user)}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Delete the volunteer record and roles."""
        await self.volunteers.erase(user)


def _summary(profile: Profile) -> Markup:
    langs = ", ".join(
        f"{code} ({LANGUAGES[code]})" for code in profile.languages if code in LANGUAGES
    )
    country = (
        f"{profile.country} ({COUNTRIES[profile.country]})" if profile.country else "not given"
    )
    return Markup.format(
        "Roles: {roles}\nLanguages: {langs}\nCountry: {country}",
        roles=", ".join(profile.roles) or "none",
        langs=langs or "none given",
        country=country,
    )
