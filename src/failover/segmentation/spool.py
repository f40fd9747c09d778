"""Turn one write into n share payloads: erasure-code a stream into spooled files.

This is the only module of the package that touches the file system: each share is
written to its own private temporary file (or kept in memory when small) while its
sha256 is computed, so the replication layer can upload share ``i`` to backend ``i``
exactly as it uploads a replica today, and record the share's checksum in provider
metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from typing import BinaryIO

from failover.payload import CHUNK_SIZE, Payload
from failover.segmentation._stream import ByteSource
from failover.segmentation.erasure import ErasureCode

__all__ = ["spool_shares"]


class _HashingSink:
    """Writes to a file or buffer and hashes what it writes."""

    def __init__(self, out: BinaryIO, path: str | None) -> None:
        self.out = out
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def spool_shares(
    source: ByteSource,
    *,
    code: ErasureCode,
    data_size: int,
    spool_dir: str | None = None,
    memory_limit: int = CHUNK_SIZE,
    encoding_id: bytes | None = None,
) -> list[Payload]:
    """Erasure-code a stream into n payloads, share ``i`` at position ``i``.

    Args:
        source: the data (ciphertext when encryption is on): bytes, a binary reader or
            an iterable of bytes.
        code: k, n and block size.
        data_size: exactly how many bytes ``source`` yields.
        spool_dir: where to put the temporary files (default: the system's).
        memory_limit: shares up to this size stay in memory instead.
        encoding_id: 16 bytes naming this encoding (random by default).

    Returns:
        n payloads with known size and sha256; the caller closes them (which deletes
        spooled files).

    Raises:
        ValueError: if the source does not yield exactly ``data_size`` bytes (no
            temporary file is left behind).
    """
    in_memory = code.share_size(data_size) <= memory_limit
    sinks: list[_HashingSink] = []
    try:
        for _ in range(code.n):
            if in_memory:
                sinks.append(_HashingSink(io.BytesIO(), None))
            else:
                fd, path = tempfile.mkstemp(prefix="failover-share-", dir=spool_dir)
                sinks.append(_HashingSink(os.fdopen(fd, "wb"), path))
        code.encode_to(source, data_size=data_size, sinks=sinks, encoding_id=encoding_id)
        payloads: list[Payload] = []
        for sink in sinks:
            data = sink.out.getvalue() if isinstance(sink.out, io.BytesIO) else None
            sink.out.close()
            payloads.append(
                Payload(data=data, path=sink.path, size=sink.size, sha256=sink.digest.hexdigest())
            )
    except BaseException:
        for sink in sinks:
            sink.out.close()
            if sink.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sink.path)
        raise
    return payloads
