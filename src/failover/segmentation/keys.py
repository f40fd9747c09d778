r"""Master keys for client-side encryption: the provider seam and the env format.

A *master key* (256 bits) never encrypts data: it wraps the fresh data key of each
object (see :mod:`failover.segmentation.crypto`). Every master key has an *id*, recorded
in each object's header, so that after a rotation objects written under an older key
stay readable as long as the provider can still return that key.

``FAILOVER_ENCRYPTION_KEY`` format (a compatibility contract)::

    FAILOVER_ENCRYPTION_KEY = entry ("," entry)*        first entry = current key
    entry                   = [key_id ":"] base64_key
    key_id                  = 1 to 64 of  A-Z a-z 0-9 . _ -
    base64_key              = standard or URL-safe base64 of exactly 32 bytes
                              (padding optional, spaces around entries ignored)

An entry without an id gets a *derived* id: the first 8 hex digits of
``sha256(b"failover-key-id\x00" + key)`` (see :func:`derive_key_id`), so a single bare
key works, and rotating away from it is ``FAILOVER_ENCRYPTION_KEY=new:<b64>,<old b64>``.
New writes use the first entry; reads use whichever id the object's header names.

KMS / Key Vault / Secret Manager integration goes through :class:`CallableKeyProvider`
(two callables) or any object implementing :class:`KeyProvider`.

Key material never appears in a ``repr``, ``str`` or error message: only key ids do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from failover.errors import ConfigError
from failover.segmentation.errors import UnknownKeyError

__all__ = [
    "ENCRYPTION_KEY_VARIABLE",
    "MASTER_KEY_BYTES",
    "CallableKeyProvider",
    "KeyProvider",
    "StaticKeyProvider",
    "check_master_key",
    "derive_key_id",
    "generate_master_key",
]

#: The environment variable holding static master keys.
ENCRYPTION_KEY_VARIABLE = "FAILOVER_ENCRYPTION_KEY"
#: Length of a master key (AES-256).
MASTER_KEY_BYTES = 32
#: Longest key id the object header can carry (UTF-8 bytes).
MAX_KEY_ID_BYTES = 255

_STATIC_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FORMAT_HINT = (
    "expected a base64-encoded 256-bit key, or comma-separated '[id:]base64key' entries "
    f"with the current key first, e.g. {ENCRYPTION_KEY_VARIABLE}=k2:<base64>,k1:<base64> "
    "(ids: 1-64 of A-Z a-z 0-9 . _ -; generate a key with "
    "failover.segmentation.generate_master_key())"
)


@runtime_checkable
class KeyProvider(Protocol):
    """Where master keys come from (static configuration, KMS, Key Vault, ...).

    Implementations may cache; they are called once per object written or read.
    """

    def current(self) -> tuple[str, bytes]:
        """Return ``(key_id, key)``: the key that wraps the data keys of new writes."""
        ...

    def get(self, key_id: str) -> bytes:
        """Return the 32-byte master key with this id.

        Raises:
            UnknownKeyError: if the provider has no key with this id.
        """
        ...


def derive_key_id(key: bytes) -> str:
    """Return the id of a key configured without one (8 hex digits of a tagged sha256).

    Args:
        key: the 32-byte master key.
    """
    return hashlib.sha256(b"failover-key-id\x00" + key).hexdigest()[:8]


def generate_master_key() -> str:
    """Return a new random 256-bit master key, base64-encoded for the environment."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode("ascii")


def check_master_key(key_id: object, key: object, *, source: str = "key provider") -> None:
    """Validate a key id and key returned by a provider.

    Raises:
        ConfigError: if the id is not a non-empty str of at most 255 UTF-8 bytes without
            control characters, or the key is not 32 bytes. The message names the id and
            the key's length, never the key.
    """
    if (
        not isinstance(key_id, str)
        or not key_id
        or len(key_id.encode("utf-8", "surrogatepass")) > MAX_KEY_ID_BYTES
        or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) <= 0xDFFF for c in key_id)
    ):
        raise ConfigError(
            f"{source} returned an invalid key id (type {type(key_id).__name__}); a key id "
            "is a non-empty str of at most 255 UTF-8 bytes without control characters"
        )
    if not isinstance(key, (bytes, bytearray)) or len(key) != MASTER_KEY_BYTES:
        size = f"{len(key)} bytes" if isinstance(key, (bytes, bytearray)) else type(key).__name__
        raise ConfigError(
            f"{source} returned {size} for master key {key_id!r}; AES-256 needs "
            f"{MASTER_KEY_BYTES} bytes"
        )


