"""Google Cloud Storage (and fake-gcs-server) as a failover backend, via google-cloud-storage.

Configuration (each value from the backend URL or the constructor):

* ``gs://bucket[/prefix]``: bucket and optional key prefix.
* ``project=``: Google Cloud project (else the one Application Default Credentials name;
  object calls work without one).
* ``endpoint=``: another JSON API endpoint (an emulator such as fake-gcs-server, or a
  proxy in front of one); else ``STORAGE_EMULATOR_HOST``, else Google itself.
* Credentials: Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
  ``gcloud auth application-default login``, the metadata server); never from the URL.
  Against an emulator (``STORAGE_EMULATOR_HOST`` set, or a plain ``http://`` endpoint)
  anonymous credentials are used and the project defaults to ``test``.

The SDK has no client-wide timeout or retry switch, and its uploads retry by default:
every call here passes ``timeout=`` and ``retry=None`` so that one attempt is bounded and
the policy layer alone decides retries. Every SDK exception is translated in
:meth:`GCSBackend._map_errors`.

``get`` is one ``alt=media`` GET: the response headers (``x-goog-generation``,
``x-goog-meta-*``, ``Content-Type``, ``Content-Range``...) describe exactly the generation
whose bytes came back, so it needs no separate metadata request.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

try:
    import google.auth
    import google_crc32c
    import requests  # type: ignore[import-untyped,unused-ignore]
    import requests.adapters  # type: ignore[import-untyped,unused-ignore]
    import urllib3.exceptions
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import storage
    from google.cloud.storage import exceptions as storage_exceptions
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the GCS backend needs google-cloud-storage: pip install 'failover[gcp]'",
        name=exc.name,
    ) from exc

from failover.backends.base import META_VERSION, ByteRange, FetchedObject, StoredObject
from failover.errors import (
    BackendError,
    BackendRequestError,
    BackendTimeout,
    BackendUnavailable,
    BucketNotFoundError,
    ConfigError,
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

__all__ = ["GCSBackend", "GCSObjectReader"]

# google-auth and google-api-core ship type hints but leave these unannotated; calling
# them through Any keeps ``mypy --strict`` (no untyped calls) meaningful for our code.
_AnonymousCredentials: Any = AnonymousCredentials
_AuthorizedSession: Any = AuthorizedSession
_from_http_status: Any = api_exceptions.from_http_status
_from_http_response: Any = api_exceptions.from_http_response

#: Payloads up to this size go up in one multipart request; larger ones resumably.
#: It is also the SDK's own switch-over point (``_MAX_MULTIPART_SIZE``).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
#: Bytes per resumable-upload request: a multiple of 256 KiB (the API requires it), and
#: the most a single put holds in memory. The SDK's default is 100 MiB.
RESUMABLE_CHUNK_SIZE = 8 * 1024 * 1024
#: Bytes fetched per ranged request by a streaming reader (its memory bound).
READ_CHUNK_SIZE = CHUNK_SIZE
#: Project used against emulators, which accept any name.
EMULATOR_PROJECT = "test"
#: How often ``get`` re-reads when the object is replaced between its metadata and bytes.
_CONSISTENT_READ_ATTEMPTS = 3
#: Response headers that carry an object's custom metadata, one per entry.
_META_HEADER_PREFIX = "x-goog-meta-"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")

_CREDENTIALS_HELP = (
    "no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service "
    "account key file, run `gcloud auth application-default login`, or run where the "
    "metadata server provides them; for an emulator set STORAGE_EMULATOR_HOST or the "
    "URL's endpoint= parameter"
)
# Defensive: error texts quote URLs and response bodies; none should carry a secret, but
# an api key, signature or token in a query string must never reach a message or log.
_SECRET_IN_TEXT = re.compile(
    r"(?i)\b(access_token|key|token|sig|signature|x-goog-signature|x-goog-credential)"
    r"=[^&\s'\"]+"
)
_MAX_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class _MediaAnswer:
    """What one media GET returned.

    Attributes:
        data: the requested slice.
        generation: the generation the bytes belong to (``x-goog-generation``); None if
            the server did not say.
        info: the object's description read from the response headers; None when they
            cannot stand in for its metadata.
    """

    data: bytes
    generation: int | None
    info: StoredObject | None


class GCSBackend:
    """One GCS bucket (optionally under a key prefix) as a :class:`~failover.backends.base.Backend`.

    Args:
        bucket: bucket name.
        prefix: key prefix inside the bucket; stored object names are ``prefix + key``.
        name: backend name for health, errors and the journal (default ``gs:<bucket>``).
        project: Google Cloud project; ``None`` takes the one from Application Default
            Credentials (or ``test`` against an emulator).
        endpoint: JSON API endpoint such as ``http://127.0.0.1:4443``; ``None`` takes
            ``STORAGE_EMULATOR_HOST``, else Google. A plain ``http://`` endpoint or
            ``STORAGE_EMULATOR_HOST`` means an emulator: anonymous credentials.
        timeout_seconds: connect and read timeout of one request.
        max_connections: size of the HTTP connection pool (match the fan-out).

    Raises:
        ConfigError: for an empty bucket name, a non-positive timeout or pool size, or
            when no Google credentials can be found.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        name: str | None = None,
        project: str | None = None,
        endpoint: str | None = None,
        timeout_seconds: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        if not bucket:
            raise ConfigError("GCSBackend needs a bucket name, e.g. GCSBackend('my-bucket')")
        if timeout_seconds <= 0:
            raise ConfigError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections!r}")
        prefix = prefix.strip("/")
        self._bucket_name = bucket
        self._prefix = prefix + "/" if prefix else ""
        self._name = name or f"gs:{bucket}"
        self._timeout = float(timeout_seconds)
        emulator_host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
        self._endpoint = _with_scheme(endpoint or emulator_host) or None
        if self._endpoint is not None:
            parts = urlsplit(self._endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                source = "endpoint" if endpoint else "STORAGE_EMULATOR_HOST"
                raise ConfigError(
                    f"GCS {source} {self._endpoint!r} is not an http(s) URL; "
                    "use e.g. http://127.0.0.1:4443"
                )
        anonymous = bool(emulator_host) or (
            self._endpoint is not None and urlsplit(self._endpoint).scheme == "http"
        )
        self._client: Any
        self._session: Any
        self._client, self._session = _make_client(
            project=project,
            endpoint=self._endpoint,
            anonymous=anonymous,
            timeout_seconds=self._timeout,
            max_connections=max_connections,
        )
        self._bucket: Any = self._client.bucket(bucket)
        # The JSON API's media URL on the configured endpoint (``Client.api_endpoint``
        # also reflects mTLS and universe-domain choices), never the server's mediaLink.
        self._media_url = (
            f"{str(self._client.api_endpoint).rstrip('/')}/download/storage/v1/b/"
            f"{quote(bucket, safe='')}/o/"
        )

    @classmethod
    def from_url(
        cls, url: BackendURL, *, timeout_seconds: float, max_connections: int
    ) -> GCSBackend:
        """Build a backend from a parsed ``gs://bucket[/prefix]?project=…&endpoint=…`` URL.

        Raises:
            ConfigError: for another scheme, an unknown query parameter, or missing
                credentials.
        """
        if url.scheme != "gs":
            raise ConfigError(f"backend URL {url.raw!r} is not a gs:// URL")
        url.check_params()
        return cls(
            url.bucket,
            prefix=url.prefix,
            name=url.name,
            project=url.params.get("project") or None,
            endpoint=url.params.get("endpoint") or None,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )

    @property
    def name(self) -> str:
        """Stable name used in health, errors, events and messages."""
        return self._name

    @property
    def identity(self) -> str:
        """Endpoint, bucket and prefix: where these objects live (the journal's scope)."""
        endpoint = self._endpoint or "https://storage.googleapis.com"
        return f"gs|{endpoint}|{self._bucket_name}|{self._prefix}"

    @property
    def bucket(self) -> str:
        """The bucket this backend stores into."""
        return self._bucket_name

    @property
    def prefix(self) -> str:
        """Object-name prefix inside the bucket ("" or ending in ``/``)."""
        return self._prefix

    def __repr__(self) -> str:
        endpoint = f", endpoint={self._endpoint!r}" if self._endpoint else ""
        return (
            f"GCSBackend(name={self._name!r}, bucket={self._bucket_name!r}, "
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
        """Store ``payload`` under ``key``: one request up to 8 MiB, a resumable upload above.

        Args:
            key: application key.
            payload: the bytes; large payloads are read one 8 MiB chunk at a time.
            content_type: MIME type to store.
            metadata: provider metadata (lower-case names, ASCII values).
            if_absent: create only (``ifGenerationMatch=0``).
            if_match: replace only this generation (an etag from ``head``).

        Returns:
            What was stored; its ``etag`` is the new generation.

        Raises:
            ValueError: both ``if_absent`` and ``if_match`` were given.
            PreconditionFailedError: the condition did not hold.
            BucketNotFoundError: the bucket does not exist.
            TransientError: a network failure, timeout, throttling or 5xx.
        """
        if if_absent and if_match is not None:
            raise ValueError("put() takes if_absent or if_match, not both")
        generation_match: int | None = None
        if if_absent:
            generation_match = 0
        elif if_match is not None:
            if not if_match.isdigit() or int(if_match) == 0:
                # GCS etags here are generations; anything else can never match.
                raise PreconditionFailedError(
                    f"put {key!r}: if_match {if_match!r} is not a GCS generation",
                    backend=self._name,
                )
            generation_match = int(if_match)
        blob = self._bucket.blob(self._prefix + key)
        if payload.size > MULTIPART_THRESHOLD:
            # Setting chunk_size makes the SDK stream the file in chunks of this size
            # instead of holding 100 MiB (its default) per request.
            blob.chunk_size = RESUMABLE_CHUNK_SIZE
            if generation_match is not None:
                self._check_generation(key, generation_match)
        blob.metadata = dict(metadata) or None
        with self._map_errors(key), payload.open() as stream:
            blob.upload_from_file(
                stream,
                rewind=False,
                size=payload.size,
                content_type=content_type or None,
                if_generation_match=generation_match,
                timeout=self._timeout,
                retry=None,
            )
        return self._stored(key, blob)

    def _check_generation(self, key: str, expected: int) -> None:
        """Fail early when a resumable upload's condition already does not hold.

        GCS enforces ``ifGenerationMatch`` atomically when the upload completes, and this
        check spares uploading gigabytes it would reject. fake-gcs-server (1.54) ignores
        the condition on resumable uploads, so against it this check is the only
        enforcement (a writer racing between check and completion can still win there).
        """
        try:
            _, current = self._head(key)
        except NotFoundError:
            current = 0  # generation 0 stands for "no live object"
        if current != expected:
            raise PreconditionFailedError(
                f"put {key!r}: generation is {current}, the write required {expected}",
                backend=self._name,
            )

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete an object; a missing key is not an error.

        Args:
            key: application key.
            if_match: delete only this generation (the ``etag`` this backend reports).

        Raises:
            BucketNotFoundError: the bucket does not exist.
            PreconditionFailedError: ``if_match`` names another generation.
        """
        generation = None if if_match is None else int(if_match)
        if generation is not None:
            # GCS enforces ifGenerationMatch on delete; fake-gcs-server 1.54 ignores it,
            # so check first as well (real GCS still decides atomically).
            try:
                current = self.head(key)
            except NotFoundError:
                return
            if current.etag != if_match:
                raise PreconditionFailedError(
                    f"{key!r} is at generation {current.etag}, not {if_match}",
                    backend=self._name,
                )
        with contextlib.suppress(NotFoundError), self._map_errors(key):
            self._bucket.delete_blob(
                self._prefix + key,
                timeout=self._timeout,
                retry=None,
                if_generation_match=generation,
            )

    # -- reads ----------------------------------------------------------------------

    def head(self, key: str) -> StoredObject:
        """Return an object's size, content type, metadata and generation (as ``etag``).

        Raises:
            NotFoundError: the object does not exist.
            BucketNotFoundError: the bucket does not exist.
        """
        info, _ = self._head(key)
        return info

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Read an object (or ``data[start:stop]`` of it) into memory, in one request.

        One ``alt=media`` GET returns the bytes and, in its headers, the generation,
        size, content type and custom metadata of exactly that generation, so metadata
        and bytes always belong to the same revision. When the headers cannot stand in
        for the metadata (no ``x-goog-meta-failover_version`` header, as for objects other
        tools wrote, or a value that does not decode), the metadata of that same
        generation is read as well: two requests. ``info.last_modified`` then has whole
        seconds (``Last-Modified``); ``head`` reports milliseconds.

        Raises:
            ValueError: for a negative range bound.
            NotFoundError: the object does not exist.
            BucketNotFoundError: the bucket does not exist.
            PreconditionFailedError: the object was replaced during every read attempt.
        """
        _check_range(byte_range)
        start, stop = byte_range or (0, None)
        if stop is not None and stop <= start:
            # An empty slice needs no bytes; the metadata alone answers it.
            info, _ = self._head(key)
            return FetchedObject(info=info, data=b"")
        for _ in range(_CONSISTENT_READ_ATTEMPTS):
            media = self._fetch_media(key, start=start, stop=stop)
            if media is None or media.generation is None:
                # 416: the range starts at or past the end (or the object is empty), and
                # the answer carries no size; or a server that does not name the
                # generation. Either way: metadata first, then that generation's bytes.
                fetched = self._get_pinned(key, byte_range)
            elif media.info is not None:
                return FetchedObject(info=media.info, data=media.data)
            else:
                fetched = self._with_metadata(key, media)
            if fetched is not None:
                return fetched
            # That generation is gone: the object was replaced or deleted between the two
            # requests. Read again rather than mix two revisions.
        raise PreconditionFailedError(
            f"get {key!r}: the object was replaced during each of "
            f"{_CONSISTENT_READ_ATTEMPTS} reads",
            backend=self._name,
        )

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> GCSObjectReader:
        """Open an object (or ``data[start:stop]`` of it) for streaming reads.

        The reader fetches ranged chunks of the generation current at open time, so
        memory stays bounded and the bytes never mix two revisions. Opening fetches the
        first chunk with one media GET whose headers describe the object (as ``get``
        does), so a read of up to :data:`READ_CHUNK_SIZE` bytes costs one request; when
        the headers cannot stand in for the metadata, the metadata is read first.

        Raises:
            ValueError: for a negative range bound.
            NotFoundError: the object does not exist.
            BucketNotFoundError: the bucket does not exist.
        """
        _check_range(byte_range)
        start, stop = byte_range or (0, None)
        if stop is None or stop > start:
            first_stop = (
                start + READ_CHUNK_SIZE if stop is None else min(stop, start + READ_CHUNK_SIZE)
            )
            media = self._fetch_media(key, start=start, stop=first_stop)
            if media is not None and media.generation is not None:
                # Headers that cannot stand in for the metadata: read that generation's.
                fetched = (
                    FetchedObject(info=media.info, data=media.data)
                    if media.info is not None
                    else self._with_metadata(key, media)
                )
                if fetched is not None:
                    size = fetched.info.size
                    return GCSObjectReader(
                        self,
                        key,
                        info=fetched.info,
                        generation=media.generation,
                        start=start,
                        stop=size if stop is None else min(stop, size),
                        prefetched=fetched.data,
                    )
        info, generation = self._head(key)
        start, stop = _clamp(byte_range, info.size)
        return GCSObjectReader(self, key, info=info, generation=generation, start=start, stop=stop)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield the objects whose keys start with ``prefix``, in key order, page by page.

        Raises:
            BucketNotFoundError: the bucket does not exist (when iteration starts).
        """
        iterator = self._client.list_blobs(
            self._bucket, prefix=self._prefix + prefix, timeout=self._timeout, retry=None
        )
        pages = iter(iterator.pages)
        skip = len(self._prefix)
        while True:
            # Fetch lazily: a caller that stops early never pays for the remaining pages.
            with self._map_errors(None):
                page = next(pages, None)
            if page is None:
                return
            for blob in page:
                yield self._stored(blob.name[skip:], blob)

    def close(self) -> None:
        """Release the HTTP connection pool; safe to call more than once."""
        self._client.close()

    # -- helpers --------------------------------------------------------------------

    def _head(self, key: str, *, generation: int | None = None) -> tuple[StoredObject, int]:
        """Read an object's metadata (of ``generation``, else the live one): a JSON GET."""
        blob = self._bucket.blob(self._prefix + key, generation=generation)
        with self._map_errors(key):
            blob.reload(timeout=self._timeout, retry=None)
        return self._stored(key, blob), int(blob.generation)

    def _get_pinned(self, key: str, byte_range: ByteRange | None) -> FetchedObject | None:
        """Read the metadata, then the bytes of that generation; None once it is replaced."""
        info, generation = self._head(key)
        start, stop = _clamp(byte_range, info.size)
        if start >= stop:
            return FetchedObject(info=info, data=b"")
        try:
            data = self._download(key, generation, start, stop)
        except NotFoundError:
            return None
        return FetchedObject(info=info, data=data)

    def _with_metadata(self, key: str, media: _MediaAnswer) -> FetchedObject | None:
        """Pair downloaded bytes with their generation's metadata; None once it is replaced."""
        try:
            info, _ = self._head(key, generation=media.generation)
        except NotFoundError:
            return None
        return FetchedObject(info=info, data=media.data)

    def _download(self, key: str, generation: int, start: int, stop: int) -> bytes:
        """Fetch ``[start, stop)`` of one generation; NotFoundError once it is replaced."""
        media = self._fetch_media(key, start=start, stop=stop, generation=generation)
        return b"" if media is None else media.data

    def _fetch_media(
        self, key: str, *, start: int, stop: int | None, generation: int | None = None
    ) -> _MediaAnswer | None:
        """One ``alt=media`` GET of ``data[start:stop]`` (of ``generation``, else the live one).

        The request goes through the client's own authorized session (the google-auth
        ``AuthorizedSession`` built in :func:`_make_client`: same credentials, pool and
        mTLS channel) rather than ``Blob.download_as_bytes``: the SDK's download keeps
        the response to itself and copies only a few headers onto the blob, not the
        custom metadata (``x-goog-meta-*``) nor the size. Public surface only: the
        documented JSON API media URL built from ``Client.api_endpoint`` (never the
        server's ``mediaLink``, which fake-gcs fills with its ``-external-url``,
        possibly bypassing a proxy; fake-gcs also ignores ``ifGenerationMatch`` on
        downloads but honours ``generation``), ``requests``, and google-api-core's
        ``from_http_response`` for error answers, as the SDK itself maps them. No retries:
        ``AuthorizedSession`` only repeats a request after refreshing an expired token.

        Returns:
            The answer, or None for HTTP 416 (the range starts at or past the end).
        """
        params = {"alt": "media"}
        if generation is not None:
            params["generation"] = str(generation)
        # Like the SDK's raw download: accept gzip and do not decode, so the bytes are the
        # stored bytes even for objects uploaded gzip-encoded by other tools.
        headers = {"Accept-Encoding": "gzip"}
        if start > 0 or stop is not None:
            headers["Range"] = f"bytes={start}-{'' if stop is None else stop - 1}"
        url = self._media_url + quote(self._prefix + key, safe="~")
        with self._map_errors(key):
            response = self._session.request(
                "GET", url, params=params, headers=headers, stream=True, timeout=self._timeout
            )
            try:
                if response.status_code == 416:
                    return None
                if response.status_code not in (200, 206):
                    raise _from_http_response(response)
                body: bytes = response.raw.read(decode_content=False)
            finally:
                response.close()
            return self._media_answer(key, response, body, start=start, stop=stop)

    def _media_answer(
        self, key: str, response: Any, body: bytes, *, start: int, stop: int | None
    ) -> _MediaAnswer:
        """Slice, verify and describe one media response (see :meth:`_fetch_media`)."""
        headers = response.headers  # case-insensitive
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
            if match is None or int(match[1]) != start:
                raise ServerError(
                    f"GCS answered a range request for byte {start} with Content-Range "
                    f"{headers.get('Content-Range')!r}",
                    backend=self._name,
                )
            first, total = int(match[1]), int(match[3])
            data = body if stop is None else body[: stop - start]
        else:
            # 200: the whole object (a server may ignore Range); slice it here.
            first, total = 0, len(body)
            data = body[start:stop]
        stored = headers.get("x-goog-stored-content-length", "")
        size = int(stored) if stored.isdigit() else total
        if first == 0 and len(body) == size:
            # The whole object came back: check it against the stored checksum (for a
            # part there is nothing to compare with).
            _verify_checksum(response, body)
        raw_generation = headers.get("x-goog-generation", "")
        generation = int(raw_generation) if raw_generation.isdigit() else None
        info = None
        if generation is not None:
            info = _info_from_headers(key, headers, size=size, generation=generation)
        return _MediaAnswer(data=data, generation=generation, info=info)

    def _stored(self, key: str, blob: storage.Blob) -> StoredObject:
        metadata: Mapping[str, str] = blob.metadata or {}
        updated: datetime | None = blob.updated
        return StoredObject(
            key=key,
            size=int(blob.size or 0),
            content_type=blob.content_type or "",
            metadata={name.lower(): value for name, value in metadata.items()},
            last_modified=updated or datetime.now(UTC),
            etag=None if blob.generation is None else str(blob.generation),
        )

    @contextlib.contextmanager
    def _map_errors(self, key: str | None) -> Iterator[None]:
        """Translate google-cloud-storage exceptions into :mod:`failover.errors`.

        Args:
            key: the application key the call is about; ``None`` for bucket-level calls,
                where a 404 means the bucket is missing.
        """
        try:
            yield
        except Exception as exc:
            answer = _as_api_error(exc)
            if isinstance(answer, api_exceptions.NotFound):
                if key is None or self._bucket_missing(answer):
                    raise BucketNotFoundError(
                        f"bucket {self._bucket_name!r} does not exist (create it, or fix "
                        "the backend URL)",
                        backend=self._name,
                    ) from exc
                raise NotFoundError(key, backend=self._name) from exc
            mapped = self._translate(exc if answer is None else answer)
            if mapped is None:
                raise
            raise mapped from exc

    def _translate(self, exc: BaseException) -> BackendError | None:  # noqa: PLR0911
        """Map one SDK or transport exception, most specific first; None if not ours."""
        name = self._name
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            return _map_api_error(exc, name)
        if isinstance(exc, storage_exceptions.DataCorruption):
            # crc32c/md5 mismatch of a download: damaged in transit, so another attempt
            # (or another replica) can succeed.
            return ServerError(f"download failed its checksum: {_safe(exc)}", backend=name)
        if isinstance(exc, auth_exceptions.RefreshError) and getattr(exc, "retryable", False):
            # The token endpoint itself failed (5xx, timeout): not a credentials problem.
            return BackendUnavailable(
                f"the Google token endpoint failed ({type(exc).__name__})", backend=name
            )
        if isinstance(exc, (auth_exceptions.RefreshError, auth_exceptions.DefaultCredentialsError)):
            # The message may quote the token endpoint's answer: keep only the type.
            return PermissionDeniedError(
                f"{_CREDENTIALS_HELP} ({type(exc).__name__})", backend=name
            )
        if isinstance(exc, auth_exceptions.TransportError):
            # Fetching a token failed on the network; judge by the underlying error.
            cause = exc.__cause__ or (exc.args[0] if exc.args else None)
            if isinstance(cause, BaseException) and cause is not exc:
                inner = self._translate(cause)
                if inner is not None:
                    return inner
            return BackendUnavailable(
                f"cannot reach the Google token endpoint: {_safe(exc)}", backend=name
            )
        if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)):
            # ConnectTimeout is also a ConnectionError: this branch must come first.
            return BackendTimeout(f"GCS did not answer in time: {_safe(exc)}", backend=name)
        if isinstance(exc, requests.exceptions.ConnectionError):
            # requests reports a read timeout in the middle of a body as ConnectionError.
            if any(isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args):
                return BackendTimeout(f"GCS did not answer in time: {_safe(exc)}", backend=name)
            return BackendUnavailable(f"cannot reach GCS: {_safe(exc)}", backend=name)
        if isinstance(
            exc,
            (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
                urllib3.exceptions.ProtocolError,
                urllib3.exceptions.NewConnectionError,
                ConnectionError,
            ),
        ):
            # Reset or truncated mid-response.
            return BackendUnavailable(f"connection to GCS failed: {_safe(exc)}", backend=name)
        if isinstance(exc, TimeoutError):
            return BackendTimeout(f"GCS did not answer in time: {_safe(exc)}", backend=name)
        return None

    def _bucket_missing(self, exc: api_exceptions.NotFound) -> bool:
        """Tell a missing bucket from a missing object after a 404 on an object call."""
        text = str(exc.message).lower()
        if "bucket does not exist" in text:
            return True
        if "no such object" in text:
            return False
        # fake-gcs answers a bare "Not Found" for both: ask about the bucket itself.
        try:
            with self._map_errors(None):
                exists: bool = self._bucket.exists(timeout=self._timeout, retry=None)
        except PermissionDeniedError:
            # Object-only roles may not read bucket metadata; the object call got as far
            # as a 404, so the bucket is most likely there.
            return False
        return not exists


