"""AzureBlobBackend against a real azurite, and against sockets that misbehave.

No SDK call is mocked: faults come from real sockets (a closed port, a listener that
never answers, a small HTTP server that answers 503) so that the exceptions mapped are
the ones azure-core really raises.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import ContainerClient

from failover.backends._url import parse_backend_url
from failover.backends.azure import SINGLE_PUT_LIMIT, AzureBlobBackend, _account_name
from failover.backends.base import META_SHA256, META_VERSION, StoredObject
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
from failover.testing import emulators
from failover.testing.emulators import EmulatorProcess
from failover.testing.emulators._azurite import ACCOUNT_KEY, ACCOUNT_NAME
from failover.testing.emulators._process import free_port

from .conftest import Blackhole

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
DEV_CREDENTIAL = {"account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY}


def _payload(data: bytes) -> Payload:
    return Payload.from_bytes(data)


def _put(
    backend: AzureBlobBackend,
    key: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
    metadata: dict[str, str] | None = None,
    if_absent: bool = False,
    if_match: str | None = None,
) -> StoredObject:
    return backend.put(
        key,
        _payload(data),
        content_type=content_type,
        metadata=metadata or {},
        if_absent=if_absent,
        if_match=if_match,
    )


@pytest.fixture
def container(azurite_server: EmulatorProcess) -> str:
    name = f"t-{uuid.uuid4().hex[:20]}"
    emulators.create_bucket(azurite_server, name)
    return name


@pytest.fixture
def backend(container: str) -> Iterator[AzureBlobBackend]:
    """A backend authenticated by $AZURE_STORAGE_CONNECTION_STRING (set by the plugin)."""
    with AzureBlobBackend(container, timeout_seconds=5.0) as store:
        yield store


@pytest.fixture
def key_backend(azurite_server: EmulatorProcess, container: str) -> Iterator[AzureBlobBackend]:
    """A backend built from an az:// URL: account_url plus $AZURE_STORAGE_KEY."""
    url = f"az://{container}?account_url={azurite_server.endpoint}/{ACCOUNT_NAME}"
    with AzureBlobBackend.from_url(
        parse_backend_url(url), timeout_seconds=5.0, max_connections=8
    ) as store:
        yield store


def _backend_at(endpoint: str, *, timeout_seconds: float = 2.0) -> AzureBlobBackend:
    """A backend for a fake endpoint, with the dev-account key passed explicitly."""
    return AzureBlobBackend(
        "faulty",
        account_url=f"{endpoint}/{ACCOUNT_NAME}",
        credential=DEV_CREDENTIAL,
        timeout_seconds=timeout_seconds,
    )


OPERATIONS: dict[str, Callable[[AzureBlobBackend], object]] = {
    "put": lambda b: _put(b, "k", b"data"),
    "get": lambda b: b.get("k"),
    "open": lambda b: b.open("k"),
    "head": lambda b: b.head("k"),
    "delete": lambda b: b.delete("k"),
    "list": lambda b: list(b.list()),
}


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["backend", "key_backend"])
def test_round_trip(which: str, request: pytest.FixtureRequest) -> None:
    store: AzureBlobBackend = request.getfixturevalue(which)
    data = b"hello azure"
    meta = {META_VERSION: "0001-w1", META_SHA256: hashlib.sha256(data).hexdigest()}
    stored = _put(store, "docs/a.txt", data, content_type="text/plain", metadata=meta)
    assert stored.key == "docs/a.txt"
    assert stored.size == len(data)
    assert stored.etag
    assert stored.last_modified.tzinfo is not None

    fetched = store.get("docs/a.txt")
    assert fetched.data == data
    assert fetched.info.content_type == "text/plain"
    assert fetched.info.metadata == meta
    assert fetched.info.etag == stored.etag

    head = store.head("docs/a.txt")
    assert (head.size, head.content_type, head.metadata, head.etag) == (
        len(data),
        "text/plain",
        meta,
        stored.etag,
    )
    assert [o.key for o in store.list()] == ["docs/a.txt"]
    listed = next(store.list("docs/"))
    assert listed.metadata == meta
    assert listed.content_type == "text/plain"

    store.delete("docs/a.txt")
    with pytest.raises(NotFoundError):
        store.head("docs/a.txt")
    assert list(store.list()) == []


