"""Matrix: ``!`` commands in rooms, ✋ reactions on task posts, m.notice replies, outbox posts.

The adapter runs its own sync loop on matrix-nio's ``AsyncClient``, with end-to-end
encryption: encrypted rooms and direct chats are served like plain ones, and whatever the bot
sends into an encrypted room is encrypted. The bot is one device whose keys, sessions and
access token live under ``store_path``; its owner's cross-signing keys sign it
(:mod:`bot.adapters.matrix_signing`), so clients that trust only cross-signed devices accept
its messages.

Rooms are served concurrently, each by its own queue, so one slow command stalls only its
room. The sync position is kept in the bot's database once every event of a batch (and of
every batch before it) has been handled, so a restart answers what was said while the bot was
down exactly once, and nothing older. A message that arrives before its key is held, its key
asked for, and answered once the key comes (``late_key_wait``), or its sender told.

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
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    KeysQueryError,
    KeysQueryResponse,
    KeysUploadError,
    LocalProtocolError,
    LoginError,
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RoomCreateError,
    RoomGetEventError,
    RoomKeyRequest,
    RoomMessagesError,
    RoomPreset,
    RoomRedactError,
    RoomResolveAliasError,
    RoomSendError,
    SyncError,
    SyncResponse,
    ToDeviceError,
    ToDeviceMessage,
    UploadError,
    WhoamiError,
)
from nio.api import Api as NioApi
from nio.crypto import OlmDevice
from nio.exceptions import EncryptionError, OlmTrustError, SendRetryError

from bot import replies
from bot.adapters import Status, matrix_signing
from bot.context import Actor, Attachment, Button, Ctx, Place, Reply
from bot.core import for_reader
from bot.domain import Markup, UserRef
from bot.domain.i18n import ENGLISH, Reader, _
from bot.domain.markup import cmd
from bot.logs import describe_error
from bot.outbox import Delivery, PermanentDeliveryError
from bot.rights import PlaceKind, Standing
from bot.uploads import MediaErasure
from storage.acting import ErasurePending
from storage.leases import AlreadyTakenOn
from storage.uploads import Upload

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import MatrixSection

log = logging.getLogger(__name__)

PLATFORM = "matrix"
NEXT_BATCH_KEY = "matrix:next_batch"
SUBJECT_KEY = "matrix:subject:{event_id}"
# Events held for their decryption key: [[room id, event id, deadline (epoch seconds)], ...].
HELD_KEY = "matrix:held"
CREDENTIALS_FILE = "credentials.json"
DEVICE_NAME = "volunteer-bot"
MEGOLM = "m.megolm.v1.aes-sha2"
# Custom content key on the bot's own replies naming the event they answer: seen again after
# a crash (before the sync position was saved), it keeps a command from being answered twice.
ANSWERS_KEY = "org.volunteer_bot.answers"

SYNC_TIMEOUT_MS = 30_000
# No sync completed for this long (a long poll lasts SYNC_TIMEOUT_MS): not connected.
STALE_AFTER = SYNC_TIMEOUT_MS / 1000 + 60.0
TIMELINE_LIMIT = 20
GAP_PAGE = 100
GAP_MAX_EVENTS = 2_000
REMEMBERED_EVENTS = 5_000
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
# Answers that could not be sent are tried again after this, doubling up to RESEND_MAX.
RESEND_FIRST = 1.0
RESEND_MAX = 30.0
STOP_GRACE = 15.0
# An event may be 65,536 bytes; an answer's text and HTML stay well under that, with room
# for the relation, the pill and encryption (whose base64 adds a third).
MAX_TEXT_BYTES = 40_000
CUT = "\n… (cut: the rest was too long to send)"
MAX_429_RETRIES = 3
MAX_TIMEOUT_RETRIES = 2
# Batches whose events are still being handled before the next sync waits for the oldest.
MAX_BATCHES_IN_FLIGHT = 50
# How long a new direct chat may take to show up in the sync before the answer gives up.
NEW_ROOM_WAIT = 30.0

CLAIM_EMOJI = "✋"
# A reaction on a message that carried a subject runs a command as the person reacting.
EXTEND_EMOJI = "👍"
REACTIONS: dict[tuple[str, str], str] = {
    ("task", CLAIM_EMOJI): "task claim {id}",
    ("claim", EXTEND_EMOJI): "task extend {id}",  # on a "still on it?" notice
}
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
# A reply refused with one of these is dropped; other refusals and lost connections are retried.
_UNDELIVERABLE_ERRCODES = _PERMANENT_ERRCODES | {
    "M_TOO_LARGE", "M_NOT_JSON", "M_INVALID_PARAM", "M_UNRECOGNIZED",
    "EncryptionError", "OlmTrustError", "SendRetryError",
}  # fmt: skip
# Refusals that pass: the rate limit, and a token the adapter replaces (or stops for).
_RETRIED_ERRCODES = frozenset({"M_LIMIT_EXCEEDED", "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"})
# History visibilities under which a member may read what was said before they joined, and so
# may be given the keys to it when they ask.
_SHARED_HISTORY = frozenset({"shared", "world_readable"})
# Why a file the bot uploaded stays in the media store, by the admin API's refusal.
_MEDIA_KEPT = {
    "M_FORBIDDEN": _(
        "the bot's account is not an admin of the homeserver, which only admins let delete "
        "files; the messages that carried them were removed, and the server's admin can delete "
        "the files"
    ),
    "M_UNRECOGNIZED": _(
        "the homeserver offers no way to delete files; the messages that carried them were removed"
    ),
}
_MEDIA_REFUSED = _("the homeserver refused; the messages that carried them were removed")

# Room versions in which the creator is an ordinary power-level holder; in later ones
# (12 on) creators outrank every power level and are not listed in m.room.power_levels.
_POWER_LEVEL_CREATOR_VERSIONS = frozenset(str(v) for v in range(1, 12))

NO_KEY_NOTE = _(
    "I could not read your message: the key to decrypt it never reached me. Please send it again."
)
NO_DIRECT_CHAT_NOTE = _(
    "That answer is only for you, but I could not open an encrypted direct chat with you. "
    "Invite me to one and ask again there."
)
SENT_DIRECTLY_NOTE = _("I sent you the answer in an encrypted direct chat.")
ANSWER_LOST_NOTE = _(
    "I carried out this command, but its answer was lost when I restarted. It will not run "
    "again: {mine}, {list} or {profile} show where things stand."
)

_R = TypeVar("_R")


def sync_filter(timeline_limit: int) -> dict[str, Any]:
    """The filter every sync uses: no presence, typing, receipts or account data."""
    room = dict(_SILENT_FILTER["room"], timeline={"limit": timeline_limit})
    return dict(_SILENT_FILTER, room=room)


class MatrixFatalError(Exception):
    """A problem no retry can fix (rejected credentials, missing configuration, lost store)."""


class MatrixSendError(Exception):
    """The homeserver refused a message: ``errcode``, HTTP ``status``, ``detail`` in its words."""

    def __init__(
        self, errcode: str | None, status: int | None = None, detail: str | None = None
    ) -> None:
        super().__init__(f"the homeserver refused the message ({errcode or 'no error code'})")
        self.errcode = errcode
        self.status = status
        self.detail = detail

    @property
    def permanent(self) -> bool:
        """Whether sending the same message again can never succeed (M_FORBIDDEN, M_TOO_LARGE)."""
        if self.errcode in _RETRIED_ERRCODES:
            return False
        if self.errcode in _UNDELIVERABLE_ERRCODES:
            return True
        return self.status is not None and 400 <= self.status < 500 and self.status != 429


# What a send raises when the homeserver cannot be reached or answers too late.
_UNREACHABLE = (OSError, TimeoutError, aiohttp.ClientError)


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


class _KeysWithCrossSigning(KeysQueryResponse):  # type: ignore[misc]
    """A ``/keys/query`` answer that keeps the cross-signing keys nio itself ignores."""

    query: dict[str, Any]

    @classmethod
    def from_dict(cls, parsed_dict: dict[str, Any]) -> Any:
        """Parse as nio does, keeping the whole answer for the trust decision."""
        response = super().from_dict(parsed_dict)
        if isinstance(response, cls):
            response.query = parsed_dict
        return response


class _Client(AsyncClient):  # type: ignore[misc]
    """nio's client, with key queries that report the owners' cross-signing too."""

    on_keys: Callable[[dict[str, Any]], None] | None = None

    async def keys_query(self) -> Any:
        """Query the devices nio wants to know, then tell ``on_keys`` what came back."""
        users = self.users_for_key_query
        if not users:
            raise LocalProtocolError("No key query required.")
        method, path, data = NioApi.keys_query(self.access_token, users)
        response = await self._send(_KeysWithCrossSigning, method, path, data)
        if isinstance(response, _KeysWithCrossSigning) and self.on_keys is not None:
            self.on_keys(getattr(response, "query", {}))
        return response


@dataclass
class _Held:
    """A message that arrived before its key."""

    room_id: str
    event_id: str
    deadline: float  # epoch seconds
    source: dict[str, Any] | None = field(default=None, repr=False)  # the encrypted event
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class _RoomQueue:
    """One room's events, handled in order by one task."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.items: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None


