"""Discord: the command specs projected to slash commands, replies and buttons rendered natively.

Every cog command becomes ``/group sub option:value`` from its one declaration; the adapter
never knows a command by name. The command tree is synced only when its JSON changed since the
last sync (a hash per guild kept in the bot state), never on every start. Buttons are
``vb:<command line>`` custom ids handled by a registered dynamic item, so they keep working
after a restart. No privileged intent is requested.

Who is a coordinator is decided by :mod:`bot.rights`: this adapter reports a person's roles and
Manage Server permission in the campaign's configured servers (looked up there when the
command comes from a direct message), and refuses commands from other servers.
"""

import asyncio
import contextlib
import hashlib
import inspect
import io
import json
import logging
import math
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, cast

import discord
import yarl
from discord import app_commands
from discord.app_commands import locale_str
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.adapters import Status
from bot.adapters.discord_names import CatalogTranslator
from bot.commands import ArgSpec, CommandSpec
from bot.config import ConfigError, DiscordSection
from bot.context import Actor, Attachment, Ctx, Place, Reply
from bot.core import for_reader
from bot.domain import COUNTRIES, LANGUAGES, Markup, UserRef
from bot.domain.i18n import ENGLISH, CountryName, LanguageName, Reader, _
from bot.logs import describe_error
from bot.outbox import Delivery, PermanentDeliveryError
from bot.readers import language_of_locale
from bot.rights import DISCORD_GUILD, PlaceKind, Standing

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

PLATFORM = "discord"
BUTTON_PREFIX = "vb:"
MAX_CUSTOM_ID = 100
MAX_LABEL = 80
MAX_CONTENT = 2000
# A reply longer than this many messages is cut: nobody reads more, and it would flood the
# channel (a quoted megabyte would be five hundred messages).
MAX_PARTS = 5
CUT = "\n… (cut: the rest was too long to send)"
MAX_CHOICES = 25
# Discord wants an answer within 3 s; a command still running after this gets a defer first.
DEFER_AFTER = 2.0
# Missing Access, Missing Permissions, Unknown Channel: the channel will never take the post.
PERMANENT_CODES = frozenset({50001, 50013, 10003})
STATE_KEY = "discord.commands.{application}.{scope}"
# What almost every message carries: built once (discord.py only reads it).
PING_NOBODY = discord.AllowedMentions(everyone=False, roles=False, users=False, replied_user=False)
STALE_BUTTON = Reply(
    Markup.format(_("That button does nothing any more.")), private=True, is_error=True
)
ELSEWHERE = {
    PlaceKind.OTHER: Reply(
        Markup.format(
            _("This bot works for its campaign's own Discord server only, so it does not answer "
              "commands here.")
        ),
        private=True,
        is_error=True,
    ),
    PlaceKind.DIRECT: Reply(
        Markup.format(
            _("This bot does not answer direct messages. Use its commands in the campaign's "
              "server.")
        ),
        private=True,
        is_error=True,
    ),
}  # fmt: skip

Choices = list[app_commands.Choice[str]] | list[app_commands.Choice[int]]
Completer = Callable[[discord.Interaction, str], Awaitable[Choices]]


class Suggestions(Protocol):
    """What a repository offers for autocompleting numbers (task ids): ``services.tasks``."""

    async def suggest(self, text: str, limit: int) -> Sequence[tuple[int, str]]:
        """Open items whose number or title matches ``text``: (number, title) pairs."""
        ...


class Endpoints:
    """Where discord.py connects: it reads two class attributes, so they are set per run.

    ``apply`` points discord.py at the configured API and gateway; ``restore`` puts back what
    was there before, so nothing leaks past the adapter's lifetime.
    """

    def __init__(self, api_base: str, gateway_url: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.gateway = yarl.URL(gateway_url)
        self._saved: tuple[str, yarl.URL] | None = None

    def apply(self) -> None:
        """Point discord.py at these endpoints."""
        self._saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = self.gateway

    def restore(self) -> None:
        """Undo :meth:`apply`."""
        if self._saved is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None


class CommandButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"vb:(?P<command>.+)",
):
    """A button that runs a text command line for whoever clicks it; survives restarts."""

    def __init__(self, command: str, label: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:MAX_LABEL],
                custom_id=BUTTON_PREFIX + command,
                style=discord.ButtonStyle.primary,
            )
        )
        self.command = command

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> "CommandButton":
        """Rebuild the button from a click on any message, old or new."""
        return cls(match["command"], getattr(item, "label", None) or "…")

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run the command as the person who clicked."""
        client = interaction.client
        if isinstance(client, DiscordClient):
            await client.adapter.click(interaction, self.command)


class CommandTree(app_commands.CommandTree["DiscordClient"]):
    """The tree; errors discord.py raises before our callbacks run get a friendly answer."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Answer ephemerally; never show the exception text."""
        log.warning("Discord interaction could not run: %s", describe_error(error))
        if isinstance(error, app_commands.CommandNotFound):
            text = (
                "That command is not available any more. Discord may take a minute to show the "
                "current list; try `/help`."
            )
        else:
            text = "I could not read that command. Check the options and try again, or `/help`."
        with contextlib.suppress(discord.HTTPException):
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
                )


