"""GCSBackend against a real fake-gcs-server, plus the failure modes that need a socket.

Everything here talks HTTP for real: the emulator for the storage semantics, and small
loopback servers for the failures (refused connection, 5xx, a server that never answers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests  # type: ignore[import-untyped,unused-ignore]

from failover.backends import gcs, parse_backend_url
from failover.backends.base import StoredObject
from failover.backends.gcs import GCSBackend
from failover.errors import (
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
    is_transient,
)
from failover.payload import Payload
from failover.testing.emulators import EmulatorProcess, create_bucket
from failover.testing.emulators import _fakegcs as fakegcs

from .conftest import Blackhole

pytestmark = pytest.mark.integration

BUCKET = "gcs-backend-tests"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def bucket_url(fake_gcs_server: EmulatorProcess) -> str:
    return create_bucket(fake_gcs_server, BUCKET)


@pytest.fixture
def backend(fake_gcs_server: EmulatorProcess, bucket_url: str) -> Iterator[GCSBackend]:
    # One bucket for the module; a fresh prefix per test keeps tests independent.
    store = GCSBackend(BUCKET, prefix=f"t-{uuid.uuid4().hex}", endpoint=fake_gcs_server.endpoint)
    yield store
    store.close()


@pytest.fixture
def missing_bucket(fake_gcs_server: EmulatorProcess) -> Iterator[GCSBackend]:
    store = GCSBackend(f"missing-{uuid.uuid4().hex[:12]}", endpoint=fake_gcs_server.endpoint)
    yield store
    store.close()


def put_bytes(store: GCSBackend, key: str, data: bytes, **options: object) -> StoredObject:
    options.setdefault("content_type", "application/octet-stream")
    options.setdefault("metadata", {})
    with Payload.from_bytes(data) as payload:
        return store.put(key, payload, **options)  # type: ignore[arg-type]


def whole_seconds(info: StoredObject) -> StoredObject:
    """``info`` as ``get`` reports it: its time comes from ``Last-Modified`` (seconds)."""
    return dataclasses.replace(info, last_modified=info.last_modified.replace(microsecond=0))


class RequestLog:
    """Records every HTTP request a backend's session sends (a requests response hook)."""

    def __init__(self, store: GCSBackend) -> None:
        self.requests: list[tuple[str, str]] = []
        store._session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests.append((response.request.method or "", response.request.url or ""))

    def take(self) -> list[tuple[str, str]]:
        """The requests recorded since the last call."""
        taken, self.requests = self.requests, []
        return taken


# -- launcher ------------------------------------------------------------------------


def test_emulator_reports_start_time_and_env(fake_gcs_server: EmulatorProcess) -> None:
    assert fake_gcs_server.kind == "gcs"
    assert fake_gcs_server.running
    assert 0 < fake_gcs_server.started_seconds < 30
    assert fake_gcs_server.env == {"STORAGE_EMULATOR_HOST": fake_gcs_server.endpoint}


def test_create_bucket_is_idempotent_and_returns_a_backend_url(
    fake_gcs_server: EmulatorProcess,
) -> None:
    first = fakegcs.create_bucket(fake_gcs_server, "idempotent-bucket")
    second = fakegcs.create_bucket(fake_gcs_server, "idempotent-bucket")
    assert first == second
    assert first == f"gs://idempotent-bucket?endpoint={fake_gcs_server.endpoint}&project=test"
    proxied = fakegcs.create_bucket(
        fake_gcs_server, "idempotent-bucket", endpoint="http://127.0.0.1:9"
    )
    assert "endpoint=http://127.0.0.1:9&" in proxied


def test_external_url_is_what_fake_gcs_advertises() -> None:
    # The pitfall the option exists for: fake-gcs hands this URL back to clients.
    proxy_url = "http://127.0.0.1:9"
    emulator = fakegcs.start(external_url=proxy_url)
    try:
        fakegcs.create_bucket(emulator, "ext")
        store = GCSBackend("ext", endpoint=emulator.endpoint)
        put_bytes(store, "k", b"data")
        blob = store._bucket.blob("k")
        blob.reload(timeout=5, retry=None)
        assert blob.media_link.startswith(proxy_url)
        # Downloads build their URL from the configured endpoint, not from mediaLink.
        assert store.get("k").data == b"data"
        store.close()
    finally:
        emulator.stop()
    assert not emulator.running