def show_recovery_key(key: str) -> None:
    """Print the recovery key for the operator, once: on standard output, never in the log."""
    print(
        "\nThe bot's Matrix account now has cross-signing keys. Their recovery key (keep it"
        " somewhere safe; it is shown only this once):\n\n    " + key + "\n",
        file=sys.stdout,
        flush=True,
    )


class MatrixAdapter:
    """Serves the rooms the bot account is joined to, encrypted or not."""

    platform = PLATFORM

    def __init__(
        self, app: "App", *, recovery_key_shown: Callable[[str], None] = show_recovery_key
    ) -> None:
        self.app = app
        self.config: MatrixSection = app.settings.matrix
        self.prefix = self.config.command_prefix or app.settings.bot.command_prefix
        self.rights = app.services.rights
        self.client: _Client | None = None
        self.user_id = self.config.user_id
        self.ready = asyncio.Event()
        # Set when the adapter stopped for a reason an operator must fix (exit status 1).
        self.failed = False
        self._show_recovery_key = recovery_key_shown
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._configured_rooms: set[str] = set()
        self._creators: dict[str, frozenset[str]] = {}
        self._handled: OrderedDict[str, None] = OrderedDict()
        self._last_sync: float | None = None  # time.monotonic() of the last completed sync
        self._rooms: dict[str, _RoomQueue] = {}
        self._slots = asyncio.Semaphore(self.config.room_concurrency)
        self._in_flight: list[tuple[str, list[asyncio.Future[None]]]] = []
        self._saving = asyncio.Lock()
        self._queued: list[asyncio.Future[None]] = []
        self._held: dict[str, _Held] = {}
        self._room_seen: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # Kept answers a send failed for (key -> kept answer), in order, and who resends them.
        self._unsent: dict[str, str] = {}
        self._resender: asyncio.Task[None] | None = None
        self._homeserver_back = asyncio.Event()  # set by each completed sync
        # (user, device) -> whether the configured trust lets it read the bot's messages
        self._trusted: dict[tuple[str, str], bool] = {}
        self._store_existed = False
        nio_log = logging.getLogger("nio")
        if nio_log.level == logging.NOTSET:
            # matrix-nio logs events, and user and room ids in its warnings.
            nio_log.setLevel(logging.ERROR)

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
        """Finish the events being handled, save the sync position, and disconnect."""
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
        for task in [*(q.task for q in self._rooms.values() if q.task), *self._background]:
            task.cancel()
        for task in [*(q.task for q in self._rooms.values() if q.task), *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._rooms.clear()
        for held in self._held.values():
            if held.timer is not None:
                held.timer.cancel()
        if self.client is not None:
            await self.client.close()
            if self.client.store is not None:
                with contextlib.suppress(Exception):
                    self.client.store.database.close()
        self._closed.set()

    def status(self) -> Status:
        """Connected after the first sync while syncs keep completing."""
        if self._last_sync is None or self._closed.is_set():
            return Status(connected=False)
        lag = time.monotonic() - self._last_sync
        return Status(connected=lag < STALE_AFTER, lag=lag)

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
            self.app.services.uploads.register(PLATFORM, self.erase_media)
            await self._sync_loop()
        except MatrixFatalError as exc:
            log.error("matrix adapter stopped: %s", exc)
            self.failed = True
            self._closed.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("matrix adapter stopped unexpectedly")
            self.failed = True
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

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        """Run ``work`` in an owned background task, cancelled on stop."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- login and the device ----------------------------------------------------------------

    async def _connect(self) -> bool:
        """Authenticate and open the device, retrying while the homeserver is unreachable."""
        if not self.config.homeserver:
            raise MatrixFatalError("matrix.homeserver is not set")
        store = self._store_path
        store.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(store, 0o700)
        self.client = _Client(
            self.config.homeserver,
            self.config.user_id,
            device_id=self.config.device_id,
            store_path=str(store),
            config=AsyncClientConfig(
                max_limit_exceeded=MAX_429_RETRIES,
                max_timeouts=MAX_TIMEOUT_RETRIES,
                encryption_enabled=True,
                store_sync_tokens=False,
            ),
        )
        self.client.on_keys = self._on_keys
        delay = BACKOFF_FIRST
        while not self._stopping.is_set():
            try:
                await self._authenticate(self.client)
                await self.open_device(self.client)
                return True
            except MatrixFatalError:
                raise
            except Exception as exc:
                log.warning(
                    "matrix: cannot reach the homeserver (%s); retrying in %.0f s",
                    describe_error(exc),
                    delay,
                )
            await self._pause(delay)
            delay = min(delay * 2, BACKOFF_MAX)
        return False

    @property
    def _store_path(self) -> Path:
        return Path(self.config.store_path)

    async def _token_revoked(self, soft_logout: bool) -> None:
        """The homeserver stopped accepting the token: log in again, or stop for the operator."""
        what = "expired" if soft_logout else "was revoked"
        if self.config.password is None or not self.config.user_id:
            raise MatrixFatalError(
                f"the Matrix access token {what} (M_UNKNOWN_TOKEN): set a new "
                "matrix.access_token, or matrix.password so the bot can log in again by itself"
            )
        log.warning("matrix: the access token %s; logging in again with the password", what)
        client = self._client
        await self._password_login(client, self.config.password.get_secret_value())
        await self.open_device(client)

    async def _password_login(self, client: AsyncClient, password: str) -> None:
        """Log in again as the same device (its keys and sessions stay valid), keeping the token.

        A raw call rather than nio's ``login``, which would open a second crypto store.
        """
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self.config.user_id},
            "password": password,
            "device_id": client.device_id,
            "initial_device_display_name": DEVICE_NAME,
        }
        response = await client.send(
            "POST", "/_matrix/client/v3/login", json.dumps(body),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = {}
        finally:
            response.release()
        answer = answer if isinstance(answer, dict) else {}
        if response.status == 429 or response.status >= 500 or "access_token" not in answer:
            if response.status in (400, 401, 403):
                raise MatrixFatalError(f"password login failed ({answer.get('errcode')})")
            raise ConnectionError(f"login failed (HTTP {response.status})")
        client.access_token = str(answer["access_token"])
        self._save_credentials(
            Credentials(
                self.config.homeserver, self.user_id or "", client.device_id, client.access_token
            )
        )
        log.info("matrix: logged in again with the password; the new token is kept")

    async def _authenticate(self, client: AsyncClient) -> None:
        config = self.config
        if config.access_token is not None:
            client.access_token = config.access_token.get_secret_value()
            if await self._check_token(client):
                if not client.device_id:
                    raise MatrixFatalError(
                        "the homeserver did not say which device matrix.access_token belongs "
                        "to; set matrix.device_id"
                    )
                return
            if config.password is None:
                raise MatrixFatalError(
                    "the homeserver rejected matrix.access_token (revoked or mistyped): set a "
                    "new one, or matrix.password so the bot can log in by itself"
                )
            log.warning("matrix: matrix.access_token was rejected; logging in with the password")
            client.access_token = ""
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
        # The same device again if the kept token expired: its keys and sessions stay valid.
        client.device_id = saved.device_id if saved is not None else config.device_id
        if client.device_id:
            self._store_existed = self._store_file(client).exists()
        # A successful login opens the crypto store (nio's restore_login).
        response = await client.login(
            password=config.password.get_secret_value(), device_name=DEVICE_NAME
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

    def _store_file(self, client: AsyncClient) -> Path:
        """The crypto store nio keeps for this account and device."""
        return self._store_path / f"{client.user_id}_{client.device_id}.db"

    @property
    def _credentials_path(self) -> Path:
        return self._store_path / CREDENTIALS_FILE

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
        data = {k: getattr(credentials, k) for k in Credentials.__slots__}
        matrix_signing.write_private(self._credentials_path, json.dumps(data))

    async def open_device(self, client: AsyncClient) -> None:
        """Open the crypto store of this device, check it is the device's, publish its keys.

        The one place the store is opened, so a check that this process may hold it (the
        Matrix lease, once several instances run) goes here. A store that is missing while
        the homeserver knows the device's keys, or whose keys are not the device's, stops
        the adapter with one line saying what to do: served with the wrong keys, the device
        would silently read nothing.
        """
        store_file = self._store_file(client)
        if client.store is None:
            self._store_existed = store_file.exists()
            client.load_store()
        existed = self._store_existed
        with contextlib.suppress(OSError):
            os.chmod(store_file, 0o600)
        assert client.olm is not None
        own = client.olm.account.identity_keys["ed25519"]
        status, query = await self._api(
            "POST",
            "/_matrix/client/v3/keys/query",
            {"device_keys": {client.user_id: [client.device_id]}},
        )
        if status != 200:
            raise ConnectionError(f"key query failed (HTTP {status})")
        published = (
            ((query.get("device_keys") or {}).get(client.user_id) or {})
            .get(client.device_id, {})
            .get("keys", {})
            .get(f"ed25519:{client.device_id}")
        )
        if published is not None and published != own:
            what = "is missing" if not existed else "holds other keys than this device's"
            raise MatrixFatalError(
                f"the crypto store {store_file} {what}, so device {client.device_id} cannot "
                "read encrypted messages; restore the store, or delete "
                f"{self._credentials_path} (or use a new access token) to start as a new "
                "device"
            )
        if published is None and client.olm.account.shared:
            # The homeserver forgot the device (a logout deletes it): publish its keys again.
            client.olm.account.shared = False
        if client.should_upload_keys:
            uploaded = await client.keys_upload()
            if isinstance(uploaded, KeysUploadError):
                raise ConnectionError(f"the device keys were refused ({uploaded.status_code})")
        log.info("matrix: device %s ready (keys %s)", client.device_id,
                 "kept" if existed else "new")  # fmt: skip
        # Fresh device lists once per start, so the trust setting applies to every device.
        client.olm.users_for_key_query.update(client.olm.tracked_users)
        await self._cross_sign(client)

    async def _cross_sign(self, client: AsyncClient) -> None:
        password = self.config.password.get_secret_value() if self.config.password else None
        try:
            outcome = await matrix_signing.ensure_cross_signed(
                self._api,
                user_id=client.user_id,
                device_id=client.device_id,
                store=self._store_path,
                password=password,
                show_recovery_key=self._show_recovery_key,
            )
        except matrix_signing.CrossSigningError as exc:
            log.warning("matrix: cross-signing failed: %s; the device stays unsigned", exc)
            return
        if outcome.signed:
            log.info("matrix: %s", outcome.note)
        else:
            log.warning("matrix: the device is not cross-signed: %s", outcome.note)

    async def _api(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]]:
        """One authenticated client-server call; returns the status and the JSON answer."""
        client = self._client
        headers = {"Authorization": f"Bearer {client.access_token}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        response = await client.send(method, path, data, headers)
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = {}
        finally:
            response.release()
        return response.status, answer if isinstance(answer, dict) else {}

    # -- keys for everyone who should read ---------------------------------------------------

    def _on_keys(self, query: dict[str, Any]) -> None:
        """Apply the trust setting to the devices a key query returned."""
        client = self._client
        cross_signed_only = self.config.trust == "cross-signed"
        changed_users: set[str] = set()
        for user_id, devices in (query.get("device_keys") or {}).items():
            if user_id == self.user_id or not isinstance(devices, dict):
                continue
            known = client.device_store[user_id]
            for device_id in devices:
                device: OlmDevice | None = known.get(device_id)
                if device is None:
                    continue
                trusted = not cross_signed_only or matrix_signing.cross_signed(
                    query, user_id, device_id
                )
                if self._trusted.get((user_id, device_id), trusted) != trusted:
                    changed_users.add(user_id)  # (a new device is nio's to handle)
                self._trusted[(user_id, device_id)] = trusted
                if trusted:
                    if client.olm.is_device_blacklisted(device):
                        client.unblacklist_device(device)
                    if cross_signed_only and not client.olm.is_device_verified(device):
                        client.verify_device(device)
                elif not client.olm.is_device_blacklisted(device):
                    client.blacklist_device(device)
        # A device that became trusted needs a session it can read; one that lost trust must
        # not read the next messages: start new ones where those people are.
        for room in client.rooms.values():
            if room.encrypted and changed_users & set(room.users):
                client.invalidate_outbound_session(room.room_id)

    async def _keep_keys(self) -> None:
        """Upload, query and claim keys as nio asks, and send its queued to-device messages."""
        client = self._client
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            response = await client.keys_query()
            if isinstance(response, KeysQueryError):
                log.warning("matrix: key query failed (%s)", response.status_code)
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        if client.outgoing_to_device_messages:
            await client.send_to_device_messages()

    def _may_read(self, device: OlmDevice) -> bool:
        """Whether the trust setting lets this device have the keys to the bot's messages."""
        client = self._client
        if client.olm is None or client.olm.is_device_blacklisted(device):
            return False
        if self.config.trust == "cross-signed":
            return self._trusted.get((device.user_id, device.id), False)
        return True

    async def _answer_key_request(self, request: RoomKeyRequest) -> None:
        """Forward a room key of the bot's own to a member's device that asked for it."""
        client = self._client
        olm = client.olm
        assert olm is not None
        room = client.rooms.get(request.room_id)
        member = room.users.get(request.sender) if room is not None else None
        device = client.device_store[request.sender].get(request.requesting_device_id)
        if (
            room is None
            or member is None
            or member.invited
            or room.history_visibility not in _SHARED_HISTORY
            or request.sender_key != olm.account.identity_keys["curve25519"]
            or device is None
            or not self._may_read(device)
        ):
            log.debug("matrix: a key request was declined")
            return
        group = olm.inbound_group_store.get(request.room_id, request.sender_key,
                                            request.session_id)  # fmt: skip
        if group is None:
            return
        session = olm.session_store.get(device.curve25519)
        if session is None:
            await client.keys_claim({device.user_id: [device.id]})
            session = olm.session_store.get(device.curve25519)
            if session is None:
                log.info("matrix: no session to answer a key request with")
                return
        # nio forwards keys only to the account's own devices; the encryption is its own.
        message = olm._encrypt_forwarding_key(request.room_id, group, session, device)
        response = await client.to_device(message)
        if isinstance(response, ToDeviceError):
            log.warning("matrix: a key request could not be answered (%s)",
                        response.status_code)  # fmt: skip
        else:
            log.info("matrix: answered a member's key request")

    # -- rooms and invites -------------------------------------------------------------------

    async def _join_configured_rooms(self) -> None:
        for room in self.config.rooms:
            try:
                await self._join_configured_room(room)
            except Exception as exc:  # one unreachable room must not keep the others unserved
                log.warning("matrix: cannot join room %s (%s)", room, describe_error(exc))

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

    async def _wait_for_room(
        self, room_id: str, member: str | None = None, within: float = NEW_ROOM_WAIT
    ) -> bool:
        """Wait until the sync shows a room the bot just created or joined.

        With ``member``: until it shows that person in it, encrypted. A sync can show a room
        being created half-way, and a key shared then would miss the invitee.
        """
        client = self._client

        def ready() -> bool:
            room = client.rooms.get(room_id)
            if room is None:
                return False
            return member is None or (room.encrypted and member in room.users)

        deadline = time.monotonic() + within
        while not ready():
            seen = self._room_seen.setdefault(room_id, asyncio.Event())
            seen.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen.wait(), left)
        self._room_seen.pop(room_id, None)
        return True

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
                        await self._token_revoked(bool(response.soft_logout))
                        continue
                    log.warning(
                        "matrix: sync failed (%s); retrying in %.0f s", response.status_code, delay
                    )
                    await self._pause(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                handling = await self._handle_sync(response, since)
                since = response.next_batch
                self._in_flight.append((since, handling))
                await self._save_position()
                if not self.app.leases.holds(PLATFORM):
                    break  # the lease moved to another process: it carries on from its position
                self._last_sync = time.monotonic()
                self._homeserver_back.set()
                delay = BACKOFF_FIRST
                if first:
                    first = False
                    await self._restore_held()
                    await self._send_kept_answers()
                    self.ready.set()
                    log.info("matrix: ready, %d rooms joined", len(response.rooms.join))
                if len(self._in_flight) > MAX_BATCHES_IN_FLIGHT:
                    await asyncio.wait(self._in_flight[0][1])
            except (MatrixFatalError, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.warning(
                    "matrix: sync failed (%s); retrying in %.0f s", describe_error(exc), delay
                )
                await self._pause(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        # Stopping: let the rooms finish what they have, then save how far that got.
        pending = [f for _, handling in self._in_flight for f in handling if not f.done()]
        if pending:
            await asyncio.wait(pending)
        await self._save_position()

    async def _save_position(self) -> None:
        """Save the newest sync position whose batch, and every batch before, is handled."""
        async with self._saving:  # one write at a time, so a later position is never undone
            done = None
            while self._in_flight and all(f.done() for f in self._in_flight[0][1]):
                done = self._in_flight.pop(0)[0]
            fence = self.app.leases.fence(PLATFORM)
            if done is not None and fence is not None:
                # Only while this process serves Matrix: a successor's position stands.
                await self.app.services.state.set(
                    NEXT_BATCH_KEY, done, self.app.clock.now(), fence=fence
                )

    def _position_saver(self, _: asyncio.Future[None]) -> None:
        """When the oldest batch in flight is done, save its position without waiting."""
        if self._in_flight and all(f.done() for f in self._in_flight[0][1]):
            self._spawn(self._save_position(), "matrix-save-position")

    async def _handle_sync(
        self, response: SyncResponse, since: str | None
    ) -> list[asyncio.Future[None]]:
        """Queue the batch's events in their rooms; returns one future per queued event."""
        client = self._client
        await self._keep_keys()
        for event in response.to_device_events:
            if isinstance(event, RoomKeyRequest) and event.sender != self.user_id:
                self._spawn(self._answer_key_request(event), "matrix-key-request")
        if self._held and response.to_device_events:
            await self._retry_held()
        await self._handle_invites(response.rooms.invite)
        for room_id, info in response.rooms.join.items():
            if room_id in self._room_seen:
                self._room_seen[room_id].set()
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
            if client.rooms.get(room_id) is None:
                continue
            for event in events:
                event_id = event.get("event_id")
                if not event_id or event_id in answered:
                    continue
                if not self._first_sight(event_id):
                    continue
                if event.get("sender") == self.user_id:
                    continue
                self._queued.append(self._queue(room_id, event))
        # Including what an attempt that failed half-way had queued: it belongs to this batch.
        handling, self._queued = self._queued, []
        for future in handling:
            future.add_done_callback(self._position_saver)
        return handling

    def _queue(self, room_id: str, event: dict[str, Any]) -> asyncio.Future[None]:
        """Hand an event to its room's queue; the future is done once it has been handled."""
        queue = self._rooms.get(room_id)
        if queue is None:
            queue = self._rooms[room_id] = _RoomQueue(room_id)
            queue.task = asyncio.create_task(self._serve_room(queue), name="matrix-room")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.items.put_nowait((event, done))
        return done

    async def _serve_room(self, queue: _RoomQueue) -> None:
        """Handle one room's events in order, at most ``room_concurrency`` rooms at a time."""
        while True:
            event, done = await queue.items.get()
            try:
                room = self._client.rooms.get(queue.room_id)
                if room is not None and self.app.leases.holds(PLATFORM):
                    async with self._slots:
                        await self._handle_event(room, event)
            except AlreadyTakenOn:
                log.debug("matrix: an event was handled already, here or elsewhere")
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception:
                log.exception("matrix: an event could not be handled")
            finally:
                if not done.done():
                    done.set_result(None)

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

    # -- late keys ---------------------------------------------------------------------------

    async def _hold(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        """Keep a message that came before its key, and ask for the key."""
        event_id = str(event["event_id"])
        if event_id in self._held:
            return
        deadline = time.time() + self.config.late_key_wait.total_seconds()
        self._held[event_id] = _Held(room.room_id, event_id, deadline, source=dict(event))
        await self._save_held()
        self._expire_at(self._held[event_id])
        log.info("matrix: a message waits for its key")
        await self._request_key(room.room_id, event)
        # The key may have come with a sync since this message was queued.
        await self._retry_held()

    async def _request_key(self, room_id: str, event: dict[str, Any]) -> None:
        """Ask the bot's other devices and the sender's device for a missing room key."""
        content = event.get("content") or {}
        session_id = content.get("session_id")
        if not session_id or content.get("algorithm") != MEGOLM:
            return
        body = {
            "action": "request",
            "request_id": _txn("key", f"{session_id}:{event.get('event_id')}"),
            "requesting_device_id": self._client.device_id,
            "body": {
                "algorithm": MEGOLM,
                "room_id": room_id,
                "sender_key": content.get("sender_key"),
                "session_id": session_id,
            },
        }
        targets = [(self.user_id, "*")]
        if content.get("device_id"):
            targets.append((str(event.get("sender")), str(content["device_id"])))
        for user_id, device_id in targets:
            message = ToDeviceMessage("m.room_key_request", user_id, device_id, body)
            response = await self._client.to_device(message)
            if isinstance(response, ToDeviceError):
                log.warning("matrix: a key request could not be sent (%s)",
                            response.status_code)  # fmt: skip

    def _expire_at(self, held: _Held) -> None:
        delay = max(0.0, held.deadline - time.time())
        held.timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self._give_up(held.event_id), "matrix-late-key")
        )

    async def _retry_held(self) -> None:
        """Handle every held message whose key has come meanwhile."""
        for held in list(self._held.values()):
            decrypted = await self._decrypted(held)
            if decrypted is None:
                continue
            if self._held.pop(held.event_id, None) is None:
                continue  # given up meanwhile
            if held.timer is not None:
                held.timer.cancel()
            await self._save_held()
            log.info("matrix: a held message's key came; answering it")
            self._queue(held.room_id, decrypted)

    async def _decrypted(self, held: _Held) -> dict[str, Any] | None:
        """The held message decrypted, or None while its key is still missing."""
        client = self._client
        if held.source is None:  # held before a restart: fetch it again
            response = await client.room_get_event(held.room_id, held.event_id)
            if isinstance(response, RoomGetEventError):
                return None
            if not isinstance(response.event, MegolmEvent):  # nio could decrypt it already
                source = getattr(response.event, "source", None)
                if isinstance(source, dict) and source.get("type") != "m.room.encrypted":
                    return dict(source)
                return None
            held.source = dict(response.event.source)
        event = MegolmEvent.from_dict(held.source)
        if not isinstance(event, MegolmEvent):
            return None
        event.room_id = held.room_id
        try:
            decrypted = client.decrypt_event(event)
        except EncryptionError:
            return None  # not yet
        source = getattr(decrypted, "source", None)
        return dict(source) if isinstance(source, dict) else None

    async def _give_up(self, event_id: str) -> None:
        """The key never came: tell the sender once, in the room, to send it again."""
        held = self._held.pop(event_id, None)
        if held is None:
            return
        await self._save_held()
        log.warning("matrix: a message's key did not come in time; its sender is told")
        room = self._client.rooms.get(held.room_id)
        if room is None:
            return
        sender = str((held.source or {}).get("sender", ""))
        reader = await self.app.services.readers.for_person(
            UserRef(PLATFORM, sender), f"{PLATFORM}:{held.room_id}"
        )
        note = for_reader(Reply(Markup.format(NO_KEY_NOTE), private=True, is_error=True), reader)
        try:
            await self._send_reply(room, note, f"{event_id}:no-key", reply_to=event_id,
                                   thread=self._quiet_thread(room, event_id, None))  # fmt: skip
        except MatrixSendError as exc:
            log.warning("matrix: the missing-key note could not be sent (%s)", exc.errcode)

    async def _save_held(self) -> None:
        rows = [[h.room_id, h.event_id, h.deadline] for h in self._held.values()]
        await self.app.services.state.set(HELD_KEY, json.dumps(rows), self.app.clock.now())

    async def _restore_held(self) -> None:
        """Pick up the messages that were waiting for their keys when the bot stopped."""
        try:
            rows = json.loads(await self.app.services.state.get(HELD_KEY) or "[]")
            held = [_Held(str(r[0]), str(r[1]), float(r[2])) for r in rows]
        except (ValueError, TypeError, IndexError):
            held = []
        for item in held:
            self._held[item.event_id] = item
            self._first_sight(item.event_id)
            self._expire_at(item)
        if held:
            await self._retry_held()

    # -- commands and reactions --------------------------------------------------------------

    async def _handle_event(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        sender = event.get("sender")
        if not sender or sender == self.user_id:
            return
        kind = event.get("type")
        if kind == "m.room.encrypted":
            # Still encrypted after the sync: its key has not come (yet).
            await self._hold(room, event)
        elif kind == "m.room.message":
            await self._on_message(room, event)
        elif kind == "m.reaction":
            await self._on_reaction(room, event)

    async def _on_message(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        content = _object(event.get("content"))
        if content.get("msgtype") != "m.text":
            return  # notices are other bots talking; emotes and files are no commands
        relates = relation(content)
        if relates.get("rel_type") == "m.replace" or "m.new_content" in content:
            return  # an edit: the original was answered already
        text = command_text(content)
        if not text.startswith(self.prefix):
            return
        ctx = self.ctx(room, event["sender"])
        if ctx is None:
            return
        thread = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        if not isinstance(thread, str) or not thread.startswith("$"):
            thread = None  # a malformed thread relation: answer as to a plain message
        how = Answer(str(event["event_id"]), reply_to=str(event["event_id"]), thread=thread)
        await self._run_once(room, ctx, how, text, (self.prefix,))

    async def _on_reaction(self, room: MatrixRoom, event: dict[str, Any]) -> None:
        relates = relation(_object(event.get("content")))
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

        def keep(reply: Reply) -> str:
            return replies.dumps(
                reply, room=room.room_id, sender=ctx.user.external_id,
                name=ctx.user.display_name, answers=how.answers, reply_to=how.reply_to,
                thread=how.thread, mention=how.mention,
            )  # fmt: skip

        try:
            with leases.claim_with_first_write(PLATFORM, key) as taken:
                reply = await self.app.core.handle_text(ctx, line, prefixes=prefixes)
        except AlreadyTakenOn:
            lost = Markup.format(ANSWER_LOST_NOTE, mine=cmd("task mine"), list=cmd("task list"),
                                 profile=cmd("volunteer profile"))  # fmt: skip
            await self._answer_if_lost(key, keep(for_reader(Reply(lost, private=True),
                                                            ctx.reader)))  # fmt: skip
            return
        if reply is None:
            return
        kept = keep(reply)
        if taken.done:
            if not await leases.repo.keep_reply(key, kept):
                return  # a successor found the answer lost and said so
        elif not await leases.claim_event(PLATFORM, key, reply=kept):
            return  # taken on by another process (or before a restart): it answers
        # The answer is kept: from here on the event counts as handled, sent or not yet.
        await self._send_kept(key, kept)

    async def _answer_if_lost(self, key: str, note: str) -> None:
        """An event seen again was taken on before: say so if its answer was never kept.

        A process that died between the command's transaction and keeping its answer left
        the command done and unanswered; it is not run again, and its sender is told.
        """
        if self.app.leases.holds(PLATFORM) and await self.app.leases.repo.answer_lost(key, note):
            log.warning("matrix: a command was carried out but its answer was lost; "
                        "its sender is told")  # fmt: skip
            await self._send_kept(key, note)

    async def _send_kept(self, key: str, kept: str) -> bool:
        """Send one kept answer; False when it must be tried again (it stays kept until then).

        An answer the homeserver refuses for good (M_FORBIDDEN, M_TOO_LARGE) is dropped with
        a warning; one lost to a dropped connection, a timeout or a 5xx is resent later.
        """
        reply, how = replies.loads(kept)
        room = self._client.rooms.get(how["room"])
        if room is None:
            log.warning("matrix: an answer was dropped: the bot is no longer in its room")
        else:
            ctx = Ctx(
                actor=Actor(UserRef(PLATFORM, how["sender"], how["name"])),
                place=Place(f"{PLATFORM}:{room.room_id}"),
                now=self.app.clock.now(),
            )
            try:
                await self._answer(room, ctx, reply, how["answers"], reply_to=how["reply_to"],
                                   thread=how["thread"], mention=how["mention"])  # fmt: skip
            except MatrixSendError as exc:
                if not exc.permanent:
                    return self._resend_later(key, kept, f"{exc.errcode} {exc.status}")
                log.warning("matrix: a reply could not be sent (%s); it is dropped", exc.errcode)
            except _UNREACHABLE as exc:
                return self._resend_later(key, kept, type(exc).__name__)
        await self.app.leases.repo.answered(key, self.app.clock.now())
        return True

    def _resend_later(self, key: str, kept: str, why: str) -> bool:
        """Queue a kept answer for the resender; always False (not sent yet)."""
        if key not in self._unsent:
            log.warning("matrix: a reply could not be sent (%s); it will be sent again", why)
        self._unsent[key] = kept
        if self._resender is None or self._resender.done():
            self._resender = asyncio.create_task(self._resend(), name="matrix-resend")
            self._background.add(self._resender)
            self._resender.add_done_callback(self._background.discard)
        return False

    async def _resend(self) -> None:
        """Send the answers that could not be sent, with backoff, until none is left."""
        delay = RESEND_FIRST
        while self._unsent and not self._stopping.is_set():
            self._homeserver_back.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._homeserver_back.wait(), delay)
            if not self.app.leases.holds(PLATFORM):
                self._unsent.clear()  # the process serving Matrix now sends them
                return
            sent_any = False
            for key, kept in list(self._unsent.items()):
                if await self._send_kept(key, kept):
                    self._unsent.pop(key, None)
                    sent_any = True
                    log.info("matrix: a reply that could not be sent before is sent")
                else:
                    break  # still unreachable: keep the rest in order for the next round
            delay = RESEND_FIRST if sent_any else min(delay * 2, RESEND_MAX)

    async def _send_kept_answers(self) -> None:
        """Send the answers a process serving before this one kept but did not send."""
        for key, kept in await self.app.leases.repo.unanswered(f"{PLATFORM}:"):
            if key not in self._unsent and await self._send_kept(key, kept):
                log.info("matrix: sent an answer kept by the process before")

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

    # -- answering ---------------------------------------------------------------------------

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
        """Send a reply: public in the room, quiet in a thread, confidential in a direct chat.

        Raises MatrixSendError (or a connection error) when it could not be sent.
        """
        if reply.confidential and not self._only_for(room, ctx.user.external_id):
            await self._answer_confidentially(room, ctx, reply, answers, reply_to, thread)
            return
        if reply.private:
            thread = self._quiet_thread(room, reply_to, thread)
        pill = (mention, ctx.user.label) if mention else None
        event_id = await self._send_reply(
            room, reply, answers, reply_to=reply_to, thread=thread, pill=pill,
            owner=ctx.user if reply.confidential else None,
        )  # fmt: skip
        if reply.subject is not None:
            kind, subject_id = reply.subject
            await self.app.services.state.set(
                SUBJECT_KEY.format(event_id=event_id), f"{kind}:{subject_id}", ctx.now
            )

    @staticmethod
    def _quiet_thread(room: MatrixRoom, root: str, thread: str | None) -> str | None:
        """Where a quiet answer goes: a thread under the command, unless it is one already.

        Matrix has no message only one person sees; a thread keeps the answer out of the
        room's main timeline. In a direct chat there is nobody to keep it from.
        """
        if thread is not None or room.member_count <= 2:
            return thread
        return root

    def _only_for(self, room: MatrixRoom, user_id: str) -> bool:
        """Whether ``room`` is an encrypted room of the bot and this one person only."""
        return room.encrypted and set(room.users) <= {self.user_id, user_id}

    async def _answer_confidentially(
        self,
        room: MatrixRoom,
        ctx: Ctx,
        reply: Reply,
        answers: str,
        reply_to: str,
        thread: str | None,
    ) -> None:
        direct = await self._direct_room(ctx)
        if direct is None:
            note = Reply(Markup.format(NO_DIRECT_CHAT_NOTE), private=True, is_error=True)
        else:
            await self._send_reply(direct, reply, f"{answers}:direct", reply_to=None,
                                   owner=ctx.user)  # fmt: skip
            note = Reply(Markup.format(SENT_DIRECTLY_NOTE), private=True)
        note = for_reader(note, reply.reader)
        await self._send_reply(room, note, answers, reply_to=reply_to,
                               thread=self._quiet_thread(room, reply_to, thread))  # fmt: skip

    async def _direct_room(self, ctx: Ctx) -> MatrixRoom | None:
        """An encrypted direct chat with the person: the one kept, or a new one."""
        client = self._client
        chats = self.app.services.direct_chats
        user_id = ctx.user.external_id
        known = await chats.room_of(ctx.user)
        if known is not None:
            room = client.rooms.get(known)
            if room is not None and room.encrypted and user_id in room.users:
                return room
        # private_chat, not trusted_private_chat: that preset gives the invitee the creator's
        # power (and in room version 12 makes them a creator). Rights never come from this room,
        # but the person should not be able to rename it, change its settings or invite others.
        created = await client.room_create(
            is_direct=True,
            invite=[user_id],
            preset=RoomPreset.private_chat,
            power_level_override={"users_default": 0, "invite": 100, "state_default": 100},
            initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            ],
        )
        if isinstance(created, RoomCreateError):
            refusal = MatrixSendError(created.status_code, _http_status(created))
            if not refusal.permanent:
                raise refusal  # the homeserver is in trouble: the answer is sent again later
            log.warning("matrix: cannot open a direct chat (%s)", created.status_code)
            return None
        # While their erasure runs the chat serves this answer and is not kept.
        with contextlib.suppress(ErasurePending):
            await chats.remember(ctx.user, created.room_id, ctx.now)
        if not await self._wait_for_room(created.room_id, member=user_id):
            log.warning("matrix: a new direct chat did not show up in time")
            return None
        return client.rooms[created.room_id]

    async def _send_reply(
        self,
        room: MatrixRoom,
        reply: Reply,
        answers: str,
        *,
        reply_to: str | None,
        thread: str | None = None,
        pill: tuple[str, str] | None = None,
        owner: UserRef | None = None,
    ) -> str:
        """Send a reply and its attachments; returns the text message's event id.

        ``pill`` (user id, display name) addresses the reply to someone who did not type
        anything (a reaction), with a mention pill. Files sent only to ``owner`` are recorded
        as theirs, so erasing them deletes the files too.
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
        event_id = await self._send(room.room_id, content, txn_id=_txn("answer", answers))
        for index, attachment in enumerate(reply.attachments):
            await self._send_attachment(
                room.room_id, attachment, txn_id=_txn("answer", f"{answers}:{index}"),
                extra={ANSWERS_KEY: answers}, owner=owner,
            )  # fmt: skip
        return event_id

    async def _send(self, room_id: str, content: dict[str, Any], *, txn_id: str) -> str:
        """Send a message, encrypted when the room is; raises MatrixSendError."""
        try:
            response = await self._client.room_send(
                room_id, "m.room.message", content, tx_id=txn_id,
                # Devices the trust setting excludes are blacklisted and get no key; the rest
                # (trust on first use) are not verified by anyone, and must not block sending.
                ignore_unverified_devices=True,
            )  # fmt: skip
        except LocalProtocolError:
            raise MatrixSendError("M_UNKNOWN_ROOM") from None  # not (yet) in the bot's sync
        except (EncryptionError, OlmTrustError, SendRetryError) as exc:
            raise MatrixSendError(type(exc).__name__) from None
        if isinstance(response, RoomSendError):
            raise MatrixSendError(response.status_code, _http_status(response), response.message)
        return str(response.event_id)

    async def _send_attachment(
        self,
        room_id: str,
        attachment: Attachment,
        *,
        txn_id: str,
        extra: dict[str, Any],
        owner: UserRef | None = None,
    ) -> None:
        """Upload a file and post it; in an encrypted room the file is encrypted too."""
        room = self._client.rooms.get(room_id)
        encrypted = room is not None and room.encrypted
        uploaded, keys = await self._client.upload(
            io.BytesIO(attachment.data),
            content_type=attachment.content_type,
            filename=attachment.filename,
            encrypt=encrypted,
            filesize=len(attachment.data),
        )
        if isinstance(uploaded, UploadError):
            raise MatrixSendError(uploaded.status_code, _http_status(uploaded), uploaded.message)
        uploads = self.app.services.uploads
        record = None
        if owner is not None:
            record = await uploads.uploaded(owner, uploaded.content_uri, room_id,
                                            self.app.clock.now())  # fmt: skip
        image = attachment.content_type.startswith("image/")
        content: dict[str, Any] = {
            "msgtype": "m.image" if image else "m.file",
            "body": attachment.filename,
            "filename": attachment.filename,
            "info": {"mimetype": attachment.content_type, "size": len(attachment.data)},
            "m.mentions": {},
            **extra,
        }
        if encrypted and keys is not None:
            content["file"] = {"url": uploaded.content_uri, **keys}
        else:
            content["url"] = uploaded.content_uri
        event_id = await self._send(room_id, content, txn_id=txn_id)
        if record is not None:
            await uploads.sent(record, event_id)

    async def erase_media(self, uploads: list[Upload]) -> MediaErasure:
        """Delete files the bot uploaded for someone, and redact the messages that carried them.

        Deleting from the media store takes Synapse's admin API (the bot's account must be a
        server admin); without it the messages are still redacted, and the answer says the
        files themselves stay.
        """
        deleted, kept, why, refusal = 0, 0, "", ""
        for upload in uploads:
            server, _, media_id = upload.uri.removeprefix("mxc://").partition("/")
            status, answer = await self._api(
                "DELETE", f"/_synapse/admin/v1/media/{quote(server, safe='')}/"
                f"{quote(media_id, safe='')}", None,
            )  # fmt: skip
            if status == 200 or answer.get("errcode") == "M_NOT_FOUND":
                deleted += 1  # (not found: deleted already, by an admin or an earlier try)
            else:
                kept += 1
                refusal = refusal or f"{answer.get('errcode') or 'no error code'}, HTTP {status}"
                why = why or _MEDIA_KEPT.get(str(answer.get("errcode")), _MEDIA_REFUSED)
            if upload.event_id:
                redacted = await self._client.room_redact(
                    upload.room_id, upload.event_id, reason="erased on request",
                    tx_id=_txn("redact", upload.event_id),
                )  # fmt: skip
                if isinstance(redacted, RoomRedactError):
                    log.warning("matrix: a message carrying an erased file could not be "
                                "redacted (%s)", redacted.status_code)  # fmt: skip
        if kept:
            log.warning("matrix: %d uploaded file(s) could not be deleted (%s)", kept, refusal)
        return MediaErasure(deleted, kept, why)

    # -- the outbox --------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        """Post an outbox row to its room; raises PermanentDeliveryError if it never can."""
        room_id = delivery.target.partition(":")[2]
        if room_id.startswith("#"):
            resolved = await self._client.room_resolve_alias(room_id)
            if isinstance(resolved, RoomResolveAliasError):
                if resolved.status_code == "M_NOT_FOUND":
                    raise PermanentDeliveryError("no such room alias")
                raise MatrixSendError(
                    resolved.status_code, _http_status(resolved), resolved.message
                )
            room_id = resolved.room_id
        if not room_id.startswith("!"):
            raise PermanentDeliveryError("not a Matrix room address")
        body = action_hints(delivery.body.localized(delivery.reader), delivery.buttons,
                            delivery.subject, self.prefix, delivery.reader)  # fmt: skip
        mentions: list[str] = []
        if delivery.recipient_id:
            mentions.append(delivery.recipient_id)
        content = notice_content(body, reply_to=None, mentions=mentions)
        if delivery.recipient_id:
            add_pill(content, delivery.recipient_id, self._display_name(room_id, delivery))
        txn = _txn("outbox", delivery.key)
        try:
            event_id = await self._send(room_id, content, txn_id=txn)
        except MatrixSendError as exc:
            if exc.errcode not in _PERMANENT_ERRCODES:
                raise
            if not await self._rejoin(room_id):
                raise PermanentDeliveryError(
                    f"the bot cannot post there ({exc.errcode})"
                ) from None
            event_id = await self._send(room_id, content, txn_id=txn)
        if delivery.subject is not None:
            kind, subject_id = delivery.subject
            await self.app.services.state.set(
                SUBJECT_KEY.format(event_id=event_id), f"{kind}:{subject_id}",
                self.app.clock.now(),
            )  # fmt: skip
        if delivery.attachment is not None:
            await self._send_attachment(
                room_id, delivery.attachment, txn_id=_txn("outbox", delivery.key + ":file"),
                extra={},
            )  # fmt: skip

    async def _rejoin(self, room_id: str) -> bool:
        """Try to (re)join a room the bot could not post to; False if it cannot."""
        joined = await self._client.join(room_id)
        if isinstance(joined, JoinError):
            return False
        # An encrypted message needs the room's members and state, which come with the sync.
        return await self._wait_for_room(room_id)

    def _display_name(self, room_id: str, delivery: Delivery) -> str:
        user_id = delivery.recipient_id or ""
        room = self._client.rooms.get(room_id)
        member = room.users.get(user_id) if room is not None else None
        return member.display_name if member is not None and member.display_name else user_id

    @property
    def _client(self) -> _Client:
        if self.client is None:
            raise RuntimeError("the Matrix client is not connected yet")
        return self.client


# -- rendering ---------------------------------------------------------------------------------


def reply_markup(reply: Reply, prefix: str) -> Markup:
    """The reply text with its buttons shown as hints, e.g. "React ✋ or type `!task claim 7`"."""
    return action_hints(reply.body, reply.buttons, reply.subject, prefix, reply.reader)


def action_hints(
    body: Markup, buttons: Sequence[Button], subject: tuple[str, int] | None, prefix: str,
    reader: Reader = ENGLISH,
) -> Markup:  # fmt: skip
    """A text with its buttons shown as hints: the reaction that does it, or the command."""
    reactions = {
        template.format(id=subject[1]): emoji
        for (kind, emoji), template in REACTIONS.items()
        if subject is not None and subject[0] == kind
    }
    for button in buttons:
        emoji = reactions.get(button.command)
        line = Markup.format("`{line}`", line=prefix + button.command)
        hint = (
            Markup.format(_("React {emoji} or type {command}"), emoji=emoji, command=line)
            if emoji
            else Markup.format(_("Type {command}"), command=line)
        )
        body += Markup.trusted("\n") + hint.localized(reader)
    return body


def notice_content(
    markup: Markup,
    *,
    reply_to: str | None,
    thread: str | None = None,
    mentions: Iterable[str] = (),
) -> dict[str, Any]:
    """An m.notice with escaped HTML, a reply relation and only the intended mentions.

    Text and HTML together stay within ``MAX_TEXT_BYTES``; a longer answer is cut.
    """
    user_ids = list(dict.fromkeys(mentions))
    body, formatted = fit_text(markup)
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": formatted,
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


def fit_text(markup: Markup, limit: int = MAX_TEXT_BYTES) -> tuple[str, str]:
    """The plain and HTML text of ``markup``, cut until both fit in ``limit`` bytes of JSON."""
    while True:
        body, formatted = markup.plain(), markup.html()
        # JSON with ASCII escapes is the largest form the text takes on the wire.
        size = len(json.dumps(body)) + len(json.dumps(formatted))
        if size <= limit:
            return body, formatted
        chars = len(body)
        markup = markup.truncated(max(0, min(chars - 1, chars * limit // size - 64)), CUT)


def add_pill(content: dict[str, Any], user_id: str, display_name: str) -> None:
    """Start a message with a mention pill of ``user_id``."""
    link = Markup.format("{name}", name=display_name).html()
    href = "https://matrix.to/#/" + Markup.format("{id}", id=user_id).html()
    content["body"] = f"{display_name}: {content['body']}"
    content["formatted_body"] = f'<a href="{href}">{link}</a>: {content["formatted_body"]}'


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (event fields come from anyone)."""
    return value if isinstance(value, dict) else {}


def relation(content: dict[str, Any]) -> dict[str, Any]:
    """An event's ``m.relates_to``, or an empty one when it is missing or not an object."""
    return _object(content.get("m.relates_to"))


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


def _http_status(response: Any) -> int | None:
    """The HTTP status of a nio error response, when it came over the wire."""
    transport = getattr(response, "transport_response", None)
    status = getattr(transport, "status", None)
    return status if isinstance(status, int) else None


def _txn(kind: str, key: str) -> str:
    """A transaction id derived from what is sent, so a resend is deduplicated by the server."""
    return f"vb-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"