class DiscordClient(discord.Client):
    """discord.py's client with the adapter attached, asking for no privileged intent."""

    def __init__(self, adapter: "DiscordAdapter", application_id: int | None) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        # The bot has no voice; discord.py's one-time warnings about voice libraries are noise.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        options: dict[str, Any] = {"application_id": application_id} if application_id else {}
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=None,
            chunk_guilds_at_startup=False,
            **options,
        )
        self.adapter = adapter
        self.tree = CommandTree(self)

    async def setup_hook(self) -> None:
        """Runs once per login, before the gateway connects."""
        await self.adapter.setup(self)

    async def on_ready(self) -> None:
        """Fires after every (re)connect; the adapter makes it idempotent."""
        self.adapter.ready()


class DiscordAdapter:
    """Serves the commands as slash commands and delivers outbox posts to Discord channels."""

    platform = PLATFORM

    def __init__(self, app: "App") -> None:
        self.app = app
        self.settings: DiscordSection = app.settings.discord
        if self.settings.token is None or not self.settings.token.get_secret_value().strip():
            raise ConfigError(
                "config error: discord.token is not set (in the config file or "
                "VOLUNTEER_BOT_DISCORD__TOKEN)"
            )
        self.rights = app.services.rights
        self.endpoints = Endpoints(self.settings.api_base, self.settings.gateway_url)
        self.client: DiscordClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._ready_seen = False
        self.defer_after = DEFER_AFTER

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in (syncing the commands if they changed), connect, take outbox posts."""
        assert self.settings.token is not None
        if not self.settings.guild_ids:
            log.warning(
                "discord.guild_ids is empty: Manage Server makes nobody a coordinator, and "
                'servers are answered only with [bot] answer_elsewhere = "everywhere"'
            )
        self._closed.clear()
        self.endpoints.apply()
        self.client = DiscordClient(self, self.settings.application_id)
        try:
            await self.client.login(self.settings.token.get_secret_value())
        except discord.LoginFailure:
            await self._close_client()
            raise ConfigError("config error: discord.token was refused by Discord") from None
        except BaseException:
            await self._close_client()
            raise
        self._task = asyncio.create_task(self._connect(self.client), name="discord-gateway")
        self.app.services.outbox.register(PLATFORM, self.deliver)

    async def _connect(self, client: DiscordClient) -> None:
        try:
            await client.connect(reconnect=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("Discord gateway connection ended: %s", describe_error(exc))
        finally:
            self._closed.set()

    async def stop(self) -> None:
        """Disconnect and put discord.py's endpoints back."""
        await self._close_client()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._closed.set()

    async def _close_client(self) -> None:
        try:
            if self.client is not None:
                await self.client.close()
        finally:
            self.endpoints.restore()

    def status(self) -> Status:
        """Connected once the gateway is ready, until it closes."""
        client = self.client
        if client is None or client.is_closed() or not client.is_ready():
            return Status(connected=False)
        latency = client.latency
        return Status(connected=True, lag=latency if math.isfinite(latency) else None)

    async def wait_closed(self) -> None:
        """Return when the gateway connection ends for good."""
        await self._closed.wait()

    async def setup(self, client: DiscordClient) -> None:
        """Register the button handler and the commands; sync only what changed."""
        client.add_dynamic_items(CommandButton)
        await client.tree.set_translator(CatalogTranslator())
        guilds = [discord.Object(gid) for gid in self.settings.guild_ids]
        registry = self.app.services.registry
        for command in project(registry.specs, registry.group_descriptions, self):
            if guilds:
                client.tree.add_command(command, guilds=guilds)
            else:
                client.tree.add_command(command)
        scopes: list[discord.Object | None] = [*guilds] or [None]
        for scope in scopes:
            await self._sync_if_changed(client, scope)

    async def _sync_if_changed(self, client: DiscordClient, guild: discord.Object | None) -> None:
        tree = client.tree
        # The payload as Discord gets it, translations included: a changed translation
        # changes the digest, and only then is the tree synced again.
        payload = await translated_payload(tree, guild)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        scope = str(guild.id) if guild else "global"
        key = STATE_KEY.format(application=client.application_id, scope=scope)
        if await self.app.services.state.get(key) == digest:
            log.info("Discord commands for %s unchanged; not syncing", scope)
            return
        try:
            await tree.sync(guild=guild)
        except discord.HTTPException as exc:
            log.error(
                "Discord command sync for %s failed (HTTP %s, code %s); commands may be stale",
                scope,
                exc.status,
                exc.code,
            )
            return
        await self.app.services.state.set(key, digest, self.app.clock.now())
        log.info("Discord commands for %s synced (%d top-level)", scope, len(payload))

    def ready(self) -> None:
        """Handle on_ready: it fires after every reconnect, and does its work only once."""
        if self._ready_seen:
            log.info("Discord gateway ready again")
            return
        self._ready_seen = True
        log.info("Discord gateway ready")

    # --- invocations ------------------------------------------------------------------------

    def place_kind(self, interaction: discord.Interaction) -> PlaceKind:
        """What the server (or direct message) an interaction comes from is to the campaign."""
        if interaction.guild_id is None:
            return PlaceKind.DIRECT
        place = DISCORD_GUILD.format(id=interaction.guild_id)
        return self.rights.kind_of(place, direct=False)

    async def ctx(self, interaction: discord.Interaction) -> Ctx:
        """The neutral context of an interaction."""
        user = user_ref(interaction.user)
        standings = await self.standings(interaction)
        return Ctx(
            actor=Actor(user, self.rights.is_coordinator(user, standings)),
            place=Place(
                f"{PLATFORM}:{interaction.channel_id}",
                is_private=interaction.guild_id is None,
                server=str(interaction.guild_id) if interaction.guild_id is not None else None,
            ),
            now=self.app.clock.now(),
            client_language=interaction.locale.value,
        )

    async def standings(self, interaction: discord.Interaction) -> list[Standing]:
        """The person's roles and Manage Server in this server and in the campaign's."""
        found: list[Standing] = []
        member = interaction.user
        if isinstance(member, discord.Member) and interaction.guild_id is not None:
            found.append(
                Standing(
                    place=DISCORD_GUILD.format(id=interaction.guild_id),
                    manages=interaction.permissions.manage_guild,
                    roles=frozenset(role.id for role in member.roles),
                )
            )
        for guild_id in self.settings.guild_ids:
            if guild_id != interaction.guild_id:
                found.extend(await self._standing_in(guild_id, interaction.user.id))
        return found

    async def _standing_in(self, guild_id: int, user_id: int) -> list[Standing]:
        """A person's standing in one campaign server, asked of Discord (no privileged intent)."""
        client = self.client
        guild = client.get_guild(guild_id) if client is not None else None
        if guild is None:
            return []
        member = guild.get_member(user_id)
        if member is None:
            try:
                member = await guild.fetch_member(user_id)
            except discord.NotFound:
                return []  # not a member of the campaign's server
            except discord.HTTPException as exc:
                log.warning("Discord member lookup failed (HTTP %s); no rights assumed",
                            exc.status)  # fmt: skip
                return []
        return [
            Standing(
                place=DISCORD_GUILD.format(id=guild_id),
                manages=member.guild_permissions.manage_guild,
                roles=frozenset(role.id for role in member.roles),
            )
        ]

    async def _run(
        self, interaction: discord.Interaction, run: Callable[[Ctx], Awaitable[Reply | None]]
    ) -> Reply | None:
        """Run a command as the person interacting, unless this place is not served."""
        kind = self.place_kind(interaction)
        if not self.rights.answers_in(kind):
            return for_reader(ELSEWHERE[kind], await self.reader(interaction))
        return await run(await self.ctx(interaction))

    async def reader(self, interaction: discord.Interaction) -> Reader:
        """Who an answer to this interaction is written for, without running a command."""
        return await self.app.services.readers.for_person(
            user_ref(interaction.user),
            f"{PLATFORM}:{interaction.channel_id}",
            server=str(interaction.guild_id) if interaction.guild_id is not None else None,
            client_language=interaction.locale.value,
        )

    async def run_command(
        self, interaction: discord.Interaction, spec: CommandSpec, values: dict[str, Any]
    ) -> None:
        """A slash command: convert the options and answer with what the core replies."""

        async def invoke(ctx: Ctx) -> Reply | None:
            raw = await core_arguments(values)
            return await self.app.core.invoke(ctx, spec, raw)

        work = self._run(interaction, invoke)
        await self._answer(interaction, work, deferred_private=spec.private)

    async def click(self, interaction: discord.Interaction, command: str) -> None:
        """A button: run its command line as the person who clicked."""
        work = self._run(
            interaction, lambda ctx: self.app.core.handle_text(ctx, command, prefixes=("",))
        )
        await self._answer(interaction, work, deferred_private=False)

    async def _answer(
        self,
        interaction: discord.Interaction,
        work: Awaitable[Reply | None],
        *,
        deferred_private: bool,
    ) -> None:
        """Run the work and answer with its reply, deferring first if it runs long.

        The work runs right here; only a timer waits beside it. A command that answers in
        time costs no extra task, and one still running after ``defer_after`` gets its defer
        sent by the timer while it goes on.
        """
        deferral: asyncio.Task[Any] | None = None

        def defer() -> None:
            nonlocal deferral
            deferral = asyncio.create_task(
                interaction.response.defer(ephemeral=deferred_private, thinking=True),
                name="discord-defer",
            )

        timer = asyncio.get_running_loop().call_later(self.defer_after, defer)
        try:
            try:
                reply = await work or for_reader(STALE_BUTTON, await self.reader(interaction))
            finally:
                timer.cancel()
            if deferral is None:
                await self._send(interaction, reply)
            else:
                await deferral
                await self._send_after_defer(interaction, reply, deferred_private)
        except discord.HTTPException as exc:
            log.warning("Discord answer failed (HTTP %s, code %s)", exc.status, exc.code)
        finally:
            if deferral is not None and not deferral.done():
                deferral.cancel()

    async def _send(self, interaction: discord.Interaction, reply: Reply) -> None:
        chunks = split_content(render(reply))
        ephemeral = reply.private or reply.is_error
        for i, chunk in enumerate(chunks):
            extras = message_extras(reply, last=i == len(chunks) - 1)
            if i == 0:
                await interaction.response.send_message(chunk, ephemeral=ephemeral, **extras)
            else:
                await interaction.followup.send(chunk, ephemeral=ephemeral, **extras)

    async def _send_after_defer(
        self, interaction: discord.Interaction, reply: Reply, deferred_private: bool
    ) -> None:
        chunks = split_content(render(reply))
        ephemeral = reply.private or reply.is_error
        first = 0
        if ephemeral == deferred_private:
            extras = message_extras(reply, last=len(chunks) == 1)
            files = extras.pop("files", None)
            if files:
                extras["attachments"] = files
            await interaction.edit_original_response(content=chunks[0], **extras)
            first = 1
        else:
            await interaction.delete_original_response()
        for i in range(first, len(chunks)):
            extras = message_extras(reply, last=i == len(chunks) - 1)
            await interaction.followup.send(chunks[i], ephemeral=ephemeral, **extras)

    # --- autocomplete -----------------------------------------------------------------------

    def _client_reader(self, interaction: discord.Interaction) -> Reader:
        """The client's language (no database trip: autocomplete must answer at once)."""
        language = language_of_locale(interaction.locale.value) or self.app.settings.bot.language
        return Reader(language, platform=PLATFORM)

    def completer(self, spec: CommandSpec, arg: ArgSpec) -> Completer | None:
        """The autocomplete for a parameter that asks for one.

        Languages, countries and time zones complete from the vocabulary; a number (``task
        claim id``) from the group's repository in the services (``tasks`` for ``task``) when
        it offers ``suggest``; anything else completes to nothing rather than losing the flag.
        """
        if not arg.param.autocomplete:
            return None
        if arg.kind.name in ("language", "languages"):
            many = arg.kind.name == "languages"

            async def languages(interaction: discord.Interaction, current: str) -> Choices:
                return language_choices(
                    current, many=many, reader=self._client_reader(interaction)
                )

            return languages
        if arg.kind.name == "country":

            async def countries(interaction: discord.Interaction, current: str) -> Choices:
                reader = self._client_reader(interaction)
                table = {code: CountryName(code).name(reader) for code in COUNTRIES}
                return name_choices(current, table, also=COUNTRIES)

            return countries
        if arg.kind.name == "time zone":
            zones = _zones()

            async def names(interaction: discord.Interaction, current: str) -> Choices:
                return name_choices(current, zones)

            return names
        group = spec.group
        if arg.kind.wire == "integer" and group is not None:

            async def numbers(interaction: discord.Interaction, current: str) -> Choices:
                return await self._suggest(f"{group}s", current)

            return numbers

        async def nothing(interaction: discord.Interaction, current: str) -> Choices:
            return []

        return nothing

    async def _suggest(self, service: str, current: str) -> Choices:
        repo: Suggestions | None = getattr(self.app.services, service, None)
        if repo is None or not hasattr(repo, "suggest"):
            return []
        try:
            found = await repo.suggest(current.strip().lstrip("#"), MAX_CHOICES)
        except Exception:
            log.exception("%s suggestions failed", service)
            return []
        return [
            app_commands.Choice(name=f"#{number} {title}"[:100], value=number)
            for number, title in found[:MAX_CHOICES]
        ]

    # --- outbox -----------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        """Post to ``discord:<channel id>``; to a person by DM, else in the channel."""
        client = self.client
        if client is None or client.is_closed():
            raise RuntimeError("Discord client is not running")
        channel_id = _snowflake(delivery.target.partition(":")[2])
        if channel_id is None:
            raise PermanentDeliveryError(f"not a Discord channel target: {delivery.target}")
        reader = delivery.reader
        if delivery.recipient_id is None:  # the room's language; it may be set for its server
            server = self._server_of(channel_id)
            reader = self.app.services.readers.for_room(delivery.target, server)
        content = delivery.body.markdown(reader)
        recipient = _snowflake(delivery.recipient_id) if delivery.recipient_id else None
        if recipient is not None:
            if await self._direct_message(client, recipient, content, delivery):
                return
            content = f"<@{recipient}> {content}"
        channel = client.get_partial_messageable(channel_id)
        users = [discord.Object(recipient)] if recipient is not None else []
        try:
            await _post(channel, content, delivery, "channel", users)
        except (discord.NotFound, discord.Forbidden) as exc:
            if exc.code in PERMANENT_CODES or exc.status == 404:
                raise PermanentDeliveryError(
                    f"Discord refused the channel (code {exc.code})"
                ) from None
            raise

    def _server_of(self, channel_id: int) -> str | None:
        """The server a channel belongs to, when the gateway told us of it."""
        channel = self.client.get_channel(channel_id) if self.client is not None else None
        guild = getattr(channel, "guild", None)
        return str(guild.id) if guild is not None else None

    async def _direct_message(
        self, client: DiscordClient, recipient: int, content: str, delivery: Delivery
    ) -> bool:
        try:
            dm = await client.create_dm(discord.Object(recipient))
            await _post(dm, content, delivery, "dm", [])
        except (discord.Forbidden, discord.NotFound) as exc:
            log.info("Discord DM not possible (code %s); posting in the channel", exc.code)
            return False
        except discord.HTTPException as exc:
            if exc.status >= 500:
                raise
            log.info("Discord DM refused (HTTP %s); posting in the channel", exc.status)
            return False
        return True


