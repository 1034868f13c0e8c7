"""Matrix cross-signing, which matrix-nio lacks: the account's keys, its device's signature.

A device is trusted by clients that follow MSC4153 ("exclude insecure devices") only when its
owner cross-signed it: the account's *master* key signs a *self-signing* key, which signs the
device's own keys (its ed25519 identity and curve25519 keys, as published by
``/keys/upload``). A third key, *user-signing*, signs other people's master keys; the bot
makes one so its identity is complete, and never uses it.

vodozemac signs only with the device's own key, so these ed25519 keys are PyNaCl keys and
signatures are made over Matrix's canonical JSON with ``signedjson``. The private keys are
kept under the store path (mode 0600) and, encrypted with a recovery key shown once, in the
account's secret storage (``m.secret_storage.v1.aes-hmac-sha2``), where Element and other
clients can fetch them with that recovery key.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nacl.signing
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from signedjson.key import decode_signing_key_base64, decode_verify_key_base64
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey, VerifyKey

CROSS_SIGNING_FILE = "cross_signing.json"
USAGES = ("master", "self_signing", "user_signing")
SECRET_NAMES = {name: f"m.cross_signing.{name}" for name in USAGES}
SSSS_ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
# A recovery key is these two bytes, the 32-byte key and a parity byte, in base58.
_RECOVERY_PREFIX = b"\x8b\x01"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def unpadded_b64(data: bytes) -> str:
    """Matrix's base64: standard alphabet, no padding."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64_bytes(text: str) -> bytes:
    """Decode unpadded (or padded) base64."""
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _signing_key(seed: bytes) -> SigningKey:
    """An ed25519 key named the way signedjson expects: ``ed25519:<public key>``."""
    public = unpadded_b64(bytes(nacl.signing.SigningKey(seed).verify_key))
    return decode_signing_key_base64("ed25519", public, unpadded_b64(seed))


def _verify_key(public: str) -> VerifyKey:
    return decode_verify_key_base64("ed25519", public, public)


@dataclass(frozen=True)
class CrossSigningKeys:
    """The account's three private cross-signing keys (ed25519 seeds)."""

    user_id: str
    seeds: Mapping[str, bytes]

    def __repr__(self) -> str:
        return "CrossSigningKeys(...)"

    @classmethod
    def generate(cls, user_id: str) -> "CrossSigningKeys":
        """Fresh random keys."""
        return cls(user_id, {usage: secrets.token_bytes(32) for usage in USAGES})

    def key(self, usage: str) -> SigningKey:
        """The signing key for one usage."""
        return _signing_key(self.seeds[usage])

    def public(self, usage: str) -> str:
        """The public key of one usage, unpadded base64."""
        return unpadded_b64(bytes(self.key(usage).verify_key))

    def published_form(self, usage: str) -> dict[str, Any]:
        """The public key object ``/keys/device_signing/upload`` takes, signed as needed."""
        public = self.public(usage)
        body: dict[str, Any] = {
            "user_id": self.user_id,
            "usage": [usage],
            "keys": {f"ed25519:{public}": public},
        }
        if usage != "master":
            sign_json(body, self.user_id, self.key("master"))
        return body

    def sign_device(self, device_keys: Mapping[str, Any]) -> dict[str, Any]:
        """The device's keys with only the self-signing key's signature, for upload."""
        body = {k: v for k, v in device_keys.items() if k not in ("signatures", "unsigned")}
        return sign_json(body, self.user_id, self.key("self_signing"))

    # -- the file under the store path --------------------------------------------------------

    @classmethod
    def load(cls, store: Path) -> "CrossSigningKeys | None":
        """The kept keys, or None when there are none (or they are unreadable)."""
        try:
            data = json.loads((store / CROSS_SIGNING_FILE).read_text(encoding="utf-8"))
            return cls(str(data["user_id"]), {u: b64_bytes(data[u]) for u in USAGES})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, store: Path) -> None:
        """Write the private keys readable by the bot's own user only."""
        store.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"user_id": self.user_id, **{u: unpadded_b64(s) for u, s in self.seeds.items()}}
        write_private(store / CROSS_SIGNING_FILE, json.dumps(data))


def write_private(path: Path, text: str) -> None:
    """Replace a file with ``text``, mode 0600, never readable by others even briefly."""
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


# -- checking someone's cross-signing from a /keys/query answer --------------------------------


