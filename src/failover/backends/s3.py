"""AWS S3 (and S3-compatible services such as moto) as a failover backend, via boto3.

Configuration (each value from the backend URL or the constructor; everything else from
boto3's own chain):

* ``s3://bucket[/prefix]``: bucket and optional key prefix.
* ``region=``: AWS region (else ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile).
* ``endpoint_url=``: an S3-compatible endpoint (else ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL``, else AWS itself).
* Credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``,
  ``AWS_PROFILE``, SSO, container or instance roles; never from the URL.

botocore's own retries are off (``total_max_attempts=1``): the policy layer decides
retries once. Every SDK exception is translated in :meth:`S3Backend._map_errors`.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

try:
    import boto3
    import botocore.handlers
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from failover._botocore import transport_error
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the S3 backend needs boto3: pip install 'failover[aws]'", name=exc.name
    ) from exc

from failover.backends.base import ByteRange, FetchedObject, StoredObject
from failover.errors import (
    BackendError,
    BackendRequestError,
    BackendTimeout,
    BucketNotFoundError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServerError,
    ThrottledError,
)
from failover.payload import CHUNK_SIZE

if TYPE_CHECKING:
    from failover.backends._url import BackendURL
    from failover.payload import Payload

__all__ = ["S3Backend"]

#: Payloads up to this size go up in one PutObject; larger ones as a multipart upload.
MULTIPART_THRESHOLD = CHUNK_SIZE
#: S3 allows 10,000 parts; aiming at 9,000 leaves headroom if a payload grows slightly.
_TARGET_MAX_PARTS = 9000
#: What S3 stores (and ``head`` reports) when a PutObject carries no Content-Type.
_S3_DEFAULT_CONTENT_TYPE = "binary/octet-stream"

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AccountProblem",
    }
)
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "ServiceUnavailable",
    }
)


class S3Backend:
    """One S3 bucket (optionally under a key prefix) as a :class:`~failover.backends.base.Backend`.

    Args:
        bucket: bucket name.
        prefix: key prefix inside the bucket; stored keys are ``prefix + key``.
        name: backend name for health, errors and the journal (default ``s3:<bucket>``).
        region: AWS region; ``None`` lets boto3 decide (environment, profile).
        endpoint_url: S3-compatible endpoint; ``None`` lets boto3 decide
            (``AWS_ENDPOINT_URL``), else AWS.
        timeout_seconds: connect and read timeout of one attempt.
        max_connections: size of the HTTP connection pool (match the fan-out).

    Raises:
        ConfigError: for an empty bucket name or a non-positive timeout or pool size.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        name: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        if not bucket:
            raise ConfigError("S3Backend needs a bucket name, e.g. S3Backend('my-bucket')")
        if timeout_seconds <= 0:
            raise ConfigError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections!r}")
        prefix = prefix.strip("/")
        self._bucket = bucket
        self._prefix = prefix + "/" if prefix else ""
        self._name = name or f"s3:{bucket}"
        self._endpoint_url = endpoint_url
        config = Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            # ``max_attempts`` alone still retries once; only ``total_max_attempts`` turns
            # botocore's retries off, so the policy layer is the only one retrying.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
        )
        # A private session: boto3's default session is not safe to share across threads.
        core = botocore.session.get_session()
        # Share the (read-only, cached) service models between sessions: loading them
        # anew made every backend take ~0.4 s to build; with a shared loader it is ~0.04 s.
        core.register_component("data_loader", _shared_loader())
        session = boto3.session.Session(botocore_session=core)
        self._client: Any = session.client(
            "s3", region_name=region, endpoint_url=endpoint_url, config=config
        )
        # botocore sends every PutObject/UploadPart with "Expect: 100-continue" and then
        # waits up to 1 s for "100 Continue": one extra round trip per write on AWS, and a
        # flat 1 s stall, outside any timeout, against servers that never send it (a
        # blackholed or slow replica). A body is at most one part (8 MiB for all but
        # huge objects), so sending it straight away costs less than waiting to be asked.
        self._client.meta.events.unregister("before-call.s3", botocore.handlers.add_expect_header)

    @classmethod
    def from_url(
        cls, url: BackendURL, *, timeout_seconds: float, max_connections: int
    ) -> S3Backend:
        """Build a backend from a parsed ``s3://bucket[/prefix]?region=…&endpoint_url=…`` URL.

        Raises:
            ConfigError: for another scheme or an unknown query parameter.
        """
        if url.scheme != "s3":
            raise ConfigError(f"backend URL {url.raw!r} is not an s3:// URL")
        url.check_params()
        return cls(
            url.bucket,
            prefix=url.prefix,
            name=url.name,
            region=url.params.get("region") or None,
            endpoint_url=url.params.get("endpoint_url") or None,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )

    @property
    def name(self) -> str:
        """Stable name used in health, errors, events and the journal."""
        return self._name

    @property
    def identity(self) -> str:
        """Endpoint, bucket and prefix: where these objects live (the journal's scope)."""
        return f"s3|{self._client.meta.endpoint_url}|{self._bucket}|{self._prefix}"

    @property
    def bucket(self) -> str:
        """The bucket this backend stores into."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """Key prefix inside the bucket ("" or ending in ``/``)."""
        return self._prefix

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self._endpoint_url!r}" if self._endpoint_url else ""
        return (
            f"S3Backend(name={self._name!r}, bucket={self._bucket!r}, "
            f"prefix={self._prefix!r}{endpoint})"
        )

    # -- writes ---------------------------------------------------------------------

    def put(
        self,
        key: str,
        payload: Payload,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> StoredObject:
        """Store ``payload`` under ``key``: one PutObject up to 8 MiB, multipart above.

        Args:
            key: application key.
            payload: the bytes; large payloads are read one part at a time.
            content_type: MIME type to store.
            metadata: provider metadata (lower-case names, ASCII values).
            if_absent: create only (``If-None-Match: *``).
            if_match: replace only the revision with this ETag (``If-Match``).

        Returns:
            What was stored.

        Raises:
            PreconditionFailedError: the condition did not hold.
            BucketNotFoundError: the bucket does not exist.
            BackendRequestError: S3 or botocore rejected the request (e.g. non-ASCII
                metadata values).
            TransientError: a network failure, timeout, throttling or 5xx.
        """
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._prefix + key}
        if content_type:
            params["ContentType"] = content_type
        if metadata:
            params["Metadata"] = {_to_s3_name(name): value for name, value in metadata.items()}
        conditions: dict[str, str] = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match
        try:
            if payload.size <= MULTIPART_THRESHOLD:
                with self._map_errors(key):
                    response = self._client.put_object(
                        **params, **conditions, Body=payload.read_all()
                    )
            else:
                response = self._put_multipart(key, payload, params, conditions)
        except NotFoundError as exc:
            if if_match is None:
                raise
            # S3 answers If-Match on a key that does not exist with 404 NoSuchKey; for the
            # caller that is a lost condition, not a missing object.
            raise PreconditionFailedError(
                f"put {key!r}: If-Match given but the object does not exist", backend=self._name
            ) from exc
        return StoredObject(
            key=key,
            size=payload.size,
            content_type=content_type or _S3_DEFAULT_CONTENT_TYPE,
            # As ``head`` will report them (see _to_s3_name).
            metadata={_from_s3_name(name): value for name, value in metadata.items()},
            last_modified=_response_time(response),
            etag=response.get("ETag"),
        )

    def _put_multipart(
        self,
        key: str,
        payload: Payload,
        params: dict[str, Any],
        conditions: dict[str, str],
    ) -> dict[str, Any]:
        if "IfMatch" in conditions:
            # moto 5.2 ignores If-Match on CompleteMultipartUpload (AWS enforces it), so
            # check first as well: this also avoids uploading gigabytes that S3 would
            # reject at the end. Against moto a writer racing between this check and
            # the completion can still win; against AWS the completion is atomic.
            self._check_etag(key, conditions["IfMatch"])
        bucket, s3_key = params["Bucket"], params["Key"]
        # Do as s3transfer does under botocore's default "when_supported" checksums:
        # declare CRC32 on the upload and list each part's checksum at completion, so S3
        # verifies every part and the upload's checksum settings agree with its parts.
        checksum: dict[str, str] = {}
        calculation = getattr(self._client.meta.config, "request_checksum_calculation", None)
        if calculation == "when_supported":
            checksum["ChecksumAlgorithm"] = "CRC32"
        with self._map_errors(key):
            upload_id: str = self._client.create_multipart_upload(**params, **checksum)["UploadId"]
        try:
            parts = self._upload_parts(
                key, payload, s3_key=s3_key, upload_id=upload_id, checksum=checksum
            )
            with self._map_errors(key):
                response: dict[str, Any] = self._client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=s3_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **conditions,
                )
        except BaseException:
            # Whatever failed (the network, S3, the payload's reader, a KeyboardInterrupt),
            # abort so that no invisible, billed parts are left behind. Best effort: if
            # the backend is unreachable the abort fails too, and a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) is the safety net.
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=bucket, Key=s3_key, UploadId=upload_id)
            raise
        return response

    def _upload_parts(
        self,
        key: str,
        payload: Payload,
        *,
        s3_key: str,
        upload_id: str,
        checksum: dict[str, str],
    ) -> list[dict[str, Any]]:
        part_size = max(CHUNK_SIZE, -(-payload.size // _TARGET_MAX_PARTS))
        parts: list[dict[str, Any]] = []
        sent = 0
        with payload.open() as reader:
            # One part in memory at a time; bytes (not a file object) also spare us
            # botocore's 100-continue wait on a blackholed endpoint.
            while part := _read_exactly(reader, part_size):
                number = len(parts) + 1
                with self._map_errors(key):
                    answer = self._client.upload_part(
                        Bucket=self._bucket,
                        Key=s3_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                        **checksum,
                    )
                entry: dict[str, Any] = {"ETag": answer["ETag"], "PartNumber": number}
                if "ChecksumCRC32" in answer:
                    entry["ChecksumCRC32"] = answer["ChecksumCRC32"]
                parts.append(entry)
                sent += len(part)
        if sent != payload.size:
            # The spooled file changed under us: storing it would break the sha256 that
            # rides in the metadata.
            raise IntegrityError(
                f"payload for {key!r} yielded {sent} bytes but declared {payload.size}"
            )
        return parts

    def _check_etag(self, key: str, expected: str) -> None:
        try:
            current = self.head(key).etag
        except NotFoundError:
            current = None
        if current != expected:
            raise PreconditionFailedError(
                f"put {key!r}: If-Match {expected} does not match the stored revision",
                backend=self._name,
            )

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete an object; S3 treats a missing key as deleted already.

        Args:
            key: application key.
            if_match: delete only the revision with this ETag (S3 conditional delete).

        Raises:
            BucketNotFoundError: the bucket does not exist.
            PreconditionFailedError: ``if_match`` names another revision.
        """
        extra = {} if if_match is None else {"IfMatch": if_match}
        with contextlib.suppress(NotFoundError), self._map_errors(key):
            self._client.delete_object(Bucket=self._bucket, Key=self._prefix + key, **extra)

    # -- reads ----------------------------------------------------------------------

    def head(self, key: str) -> StoredObject:
        """Return an object's size, content type, metadata and ETag.

        Raises:
            NotFoundError: the object does not exist.
            BucketNotFoundError: the bucket does not exist.
        """
        try:
            with self._map_errors(key):
                response = self._client.head_object(Bucket=self._bucket, Key=self._prefix + key)
        except NotFoundError as missing:
            # HEAD has no body, so a missing bucket is also a bare 404: ask once more so
            # that a deleted bucket never looks like a missing object.
            if self._bucket_missing():
                raise BucketNotFoundError(
                    f"bucket {self._bucket!r} does not exist", backend=self._name
                ) from missing
            raise
        return self._stored(key, response, size=int(response.get("ContentLength", 0)))

    def _bucket_missing(self) -> bool:
        try:
            with self._map_errors(None):
                self._client.head_bucket(Bucket=self._bucket)
        except BucketNotFoundError:
            return True
        except BackendError:
            # HeadBucket needs s3:ListBucket, which a reader may lack, and may fail
            # transiently: when it cannot tell, the object's own 404 stands.
            return False
        return False

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Read an object (or ``data[start:stop]`` of it) into memory.

        Raises:
            NotFoundError: the object does not exist.
            BucketNotFoundError: the bucket does not exist.
        """
        reader = self.open(key, byte_range=byte_range)
        try:
            data = reader.read()
        finally:
            reader.close()
        return FetchedObject(info=reader.info, data=data)

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> S3ObjectReader:
        """Open an object (or ``data[start:stop]`` of it) for streaming reads.

        Raises:
            ValueError: for a negative range bound.
            NotFoundError: the object does not exist.
            BucketNotFoundError: the bucket does not exist.
        """
        header = _range_header(byte_range)
        if header == "":
            # An empty slice (stop <= start) needs no bytes, but must still say whether
            # the object exists.
            return S3ObjectReader(self.head(key), None, self._map_errors, key)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._prefix + key}
        if header is not None:
            params["Range"] = header
        with self._map_errors(key):
            try:
                response = self._client.get_object(**params)
            except ClientError as exc:
                if _error_code(exc) != "InvalidRange" and _status(exc) != 416:
                    raise
                response = None
        if response is None:
            # 416: the range starts at or past the end (always so for an empty object);
            # slice semantics make that b"", not an error.
            return S3ObjectReader(self.head(key), None, self._map_errors, key)
        info = self._stored(key, response, size=_total_size(response))
        return S3ObjectReader(info, response["Body"], self._map_errors, key)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the objects whose keys start with ``prefix``, in key order, page by page.

        S3 listings carry no user metadata, so ``metadata`` is ``None`` (``head`` has it).

        Raises:
            BucketNotFoundError: the bucket does not exist (when iteration starts).
        """
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix))
        skip = len(self._prefix)
        while True:
            # Fetch lazily: a caller that stops early never pays for the remaining pages.
            with self._map_errors(None):
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", ()):
                yield StoredObject(
                    key=item["Key"][skip:],
                    size=int(item.get("Size", 0)),
                    content_type="",
                    metadata=None,
                    last_modified=item["LastModified"],
                    etag=item.get("ETag"),
                )

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    # -- helpers --------------------------------------------------------------------

    def _stored(self, key: str, response: Mapping[str, Any], *, size: int) -> StoredObject:
        metadata = response.get("Metadata") or {}
        return StoredObject(
            key=key,
            size=size,
            content_type=response.get("ContentType") or "",
            metadata={_from_s3_name(name): value for name, value in metadata.items()},
            last_modified=response.get("LastModified") or _response_time(response),
            etag=response.get("ETag"),
        )

    @contextlib.contextmanager
    def _map_errors(self, key: str | None) -> Iterator[None]:
        """Translate botocore exceptions into :mod:`failover.errors`, most specific first.

        Args:
            key: the application key the call is about; ``None`` for bucket-level calls,
                where a bare 404 means the bucket is missing.
        """
        try:
            yield
        except ClientError as exc:
            raise self._map_client_error(exc, key) from exc
        except BotoCoreError as exc:
            # Client-side validation (ParamValidationError: e.g. non-ASCII metadata) and
            # configuration errors: the same request can never succeed.
            raise transport_error(exc, service="S3", backend=self._name) or BackendRequestError(
                f"S3 request rejected by botocore: {type(exc).__name__}: {exc}",
                backend=self._name,
            ) from exc

    def _map_client_error(self, exc: ClientError, key: str | None) -> Exception:
        code, status = _error_code(exc), _status(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        detail = f"{exc.operation_name}: HTTP {status} {code}: {message}".rstrip(": ")
        name = self._name
        if code == "NoSuchBucket":
            return BucketNotFoundError(f"bucket {self._bucket!r} does not exist", backend=name)
        if code in _NOT_FOUND_CODES:
            if key is None:
                return BucketNotFoundError(f"bucket {self._bucket!r} does not exist", backend=name)
            return NotFoundError(key, backend=name)
        error: BackendError
        if code in _PERMISSION_CODES or status in (401, 403):
            error = PermissionDeniedError(detail, backend=name)
        elif code in _PRECONDITION_CODES or status == 412:
            error = PreconditionFailedError(detail, backend=name)
        elif code in _THROTTLE_CODES or status in (429, 503):
            error = ThrottledError(detail, backend=name)
        elif code == "RequestTimeout":
            # S3's 400 RequestTimeout: the upload stalled; retrying can succeed.
            error = BackendTimeout(detail, backend=name)
        elif status >= 500:
            error = ServerError(detail, backend=name)
        else:
            error = BackendRequestError(detail, backend=name)
        return error


class _Body(Protocol):
    """The part of botocore's ``StreamingBody`` the reader uses."""

    def read(self, amt: int | None = None) -> bytes: ...

    def close(self) -> None: ...


class S3ObjectReader:
    """A streaming reader over one S3 object (or a range of it); see ``ObjectReader``.

    Args:
        info: what S3 reported about the object.
        body: the response body, or ``None`` for an empty slice.
        map_errors: the backend's error mapping, applied to every read.
        key: the application key, for error messages.
    """

    __slots__ = ("_body", "_closed", "_info", "_key", "_map_errors")

    def __init__(
        self,
        info: StoredObject,
        body: _Body | None,
        map_errors: Callable[[str | None], AbstractContextManager[None]],
        key: str,
    ) -> None:
        self._info = info
        self._body = body
        self._map_errors = map_errors
        self._key = key
        self._closed = False

    @property
    def info(self) -> StoredObject:
        """What S3 reported when the read began (``size`` is the whole object's)."""
        return self._info

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative); ``b""`` at the end.

        Raises:
            ValueError: the reader is closed.
            TransientError: the connection failed or timed out mid-read.
        """
        if self._closed:
            raise ValueError("read from a closed S3 object reader")
        if self._body is None:
            return b""
        with self._map_errors(self._key):
            return self._body.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        """Release the connection; safe to call more than once."""
        if not self._closed:
            self._closed = True
            if self._body is not None:
                self._body.close()

    def __enter__(self) -> S3ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end (file objects may return short reads)."""
    data = reader.read(size)
    if len(data) >= size or not data:
        return data
    buffer = bytearray(data)
    while len(buffer) < size:
        chunk = reader.read(size - len(buffer))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)


