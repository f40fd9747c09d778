"""How one object is laid out over the backends: full copies, encrypted copies, or shares.

=====================  ===========================  =====================================
layout                 each backend stores           a replica is rebuilt by
=====================  ===========================  =====================================
replicate (default)    the plain bytes (native)      copying them from a holder
replicate + encrypted  the same ciphertext           copying it from a holder
erasure k-of-n         its own share (index =        regenerating that share from any k
(encrypted or not)     backend position)             holders of the same version
=====================  ===========================  =====================================

Provider metadata of a transformed object: ``failover_version`` as always;
``failover_sha256`` is the sha256 of *the bytes this backend stores* (ciphertext or
share), so every replica can be verified, repaired and reconciled on its own;
``failover_size`` is the plaintext size; ``failover_layout`` names the layout
(``enc``, ``ec2of3``, ``ec2of3+enc``); ``failover_share`` the share index. The
plaintext's own sha256 (``failover_content_sha256``) is stored only when the object is
*not* encrypted: with encryption on, it would let anyone holding one cloud's data
confirm that a known file is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from failover.backends.base import META_SHA256, META_VERSION, Backend, StoredObject
from failover.errors import FailoverError, IntegrityError
from failover.payload import Payload
from failover.replication.writer import write_if_newer

if TYPE_CHECKING:
    from failover.segmentation import ErasureCode, KeyProvider

__all__ = [
    "META_CONTENT_SHA256",
    "META_LAYOUT",
    "META_SHARE",
    "META_SIZE",
    "Layout",
    "Opener",
    "bytes_match",
    "copy_replica",
]

_READ_CHUNK = 1024 * 1024


def _version(info: StoredObject) -> str:
    return (info.metadata or {}).get(META_VERSION, "")


#: Plaintext size of a transformed object.
META_SIZE = "failover_size"
#: Layout tag of a transformed object (absent for plain replicas).
META_LAYOUT = "failover_layout"
#: Share index stored by this backend (erasure only).
META_SHARE = "failover_share"
#: sha256 of the plaintext, for transformed objects that are not encrypted.
META_CONTENT_SHA256 = "failover_content_sha256"


def copy_replica(
    source: Backend,
    target: Backend,
    key: str,
    *,
    at_least: str,
    replace_etag: str | None = None,
) -> StoredObject:
    """Copy ``key`` from ``source`` to ``target`` (last writer wins), verifying its sha256.

    Streams through a spooled :class:`~failover.payload.Payload`, so memory stays
    bounded whatever the object's size.

    Args:
        source: replica to copy from.
        target: replica to copy to.
        key: object key.
        at_least: the source must hold this version or a newer one.
        replace_etag: overwrite exactly this revision of the target even though it
            carries the same version (it is corrupt); otherwise last writer wins.

    Raises:
        IntegrityError: the source's bytes do not match their sha256, or the source
            holds a version older than ``at_least`` (it changed while we looked).
    """
    reader = source.open(key)
    try:
        info = reader.info
        if _version(info) < at_least:
            raise IntegrityError(f"{key!r} on {source.name} is older than {at_least}")
        payload = Payload.from_source(reader)
    finally:
        reader.close()
    with payload:
        expected = (info.metadata or {}).get(META_SHA256, "")
        if payload.sha256 != expected:
            raise IntegrityError(f"{key!r} on {source.name} does not match its sha256")
        if replace_etag is not None:
            return target.put(
                key,
                payload,
                content_type=info.content_type,
                metadata=dict(info.metadata or {}),
                if_match=replace_etag,
            )
        result = write_if_newer(
            target,
            key,
            payload,
            content_type=info.content_type,
            metadata=dict(info.metadata or {}),
            version=_version(info),
        )
    return result.stored


def bytes_match(backend: Backend, key: str, info: StoredObject) -> bool:
    """Stream ``key`` from ``backend`` and compare it with the sha256 in ``info``."""
    expected = (info.metadata or {}).get(META_SHA256, "")
    digest = hashlib.sha256()
    reader = backend.open(key)
    try:
        if _version(reader.info) != _version(info):
            return True  # rewritten meanwhile: the new version has its own checksum
        while chunk := reader.read(_READ_CHUNK):
            digest.update(chunk)
    finally:
        reader.close()
    return digest.hexdigest() == expected


#: ``opener(name) -> (start, stop) -> reader``: reads one backend's stored bytes.
Opener = Callable[[str], Callable[[int, int | None], object]]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One write, ready to fan out: a payload and extra metadata per backend."""

    payloads: Mapping[str, Payload]
    metadata: Mapping[str, Mapping[str, str]]
    content_sha256: str
    size: int

    def close(self) -> None:
        """Delete every spooled payload."""
        for payload in {id(p): p for p in self.payloads.values()}.values():
            payload.close()