# -- configuration -------------------------------------------------------------------


def test_from_url_reads_bucket_prefix_endpoint_and_name(bucket_url: str) -> None:
    store = GCSBackend.from_url(
        parse_backend_url(bucket_url.replace(f"gs://{BUCKET}", f"gs://{BUCKET}/some/prefix")),
        timeout_seconds=5,
        max_connections=4,
    )
    assert store.name == f"gs:{BUCKET}"
    assert store.prefix == "some/prefix/"
    info = put_bytes(store, "k", b"x")
    assert info.key == "k"
    assert [item.key for item in store.list()] == ["k"]
    store.delete("k")
    store.close()
    named = GCSBackend.from_url(
        parse_backend_url(bucket_url + "&name=replica-c"), timeout_seconds=5, max_connections=4
    )
    assert named.name == "replica-c"
    named.close()


def test_from_url_rejects_unknown_parameters() -> None:
    with pytest.raises(ConfigError, match="region"):
        GCSBackend.from_url(
            parse_backend_url("gs://b?region=eu"), timeout_seconds=5, max_connections=4
        )


def test_storage_emulator_host_is_honoured(
    fake_gcs_server: EmulatorProcess, bucket_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # host:port without a scheme, as the variable is often written.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"127.0.0.1:{fake_gcs_server.port}")
    store = GCSBackend(BUCKET, prefix=uuid.uuid4().hex)
    put_bytes(store, "k", b"via env")
    assert store.get("k").data == b"via env"
    store.close()


def test_missing_credentials_raise_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        GCSBackend("any-bucket")


@pytest.mark.parametrize(
    "options",
    [{"timeout_seconds": 0}, {"max_connections": 0}],
)
def test_bad_settings_raise_config_error(options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        GCSBackend("b", endpoint="http://127.0.0.1:9", **options)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        GCSBackend("", endpoint="http://127.0.0.1:9")


# -- round trips ---------------------------------------------------------------------


def test_round_trip(backend: GCSBackend) -> None:
    stored = put_bytes(
        backend,
        "docs/report.txt",
        b"hello world",
        content_type="text/plain",
        metadata={"failover_version": "7", "failover_sha256": "abc"},
    )
    assert stored.key == "docs/report.txt"
    assert stored.size == 11
    assert stored.content_type == "text/plain"
    assert stored.metadata == {"failover_version": "7", "failover_sha256": "abc"}
    assert stored.last_modified.tzinfo is not None
    assert stored.etag is not None
    assert stored.etag.isdigit()

    assert backend.head("docs/report.txt") == stored
    fetched = backend.get("docs/report.txt")
    assert fetched.data == b"hello world"
    assert fetched.info == whole_seconds(stored)
    with backend.open("docs/report.txt") as reader:
        assert reader.info == whole_seconds(stored)  # from the first chunk's headers
        assert reader.read(5) == b"hello"
        assert reader.read() == b" world"
        assert reader.read() == b""
    assert list(backend.list()) == [stored]

    backend.delete("docs/report.txt")
    with pytest.raises(NotFoundError):
        backend.head("docs/report.txt")
    assert list(backend.list()) == []


def test_native_layout_under_the_prefix(backend: GCSBackend) -> None:
    put_bytes(backend, "a/b.txt", b"native", content_type="text/plain")
    blob = backend._bucket.blob(backend.prefix + "a/b.txt")
    assert blob.download_as_bytes(timeout=5, retry=None) == b"native"
    blob.reload(timeout=5, retry=None)
    assert blob.content_type == "text/plain"


def test_resumable_round_trip(backend: GCSBackend) -> None:
    # 20 MiB, streamed from a spooled file: the resumable path (> 8 MiB).
    piece = os.urandom(MiB)
    pieces = [bytes([i]) + piece[1:] for i in range(20)]
    expected = hashlib.sha256(b"".join(pieces)).hexdigest()
    with Payload.from_source(iter(pieces)) as payload:
        assert not payload.in_memory
        stored = backend.put(
            "big.bin",
            payload,
            content_type="application/octet-stream",
            metadata={"failover_sha256": payload.sha256},
        )
    assert stored.size == 20 * MiB
    assert stored.metadata == {"failover_sha256": expected}

    assert hashlib.sha256(backend.get("big.bin").data).hexdigest() == expected
    digest = hashlib.sha256()
    with backend.open("big.bin") as reader:
        while chunk := reader.read(3 * MiB):
            digest.update(chunk)
    assert digest.hexdigest() == expected
    tail = backend.get("big.bin", byte_range=(20 * MiB - 10, None)).data
    assert tail == pieces[-1][-10:]


def test_resumable_if_absent(backend: GCSBackend) -> None:
    data = os.urandom(9 * MiB)
    put_bytes(backend, "big", data, if_absent=True)
    with pytest.raises(PreconditionFailedError):
        put_bytes(backend, "big", data, if_absent=True)


# -- conditional writes --------------------------------------------------------------


def test_if_absent_creates_only_once(backend: GCSBackend) -> None:
    first = put_bytes(backend, "once", b"first", if_absent=True)
    with pytest.raises(PreconditionFailedError) as caught:
        put_bytes(backend, "once", b"second", if_absent=True)
    assert caught.value.backend == backend.name
    assert not is_transient(caught.value)
    assert backend.get("once").data == b"first"
    assert backend.head("once").etag == first.etag


def test_if_match_replaces_only_that_generation(backend: GCSBackend) -> None:
    first = put_bytes(backend, "doc", b"v1")
    second = put_bytes(backend, "doc", b"v2", if_match=first.etag)
    assert second.etag != first.etag
    with pytest.raises(PreconditionFailedError):
        put_bytes(backend, "doc", b"stale", if_match=first.etag)
    with pytest.raises(PreconditionFailedError):
        put_bytes(backend, "doc", b"bogus", if_match="not-a-generation")
    assert backend.get("doc").data == b"v2"


def test_if_match_on_a_missing_object_fails_the_condition(backend: GCSBackend) -> None:
    with pytest.raises(PreconditionFailedError):
        put_bytes(backend, "never-written", b"x", if_match="1234")


# -- not found -----------------------------------------------------------------------


def test_missing_object_is_not_found(backend: GCSBackend) -> None:
    with pytest.raises(NotFoundError) as caught:
        backend.head("nope")
    assert caught.value.key == "nope"
    assert caught.value.backend == backend.name
    with pytest.raises(NotFoundError):
        backend.get("nope")
    with pytest.raises(NotFoundError):
        backend.get("nope", byte_range=(5, 2))
    with pytest.raises(NotFoundError):
        backend.open("nope")
    backend.delete("nope")  # not an error


def test_missing_bucket_does_not_look_like_a_missing_object(missing_bucket: GCSBackend) -> None:
    calls: list[Callable[[], object]] = [
        lambda: missing_bucket.head("k"),
        lambda: missing_bucket.get("k"),
        lambda: missing_bucket.open("k"),
        lambda: missing_bucket.delete("k"),
        lambda: list(missing_bucket.list()),
        lambda: put_bytes(missing_bucket, "k", b"x"),
    ]
    for call in calls:
        with pytest.raises(BucketNotFoundError) as caught:
            call()
        assert not isinstance(caught.value, NotFoundError)
        assert not is_transient(caught.value)


def test_list_is_lazy(missing_bucket: GCSBackend) -> None:
    listing = missing_bucket.list()  # no request yet
    with pytest.raises(BucketNotFoundError):
        next(listing)


# -- ranges --------------------------------------------------------------------------

DATA = b"0123456789abcdef"


@pytest.mark.parametrize(
    "byte_range",
    [
        (0, None),
        (0, 16),
        (3, 7),
        (10, None),
        (15, 100),
        (16, None),
        (40, None),
        (40, 50),
        (7, 3),
        (5, 5),
        (0, 0),
    ],
)
def test_byte_ranges_have_slice_semantics(
    backend: GCSBackend, byte_range: tuple[int, int | None]
) -> None:
    put_bytes(backend, "r", DATA)
    start, stop = byte_range
    expected = DATA[start:stop]
    fetched = backend.get("r", byte_range=byte_range)
    assert fetched.data == expected
    assert fetched.info.size == len(DATA)
    with backend.open("r", byte_range=byte_range) as reader:
        assert reader.read() == expected


@pytest.mark.parametrize("byte_range", [None, (0, None), (0, 10), (3, None)])
def test_empty_object_ranges(backend: GCSBackend, byte_range: tuple[int, int | None]) -> None:
    put_bytes(backend, "empty", b"")
    assert backend.get("empty", byte_range=byte_range).data == b""
    with backend.open("empty", byte_range=byte_range) as reader:
        assert reader.read() == b""
    assert backend.head("empty").size == 0


def test_negative_range_is_rejected(backend: GCSBackend) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        backend.get("r", byte_range=(-1, None))


def test_open_reads_in_chunks_across_boundaries(
    backend: GCSBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs, "READ_CHUNK_SIZE", 5)
    put_bytes(backend, "chunks", DATA)
    with backend.open("chunks", byte_range=(1, 15)) as reader:
        assert reader.read(3) == b"123"
        assert reader.read(7) == b"456789a"
        assert reader.read(0) == b""
        assert b"".join(iter(reader)) == b"bcde"
    reader.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        reader.read()


def test_open_refuses_to_mix_generations(
    backend: GCSBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs, "READ_CHUNK_SIZE", 4)
    put_bytes(backend, "moving", DATA)
    with backend.open("moving") as reader:
        assert reader.read(4) == DATA[:4]
        put_bytes(backend, "moving", DATA.upper())
        with pytest.raises(PreconditionFailedError, match="replaced"):
            reader.read()


# -- one-request reads ---------------------------------------------------------------

LIBRARY_META = {"failover_version": "0000000000000001.000000.abc", "failover_sha256": "00" * 32}


def is_media(request: tuple[str, str]) -> bool:
    method, url = request
    return method == "GET" and "/download/storage/v1/" in url and "alt=media" in url


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        (None, DATA),
        ((0, None), DATA),
        ((0, 16), DATA),
        ((3, 7), DATA[3:7]),
        ((10, None), DATA[10:]),
        ((15, 100), DATA[15:]),
    ],
)
def test_get_is_one_media_request_when_metadata_is_present(
    backend: GCSBackend, byte_range: tuple[int, int | None] | None, expected: bytes
) -> None:
    stored = put_bytes(
        backend, "one", DATA, content_type="text/plain", metadata={**LIBRARY_META, "team": "ops"}
    )
    log = RequestLog(backend)
    fetched = backend.get("one", byte_range=byte_range)
    requests_sent = log.take()
    assert len(requests_sent) == 1, requests_sent
    assert is_media(requests_sent[0])
    assert fetched.data == expected
    # Everything head reports, from the same response: the whole object's size, the
    # content type, user and library metadata, the generation as etag.
    assert fetched.info == whole_seconds(backend.head("one")) == whole_seconds(stored)
    assert fetched.info.size == len(DATA)
    assert fetched.info.content_type == "text/plain"
    assert fetched.info.metadata == {**LIBRARY_META, "team": "ops"}
    assert fetched.info.etag == stored.etag


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [(None, DATA), ((3, None), DATA[3:]), ((2, 9), DATA[2:9])],
)
def test_open_fetches_the_first_chunk_with_its_metadata_in_one_request(
    backend: GCSBackend, byte_range: tuple[int, int | None] | None, expected: bytes
) -> None:
    stored = put_bytes(backend, "one", DATA, content_type="text/plain", metadata=LIBRARY_META)
    log = RequestLog(backend)
    with backend.open("one", byte_range=byte_range) as reader:
        assert reader.info == whole_seconds(stored)
        assert reader.read() == expected
        assert reader.read() == b""
    requests_sent = log.take()
    assert len(requests_sent) == 1, requests_sent
    assert is_media(requests_sent[0])


