"""Object key and user-metadata rules, checked before any network call.

Keys are portable across S3, Azure Blob, GCS and local directories only within a common
subset; rejecting the rest up front means a key that works on one cloud works on all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from failover.errors import InvalidKeyError, InvalidMetadataError

__all__ = [
    "MAX_KEY_BYTES",
    "RESERVED_KEY_PREFIX",
    "RESERVED_METADATA_PREFIX",
    "validate_key",
    "validate_metadata",
    "validate_prefix",
]

#: Longest key in UTF-8 bytes (S3 and GCS allow 1024; Azure allows more).
MAX_KEY_BYTES = 1024
#: Keys starting with this are the library's own (hints); ``list`` never shows them.
RESERVED_KEY_PREFIX = ".failover-hints/"
#: First key segments no application key may use: hints, and file:// backends' metadata.
_RESERVED_SEGMENTS = (".failover", RESERVED_KEY_PREFIX.rstrip("/"))
#: Metadata names starting with this are the library's own.
RESERVED_METADATA_PREFIX = "failover_"

_METADATA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_MAX_METADATA_BYTES = 2048  # S3's limit for all user metadata together


def _control_character(text: str) -> str | None:
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or code in (0xFFFE, 0xFFFF):
            return f"U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF:
            return f"lone surrogate U+{code:04X}"
    return None


def validate_key(key: object) -> str:
    r"""Check an object key against the portable key rules.

    Args:
        key: the candidate key.

    Returns:
        The key, unchanged.

    Raises:
        InvalidKeyError: if the key is not a non-empty str of at most 1024 UTF-8 bytes,
            contains a control character or ``\\``, starts with ``/``, has an empty,
            ``.`` or ``..`` segment, or a reserved first segment (``.failover``,
            ``.failover-hints``).
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError("key must not be empty")
    bad = _control_character(key)
    if bad:
        raise InvalidKeyError(f"key {key!r} contains a control character ({bad}); remove it")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"key is {size} bytes in UTF-8; the limit is {MAX_KEY_BYTES} (key starts {key[:40]!r})"
        )
    if "\\" in key:
        raise InvalidKeyError(f"key {key!r} contains '\\'; use '/' to separate segments")
    if key.startswith("/"):
        raise InvalidKeyError(f"key {key!r} starts with '/'; drop the leading slash")
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise InvalidKeyError(f"key {key!r} has a {segment!r} segment; keys are not paths")
        if segment == "" and not key.endswith("/"):
            raise InvalidKeyError(f"key {key!r} has an empty segment ('//'); remove it")
    if key.endswith("/"):
        raise InvalidKeyError(f"key {key!r} ends with '/'; directory markers are not objects")
    if key.split("/", 1)[0] in _RESERVED_SEGMENTS:
        raise InvalidKeyError(
            f"key {key!r}: the first segment {key.split('/', 1)[0]!r} is reserved for "
            "failover's own objects (hints, file:// metadata); choose another"
        )
    return key


def validate_prefix(prefix: object) -> str:
    """Check a listing prefix: "" or the start of a valid key (a trailing ``/`` is fine)."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"prefix must be a str, not {type(prefix).__name__}")
    validate_key(prefix.rstrip("/") or "x/")  # "x/" makes a bare "/" fail as a leading slash
    if prefix.endswith("//"):
        raise InvalidKeyError(f"prefix {prefix!r} has an empty segment ('//')")
    if prefix.split("/", 1)[0] in _RESERVED_SEGMENTS and "/" in prefix:
        raise InvalidKeyError(
            f"prefix {prefix!r} is under {prefix.split('/', 1)[0]!r}, which is reserved "
            "for failover's own objects and never listed"
        )
    return prefix


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Check user metadata against the rules every provider accepts.

    Names are lower-case identifiers (``[a-z_][a-z0-9_]*``, at most 64 characters: Azure
    needs C# identifiers and S3 lower-cases names), not starting with ``failover_``;
    values are printable ASCII (botocore rejects anything else) without leading or
    trailing blanks (HTTP trims them from header values, so S3 and GCS downloads would
    return another value); at most 2 KiB in all.

    Returns:
        A plain dict copy.

    Raises:
        InvalidMetadataError: naming the offending entry and the rule.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidMetadataError(f"metadata must be a mapping, not {type(metadata).__name__}")
    clean: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not _METADATA_NAME.fullmatch(name):
            raise InvalidMetadataError(
                f"metadata name {name!r} is not portable: use lower-case letters, digits and "
                "'_', starting with a letter or '_', at most 64 characters"
            )
        if name.startswith(RESERVED_METADATA_PREFIX):
            raise InvalidMetadataError(
                f"metadata name {name!r}: names starting with 'failover_' are reserved"
            )
        if not isinstance(value, str) or not all(0x20 <= ord(c) < 0x7F for c in value):
            raise InvalidMetadataError(
                f"metadata value for {name!r} must be printable ASCII text; "
                "encode other text (e.g. percent-encoding) before storing it"
            )
        if value != value.strip(" "):
            raise InvalidMetadataError(
                f"metadata value for {name!r} starts or ends with a blank, which HTTP "
                "headers drop (the value would not read back as written); strip or "
                "encode it"
            )
        total += len(name) + len(value)
        clean[name] = value
    if total > _MAX_METADATA_BYTES:
        raise InvalidMetadataError(
            f"user metadata is {total} bytes; the portable limit is {_MAX_METADATA_BYTES}"
        )
    return clean
