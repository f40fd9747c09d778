"""Reads of encrypted and erasure-coded objects: fetch, check, decode, decrypt.

:class:`EncodedReads` sits on the replicated read path (:mod:`failover.replication.reads`)
for objects a :class:`~failover.replication.layout.Layout` transforms: encrypted full
copies are fetched whole (a copy failing its ciphertext sha256 fails over to another)
and decrypted as they stream; erasure-coded objects are decoded from the k healthiest
shares, opened in parallel, with the plaintext's sha256 checked at the end of a whole
read; when it fails although every share's block checksums passed, one share was forged
with recomputed checksums, and decoding without each share in turn finds it.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from failover.backends.base import (
    META_VERSION,
    Backend,
    ByteRange,
    ObjectReader,
    StoredObject,
    resolve_range,
)
from failover.dispatch import Dispatcher
from failover.errors import AllBackendsFailed, IntegrityError, NotFoundError
from failover.replication.layout import META_CONTENT_SHA256, META_SIZE, Layout
from failover.replication.reader import ChunkReader, StorageReader, cut
from failover.replication.reads import ReplicaReads
from failover.replication.stored import close_reader, info_of, live_reader, meta, verify_bytes

__all__ = ["EncodedReads"]


class EncodedReads:
    """Reads of the objects a layout encrypts and/or erasure-codes.

    Args:
        backends: the replicas by name, in priority order.
        dispatcher: runs every backend call.
        layout: the encryption keys and erasure code in force.
        reads: the replicated read path (routing, journal hints, read repair).
    """

    def __init__(
        self,
        backends: Mapping[str, Backend],
        *,
        dispatcher: Dispatcher,
        layout: Layout,
        reads: ReplicaReads,
    ) -> None:
        self._backends = backends
        self._dispatch = dispatcher
        self._layout = layout
        self._reads = reads

    def get(
        self, key: str, byte_range: ByteRange | None, exclude: Mapping[str, BaseException]
    ) -> bytes:
        """The plaintext (or a range of it) of an encrypted or erasure-coded object."""
        if self._layout.code is not None:
            return self._get_decoded(key, byte_range, exclude)

        # Encrypted copies: fetch one whole copy whose ciphertext matches its sha256
        # (a tampered copy fails over to another), then decrypt it.
        def verify_copy(name: str, fetched: Any) -> None:
            verify_bytes(key, name, fetched.info, fetched.data)

        _, fetched = self._reads.first(
            "get",
            key,
            lambda b: b.get(key),
            info_of=info_of,
            accept=verify_copy,
            exclude=exclude,
        )
        version = meta(fetched.info, META_VERSION)
        plain = b"".join(self._layout.decrypt_stream(key, version, io.BytesIO(fetched.data)))
        start, stop = resolve_range(byte_range, len(plain))
        return plain[start:stop]

    def _get_decoded(
        self, key: str, byte_range: ByteRange | None, exclude: Mapping[str, BaseException]
    ) -> bytes:
        """Read an erasure-coded object; if its plaintext fails its sha256, find the liar.

        Every share's block checksums passed, yet the decoded bytes are wrong: one share
        was rewritten with recomputed checksums. Decoding again without each share in
        turn finds a set whose plaintext matches; the share left out is scheduled for
        repair and the verified bytes are returned.
        """
        try:
            with self.open(key, byte_range, exclude=exclude) as reader:
                data: bytes = reader.read()
                return data
        except IntegrityError as mismatch:
            if byte_range is not None:
                raise
            for suspect in self._backends:
                if suspect in exclude:
                    continue
                try:
                    without = {**exclude, suspect: mismatch}
                    with self.open(key, None, exclude=without) as reader:
                        data = reader.read()
                        version = reader.info.version
                except (IntegrityError, AllBackendsFailed, NotFoundError):
                    continue
                self._reads.schedule(suspect, key, version, "verify")
                return data
            raise

    def open(
        self,
        key: str,
        byte_range: ByteRange | None,
        *,
        exclude: Mapping[str, BaseException] | None = None,
    ) -> StorageReader:
        """Stream the plaintext of an encrypted and/or erasure-coded object.

        GCM tags and share checksums authenticate every chunk, so the stream needs no
        sha256 of its own; a byte range is cut from the decoded stream.
        """
        chunks: Iterator[bytes]
        if self._layout.code is None:
            # Encrypted full copies: read one verified copy, decrypt it as it streams.
            name, reader = self._reads.first(
                "open", key, lambda b: b.open(key), info_of=info_of, discard=close_reader
            )
            version = meta(reader.info, META_VERSION)
            chunks = self._layout.decrypt_stream(key, version, reader)
            infos = {name: reader.info}
        else:
            name, chunks, infos = self._decode_shares(key, exclude=exclude or {})
        first = infos[name]
        plain_size = int(meta(first, META_SIZE) or first.size)
        start, stop = resolve_range(byte_range, plain_size)
        sized = dataclasses.replace(first, size=plain_size)
        stream = ChunkReader(sized, cut(chunks, start, stop))
        # Shares' block checksums are CRC-32s, which anyone rewriting a share can
        # recompute: a whole read is also checked against the plaintext's sha256 (stored
        # for unencrypted objects; GCM tags authenticate encrypted ones).
        return StorageReader(
            self._reads,
            key,
            name,
            stream,
            byte_range=byte_range,
            expected_sha256=meta(first, META_CONTENT_SHA256),
        )

    def _decode_shares(
        self, key: str, *, exclude: Mapping[str, BaseException]
    ) -> tuple[str, Iterator[bytes], dict[str, StoredObject]]:
        """Open k shares of ``key`` (healthiest first) and return a plaintext iterator.

        Shares that turn out corrupt are scheduled for repair.
        """
        skipped, demote = self._reads.journal_hints(key, exclude)
        infos: dict[str, StoredObject] = {}
        failed: dict[str, BaseException] = {}
        deadline = self._dispatch.deadline()
        assert self._layout.code is not None
        # The k healthiest shares, opened in parallel (hedged when one is slow); the
        # decoder reads headers and blocks from these streams and opens others itself
        # only if one of them fails.
        opened, errors, untried = self._dispatch.gather(
            "open",
            key,
            lambda name: live_reader(name, self._backends[name].open(key, byte_range=(0, None))),
            need=self._layout.code.k,
            is_miss=lambda exc: isinstance(exc, NotFoundError),
            discard=close_reader,
            deadline=deadline,
            demote=demote,
            exclude=skipped,
        )
        readers = dict(opened)
        order = [*readers, *untried]

        def opener(name: str) -> Callable[[int, int | None], ObjectReader]:
            backend = self._backends[name]

            def open_range(start: int, stop: int | None) -> ObjectReader:
                reader = readers.pop(name, None) if (start, stop) == (0, None) else None
                if reader is None:
                    reader = self._dispatch.call(
                        name,
                        "open",
                        key,
                        lambda: live_reader(name, backend.open(key, byte_range=(start, stop))),
                        deadline,
                    )
                infos.setdefault(name, reader.info)
                return reader

            return open_range

        def release_unused() -> None:
            for reader in readers.values():
                close_reader(reader)
            readers.clear()

        chunks = self._layout.decode(key, order, opener, infos, failed=failed)
        try:
            first = next(chunks, b"")
        except IntegrityError as exc:
            release_unused()
            everything = {**errors, **failed}
            self._reads.schedule_corrupt(key, failed, infos)
            if everything and all(isinstance(e, NotFoundError) for e in everything.values()):
                raise NotFoundError(key) from exc
            raise AllBackendsFailed(
                f"get {key!r}", {n: everything.get(n, exc) for n in self._backends}
            ) from exc
        release_unused()
        self._reads.schedule_corrupt(key, failed, infos)
        used = next(n for n in order if n in infos and n not in failed)

        def rest() -> Iterator[bytes]:
            try:
                yield first
                yield from chunks
            finally:
                chunks.close()  # ends the decoder, which reports its failed shares
                self._reads.schedule_corrupt(key, failed, infos)

        return used, rest(), infos