# --- projection -------------------------------------------------------------------------------


async def translated_payload(
    tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None
) -> list[dict[str, Any]]:
    """The commands of one scope as a sync sends them, with their localisations."""
    translator = tree.translator
    commands = tree.get_commands(guild=guild)
    if translator is None:
        return [command.to_dict(tree) for command in commands]
    return [await command.get_translated_payload(tree, translator) for command in commands]


def project(
    specs: Sequence[CommandSpec], group_descriptions: dict[str, str], adapter: DiscordAdapter
) -> list[app_commands.Command[Any, ..., None] | app_commands.Group]:
    """One group per cog group, one subcommand per command; top-level commands stay plain."""
    top: list[app_commands.Command[Any, ..., None] | app_commands.Group] = []
    groups: dict[str, app_commands.Group] = {}
    for spec in specs:
        command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name=locale_str(spec.name),
            description=locale_str(spec.description),
            callback=cast(Any, _callback(spec, adapter)),
        )
        if spec.group is None:
            top.append(command)
            continue
        group = groups.get(spec.group)
        if group is None:
            description = group_descriptions.get(spec.group) or spec.group
            group = groups[spec.group] = app_commands.Group(
                name=locale_str(spec.group), description=locale_str(description[:100])
            )
            top.append(group)
        group.add_command(command)
    return top