def test_default_name_and_url_name(azurite_server: EmulatorProcess, container: str) -> None:
    with AzureBlobBackend(container) as store:
        assert store.name == f"az:{container}"
    url = emulators.create_bucket(azurite_server, container, name="replica-b")
    with AzureBlobBackend.from_url(
        parse_backend_url(url), timeout_seconds=1.0, max_connections=1
    ) as store:
        assert store.name == "replica-b"


def test_prefix_is_added_and_stripped(azurite_server: EmulatorProcess, container: str) -> None:
    url = f"az://{container}/tenant-1?account_url={azurite_server.endpoint}/{ACCOUNT_NAME}"
    with (
        AzureBlobBackend.from_url(
            parse_backend_url(url), timeout_seconds=5.0, max_connections=4
        ) as scoped,
        AzureBlobBackend(container) as whole,
    ):
        _put(scoped, "x/1", b"one")
        _put(whole, "elsewhere", b"two")
        assert [o.key for o in scoped.list()] == ["x/1"]
        assert [o.key for o in scoped.list("x/")] == ["x/1"]
        assert [o.key for o in whole.list()] == ["elsewhere", "tenant-1/x/1"]
        assert whole.get("tenant-1/x/1").data == b"one"
        assert scoped.get("x/1").info.key == "x/1"
        scoped.delete("x/1")
        assert [o.key for o in whole.list()] == ["elsewhere"]


def test_block_upload_round_trip(backend: AzureBlobBackend, container: str) -> None:
    block = os.urandom(MiB)
    # An iterable source is spooled to a temporary file, as Storage.put does for streams.
    with Payload.from_source(iter([block] * 20)) as payload:
        assert not payload.in_memory
        assert payload.size == 20 * MiB > SINGLE_PUT_LIMIT
        stored = backend.put(
            "big/blob.bin",
            payload,
            content_type="application/x-test",
            metadata={META_SHA256: payload.sha256},
        )
        sha = payload.sha256
    assert stored.size == 20 * MiB

    fetched = backend.get("big/blob.bin")
    assert len(fetched.data) == 20 * MiB
    assert hashlib.sha256(fetched.data).hexdigest() == sha
    assert fetched.info.content_type == "application/x-test"
    assert fetched.info.metadata == {META_SHA256: sha}
    assert fetched.info.etag == stored.etag

    # Several committed blocks, all with ids of one length.
    raw = ContainerClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"], container
    )
    with raw:
        committed, uncommitted = raw.get_blob_client("big/blob.bin").get_block_list("all")
    assert len(committed) == 3
    assert uncommitted == []
    assert len({len(b.id) for b in committed}) == 1


def test_block_upload_streams_with_open(backend: AzureBlobBackend) -> None:
    data = os.urandom(10 * MiB + 123)
    with Payload.from_source(iter([data])) as payload:
        backend.put("big", payload, content_type="", metadata={})
    with backend.open("big") as reader:
        assert reader.info.size == len(data)
        parts = []
        while chunk := reader.read(3 * MiB + 1):
            assert len(chunk) <= 3 * MiB + 1
            parts.append(chunk)
        assert reader.read() == b""
    assert b"".join(parts) == data
    assert reader.closed
    reader.close()  # idempotent


# --- conditional writes ---------------------------------------------------------------


def test_if_absent_creates_only_once(backend: AzureBlobBackend) -> None:
    _put(backend, "once", b"first", if_absent=True)
    with pytest.raises(PreconditionFailedError) as info:
        _put(backend, "once", b"second", if_absent=True)
    assert not is_transient(info.value)
    assert info.value.backend == backend.name
    assert backend.get("once").data == b"first"