def test_open_of_an_object_without_the_version_stamp_reads_its_metadata_first(
    backend: GCSBackend,
) -> None:
    stored = put_bytes(backend, "bare", DATA, content_type="text/plain", metadata={})
    log = RequestLog(backend)
    with backend.open("bare") as reader:
        assert reader.info == stored  # the JSON resource: milliseconds kept
        assert reader.read() == DATA
    (_, media_url), (_, metadata_url) = log.take()  # the bytes are not fetched twice
    assert is_media(("GET", media_url))
    assert parse_qs(urlsplit(metadata_url).query)["generation"] == [stored.etag]


@pytest.mark.parametrize("metadata", [{}, {"team": "ops"}])
def test_get_without_the_version_stamp_reads_the_metadata_of_that_generation(
    backend: GCSBackend, metadata: dict[str, str]
) -> None:
    # An object another tool wrote: missing headers would look like missing metadata, so
    # the metadata is read as well, pinned to the downloaded generation.
    stored = put_bytes(backend, "bare", DATA, content_type="text/plain", metadata=metadata)
    log = RequestLog(backend)
    fetched = backend.get("bare", byte_range=(2, 5))
    (_, media_url), (_, metadata_url) = log.take()
    assert is_media(("GET", media_url))
    assert "alt=media" not in metadata_url
    assert parse_qs(urlsplit(metadata_url).query)["generation"] == [stored.etag]
    assert fetched.data == DATA[2:5]
    assert fetched.info == stored  # from the JSON resource: milliseconds kept


