"""A wire-level Discord: the HTTP API v10 and the gateway, enough for unmodified discord.py.

It speaks plain JSON over HTTP and a zlib-free JSON websocket on 127.0.0.1, keeps the state a
test needs (registered commands, channels, messages, interactions) and records every request.
Tests drive it like Discord would: ``await fake.slash(alice, "task claim", id=7)`` dispatches an
INTERACTION_CREATE built from the commands the bot registered, and ``await inter.answer()``
waits for what the bot answered (the interaction callback, or the followup after a defer).

Faults on purpose: ``fail(...)`` answers the next matching requests with an error (429 with
``retry_after`` and a ``Via`` header, 500, 403 ...), ``drop_gateway()`` closes the websocket so
the client resumes, ``request_reconnect()`` asks it to (op 7), ``invalidate_session()`` makes
it identify again. ``fail_at_random(RandomFaults(...))`` answers matching requests with 429s
and 5xx at random (for chaos tests); with none set, nothing is random.
"""

import asyncio
import contextlib
import itertools
import json
import random
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

API = "/api/v10"
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
EPHEMERAL = 1 << 6
OPTION_TYPES = {"subcommand": 1, "string": 3, "integer": 4, "boolean": 5, "user": 6}
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 31)  # view channel, send, use commands


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with ``Content-Type: application/json`` exactly, as discord.py expects."""
    merged = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=json.dumps(data).encode(), status=status, headers=merged)


def error(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status)


@dataclass
class Recorded:
    """One HTTP request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]] = field(default_factory=list)
    status: int = 0


# A typed key: a plain string key makes aiohttp warn on the first request of a process, which
# the test run's warnings-as-errors turns into a 500 for that request.
RECORD = web.RequestKey("record", Recorded)


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``path`` with this instead."""

    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int
    after_handling: bool  # run the real handler first (the answer is lost, the effect is not)


@dataclass
class RandomFaults:
    """429s and 5xx at random on requests whose path matches ``path`` (a chaos test's).

    A 5xx normally comes before the request is handled (nothing happened); on ``lost_answer``
    paths it may come after, so the effect stays and only the answer is lost, which is what
    a nonce is for. ``injected`` counts what was answered, by kind.
    """

    rng: random.Random
    path: re.Pattern[str]
    rate_429: float = 0.1
    rate_5xx: float = 0.05
    lost_answer: re.Pattern[str] | None = None
    rate_lost: float = 0.2
    retry_after: tuple[float, float] = (0.05, 0.3)
    # discord.py retries these itself; a 503 it raises at once (the caller retries later).
    statuses: tuple[int, ...] = (500, 502, 504)
    lost_statuses: tuple[int, ...] = (500, 503)
    injected: Counter[str] = field(default_factory=Counter)

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault to answer this request with, if the dice say so."""
        if not self.path.search(path):
            return None
        roll = self.rng.random()
        if self.lost_answer is not None and self.lost_answer.search(path) and method == "POST":
            if roll < self.rate_lost:
                self.injected["lost answer"] += 1
                status = self.rng.choice(self.lost_statuses)
                return self._fault(method, status, after_handling=True)
            roll = self.rng.random()
        if roll < self.rate_429:
            self.injected["429"] += 1
            after = round(self.rng.uniform(*self.retry_after), 3)
            body = {"message": "You are being rate limited.", "retry_after": after,
                    "global": False}  # fmt: skip
            return Fault(method, self.path, 429, body, {"Via": "1.1 google"}, 1, False)
        if roll < self.rate_429 + self.rate_5xx:
            self.injected["5xx"] += 1
            return self._fault(method, self.rng.choice(self.statuses), after_handling=False)
        return None

    def _fault(self, method: str, status: int, *, after_handling: bool) -> Fault:
        body = {"message": "injected failure", "code": 0}
        return Fault(method, self.path, status, body, {}, 1, after_handling)


@dataclass
class User:
    """A person (or the bot) on the fake Discord."""

    id: int
    name: str
    bot: bool = False
    roles: list[int] = field(default_factory=list)
    permissions: int = MEMBER_PERMISSIONS
    dms_closed: bool = False
    # Whether this person is a member of the fake's own guild (the one the bot serves).
    in_guild: bool = True

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }

    def member(self, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "joined_at": "2025-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "permissions": str(self.permissions),
        }
        if with_user:
            data["user"] = self.payload()
        return data