def test_if_match_replaces_only_that_revision(backend: AzureBlobBackend) -> None:
    first = _put(backend, "doc", b"v1")
    second = _put(backend, "doc", b"v2", if_match=first.etag)
    assert second.etag != first.etag
    with pytest.raises(PreconditionFailedError):
        _put(backend, "doc", b"v3", if_match=first.etag)
    assert backend.get("doc").data == b"v2"
    backend.delete("doc")
    with pytest.raises(PreconditionFailedError):
        _put(backend, "doc", b"v4", if_match=second.etag)


def test_conditional_block_uploads(backend: AzureBlobBackend) -> None:
    with Payload.from_source(iter([b"x" * (9 * MiB)])) as payload:
        first = backend.put("big", payload, content_type="", metadata={}, if_absent=True)
        with pytest.raises(PreconditionFailedError):
            backend.put("big", payload, content_type="", metadata={}, if_absent=True)
        second = backend.put("big", payload, content_type="", metadata={}, if_match=first.etag)
        with pytest.raises(PreconditionFailedError):
            backend.put("big", payload, content_type="", metadata={}, if_match=first.etag)
    assert backend.head("big").etag == second.etag


def test_if_absent_and_if_match_together_are_rejected(backend: AzureBlobBackend) -> None:
    with pytest.raises(ValueError, match="not both"):
        _put(backend, "k", b"x", if_absent=True, if_match='"0x1"')


# --- not found ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["get", "open", "head"])
def test_missing_object_is_not_found(backend: AzureBlobBackend, operation: str) -> None:
    with pytest.raises(NotFoundError) as info:
        OPERATIONS[operation](backend)
    assert info.value.key == "k"
    assert info.value.backend == backend.name
    assert isinstance(info.value, FileNotFoundError)


def test_ranged_read_of_missing_object_is_not_found(backend: AzureBlobBackend) -> None:
    for byte_range in [(0, 10), (5, None), (5, 5)]:
        with pytest.raises(NotFoundError):
            backend.get("k", byte_range=byte_range)


def test_delete_of_missing_object_succeeds(backend: AzureBlobBackend) -> None:
    backend.delete("never-written")


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_missing_container_is_bucket_not_found(
    azurite_server: EmulatorProcess, operation: str
) -> None:
    with (
        AzureBlobBackend(f"missing-{uuid.uuid4().hex[:12]}") as store,
        pytest.raises(BucketNotFoundError) as info,
    ):
        OPERATIONS[operation](store)
    assert not isinstance(info.value, NotFoundError)
    assert not is_transient(info.value)


# --- ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "byte_range",
    [
        None,
        (0, None),
        (0, 10),
        (3, 7),
        (5, None),
        (9, None),
        (10, None),
        (25, None),
        (4, 4),
        (7, 3),
        (8, 100),
        (0, 0),
    ],
)
def test_byte_ranges_have_slice_semantics(
    backend: AzureBlobBackend, byte_range: tuple[int, int | None] | None
) -> None:
    data = b"0123456789"
    _put(backend, "r", data)
    start, stop = byte_range or (0, None)
    expected = data[start:stop]
    fetched = backend.get("r", byte_range=byte_range)
    assert fetched.data == expected
    assert fetched.info.size == len(data)  # the whole object's size, not the range's
    with backend.open("r", byte_range=byte_range) as reader:
        assert reader.read() == expected
        assert reader.info.size == len(data)


@pytest.mark.parametrize("byte_range", [None, (0, None), (0, 5), (1, None), (3, 2)])
def test_empty_object(backend: AzureBlobBackend, byte_range: tuple[int, int | None] | None) -> None:
    _put(backend, "empty", b"", content_type="text/plain")
    fetched = backend.get("empty", byte_range=byte_range)
    assert fetched.data == b""
    assert fetched.info.size == 0
    assert fetched.info.content_type == "text/plain"
    with backend.open("empty", byte_range=byte_range) as reader:
        assert reader.read(10) == b""
    assert backend.head("empty").size == 0


