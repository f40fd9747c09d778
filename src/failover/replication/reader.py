"""The verified, resumable stream :meth:`failover.Storage.open` returns."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from failover.backends.base import META_SHA256, META_VERSION, ByteRange, ObjectReader, StoredObject
from failover.errors import AllBackendsFailed, BackendError, IntegrityError, is_transient
from failover.replication.stored import meta, object_info

if TYPE_CHECKING:
    from failover.replication.reads import ReplicaReads

__all__ = ["ChunkReader", "StorageReader", "cut"]

_READ_CHUNK = 1024 * 1024


class StorageReader(io.RawIOBase):
    """A verified, resumable stream over one object (returned by :meth:`Storage.open`).

    Attributes:
        info: the object's description from the replica that serves the stream.
    """

    def __init__(
        self,
        reads: ReplicaReads,
        key: str,
        backend: str,
        reader: ObjectReader,
        *,
        byte_range: ByteRange | None,
        expected_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self._reads = reads
        self._key = key
        self._reader = reader
        self._stored = reader.info
        self._backend = backend
        self.info = object_info(self._stored, first_backend=self._backend)
        self._start = byte_range[0] if byte_range else 0
        self._stop = byte_range[1] if byte_range else None
        self._offset = self._start
        size = self._stored.size
        self._end = size if self._stop is None else min(self._stop, size)
        whole = byte_range is None
        # The sha256 the whole stream must have: the plaintext's for a decoded stream,
        # else the one the serving replica recorded for its bytes.
        decoded = expected_sha256 is not None
        self._expected = expected_sha256 if decoded else meta(self._stored, META_SHA256)
        self._verify = whole and bool(self._expected)
        # A plain copy without failover metadata is checked against the other holders.
        self._compare = whole and not decoded and not self._verify and reads.replicated
        self._digest = hashlib.sha256()
        self._tried = {self._backend}
        self._eof = False

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with the next bytes; 0 at the end of the object."""
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int | None = -1, /) -> bytes:
        """Read up to ``size`` bytes (everything left when negative or None)."""
        if self.closed:
            raise ValueError("I/O operation on closed StorageReader")
        if self._eof or size == 0:
            return b""
        want = -1 if size is None or size < 0 else size
        while True:
            try:
                chunk = self._reader.read(want)
                break
            except (BackendError, OSError) as exc:
                if not is_transient(exc) and not isinstance(exc, OSError):
                    raise
                self._resume(exc)
        if chunk:
            self._offset += len(chunk)
            if self._verify or self._compare:
                self._digest.update(chunk)
        # Verify as soon as the last byte is delivered, not on a later empty read that a
        # caller who knows the size may never make.
        if not chunk or want < 0 or self._offset >= self._end:
            self._finish()
        return chunk

    def _resume(self, cause: BaseException) -> None:
        version = meta(self._stored, META_VERSION)
        found = (
            self._reads.reopen_at(self._key, version, self._offset, self._stop, self._tried)
            if version
            else None
        )
        if found is None:
            raise AllBackendsFailed(f"open {self._key!r}", {self._backend: cause}) from cause
        self._reader.close()
        self._backend, self._reader = found
        self._tried.add(self._backend)

    def _finish(self) -> None:
        self._eof = True
        if self._verify and self._digest.hexdigest() != self._expected:
            raise IntegrityError(
                f"{self._key!r}: streamed bytes from {self._backend} do not match their sha256"
            )
        if self._compare:
            self._reads.check_unversioned(self._key, self._backend, self._digest.hexdigest())

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over chunks of up to 1 MiB."""
        while chunk := self.read(_READ_CHUNK):
            yield chunk

    def close(self) -> None:
        """Release the underlying connection."""
        if not self.closed:
            self._reader.close()
        super().close()


def cut(chunks: Iterator[bytes], start: int, stop: int) -> Iterator[bytes]:
    """The bytes ``[start, stop)`` of a stream of chunks (closes the stream when done)."""
    position = 0
    try:
        for chunk in chunks:
            end = position + len(chunk)
            if end > start and position < stop:
                yield chunk[max(0, start - position) : min(len(chunk), stop - position)]
            position = end
            if position >= stop:
                return
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


class ChunkReader:
    """An ObjectReader over an iterator of chunks (decoded or decrypted plaintext)."""

    def __init__(self, info: StoredObject, chunks: Iterator[bytes]) -> None:
        self._info = info
        self._chunks = chunks
        self._buffer = b""

    @property
    def info(self) -> StoredObject:
        """The description of the stream's object (its plaintext size)."""
        return self._info

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of plaintext (everything left when negative)."""
        if size is None or size < 0:
            data = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return data
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        """Stop the chunk iterator (releases the readers behind it)."""
        close = getattr(self._chunks, "close", None)
        if callable(close):
            close()