@dataclass
class Upload:
    """A file a user attaches to a slash command's attachment option."""

    filename: str
    data: bytes
    content_type: str = "text/csv"


@dataclass
class Answer:
    """What the bot showed for an interaction: the message a user would see."""

    content: str
    flags: int
    components: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None
    files: list[tuple[str, bytes]]
    message: dict[str, Any]

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for row in self.components for c in row.get("components", [])]


class Interaction:
    """One INTERACTION_CREATE the fake sent, and everything the bot answered to it."""

    def __init__(self, fake: "FakeDiscord", data: dict[str, Any]) -> None:
        self.fake = fake
        self.data = data
        self.id = int(data["id"])
        self.token: str = data["token"]
        self.callbacks: list[dict[str, Any]] = []
        self.followups: list[dict[str, Any]] = []
        self.original: dict[str, Any] | None = None
        self.deferred = False
        self.dispatched_at = 0.0
        self.callback_at = 0.0
        self._answered = asyncio.Event()
        self.answers: list[Answer] = []
        self.choices: list[dict[str, Any]] | None = None

    def _record_answer(
        self, message: dict[str, Any], payload: dict[str, Any], files: list
    ) -> None:
        self.answers.append(
            Answer(
                content=message.get("content", ""),
                flags=message.get("flags", 0),
                components=message.get("components", []),
                allowed_mentions=payload.get("allowed_mentions"),
                files=files,
                message=message,
            )
        )
        self._answered.set()

    async def answer(self, seconds: float = 10.0) -> Answer:
        """The first message shown for this interaction (callback, or the reply after a defer)."""
        await asyncio.wait_for(self._answered.wait(), seconds)
        return self.answers[0]

    async def autocomplete_choices(self, seconds: float = 10.0) -> list[dict[str, Any]]:
        await asyncio.wait_for(self._answered.wait(), seconds)
        assert self.choices is not None, "not an autocomplete answer"
        return self.choices


class Session:
    """A gateway session: its sequence, its events (for RESUME) and its live socket."""

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.seq = 0
        self.events: list[dict[str, Any]] = []
        self.ws: web.WebSocketResponse | None = None


