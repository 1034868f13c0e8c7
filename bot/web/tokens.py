"""Signed, expiring, single-use sign-in links and the session cookies they turn into.

A token is ``v1.<payload>.<mac>``: the payload is base32 JSON naming the person, how
they hold their rights, a random id and the expiry; the mac is HMAC-SHA256 over the purpose
and the payload, so a link cannot be used as a cookie or the other way round. Link ids are
recorded when used (a replay finds its id there), and so are the ids of ended sessions.

Nothing here imports aiohttp: the ``dashboard`` cog asks :class:`SignIn` for a link.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.clock import Clock
from bot.config import WebSection
from bot.domain import UserRef
from bot.rights import Rights
from storage.state import StateRepo
from storage.web import UsedTokenRepo

log = logging.getLogger(__name__)

SECRET_KEY = "web.signing_secret"
VERSION = "v1"
LINK, SESSION = "link", "session"
MAX_TOKEN = 2048
NAME_LIMIT = 64


class Basis(StrEnum):
    """Where a coordinator's rights came from when the link was made."""

    NAMED = "named"  # the configuration names them: checked again on every request
    PLATFORM = "platform"  # their standing on a platform: kept, so sessions are short


class Refusal(StrEnum):
    """Why a token was not accepted; logged by kind, never with the token."""

    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"


class TokenRefused(Exception):
    """A link or cookie that does not let anyone in."""

    def __init__(self, why: Refusal) -> None:
        super().__init__(why.value)
        self.why = why


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a valid token speaks for, until when."""

    id: str
    user: UserRef
    basis: Basis
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Grant(platform={self.user.platform!r}, basis={self.basis.value!r})"


@dataclass(frozen=True, slots=True)
class Link:
    """A sign-in link as sent to the coordinator."""

    url: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Link(expires_at={self.expires_at.isoformat()!r})"


# Lower-case base32 and hex: nothing in a link that chat markup (``_``, ``~``, ``*``) reads.
def _encode(data: bytes) -> str:
    return base64.b32encode(data).rstrip(b"=").decode("ascii").lower()


def _decode(text: str) -> bytes:
    return base64.b32decode(text.upper() + "=" * (-len(text) % 8))


class Signer:
    """Makes and checks tokens with one key."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def __repr__(self) -> str:
        return "Signer(...)"

    def _mac(self, purpose: str, payload: str) -> str:
        message = f"{VERSION}|{purpose}|{payload}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, purpose: str, grant: Grant) -> str:
        """The token for a grant."""
        body = {
            "id": grant.id,
            "p": grant.user.platform,
            "u": grant.user.external_id,
            "n": grant.user.display_name[:NAME_LIMIT],
            "b": grant.basis.value,
            "exp": int(grant.expires_at.timestamp()),
        }
        payload = _encode(json.dumps(body, separators=(",", ":")).encode())
        return f"{VERSION}.{payload}.{self._mac(purpose, payload)}"

    def verify(self, purpose: str, token: str, now: datetime) -> Grant:
        """The grant a token carries; raises TokenRefused."""
        parts = token.split(".") if 0 < len(token) <= MAX_TOKEN else []
        if len(parts) != 3 or parts[0] != VERSION:
            raise TokenRefused(Refusal.MALFORMED)
        _, payload, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac(purpose, payload).encode()):
            raise TokenRefused(Refusal.FORGED)
        try:
            body: dict[str, Any] = json.loads(_decode(payload))
            grant = Grant(
                id=str(body["id"]),
                user=UserRef(str(body["p"]), str(body["u"]), str(body.get("n", ""))),
                basis=Basis(body["b"]),
                expires_at=datetime.fromtimestamp(int(body["exp"]), UTC),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise TokenRefused(Refusal.MALFORMED) from None
        if grant.expires_at <= now:
            raise TokenRefused(Refusal.EXPIRED)
        return grant


class SignIn:
    """Sign-in links for coordinators, and the sessions they open.

    The signing secret is ``[web] secret`` when set, else one generated once and kept in
    the database (so every process and restart agrees); it is never logged.
    """

    def __init__(
        self,
        settings: WebSection,
        rights: Rights,
        state: StateRepo,
        used: UsedTokenRepo,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.rights = rights
        self.state = state
        self.used = used
        self.clock = clock
        self._signer: Signer | None = None
        # The address the server really listens on (the port may be chosen at start).
        self.listening: str | None = None

    def __repr__(self) -> str:
        return f"SignIn(enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        """Whether the web server that takes the links runs."""
        return self.settings.enabled

    @property
    def base_url(self) -> str:
        """Where the links point: the public address, else the listening one."""
        return self.settings.public_url or f"http://{self.listening or self.settings.listen}"

    @property
    def secure(self) -> bool:
        """Whether cookies must only travel over https."""
        return self.base_url.startswith("https://")

    async def signer(self) -> Signer:
        """The signer, reading or creating the secret the first time."""
        if self._signer is None:
            if self.settings.secret is not None and self.settings.secret.get_secret_value():
                secret = self.settings.secret.get_secret_value()
            else:
                secret = await self.state.get_or_create(
                    SECRET_KEY, secrets.token_urlsafe(32), self.clock.now()
                )
            self._signer = Signer(secret)
        return self._signer

    def basis_of(self, user: UserRef) -> Basis:
        """Named in the configuration, or a coordinator by platform standing."""
        return Basis.NAMED if self.rights.is_coordinator(user) else Basis.PLATFORM

    async def link_for(self, user: UserRef) -> Link:
        """A one-time link that signs ``user`` (a coordinator now) in to the dashboard."""
        now = self.clock.now()
        expires = now + self.settings.link_ttl
        grant = Grant(secrets.token_hex(16), user, self.basis_of(user), expires)
        token = (await self.signer()).sign(LINK, grant)
        return Link(f"{self.base_url}/signin?t={token}", grant.expires_at)

    async def redeem(self, token: str) -> Grant:
        """Use a link once; returns the session's grant. Raises TokenRefused."""
        now = self.clock.now()
        link = (await self.signer()).verify(LINK, token, now)
        self._still_coordinator(link)
        if not await self.used.use(link.id, LINK, link.expires_at, now):
            raise TokenRefused(Refusal.USED)
        ttl = self.settings.session_ttl
        if link.basis is Basis.PLATFORM:
            ttl = min(ttl, self.settings.derived_session_ttl)
        return Grant(secrets.token_hex(16), link.user, link.basis, now + ttl)

    async def cookie(self, session: Grant) -> str:
        """The session cookie's value."""
        return (await self.signer()).sign(SESSION, session)

    async def session(self, cookie: str) -> Grant:
        """The session a cookie carries, still valid and still a coordinator's."""
        grant = (await self.signer()).verify(SESSION, cookie, self.clock.now())
        self._still_coordinator(grant)
        if await self.used.is_used(grant.id):
            raise TokenRefused(Refusal.REVOKED)
        return grant

    async def end(self, session: Grant) -> None:
        """Sign out: the session's id is recorded, so its cookie stops working everywhere."""
        await self.used.use(session.id, SESSION, session.expires_at, self.clock.now())

    def _still_coordinator(self, grant: Grant) -> None:
        if grant.basis is Basis.NAMED and not self.rights.is_coordinator(grant.user):
            raise TokenRefused(Refusal.REVOKED)