def _only_key(key_object: Mapping[str, Any]) -> str | None:
    keys = key_object.get("keys") or {}
    values = [v for k, v in keys.items() if str(k).startswith("ed25519:")]
    return str(values[0]) if len(values) == 1 else None


def signed_by(signed: Mapping[str, Any], user_id: str, public: str) -> bool:
    """Whether ``signed`` carries a valid signature by ``user_id``'s ed25519 key ``public``."""
    try:
        verify_signed_json(dict(signed), user_id, _verify_key(public))
    except (SignatureVerifyException, ValueError, TypeError, KeyError):
        return False
    return True


def self_signing_key(query: Mapping[str, Any], user_id: str) -> str | None:
    """The user's self-signing public key, if their master key signed it."""
    master = (query.get("master_keys") or {}).get(user_id)
    ssk = (query.get("self_signing_keys") or {}).get(user_id)
    if not isinstance(master, Mapping) or not isinstance(ssk, Mapping):
        return None
    if "master" not in master.get("usage", ()) or "self_signing" not in ssk.get("usage", ()):
        return None
    master_public, ssk_public = _only_key(master), _only_key(ssk)
    if master_public is None or ssk_public is None:
        return None
    if ssk.get("user_id") != user_id or master.get("user_id") != user_id:
        return None
    return ssk_public if signed_by(ssk, user_id, master_public) else None


