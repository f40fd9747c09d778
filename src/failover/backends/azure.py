"""Azure Blob Storage backend (``az://container[/prefix]?account_url=…``), on azure-storage-blob.

Credentials, in the order they are looked for:

* ``connection_string=`` or, without ``account_url``, ``$AZURE_STORAGE_CONNECTION_STRING``;
* with ``account_url``: ``credential=`` if given, else the account key in
  ``$AZURE_STORAGE_KEY`` (the account name is taken from the URL: the first path segment
  of a path-style URL such as ``http://127.0.0.1:10000/devstoreaccount1``, else the first
  label of the host name), else ``DefaultAzureCredential`` from azure-identity.

The SDK's retries are off (``retry_total=0``) and every request is bounded by
``connection_timeout``/``read_timeout``; retries and failover belong to the policy layer.
All SDK exceptions are translated in :meth:`AzureBlobBackend._map_errors`.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import os
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

try:
    import requests
    from azure.core import MatchConditions
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        IncompleteReadError,
        ResourceModifiedError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )
    from azure.storage.blob import (
        BlobBlock,
        BlobClient,
        BlobProperties,
        ContainerClient,
        ContentSettings,
        StorageStreamDownloader,
    )
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the Azure Blob backend needs azure-storage-blob: pip install 'failover[azure]' ({exc})"
    ) from exc

from failover.backends.base import ByteRange, FetchedObject, StoredObject
from failover.errors import (
    BackendError,
    BackendRequestError,
    BackendTimeout,
    BackendUnavailable,
    BucketNotFoundError,
    ConfigError,
    FailoverError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServerError,
    ThrottledError,
)

if TYPE_CHECKING:
    from azure.identity import DefaultAzureCredential

    from failover.backends._url import BackendURL
    from failover.payload import Payload

__all__ = ["BLOCK_SIZE", "SINGLE_PUT_LIMIT", "AzureBlobBackend", "AzureCredential"]

#: Payloads up to this size go up in one Put Blob request; larger ones in blocks.
SINGLE_PUT_LIMIT = 8 * 1024 * 1024
#: Size of each staged block of a large upload (grown for huge payloads, see below).
BLOCK_SIZE = 8 * 1024 * 1024
# A block blob holds at most 50,000 committed blocks.
_MAX_BLOCKS = 50_000
# Download granularity: the first request and every later one fetch at most this much,
# which bounds the memory one open() reader holds (the SDK's default first get is 32 MiB).
_GET_CHUNK = 4 * 1024 * 1024

#: What ``credential=`` accepts (as azure-storage-blob does): a key, a SAS token, a
#: ``{"account_name", "account_key"}`` dict, named-key or SAS credential, or a token credential.
AzureCredential = (
    str | dict[str, str] | AzureNamedKeyCredential | AzureSasCredential | TokenCredential
)

_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
_KEY_ENV = "AZURE_STORAGE_KEY"

_THROTTLING_CODES = frozenset({"ServerBusy", "TooManyRequests"})
_AUTH_CODES = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationSourceIPMismatch",
        "AuthorizationProtocolMismatch",
        "AuthorizationServiceMismatch",
        "InsufficientAccountPermissions",
        "InvalidAuthenticationInfo",
        "NoAuthenticationInformation",
    }
)


class AzureBlobBackend:
    """One Azure Blob container (optionally under a key prefix); a Backend.

    Args:
        container: container name.
        prefix: key prefix inside the container ("" or a path; a trailing ``/`` is added).
        name: backend name (default ``az:<container>``).
        account_url: Blob service endpoint, e.g. ``https://acct.blob.core.windows.net``
            or, for azurite, ``http://127.0.0.1:10000/devstoreaccount1``.
        connection_string: a storage connection string (takes precedence over
            ``account_url``); default ``$AZURE_STORAGE_CONNECTION_STRING`` when no
            ``account_url`` is given.
        credential: any credential azure-storage-blob accepts, used with ``account_url``;
            default an account key from ``$AZURE_STORAGE_KEY``, else
            ``DefaultAzureCredential``.
        timeout_seconds: connect timeout and per-read timeout of one request.
        max_connections: HTTP connection pool size; match the expected concurrency.

    Raises:
        ConfigError: no credentials are configured, or the URL or connection string is
            malformed.
    """

    def __init__(
        self,
        container: str,
        *,
        prefix: str = "",
        name: str | None = None,
        account_url: str | None = None,
        connection_string: str | None = None,
        credential: AzureCredential | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        if not container:
            raise ConfigError("AzureBlobBackend needs a container name")
        if timeout_seconds <= 0:
            raise ConfigError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, got {max_connections!r}")
        prefix = prefix.strip("/")
        self._container_name = container
        self._prefix = f"{prefix}/" if prefix else ""
        self._name = name or f"az:{container}"
        self._owned_credential: DefaultAzureCredential | None = None
        if connection_string is None and account_url is None:
            connection_string = os.environ.get(_CONNECTION_STRING_ENV) or None
            if connection_string is None:
                raise ConfigError(
                    f"Azure backend {self._name!r} has no credentials: set "
                    f"{_CONNECTION_STRING_ENV}, or pass account_url (az://{container}"
                    "?account_url=https://ACCOUNT.blob.core.windows.net) with "
                    f"{_KEY_ENV} or an Azure identity available to DefaultAzureCredential"
                )
        if connection_string is None:
            assert account_url is not None
            credential = self._credential(account_url, credential)
        session = _pooled_session(max_connections)
        options: dict[str, Any] = {
            # Retries are decided once, by the policy layer; SDK retries would multiply them.
            "retry_total": 0,
            "connection_timeout": timeout_seconds,
            "read_timeout": timeout_seconds,
            "max_single_get_size": _GET_CHUNK,
            "max_chunk_get_size": _GET_CHUNK,
            # The client's transport owns the session and closes it with the client.
            "session": session,
        }
        try:
            if connection_string is not None:
                self._client = ContainerClient.from_connection_string(
                    connection_string, container, credential=credential, **options
                )
            else:
                assert account_url is not None
                self._client = ContainerClient(
                    account_url, container, credential=credential, **options
                )
        except ValueError as exc:
            session.close()
            # Never echo the connection string: it holds the account key.
            what = "account_url" if connection_string is None else "the connection string"
            raise ConfigError(
                f"Azure backend {self._name!r}: {what} is malformed ({type(exc).__name__})"
            ) from None
        parts = urlsplit(self._client.url)
        # Scheme and host only: a SAS connection string puts the signature in the query.
        self._endpoint = f"{parts.scheme}://{parts.netloc}"

    @classmethod
    def from_url(
        cls, url: BackendURL, *, timeout_seconds: float, max_connections: int
    ) -> AzureBlobBackend:
        """Build from ``az://container[/prefix]?account_url=…[&name=…]``.

        Raises:
            ConfigError: for an unknown URL parameter or missing credentials.
        """
        url.check_params()
        return cls(
            url.bucket,
            prefix=url.prefix,
            name=url.name,
            account_url=url.params.get("account_url") or None,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )

    def _credential(self, account_url: str, credential: AzureCredential | None) -> AzureCredential:
        parts = urlsplit(account_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"Azure backend {self._name!r}: account_url {account_url!r} must be an "
                "http(s) URL such as https://ACCOUNT.blob.core.windows.net"
            )
        if credential is not None:
            return credential
        key = os.environ.get(_KEY_ENV)
        if key:
            return AzureNamedKeyCredential(_account_name(account_url), key)
        try:
            # Imported only here: azure-identity is heavy and unused with keys.
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError(
                f"account_url without {_KEY_ENV} needs azure-identity: "
                "pip install 'failover[azure]'"
            ) from exc
        owned = DefaultAzureCredential()
        self._owned_credential = owned
        return owned

    @property
    def name(self) -> str:
        """Backend name (``az:<container>`` unless overridden)."""
        return self._name

    @property
    def identity(self) -> str:
        """Account, container and prefix: where these objects live (the journal's scope)."""
        return f"az|{self._client.url}|{self._prefix}"

    def _blob(self, key: str) -> BlobClient:
        return self._client.get_blob_client(self._prefix + key)

    @contextlib.contextmanager
    def _map_errors(self, key: str, operation: str) -> Iterator[None]:
        """Translate azure-core exceptions into :mod:`failover.errors`, chaining the original.

        Messages are built from the operation, the HTTP status and the service's error
        code, never from ``str(exc)``: azure errors can carry request URLs (with a SAS
        signature) and response bodies.
        """
        try:
            yield
        except AzureError as exc:
            raise self._translate(exc, key, operation) from exc

    def _translate(self, exc: AzureError, key: str, operation: str) -> FailoverError:
        """Pick the most specific failover error for ``exc``."""
        where = f"{operation} {key!r}"
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            return self._translate_status(exc, exc.status_code, key, where)
        # No HTTP answer: the transport failed. The download helper wraps a broken or
        # timed-out body read in a status-less HttpResponseError, so look inside.
        network = _network_cause(exc)
        reason = _os_reason(exc)
        detail = f"{where}: {type(network or exc).__name__} talking to {self._endpoint}"
        if reason:
            detail += f" ({reason})"
        if isinstance(network, (ServiceRequestTimeoutError, ServiceResponseTimeoutError)):
            return BackendTimeout(detail, backend=self._name)
        if isinstance(network, (ServiceRequestError, ServiceResponseError, IncompleteReadError)):
            return BackendUnavailable(detail, backend=self._name)
        if isinstance(exc, ClientAuthenticationError):
            # DefaultAzureCredential found no identity, or the account key is not base64.
            return PermissionDeniedError(detail, backend=self._name)
        return BackendRequestError(detail, backend=self._name)

    def _translate_status(
        self, exc: HttpResponseError, status: int, key: str, where: str
    ) -> FailoverError:
        code = _error_code(exc)
        detail = f"{where}: HTTP {status}" + (f" {code}" if code else "")
        if isinstance(exc, DecodeError) or status < 300:
            # A success status with a body the SDK could not parse: the backend returned
            # garbage, which another attempt or replica may not.
            return ServerError(f"{where}: unreadable response (HTTP {status})", backend=self._name)
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            # A missing container must not look like a missing object.
            if code == "ContainerNotFound":
                return BucketNotFoundError(
                    f"container {self._container_name!r} does not exist ({detail})",
                    backend=self._name,
                )
            if code in (None, "BlobNotFound"):
                return NotFoundError(key, backend=self._name)
        return _status_error_class(exc, status, code)(detail, backend=self._name)

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
        """Store ``payload`` under ``key`` as a block blob.

        Payloads up to :data:`SINGLE_PUT_LIMIT` go up in one request; larger ones are
        read sequentially and staged block by block (memory stays bounded), then
        committed with the content type and metadata in one request, so the blob
        appears whole or not at all.

        Args:
            key: application key.
            payload: the bytes to store.
            content_type: MIME type to store.
            metadata: provider metadata (lower-case names, ASCII values).
            if_absent: create only (``If-None-Match: *``).
            if_match: replace only the revision with this etag.

        Returns:
            What was stored.

        Raises:
            PreconditionFailedError: the condition did not hold.
            ValueError: both ``if_absent`` and ``if_match`` were given.
        """
        if if_absent and if_match is not None:
            raise ValueError("put() takes if_absent or if_match, not both")
        conditions: dict[str, Any] = {}
        if if_absent:
            conditions["match_condition"] = MatchConditions.IfMissing
        elif if_match is not None:
            conditions["etag"] = if_match
            conditions["match_condition"] = MatchConditions.IfNotModified
        settings = ContentSettings(content_type=content_type)
        blob = self._blob(key)
        try:
            result = self._upload(
                key, blob, payload, settings=settings, metadata=metadata, conditions=conditions
            )
        except NotFoundError as exc:
            if if_match is None:
                raise
            # A conditional write to a deleted blob may answer 404 instead of 412; either
            # way the revision if_match names is gone, so the condition is lost.
            raise PreconditionFailedError(
                f"put {key!r}: the blob was deleted since it was read", backend=self._name
            ) from exc
        return StoredObject(
            key=key,
            size=payload.size,
            content_type=content_type,
            metadata={name.lower(): value for name, value in metadata.items()},
            last_modified=_aware(result.get("last_modified")),
            etag=result.get("etag"),
        )

    def _upload(
        self,
        key: str,
        blob: BlobClient,
        payload: Payload,
        *,
        settings: ContentSettings,
        metadata: Mapping[str, str],
        conditions: Mapping[str, Any],
    ) -> dict[str, Any]:
        with self._map_errors(key, "put"):
            if payload.size <= SINGLE_PUT_LIMIT:
                result = blob.upload_blob(
                    payload.read_all(),
                    length=payload.size,
                    # Conditions are explicit (match_condition); overwrite=False would add
                    # the SDK's own If-None-Match and rewrite 412 answers as 409s.
                    overwrite=True,
                    content_settings=settings,
                    metadata=dict(metadata),
                    **conditions,
                )
            else:
                result = self._put_blocks(
                    blob, payload, settings=settings, metadata=metadata, conditions=conditions
                )
        return result

    def _put_blocks(
        self,
        blob: BlobClient,
        payload: Payload,
        *,
        settings: ContentSettings,
        metadata: Mapping[str, str],
        conditions: Mapping[str, Any],
    ) -> dict[str, Any]:
        # Large payloads get larger blocks so that no blob needs more than 50,000.
        block_size = max(BLOCK_SIZE, -(-payload.size // _MAX_BLOCKS))
        # Uncommitted blocks are shared by every writer of the blob: a per-upload token in
        # the id keeps concurrent uploads of one key from committing each other's blocks.
        # Every id has the same length, as Azure requires within one blob.
        upload = uuid.uuid4().hex
        blocks: list[BlobBlock] = []
        with payload.open() as reader:
            while chunk := reader.read(block_size):
                block_id = base64.b64encode(f"{upload}-{len(blocks):08d}".encode()).decode()
                blob.stage_block(block_id, chunk, length=len(chunk))
                blocks.append(BlobBlock(block_id=block_id))
        return blob.commit_block_list(
            blocks, content_settings=settings, metadata=dict(metadata), **conditions
        )

    def _download(
        self, blob: BlobClient, byte_range: ByteRange | None
    ) -> StorageStreamDownloader[bytes] | None:
        """Start a download; ``None`` when the range selects no bytes."""
        offset: int | None = None
        length: int | None = None
        if byte_range is not None:
            start, stop = byte_range
            if start < 0 or (stop is not None and stop < 0):
                raise ValueError(f"byte_range must be non-negative, got {byte_range!r}")
            if stop is not None and stop <= start:
                return None
            # (0, None) is a whole read: a ranged GET of an empty blob fails with 416.
            if start > 0 or stop is not None:
                offset = start
                length = None if stop is None else stop - start
        try:
            return blob.download_blob(offset=offset, length=length)
        except HttpResponseError as exc:
            # 416: the range starts past the end (or the blob is empty): slice semantics
            # make that an empty read, not an error.
            if exc.status_code == 416:
                return None
            raise

    def _downloaded_info(
        self, key: str, downloader: StorageStreamDownloader[bytes]
    ) -> StoredObject:
        props = downloader.properties
        # properties.size is the size of the *range*; content_range ends with the total.
        total = props.size
        if props.content_range:
            with contextlib.suppress(ValueError):
                total = int(props.content_range.rsplit("/", 1)[1])
        return self._stored(key, props, size=total)

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Read an object, or ``data[start:stop]`` of it, into memory.

        Returns:
            The bytes and what the backend reported about the whole object.

        Raises:
            NotFoundError: no such object.
            BucketNotFoundError: no such container.
        """
        blob = self._blob(key)
        with self._map_errors(key, "get"):
            downloader = self._download(blob, byte_range)
            if downloader is None:
                return FetchedObject(self._stored(key, blob.get_blob_properties()), b"")
            return FetchedObject(self._downloaded_info(key, downloader), downloader.readall())

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> _BlobReader:
        """Open an object (or ``data[start:stop]`` of it) for streaming reads.

        The first 4 MiB are fetched now (so a missing object fails here); the rest is
        fetched 4 MiB at a time as it is read.

        Raises:
            NotFoundError: no such object.
            BucketNotFoundError: no such container.
        """
        blob = self._blob(key)
        with self._map_errors(key, "open"):
            downloader = self._download(blob, byte_range)
            if downloader is None:
                return _BlobReader(self, key, self._stored(key, blob.get_blob_properties()), None)
            return _BlobReader(
                self, key, self._downloaded_info(key, downloader), downloader.chunks()
            )

    def head(self, key: str) -> StoredObject:
        """Return an object's size, content type, metadata and etag.

        Raises:
            NotFoundError: no such object.
            BucketNotFoundError: no such container.
        """
        with self._map_errors(key, "head"):
            return self._stored(key, self._blob(key).get_blob_properties())

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete an object and its snapshots; a missing object is not an error.

        Args:
            key: application key.
            if_match: delete only the revision with this ETag.

        Raises:
            BucketNotFoundError: no such container.
            PreconditionFailedError: ``if_match`` names another revision.
        """
        conditions: dict[str, Any] = {}
        if if_match is not None:
            conditions = {"etag": if_match, "match_condition": MatchConditions.IfNotModified}
        # Snapshots would make the delete fail (409 SnapshotsPresent).
        with contextlib.suppress(NotFoundError), self._map_errors(key, "delete"):
            self._blob(key).delete_blob(delete_snapshots="include", **conditions)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the objects under ``prefix`` in key order, one listing page at a time.

        Raises:
            BucketNotFoundError: no such container.
        """
        skip = len(self._prefix)
        with self._map_errors(prefix, "list"):
            pages = self._client.list_blobs(
                name_starts_with=(self._prefix + prefix) or None, include=["metadata"]
            )
            found = (self._stored(props.name[skip:], props) for props in pages)
            yield from _in_utf8_order(found)

    def close(self) -> None:
        """Close the HTTP connection pool (and a credential this backend created)."""
        self._client.close()
        if self._owned_credential is not None:
            credential, self._owned_credential = self._owned_credential, None
            credential.close()

    def _stored(self, key: str, props: BlobProperties, *, size: int | None = None) -> StoredObject:
        content_type = props.content_settings.content_type if props.content_settings else None
        metadata = props.metadata
        return StoredObject(
            key=key,
            size=props.size if size is None else size,
            content_type=content_type or "",
            metadata=(
                None if metadata is None else {name.lower(): v for name, v in metadata.items()}
            ),
            last_modified=_aware(props.last_modified),
            etag=props.etag,
        )

    def __enter__(self) -> AzureBlobBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"AzureBlobBackend(name={self._name!r}, endpoint={self._endpoint!r}, "
            f"container={self._container_name!r}, prefix={self._prefix!r})"
        )


class _BlobReader:
    """Streaming reader over a blob download (an ObjectReader).

    The SDK fetches the blob 4 MiB at a time, each chunk in its own request, only as
    :meth:`read` needs it; a later chunk's request carries the first answer's ETag, so a
    blob overwritten mid-read fails (412) instead of splicing two revisions together.
    """

    def __init__(
        self,
        backend: AzureBlobBackend,
        key: str,
        info: StoredObject,
        chunks: Iterator[bytes] | None,
    ) -> None:
        self._backend = backend
        self._key = key
        self._info = info
        self._chunks = chunks
        self._buffer = bytearray()
        self._closed = False

    @property
    def info(self) -> StoredObject:
        """What the backend reported when the read began (whole-object size)."""
        return self._info

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative); ``b""`` at the end.

        Raises:
            BackendError: the connection failed while reading (mapped like any call).
        """
        want = None if size is None or size < 0 else size
        while self._chunks is not None and (want is None or len(self._buffer) < want):
            with self._backend._map_errors(self._key, "read"):
                chunk = next(self._chunks, None)
            if chunk is None:
                self._chunks = None
            else:
                self._buffer += chunk
        take = len(self._buffer) if want is None else min(want, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        return data

    def close(self) -> None:
        """Stop reading; every chunk request already completed, so nothing is held open."""
        self._closed = True
        self._chunks = None
        self._buffer.clear()

    def __enter__(self) -> _BlobReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _in_utf8_order(objects: Iterator[StoredObject]) -> Iterator[StoredObject]:
    """Reorder a listing from UTF-16 code-unit order to UTF-8 byte order, lazily.

    Azure (and azurite) list names in UTF-16 order, which puts a character above U+FFFF
    (a surrogate pair, 0xD800...) before one in U+E000..U+FFFF; UTF-8 order puts it after.
    The two orders agree otherwise, so an object is held back only while a later name,
    sharing the prefix before its first such character, could still sort before it:
    everything still to come is at least ``bound`` in UTF-8 order.
    """
    held: list[tuple[bytes, int, StoredObject]] = []
    for seq, obj in enumerate(objects):
        encoded = obj.key.encode("utf-8")
        heapq.heappush(held, (encoded, seq, obj))
        astral = next((i for i, char in enumerate(obj.key) if ord(char) > 0xFFFF), None)
        bound = encoded if astral is None else obj.key[:astral].encode("utf-8") + b"\xee\x80\x80"
        while held and held[0][0] <= bound:
            yield heapq.heappop(held)[2]
    while held:
        yield heapq.heappop(held)[2]


def _pooled_session(max_connections: int) -> requests.Session:
    """A requests session whose connection pool fits ``max_connections`` threads.

    azure-core's default adapter keeps 10 connections per host: with more threads urllib3
    discards connections ("Connection pool is full") and opens new ones. Retries are
    disabled here too, as azure-core does for the adapter it builds itself.
    """
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_maxsize=max_connections,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _account_name(account_url: str) -> str:
    """The storage account an endpoint URL names (path-style for emulators)."""
    parts = urlsplit(account_url)
    segment = parts.path.strip("/").split("/", 1)[0]
    if segment:
        return segment
    return (parts.hostname or "").split(".", 1)[0]


def _status_error_class(
    exc: HttpResponseError, status: int, code: str | None
) -> type[BackendError]:
    """The failover error for an HTTP error answer other than a missing blob or container."""
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403) or code in _AUTH_CODES:
        return PermissionDeniedError
    # 409 BlobAlreadyExists answers a create-only write (If-None-Match: *) to an existing blob.
    if (
        isinstance(exc, ResourceModifiedError)
        or status == 412
        or code in ("ConditionNotMet", "BlobAlreadyExists")
    ):
        return PreconditionFailedError
    if status in (429, 503) or code in _THROTTLING_CODES:
        return ThrottledError
    if status >= 500:
        return ServerError
    return BackendRequestError


def _error_code(exc: HttpResponseError) -> str | None:
    # azure-storage-blob sets error_code on the exceptions it raises; azure-core does not.
    code = getattr(exc, "error_code", None)
    if isinstance(code, Enum):
        # StorageErrorCode is a str Enum whose str() is "StorageErrorCode.X".
        return str(code.value)
    return str(code) if code else None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it wraps (azure inner_exception, chaining, urllib3)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        candidates = [
            getattr(current, "inner_exception", None),
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ]
        todo.extend(c for c in candidates if isinstance(c, BaseException))


def _network_cause(exc: AzureError) -> AzureError | None:
    """The azure-core transport error behind ``exc``.

    The download helper wraps a broken or timed-out body read in a bare
    ``HttpResponseError`` without a status; the transport error is inside it.
    """
    for cause in _causes(exc):
        if isinstance(cause, (ServiceRequestError, ServiceResponseError, IncompleteReadError)):
            return cause
    return None


def _os_reason(exc: BaseException) -> str | None:
    """The operating system's words for a socket failure ("Connection refused")."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return None


def _aware(value: object) -> datetime:
    # Azure always sends Last-Modified; a server that does not gets "now" rather than a
    # crash, since nothing in failover orders writes by it (versions ride in metadata).
    if not isinstance(value, datetime):
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