class StaticKeyProvider:
    """Master keys held in memory, the first one current.

    Build from configuration with :meth:`from_env_value`, or directly from
    ``(key_id, key)`` pairs.

    Args:
        keys: ``(key_id, key)`` pairs, the current key first; at least one.

    Raises:
        ConfigError: if no key is given, an id repeats, or a key is not 32 bytes.
    """

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        pairs = list(keys)
        if not pairs:
            raise ConfigError(f"no master key given; {_FORMAT_HINT}")
        store: dict[str, bytes] = {}
        for key_id, key in pairs:
            check_master_key(key_id, key, source="StaticKeyProvider")
            if key_id in store:
                raise ConfigError(f"master key id {key_id!r} is given twice; ids must be unique")
            store[key_id] = bytes(key)
        self._keys = store
        self._current = pairs[0][0]

    @classmethod
    def from_env_value(
        cls, text: str, *, variable: str = ENCRYPTION_KEY_VARIABLE
    ) -> StaticKeyProvider:
        """Parse the ``FAILOVER_ENCRYPTION_KEY`` format (see the module docstring).

        Args:
            text: the variable's value.
            variable: the name to use in error messages.

        Raises:
            ConfigError: naming the variable, the faulty entry's position and the
                expected format; the value itself is never echoed.
        """
        try:
            return cls.parse(text)
        except ConfigError as exc:
            raise ConfigError(f"{variable}: {exc}; {_FORMAT_HINT}") from exc

    @classmethod
    def parse(cls, text: str) -> StaticKeyProvider:
        """Parse the ``FAILOVER_ENCRYPTION_KEY`` format, not saying where it came from.

        For callers that name the source themselves (``failover.config`` names the
        variable or the keyword); :meth:`from_env_value` names the variable.

        Raises:
            ConfigError: naming the faulty entry's position and what is wrong with it,
                but neither the source nor the expected format (the caller adds both);
                the value itself is never echoed.
        """
        entries = [part.strip() for part in text.split(",")]
        if not any(entries):
            raise ConfigError("the value is empty")
        pairs: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for position, entry in enumerate(entries, start=1):
            where = f"entry {position} of {len(entries)}"
            if not entry:
                raise ConfigError(f"{where} is empty")
            key_id, sep, encoded = entry.rpartition(":")
            key = _decode_key(encoded.strip(), where=where)
            if sep:
                key_id = key_id.strip()
                if not _STATIC_ID.fullmatch(key_id):
                    raise ConfigError(f"{where} has an invalid key id")
            else:
                key_id = derive_key_id(key)
            if key_id in seen:
                raise ConfigError(
                    f"{where}: key id {key_id!r} appears more than once; ids must be unique"
                )
            seen.add(key_id)
            pairs.append((key_id, key))
        return cls(pairs)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, the current one first."""
        return tuple(self._keys)

    def current(self) -> tuple[str, bytes]:
        """Return ``(key_id, key)`` of the current key."""
        return self._current, self._keys[self._current]

    def get(self, key_id: str) -> bytes:
        """Return the key with this id.

        Raises:
            UnknownKeyError: if no configured key has this id.
        """
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    def __repr__(self) -> str:
        return f"StaticKeyProvider(key_ids={self.key_ids!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StaticKeyProvider):
            return NotImplemented
        return self.key_ids == other.key_ids and all(
            hmac.compare_digest(self._keys[i], other._keys[i]) for i in self._keys
        )

    def __hash__(self) -> int:
        return hash(self.key_ids)


class CallableKeyProvider:
    """A :class:`KeyProvider` over two callables, for KMS / Key Vault / Secret Manager.

    Args:
        current: returns ``(key_id, key)`` of the key for new writes.
        get: returns the key for an id; may raise ``LookupError`` (e.g. ``KeyError``)
            or return ``None`` for an unknown id.

    Every returned key is checked (32 bytes, valid id) and a wrong one raises
    :class:`~failover.errors.ConfigError`.
    """

    __slots__ = ("_current", "_get")

    def __init__(
        self, current: Callable[[], tuple[str, bytes]], get: Callable[[str], bytes | None]
    ) -> None:
        self._current = current
        self._get = get

    def current(self) -> tuple[str, bytes]:
        """Return ``(key_id, key)`` from the ``current`` callable, validated."""
        result = self._current()
        if not isinstance(result, tuple) or len(result) != 2:
            raise ConfigError("the key provider's current() must return (key_id, key)")
        key_id, key = result
        check_master_key(key_id, key)
        return key_id, bytes(key)

    def get(self, key_id: str) -> bytes:
        """Return the key for ``key_id`` from the ``get`` callable, validated.

        Raises:
            UnknownKeyError: if the callable raises ``LookupError`` or returns ``None``.
        """
        try:
            key = self._get(key_id)
        except UnknownKeyError:
            raise
        except LookupError:
            raise UnknownKeyError(key_id) from None
        if key is None:
            raise UnknownKeyError(key_id)
        check_master_key(key_id, key)
        return bytes(key)

    def __repr__(self) -> str:
        return f"CallableKeyProvider(current={_name(self._current)}, get={_name(self._get)})"


def _name(function: object) -> str:
    return str(getattr(function, "__qualname__", type(function).__name__))


def _decode_key(encoded: str, *, where: str) -> bytes:
    text = encoded.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where} is not valid base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(f"{where} decodes to {len(key)} bytes, not {MASTER_KEY_BYTES}")
    return key