def cross_signed(query: Mapping[str, Any], user_id: str, device_id: str) -> bool:
    """Whether the device is signed by its owner's self-signing key, which their master signed."""
    ssk = self_signing_key(query, user_id)
    device = ((query.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    if ssk is None or not isinstance(device, Mapping):
        return False
    return signed_by(device, user_id, ssk)


# -- secret storage and the recovery key -------------------------------------------------------


def recovery_key(key: bytes) -> str:
    """The human form of a secret-storage key: base58, parity-checked, in groups of four."""
    raw = _RECOVERY_PREFIX + key
    parity = 0
    for byte in raw:
        parity ^= byte
    raw += bytes([parity])
    number = int.from_bytes(raw, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _BASE58[rest] + digits
    digits = _BASE58[0] * (len(raw) - len(raw.lstrip(b"\0"))) + digits
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _derive(key: bytes, name: str) -> tuple[bytes, bytes]:
    derived = HKDF(key, 64, b"\0" * 32, SHA256, context=name.encode())
    assert isinstance(derived, bytes)
    return derived[:32], derived[32:]


def encrypt_secret(key: bytes, name: str, secret: str) -> dict[str, str]:
    """One secret encrypted for secret storage: AES-CTR with an HMAC-SHA-256 over it."""
    aes_key, mac_key = _derive(key, name)
    iv = bytearray(secrets.token_bytes(16))
    iv[8] &= 0x7F  # some implementations cannot carry into the upper half of the counter
    cipher = AES.new(aes_key, AES.MODE_CTR, nonce=b"", initial_value=bytes(iv))
    ciphertext = cipher.encrypt(secret.encode())
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    return {
        "iv": base64.b64encode(bytes(iv)).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "mac": base64.b64encode(mac).decode(),
    }


def decrypt_secret(key: bytes, name: str, encrypted: Mapping[str, str]) -> str:
    """The inverse of :func:`encrypt_secret`; raises ValueError on a wrong key or tampering."""
    aes_key, mac_key = _derive(key, name)
    ciphertext = base64.b64decode(encrypted["ciphertext"])
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, b64_bytes(encrypted["mac"].rstrip("="))):
        raise ValueError("the secret's MAC does not match")
    iv = b64_bytes(encrypted["iv"].rstrip("="))
    cipher = AES.new(aes_key, AES.MODE_CTR, nonce=b"", initial_value=iv)
    return bytes(cipher.decrypt(ciphertext)).decode()


def secret_storage_key_description(key: bytes) -> dict[str, str]:
    """The ``m.secret_storage.key.*`` account data: lets clients check a recovery key."""
    check = encrypt_secret(key, "", "\0" * 32)
    return {"algorithm": SSSS_ALGORITHM, "iv": check["iv"], "mac": check["mac"]}


# -- publishing: keys, the device's signature, secret storage ---------------------------------

# (method, path, JSON body) -> (HTTP status, JSON answer)
Api = Callable[[str, str, dict[str, Any] | None], Awaitable[tuple[int, dict[str, Any]]]]
RECOVERY_SHOWN_FILE = "recovery_key_shown"


class CrossSigningError(Exception):
    """The homeserver refused a cross-signing step; the message names the step, no secret."""


@dataclass(frozen=True)
class Outcome:
    """How the bot's device stands after :func:`ensure_cross_signed`, in words for the log."""

    signed: bool
    note: str


async def ensure_cross_signed(
    api: Api,
    *,
    user_id: str,
    device_id: str,
    store: Path,
    password: str | None,
    show_recovery_key: Callable[[str], None],
) -> Outcome:
    """Create and publish the account's cross-signing keys once, and sign this device.

    Keys already published by this bot are reused. Keys someone else published (a reset
    from another client) are left alone: replacing them would undo that person's choice.
    """
    query = await _query(api, user_id, device_id)
    keys = CrossSigningKeys.load(store)
    master = (query.get("master_keys") or {}).get(user_id)
    published = _only_key(master) if isinstance(master, Mapping) else None
    if keys is not None and published not in (None, keys.public("master")):
        return Outcome(
            False,
            f"the account's cross-signing keys are not the ones in {CROSS_SIGNING_FILE}; "
            "delete that file to make new ones",
        )
    if keys is None or published is None:
        if keys is None:
            keys = CrossSigningKeys.generate(user_id)
            keys.save(store)  # before the upload, so a crash cannot lose published keys
        if not await _upload_keys(api, keys, password):
            return Outcome(False, "publishing cross-signing keys needs matrix.password once")
        query = await _query(api, user_id, device_id)
    if not (store / RECOVERY_SHOWN_FILE).exists():
        show_recovery_key(await _back_up(api, keys))
        write_private(store / RECOVERY_SHOWN_FILE, "")
    if cross_signed(query, user_id, device_id):
        return Outcome(True, "the device is cross-signed")
    device = ((query.get("device_keys") or {}).get(user_id) or {}).get(device_id)
    if not isinstance(device, Mapping):
        raise CrossSigningError("the homeserver has no keys for this device yet")
    status, answer = await api(
        "POST", "/_matrix/client/v3/keys/signatures/upload",
        {user_id: {device_id: keys.sign_device(device)}},
    )  # fmt: skip
    if status != 200 or answer.get("failures"):
        raise CrossSigningError(f"the device signature was refused (HTTP {status})")
    return Outcome(True, "the device is now cross-signed")


async def _query(api: Api, user_id: str, device_id: str) -> dict[str, Any]:
    status, answer = await api(
        "POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: [device_id]}}
    )
    if status != 200:
        raise CrossSigningError(f"the key query failed (HTTP {status})")
    return answer


async def _upload_keys(api: Api, keys: CrossSigningKeys, password: str | None) -> bool:
    """Upload the public keys, answering the interactive-auth step with the password."""
    path = "/_matrix/client/v3/keys/device_signing/upload"
    body: dict[str, Any] = {f"{usage}_key": keys.published_form(usage) for usage in USAGES}
    status, answer = await api("POST", path, body)
    if status == 401 and "flows" in answer:
        if password is None:
            return False
        body["auth"] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": keys.user_id},
            "password": password,
            "session": answer.get("session"),
        }
        status, answer = await api("POST", path, body)
    if status != 200:
        raise CrossSigningError(
            f"the cross-signing keys were refused (HTTP {status}, {answer.get('errcode')})"
        )
    return True


async def _back_up(api: Api, keys: CrossSigningKeys) -> str:
    """Store the private keys in secret storage under a new key; returns its recovery key."""
    key = secrets.token_bytes(32)
    key_id = secrets.token_urlsafe(24)
    account = f"/_matrix/client/v3/user/{quote(keys.user_id)}/account_data/"
    steps: list[tuple[str, dict[str, Any]]] = [
        (f"m.secret_storage.key.{key_id}", secret_storage_key_description(key)),
        *(
            (secret, {"encrypted": {key_id: encrypt_secret(key, secret,
                                                           unpadded_b64(keys.seeds[usage]))}})
            for usage, secret in SECRET_NAMES.items()
        ),
        ("m.secret_storage.default_key", {"key": key_id}),
    ]  # fmt: skip
    for kind, content in steps:
        status, _ = await api("PUT", account + quote(kind), content)
        if status != 200:
            raise CrossSigningError(f"secret storage was refused (HTTP {status})")
    return recovery_key(key)