def _callback(spec: CommandSpec, adapter: DiscordAdapter) -> Callable[..., Awaitable[None]]:
    """A coroutine whose signature is the command's parameters, as discord.py reads it."""
    # Python names the parameters (``in_``); Discord shows the public names (``in``).
    public = {arg.keyword: arg.name for arg in spec.args}

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        await adapter.run_command(
            interaction, spec, {public[key]: value for key, value in values.items()}
        )

    parameters = [
        inspect.Parameter(
            "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
        )
    ]
    for arg in spec.args:
        parameters.append(
            inspect.Parameter(
                arg.keyword,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=annotation(arg),
                default=inspect.Parameter.empty if arg.required else None,
            )
        )
    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    callback.__name__ = callback.__qualname__ = spec.qualified_name.replace(" ", "_")
    if spec.args:
        # Names, descriptions and choices go through the translator (bot.adapters.discord_names).
        app_commands.describe(**{a.keyword: locale_str(a.description) for a in spec.args})(
            callback
        )
        app_commands.rename(**{a.keyword: locale_str(a.name) for a in spec.args})(callback)
    choices = {
        arg.keyword: [app_commands.Choice(name=locale_str(c), value=c) for c in arg.choices]
        for arg in spec.args
        if arg.choices
    }
    if choices:
        app_commands.choices(**choices)(callback)
    completers = {
        arg.keyword: c for arg in spec.args if (c := adapter.completer(spec, arg)) is not None
    }
    if completers:
        app_commands.autocomplete(**completers)(callback)  # type: ignore[arg-type]
    return callback