def test_get_never_pairs_bytes_with_another_generations_metadata(
    backend: GCSBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_bytes(backend, "racy", b"first", content_type="text/one")
    read_metadata = backend._head
    replaced: list[StoredObject] = []

    def replace_then_read(key: str, *, generation: int | None = None) -> tuple[StoredObject, int]:
        if not replaced:
            # Another writer wins between the download and the metadata read.
            replaced.append(put_bytes(backend, "racy", b"second", content_type="text/two"))
        return read_metadata(key, generation=generation)

    monkeypatch.setattr(backend, "_head", replace_then_read)
    fetched = backend.get("racy")
    assert fetched.data == b"second"
    assert fetched.info == replaced[0]


def test_get_of_a_replaced_object_fails_after_every_attempt(
    backend: GCSBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_bytes(backend, "churn", b"v0")
    read_metadata = backend._head

    def replace_then_read(key: str, *, generation: int | None = None) -> tuple[StoredObject, int]:
        put_bytes(backend, "churn", os.urandom(4))
        return read_metadata(key, generation=generation)

    monkeypatch.setattr(backend, "_head", replace_then_read)
    with pytest.raises(PreconditionFailedError, match="replaced"):
        backend.get("churn")


@pytest.mark.parametrize(
    ("byte_range", "requests_expected"),
    [
        ((5, 5), 1),  # empty slice: the metadata alone
        ((7, 3), 1),
        ((16, None), 2),  # 416, then the metadata
        ((40, 50), 2),
    ],
)
def test_empty_slices_need_no_download(
    backend: GCSBackend, byte_range: tuple[int, int | None], requests_expected: int
) -> None:
    stored = put_bytes(backend, "edge", DATA, metadata=LIBRARY_META)
    log = RequestLog(backend)
    fetched = backend.get("edge", byte_range=byte_range)
    assert fetched.data == b""
    assert fetched.info == stored
    assert len(log.take()) == requests_expected


def test_non_ascii_metadata_round_trips_through_get(backend: GCSBackend) -> None:
    # The facade only writes ASCII, but other tools may not; GCS sends such values as
    # UTF-8 header bytes, which http.client hands over as ISO-8859-1 text.
    metadata = {**LIBRARY_META, "note": "Grüße, 日本 €", "literal": "a%20b =?x?="}
    stored = put_bytes(backend, "uni", b"x", metadata=metadata)
    assert stored.metadata == metadata
    assert backend.head("uni").metadata == metadata
    log = RequestLog(backend)
    fetched = backend.get("uni")
    assert fetched.info.metadata == metadata
    # The RFC 2047 look-alike is not guessed at: its generation's metadata is read.
    assert len(log.take()) == 2
    del metadata["literal"]
    put_bytes(backend, "uni", b"x", metadata=metadata)
    log.take()
    assert backend.get("uni").info.metadata == metadata
    assert len(log.take()) == 1


def test_header_parsing_is_case_insensitive_and_strict() -> None:
    headers = requests.structures.CaseInsensitiveDict(
        {
            "x-goog-META-Team": "ops",
            "X-Goog-Meta-FAILOVER_VERSION": "7",
            "content-type": "text/plain",
            "LAST-MODIFIED": "Thu, 26 Nov 2026 23:46:35 GMT",
        }
    )
    info = gcs._info_from_headers("k", headers, size=3, generation=42)
    assert info is not None
    assert info.metadata == {"team": "ops", "failover_version": "7"}
    assert info.content_type == "text/plain"
    assert info.etag == "42"
    assert info.last_modified.tzinfo is not None
    assert gcs._header_text("Gr\xc3\xbc\xc3\x9fe") == "Grüße"  # UTF-8 seen as ISO-8859-1
    assert gcs._header_text("\xff\xfe") is None  # not UTF-8
    assert gcs._header_text("=?utf-8?B?w6Q=?=") is None  # RFC 2047: left to the JSON
    for broken in (
        {"x-goog-meta-team": "ops", "Last-Modified": "Thu, 26 Nov 2026 23:46:35 GMT"},
        {"x-goog-meta-failover_version": "7", "Last-Modified": "yesterday"},
        {"x-goog-meta-failover_version": "7", "x-goog-meta-bad": "\xff"},
    ):
        headers = requests.structures.CaseInsensitiveDict(broken)
        assert gcs._info_from_headers("k", headers, size=0, generation=1) is None


# -- metadata and listing ------------------------------------------------------------


def test_metadata_names_are_lower_cased(backend: GCSBackend) -> None:
    # GCS keeps case; another tool may have written mixed-case names.
    stored = put_bytes(backend, "m", b"x", metadata={"Team": "ops", "FAILOVER_Version": "1"})
    expected = {"team": "ops", "failover_version": "1"}
    assert stored.metadata == expected
    assert backend.head("m").metadata == expected
    assert backend.get("m").info.metadata == expected
    assert [item.metadata for item in backend.list()] == [expected]


def test_list_strips_prefix_and_orders_by_key(backend: GCSBackend) -> None:
    keys = ["b", "a/2", "a/1", "a/10", "ä", "z", "A"]
    for key in keys:
        put_bytes(backend, key, key.encode(), content_type="text/plain", metadata={"k": "v"})
    listed = list(backend.list())
    assert [item.key for item in listed] == sorted(keys, key=lambda k: k.encode())
    assert all(item.content_type == "text/plain" for item in listed)
    assert all(item.metadata == {"k": "v"} for item in listed)
    assert [item.key for item in backend.list("a/")] == ["a/1", "a/10", "a/2"]
    assert list(backend.list("nothing-here/")) == []


# -- failures ------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_is_unavailable() -> None:
    store = GCSBackend("b", endpoint=f"http://127.0.0.1:{closed_port()}", timeout_seconds=2)
    calls: list[Callable[[], object]] = [
        lambda: store.head("k"),
        lambda: put_bytes(store, "k", b"x"),
    ]
    for call in calls:
        with pytest.raises(BackendUnavailable) as caught:
            call()
        assert is_transient(caught.value)
        assert caught.value.backend == "gs:b"
    store.close()


class StatusServer:
    """A loopback HTTP server that answers every request with one fixed status."""

    def __init__(self, status: int) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append(f"{self.command} {self.path}")
                body = json.dumps(
                    {"error": {"code": status, "message": "injected", "errors": []}}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StatusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.mark.parametrize(
    ("status", "expected", "transient"),
    [
        (503, ThrottledError, True),
        (429, ThrottledError, True),
        (500, ServerError, True),
        (502, ServerError, True),
        (408, BackendTimeout, True),
        (401, PermissionDeniedError, False),
        (403, PermissionDeniedError, False),
        (400, BackendRequestError, False),
        (412, PreconditionFailedError, False),
    ],
)
def test_http_errors_are_mapped(status: int, expected: type[Exception], transient: bool) -> None:
    with StatusServer(status) as server:
        store = GCSBackend("b", endpoint=server.endpoint, timeout_seconds=5)
        for call in (
            lambda: store.head("k"),
            lambda: store.get("k"),
            lambda: put_bytes(store, "k", b"x"),
            lambda: list(store.list()),
        ):
            with pytest.raises(expected) as caught:
                call()
            assert type(caught.value) is expected
            assert is_transient(caught.value) is transient
        store.close()
        # One request per call: the SDK's own retries (on by default for uploads) are off.
        assert len(server.requests) == 4, server.requests


def test_throttled_resumable_upload_is_not_retried() -> None:
    with StatusServer(503) as server:
        store = GCSBackend("b", endpoint=server.endpoint, timeout_seconds=5)
        with pytest.raises(ThrottledError):
            put_bytes(store, "big", b"\0" * (9 * MiB))
        store.close()
        assert len(server.requests) == 1
        assert "uploadType=resumable" in server.requests[0]


class CorruptingServer(StatusServer):
    """Serves object ``k`` (b"hello") with a crc32c that does not match the bytes."""

    def __init__(self) -> None:
        super().__init__(200)
        resource = json.dumps(
            {
                "name": "k",
                "bucket": "b",
                "generation": "1",
                "metageneration": "1",
                "size": "5",
                "contentType": "text/plain",
                "updated": "2024-01-01T00:00:00.000Z",
            }
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                media = self.path.startswith("/download/")
                body = b"hello" if media else resource
                headers = {"Content-Length": str(len(body))}
                if media and "range" in self.headers:
                    self.send_response(206)
                    body = body[1:3]
                    headers = {"Content-Length": "2", "Content-Range": "bytes 1-2/5"}
                else:
                    self.send_response(200)
                if media:
                    headers["X-Goog-Hash"] = "crc32c=AAAAAA=="  # wrong on purpose
                    headers["X-Goog-Generation"] = "1"
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server.RequestHandlerClass = Handler


def test_bytes_corrupted_in_transit_are_a_transient_error() -> None:
    with CorruptingServer() as server:
        store = GCSBackend("b", endpoint=server.endpoint, timeout_seconds=5)
        with pytest.raises(ServerError, match="checksum") as caught:
            store.get("k")
        assert is_transient(caught.value)
        # A ranged read has no whole-object checksum to compare with.
        assert store.get("k", byte_range=(1, 3)).data == b"el"
        store.close()


def test_connection_closed_without_an_answer_is_unavailable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        def hang_up() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                conn.recv(65536)
                conn.close()

        closer = threading.Thread(target=hang_up, daemon=True)
        closer.start()
        store = GCSBackend("b", endpoint=f"http://127.0.0.1:{port}", timeout_seconds=5)
        calls: list[Callable[[], object]] = [
            lambda: store.head("k"),
            lambda: put_bytes(store, "k", b"x"),
        ]
        for call in calls:
            with pytest.raises(BackendUnavailable) as caught:
                call()
            assert is_transient(caught.value)
        store.close()
        closer.join(timeout=5)


@pytest.mark.parametrize("operation", ["head", "get", "put", "list"])
def test_blackhole_times_out_within_the_timeout(blackhole: Blackhole, operation: str) -> None:
    store = GCSBackend("b", endpoint=blackhole.endpoint, timeout_seconds=0.5)
    calls: dict[str, Callable[[], object]] = {
        "head": lambda: store.head("k"),
        "get": lambda: store.get("k"),
        "put": lambda: put_bytes(store, "k", b"x" * 1024),
        "list": lambda: list(store.list()),
    }
    began = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        calls[operation]()
    elapsed = time.monotonic() - began
    store.close()
    assert is_transient(caught.value)
    # One request that timed out once: not retried (google's uploads retry by default).
    requests = blackhole.requests()
    assert len(requests) == 1, [r.split(b"\r\n", 1)[0] for r in requests]
    # The timeout is what ends the call (GCS has no client-level one: each call must
    # pass it); without it the call would wait forever. The bound is 20x the 0.5 s
    # timeout, so that only a call the timeout did not end, not a loaded machine, fails.
    assert elapsed < 10.0, f"{operation} took {elapsed:.1f} s with a 0.5 s timeout"


# -- concurrency ---------------------------------------------------------------------

POOL_FULL = "Connection pool is full"


def hammer(store: GCSBackend, *, threads: int, rounds: int) -> None:
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(rounds):
                assert store.get("shared").data == b"shared bytes"
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []


def test_32_threads_share_one_backend_without_pool_warnings(
    fake_gcs_server: EmulatorProcess, bucket_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    store = GCSBackend(
        BUCKET, prefix=uuid.uuid4().hex, endpoint=fake_gcs_server.endpoint, max_connections=32
    )
    put_bytes(store, "shared", b"shared bytes")
    hammer(store, threads=32, rounds=10)
    store.close()
    assert not [r for r in caplog.records if POOL_FULL in r.getMessage()]


def test_pool_warning_is_detectable_with_a_small_pool(
    fake_gcs_server: EmulatorProcess, bucket_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Control for the test above: the warning does reach caplog when the pool is too small.
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    store = GCSBackend(
        BUCKET, prefix=uuid.uuid4().hex, endpoint=fake_gcs_server.endpoint, max_connections=1
    )
    put_bytes(store, "shared", b"shared bytes")
    hammer(store, threads=16, rounds=10)
    store.close()
    assert [r for r in caplog.records if POOL_FULL in r.getMessage()]


def test_close_is_idempotent(fake_gcs_server: EmulatorProcess) -> None:
    store = GCSBackend(BUCKET, endpoint=fake_gcs_server.endpoint)
    store.close()
    store.close()
    assert "endpoint=" in repr(store)