class GCSObjectReader:
    """A streaming reader over one GCS object generation (or a range of it).

    See :class:`~failover.backends.base.ObjectReader`. Bytes are fetched in ranged
    requests of :data:`READ_CHUNK_SIZE`, each pinned to the generation seen at open.
    """

    __slots__ = (
        "_backend",
        "_buffer",
        "_closed",
        "_generation",
        "_info",
        "_key",
        "_offset",
        "_pos",
        "_stop",
    )

    def __init__(
        self,
        backend: GCSBackend,
        key: str,
        *,
        info: StoredObject,
        generation: int,
        start: int,
        stop: int,
        prefetched: bytes = b"",
    ) -> None:
        self._backend = backend
        self._key = key
        self._info = info
        self._generation = generation
        self._stop = max(start, stop)
        # One fetched chunk and how far into it the caller has read: slicing from an
        # offset copies only what read() returns, not the rest of the chunk each time.
        # ``prefetched``: the bytes from ``start`` fetched at open time.
        self._buffer = prefetched[: self._stop - start]
        self._offset = 0
        self._pos = start + len(self._buffer)
        self._closed = False

    @property
    def info(self) -> StoredObject:
        """What GCS reported when the read began (``size`` is the whole object's)."""
        return self._info

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all remaining when negative); ``b""`` at the end.

        Raises:
            ValueError: the reader is closed.
            PreconditionFailedError: the object was replaced or deleted mid-read.
            TransientError: the connection failed or timed out.
        """
        if self._closed:
            raise ValueError("read from a closed GCS object reader")
        wanted = self._stop - self._pos + len(self._buffer) - self._offset
        if size is not None and size >= 0:
            wanted = min(wanted, size)
        parts: list[bytes] = []
        have = 0
        while have < wanted:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = self._fetch(), 0
                if not self._buffer:
                    break
            take = self._buffer[self._offset : self._offset + wanted - have]
            self._offset += len(take)
            parts.append(take)
            have += len(take)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fetch(self) -> bytes:
        if self._pos >= self._stop:
            return b""
        end = min(self._pos + READ_CHUNK_SIZE, self._stop)
        try:
            data = self._backend._download(self._key, self._generation, self._pos, end)
        except NotFoundError as exc:
            raise PreconditionFailedError(
                f"read {self._key!r}: generation {self._generation} was replaced or deleted "
                "during the read; open it again",
                backend=self._backend.name,
            ) from exc
        self._pos += len(data)
        if not data:
            # The server returned nothing for a non-empty range: stop rather than loop.
            self._pos = self._stop
        return data

    def close(self) -> None:
        """Drop buffered bytes; safe to call more than once (no connection is held)."""
        self._closed = True
        self._buffer, self._offset = b"", 0

    def __enter__(self) -> GCSObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(READ_CHUNK_SIZE):
            yield chunk


def _make_client(
    *,
    project: str | None,
    endpoint: str | None,
    anonymous: bool,
    timeout_seconds: float,
    max_connections: int,
) -> tuple[storage.Client, Any]:
    """Build a storage client whose HTTP pool holds ``max_connections`` connections.

    Returns:
        The client and its authorized session (``requests.Session`` subclass).
    """
    if anonymous:
        credentials: Any = _AnonymousCredentials()
        project = project or EMULATOR_PROJECT
    else:
        try:
            credentials, adc_project = google.auth.default(scopes=storage.Client.SCOPE)
        except auth_exceptions.DefaultCredentialsError as exc:
            raise ConfigError(_CREDENTIALS_HELP) from exc
        project = project or adc_project
    # Our own session instead of the one the client would create lazily: it lets us size
    # the pool (urllib3's default of 10 warns "Connection pool is full" and drops
    # connections under a 32-way fan-out) and bound a token refresh by the same timeout.
    session: Any = _AuthorizedSession(credentials, refresh_timeout=timeout_seconds)
    if not anonymous:
        try:
            session.configure_mtls_channel()
        except auth_exceptions.MutualTLSChannelError as exc:
            raise ConfigError(f"cannot set up mutual TLS for GCS: {_safe(exc)}") from exc
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max_connections, max_retries=0)
    session.mount("http://", adapter)
    if not session.is_mtls:
        # An mTLS channel mounted its own https adapter carrying the client certificate.
        session.mount("https://", adapter)
    options = {"api_endpoint": endpoint} if endpoint else None
    try:
        client = storage.Client(
            project=project, credentials=credentials, _http=session, client_options=options
        )
    except (ValueError, OSError) as exc:
        session.close()
        raise ConfigError(f"cannot configure the GCS client: {_safe(exc)}") from exc
    # Since 3.x the client decorates trace spans with bucket metadata that it fetches in
    # background threads on a cache miss (``get_bucket`` with the SDK's default retry,
    # for up to two minutes). That is traffic we did not ask for, retries we cannot
    # bound, and a 403 for object-only roles; without a cache the SDK skips it.
    # (``DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA`` would do it process-wide.)
    client._bucket_metadata_cache = None
    return client, session


def _map_api_error(exc: api_exceptions.GoogleAPICallError, name: str) -> BackendError:
    """Map an HTTP error answer (NotFound is handled by the caller)."""
    detail = _safe(exc)
    if isinstance(exc, (api_exceptions.PreconditionFailed, api_exceptions.Conflict)):
        # 409: a concurrent change to the same object won.
        return PreconditionFailedError(detail, backend=name)
    if isinstance(exc, (api_exceptions.Unauthorized, api_exceptions.Forbidden)):
        return PermissionDeniedError(detail, backend=name)
    if isinstance(exc, (api_exceptions.TooManyRequests, api_exceptions.ServiceUnavailable)):
        return ThrottledError(detail, backend=name)
    if exc.code == 408:
        # 408: the server gave up waiting for our request; retrying can succeed.
        return BackendTimeout(detail, backend=name)
    if isinstance(exc, api_exceptions.ServerError) or (exc.code or 0) >= 500:
        return ServerError(detail, backend=name)
    return BackendRequestError(detail, backend=name)


def _as_api_error(exc: BaseException) -> api_exceptions.GoogleAPICallError | None:
    """The HTTP error answer ``exc`` stands for, if it is one."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return exc
    if isinstance(exc, storage_exceptions.InvalidResponse):
        # A raw media-layer error that escaped the SDK's own remapping.
        status = int(getattr(getattr(exc, "response", None), "status_code", 0) or 0)
        if status:
            answer: api_exceptions.GoogleAPICallError = _from_http_status(status, _safe(exc))
            return answer
    return None