def annotation(arg: ArgSpec) -> Any:
    """The discord.py annotation for one parameter: its option type, bounds and choices."""
    p = arg.param
    base: Any
    if arg.choices:
        base = str  # the choices are declared with their localised names (_callback)
    elif arg.kind.wire == "integer":
        base = int if p.min is None and p.max is None else app_commands.Range[int, p.min, p.max]
    elif arg.kind.wire == "boolean":
        base = bool
    elif arg.kind.wire == "user":
        base = discord.User
    elif arg.kind.wire == "attachment":
        base = discord.Attachment
    elif p.max_length is not None:
        base = app_commands.Range[str, 1, p.max_length]
    else:
        base = str
    return base if arg.required else Optional[base]  # noqa: UP045 - discord.py reads Optional


async def option_value(value: Any) -> Any:
    """What the core gets for an option value; an attached file arrives as its bytes."""
    if isinstance(value, discord.Attachment):
        data = await value.read()
        return Attachment(value.filename, data, value.content_type or "application/octet-stream")
    return wire_value(value)


async def core_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """A slash command's option values as the core takes them: omitted ones left out."""
    return {name: await option_value(value) for name, value in values.items()
            if value is not None}  # fmt: skip


def wire_value(value: Any) -> Any:
    """What the core gets for an option value: people become UserRefs, the rest passes."""
    if isinstance(value, discord.User | discord.Member):
        return user_ref(value)
    return value


