"""Master keys: the FAILOVER_ENCRYPTION_KEY format, providers, and secrecy of key material."""

from __future__ import annotations

import base64
import hashlib

import pytest

from failover.errors import ConfigError
from failover.segmentation import (
    CallableKeyProvider,
    KeyProvider,
    StaticKeyProvider,
    UnknownKeyError,
    derive_key_id,
    generate_master_key,
)
from failover.segmentation.errors import DecryptionError

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
B1 = base64.b64encode(K1).decode()
B2 = base64.b64encode(K2).decode()


def test_bare_key_gets_a_derived_id() -> None:
    provider = StaticKeyProvider.from_env_value(B1)
    key_id, key = provider.current()
    assert key == K1
    assert key_id == derive_key_id(K1)
    assert key_id == hashlib.sha256(b"failover-key-id\x00" + K1).hexdigest()[:8]
    assert provider.get(key_id) == K1


def test_first_entry_is_current_and_the_others_stay_readable() -> None:
    provider = StaticKeyProvider.from_env_value(f" k2:{B2} , k1:{B1} ")
    assert provider.current() == ("k2", K2)
    assert provider.get("k1") == K1
    assert provider.key_ids == ("k2", "k1")


def test_rotating_away_from_a_bare_key_keeps_its_derived_id() -> None:
    old = StaticKeyProvider.from_env_value(B1)
    rotated = StaticKeyProvider.from_env_value(f"new:{B2},{B1}")
    old_id = old.current()[0]
    assert rotated.current()[0] == "new"
    assert rotated.get(old_id) == K1


@pytest.mark.parametrize(
    "encoded",
    [
        B1,
        B1.rstrip("="),
        base64.urlsafe_b64encode(K1).decode(),
        base64.urlsafe_b64encode(K1).decode().rstrip("="),
    ],
)
def test_standard_and_url_safe_base64_with_or_without_padding(encoded: str) -> None:
    assert StaticKeyProvider.from_env_value(f"id.1_x-y:{encoded}").get("id.1_x-y") == K1


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "is empty"),
        ("  ", "is empty"),
        (f"k1:{B1},", "entry 2 of 2 is empty"),
        ("k1:not*base64!", "entry 1 of 1 is not valid base64"),
        (f"k1:{base64.b64encode(K1[:16]).decode()}", "decodes to 16 bytes, not 32"),
        (f"bad id:{B1}", "invalid key id"),
        (f"{'x' * 65}:{B1}", "invalid key id"),
        (f"k1:{B1},k1:{B2}", "'k1' appears more than once"),
        (f"{B1},{B1}", "appears more than once"),
    ],
)
def test_bad_values_name_the_variable_and_format_without_echoing(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        StaticKeyProvider.from_env_value(value)
    message = str(info.value)
    assert "FAILOVER_ENCRYPTION_KEY" in message
    assert fragment in message
    assert "[id:]base64key" in message or "unique" in message
    for secret in (B1, B2, B1.rstrip("="), "not*base64!", base64.b64encode(K1[:16]).decode()):
        assert secret not in message


def test_no_key_material_in_repr_or_errors() -> None:
    provider = StaticKeyProvider.from_env_value(f"k2:{B2},k1:{B1}")
    text = repr(provider) + str(provider)
    assert text == "StaticKeyProvider(key_ids=('k2', 'k1'))" * 2
    for secret in (B1, B2, K1.hex(), K2.hex(), repr(K1), repr(K2)):
        assert secret not in text
    with pytest.raises(UnknownKeyError) as info:
        provider.get("k0")
    assert info.value.key_id == "k0"
    assert B1 not in str(info.value)


def test_unknown_key_is_a_lookup_and_integrity_error() -> None:
    provider = StaticKeyProvider([("k1", K1)])
    with pytest.raises(LookupError):
        provider.get("nope")
    with pytest.raises(DecryptionError, match="FAILOVER_ENCRYPTION_KEY"):
        provider.get("nope")


def test_constructor_validation() -> None:
    with pytest.raises(ConfigError, match="no master key"):
        StaticKeyProvider([])
    with pytest.raises(ConfigError, match="16 bytes for master key 'k1'"):
        StaticKeyProvider([("k1", K1[:16])])
    with pytest.raises(ConfigError, match="twice"):
        StaticKeyProvider([("k1", K1), ("k1", K2)])
    with pytest.raises(ConfigError, match="invalid key id"):
        StaticKeyProvider([("", K1)])
    with pytest.raises(ConfigError, match="invalid key id"):
        StaticKeyProvider([("a\nb", K1)])


def test_equality_and_hash_follow_ids_and_keys() -> None:
    a = StaticKeyProvider.from_env_value(f"k1:{B1}")
    assert a == StaticKeyProvider([("k1", K1)])
    assert hash(a) == hash(StaticKeyProvider([("k1", K1)]))
    assert a != StaticKeyProvider([("k1", K2)])
    assert a != StaticKeyProvider([("k2", K1)])
    assert a != "k1"


def test_generated_keys_parse() -> None:
    generated = generate_master_key()
    assert len(base64.b64decode(generated)) == 32
    assert generate_master_key() != generated
    assert len(StaticKeyProvider.from_env_value(generated).current()[1]) == 32


def test_callable_provider_for_kms() -> None:
    vault = {"arn:aws:kms:eu-west-1:1:key/new": K2, "old": K1}

    def fetch(key_id: str) -> bytes:
        return vault[key_id]

    provider = CallableKeyProvider(lambda: ("arn:aws:kms:eu-west-1:1:key/new", K2), fetch)
    assert isinstance(provider, KeyProvider)
    assert provider.current() == ("arn:aws:kms:eu-west-1:1:key/new", K2)
    assert provider.get("old") == K1
    with pytest.raises(UnknownKeyError):
        provider.get("missing")  # KeyError from the callable
    assert "fetch" in repr(provider)
    assert B1 not in repr(provider)


def test_callable_provider_validates_what_it_returns() -> None:
    with pytest.raises(UnknownKeyError):
        CallableKeyProvider(lambda: ("k", K1), lambda _id: None).get("k")
    with pytest.raises(ConfigError, match="31 bytes"):
        CallableKeyProvider(lambda: ("k", K1[:31]), lambda _id: K1).current()
    with pytest.raises(ConfigError, match="31 bytes"):
        CallableKeyProvider(lambda: ("k", K1), lambda _id: K1[:31]).get("k")
    with pytest.raises(ConfigError, match=r"\(key_id, key\)"):
        CallableKeyProvider(lambda: K1, lambda _id: K1).current()  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="invalid key id"):
        CallableKeyProvider(lambda: ("x" * 256, K1), lambda _id: K1).current()


def test_static_provider_satisfies_the_protocol() -> None:
    assert isinstance(StaticKeyProvider([("k1", K1)]), KeyProvider)
