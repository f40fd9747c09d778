"""The backend seam: the small Protocol every storage backend implements.

A backend only moves bytes and maps its SDK's errors into :mod:`failover.errors`.
It never retries, routes, logs policy decisions or validates application keys (the
:class:`~failover.Storage` facade does that before any backend is called); the SDK's
own retries are turned off so that retries are decided once, by the policy layer.

Contract every backend honours (checked by ``tests/integration/test_conformance.py``):

* Keys at the seam are application keys; a backend adds and strips its URL prefix.
* ``put`` stores the payload's bytes unchanged under the key with the given content
  type and metadata (names lower case; values ASCII) and returns what it stored.
* ``get``/``open`` return the stored bytes; ``byte_range=(start, stop)`` selects
  ``data[start:stop]`` with Python slice semantics for non-negative numbers
  (``stop=None`` reads to the end, a start past the end yields ``b""``).
* A missing object raises :class:`~failover.errors.NotFoundError`; a missing bucket
  raises :class:`~failover.errors.BucketNotFoundError` (it must not look like a missing
  object). ``delete`` of a missing key is not an error.
* ``list`` yields objects under a key prefix in ascending key order (by UTF-8 bytes),
  fetching pages lazily.
* Conditional writes: ``if_absent=True`` creates only; ``if_match=token`` (a
  :attr:`StoredObject.etag` from ``head``) replaces (or deletes) only that exact
  revision. A lost condition raises :class:`~failover.errors.PreconditionFailedError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from failover.payload import Payload

__all__ = [
    "META_SHA256",
    "META_VERSION",
    "Backend",
    "ByteRange",
    "BytesReader",
    "FetchedObject",
    "ObjectReader",
    "StoredObject",
    "replica_identity",
    "resolve_range",
]

#: Provider-metadata name of the version stamp (Azure needs C#-identifier names).
META_VERSION = "failover_version"
#: Provider-metadata name of the sha256 hex digest of the content.
META_SHA256 = "failover_sha256"


def replica_identity(backend: object) -> str:
    """Where a backend's objects physically live, as one string (the journal's scope).

    The built-in backends expose an ``identity`` property made of everything that tells
    one storage location from another (scheme, endpoint, account, bucket or directory,
    prefix), so that two configurations naming different places alike, or the same
    place differently, never act on each other's journal rows. A third-party backend
    without one is identified by its name alone.

    Args:
        backend: a Backend.

    Returns:
        The identity string.
    """
    identity = getattr(backend, "identity", None)
    if isinstance(identity, str) and identity:
        return identity
    return f"name|{getattr(backend, 'name', '')}"


#: ``(start, stop)`` with slice semantics; ``stop=None`` reads to the end.
ByteRange = tuple[int, int | None]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a backend reports about one stored object.

    Attributes:
        key: the application key (URL prefix removed).
        size: content length in bytes.
        content_type: stored MIME type ("" when a listing does not report it).
        metadata: all provider metadata with lower-cased names, including the
            library's own ``failover_*`` entries; ``None`` when a listing does not
            report metadata (S3), in which case ``head`` does.
        last_modified: timezone-aware time of the last write.
        etag: the provider's revision token for conditional writes (S3/Azure ETag,
            GCS generation, a content hash for local and memory backends).
    """

    key: str
    size: int
    content_type: str
    metadata: Mapping[str, str] | None
    last_modified: datetime
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class FetchedObject:
    """A whole (or ranged) object read into memory."""

    info: StoredObject
    data: bytes


class ObjectReader(Protocol):
    """A streaming, file-like reader over one stored object (binary, read-only)."""

    @property
    def info(self) -> StoredObject:
        """What the backend reported when the read began."""
        ...

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative); ``b""`` at the end."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call more than once."""
        ...


@runtime_checkable
class Backend(Protocol):
    """One storage location: a bucket, container or directory, with an optional prefix.

    Implementations: S3Backend, AzureBlobBackend, GCSBackend, LocalBackend,
    MemoryBackend. Third parties may implement it without importing failover.
    """

    @property
    def name(self) -> str:
        """Stable name used in health, errors, events and messages."""
        ...

    def put(
        self,
        key: str,
        payload: Payload,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> StoredObject:
        """Store ``payload`` under ``key``, streaming large payloads.

        Args:
            key: application key.
            payload: the bytes, re-readable via ``payload.open()``; size and sha256 known.
            content_type: MIME type to store.
            metadata: provider metadata to store (lower-case names, ASCII values).
            if_absent: fail with PreconditionFailedError if the key exists.
            if_match: fail with PreconditionFailedError unless the stored etag equals it.

        Returns:
            What was stored.
        """
        ...

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Read an object (or a byte range of it) into memory."""
        ...

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> ObjectReader:
        """Open an object for streaming reads."""
        ...

    def head(self, key: str) -> StoredObject:
        """Return an object's size, content type, metadata and etag without its bytes."""
        ...

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete an object; deleting a missing key succeeds.

        Args:
            key: application key.
            if_match: delete only the revision with this etag; another revision raises
                PreconditionFailedError (for a missing key, providers differ: it
                succeeds or raises PreconditionFailedError).
        """
        ...

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the objects whose keys start with ``prefix``, in key order."""
        ...

    def close(self) -> None:
        """Release clients and connection pools."""
        ...


def resolve_range(byte_range: ByteRange | None, size: int) -> tuple[int, int]:
    """Clamp ``byte_range`` to an object of ``size`` bytes, with slice semantics.

    Returns:
        ``(start, stop)`` with ``0 <= start <= stop <= size``.
    """
    if byte_range is None:
        return 0, size
    start, stop = byte_range
    stop = size if stop is None else min(stop, size)
    start = min(start, size)
    return start, max(start, stop)


class BytesReader:
    """An :class:`ObjectReader` over bytes already in memory."""

    def __init__(self, info: StoredObject, data: bytes) -> None:
        self._info = info
        self._view = memoryview(data)
        self._pos = 0

    @property
    def info(self) -> StoredObject:
        """What the backend reported when the read began."""
        return self._info

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative)."""
        end = (
            len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        )
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk

    def close(self) -> None:
        """Release the buffer."""
        self._view.release()
        self._pos = 0