class Layout:
    """Encodes writes and decodes reads for one Storage's configuration.

    Args:
        names: backend names in priority order (share i goes to ``names[i]``).
        keys: master keys for client-side encryption, or None.
        code: the erasure code, or None for full copies.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        keys: KeyProvider | None = None,
        code: ErasureCode | None = None,
    ) -> None:
        self.names = tuple(names)
        self.keys = keys
        self.code = code
        if code is not None and code.n != len(self.names):
            raise ValueError(
                f"erasure code has n={code.n} but there are {len(self.names)} backends"
            )
        parts = []
        if code is not None:
            parts.append(f"ec{code.k}of{code.n}")
        if keys is not None:
            parts.append("enc")
        self.tag = "+".join(parts)

    @property
    def transforms(self) -> bool:
        """True when backends do not store the plain bytes."""
        return bool(self.tag)

    @property
    def min_holders(self) -> int:
        """Replicas needed to read (k for erasure, else 1)."""
        return self.code.k if self.code is not None else 1

    # -- writes ------------------------------------------------------------------------

    def encode(self, key: str, version: str, payload: Payload) -> Encoded:
        """Turn one write into what each backend stores (spooled: bounded memory)."""
        from failover.segmentation import Encryptor, spool_shares  # noqa: PLC0415 - optional

        common: dict[str, str] = {META_SIZE: str(payload.size), META_LAYOUT: self.tag}
        if self.keys is None:
            common[META_CONTENT_SHA256] = payload.sha256
        with payload.open() as plain:
            stream: object = plain
            size = payload.size
            if self.keys is not None:
                encryptor = Encryptor(self.keys, object_key=key, version=version)
                size = encryptor.ciphertext_size(payload.size)
                stream = encryptor.encrypt(plain)
            if self.code is not None:
                shares = spool_shares(stream, code=self.code, data_size=size)  # type: ignore[arg-type]
                payloads = dict(zip(self.names, shares, strict=True))
            else:
                sealed = Payload.from_source(stream)  # type: ignore[arg-type]
                payloads = dict.fromkeys(self.names, sealed)
        metadata = {
            name: {
                **common,
                META_SHA256: payloads[name].sha256,
                **({META_SHARE: str(i)} if self.code is not None else {}),
            }
            for i, name in enumerate(self.names)
        }
        return Encoded(payloads, metadata, payload.sha256, payload.size)

    # -- reads -------------------------------------------------------------------------

    def decode(
        self,
        key: str,
        order: Sequence[str],
        opener: Opener,
        infos: Mapping[str, StoredObject],
        *,
        failed: dict[str, BaseException],
    ) -> Generator[bytes, None, None]:
        """Yield the plaintext of ``key`` read from backends in ``order``.

        ``opener(name)`` gives a ranged opener of that backend's stored bytes; ``infos``
        fills in as backends are opened (the version comes from there). Backends whose
        share or ciphertext turned out unusable are added to ``failed``.
        """
        from failover.segmentation import ShareDecoder, ShareError, decrypt  # noqa: PLC0415

        if self.code is None:
            raise ValueError("decode() reads erasure-coded objects; copies are read whole")
        decoder = ShareDecoder(
            {name: opener(name) for name in order},  # type: ignore[misc]
            # Any failure of one share (missing, breaker open, corrupt) means: use another.
            share_errors=(ShareError, OSError, FailoverError),
        )
        try:
            # read() opens each share once, whole, and keeps it open for the data;
            # asking for the header first would open every share twice.
            stream = decoder.read()
            first = next(stream, None)  # shares opened until k of one encoding agree
            version = self._version(infos, decoder)
            plain: Iterator[bytes] = itertools.chain(() if first is None else (first,), stream)
            if self.keys is not None:
                plain = decrypt(plain, keys=self.keys, object_key=key, version=version)
            yield from plain
        finally:
            failed.update(decoder.failed)
            decoder.close()

    @staticmethod
    def _version(infos: Mapping[str, StoredObject], decoder: object) -> str:
        used = [n for n in infos if n not in getattr(decoder, "failed", {})]
        versions = {(infos[n].metadata or {}).get(META_VERSION, "") for n in used}
        versions.discard("")
        if len(versions) != 1:
            # The decoder keeps to one encoding; its shares carry one version.
            raise IntegrityError(f"shares disagree on the version: {sorted(versions)}")
        return versions.pop()

    def decrypt_stream(
        self, key: str, version: str, reader: object
    ) -> Generator[bytes, None, None]:
        """Plaintext chunks of one encrypted full copy, read from ``reader``."""
        from failover.segmentation import decrypt  # noqa: PLC0415 - optional

        assert self.keys is not None
        try:
            yield from decrypt(reader, keys=self.keys, object_key=key, version=version)  # type: ignore[arg-type]
        finally:
            close_quietly(reader)

    # -- repair ------------------------------------------------------------------------

    def rebuild(
        self,
        backends: Mapping[str, Backend],
        target: str,
        key: str,
        holders: Mapping[str, StoredObject],
        *,
        replace_etag: str | None = None,
    ) -> StoredObject:
        """Give ``target`` its replica of the newest version among ``holders``.

        Copies for full replicas; regenerates the target's share (from k holders of the
        same version) for erasure.

        Raises:
            IntegrityError: too few intact holders, or bytes that fail their checksum.
        """
        newest = max((holders[n].metadata or {}).get(META_VERSION, "") for n in holders)
        sources = [
            n
            for n in self.names
            if n in holders and (holders[n].metadata or {}).get(META_VERSION, "") == newest
        ]
        if self.code is None:
            last: Exception | None = None
            for name in sources:
                try:
                    return copy_replica(
                        backends[name],
                        backends[target],
                        key,
                        at_least=newest,
                        replace_etag=replace_etag,
                    )
                except IntegrityError as exc:
                    last = exc
            raise IntegrityError(f"{key!r}: no intact replica to copy to {target}") from last
        return self._regenerate(
            backends, target, key, sources=sources, holders=holders, replace_etag=replace_etag
        )

    def free_share_index(self, target: str, others: Mapping[str, StoredObject]) -> int:
        """The share number ``target`` should hold, given the shares ``others`` hold.

        Share numbers come from the shares themselves (``failover_share``), never from
        the backend's position in the configuration, which an operator may reorder: the
        target gets the lowest number no other holder of the version has, so a rebuild
        never duplicates a share (that would silently remove redundancy).
        """
        assert self.code is not None
        taken = {
            int(number)
            for name, info in others.items()
            if name != target and (number := (info.metadata or {}).get(META_SHARE, "")).isdigit()
        }
        free = [i for i in range(self.code.n) if i not in taken]
        return free[0] if free else self.names.index(target)

    def _regenerate(
        self,
        backends: Mapping[str, Backend],
        target: str,
        key: str,
        *,
        sources: list[str],
        holders: Mapping[str, StoredObject],
        replace_etag: str | None,
    ) -> StoredObject:
        from failover.segmentation import regenerate  # noqa: PLC0415 - optional

        if len(sources) < self.min_holders:
            raise IntegrityError(
                f"{key!r}: {len(sources)} shares of the newest version, "
                f"{self.min_holders} needed to rebuild {target}'s"
            )
        index = self.free_share_index(target, {n: holders[n] for n in sources})

        def opener(name: str) -> Callable[[int, int | None], object]:
            backend = backends[name]
            return lambda start, stop: backend.open(key, byte_range=(start, stop))

        rebuilt = regenerate(index, {name: opener(name) for name in sources})  # type: ignore[misc]
        template = dict(holders[sources[0]].metadata or {})
        with Payload.from_source(rebuilt) as payload:
            metadata = {**template, META_SHA256: payload.sha256, META_SHARE: str(index)}
            content_type = holders[sources[0]].content_type
            version = template.get(META_VERSION, "")
            if replace_etag is not None:
                return backends[target].put(
                    key,
                    payload,
                    content_type=content_type,
                    metadata=metadata,
                    if_match=replace_etag,
                )
            return write_if_newer(
                backends[target],
                key,
                payload,
                content_type=content_type,
                metadata=metadata,
                version=version,
            ).stored


def close_quietly(reader: object) -> None:
    """Close a reader, ignoring errors (used when abandoning a read)."""
    close = getattr(reader, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
