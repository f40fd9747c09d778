r"""Client-side envelope encryption: streaming, chunked AES-256-GCM (the STREAM construction).

Each object gets a fresh random 256-bit *data key* (DEK). The DEK encrypts the object in
fixed-size chunks with AES-256-GCM; the DEK itself is stored in the object's header,
*wrapped* (AES-256-GCM) by a *master key* that the :class:`~failover.segmentation.keys.
KeyProvider` returns, together with the master key's id. Rotating the master key
therefore never re-encrypts data: objects name the key id that wrapped their DEK.

Memory stays bounded (one chunk at a time), range reads decrypt only the chunks they
need, and nothing unauthenticated is ever returned: a wrong master key, an altered
header or chunk, chunks reordered, dropped, truncated or appended, and ciphertext moved
to another object key or version all raise :class:`~failover.segmentation.errors.
DecryptionError` before any byte of the affected chunk is yielded.

Encrypted object format, version 1 (a compatibility contract; integers big-endian)::

    offset   size  field
    0        4     magic b"FOEN"
    4        1     format version = 1
    5        1     suite = 1: AES-256-GCM chunks, DEK wrapped with AES-256-GCM
    6        2     header size H = 81 + L (uint16)
    8        4     chunk size C: plaintext bytes per chunk, 1 .. 64 MiB (uint32)
    12       8     nonce prefix (random per object)
    20       1     key id length L, 1 .. 255
    21       L     master key id (UTF-8)
    21+L     12    wrap nonce (random)
    33+L     48    wrapped DEK: AES-256-GCM(master key, wrap nonce, DEK, AD_wrap) = 32 + 16 tag
    H        ...   body: chunk 0, chunk 1, ... chunk N-1

    N        = max(1, ceil(P / C)) for a plaintext of P bytes (an empty object is one
               empty chunk, so even it is authenticated)
    chunk i  = AES-256-GCM(DEK, nonce_i, plaintext[i*C : (i+1)*C], AD_i): C + 16 bytes,
               except the last: (P - (N-1)*C) + 16 bytes
    nonce_i  = nonce prefix (8) || uint32(i)
    AD_i     = binding (32) || uint32(i) || uint8(1 if i == N-1 else 0)
    binding  = sha256(b"failover/v1/object\x00" || header[0:20]
                      || uint32(len(K)) || K || uint32(len(V)) || V)
               with K, V the UTF-8 object key (application key, without any backend
               URL prefix) and version string
    AD_wrap  = b"failover/v1/dek\x00" || header[0 : 21+L]
    ciphertext size = H + P + 16 * N

The chunk index and the last-chunk flag in ``AD_i`` make chunk reordering, truncation
(even at a chunk boundary) and appending detectable; the binding makes a ciphertext
copied to another key or version fail; ``AD_wrap`` authenticates every header field
(together with the wrap tag), so a wrong master key is told apart from altered data.

``cryptography`` is imported lazily (install ``failover[segmentation]``).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from failover.segmentation._stream import ByteSource, Readable, as_reader, iter_pieces, read_exact
from failover.segmentation.errors import DecryptionError, UnknownKeyError
from failover.segmentation.keys import MAX_KEY_ID_BYTES, KeyProvider, check_master_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MAX_HEADER_SIZE",
    "TAG_SIZE",
    "CiphertextRange",
    "Decryptor",
    "EncryptionHeader",
    "Encryptor",
    "ciphertext_size",
    "decrypt",
    "encrypt",
]

#: First bytes of every encrypted object.
MAGIC = b"FOEN"
#: Version of the encrypted object format written by this module.
FORMAT_VERSION = 1
_SUITE_AES256GCM = 1
#: Default plaintext bytes per chunk (the unit of range reads and of memory use).
DEFAULT_CHUNK_SIZE = 64 * 1024
#: Largest chunk size a header may declare (bounds the memory a reader commits).
MAX_CHUNK_SIZE = 64 * 1024 * 1024
#: AES-GCM authentication tag, appended to every chunk.
TAG_SIZE = 16
_NONCE_PREFIX_SIZE = 8
_WRAP_NONCE_SIZE = 12
_DEK_SIZE = 32
_WRAPPED_DEK_SIZE = _DEK_SIZE + TAG_SIZE
_MAX_CHUNKS = 2**32
# magic, version, suite, header size, chunk size, nonce prefix, key id length
_FIXED = struct.Struct(">4sBBHI8sB")
_TAIL_SIZE = _WRAP_NONCE_SIZE + _WRAPPED_DEK_SIZE
#: Largest possible header (key id of 255 bytes): fetch this many bytes to parse any header.
MAX_HEADER_SIZE = _FIXED.size + MAX_KEY_ID_BYTES + _TAIL_SIZE
_WRAP_TAG = b"failover/v1/dek\x00"
_BINDING_TAG = b"failover/v1/object\x00"
_CHUNK_AD = struct.Struct(">32sIB")
_NONCE = struct.Struct(">8sI")
_LENGTH = struct.Struct(">I")


def _aesgcm_class() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "client-side encryption needs the 'cryptography' package: "
            "pip install 'failover[segmentation]'"
        ) from exc
    return AESGCM


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415

    return InvalidTag


@dataclass(frozen=True, slots=True)
class EncryptionHeader:
    """The parsed header of an encrypted object (see the module docstring for the layout).

    Attributes:
        key_id: id of the master key that wrapped the data key.
        chunk_size: plaintext bytes per chunk.
        nonce_prefix: 8 random bytes, the fixed part of every chunk nonce.
        wrap_nonce: nonce of the data-key wrap.
        wrapped_key: the data key encrypted under the master key (plus its tag).
        format_version: 1.
    """

    key_id: str
    chunk_size: int
    nonce_prefix: bytes = field(repr=False)
    wrap_nonce: bytes = field(repr=False)
    wrapped_key: bytes = field(repr=False)
    format_version: int = FORMAT_VERSION

    @property
    def size(self) -> int:
        """Bytes of the encoded header (where the first chunk starts)."""
        return _FIXED.size + len(self.key_id.encode("utf-8")) + _TAIL_SIZE

    def to_bytes(self) -> bytes:
        """Encode the header."""
        return self._prefix() + self.wrap_nonce + self.wrapped_key

    def _prefix(self) -> bytes:
        key_id = self.key_id.encode("utf-8")
        return (
            _FIXED.pack(
                MAGIC,
                self.format_version,
                _SUITE_AES256GCM,
                _FIXED.size + len(key_id) + _TAIL_SIZE,
                self.chunk_size,
                self.nonce_prefix,
                len(key_id),
            )
            + key_id
        )

    @classmethod
    def parse(cls, data: bytes) -> EncryptionHeader:
        """Parse a header from the start of ``data`` (bytes after the header are ignored).

        Raises:
            DecryptionError: if ``data`` does not start with a complete, supported header.
        """
        if len(data) < _FIXED.size:
            raise DecryptionError(
                f"not an encrypted object: {len(data)} bytes is shorter than any header"
            )
        magic, version, suite, size, chunk_size, nonce_prefix, id_length = _FIXED.unpack_from(data)
        if magic != MAGIC:
            raise DecryptionError("not an encrypted object (bad magic bytes)")
        if version != FORMAT_VERSION or suite != _SUITE_AES256GCM:
            raise DecryptionError(
                f"unsupported encryption format {version}/suite {suite}; this version of "
                f"failover reads format {FORMAT_VERSION}/suite {_SUITE_AES256GCM}"
            )
        if (
            id_length == 0
            or size != _FIXED.size + id_length + _TAIL_SIZE
            or not 1 <= chunk_size <= MAX_CHUNK_SIZE
        ):
            raise DecryptionError("corrupt encryption header (inconsistent sizes)")
        if len(data) < size:
            raise DecryptionError(f"truncated encryption header ({len(data)} of {size} bytes)")
        start = _FIXED.size
        try:
            key_id = bytes(data[start : start + id_length]).decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError("corrupt encryption header (key id is not UTF-8)") from None
        start += id_length
        return cls(
            key_id=key_id,
            chunk_size=chunk_size,
            nonce_prefix=bytes(nonce_prefix),
            wrap_nonce=bytes(data[start : start + _WRAP_NONCE_SIZE]),
            wrapped_key=bytes(data[start + _WRAP_NONCE_SIZE : size]),
            format_version=version,
        )

    @classmethod
    def read_from(cls, reader: Readable) -> EncryptionHeader:
        """Read exactly one header from a stream, leaving it at the first chunk.

        Raises:
            DecryptionError: if the stream does not start with a valid header.
        """
        fixed = read_exact(reader, _FIXED.size)
        if len(fixed) == _FIXED.size and fixed[:4] == MAGIC:
            total = _FIXED.unpack(fixed)[3]
            if total > _FIXED.size:
                fixed += read_exact(reader, total - _FIXED.size)
        return cls.parse(fixed)

    def chunk_count(self, plaintext_size: int) -> int:
        """Number of chunks of a plaintext of ``plaintext_size`` bytes (at least 1)."""
        return max(1, -(-plaintext_size // self.chunk_size))

    def ciphertext_size(self, plaintext_size: int) -> int:
        """Size of the whole encrypted object (header included) for a plaintext size."""
        if plaintext_size < 0:
            raise ValueError("plaintext_size must be >= 0")
        return self.size + plaintext_size + TAG_SIZE * self.chunk_count(plaintext_size)

    def plaintext_size(self, ciphertext_size: int) -> int:
        """Size of the plaintext of an encrypted object of ``ciphertext_size`` bytes.

        Raises:
            DecryptionError: if no plaintext size encrypts to that size (truncated object).
        """
        body = ciphertext_size - self.size
        chunks = -(-body // (self.chunk_size + TAG_SIZE))
        plaintext = body - TAG_SIZE * chunks
        if body < TAG_SIZE or self.ciphertext_size(plaintext) != ciphertext_size:
            raise DecryptionError(
                f"an encrypted object of {ciphertext_size} bytes is impossible with a "
                f"{self.size}-byte header and {self.chunk_size}-byte chunks (truncated?)"
            )
        return plaintext

    def plan_range(self, start: int, stop: int | None, *, ciphertext_size: int) -> CiphertextRange:
        """Map a plaintext byte range to the chunks, and the ciphertext bytes, that hold it.

        Args:
            start: first plaintext byte (>= 0).
            stop: end of the range, exclusive (``None``: to the end); slice semantics,
                clamped to the plaintext size.
            ciphertext_size: size of the whole encrypted object (from ``head``).

        Returns:
            What to fetch (``[start, stop)`` of the stored object) and how to trim.

        Raises:
            ValueError: for a negative start or stop.
            DecryptionError: if ``ciphertext_size`` is impossible for this header.
        """
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("byte ranges take non-negative offsets")
        size = self.plaintext_size(ciphertext_size)
        stop = size if stop is None else min(stop, size)
        start = min(start, stop)
        last_chunk = self.chunk_count(size) - 1
        if start == stop:
            return CiphertextRange(self.size, self.size, 0, 0, last_chunk, 0, 0)
        first = start // self.chunk_size
        end = (stop - 1) // self.chunk_size
        stride = self.chunk_size + TAG_SIZE
        fetch_stop = min(self.size + (end + 1) * stride, ciphertext_size)
        return CiphertextRange(
            start=self.size + first * stride,
            stop=fetch_stop,
            first_chunk=first,
            chunk_count=end - first + 1,
            last_chunk=last_chunk,
            skip=start - first * self.chunk_size,
            length=stop - start,
        )


@dataclass(frozen=True, slots=True)
class CiphertextRange:
    """Which stored bytes hold a plaintext range, from :meth:`EncryptionHeader.plan_range`.

    Attributes:
        start: first stored (ciphertext) byte to fetch.
        stop: end of the stored bytes to fetch, exclusive.
        first_chunk: index of the first chunk in ``[start, stop)``.
        chunk_count: chunks in ``[start, stop)`` (0 for an empty range).
        last_chunk: index of the object's last chunk (authenticated as such).
        skip: plaintext bytes to drop from the first chunk.
        length: plaintext bytes the range yields.
    """

    start: int
    stop: int
    first_chunk: int
    chunk_count: int
    last_chunk: int
    skip: int
    length: int


def _object_binding(header_prefix: bytes, object_key: str, version: str) -> bytes:
    key = object_key.encode("utf-8")
    ver = version.encode("utf-8")
    return hashlib.sha256(
        b"".join(
            (
                _BINDING_TAG,
                header_prefix[:20],
                _LENGTH.pack(len(key)),
                key,
                _LENGTH.pack(len(ver)),
                ver,
            )
        )
    ).digest()


class Encryptor:
    """Encrypts one object: a fresh data key, wrapped by the provider's current master key.

    Args:
        keys: where the current master key comes from.
        object_key: the application key the object is stored under.
        version: the version stamp the object is written with.
        chunk_size: plaintext bytes per chunk (1 .. 64 MiB).

    Attributes:
        header: the header this encryptor writes (key id, chunk size, wrapped key).

    An encryptor encrypts exactly once (its nonces must never be reused): build a new
    one per write. Retrying an upload re-sends the same ciphertext, which is safe.

    Raises:
        ValueError: for a chunk size out of range.
        ConfigError: if the provider returns an invalid key.
    """

    def __init__(
        self,
        keys: KeyProvider,
        *,
        object_key: str,
        version: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be from 1 to {MAX_CHUNK_SIZE} bytes")
        aesgcm = _aesgcm_class()
        key_id, master = keys.current()
        check_master_key(key_id, master)
        data_key = secrets.token_bytes(_DEK_SIZE)
        draft = EncryptionHeader(
            key_id=key_id,
            chunk_size=chunk_size,
            nonce_prefix=secrets.token_bytes(_NONCE_PREFIX_SIZE),
            wrap_nonce=secrets.token_bytes(_WRAP_NONCE_SIZE),
            wrapped_key=b"",
        )
        prefix = draft._prefix()
        wrapped = aesgcm(bytes(master)).encrypt(draft.wrap_nonce, data_key, _WRAP_TAG + prefix)
        self.header = EncryptionHeader(
            key_id=key_id,
            chunk_size=chunk_size,
            nonce_prefix=draft.nonce_prefix,
            wrap_nonce=draft.wrap_nonce,
            wrapped_key=wrapped,
        )
        self._aead = aesgcm(data_key)
        self._binding = _object_binding(prefix, object_key, version)
        self._used = False

    def ciphertext_size(self, plaintext_size: int) -> int:
        """Size of the encrypted object (header included) for a plaintext size."""
        return self.header.ciphertext_size(plaintext_size)

    def encrypt(self, source: ByteSource) -> Iterator[bytes]:
        """Yield the encrypted object: the header, then one sealed chunk at a time.

        Args:
            source: the plaintext: bytes, a binary reader or an iterable of bytes.

        Raises:
            RuntimeError: if this encryptor already encrypted something.
            TypeError: for a source that is not binary.
        """
        if self._used:
            raise RuntimeError("an Encryptor encrypts one object only; create a new one")
        self._used = True
        return self._encrypt(source)

    def _encrypt(self, source: ByteSource) -> Iterator[bytes]:
        yield self.header.to_bytes()
        seal = self._aead.encrypt
        prefix, binding = self.header.nonce_prefix, self._binding
        pieces = iter_pieces(source, self.header.chunk_size)
        current = next(pieces, b"")
        index = 0
        while True:
            following = next(pieces, None)
            last = following is None
            if index >= _MAX_CHUNKS:
                raise ValueError("object too large: more than 2**32 chunks; use larger chunks")
            yield seal(_NONCE.pack(prefix, index), current, _CHUNK_AD.pack(binding, index, last))
            if following is None:
                return
            current = following
            index += 1


class Decryptor:
    """Decrypts one object whose header has been read: unwraps its data key once.

    Args:
        keys: provider of the master key named in the header.
        header: the object's header.
        object_key: the application key the object was read from.
        version: the version the object is expected to have.

    Raises:
        UnknownKeyError: if the provider does not know the header's key id.
        DecryptionError: if the master key does not unwrap the data key (wrong key
            under that id, or an altered header).
    """

    def __init__(
        self, keys: KeyProvider, header: EncryptionHeader, *, object_key: str, version: str
    ) -> None:
        aesgcm = _aesgcm_class()
        self.header = header
        self.object_key = object_key
        try:
            master = keys.get(header.key_id)
        except UnknownKeyError as exc:
            raise UnknownKeyError(
                header.key_id,
                f"cannot decrypt {object_key!r}: it was encrypted under master key id "
                f"{header.key_id!r}, which the key provider does not have; keep retired keys "
                "listed after the current one in FAILOVER_ENCRYPTION_KEY",
            ) from exc
        check_master_key(header.key_id, master)
        prefix = header._prefix()
        try:
            data_key = aesgcm(bytes(master)).decrypt(
                header.wrap_nonce, header.wrapped_key, _WRAP_TAG + prefix
            )
        except _invalid_tag():
            raise DecryptionError(
                f"cannot decrypt {object_key!r}: the master key configured as "
                f"{header.key_id!r} does not unwrap the object's data key (it is not the key "
                "that encrypted the object, or the header was altered)"
            ) from None
        self._aead = aesgcm(data_key)
        self._binding = _object_binding(prefix, object_key, version)

    @classmethod
    def open(
        cls, keys: KeyProvider, reader: Readable, *, object_key: str, version: str
    ) -> Decryptor:
        """Read the header off ``reader`` and build a decryptor (``reader`` is then at the body).

        Raises:
            DecryptionError: for a missing or corrupt header, or a wrong key.
        """
        return cls(keys, EncryptionHeader.read_from(reader), object_key=object_key, version=version)

    def _open_chunk(self, index: int, sealed: bytes, *, last: bool) -> bytes:
        try:
            return self._aead.decrypt(
                _NONCE.pack(self.header.nonce_prefix, index),
                sealed,
                _CHUNK_AD.pack(self._binding, index, last),
            )
        except _invalid_tag():
            raise DecryptionError(
                f"chunk {index} of {self.object_key!r} failed authentication: the ciphertext "
                "was altered, truncated, reordered or extended, or belongs to another object "
                "key or version"
            ) from None

    def decrypt(self, body: ByteSource) -> Iterator[bytes]:
        """Yield the plaintext of the body (the bytes after the header), chunk by chunk.

        Raises:
            DecryptionError: as soon as a chunk fails authentication, or at the end if
                the body is truncated or extended.
        """
        pieces = iter_pieces(body, self.header.chunk_size + TAG_SIZE)
        current = next(pieces, None)
        if current is None:
            raise DecryptionError(f"{self.object_key!r} is truncated: no chunk after the header")
        index = 0
        while True:
            following = next(pieces, None)
            yield self._open_chunk(index, current, last=following is None)
            if following is None:
                return
            current = following
            index += 1

    def decrypt_range(self, data: ByteSource, plan: CiphertextRange) -> Iterator[bytes]:
        """Yield the plaintext of a range from the stored bytes ``[plan.start, plan.stop)``.

        Args:
            data: exactly the stored bytes ``[plan.start, plan.stop)``.
            plan: from :meth:`EncryptionHeader.plan_range` for this object.

        Raises:
            DecryptionError: if a chunk fails authentication or ``data`` is short.
        """
        remaining = plan.length
        skip = plan.skip
        pieces = iter_pieces(data, self.header.chunk_size + TAG_SIZE)
        for index in range(plan.first_chunk, plan.first_chunk + plan.chunk_count):
            sealed = next(pieces, None)
            if sealed is None:
                raise DecryptionError(
                    f"range of {self.object_key!r} is truncated before chunk {index}"
                )
            plain = self._open_chunk(index, sealed, last=index == plan.last_chunk)
            if skip or len(plain) - skip > remaining:
                plain = plain[skip : skip + remaining]
                skip = 0
            remaining -= len(plain)
            yield plain
        if remaining:
            raise DecryptionError(f"range of {self.object_key!r} is short by {remaining} bytes")


def encrypt(
    source: ByteSource,
    *,
    keys: KeyProvider,
    object_key: str,
    version: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Encrypt a whole object (convenience for :class:`Encryptor`; yields header, chunks).

    Args:
        source: the plaintext: bytes, a binary reader or an iterable of bytes.
        keys: provider of the current master key.
        object_key: the application key the object is stored under.
        version: the version the object is written with.
        chunk_size: plaintext bytes per chunk.
    """
    return Encryptor(keys, object_key=object_key, version=version, chunk_size=chunk_size).encrypt(
        source
    )


def decrypt(
    source: ByteSource, *, keys: KeyProvider, object_key: str, version: str
) -> Iterator[bytes]:
    """Decrypt a whole encrypted object (header and body), yielding plaintext chunks.

    The header is parsed and the data key unwrapped on the first ``next()``.

    Args:
        source: the stored bytes: bytes, a binary reader or an iterable of bytes.
        keys: provider of the master key named in the header.
        object_key: the application key the object was read from.
        version: the version the object is expected to have.

    Raises:
        DecryptionError: wrong key, unknown key id, or altered, truncated or misplaced data.
    """
    reader = as_reader(source)
    yield from Decryptor.open(keys, reader, object_key=object_key, version=version).decrypt(reader)


def ciphertext_size(
    plaintext_size: int, *, key_id: str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> int:
    """Size of the encrypted object for a plaintext size, master key id and chunk size."""
    if plaintext_size < 0:
        raise ValueError("plaintext_size must be >= 0")
    header = _FIXED.size + len(key_id.encode("utf-8")) + _TAIL_SIZE
    return header + plaintext_size + TAG_SIZE * max(1, -(-plaintext_size // chunk_size))