def test_range_across_chunks(backend: AzureBlobBackend) -> None:
    data = os.urandom(9 * MiB)
    with Payload.from_source(iter([data])) as payload:
        backend.put("big", payload, content_type="", metadata={})
    start, stop = 3 * MiB + 7, 8 * MiB + 11
    assert backend.get("big", byte_range=(start, stop)).data == data[start:stop]
    with backend.open("big", byte_range=(start, None)) as reader:
        assert reader.read(5) == data[start : start + 5]
        assert reader.read() == data[start + 5 :]


# --- metadata and listing -------------------------------------------------------------


def test_metadata_names_read_back_lower_case(backend: AzureBlobBackend) -> None:
    _put(backend, "m", b"x", metadata={"Team": "ops", "CostCentre": "42"})
    expected = {"team": "ops", "costcentre": "42"}
    assert backend.head("m").metadata == expected
    assert backend.get("m").info.metadata == expected
    with backend.open("m") as reader:
        assert reader.info.metadata == expected
    assert next(backend.list()).metadata == expected


def test_invalid_metadata_name_is_a_permanent_request_error(backend: AzureBlobBackend) -> None:
    with pytest.raises(BackendRequestError) as info:
        _put(backend, "m", b"x", metadata={"not-an-identifier": "1"})
    assert "InvalidMetadata" in str(info.value)
    assert not is_transient(info.value)


def test_list_is_in_utf8_byte_order(backend: AzureBlobBackend) -> None:
    # azurite (like Azure) lists in UTF-16 order, which puts U+1F600 before U+E000.
    keys = [
        "b", "a/2", "a/10", "A", "a/\ue000", "a/\U0001f600", "_x", "a/é", "Z",
        "a/\U0001f600/x", "a/\U0001f600\ue000", "a/\ufb01", "a/\U00010000",
    ]  # fmt: skip
    for key in keys:
        _put(backend, key, b"1")
    expected = sorted(keys, key=lambda k: k.encode("utf-8"))
    assert [o.key for o in backend.list()] == expected
    assert [o.key for o in backend.list("a/")] == [k for k in expected if k.startswith("a/")]
    assert [o.key for o in backend.list("nothing/")] == []


# --- credentials and configuration ----------------------------------------------------


def test_wrong_account_key_is_permission_denied(
    azurite_server: EmulatorProcess, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_key = base64.b64encode(b"not the azurite key, but well formed!" * 2).decode()
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong_key)
    url = f"az://{container}?account_url={azurite_server.endpoint}/{ACCOUNT_NAME}"
    with AzureBlobBackend.from_url(
        parse_backend_url(url), timeout_seconds=5.0, max_connections=2
    ) as store:
        for operation in ("put", "get", "head", "list"):
            with pytest.raises(PermissionDeniedError) as info:
                OPERATIONS[operation](store)
            assert not is_transient(info.value)
            for text in (str(info.value), repr(info.value), repr(store)):
                assert wrong_key not in text
                assert ACCOUNT_KEY not in text


def test_wrong_key_in_connection_string_is_permission_denied(
    azurite_server: EmulatorProcess, container: str
) -> None:
    wrong_key = base64.b64encode(b"another wrong key, 64 bytes long ......" * 2).decode()
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={wrong_key};"
        f"BlobEndpoint={azurite_server.endpoint}/{ACCOUNT_NAME};"
    )
    with AzureBlobBackend(container, connection_string=conn) as store:
        with pytest.raises(PermissionDeniedError) as info:
            store.head("k")
        assert wrong_key not in str(info.value)
        assert wrong_key not in repr(store)


def test_missing_connection_string_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(ConfigError, match=r"AZURE_STORAGE_CONNECTION_STRING.*account_url"):
        AzureBlobBackend("c1c")


