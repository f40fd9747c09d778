"""Payload: the bytes of one write, re-readable by every replica in parallel.

A replicated write sends the same bytes to several backends at once, and each needs
its own reader. Small data stays in memory; a stream (a file object or an iterable of
``bytes``) is copied in chunks into a private temporary file while its sha256 is
computed, so memory stays bounded whatever the object's size and the checksum is known
before the first byte is uploaded (providers want metadata when an upload starts).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable
from typing import BinaryIO, Protocol

__all__ = ["CHUNK_SIZE", "Payload", "PayloadSource"]

#: Read/copy granularity for streams (also the multipart part size floor used by backends).
CHUNK_SIZE = 8 * 1024 * 1024


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


#: What ``Storage.put`` accepts.
PayloadSource = bytes | bytearray | memoryview | _Readable | Iterable[bytes]


class Payload:
    """Immutable bytes with a known size and sha256, openable any number of times.

    Create with :meth:`from_source`; call :meth:`close` (or use ``with``) to delete a
    spooled temporary file.
    """

    __slots__ = ("_data", "_path", "sha256", "size")

    def __init__(self, *, data: bytes | None, path: str | None, size: int, sha256: str) -> None:
        self._data = data
        self._path = path
        self.size = size
        self.sha256 = sha256

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Payload:
        """Wrap in-memory bytes."""
        raw = bytes(data)
        return cls(data=raw, path=None, size=len(raw), sha256=hashlib.sha256(raw).hexdigest())

    @classmethod
    def from_source(
        cls,
        source: PayloadSource,
        *,
        spool_dir: str | None = None,
        memory_limit: int = CHUNK_SIZE,
    ) -> Payload:
        """Build a payload from bytes, a binary file object or an iterable of bytes.

        Args:
            source: the data to write.
            spool_dir: where to spool streams larger than ``memory_limit``
                (default: the system temporary directory).
            memory_limit: streams up to this many bytes stay in memory.

        Raises:
            TypeError: if ``source`` is not bytes-like, readable or an iterable of bytes.
        """
        if isinstance(source, (bytes, bytearray, memoryview)):
            return cls.from_bytes(source)
        chunks = _iter_chunks(source)
        digest = hashlib.sha256()
        # Keep the chunks as they come (no growing buffer, no copy): a stream that turns
        # out to be large is written to disk chunk by chunk from here on.
        head: list[bytes] = []
        size = 0
        for chunk in chunks:
            digest.update(chunk)
            head.append(chunk)
            size += len(chunk)
            if size > memory_limit:
                return cls._spool(head, chunks, digest, spool_dir)
        return cls(data=b"".join(head), path=None, size=size, sha256=digest.hexdigest())

    @classmethod
    def _spool(
        cls,
        head: list[bytes],
        rest: Iterable[bytes],
        digest: hashlib._Hash,
        spool_dir: str | None,
    ) -> Payload:
        fd, path = tempfile.mkstemp(prefix="failover-payload-", dir=spool_dir)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while head:
                    chunk = head.pop(0)
                    out.write(chunk)
                    size += len(chunk)
                for chunk in rest:
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except BaseException:
            os.unlink(path)
            raise
        return cls(data=None, path=path, size=size, sha256=digest.hexdigest())

    @property
    def in_memory(self) -> bool:
        """True when the bytes are held in memory rather than a spooled file."""
        return self._data is not None

    def open(self) -> BinaryIO:
        """Return a fresh reader positioned at the start (caller closes it)."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self._path is not None
        return open(self._path, "rb")

    def read_all(self) -> bytes:
        """Return every byte (use only for payloads known to be small)."""
        if self._data is not None:
            return self._data
        with self.open() as reader:
            return reader.read()

    def close(self) -> None:
        """Delete the spooled file, if any; the payload cannot be opened afterwards."""
        if self._path is not None:
            path, self._path = self._path, None
            self._data = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def __enter__(self) -> Payload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self._data is not None else "spooled"
        return f"Payload(size={self.size}, sha256={self.sha256[:12]}…, {where})"


def _iter_chunks(source: object) -> Iterable[bytes]:
    read = getattr(source, "read", None)
    if callable(read):
        return _read_chunks(source)  # type: ignore[arg-type]
    if isinstance(source, str):
        raise TypeError("put() takes bytes, a binary file object or an iterable of bytes, not str")
    if isinstance(source, Iterable):
        return _checked_chunks(source)
    raise TypeError(
        f"put() takes bytes, a binary file object or an iterable of bytes, "
        f"not {type(source).__name__}"
    )


def _read_chunks(reader: _Readable) -> Iterable[bytes]:
    while True:
        chunk = reader.read(CHUNK_SIZE)
        if not chunk:
            return
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError("put() needs a binary file object (read() returned text)")
        yield bytes(chunk)


def _checked_chunks(chunks: Iterable[object]) -> Iterable[bytes]:
    for chunk in chunks:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"put() got an iterable yielding {type(chunk).__name__}; it must yield bytes"
            )
        yield bytes(chunk)