def _info_from_headers(
    key: str, headers: Mapping[str, str], *, size: int, generation: int
) -> StoredObject | None:
    """Describe an object from a media response's headers; None if they cannot.

    GCS sends each custom metadata entry as an ``x-goog-meta-<name>`` header on
    downloads (fake-gcs-server 1.54 does too). Missing headers look the same as an
    object without metadata (a server that does not send them, a proxy that drops names
    with ``_``), so the headers are trusted only when they carry the version stamp every
    object the library writes has; otherwise, or when a value does not decode, this
    returns None and the caller reads the JSON metadata instead. Header values lose
    leading and trailing blanks (HTTP trims them), as S3 metadata does.
    """
    metadata: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_META_HEADER_PREFIX):
            text = _header_text(value)
            if text is None:
                return None
            metadata[lower[len(_META_HEADER_PREFIX) :]] = text
    if META_VERSION not in metadata:
        return None
    try:
        modified = parsedate_to_datetime(headers.get("Last-Modified", ""))
    except (TypeError, ValueError):
        return None
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=UTC)
    return StoredObject(
        key=key,
        size=size,
        content_type=headers.get("Content-Type", ""),
        metadata=metadata,
        # Whole seconds: the JSON resource (head, list) has milliseconds.
        last_modified=modified,
        etag=str(generation),
    )