def test_malformed_connection_string_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "garbage-SECRET-VALUE")
    with pytest.raises(ConfigError) as info:
        AzureBlobBackend("c1c")
    assert "SECRET" not in str(info.value)


def test_unknown_url_parameter_is_a_config_error() -> None:
    url = parse_backend_url("az://c1c?account_url=http://127.0.0.1:1/a&region=x")
    with pytest.raises(ConfigError, match="region"):
        AzureBlobBackend.from_url(url, timeout_seconds=1.0, max_connections=1)


def test_bad_account_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="account_url"):
        AzureBlobBackend("c1c", account_url="127.0.0.1:10000", credential=DEV_CREDENTIAL)


def test_pool_fits_max_connections(
    backend: AzureBlobBackend, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    _put(backend, "shared", b"x")

    def hammer(store: AzureBlobBackend, threads: int) -> None:
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait()
                for _ in range(5):
                    store.head("shared")
            except BaseException as exc:  # reported below, with its test
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []

    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with AzureBlobBackend(container, max_connections=32) as store:
        hammer(store, 32)
    assert "Connection pool is full" not in caplog.text
    # The check above can fail: a pool smaller than the fan-out does warn.
    with AzureBlobBackend(container, max_connections=2) as store:
        hammer(store, 32)
    assert "Connection pool is full" in caplog.text


# --- network faults (real sockets, no emulator needed) ---------------------------------


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_connection_refused_is_unavailable(operation: str) -> None:
    port = free_port()  # nothing listens there any more
    # A timeout far above the bound below, so that waiting it out cannot pass.
    with _backend_at(f"http://127.0.0.1:{port}", timeout_seconds=60.0) as store:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            OPERATIONS[operation](store)
        elapsed = time.monotonic() - started
    # A refusal fails at once (milliseconds). The bound catches a call that waits instead:
    # for the 60 s timeout, or for a retry by the SDK (azure-storage's policy backs off
    # 12 s or more first). 10 s leaves a loaded machine ample room and still catches both.
    assert elapsed < 10.0, f"a refused {operation} took {elapsed:.1f} s"
    assert is_transient(info.value)
    assert info.value.backend == "az:faulty"
    assert "refused" in str(info.value).lower()


@pytest.mark.parametrize("operation", ["put", "get", "head", "list"])
def test_blackhole_times_out_within_one_timeout(blackhole: Blackhole, operation: str) -> None:
    with _backend_at(blackhole.endpoint, timeout_seconds=0.5) as store:
        started = time.monotonic()
        with pytest.raises(BackendTimeout) as info:
            OPERATIONS[operation](store)
        elapsed = time.monotonic() - started
    assert is_transient(info.value)
    # One request that timed out once: the SDK did not try again.
    requests = blackhole.requests()
    assert len(requests) == 1, [r.split(b"\r\n", 1)[0] for r in requests]
    # The timeout is what ends the call; without it the call would wait forever. The
    # bound is 20x the 0.5 s timeout, so that only a call the timeout did not end, not a
    # loaded machine, fails it.
    assert elapsed < 10.0, f"a blackholed {operation} took {elapsed:.1f} s"


class _ErrorHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status and error code the server was given."""

    protocol_version = "HTTP/1.1"
    server: _ErrorServer

    def _answer(self) -> None:
        with self.server.lock:
            self.server.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.server.truncate_body:
            self._truncated()
            return
        if self.server.garbage_body:
            self._garbage()
            return
        status, code = self.server.answer
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>fault injected by the test</Message></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("x-ms-error-code", code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _truncated(self) -> None:
        # Headers of a 10-byte blob, then 2 bytes, then the connection closes.
        self.send_response(206)
        self.send_header("Content-Length", "10")
        self.send_header("Content-Range", "bytes 0-9/10")
        self.send_header("ETag", '"0x1"')
        self.send_header("Last-Modified", "Wed, 26 Nov 2025 10:00:00 GMT")
        self.send_header("x-ms-blob-type", "BlockBlob")
        self.end_headers()
        self.wfile.write(b"01")
        self.close_connection = True

    def _garbage(self) -> None:
        body = b"<EnumerationResults><<< not XML"
        self.send_response(201 if self.command == "PUT" else 200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ErrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    answer: tuple[int, str] = (503, "ServerBusy")
    truncate_body = False
    garbage_body = False
    requests = 0
    lock = threading.Lock()


@pytest.fixture
def error_server() -> Iterator[_ErrorServer]:
    server = _ErrorServer(("127.0.0.1", 0), _ErrorHandler)
    # A short poll interval keeps shutdown() (and so each test's teardown) fast.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (503, "ServerBusy", ThrottledError),
        (429, "TooManyRequests", ThrottledError),
        (500, "InternalError", ServerError),
        (500, "OperationTimedOut", ServerError),
        (403, "AuthorizationFailure", PermissionDeniedError),
        (400, "InvalidHeaderValue", BackendRequestError),
    ],
)
@pytest.mark.parametrize("operation", ["put", "get", "head", "delete", "list"])
def test_http_errors_are_mapped(
    error_server: _ErrorServer,
    operation: str,
    status: int,
    code: str,
    expected: type[Exception],
) -> None:
    error_server.answer = (status, code)
    host, port = error_server.server_address[:2]
    with _backend_at(f"http://{host!s}:{port}") as store, pytest.raises(expected) as info:
        OPERATIONS[operation](store)
    assert f"HTTP {status} {code}" in str(info.value)
    assert is_transient(info.value) == (status >= 500 or status == 429)
    # Exactly one request: the SDK's own retries are off.
    assert error_server.requests == 1


def test_truncated_body_is_unavailable(error_server: _ErrorServer) -> None:
    # The SDK's downloader wraps a broken body read in a status-less HttpResponseError;
    # it must still map to a transient failure, not a permanent request error.
    error_server.truncate_body = True
    host, port = error_server.server_address[:2]
    with _backend_at(f"http://{host!s}:{port}") as store:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            store.get("k")
        elapsed = time.monotonic() - started
    assert "IncompleteReadError" in str(info.value)
    # Known SDK limitation: its downloader re-reads a broken body up to 3 times with a
    # 1 s pause, whatever retry_total says; the library's deadline bounds the call.
    assert error_server.requests == 3
    # Those pauses take 2 s; the bound (15x that) only checks that the call ends, with
    # room for a loaded machine.
    assert elapsed < 30.0, f"a truncated get took {elapsed:.1f} s"


@pytest.mark.parametrize("operation", ["put", "list"])
def test_garbage_response_is_a_server_error(error_server: _ErrorServer, operation: str) -> None:
    error_server.garbage_body = True
    host, port = error_server.server_address[:2]
    with _backend_at(f"http://{host!s}:{port}") as store, pytest.raises(ServerError) as info:
        OPERATIONS[operation](store)
    assert "unreadable response" in str(info.value)
    assert is_transient(info.value)


def test_account_url_without_key_uses_default_azure_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_KEY", raising=False)
    # Building the backend needs no network: the credential is only asked for a token
    # when the first request is signed.
    store = AzureBlobBackend("c1c", account_url="https://acct.blob.core.windows.net")
    assert "DefaultAzureCredential" in type(store._owned_credential).__name__
    store.close()
    store.close()


@pytest.mark.parametrize(
    ("account_url", "account"),
    [
        ("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1"),
        ("http://127.0.0.1:10000/devstoreaccount1/", "devstoreaccount1"),
        ("https://myacct.blob.core.windows.net", "myacct"),
        ("https://myacct.blob.core.windows.net/", "myacct"),
    ],
)
def test_account_name_comes_from_the_url(account_url: str, account: str) -> None:
    assert _account_name(account_url) == account
