"""In-process backend for tests and demos.

``memory://name`` URLs with the same name share one store within a process (so a test
can build a second ``Storage`` over the same "cloud"); ``MemoryBackend()`` built directly
gets a private store.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from failover.backends.base import (
    ByteRange,
    BytesReader,
    FetchedObject,
    ObjectReader,
    StoredObject,
    resolve_range,
)
from failover.errors import NotFoundError, PreconditionFailedError

if TYPE_CHECKING:
    from failover.backends._url import BackendURL
    from failover.payload import Payload

__all__ = ["MemoryBackend"]


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    info: StoredObject


class _Store:
    def __init__(self) -> None:
        self.objects: dict[str, _Entry] = {}
        self.lock = threading.Lock()
        self.revision = 0


class MemoryBackend:
    """A dict of objects guarded by a lock; implements the Backend Protocol.

    Args:
        name: backend name (default ``memory:<random>``).
        prefix: key prefix applied inside the store (mirrors the cloud backends).
    """

    _shared: ClassVar[dict[str, _Store]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, name: str | None = None, *, prefix: str = "", _store: _Store | None = None
    ) -> None:
        self._store = _store or _Store()
        self._name = name or f"memory:{id(self._store):x}"
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: BackendURL) -> MemoryBackend:
        """Build from ``memory://store[/prefix]``; the store is shared per name in-process."""
        url.check_params()
        with cls._shared_lock:
            store = cls._shared.setdefault(url.bucket, _Store())
        return cls(url.name, prefix=url.prefix, _store=store)

    @classmethod
    def forget(cls, store_name: str) -> None:
        """Drop the shared store behind ``memory://store_name`` (tests, demos)."""
        with cls._shared_lock:
            cls._shared.pop(store_name, None)

    @property
    def name(self) -> str:
        """Backend name."""
        return self._name

    @property
    def identity(self) -> str:
        """This process's store and the prefix: where these objects live (journal scope)."""
        return f"memory|{os.getpid()}|{id(self._store):x}|{self._prefix}"

    def _get_entry(self, key: str) -> _Entry:
        entry = self._store.objects.get(self._prefix + key)
        if entry is None:
            raise NotFoundError(key, backend=self._name)
        return entry

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
        """Store a copy of the payload's bytes."""
        data = payload.read_all()
        with self._store.lock:
            current = self._store.objects.get(self._prefix + key)
            if if_absent and current is not None:
                raise PreconditionFailedError(f"{key!r} already exists", backend=self._name)
            if if_match is not None and (current is None or current.info.etag != if_match):
                raise PreconditionFailedError(
                    f"{key!r} changed since it was read", backend=self._name
                )
            self._store.revision += 1
            etag = f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}-{self._store.revision}"
            info = StoredObject(
                key=key,
                size=len(data),
                content_type=content_type,
                metadata={k.lower(): v for k, v in metadata.items()},
                last_modified=datetime.now(UTC),
                etag=etag,
            )
            self._store.objects[self._prefix + key] = _Entry(data, info)
        return info

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Return the object's bytes (or a slice of them)."""
        entry = self._get_entry(key)
        start, stop = resolve_range(byte_range, len(entry.data))
        return FetchedObject(entry.info, entry.data[start:stop])

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> ObjectReader:
        """Return a reader over the object's bytes."""
        fetched = self.get(key, byte_range=byte_range)
        return BytesReader(fetched.info, fetched.data)

    def head(self, key: str) -> StoredObject:
        """Return the object's description."""
        return self._get_entry(key).info

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object if present (and at revision ``if_match``, when given)."""
        with self._store.lock:
            current = self._store.objects.get(self._prefix + key)
            if current is not None and if_match is not None and current.info.etag != if_match:
                raise PreconditionFailedError(
                    f"{key!r} changed since it was read", backend=self._name
                )
            self._store.objects.pop(self._prefix + key, None)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield objects under ``prefix`` in UTF-8 byte order of their keys."""
        full = self._prefix + prefix
        with self._store.lock:
            entries = [e.info for k, e in self._store.objects.items() if k.startswith(full)]
        entries.sort(key=lambda info: info.key.encode("utf-8"))
        yield from entries

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"MemoryBackend(name={self._name!r})"