def user_ref(user: discord.User | discord.Member) -> UserRef:
    """The neutral identity of a Discord user."""
    return UserRef(PLATFORM, str(user.id), user.display_name)


def language_choices(
    current: str, *, many: bool, reader: Reader = ENGLISH
) -> list[app_commands.Choice[str]]:
    """Languages matching what was typed, in the reader's language; completes a list's last."""
    head, _, last = current.rpartition(",") if many else ("", "", current)
    word = last.strip().lower()
    taken = {code.strip().lower() for code in head.split(",") if code.strip()}
    prefix = f"{head.strip()}," if head.strip() else ""
    found = []
    for code, english in LANGUAGES.items():
        name = LanguageName(code).name(reader)
        if code in taken or not any(n.lower().startswith(word) for n in (code, english, name)):
            continue
        found.append(
            app_commands.Choice(
                name=f"{prefix}{code} ({name})"[:100], value=f"{prefix}{code}"[:100]
            )
        )
    return found[:MAX_CHOICES]


def name_choices(
    current: str, table: dict[str, str], also: dict[str, str] | None = None
) -> list[app_commands.Choice[str]]:
    """Codes whose code or name (or ``also`` name) starts with what was typed."""
    word = current.strip().lower()
    extra = also or {}
    return [
        app_commands.Choice(name=f"{code} ({name})"[:100] if name != code else code, value=code)
        for code, name in table.items()
        if any(n.lower().startswith(word) for n in (code, name, extra.get(code, code)))
    ][:MAX_CHOICES]


