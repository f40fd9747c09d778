"""The raw-SDK baseline: each provider's own client, called the way an application would.

For a fair comparison the SDK client is configured exactly like failover's backend for the
same URL (same endpoint, connect/read timeouts, SDK retries off, connection pool size,
and for S3 no ``Expect: 100-continue`` wait). To guarantee that, the client is *taken
from* a backend built by :func:`failover.backends.from_url` and then called directly: the
baseline never goes through failover's own code, only through the SDK.
"""

from __future__ import annotations

import contextlib
from typing import Any, BinaryIO, Protocol

from failover.backends import from_url

__all__ = ["MULTIPART_CHUNK", "RawClient", "Sink", "raw_client"]

#: Part/chunk size used by the streaming baselines: failover's own part size.
MULTIPART_CHUNK = 8 * 1024 * 1024
#: Connection pool size failover gives each backend (Storage: 16 workers x 2).
POOL_SIZE = 32


class Sink:
    """A write-only file object that counts and drops bytes (for streaming downloads)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        pass


class RawClient(Protocol):
    """Put and get through one provider's SDK, with no failover code in between."""

    kind: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None: ...
    def get_stream(self, key: str, chunk_size: int) -> int: ...
    def close(self) -> None: ...


class _S3:
    kind = "s3"

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._client = backend._client
        self._bucket = backend.bucket
        self._prefix = backend.prefix

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self._prefix + key, Body=data)

    def get(self, key: str) -> bytes:
        body = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)["Body"]
        with contextlib.closing(body):
            data: bytes = body.read()
        return data

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415 - only for this call

        # s3transfer's managed upload, one 8 MiB part at a time like failover's backend.
        # (use_threads=False is slower still: it reads the stream in small pieces.)
        config = TransferConfig(
            multipart_threshold=MULTIPART_CHUNK,
            multipart_chunksize=MULTIPART_CHUNK,
            max_concurrency=1,
        )
        self._client.upload_fileobj(stream, self._bucket, self._prefix + key, Config=config)

    def get_stream(self, key: str, chunk_size: int) -> int:
        body = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)["Body"]
        total = 0
        with contextlib.closing(body):
            for chunk in body.iter_chunks(chunk_size):
                total += len(chunk)
        return total

    def close(self) -> None:
        self._backend.close()


class _Azure:
    kind = "azure"

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._container = backend._client
        self._prefix = backend._prefix

    def put(self, key: str, data: bytes) -> None:
        blob = self._container.get_blob_client(self._prefix + key)
        blob.upload_blob(data, overwrite=True)

    def get(self, key: str) -> bytes:
        blob = self._container.get_blob_client(self._prefix + key)
        data: bytes = blob.download_blob().readall()
        return data

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        blob = self._container.get_blob_client(self._prefix + key)
        blob.upload_blob(stream, length=size, overwrite=True, max_concurrency=1)

    def get_stream(self, key: str, chunk_size: int) -> int:
        blob = self._container.get_blob_client(self._prefix + key)
        total = 0
        for chunk in blob.download_blob(max_concurrency=1).chunks():
            total += len(chunk)
        return total

    def close(self) -> None:
        self._backend.close()


class _GCS:
    kind = "gcs"

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._bucket = backend._bucket
        self._timeout = backend._timeout
        self._prefix = backend.prefix

    def put(self, key: str, data: bytes) -> None:
        self._bucket.blob(self._prefix + key).upload_from_string(
            data, timeout=self._timeout, retry=None
        )

    def get(self, key: str) -> bytes:
        data: bytes = self._bucket.blob(self._prefix + key).download_as_bytes(
            timeout=self._timeout, retry=None
        )
        return data

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        blob = self._bucket.blob(self._prefix + key)
        blob.chunk_size = MULTIPART_CHUNK  # the SDK's default resumable chunk is 100 MiB
        blob.upload_from_file(stream, size=size, timeout=self._timeout, retry=None)

    def get_stream(self, key: str, chunk_size: int) -> int:
        sink = Sink()
        self._bucket.blob(self._prefix + key).download_to_file(
            sink, timeout=self._timeout, retry=None
        )
        return sink.bytes

    def close(self) -> None:
        self._backend.close()


_CLIENTS = {"s3": _S3, "az": _Azure, "gs": _GCS}


def raw_client(url: str, *, timeout_seconds: float = 10.0) -> RawClient:
    """The SDK client failover would use for ``url``, wrapped for direct calls.

    Raises:
        RuntimeError: the backend no longer exposes its SDK client where this expects it
            (update this module when a backend's internals change).
    """
    scheme = url.split("://", 1)[0]
    backend = from_url(url, timeout_seconds=timeout_seconds, max_connections=POOL_SIZE)
    try:
        client: RawClient = _CLIENTS[scheme](backend)
    except (AttributeError, KeyError) as exc:
        backend.close()
        raise RuntimeError(
            f"cannot take the SDK client out of {type(backend).__name__}: {exc!r}"
        ) from exc
    return client
