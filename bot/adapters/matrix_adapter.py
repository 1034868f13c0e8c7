"""Matrix: ``!`` commands in rooms, ✋ reactions on task posts, m.notice replies, outbox posts.

The adapter runs its own sync loop on matrix-nio's ``AsyncClient``. The sync position is kept
in the bot's database after each handled batch, so a restart answers what was said while the
bot was down exactly once, and nothing older. Encrypted rooms are not served.

Who is a coordinator is decided by :mod:`bot.rights` from the campaign's configured rooms
only: this adapter reports each sender's power level there (and whether they created one), and
answers commands from other rooms only as ``[bot] answer_elsewhere`` allows.
"""

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginError,
    MatrixRoom,
    MessageDirection,
    RoomCreateError,
    RoomMessagesError,
    RoomPreset,
    RoomResolveAliasError,
    RoomSendError,
    SyncError,
    SyncResponse,
    UploadError,
    WhoamiError,
)

from bot import replies
from bot.context import Actor, Attachment, Ctx, Place, Reply
from bot.domain import Markup, UserRef
from bot.outbox import Delivery, PermanentDeliveryError
from bot.rights import PlaceKind, Standing
from storage.leases import AlreadyTakenOn

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import MatrixSection

log = logging.getLogger(__name__)

PLATFORM = "matrix"
NEXT_BATCH_KEY = "matrix:next_batch"
SUBJECT_KEY = "matrix:subject:{event_id}"
DM_KEY = "matrix:dm:{user_id}"
CREDENTIALS_FILE = "credentials.json"
# Custom content key on the bot's own replies naming the event they answer: seen again after
# a crash (before the sync position was saved), it keeps a command from being answered twice.
ANSWERS_KEY = "org.volunteer_bot.answers"

SYNC_TIMEOUT_MS = 30_000
TIMELINE_LIMIT = 20
GAP_PAGE = 100
GAP_MAX_EVENTS = 2_000
REMEMBERED_EVENTS = 5_000
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
STOP_GRACE = 15.0
MAX_429_RETRIES = 3
MAX_TIMEOUT_RETRIES = 2

CLAIM_EMOJI = "✋"
# A reaction on a message that carried a subject runs a command as the person reacting.
REACTIONS: dict[tuple[str, str], str] = {("task", CLAIM_EMOJI): "task claim {id}"}
# Variation selectors and skin tones do not change what a reaction means.
_EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")
_PILL = re.compile(r"^https://matrix\.to/#/(@[^/?#]+|%40[^/?#]+)")
_SILENT_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
# Errors after which retrying the same request can never succeed.
_PERMANENT_ERRCODES = frozenset({"M_FORBIDDEN", "M_NOT_FOUND", "M_UNKNOWN_ROOM", "M_BAD_JSON"})

# Room versions in which the creator is an ordinary power-level holder; in later ones
# (12 on) creators outrank every power level and are not listed in m.room.power_levels.
_POWER_LEVEL_CREATOR_VERSIONS = frozenset(str(v) for v in range(1, 12))

_R = TypeVar("_R")


def sync_filter(timeline_limit: int) -> dict[str, Any]:
    """The filter every sync uses: no presence, typing, receipts or account data."""
    room = dict(_SILENT_FILTER["room"], timeline={"limit": timeline_limit})
    return dict(_SILENT_FILTER, room=room)


class MatrixFatalError(Exception):
    """A problem no retry can fix (rejected credentials, missing configuration)."""


class MatrixSendError(Exception):
    """The homeserver refused a message; ``errcode`` says why."""

    def __init__(self, errcode: str | None) -> None:
        super().__init__(f"the homeserver refused the message ({errcode or 'no error code'})")
        self.errcode = errcode


@dataclass(frozen=True, slots=True)
class Answer:
    """How to answer an event: which event it answers, as a reply to what, in which thread."""

    answers: str
    reply_to: str
    thread: str | None = None
    mention: str | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access token and its device, as obtained by a password login."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str

    def __repr__(self) -> str:
        return "Credentials(...)"


