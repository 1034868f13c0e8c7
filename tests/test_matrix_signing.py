"""Cross-signing keys, signatures and the recovery key, without a homeserver."""

import stat

import pytest

from bot.adapters.matrix_signing import (
    CrossSigningKeys,
    cross_signed,
    decrypt_secret,
    encrypt_secret,
    recovery_key,
    secret_storage_key_description,
    self_signing_key,
)

USER = "@bot:example.org"
DEVICE = {
    "user_id": USER,
    "device_id": "BOTDEVICE",
    "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    "keys": {"ed25519:BOTDEVICE": "aaaa", "curve25519:BOTDEVICE": "bbbb"},
    "signatures": {USER: {"ed25519:BOTDEVICE": "device-self-signature"}},
    "unsigned": {"device_display_name": "volunteer-bot"},
}


def query_for(keys: CrossSigningKeys, device: dict) -> dict:
    return {
        "master_keys": {USER: keys.published_form("master")},
        "self_signing_keys": {USER: keys.published_form("self_signing")},
        "device_keys": {USER: {"BOTDEVICE": device}},
    }


def test_a_device_signed_by_the_self_signing_key_under_the_master_key_is_cross_signed():
    keys = CrossSigningKeys.generate(USER)
    signed = keys.sign_device(DEVICE)
    assert "unsigned" not in signed
    assert cross_signed(query_for(keys, signed), USER, "BOTDEVICE")
    assert self_signing_key(query_for(keys, signed), USER) == keys.public("self_signing")


def test_a_tampered_device_another_accounts_keys_or_a_missing_signature_are_not():
    keys, other = CrossSigningKeys.generate(USER), CrossSigningKeys.generate(USER)
    signed = keys.sign_device(DEVICE)
    tampered = dict(signed, keys={**signed["keys"], "curve25519:BOTDEVICE": "cccc"})
    assert not cross_signed(query_for(keys, tampered), USER, "BOTDEVICE")
    assert not cross_signed(query_for(other, signed), USER, "BOTDEVICE")
    assert not cross_signed(query_for(keys, DEVICE), USER, "BOTDEVICE")
    # A self-signing key the master key did not sign makes nothing trusted.
    forged = query_for(keys, signed)
    forged["self_signing_keys"][USER] = other.published_form("self_signing")
    assert self_signing_key(forged, USER) is None


def test_the_private_keys_are_kept_readable_by_the_owner_only_and_never_shown(tmp_path):
    keys = CrossSigningKeys.generate(USER)
    keys.save(tmp_path / "store")
    kept = tmp_path / "store" / "cross_signing.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    loaded = CrossSigningKeys.load(tmp_path / "store")
    assert loaded is not None and loaded.public("master") == keys.public("master")
    assert repr(keys) == "CrossSigningKeys(...)"
    assert CrossSigningKeys.load(tmp_path / "nowhere") is None


def test_a_recovery_key_is_48_base58_characters_in_groups_of_four_with_a_parity_check():
    key = bytes(range(32))
    shown = recovery_key(key)
    groups = shown.split(" ")
    assert len("".join(groups)) == 48 and all(len(g) == 4 for g in groups)
    assert shown.startswith("Es")  # the 0x8B 0x01 prefix, as Element's keys start
    assert recovery_key(key) == shown and recovery_key(bytes(32)) != shown


def test_secret_storage_opens_with_its_key_and_refuses_a_wrong_one():
    key, wrong = bytes(range(32)), bytes(32)
    sealed = encrypt_secret(key, "m.cross_signing.master", "seed")
    assert decrypt_secret(key, "m.cross_signing.master", sealed) == "seed"
    with pytest.raises(ValueError):
        decrypt_secret(wrong, "m.cross_signing.master", sealed)
    with pytest.raises(ValueError):
        decrypt_secret(key, "m.cross_signing.self_signing", sealed)
    description = secret_storage_key_description(key)
    assert description["algorithm"] == "m.secret_storage.v1.aes-hmac-sha2"
    assert set(description) == {"algorithm", "iv", "mac"}, "a check value, not the key"