def _zones() -> dict[str, str]:
    return {zone: zone for zone in sorted(zoneinfo.available_timezones()) if "/" in zone}


# --- rendering --------------------------------------------------------------------------------


def render(reply: Reply) -> str:
    """The reply's Markdown, led by the mentions it means to make."""
    mentions = [f"<@{u.external_id}>" for u in reply.mentions if _pingable(u)]
    body = reply.body.markdown()
    return " ".join([*mentions, body]) if mentions else body


def allowed_mentions(users: Sequence[discord.abc.Snowflake]) -> discord.AllowedMentions:
    """Nobody is pinged but these users: never @everyone, never a role."""
    if not users:
        return PING_NOBODY
    return discord.AllowedMentions(
        everyone=False, roles=False, users=list(users), replied_user=False
    )


def message_extras(reply: Reply, *, last: bool) -> dict[str, Any]:
    """allowed_mentions always; the buttons and files go with the last part."""
    users = [discord.Object(int(u.external_id)) for u in reply.mentions if _pingable(u)]
    extras: dict[str, Any] = {"allowed_mentions": allowed_mentions(users)}
    if not last:
        return extras
    if reply.buttons:
        view = button_view(reply)
        if view is not None:
            extras["view"] = view
    if reply.attachments:
        extras["files"] = [to_file(a) for a in reply.attachments]
    return extras


def button_view(reply: Reply | Delivery) -> discord.ui.View | None:
    """A reply's or post's buttons as a view kept nowhere; clicks go to CommandButton."""
    given = reply.buttons
    buttons = [b for b in given if len(BUTTON_PREFIX + b.command) <= MAX_CUSTOM_ID and b.command]
    if len(buttons) < len(given):
        log.warning("dropped %d buttons whose command is too long", len(given) - len(buttons))
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    reader = reply.reader if isinstance(reply, Delivery) else ENGLISH  # replies come translated
    for button in buttons[:25]:
        view.add_item(CommandButton(button.command, reader.gettext(button.label)[:80]))
    view.stop()  # the registered dynamic item answers clicks, after restarts too
    return view


def to_file(attachment: Attachment) -> discord.File:
    """A reply attachment as an upload."""
    return discord.File(io.BytesIO(attachment.data), filename=attachment.filename)


def split_content(text: str, limit: int = MAX_CONTENT, max_parts: int = MAX_PARTS) -> list[str]:
    """Split at line breaks into at most ``max_parts`` messages Discord accepts."""
    if len(text) <= limit:
        return [text or "\u200b"]
    text = text[: limit * max_parts + 1]  # enough to fill every part: the rest is cut anyway
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current:
        parts.append(current)
    if len(parts) > max_parts or len(text) > limit * max_parts:
        parts = parts[:max_parts]
        parts[-1] = parts[-1][: limit - len(CUT)] + CUT
    return parts


def _pingable(user: UserRef) -> bool:
    return user.platform == PLATFORM and user.external_id.isdigit()


def _snowflake(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _nonce(key: str, where: str, part: int) -> str:
    """A stable nonce per outbox row and message part, so Discord drops a retried duplicate."""
    return hashlib.blake2b(f"{key}|{where}|{part}".encode(), digest_size=12).hexdigest()


async def _post(
    channel: discord.abc.Messageable,
    content: str,
    delivery: Delivery,
    where: str,
    users: Sequence[discord.abc.Snowflake],
) -> None:
    chunks = split_content(content)
    for i, chunk in enumerate(chunks):
        kwargs: dict[str, Any] = {}
        if i == len(chunks) - 1:
            if delivery.attachment is not None:
                kwargs["file"] = to_file(delivery.attachment)
            view = button_view(delivery)
            if view is not None:
                kwargs["view"] = view
        await channel.send(
            chunk,
            nonce=_nonce(delivery.key, where, i),
            allowed_mentions=allowed_mentions(users),
            **kwargs,
        )
