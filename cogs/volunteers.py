"""Volunteer registration by role, languages and country; how each person is answered."""

from dataclasses import replace
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from bot.commands import Cog, command
from bot.context import Ctx, Reply
from bot.domain import LANGUAGES, Markup, NotFound, Role, UserRef
from bot.domain.i18n import (
    EU_LANGUAGES,
    ChoiceName,
    CountryName,
    LanguageName,
    _,
    ngettext,
)
from bot.domain.markup import cmd
from bot.domain.text import preview
from bot.params import (
    Country,
    Language,
    LanguageList,
    Param,
    TimeZone,
    parse_language,
    parse_timezone,
)
from bot.services import Services
from storage.volunteers import Profile

# What `volunteer language auto` and `volunteer timezone auto` take back.
AUTO = ("auto", "default", "reset", "none")

LIST_LIMIT = 25
COMMA = Markup.trusted(", ")


class Volunteers(Cog):
    """Register by role, languages and country; see who is available."""

    group = "volunteer"
    erase_order = 100  # last: other cogs' erasure refers to the volunteer record

    def __init__(self, services: Services) -> None:
        self.volunteers = services.volunteers
        self.tasks = services.tasks
        self.clock = services.clock
        self.preferences = services.preferences
        self.readers = services.readers

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
            _("Welcome, {name}! You are registered as **{role}**.")
            if added
            else _("You already had the role **{role}**, {name}; your details are updated.")
        )
        lines = [Markup.format(lead, name=ctx.user.label, role=ChoiceName(role.value)),
                 _summary(profile)]  # fmt: skip
        if not profile.languages:
            lines.append(
                Markup.format(
                    _("Tip: add your languages, {command}, so tasks in them find you."),
                    command=cmd("volunteer join", role=role.value, languages="de,fr"),
                )
            )
        return Reply(Markup.trusted("\n").join(lines))

    @command()
    async def leave(self, ctx: Ctx, role: Annotated[Role, Param("The role to drop")]) -> Reply:
        """Drop one of your roles."""
        profile = await self.volunteers.leave(ctx.user, role.value)
        if profile is None:
            raise NotFound(
                _("You do not have the role `{role}`. See your roles with {command}."),
                role=ChoiceName(role.value),
                command=cmd("volunteer profile"),
            )
        return Reply(
            Markup.trusted("\n").join(
                [Markup.format(_("You are no longer a **{role}**."), role=ChoiceName(role.value)),
                 _summary(profile)]
            )
        )  # fmt: skip

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
                    _("You are not registered yet. Try {command}."),
                    command=cmd("volunteer join", role="translator", languages="de"),
                )
            raise NotFound(
                _("I know no volunteer `{name}`. See who is registered with {command}."),
                name=preview(who.label),
                command=cmd("volunteer list"),
            )
        found, claims = read
        held = Markup.trusted(", ").join(
            Markup.format("#{id} {title}", id=task.id, title=task.title) for task in claims
        )
        claimed = (
            Markup.format(_("Open claims: {held}"), held=held)
            if claims
            else Markup.format(_("Open claims: none"))
        )
        return Reply(
            Markup.trusted("\n").join(
                [Markup.format("**{name}**", name=found.user.label), _summary(found), claimed]
            )
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
        which = _which(role, language)
        if not people:
            nobody = Markup.format(_("No volunteers registered yet."))
            return Reply(Markup.trusted("\n").join([nobody, *which]))
        lines = [*which, *(_person(p) for p in people)]
        head = Markup.format(ngettext("**{n:,} volunteer**", "**{n:,} volunteers**"), n=total)
        rest = total - len(people)
        more = [Markup.format(ngettext("…and {n:,} more.", "…and {n:,} more."), n=rest)]
        return Reply(Markup.trusted("\n").join([head, *lines, *(more if rest > 0 else [])]))

    @command()
    async def language(
        self,
        ctx: Ctx,
        code: Annotated[
            str | None,
            Param("A language code like pl, or auto to follow your client", max_length=40),
        ] = None,
    ) -> Reply:
        """Choose the language the bot answers you in."""
        if code is None:
            chosen = await self.preferences.of(ctx.user)
            return Reply(
                Markup.format(
                    _("I answer you in {language}, as you chose. Choose another with "
                      "{command}; one of: {codes}.")
                    if chosen.language
                    else _("I answer you in {language}. Choose another with {command}; "
                           "one of: {codes}."),
                    language=LanguageName(ctx.reader.language),
                    command=cmd("volunteer language", code="pl"),
                    codes=" ".join(EU_LANGUAGES),
                )
            )  # fmt: skip
        if code.strip().lower() in AUTO:
            await self.preferences.choose(ctx.user, ctx.now, "language", None)
            ctx.reader = await self.readers.for_ctx(ctx)
            return Reply(
                Markup.format(
                    _("Done: I answer you in your client's or your room's language again, "
                      "now {language}."),
                    language=LanguageName(ctx.reader.language),
                )
            )  # fmt: skip
        chosen_code = str(parse_language(code))
        await self.preferences.choose(ctx.user, ctx.now, "language", chosen_code)
        ctx.reader = replace(ctx.reader, language=chosen_code)
        return Reply(
            Markup.format(
                _("From now on I answer you in {language}. Type {command} to follow your "
                  "client or room again."),
                language=LanguageName(chosen_code),
                command=cmd("volunteer language", code="auto"),
            )
        )  # fmt: skip

    @command()
    async def timezone(
        self,
        ctx: Ctx,
        zone: Annotated[
            str | None, Param("An Area/City zone like Europe/Warsaw, or auto", max_length=64)
        ] = None,
    ) -> Reply:
        """Choose the time zone your times are shown in."""
        if zone is None:
            return Reply(
                Markup.format(
                    _("I show you times in {zone}; it is now {now}. Choose another with "
                      "{command}."),
                    zone=_zone_name(ctx), now=ctx.now, command=cmd("volunteer timezone",
                                                                  zone="Europe/Warsaw"),
                )
            )  # fmt: skip
        if zone.strip().lower() in AUTO:
            await self.preferences.choose(ctx.user, ctx.now, "timezone", None)
            ctx.reader = replace(ctx.reader, timezone=self.readers.timezone)
            return Reply(
                Markup.format(
                    _("Done: I show you times in the campaign's time zone, {zone}, again."),
                    zone=_zone_name(ctx),
                )
            )
        name: TimeZone = parse_timezone(zone)
        await self.preferences.choose(ctx.user, ctx.now, "timezone", str(name))
        ctx.reader = replace(ctx.reader, timezone=ZoneInfo(str(name)))
        return Reply(
            Markup.format(
                _("From now on I show you times in {zone}; it is now {now} there."),
                zone=str(name), now=ctx.now,
            )
        )  # fmt: skip

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        """The volunteer record and roles, and the language and time zone they chose."""
        return {
            "volunteer": await self.volunteers.export(user),
            "preferences": await self.preferences.export(user),
        }

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        """Delete the volunteer record and roles, and their language and time zone."""
        await self.preferences.forget(user)
        await self.volunteers.erase(user)


def _zone_name(ctx: Ctx) -> str:
    return str(getattr(ctx.reader.timezone, "key", ctx.reader.timezone))


def _which(role: Role | None, language: Language | None) -> list[Markup]:
    """The line that says which volunteers a list shows, if it is filtered."""
    if role and language:
        return [Markup.format(_("Role {role}, working in {language}."),
                              role=ChoiceName(role.value),
                              language=LanguageName(language))]  # fmt: skip
    if role:
        return [Markup.format(_("Role {role}."), role=ChoiceName(role.value))]
    if language:
        return [Markup.format(_("Working in {language}."), language=LanguageName(language))]
    return []


def _roles(profile: Profile) -> Markup:
    """A person's roles, each as their platform shows it."""
    return COMMA.join(Markup.format("{role}", role=ChoiceName(r)) for r in profile.roles)


def _person(profile: Profile) -> Markup:
    roles = _roles(profile) if profile.roles else ""
    if profile.languages:
        return Markup.format(
            _("• {name} — {roles} ({languages})") if roles else _("• {name} ({languages})"),
            name=profile.user.label, roles=roles, languages=", ".join(profile.languages),
        )  # fmt: skip
    if roles:
        return Markup.format(_("• {name} — {roles}"), name=profile.user.label, roles=roles)
    return Markup.format(_("• {name} — no role"), name=profile.user.label)


def _summary(profile: Profile) -> Markup:
    names = [
        Markup.format(_("{code} ({language})"), code=code, language=LanguageName(code))
        for code in profile.languages
        if code in LANGUAGES
    ]
    lines = [
        Markup.format(_("Roles: {roles}"), roles=_roles(profile))
        if profile.roles
        else Markup.format(_("Roles: none")),
        Markup.format(_("Languages: {languages}"), languages=Markup.trusted(", ").join(names))
        if names
        else Markup.format(_("Languages: none given")),
        Markup.format(
            _("Country: {code} ({country})"),
            code=profile.country,
            country=CountryName(profile.country),
        )
        if profile.country
        else Markup.format(_("Country: not given")),
    ]
    return Markup.trusted("\n").join(lines)