def _header_text(value: str) -> str | None:
    """A metadata header value as stored, or None when it cannot be trusted to be.

    http.client decodes header bytes as ISO-8859-1; GCS and fake-gcs send non-ASCII
    metadata values as raw UTF-8, so the bytes are recovered and decoded as UTF-8.
    Anything else (bytes that are not UTF-8, an RFC 2047 ``=?charset?...?=`` word) is
    left to the JSON metadata, which has no such ambiguity.
    """
    if value.isascii():
        return None if "=?" in value and "?=" in value else value
    try:
        return value.encode("iso-8859-1").decode("utf-8")
    except UnicodeError:
        return None


def _verify_checksum(response: Any, body: bytes) -> None:
    """Compare a whole object's bytes with the ``x-goog-hash`` GCS sent with them.

    Raises:
        DataCorruption: the bytes do not match (mapped to a transient ServerError).
    """
    digests = dict(
        part.strip().split("=", 1)
        for part in response.headers.get("x-goog-hash", "").split(",")
        if "=" in part
    )
    # crc32c as the SDK prefers it (composite objects have no md5), else md5.
    if "crc32c" in digests:
        method = "crc32c"
        actual = base64.b64encode(google_crc32c.value(body).to_bytes(4, "big")).decode()
    elif "md5" in digests:
        method = "md5"
        actual = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    else:
        return
    if actual != digests[method]:
        raise storage_exceptions.DataCorruption(
            response,
            f"the {method} of the downloaded bytes is {actual}, the server's {digests[method]}",
        )


def _safe(exc: BaseException) -> str:
    """One line describing ``exc``, without secrets, short enough for a log line."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    text = _SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)}=***", text)
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text


def _with_scheme(endpoint: str) -> str:
    """``host:port`` (as STORAGE_EMULATOR_HOST is often written) becomes ``http://host:port``."""
    endpoint = endpoint.strip().rstrip("/")
    if endpoint and "://" not in endpoint:
        return "http://" + endpoint
    return endpoint


def _check_range(byte_range: ByteRange | None) -> None:
    if byte_range is None:
        return
    start, stop = byte_range
    if start < 0 or (stop is not None and stop < 0):
        raise ValueError(f"byte_range bounds must be non-negative, got {byte_range!r}")


def _clamp(byte_range: ByteRange | None, size: int) -> tuple[int, int]:
    """``[start, stop)`` of ``data[start:stop]`` for an object of ``size`` bytes."""
    if byte_range is None:
        return 0, size
    start, stop = byte_range
    stop = size if stop is None else min(stop, size)
    return min(start, size), max(min(start, size), stop)