class MatrixAdapter:
    """Serves the rooms the bot account is joined to."""

    platform = PLATFORM

    def __init__(self, app: "App") -> None:
        self.app = app
        self.config: MatrixSection = app.settings.matrix
        self.prefix = self.config.command_prefix or app.settings.bot.command_prefix
        self.rights = app.services.rights
        self.client: AsyncClient | None = None
        self.user_id = self.config.user_id
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._configured_rooms: set[str] = set()
        self._creators: dict[str, frozenset[str]] = {}
        self._handled: OrderedDict[str, None] = OrderedDict()
        nio_log = logging.getLogger("nio")
        if nio_log.level == logging.NOTSET:
            # matrix-nio logs every event it handles at INFO, with room and user ids.
            nio_log.setLevel(logging.WARNING)

    def __repr__(self) -> str:
        return f"MatrixAdapter(homeserver={self.config.homeserver!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting and serving in the background; never blocks on the network."""
        if self._task is None:
            self._stopping.clear()
            self._closed.clear()
            self._task = asyncio.create_task(self._run(), name="matrix-sync")

    async def stop(self) -> None:
        """Finish the batch being handled, save the sync position, and disconnect."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE)
            except TimeoutError:
                log.warning("matrix: handling did not finish in %.0f s; stopping", STOP_GRACE)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except asyncio.CancelledError:
                self._task.cancel()
                raise
            self._task = None
        if self.client is not None:
            await self.client.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        """Return when the adapter gave up for good (e.g. its credentials were rejected)."""
        await self._closed.wait()

    async def _run(self) -> None:
        try:
            if not await self._connect():
                return
            if not self.config.rooms:
                log.warning("matrix.rooms is empty: no room is the campaign's, so only people "
                            "named in matrix.coordinators are coordinators")  # fmt: skip
            await self._join_configured_rooms()
            self.app.services.outbox.register(PLATFORM, self.deliver)
            await self._sync_loop()
        except MatrixFatalError as exc:
            log.error("matrix adapter stopped: %s", exc)
            self._closed.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("matrix adapter stopped unexpectedly")
            self._closed.set()

    async def _until_stopped(self, awaitable: Awaitable[_R]) -> _R | None:
        """Await a network call, abandoning it (None) when the adapter is stopping."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        return None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- login -------------------------------------------------------------------------------

    async def _connect(self) -> bool:
        """Authenticate, retrying while the homeserver is unreachable; False if stopped."""
        if not self.config.homeserver:
            raise MatrixFatalError("matrix.homeserver is not set")
        self.client = AsyncClient(
            self.config.homeserver,
            self.config.user_id,
            device_id=self.config.device_id,
            config=AsyncClientConfig(
                max_limit_exceeded=MAX_429_RETRIES,
                max_timeouts=MAX_TIMEOUT_RETRIES,
                encryption_enabled=False,
                store_sync_tokens=False,
            ),
        )
        delay = BACKOFF_FIRST
        while not self._stopping.is_set():
            try:
                await self._authenticate(self.client)
                return True
            except MatrixFatalError:
                raise
            except Exception as exc:
                log.warning(
                    "matrix: cannot reach the homeserver (%s); retrying in %.0f s",
                    type(exc).__name__,
                    delay,
                )
            await self._pause(delay)
            delay = min(delay * 2, BACKOFF_MAX)
        return False

    async def _authenticate(self, client: AsyncClient) -> None:
        config = self.config
        if config.access_token is not None:
            client.access_token = config.access_token.get_secret_value()
            if not await self._check_token(client):
                raise MatrixFatalError("the homeserver rejected matrix.access_token")
            return
        if config.password is None:
            raise MatrixFatalError("set matrix.access_token or matrix.password")
        if not config.user_id:
            raise MatrixFatalError("matrix.user_id is needed to log in with a password")
        saved = self._load_credentials()
        if saved is not None:
            client.access_token = saved.access_token
            client.device_id = saved.device_id
            if await self._check_token(client):
                return
            log.warning("matrix: the kept access token was rejected; logging in again")
        response = await client.login(
            password=config.password.get_secret_value(), device_name="volunteer-bot"
        )
        if isinstance(response, LoginError):
            if response.status_code == "M_LIMIT_EXCEEDED":
                raise ConnectionError("login rate-limited")
            raise MatrixFatalError(f"password login failed ({response.status_code})")
        self._save_credentials(
            Credentials(
                config.homeserver, response.user_id, response.device_id, response.access_token
            )
        )
        log.info("matrix: logged in with the password; the access token is kept for restarts")

    async def _check_token(self, client: AsyncClient) -> bool:
        """Whether the token is accepted; fills in the user and device it belongs to."""
        response = await client.whoami()
        if isinstance(response, WhoamiError):
            if response.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN"):
                return False
            raise ConnectionError(f"whoami failed ({response.status_code})")
        if self.config.user_id and response.user_id != self.config.user_id:
            raise MatrixFatalError("the access token belongs to another account than user_id")
        client.user_id = self.user_id = response.user_id
        if response.device_id:
            client.device_id = response.device_id
        return True

    @property
    def _credentials_path(self) -> Path:
        return Path(self.config.store_path) / CREDENTIALS_FILE

    def _load_credentials(self) -> Credentials | None:
        try:
            data = json.loads(self._credentials_path.read_text(encoding="utf-8"))
            saved = Credentials(**{k: str(data[k]) for k in Credentials.__slots__})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if (saved.homeserver, saved.user_id) != (self.config.homeserver, self.config.user_id):
            return None
        return saved

    def _save_credentials(self, credentials: Credentials) -> None:
        """Write the token readable by the bot's own user only."""
        path = self._credentials_path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {k: getattr(credentials, k) for k in Credentials.__slots__}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            json.dump(data, fh)

    # -- rooms and invites -------------------------------------------------------------------

    async def _join_configured_rooms(self) -> None:
        for room in self.config.rooms:
            try:
                await self._join_configured_room(room)
            except Exception as exc:  # one unreachable room must not keep the others unserved
                log.warning("matrix: cannot join room %s (%s)", room, exc.__class__.__name__)

    async def _join_configured_room(self, room: str) -> None:
        client = self._client
        room_id = room
        if room.startswith("#"):
            resolved = await client.room_resolve_alias(room)
            if isinstance(resolved, RoomResolveAliasError):
                log.warning("matrix: room alias %s unknown (%s)", room, resolved.status_code)
                return
            room_id = resolved.room_id
        self._configured_rooms.add(room_id)
        self.rights.add_campaign_place(f"{PLATFORM}:{room_id}")
        joined = await client.join(room_id)
        if isinstance(joined, JoinError):
            log.warning("matrix: cannot join room %s (%s)", room, joined.status_code)

    def invite_allowed(self, room_id: str, inviter: str | None) -> bool:
        """Whether an invite comes from an allowed user or server, or for a configured room."""
        if room_id in self._configured_rooms:
            return True
        if not inviter:
            return False
        for allowed in self.config.invite_allowlist:
            if inviter == allowed or (allowed.startswith(":") and inviter.endswith(allowed)):
                return True
        return False

    async def _handle_invites(self, invites: dict[str, Any]) -> None:
        for room_id, info in invites.items():
            inviter = None
            for event in info.invite_state:
                # nio keeps the stripped member event without its content.
                src = getattr(event, "source", {})
                if (src.get("type"), src.get("state_key")) == ("m.room.member", self.user_id):
                    inviter = src.get("sender")
            if not self.invite_allowed(room_id, inviter):
                log.info("matrix: ignored an invite from outside the allowlist")
                continue
            joined = await self._client.join(room_id)
            if isinstance(joined, JoinError):
                log.warning("matrix: cannot accept an invite (%s)", joined.status_code)
            else:
                log.info("matrix: accepted an invite")

    # -- the sync loop -----------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        client = self._client
        state = self.app.services.state
        since = await state.get(NEXT_BATCH_KEY)
        first = True
        delay = BACKOFF_FIRST
        while not self._stopping.is_set():
            try:
                if first:
                    # Full room state (names, power levels); history skipped on a first start.
                    request = client.sync(
                        timeout=0,
                        since=since,
                        full_state=True,
                        sync_filter=sync_filter(TIMELINE_LIMIT if since else 0),
                    )
                else:
                    request = client.sync(
                        timeout=SYNC_TIMEOUT_MS,
                        since=since,
                        sync_filter=sync_filter(TIMELINE_LIMIT),
                    )
                response = await self._until_stopped(request)
                if response is None:
                    break
                if isinstance(response, SyncError):
                    if response.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
                        raise MatrixFatalError("the homeserver no longer accepts the access token")
                    log.warning(
                        "matrix: sync failed (%s); retrying in %.0f s", response.status_code, delay
                    )
                    await self._pause(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                if not await self._handle_sync(response, since):
                    break  # the lease moved to another process mid-batch: it carries on
                fence = self.app.leases.fence(PLATFORM)
                if fence is None or not await state.set(
                    NEXT_BATCH_KEY, response.next_batch, self.app.clock.now(), fence=fence
                ):
                    break  # another process serves Matrix now; its position stands
                since = response.next_batch
                delay = BACKOFF_FIRST
                if first:
                    first = False
                    await self._send_kept_answers()
                    self.ready.set()
                    log.info("matrix: ready, %d rooms joined", len(response.rooms.join))
            except (MatrixFatalError, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.warning(
                    "matrix: sync failed (%s); retrying in %.0f s", type(exc).__name__, delay
                )
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def _handle_sync(self, response: SyncResponse, since: str | None) -> bool:
        """Handle one sync's invites and events; False if this process stopped serving."""
        await self._handle_invites(response.rooms.invite)
        for room_id, info in response.rooms.join.items():
            events = [e.source for e in info.timeline.events if hasattr(e, "source")]
            for event in [*(getattr(e, "source", {}) for e in info.state), *events]:
                if event.get("type") == "m.room.create":
                    self._note_creators(room_id, event)
            if info.timeline.limited and since and info.timeline.prev_batch:
                events = await self._fill_gap(room_id, info.timeline.prev_batch, since) + events
            events = self._after_own_join(events)
            answered = {
                str(e["content"][ANSWERS_KEY])
                for e in events
                if e.get("sender") == self.user_id and ANSWERS_KEY in (e.get("content") or {})
            }
            room = self._client.rooms.get(room_id)
            if room is None:
                continue
            for event in events:
                event_id = event.get("event_id")
                if not event_id or event_id in answered:
                    continue
                if not self.app.leases.holds(PLATFORM):
                    return False
                if not self._first_sight(event_id):
                    continue
                try:
                    await self._handle_event(room, event)
                except AlreadyTakenOn:
                    log.debug("matrix: an event was handled already, here or elsewhere")
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("matrix: an event could not be handled")
        return True

    async def _fill_gap(self, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]]:
        """Events between the last sync and a limited timeline, oldest first."""
        gathered: list[dict[str, Any]] = []
        start = prev_batch
        while len(gathered) < GAP_MAX_EVENTS:
            page = await self._client.room_messages(
                room_id, start=start, end=since, direction=MessageDirection.back, limit=GAP_PAGE
            )
            if isinstance(page, RoomMessagesError):
                log.warning("matrix: cannot fetch missed messages (%s)", page.status_code)
                break
            gathered += [e.source for e in page.chunk if hasattr(e, "source")]
            if not page.chunk or not page.end or page.end == start:
                break
            start = page.end
        gathered.reverse()
        log.debug("matrix: fetched %d missed events", len(gathered))
        return gathered

    def _note_creators(self, room_id: str, event: dict[str, Any]) -> None:
        content = event.get("content") or {}
        if str(content.get("room_version", "1")) in _POWER_LEVEL_CREATOR_VERSIONS:
            return
        extra = content.get("additional_creators")
        creators = {str(event.get("sender"))}
        if isinstance(extra, list):
            creators.update(str(user) for user in extra)
        self._creators[room_id] = frozenset(creators)

    def _after_own_join(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop what was said before the bot joined the room (a newly joined room's history)."""
        for index in range(len(events) - 1, -1, -1):
            event = events[index]
            if (
                event.get("type") == "m.room.member"
                and event.get("state_key") == self.user_id
                and (event.get("content") or {}).get("membership") == "join"
                and ((event.get("unsigned") or {}).get("prev_content") or {}).get("membership")
                != "join"
            ):
                return events[index + 1 :]
        return events

    def _first_sight(self, event_id: str) -> bool:
        if event_id in self._handled:
            return False
        self._handled[event_id] = None
        while len(self._handled) > REMEMBERED_EVENTS:
            self._handled.popitem(last=False)
        return True

    # -- commands and reactions --------------------------------------------------------------

    async def _handle_event(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        sender = event.get("sender")
        if not sender or sender == self.user_id:
            return
        kind = event.get("type")
        if kind == "m.room.message":
            await self._on_message(room, event)
        elif kind == "m.reaction":
            await self._on_reaction(room, event)

    async def _on_message(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        content = event.get("content") or {}
        if content.get("msgtype") != "m.text":
            return  # notices are other bots talking; emotes and files are no commands
        relates = content.get("m.relates_to") or {}
        if relates.get("rel_type") == "m.replace" or "m.new_content" in content:
            return  # an edit: the original was answered already
        text = command_text(content)
        if not text.startswith(self.prefix):
            return
        ctx = self.ctx(room, event["sender"])
        if ctx is None:
            return
        thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        how = Answer(str(event["event_id"]), reply_to=str(event["event_id"]), thread=thread)
        await self._run_once(room, ctx, how, text, (self.prefix,))

    async def _on_reaction(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        relates = (event.get("content") or {}).get("m.relates_to") or {}
        target = relates.get("event_id")
        if relates.get("rel_type") != "m.annotation" or not isinstance(target, str):
            return
        key = _EMOJI_MODIFIERS.sub("", str(relates.get("key", "")))
        subject = await self.app.services.state.get(SUBJECT_KEY.format(event_id=target))
        if subject is None:
            return
        kind, _, subject_id = subject.partition(":")
        template = REACTIONS.get((kind, key))
        if template is None:
            return
        ctx = self.ctx(room, event["sender"])
        if ctx is None:
            return
        # The person reacted rather than typed, so the answer mentions them.
        how = Answer(str(event["event_id"]), reply_to=target, mention=ctx.user.external_id)
        await self._run_once(room, ctx, how, template.format(id=subject_id), ("",))

    async def _run_once(
        self, room: MatrixRoom, ctx: Ctx, how: "Answer", line: str, prefixes: tuple[str, ...]
    ) -> None:
        """Run a command and answer it, once across restarts and processes.

        The event is taken on in the same transaction as the command's first write (or, for a
        command that writes nothing, just before answering); the answer is kept until it is
        sent, so a process taking over sends what this one could not.
        """
        key = f"{PLATFORM}:{how.answers}"
        leases = self.app.leases
        with leases.claim_with_first_write(PLATFORM, key) as taken:
            reply = await self.app.core.handle_text(ctx, line, prefixes=prefixes)
        if reply is None:
            return
        kept = replies.dumps(
            reply, room=room.room_id, sender=ctx.user.external_id, name=ctx.user.display_name,
            answers=how.answers, reply_to=how.reply_to, thread=how.thread, mention=how.mention,
        )  # fmt: skip
        if taken.done:
            await leases.repo.keep_reply(key, kept)
        elif not await leases.claim_event(PLATFORM, key, reply=kept):
            return  # taken on by another process (or before a restart): it answers
        await self._answer(room, ctx, reply, how.answers, reply_to=how.reply_to,
                           thread=how.thread, mention=how.mention)  # fmt: skip
        await leases.repo.answered(key, self.app.clock.now())

    async def _send_kept_answers(self) -> None:
        """Send the answers a process serving before this one kept but did not send."""
        for key, kept in await self.app.leases.repo.unanswered(f"{PLATFORM}:"):
            reply, how = replies.loads(kept)
            room = self._client.rooms.get(how["room"])
            if room is not None:
                ctx = Ctx(
                    actor=Actor(UserRef(PLATFORM, how["sender"], how["name"])),
                    place=Place(f"{PLATFORM}:{room.room_id}"),
                    now=self.app.clock.now(),
                )
                await self._answer(room, ctx, reply, how["answers"], reply_to=how["reply_to"],
                                   thread=how["thread"], mention=how["mention"])  # fmt: skip
                log.info("matrix: sent an answer kept by the process before")
            await self.app.leases.repo.answered(key, self.app.clock.now())

    def ctx(self, room: MatrixRoom, sender: str) -> Ctx | None:
        """The neutral context of something ``sender`` did in ``room``.

        None when the bot does not answer in that room (see ``[bot] answer_elsewhere``).
        """
        place = f"{PLATFORM}:{room.room_id}"
        direct = room.member_count <= 2
        kind = self.rights.kind_of(place, direct=direct)
        if not self.rights.answers_in(kind):
            log.debug("matrix: a command in a room outside the campaign was not answered")
            return None
        member = room.users.get(sender)
        name = member.display_name if member is not None and member.display_name else sender
        user = UserRef(PLATFORM, sender, name)
        return Ctx(
            actor=Actor(user, self.rights.is_coordinator(user, self.standings(sender))),
            place=Place(place, is_private=kind is PlaceKind.DIRECT),
            now=self.app.clock.now(),
        )

    def standings(self, user_id: str) -> list[Standing]:
        """The person's power level in each configured campaign room, from its current state."""
        rooms = self.client.rooms if self.client is not None else {}
        found: list[Standing] = []
        for room_id in self._configured_rooms:
            room = rooms.get(room_id)
            member = room.users.get(user_id) if room is not None else None
            if room is None or member is None or member.invited:
                continue  # power counts only for members (users_default applies to anyone)
            found.append(
                Standing(
                    place=f"{PLATFORM}:{room_id}",
                    level=room.power_levels.get_user_level(user_id),
                    creator=user_id in self._creators.get(room_id, ()),
                )
            )
        return found

    async def _answer(
        self,
        room: MatrixRoom,
        ctx: Ctx,
        reply: Reply,
        answers: str,
        *,
        reply_to: str,
        thread: str | None = None,
        mention: str | None = None,
    ) -> None:
        """Send a reply; private non-error replies go to a direct room with the person."""
        try:
            if reply.private and not reply.is_error:
                await self._answer_privately(room, ctx, reply, answers, reply_to, thread)
                return
            pill = (mention, ctx.user.label) if mention else None
            event_id = await self._send_reply(
                room.room_id, reply, answers, reply_to=reply_to, thread=thread, pill=pill
            )
        except MatrixSendError as exc:
            log.warning("matrix: a reply could not be sent (%s)", exc.errcode)
            return
        if reply.subject is not None:
            kind, subject_id = reply.subject
            await self.app.services.state.set(
                SUBJECT_KEY.format(event_id=event_id), f"{kind}:{subject_id}", ctx.now
            )

    async def _answer_privately(
        self,
        room: MatrixRoom,
        ctx: Ctx,
        reply: Reply,
        answers: str,
        reply_to: str,
        thread: str | None,
    ) -> None:
        # Matrix has no messages only one person sees: a direct room stands in for them.
        direct = await self._direct_room(ctx.user.external_id, ctx)
        if direct is None:
            note = Reply(
                Markup.trusted(
                    "That answer is only for you, but I could not open a direct chat with you. "
                    "Invite me to one and ask again there."
                ),
                is_error=True,
            )
        else:
            await self._send_reply(direct, reply, f"{answers}:direct", reply_to=None)
            note = Reply(Markup.trusted("I sent you the answer in a direct chat."))
        await self._send_reply(room.room_id, note, answers, reply_to=reply_to, thread=thread)

    async def _direct_room(self, user_id: str, ctx: Ctx) -> str | None:
        key = DM_KEY.format(user_id=user_id)
        known = await self.app.services.state.get(key)
        if known is not None:
            return known
        # private_chat, not trusted_private_chat: that preset gives the invitee the creator's
        # power (and in room version 12 makes them a creator). Rights never come from this room,
        # but the person should not be able to rename it, change its settings or invite others.
        created = await self._client.room_create(
            is_direct=True,
            invite=[user_id],
            preset=RoomPreset.private_chat,
            power_level_override={"users_default": 0, "invite": 100, "state_default": 100},
        )
        if isinstance(created, RoomCreateError):
            log.warning("matrix: cannot open a direct chat (%s)", created.status_code)
            return None
        await self.app.services.state.set(key, created.room_id, ctx.now)
        return str(created.room_id)

    async def _send_reply(
        self,
        room_id: str,
        reply: Reply,
        answers: str,
        *,
        reply_to: str | None,
        thread: str | None = None,
        pill: tuple[str, str] | None = None,
    ) -> str:
        """Send a reply and its attachments; returns the text message's event id.

        ``pill`` (user id, display name) addresses the reply to someone who did not type
        anything (a reaction), with a mention pill.
        """
        wanted = [m.external_id for m in reply.mentions if m.platform == PLATFORM]
        content = notice_content(
            reply_markup(reply, self.prefix),
            reply_to=reply_to,
            thread=thread,
            mentions=[*([pill[0]] if pill else []), *wanted],
        )
        if pill:
            add_pill(content, *pill)
        content[ANSWERS_KEY] = answers
        event_id = await self._send(room_id, content, txn_id=_txn("answer", answers))
        for index, attachment in enumerate(reply.attachments):
            await self._send_attachment(
                room_id, attachment, txn_id=_txn("answer", f"{answers}:{index}"),
                extra={ANSWERS_KEY: answers},
            )  # fmt: skip
        return event_id

    async def _send(self, room_id: str, content: dict[str, Any], *, txn_id: str) -> str:
        response = await self._client.room_send(room_id, "m.room.message", content, tx_id=txn_id)
        if isinstance(response, RoomSendError):
            raise MatrixSendError(response.status_code)
        return str(response.event_id)

    async def _send_attachment(
        self, room_id: str, attachment: Attachment, *, txn_id: str, extra: dict[str, Any]
    ) -> None:
        uploaded, _ = await self._client.upload(
            io.BytesIO(attachment.data),
            content_type=attachment.content_type,
            filename=attachment.filename,
            filesize=len(attachment.data),
        )
        if isinstance(uploaded, UploadError):
            raise MatrixSendError(uploaded.status_code)
        image = attachment.content_type.startswith("image/")
        content = {
            "msgtype": "m.image" if image else "m.file",
            "body": attachment.filename,
            "filename": attachment.filename,
            "url": uploaded.content_uri,
            "info": {"mimetype": attachment.content_type, "size": len(attachment.data)},
            "m.mentions": {},
            **extra,
        }
        await self._send(room_id, content, txn_id=txn_id)

    # -- the outbox --------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        """Post an outbox row to its room; raises PermanentDeliveryError if it never can."""
        room_id = delivery.target.partition(":")[2]
        if room_id.startswith("#"):
            resolved = await self._client.room_resolve_alias(room_id)
            if isinstance(resolved, RoomResolveAliasError):
                if resolved.status_code == "M_NOT_FOUND":
                    raise PermanentDeliveryError("no such room alias")
                raise MatrixSendError(resolved.status_code)
            room_id = resolved.room_id
        if not room_id.startswith("!"):
            raise PermanentDeliveryError("not a Matrix room address")
        body = delivery.body
        mentions: list[str] = []
        if delivery.recipient_id:
            mentions.append(delivery.recipient_id)
        content = notice_content(body, reply_to=None, mentions=mentions)
        if delivery.recipient_id:
            add_pill(content, delivery.recipient_id, self._display_name(room_id, delivery))
        txn = _txn("outbox", delivery.key)
        try:
            await self._send(room_id, content, txn_id=txn)
        except MatrixSendError as exc:
            if exc.errcode not in _PERMANENT_ERRCODES:
                raise
            if not await self._rejoin(room_id):
                raise PermanentDeliveryError(
                    f"the bot cannot post there ({exc.errcode})"
                ) from None
            await self._send(room_id, content, txn_id=txn)
        if delivery.attachment is not None:
            await self._send_attachment(
                room_id, delivery.attachment, txn_id=_txn("outbox", delivery.key + ":file"),
                extra={},
            )  # fmt: skip

    async def _rejoin(self, room_id: str) -> bool:
        """Try to (re)join a room the bot could not post to; False if it cannot."""
        joined = await self._client.join(room_id)
        return not isinstance(joined, JoinError)

    def _display_name(self, room_id: str, delivery: Delivery) -> str:
        user_id = delivery.recipient_id or ""
        room = self._client.rooms.get(room_id)
        member = room.users.get(user_id) if room is not None else None
        return member.display_name if member is not None and member.display_name else user_id

    @property
    def _client(self) -> AsyncClient:
        if self.client is None:
            raise RuntimeError("the Matrix client is not connected yet")
        return self.client


# -- rendering ---------------------------------------------------------------------------------


def reply_markup(reply: Reply, prefix: str) -> Markup:
    """The reply text with its buttons shown as hints, e.g. "React ✋ or type `!task claim 7`"."""
    body = reply.body
    reactions = {
        template.format(id=reply.subject[1]): emoji
        for (kind, emoji), template in REACTIONS.items()
        if reply.subject is not None and reply.subject[0] == kind
    }
    for button in reply.buttons:
        emoji = reactions.get(button.command)
        how = f"React {emoji} or type" if emoji else "Type"
        body += Markup.format("\n" + how + " `{line}`", line=prefix + button.command)
    return body


def notice_content(
    markup: Markup,
    *,
    reply_to: str | None,
    thread: str | None = None,
    mentions: Iterable[str] = (),
) -> dict[str, Any]:
    """An m.notice with escaped HTML, a reply relation and only the intended mentions."""
    user_ids = list(dict.fromkeys(mentions))
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": markup.plain(),
        "format": "org.matrix.custom.html",
        "formatted_body": markup.html(),
        "m.mentions": {"user_ids": user_ids} if user_ids else {},
    }
    if thread is not None:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread,
            "is_falling_back": False,
            "m.in_reply_to": {"event_id": reply_to or thread},
        }
    elif reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def add_pill(content: dict[str, Any], user_id: str, display_name: str) -> None:
    """Start a message with a mention pill of ``user_id``."""
    link = Markup.format("{name}", name=display_name).html()
    href = "https://matrix.to/#/" + Markup.format("{id}", id=user_id).html()
    content["body"] = f"{display_name}: {content['body']}"
    content["formatted_body"] = f'<a href="{href}">{link}</a>: {content["formatted_body"]}'


def command_text(content: dict[str, Any]) -> str:
    """The command a message carries: reply quotes dropped, mention pills as user ids."""
    formatted = content.get("formatted_body")
    if (
        content.get("format") == "org.matrix.custom.html"
        and isinstance(formatted, str)
        and "matrix.to/#/" in formatted
    ):
        parser = _CommandText()
        parser.feed(formatted)
        parser.close()
        return parser.text().strip()
    body = str(content.get("body") or "")
    lines = body.split("\n")
    if lines and lines[0].startswith("> "):
        # A reply fallback: quoted lines, then a blank line, then the text.
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    return "\n".join(lines).strip()


class _CommandText(HTMLParser):
    """HTML to text where a user pill becomes the user id it links to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._quote_depth = 0
        self._in_pill = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self._quote_depth += 1
        elif tag == "br":
            self._parts.append("\n")
        elif tag == "a" and not self._quote_depth:
            match = _PILL.match(dict(attrs).get("href") or "")
            if match:
                self._parts.append(unquote(match.group(1)))
                self._in_pill = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self._quote_depth = max(0, self._quote_depth - 1)
        elif tag == "a":
            self._in_pill = False
        elif tag in ("p", "div"):
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._quote_depth and not self._in_pill:
            self._parts.append(data)

    def text(self) -> str:
        """The collected text."""
        return "".join(self._parts)


def _txn(kind: str, key: str) -> str:
    """A transaction id derived from what is sent, so a resend is deduplicated by the server."""
    return f"vb-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"
