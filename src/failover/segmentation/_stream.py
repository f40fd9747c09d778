"""Byte-stream plumbing shared by the codecs: fixed-size pieces, exact reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

__all__ = ["ByteSource", "IterReader", "Readable", "as_reader", "iter_pieces", "read_exact"]


class Readable(Protocol):
    """Anything with a binary ``read(size)``: files, backend readers, ``io.BytesIO``."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes; ``b""`` at the end."""
        ...


#: What the codecs accept as input: bytes, a binary reader or an iterable of bytes.
ByteSource = bytes | bytearray | memoryview | Readable | Iterable[bytes]


def read_exact(reader: Readable, size: int) -> bytes:
    """Read ``size`` bytes, looping over short reads; fewer only at the end of the stream."""
    first = reader.read(size)
    if len(first) == size or not first:
        return bytes(first)
    parts = [first]
    got = len(first)
    while got < size:
        more = reader.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def iter_pieces(source: ByteSource, size: int) -> Iterator[bytes]:
    """Cut a source into pieces of exactly ``size`` bytes (the last one may be shorter).

    Nothing is yielded for an empty source. Memory stays within one piece plus one
    incoming chunk of an iterable source.

    Raises:
        TypeError: if the source is text or yields something other than bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    if isinstance(source, str):
        raise TypeError("expected bytes, a binary reader or an iterable of bytes, not str")
    read = getattr(source, "read", None)
    if callable(read):
        while piece := read_exact(source, size):  # type: ignore[arg-type]
            yield piece
            if len(piece) < size:
                return
        return
    if not isinstance(source, Iterable):
        raise TypeError(
            f"expected bytes, a binary reader or an iterable of bytes, not {type(source).__name__}"
        )
    yield from _rechunk(source, size)


def _rechunk(chunks: Iterable[object], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"the source yielded {type(chunk).__name__}; it must yield bytes")
        if not buffer and len(chunk) == size:
            yield bytes(chunk)
            continue
        buffer += chunk
        if len(buffer) >= size:
            view = memoryview(buffer)
            start = 0
            while len(buffer) - start >= size:
                yield bytes(view[start : start + size])
                start += size
            view.release()
            del buffer[:start]
    if buffer:
        yield bytes(buffer)


class IterReader:
    """A :class:`Readable` over an iterable of bytes (for parsing a header off a stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative); ``b""`` at the end."""
        if size < 0:
            rest = self._buffer[self._offset :] + b"".join(self._chunks)
            self._buffer, self._offset = b"", 0
            return rest
        while self._offset >= len(self._buffer):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._buffer, self._offset = bytes(chunk), 0
        if self._offset == 0 and size >= len(self._buffer):
            piece, self._buffer = self._buffer, b""
            return piece
        piece = self._buffer[self._offset : self._offset + size]
        self._offset += len(piece)
        return piece


def as_reader(source: ByteSource) -> Readable:
    """Return ``source`` as a :class:`Readable` (wrapping bytes or an iterable)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return IterReader([bytes(source)])
    if callable(getattr(source, "read", None)):
        return source  # type: ignore[return-value]
    if isinstance(source, str) or not isinstance(source, Iterable):
        raise TypeError(
            f"expected bytes, a binary reader or an iterable of bytes, not {type(source).__name__}"
        )
    return IterReader(source)