class FakeDiscord:
    """The HTTP API and gateway on one aiohttp server."""

    def __init__(
        self, *, token: str = "fake-token", guild_id: int = 4100, channel_id: int = 4200
    ) -> None:
        self.token = token
        self._ids = itertools.count(1_300_000_000_000_000_000)
        self.bot = User(self.next_id(), "volunteer-bot", bot=True)
        self.application_id = self.next_id()
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.guilds: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.users: dict[int, User] = {}
        self.uploads: dict[int, Upload] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.interactions: dict[int, Interaction] = {}
        self._by_token: dict[str, Interaction] = {}
        self.faults: list[Fault] = []
        self.random_faults: RandomFaults | None = None
        self.sessions: dict[str, Session] = {}
        self.active: Session | None = None
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self._connected = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Permissions a role grants in the guild (everything else: plain member rights).
        self.role_permissions: dict[int, int] = {}
        self.add_guild(guild_id, [channel_id])

    # --- set-up --------------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def add_guild(self, guild_id: int, channel_ids: list[int]) -> None:
        self.guilds[guild_id] = {"id": guild_id, "channels": channel_ids}
        for cid in channel_ids:
            self.channels[cid] = {
                "id": str(cid),
                "type": 0,
                "guild_id": str(guild_id),
                "name": f"channel-{cid}",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "flags": 0,
            }

    def user(
        self,
        name: str,
        *,
        roles: list[int] | None = None,
        permissions: int = MEMBER_PERMISSIONS,
        dms_closed: bool = False,
        in_guild: bool = True,
    ) -> User:
        person = User(
            self.next_id(), name, roles=roles or [], permissions=permissions,
            dms_closed=dms_closed, in_guild=in_guild,
        )  # fmt: skip
        self.users[person.id] = person
        return person

    async def start(self) -> "FakeDiscord":
        app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024 * 1024)
        r = app.router
        r.add_get("/gateway", self._gateway)
        r.add_get("/resume", self._gateway)
        r.add_get(API + "/gateway", self._get_gateway)
        r.add_get(API + "/gateway/bot", self._get_gateway_bot)
        r.add_get(API + "/users/@me", self._me)
        r.add_get(API + "/oauth2/applications/@me", self._application)
        r.add_get(API + "/users/{user_id}", self._get_user)
        r.add_get(API + "/guilds/{guild}/members/{user_id}", self._get_member)
        r.add_post(API + "/users/@me/channels", self._open_dm)
        r.add_put(API + "/applications/{app}/commands", self._put_commands)
        r.add_put(API + "/applications/{app}/guilds/{guild}/commands", self._put_commands)
        r.add_get(API + "/applications/{app}/commands", self._get_commands)
        r.add_get(API + "/applications/{app}/guilds/{guild}/commands", self._get_commands)
        r.add_post(API + "/interactions/{id}/{token}/callback", self._callback)
        r.add_post(API + "/webhooks/{app}/{token}", self._followup)
        r.add_get(API + "/webhooks/{app}/{token}/messages/{message}", self._get_webhook_message)
        r.add_patch(API + "/webhooks/{app}/{token}/messages/{message}", self._edit_webhook_message)
        r.add_delete(
            API + "/webhooks/{app}/{token}/messages/{message}", self._delete_webhook_message
        )
        r.add_post(API + "/channels/{channel}/messages", self._post_message)
        r.add_get(API + "/channels/{channel}", self._get_channel)
        r.add_get("/uploads/{id}/{name}", self._get_upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                with contextlib.suppress(Exception):
                    await session.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # --- faults and assertions ------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 429,
        times: int = 1,
        retry_after: float = 0.2,
        code: int = 0,
        after_handling: bool = False,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``path`` with an error."""
        if status == 429:
            body: dict[str, Any] = {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            }
            headers = {"Via": "1.1 google"} if via else {}
        else:
            body, headers = {"message": "injected failure", "code": code}, {}
        self.faults.append(
            Fault(method.upper(), re.compile(path), status, body, headers, times, after_handling)
        )

    def fail_at_random(self, faults: RandomFaults | None) -> None:
        """Answer matching requests with random faults from now on (None: stop)."""
        self.random_faults = faults

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        pattern = re.compile(path)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    async def wait_connected(self, *, after: int = 0, seconds: float = 15.0) -> Session:
        """Until more than ``after`` IDENTIFYs came and the active session's socket is open."""

        def ready() -> bool:
            return (
                len(self.identifies) > after
                and self.active is not None
                and self._live(self.active)
            )

        async with self._connected:
            await asyncio.wait_for(self._connected.wait_for(ready), seconds)
        assert self.active is not None
        return self.active

    async def wait_for(self, predicate: Any, seconds: float = 10.0) -> None:
        """Poll a condition on the fake's state (for effects with no interaction to await)."""

        async def poll() -> None:
            while not predicate():  # noqa: ASYNC110 - the fake's state has no event to wait on
                await asyncio.sleep(0.02)

        await asyncio.wait_for(poll(), seconds)

    @staticmethod
    def _live(session: Session) -> bool:
        return session.ws is not None and not session.ws.closed

    # --- HTTP plumbing --------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in ("/gateway", "/resume") or request.path.startswith("/uploads/"):
            return await handler(request)  # the gateway, and the CDN serving attachments
        record = Recorded(
            request.method, request.path.removeprefix(API), dict(request.query), None
        )
        if request.content_type == "application/json" and request.can_read_body:
            record.json = await request.json()
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    record.json = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    record.files.append((part.filename or "", bytes(await part.read())))  # type: ignore[union-attr]
        request[RECORD] = record
        self.requests.append(record)
        webhook = record.path.startswith(("/webhooks/", "/interactions/"))
        if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            record.status = 401
            return error(401, 0, "401: Unauthorized")
        fault = next(
            (
                f
                for f in self.faults
                if f.method == request.method and f.path.search(record.path) and f.times > 0
            ),
            None,
        )
        if fault is not None:
            fault.times -= 1
        elif self.random_faults is not None:
            fault = self.random_faults.pick(request.method, record.path)
        if fault is not None:
            if fault.after_handling:
                await handler(request)
            record.status = fault.status
            return json_response(fault.body, fault.status, fault.headers)
        response = await handler(request)
        record.status = response.status
        return response

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _me(self, request: web.Request) -> web.Response:
        return json_response(self.bot.payload())

    async def _application(self, request: web.Request) -> web.Response:
        owner = User(1, "owner").payload()
        return json_response(
            {
                "id": str(self.application_id),
                "name": "volunteer-bot",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": owner,
                "verify_key": "00",
                "flags": 0,
                "team": None,
                "summary": "",
                "rpc_origins": [],
                "bot": self.bot.payload(),
                "interactions_endpoint_url": None,
            }
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        person = self.users.get(int(request.match_info["user_id"]))
        if person is None:
            return error(404, 10013, "Unknown User")
        return json_response(person.payload())

    async def _get_member(self, request: web.Request) -> web.Response:
        person = self.users.get(int(request.match_info["user_id"]))
        if int(request.match_info["guild"]) != self.guild_id or person is None:
            return error(404, 10007, "Unknown Member")
        if not person.in_guild:
            return error(404, 10007, "Unknown Member")
        member = person.member()
        del member["permissions"]  # only interactions carry resolved permissions
        return json_response(member)

    async def _get_upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(int(request.match_info["id"]))
        if upload is None or upload.filename != request.match_info["name"]:
            return error(404, 0, "Not Found")
        return web.Response(body=upload.data, content_type=upload.content_type)

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(int(request.match_info["channel"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        return json_response(channel)

    async def _open_dm(self, request: web.Request) -> web.Response:
        body = request[RECORD].json
        person = self.users.get(int(body["recipient_id"]))
        if person is None:
            return error(400, 50035, "Invalid Form Body")
        dm_id = person.id + 1  # one DM channel per person, stable
        self.channels.setdefault(
            dm_id,
            {
                "id": str(dm_id),
                "type": 1,
                "last_message_id": None,
                "recipients": [person.payload()],
                "dm_of": person.id,
            },
        )
        return json_response(self.channels[dm_id])

    # --- commands -------------------------------------------------------------------------

    async def _put_commands(self, request: web.Request) -> web.Response:
        if int(request.match_info["app"]) != self.application_id:
            return error(403, 50001, "Missing Access")
        guild = request.match_info.get("guild")
        scope = int(guild) if guild else None
        registered = []
        for command in request[RECORD].json:
            stored = {
                **command,
                "id": str(self.next_id()),
                "application_id": str(self.application_id),
                "version": str(self.next_id()),
                "type": command.get("type", 1),
            }
            if scope is not None:
                stored["guild_id"] = str(scope)
            stored.setdefault("default_member_permissions", None)
            stored.setdefault("nsfw", False)
            registered.append(stored)
        self.commands[scope] = registered
        return json_response(registered)

    async def _get_commands(self, request: web.Request) -> web.Response:
        guild = request.match_info.get("guild")
        return json_response(self.commands.get(int(guild) if guild else None, []))

    def find_command(self, name: str, guild_id: int | None) -> dict[str, Any]:
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name:
                    return command
        raise AssertionError(f"/{name} is not registered (guild {guild_id})")

    # --- interactions ---------------------------------------------------------------------

    def _interaction(
        self,
        kind: int,
        user: User,
        data: dict[str, Any],
        *,
        guild: bool,
        channel_id: int | None,
        message: dict[str, Any] | None = None,
        guild_id: int | None = None,
        locale: str = "en-GB",
    ) -> Interaction:
        channel_id = channel_id or self.channel_id
        guild_id = guild_id or self.guild_id
        payload: dict[str, Any] = {
            "id": str(self.next_id()),
            "application_id": str(self.application_id),
            "type": kind,
            "token": "itk-" + secrets.token_urlsafe(24),
            "version": 1,
            "data": data,
            "channel_id": str(channel_id),
            "channel": self.channels.get(channel_id, {"id": str(channel_id), "type": 0}),
            "locale": locale,
            "app_permissions": str(MEMBER_PERMISSIONS),
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0 if guild else 1,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["member"] = user.member()
            granted = [self.role_permissions.get(role, 0) for role in user.roles]
            payload["member"]["permissions"] = str(user.permissions | sum(set(granted)))
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = message
        interaction = Interaction(self, payload)
        self.interactions[interaction.id] = interaction
        self._by_token[interaction.token] = interaction
        return interaction

    def _options(
        self,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        resolved: dict[str, Any],
        *,
        focused: str | None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        out = []
        for name, value in values.items():
            option = by_name.get(name)
            if option is None:
                raise AssertionError(
                    f"option {name!r} is not registered; known: {sorted(by_name)}"
                )
            if isinstance(value, User):
                resolved.setdefault("users", {})[str(value.id)] = value.payload()
                resolved.setdefault("members", {})[str(value.id)] = value.member(with_user=False)
                value = str(value.id)
            elif isinstance(value, Upload):
                upload_id = self.next_id()
                self.uploads[upload_id] = value
                url = f"http://127.0.0.1:{self.port}/uploads/{upload_id}/{value.filename}"
                resolved.setdefault("attachments", {})[str(upload_id)] = {
                    "id": str(upload_id), "filename": value.filename, "size": len(value.data),
                    "url": url, "proxy_url": url, "content_type": value.content_type,
                }  # fmt: skip
                value = str(upload_id)
            entry = {"name": name, "type": option["type"], "value": value}
            if name == focused:
                entry["focused"] = True
            out.append(entry)
        return out

    async def slash(
        self,
        user: User,
        command: str,
        /,
        *,
        guild: bool = True,
        guild_id: int | None = None,
        channel_id: int | None = None,
        focused: str | None = None,
        locale: str = "en-GB",
        **values: Any,
    ) -> Interaction:
        """Send ``/command`` as ``user`` with option values, as registered by the bot.

        ``locale`` is the language the user's Discord client is set to.

        ``guild_id`` sends it from another server than the fake's own (one that added the
        bot), with the same commands; ``guild=False`` sends it as a direct message.
        """
        words = command.split()
        # A direct message takes the guild's command schema when no global one is registered,
        # as a command (or a button) that Discord would deliver there.
        top = self.find_command(words[0], self.guild_id)
        data: dict[str, Any] = {"id": top["id"], "name": top["name"], "type": 1}
        if "guild_id" in top:
            data["guild_id"] = top["guild_id"]
        resolved: dict[str, Any] = {}
        if len(words) > 1:
            sub = next(
                (o for o in top.get("options", []) if o["name"] == words[1] and o["type"] == 1),
                None,
            )
            if sub is None:
                raise AssertionError(f"/{command} is not registered")
            inner = self._options(sub.get("options", []), values, resolved, focused=focused)
            data["options"] = [{"name": sub["name"], "type": 1, "options": inner}]
        else:
            data["options"] = self._options(
                top.get("options", []), values, resolved, focused=focused
            )
        if resolved:
            data["resolved"] = resolved
        kind = 4 if focused else 2
        interaction = self._interaction(
            kind, user, data, guild=guild, channel_id=channel_id, guild_id=guild_id,
            locale=locale,
        )  # fmt: skip
        interaction.dispatched_at = asyncio.get_running_loop().time()
        await self.dispatch("INTERACTION_CREATE", interaction.data)
        return interaction

    async def click(self, user: User, message: dict[str, Any], custom_id: str) -> Interaction:
        """Press the button ``custom_id`` under ``message``."""
        ids = [
            c.get("custom_id")
            for row in message.get("components", [])
            for c in row.get("components", [])
        ]
        assert custom_id in ids, f"{custom_id!r} is not under that message: {ids}"
        data = {"custom_id": custom_id, "component_type": 2}
        channel_id = int(message["channel_id"])
        interaction = self._interaction(
            3, user, data, guild=True, channel_id=channel_id, message=message
        )
        interaction.dispatched_at = asyncio.get_running_loop().time()
        await self.dispatch("INTERACTION_CREATE", interaction.data)
        return interaction

    def _message(
        self,
        channel_id: int,
        payload: dict[str, Any],
        *,
        flags: int = 0,
        interaction: Interaction | None = None,
        files: list | None = None,
    ) -> dict[str, Any]:
        message_id = self.next_id()
        attachments = [
            {
                "id": str(self.next_id()),
                "filename": name,
                "size": len(data),
                "url": f"http://127.0.0.1:{self.port}/a/{name}",
                "proxy_url": f"http://127.0.0.1:{self.port}/a/{name}",
            }
            for name, data in (files or [])
        ]
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": self.bot.payload(),
            "content": payload.get("content") or "",
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [],
            "pinned": False,
            "type": 20 if interaction else 0,
            "flags": flags | int(payload.get("flags") or 0),
            "components": payload.get("components") or [],
        }
        if payload.get("nonce") is not None:
            message["nonce"] = payload["nonce"]
        channel = self.channels.get(channel_id, {})
        if "guild_id" in channel:
            message["guild_id"] = channel["guild_id"]
        if interaction is not None:
            message["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.data["type"],
                "user": (interaction.data.get("member") or interaction.data)["user"],
                "authorizing_integration_owners": {},
            }
            message["webhook_id"] = str(self.application_id)
        self.messages[message_id] = message
        return message

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(request.match_info["id"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            return error(404, 10062, "Unknown interaction")
        if interaction.callbacks:
            return error(400, 40060, "Interaction has already been acknowledged.")
        record: Recorded = request[RECORD]
        body = record.json
        interaction.callbacks.append(body)
        interaction.callback_at = asyncio.get_running_loop().time()
        kind = body["type"]
        data = body.get("data") or {}
        channel_id = int(interaction.data["channel_id"])
        resource: dict[str, Any] = {"type": kind}
        if kind == 4:
            message = self._message(channel_id, data, interaction=interaction, files=record.files)
            interaction.original = message
            interaction._record_answer(message, data, record.files)
            resource["message"] = message
        elif kind == 5:
            interaction.deferred = True
            interaction.original = self._message(
                channel_id, {"content": "", "flags": data.get("flags", 0)}, interaction=interaction
            )
            resource["message"] = interaction.original
        elif kind == 6:
            interaction.deferred = True
        elif kind == 8:
            interaction.choices = data.get("choices", [])
            interaction._answered.set()
        response = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.data["type"],
                "response_message_id": resource.get("message", {}).get("id"),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            },
            "resource": resource,
        }
        return json_response(response)

    def _webhook_interaction(self, request: web.Request) -> Interaction | None:
        if int(request.match_info["app"]) != self.application_id:
            return None
        return self._by_token.get(request.match_info["token"])

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction is None or not interaction.callbacks:
            return error(404, 10015, "Unknown Webhook")
        record: Recorded = request[RECORD]
        payload = record.json or {}
        message = self._message(
            int(interaction.data["channel_id"]),
            payload,
            interaction=interaction,
            files=record.files,
        )
        interaction.followups.append(message)
        interaction._record_answer(message, payload, record.files)
        return json_response(message)

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction is None or interaction.original is None:
            return error(404, 10008, "Unknown Message")
        return json_response(interaction.original)

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction is None or interaction.original is None:
            return error(404, 10008, "Unknown Message")
        record: Recorded = request[RECORD]
        payload = record.json or {}
        message = interaction.original
        for key in ("content", "components"):
            if key in payload:
                message[key] = payload[key]
        message["edited_timestamp"] = now_iso()
        if interaction.deferred and not interaction.answers:
            interaction._record_answer(message, payload, record.files)
        return json_response(message)

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction is None or interaction.original is None:
            return error(404, 10008, "Unknown Message")
        self.messages.pop(int(interaction.original["id"]), None)
        interaction.original = None
        return web.Response(status=204)

    # --- channel messages -----------------------------------------------------------------

    async def _post_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        channel = self.channels.get(channel_id)
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if "dm_of" in channel and self.users[channel["dm_of"]].dms_closed:
            return error(403, 50007, "Cannot send messages to this user")
        record: Recorded = request[RECORD]
        payload = record.json or {}
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            for existing in self.channel_messages(channel_id):
                if existing.get("nonce") == nonce:
                    return json_response(existing)
        return json_response(self._message(channel_id, payload, files=record.files))

    # --- gateway --------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH on the active session; kept for RESUME if the socket is down."""
        session = self.active
        assert session is not None, "no client has connected"
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if self._live(session):
            assert session.ws is not None
            with contextlib.suppress(ConnectionResetError):
                await session.ws.send_str(json.dumps(frame))

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the live socket with a resumable code; the client should RESUME."""
        assert self.active is not None and self.active.ws is not None
        await self.active.ws.close(code=code)

    async def request_reconnect(self) -> None:
        """Ask the client to reconnect and resume (op 7), as Discord does when moving it."""
        assert self.active is not None and self.active.ws is not None
        await self.active.ws.send_str(json.dumps({"op": 7, "d": None}))

    def live(self) -> bool:
        """Whether the active session's socket is open (dispatches reach the client now)."""
        return self.active is not None and self._live(self.active)

    async def invalidate_session(self) -> None:
        """Tell the client its session is gone; it must IDENTIFY again (a new READY)."""
        assert self.active is not None and self.active.ws is not None
        await self.active.ws.send_str(json.dumps({"op": 9, "d": False}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        session: Session | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op, data = frame.get("op"), frame.get("d")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    session = await self._identify(ws, data)
                    if session is None:
                        break
                elif op == 6:
                    session = await self._resume(ws, data)
        finally:
            if session is not None and session.ws is ws:
                session.ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        if int(data.get("intents", 0)) & PRIVILEGED_INTENTS:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        session = Session(secrets.token_hex(16))
        self.sessions[session.id] = session
        session.ws = ws
        async with self._connected:
            self.active = session
            self._connected.notify_all()
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self.bot.payload(),
                "session_type": "normal",
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                "session_id": session.id,
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume",
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "geo_ordered_rtc_regions": [],
            },
        )
        for guild_id, guild in self.guilds.items():
            await self.dispatch("GUILD_CREATE", self._guild_payload(guild_id, guild))
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        self.resumes.append(data)
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self.token:
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return None
        session.ws = ws
        for frame in session.events:
            if frame["s"] > (data.get("seq") or 0):
                await ws.send_str(json.dumps(frame))
        async with self._connected:
            self.active = session
            self._connected.notify_all()
        await self.dispatch("RESUMED", {})
        return session

    def _guild_payload(self, guild_id: int, guild: dict[str, Any]) -> dict[str, Any]:
        everyone = {
            "id": str(guild_id),
            "name": "@everyone",
            "permissions": str(MEMBER_PERMISSIONS),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        role_ids = sorted({role for person in self.users.values() for role in person.roles})
        role_ids = sorted(set(role_ids) | set(self.role_permissions))
        roles = [everyone] + [
            {
                **everyone,
                "id": str(role),
                "name": f"role-{role}",
                "position": i + 1,
                "permissions": str(self.role_permissions.get(role, MEMBER_PERMISSIONS)),
            }
            for i, role in enumerate(role_ids)
        ]
        return {
            "id": str(guild_id),
            "name": f"guild-{guild_id}",
            "icon": None,
            "owner_id": "1",
            "unavailable": False,
            "member_count": 2,
            "large": False,
            "features": [],
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "members": [],
            "presences": [],
            "voice_states": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "channels": [self.channels[c] for c in guild["channels"]],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "afk_timeout": 300,
            "system_channel_flags": 0,
            "nsfw_level": 0,
            "joined_at": now_iso(),
        }
