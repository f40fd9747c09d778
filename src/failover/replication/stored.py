"""Reading what a replica answered: failover's metadata, markers, checksums.

Small helpers shared by the read path (:mod:`failover.replication.reads`), the streaming
reader (:mod:`failover.replication.reader`), the write path and the decoder.
"""

from __future__ import annotations

import hashlib

from failover.backends.base import (
    META_SHA256,
    META_VERSION,
    FetchedObject,
    ObjectReader,
    StoredObject,
)
from failover.errors import IntegrityError
from failover.keys import RESERVED_METADATA_PREFIX
from failover.replication.layout import META_CONTENT_SHA256, META_LAYOUT, META_SIZE
from failover.replication.markers import is_marker, live
from failover.types import ObjectInfo

__all__ = [
    "close_reader",
    "info_of",
    "live_reader",
    "meta",
    "object_info",
    "verify_bytes",
]


def meta(info: StoredObject, name: str) -> str:
    """One failover metadata entry of ``info`` (empty when absent)."""
    if not info.metadata:
        return ""
    return info.metadata.get(name, "")


def object_info(info: StoredObject, *, first_backend: str) -> ObjectInfo:
    """The application's view of a stored object (content size and sha256, user metadata)."""
    metadata = info.metadata or {}
    if META_LAYOUT in metadata:
        # Encrypted or erasure-coded: the stored bytes are not the content. The content's
        # sha256 is recorded only when it is not encrypted (see replication.layout).
        size = int(metadata.get(META_SIZE, info.size))
        checksum = metadata.get(META_CONTENT_SHA256, "")
    else:
        size, checksum = info.size, metadata.get(META_SHA256, "")
    return ObjectInfo(
        key=info.key,
        size=size,
        checksum=checksum,
        version=metadata.get(META_VERSION, ""),
        content_type=info.content_type,
        metadata={k: v for k, v in metadata.items() if not k.startswith(RESERVED_METADATA_PREFIX)},
        last_modified=info.last_modified,
        backend=first_backend,
    )


def verify_bytes(key: str, backend: str, info: StoredObject, data: bytes) -> None:
    """Raise IntegrityError if ``data`` does not match the sha256 recorded in ``info``."""
    expected = meta(info, META_SHA256)
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise IntegrityError(f"{key!r} on {backend}: bytes do not match their sha256")


def info_of(answer: FetchedObject | ObjectReader) -> StoredObject:
    """What the replica reported about an object it returned (whole or streaming)."""
    return answer.info


def live_reader(name: str, reader: ObjectReader) -> ObjectReader:
    """The reader, unless it reads a delete marker (then closed: DeletedMarker)."""
    if is_marker(reader.info):
        reader.close()
        live(name, reader.info)
    return reader


def close_reader(reader: ObjectReader) -> None:
    """Close a reader (an answer that lost a race, or was refused)."""
    reader.close()
