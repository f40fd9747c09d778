"""Erasure coding: k-of-n Reed-Solomon shares (zfec), streamed one stripe at a time.

The data (ciphertext, when encryption is on) is cut into *stripes* of ``k x block_size``
bytes. zfec codes each stripe into ``n`` blocks of which any ``k`` rebuild it; share
``i`` is the sequence of block ``i`` of every stripe, behind a small self-describing
header. Each backend stores one share, so storage costs ``n/k`` of the data instead of
``nx``, and any ``n - k`` backends may be lost. The code is *systematic*: shares
``0 .. k-1`` hold the data itself (so without encryption one share reveals a
``1/k`` slice of the plaintext; encrypt first when no single cloud may read the data).

Memory is bounded by one stripe (``k x block_size`` in, ``n x block_size`` out) on
both the encoding and the decoding side, whatever the object's size.

Share format, version 1 (a compatibility contract; integers big-endian)::

    offset  size  field
    0       4     magic b"FOSH"
    4       1     format version = 1
    5       1     k: shares needed to decode, 1 .. n
    6       1     n: shares written, k .. 255
    7       1     share index i, 0 .. n-1 (zfec block number)
    8       4     block size B, 1 .. 64 MiB (uint32)
    12      8     data size L: bytes of the encoded data (uint64)
    20      16    encoding id: random, the same in the n shares of one encoding
    36      4     CRC-32 (zlib/IEEE) of bytes 0 .. 35
    40      ...   body: block 0 || crc 0 || block 1 || crc 1 || ... || block S-1 || crc S-1

    S        = ceil(L / (k*B)) stripes (0 for empty data: a share is then its header)
    stripe s = data[s*k*B : (s+1)*k*B]; every stripe but the last has blocks of B bytes;
               the last, of r bytes, has blocks of b = ceil(r / k) bytes and is padded
               with k*b - r zero bytes (so padding is under k bytes per object)
    block s  = zfec(k, n) block i of the stripe cut into k blocks: data block i for i < k
               (systematic), a Reed-Solomon check block for i >= k
    crc s    = CRC-32 of (encoding id || uint8(i) || uint32(s) || block s)
    offset of block s in the share = 40 + s * (B + 4)
    share size = 40 + L' + 4*S, with L' = (S-1)*B + b (all n shares have this size)

The per-block CRC (which also covers the encoding id, share index and stripe number)
lets a decoder notice a corrupt, misplaced or truncated block and switch to another
share at that stripe. It detects accidents, not an adversary: against tampering rely on
the AES-GCM tags of the encrypted data and on the sha256 each backend stores per share.
Shares of different encodings (say, of two versions of one key) are never mixed: the
decoder groups shares by encoding id and parameters.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import struct
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from failover.errors import BackendError
from failover.segmentation._stream import (
    ByteSource,
    Readable,
    as_reader,
    iter_pieces,
    read_exact,
)
from failover.segmentation.errors import (
    CorruptShareError,
    MismatchedShareError,
    NotEnoughSharesError,
    ShareError,
)

__all__ = [
    "CHECKSUM_SIZE",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_SHARE_ERRORS",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_SHARES",
    "ErasureCode",
    "ShareDecoder",
    "ShareHeader",
    "ShareOpener",
    "Writable",
    "bytes_opener",
    "regenerate",
    "verify_share",
]

#: First bytes of every share.
MAGIC = b"FOSH"
#: Version of the share format written by this module.
FORMAT_VERSION = 1
#: Default bytes per block (a stripe holds ``k`` blocks of data).
DEFAULT_BLOCK_SIZE = 64 * 1024
#: Largest block size a header may declare (bounds a reader's memory).
MAX_BLOCK_SIZE = 64 * 1024 * 1024
#: Most shares one encoding can have (one byte of share index).
MAX_SHARES = 255
#: Bytes of the checksum after every block.
CHECKSUM_SIZE = 4
_HEADER = struct.Struct(">4sBBBBIQ16sI")
#: Bytes of the share header.
HEADER_SIZE = _HEADER.size
_ENCODING_ID_SIZE = 16
_STRIPE = struct.Struct(">I")
_CRC = struct.Struct(">I")

#: ``opener(start, stop)`` returns a reader over bytes ``[start, stop)`` of one share
#: (``stop=None``: to the end), e.g. ``lambda a, b: backend.open(key, byte_range=(a, b))``.
ShareOpener = Callable[[int, int | None], Readable]

#: Exceptions that make the decoder drop a share and use another one.
DEFAULT_SHARE_ERRORS: tuple[type[BaseException], ...] = (ShareError, OSError, BackendError)


class Writable(Protocol):
    """Anything with a binary ``write``: files, ``io.BytesIO``, hashing spoolers."""

    def write(self, data: bytes, /) -> object:
        """Write all of ``data``."""
        ...


def _zfec() -> Any:
    try:
        import zfec  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "erasure coding needs the 'zfec' package: pip install 'failover[segmentation]'"
        ) from exc
    return zfec


@dataclass(frozen=True, slots=True)
class ErasureCode:
    """A k-of-n code and its block size: the layout arithmetic and the encoder.

    Args:
        k: shares needed to rebuild the data (1 .. n; 1 is plain replication).
        n: shares written, one per backend (k .. 255).
        block_size: bytes per block; a stripe is ``k x block_size`` bytes of data.

    Raises:
        ValueError: for parameters out of range.
    """

    k: int
    n: int
    block_size: int = DEFAULT_BLOCK_SIZE

    def __post_init__(self) -> None:
        if not 1 <= self.n <= MAX_SHARES:
            raise ValueError(f"n must be from 1 to {MAX_SHARES}, not {self.n}")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"k must be from 1 to n={self.n}, not {self.k}")
        if not 1 <= self.block_size <= MAX_BLOCK_SIZE:
            raise ValueError(f"block_size must be from 1 to {MAX_BLOCK_SIZE} bytes")

    @classmethod
    def for_backends(
        cls, n: int, *, k: int | None = None, block_size: int = DEFAULT_BLOCK_SIZE
    ) -> ErasureCode:
        """The code for ``n`` backends: by default ``k = n - 1`` (survives losing one).

        Args:
            n: number of backends.
            k: shares needed to decode; default ``max(1, n - 1)``.
            block_size: bytes per block.
        """
        return cls(k=max(1, n - 1) if k is None else k, n=n, block_size=block_size)

    @property
    def stripe_size(self) -> int:
        """Bytes of data per full stripe (``k x block_size``)."""
        return self.k * self.block_size

    def stripe_count(self, data_size: int) -> int:
        """Stripes for ``data_size`` bytes of data (0 for empty data)."""
        return -(-data_size // self.stripe_size)

    def block_length(self, stripe: int, data_size: int) -> int:
        """Bytes of each block of one stripe (the last stripe's blocks are shorter)."""
        remaining = data_size - stripe * self.stripe_size
        return self.block_size if remaining >= self.stripe_size else -(-remaining // self.k)

    def stripe_offset(self, stripe: int) -> int:
        """Where block ``stripe`` starts inside every share."""
        return HEADER_SIZE + stripe * (self.block_size + CHECKSUM_SIZE)

    def share_size(self, data_size: int) -> int:
        """Bytes of each share for ``data_size`` bytes of data (all shares are equal)."""
        stripes = self.stripe_count(data_size)
        if stripes == 0:
            return HEADER_SIZE
        last = stripes - 1
        return self.stripe_offset(last) + self.block_length(last, data_size) + CHECKSUM_SIZE

    def overhead(self, data_size: int) -> float:
        """Stored bytes (all n shares) per byte of data: ``≈ n/k`` plus headers.

        Returns ``math.inf`` for empty data (the shares are then just headers).
        """
        if data_size == 0:
            return math.inf
        return self.n * self.share_size(data_size) / data_size

    def encode(
        self, source: ByteSource, *, data_size: int, encoding_id: bytes | None = None
    ) -> Iterator[tuple[bytes, ...]]:
        """Encode a stream into n shares, yielding n-tuples of share pieces.

        The first tuple holds the n headers; each following one holds, for one stripe,
        every share's block followed by its checksum. Writing ``pieces[i]`` of every
        tuple, in order, to sink ``i`` produces share ``i``.

        Args:
            source: the data: bytes, a binary reader or an iterable of bytes.
            data_size: exactly how many bytes ``source`` yields (it is in the header).
            encoding_id: 16 bytes naming this encoding (random by default).

        Raises:
            ValueError: if the source yields more or fewer than ``data_size`` bytes
                (raised when the mismatch is seen: discard what was written).
        """
        if data_size < 0:
            raise ValueError("data_size must be >= 0")
        if encoding_id is None:
            encoding_id = secrets.token_bytes(_ENCODING_ID_SIZE)
        elif len(encoding_id) != _ENCODING_ID_SIZE:
            raise ValueError(f"encoding_id must be {_ENCODING_ID_SIZE} bytes")
        return self._encode(source, data_size, bytes(encoding_id))

    def _encode(
        self, source: ByteSource, data_size: int, encoding_id: bytes
    ) -> Iterator[tuple[bytes, ...]]:
        headers = [
            ShareHeader(self.k, self.n, i, self.block_size, data_size, encoding_id)
            for i in range(self.n)
        ]
        yield tuple(h.to_bytes() for h in headers)
        encoder = _zfec().Encoder(self.k, self.n)
        seeds = [h.checksum_seed for h in headers]
        pieces = iter_pieces(source, self.stripe_size)
        for stripe in range(self.stripe_count(data_size)):
            data = next(pieces, b"")
            expected = min(self.stripe_size, data_size - stripe * self.stripe_size)
            if len(data) > expected:
                raise ValueError(f"the source yields more than data_size={data_size} bytes")
            if len(data) < expected:
                raise ValueError(
                    f"the source ended after {stripe * self.stripe_size + len(data)} bytes, "
                    f"but data_size is {data_size}"
                )
            blocks = encoder.encode(_split(data, self.k, self.block_length(stripe, data_size)))
            yield tuple(
                block + _block_checksum(seeds[i], stripe, block) for i, block in enumerate(blocks)
            )
        if next(pieces, b""):
            raise ValueError(f"the source yields more than data_size={data_size} bytes")

    def encode_to(
        self,
        source: ByteSource,
        *,
        data_size: int,
        sinks: Sequence[Writable],
        encoding_id: bytes | None = None,
    ) -> ShareHeader:
        """Encode a stream, writing share ``i`` to ``sinks[i]``.

        Args:
            source: the data: bytes, a binary reader or an iterable of bytes.
            data_size: exactly how many bytes ``source`` yields.
            sinks: n writers, one per share.
            encoding_id: 16 bytes naming this encoding (random by default).

        Returns:
            The header of share 0 (the others differ only in ``index``).

        Raises:
            ValueError: for a wrong number of sinks or a source of the wrong size.
        """
        if len(sinks) != self.n:
            raise ValueError(f"need {self.n} sinks, one per share, got {len(sinks)}")
        tuples = self.encode(source, data_size=data_size, encoding_id=encoding_id)
        headers = next(tuples)
        for sink, header in zip(sinks, headers, strict=True):
            sink.write(header)
        for pieces in tuples:
            for sink, piece in zip(sinks, pieces, strict=True):
                sink.write(piece)
        return ShareHeader.parse(headers[0])


def _split(data: bytes, k: int, length: int) -> tuple[bytes, ...]:
    if len(data) < k * length:
        data += bytes(k * length - len(data))
    return tuple(data[i * length : (i + 1) * length] for i in range(k))


def _block_checksum(seed: int, stripe: int, block: bytes) -> bytes:
    return _CRC.pack(zlib.crc32(block, zlib.crc32(_STRIPE.pack(stripe), seed)))


@dataclass(frozen=True, slots=True)
class ShareHeader:
    """The parsed header of one share (see the module docstring for the layout).

    Attributes:
        k: shares needed to decode.
        n: shares written.
        index: this share's number, 0 .. n-1.
        block_size: bytes per full block.
        data_size: bytes of the encoded data.
        encoding_id: 16 bytes shared by the n shares of one encoding.
        format_version: 1.
    """

    k: int
    n: int
    index: int
    block_size: int
    data_size: int
    encoding_id: bytes = field(repr=False)
    format_version: int = FORMAT_VERSION

    @property
    def code(self) -> ErasureCode:
        """The code this share belongs to."""
        return ErasureCode(self.k, self.n, self.block_size)

    @property
    def encoding(self) -> tuple[int, int, int, int, bytes]:
        """What the n shares of one encoding have in common (everything but the index)."""
        return (self.k, self.n, self.block_size, self.data_size, self.encoding_id)

    @property
    def share_size(self) -> int:
        """Total bytes of this share, header included."""
        return self.code.share_size(self.data_size)

    @property
    def checksum_seed(self) -> int:
        """CRC-32 of ``encoding id || uint8(index)``, the start of every block checksum."""
        return zlib.crc32(self.encoding_id + bytes([self.index]))

    def to_bytes(self) -> bytes:
        """Encode the header (with its CRC)."""
        body = _HEADER.pack(
            MAGIC,
            self.format_version,
            self.k,
            self.n,
            self.index,
            self.block_size,
            self.data_size,
            self.encoding_id,
            0,
        )[:-4]
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def parse(cls, data: bytes, *, label: str | None = None) -> ShareHeader:
        """Parse and check a share header from the first :data:`HEADER_SIZE` bytes.

        Args:
            data: at least the header's bytes.
            label: name of the share for error messages (e.g. the backend name).

        Raises:
            CorruptShareError: for a short, unknown or inconsistent header, or a bad CRC.
        """
        if len(data) < HEADER_SIZE:
            raise CorruptShareError(
                f"truncated: {len(data)} bytes is shorter than a share header", label=label
            )
        magic, version, k, n, index, block_size, data_size, encoding_id, crc = _HEADER.unpack_from(
            data
        )
        if magic != MAGIC:
            raise CorruptShareError("not an erasure-coded share (bad magic bytes)", label=label)
        if zlib.crc32(data[: HEADER_SIZE - 4]) != crc:
            raise CorruptShareError("header checksum mismatch", label=label)
        if version != FORMAT_VERSION:
            raise CorruptShareError(
                f"unsupported share format {version}; this version of failover reads "
                f"format {FORMAT_VERSION}",
                label=label,
            )
        if not (1 <= k <= n and index < n and 1 <= block_size <= MAX_BLOCK_SIZE):
            raise CorruptShareError("inconsistent header (k, n, index or block size)", label=label)
        return cls(k, n, index, block_size, data_size, bytes(encoding_id), version)


def bytes_opener(data: bytes | memoryview) -> ShareOpener:
    """A :data:`ShareOpener` over a share held in memory (tests, repair from a payload)."""
    view = memoryview(data).cast("B")

    def opener(start: int, stop: int | None) -> Readable:
        return _ViewReader(view[start:stop])

    return opener


class _ViewReader:
    """Reads a memoryview without copying more than each piece asked for."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._position + size)
        piece = bytes(self._view[self._position : end])
        self._position = end
        return piece


def _close(reader: object) -> None:
    close = getattr(reader, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


@dataclass(slots=True)
class _Candidate:
    label: str
    opener: ShareOpener
    header: ShareHeader | None = None
    reader: Readable | None = None  # open at ``position`` (a stripe number)
    position: int = 0


class ShareDecoder:
    """Rebuilds data from any k shares of one encoding, streaming stripe by stripe.

    Shares are tried in the mapping's order (put the fastest or healthiest first);
    only k are read. A share that fails (an exception in ``share_errors``: a bad
    checksum, a missing object, a backend error) is dropped, recorded in
    :attr:`failed`, and the next share takes over from the current stripe, opened with
    a byte range. Shares of another encoding (a stale version) are never mixed in:
    the first encoding that gathers k shares wins, the others are reported as
    :class:`~failover.segmentation.errors.MismatchedShareError`.

    Args:
        shares: label (e.g. backend name) to an opener of that backend's share.
        share_errors: exceptions that mean "this share is unusable, try another".

    Attributes:
        failed: label to the exception that made that share unusable, so far.

    Use it as a context manager (or call :meth:`close`) to release open readers when a
    read is abandoned; a read that runs to the end releases them itself.
    """

    def __init__(
        self,
        shares: Mapping[str, ShareOpener],
        *,
        share_errors: tuple[type[BaseException], ...] = DEFAULT_SHARE_ERRORS,
    ) -> None:
        self._pending: deque[_Candidate] = deque(
            _Candidate(label, opener) for label, opener in shares.items()
        )
        self._share_errors = share_errors
        self._groups: dict[tuple[int, int, int, int, bytes], list[_Candidate]] = {}
        self._chosen: ShareHeader | None = None
        self._spares: deque[_Candidate] = deque()
        self._active: list[_Candidate] = []
        self.failed: dict[str, BaseException] = {}
        self._used: dict[str, None] = {}

    def __enter__(self) -> ShareDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every reader this decoder opened (it can still read again afterwards)."""
        for group in (self._active, self._spares, *self._groups.values()):
            for candidate in group:
                self._release(candidate)

    @property
    def header(self) -> ShareHeader:
        """Header of the chosen encoding (reads share headers on first use).

        Raises:
            NotEnoughSharesError: if no encoding has k readable share headers.
        """
        return self._discover(keep_open=False)

    @property
    def data_size(self) -> int:
        """Bytes of the encoded data."""
        return self.header.data_size

    @property
    def used(self) -> tuple[str, ...]:
        """Labels of the shares that supplied blocks so far, in order of first use."""
        return tuple(self._used)

    def read(self) -> Iterator[bytes]:
        """Yield the whole data, one stripe at a time.

        Raises:
            NotEnoughSharesError: when fewer than k shares remain usable.
        """
        self._discover(keep_open=True)
        yield from self._data(0, self.data_size)

    def read_range(self, start: int, stop: int | None = None) -> Iterator[bytes]:
        """Yield ``data[start:stop]``, reading only the stripes that hold it.

        Shares are opened with byte ranges: the header first (once per decoder), then
        the blocks of the stripes that cover the range.

        Raises:
            ValueError: for a negative offset.
            NotEnoughSharesError: when fewer than k shares remain usable.
        """
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("byte ranges take non-negative offsets")
        size = self.data_size
        stop = size if stop is None else min(stop, size)
        if min(start, stop) >= stop:
            return
        yield from self._data(start, stop)

    def _data(self, start: int, stop: int) -> Iterator[bytes]:
        code = self.header.code
        first = start // code.stripe_size
        end = -(-stop // code.stripe_size)
        for stripe, blocks in self._stripes(first, end):
            data = b"".join(blocks)
            begin = stripe * code.stripe_size
            if begin < start or begin + len(data) > stop:
                data = data[max(0, start - begin) : stop - begin]
            yield data

    def primary_blocks(
        self, first: int = 0, end: int | None = None
    ) -> Generator[tuple[int, list[bytes]], None, None]:
        """Yield ``(stripe, k data blocks)`` for stripes ``first .. end-1`` (padding kept).

        Share headers are read before this returns, so :attr:`header` is then known.
        The building block of :meth:`read` and :func:`regenerate`.

        Args:
            first: first stripe.
            end: stripe after the last one (default: every remaining stripe).

        Raises:
            NotEnoughSharesError: when fewer than k shares are usable.
        """
        header = self._discover(keep_open=first == 0)
        if end is None:
            end = header.code.stripe_count(header.data_size)
        return self._stripes(first, end)

    def _stripes(self, first: int, end: int) -> Generator[tuple[int, list[bytes]], None, None]:
        header = self.header
        code = header.code
        decoder = _zfec().Decoder(header.k, header.n)
        try:
            for stripe in range(first, end):
                length = code.block_length(stripe, header.data_size)
                blocks: list[bytes] = []
                numbers: list[int] = []
                position = 0
                while len(blocks) < header.k:
                    if position == len(self._active):
                        self._activate()
                    candidate = self._active[position]
                    try:
                        block = self._read_block(candidate, stripe, end, length)
                    except self._share_errors as exc:
                        self._drop(candidate, exc)
                        self._active.pop(position)
                        continue
                    blocks.append(block)
                    assert candidate.header is not None
                    numbers.append(candidate.header.index)
                    self._used[candidate.label] = None
                    position += 1
                if numbers == list(range(header.k)):
                    yield stripe, blocks
                else:
                    yield stripe, list(decoder.decode(blocks, numbers))
        finally:
            # Keep the shares that worked first in line for the next read of this decoder.
            for candidate in reversed(self._active):
                self._release(candidate)
                self._spares.appendleft(candidate)
            self._active.clear()

    def _read_block(self, candidate: _Candidate, stripe: int, end: int, length: int) -> bytes:
        header = candidate.header
        assert header is not None
        if candidate.reader is None or candidate.position != stripe:
            self._release(candidate)
            code = header.code
            stop = None if end >= code.stripe_count(header.data_size) else code.stripe_offset(end)
            candidate.reader = candidate.opener(code.stripe_offset(stripe), stop)
            candidate.position = stripe
        raw = read_exact(candidate.reader, length + CHECKSUM_SIZE)
        if len(raw) != length + CHECKSUM_SIZE:
            raise CorruptShareError(f"truncated at stripe {stripe}", label=candidate.label)
        block = raw[:length]
        if raw[length:] != _block_checksum(header.checksum_seed, stripe, block):
            raise CorruptShareError(f"checksum mismatch in stripe {stripe}", label=candidate.label)
        candidate.position += 1
        return block

    def _activate(self) -> None:
        """Move the first usable spare into the active set, or fail."""
        chosen = self.header
        skipped: list[_Candidate] = []
        try:
            while self._spares or self._pending:
                candidate = self._spares.popleft() if self._spares else self._pending.popleft()
                if candidate.header is None:
                    try:
                        candidate.header = self._read_header(candidate, keep_open=False)
                    except self._share_errors as exc:
                        self._drop(candidate, exc)
                        continue
                    if candidate.header.encoding != chosen.encoding:
                        self._drop(candidate, _mismatch(candidate.label))
                        continue
                in_use = {c.header.index for c in self._active if c.header is not None}
                if candidate.header.index in in_use:
                    skipped.append(candidate)  # a duplicate may still stand in later
                    continue
                self._active.append(candidate)
                return
        finally:
            self._spares.extendleft(reversed(skipped))
        raise NotEnoughSharesError(needed=chosen.k, failed=self.failed)

    def _read_header(self, candidate: _Candidate, *, keep_open: bool) -> ShareHeader:
        reader = candidate.opener(0, None if keep_open else HEADER_SIZE)
        try:
            header = ShareHeader.parse(read_exact(reader, HEADER_SIZE), label=candidate.label)
        except BaseException:
            _close(reader)
            raise
        if keep_open:
            candidate.reader, candidate.position = reader, 0
        else:
            _close(reader)
        return header

    def _discover(self, *, keep_open: bool) -> ShareHeader:
        """Read headers in preference order until one encoding has k distinct shares."""
        if self._chosen is not None:
            return self._chosen
        while self._pending:
            candidate = self._pending.popleft()
            try:
                candidate.header = self._read_header(candidate, keep_open=keep_open)
            except self._share_errors as exc:
                self._drop(candidate, exc)
                continue
            group = self._groups.setdefault(candidate.header.encoding, [])
            group.append(candidate)
            if len({c.header.index for c in group if c.header}) >= candidate.header.k:
                self._chosen = candidate.header
                break
        if self._chosen is None:
            needed = min((g[0].header.k for g in self._groups.values() if g[0].header), default=1)
            for group in self._groups.values():
                for candidate in group:
                    self._release(candidate)
            raise NotEnoughSharesError(needed=needed, failed=self.failed)
        self._settle(self._chosen)
        return self._chosen

    def _settle(self, chosen: ShareHeader) -> None:
        """Drop the shares of other encodings; k distinct shares become active."""
        winners = self._groups.pop(chosen.encoding)
        for group in self._groups.values():
            for candidate in group:
                self._drop(candidate, _mismatch(candidate.label))
        self._groups.clear()
        seen: set[int] = set()
        for candidate in winners:
            assert candidate.header is not None
            if candidate.header.index in seen:
                self._release(candidate)
                self._spares.append(candidate)
            else:
                seen.add(candidate.header.index)
                self._active.append(candidate)

    def _drop(self, candidate: _Candidate, exc: BaseException) -> None:
        self._release(candidate)
        self.failed[candidate.label] = exc

    @staticmethod
    def _release(candidate: _Candidate) -> None:
        if candidate.reader is not None:
            _close(candidate.reader)
            candidate.reader = None


def _mismatch(label: str) -> MismatchedShareError:
    return MismatchedShareError(
        "belongs to another encoding of this object (a stale or newer version)", label=label
    )


def regenerate(
    index: int,
    shares: Mapping[str, ShareOpener],
    *,
    share_errors: tuple[type[BaseException], ...] = DEFAULT_SHARE_ERRORS,
) -> Iterator[bytes]:
    """Rebuild share ``index`` from k others, bit-identical to the original, streaming.

    Args:
        index: the share number to rebuild (0 .. n-1).
        shares: label to opener of the surviving shares, preferred first.
        share_errors: exceptions that make the decoder use another share.

    Yields:
        The share's bytes: its header, then block and checksum per stripe.

    Raises:
        NotEnoughSharesError: if fewer than k shares of one encoding are usable.
        ValueError: if ``index`` is not below the encoding's n.
    """
    with ShareDecoder(shares, share_errors=share_errors) as decoder:
        stripes = decoder.primary_blocks()
        header = decoder.header
        if not 0 <= index < header.n:
            raise ValueError(f"share index must be from 0 to {header.n - 1}, not {index}")
        rebuilt = replace(header, index=index)
        yield rebuilt.to_bytes()
        encoder = _zfec().Encoder(header.k, header.n)
        seed = rebuilt.checksum_seed
        for stripe, blocks in stripes:
            block = bytes(
                blocks[index] if index < header.k else encoder.encode(blocks, (index,))[0]
            )
            yield block + _block_checksum(seed, stripe, block)


def verify_share(source: ByteSource, *, label: str | None = None) -> ShareHeader:
    """Check one share on its own: header, every block's checksum, exact length.

    Use it to scrub a stored share without fetching others.

    Args:
        source: the share's bytes: bytes, a binary reader or an iterable of bytes.
        label: name of the share for error messages.

    Returns:
        The share's header.

    Raises:
        CorruptShareError: at the first problem found.
    """
    reader = as_reader(source)
    header = ShareHeader.parse(read_exact(reader, HEADER_SIZE), label=label)
    code = header.code
    seed = header.checksum_seed
    for stripe in range(code.stripe_count(header.data_size)):
        length = code.block_length(stripe, header.data_size)
        raw = read_exact(reader, length + CHECKSUM_SIZE)
        if len(raw) != length + CHECKSUM_SIZE:
            raise CorruptShareError(f"truncated at stripe {stripe}", label=label)
        if raw[length:] != _block_checksum(seed, stripe, raw[:length]):
            raise CorruptShareError(f"checksum mismatch in stripe {stripe}", label=label)
    if read_exact(reader, 1):
        raise CorruptShareError("unexpected bytes after the last block", label=label)
    return header