@functools.cache
def _shared_loader() -> object:
    return botocore.session.get_session().get_component("data_loader")


def _to_s3_name(name: str) -> str:
    """Metadata name as sent to S3: lower case, ``_`` spelled ``-``.

    Metadata travels as ``x-amz-meta-<name>`` headers, and common HTTP front ends drop
    headers whose names contain ``_`` without a word: Werkzeug (so moto's server) always
    does, nginx does by default (S3-compatible stores behind it). The library's own
    names (``failover_version``) would silently vanish there. The names the facade lets
    through are Azure-compatible identifiers, which never contain ``-``, so the
    translation is reversible.
    """
    return name.lower().replace("_", "-")


def _from_s3_name(name: str) -> str:
    """Metadata name as reported to callers (the inverse of :func:`_to_s3_name`)."""
    return name.lower().replace("-", "_")


def _range_header(byte_range: ByteRange | None) -> str | None:
    """HTTP Range for a slice; ``None`` for the whole object, "" for an empty slice."""
    if byte_range is None:
        return None
    start, stop = byte_range
    if start < 0 or (stop is not None and stop < 0):
        raise ValueError(f"byte_range bounds must be non-negative, got {byte_range!r}")
    if stop is None:
        return None if start == 0 else f"bytes={start}-"
    if stop <= start:
        return ""
    return f"bytes={start}-{stop - 1}"


def _total_size(response: Mapping[str, Any]) -> int:
    """Size of the whole object: from ``Content-Range: bytes a-b/total`` on a ranged read."""
    content_range: str = response.get("ContentRange") or ""
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        return int(total)
    return int(response.get("ContentLength", 0))


def _response_time(response: Mapping[str, Any]) -> datetime:
    """When the write happened, from the response headers (PutObject has no LastModified)."""
    headers: Mapping[str, str] = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    for header in ("last-modified", "date"):
        value = headers.get(header)
        if value:
            with contextlib.suppress(TypeError, ValueError):
                stamp = email.utils.parsedate_to_datetime(value)
                return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
