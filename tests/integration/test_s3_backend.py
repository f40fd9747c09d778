"""S3Backend against a real moto server, plus tiny local servers for network faults.

No boto3 mocks: every call goes over HTTP, either to moto or to a loopback server that
misbehaves on purpose (answers 503, refuses, or accepts and never answers).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ParamValidationError

from failover.backends._url import parse_backend_url
from failover.backends.base import Backend
from failover.backends.s3 import S3Backend
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
    is_transient,
)
from failover.payload import Payload
from failover.testing import emulators
from failover.testing.emulators import EmulatorProcess, _moto
from failover.testing.emulators._process import free_port

from .conftest import Blackhole

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def bucket_url(moto_server: EmulatorProcess) -> str:
    return emulators.create_bucket(moto_server, f"s3test-{uuid.uuid4().hex[:16]}")


@pytest.fixture
def backend(bucket_url: str) -> Iterator[S3Backend]:
    store = S3Backend.from_url(
        parse_backend_url(bucket_url), timeout_seconds=10.0, max_connections=8
    )
    yield store
    store.close()


@pytest.fixture(scope="module")
def raw_client(moto_server: EmulatorProcess) -> Iterator[object]:
    """A plain boto3 client on moto, to look behind the backend's back."""
    client = boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    yield client
    client.close()


@pytest.fixture
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials for tests that never reach moto; returns the secret to look for."""
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAILOVERTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return secret


def _backend_at(endpoint: str, *, timeout_seconds: float = 5.0) -> S3Backend:
    return S3Backend(
        "some-bucket",
        region="us-east-1",
        endpoint_url=endpoint,
        timeout_seconds=timeout_seconds,
        max_connections=2,
    )


def _uploads(client: object, bucket: str) -> list[object]:
    answer = client.list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
    return list(answer.get("Uploads", []))


def _spooled(data: bytes, tmp_path: object) -> Payload:
    return Payload.from_source(io.BytesIO(data), spool_dir=str(tmp_path))


# -- basics ---------------------------------------------------------------------------


def test_is_a_backend_named_after_its_bucket(bucket_url: str, backend: S3Backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == f"s3:{parse_backend_url(bucket_url).bucket}"
    named = S3Backend.from_url(
        parse_backend_url(bucket_url + "&name=primary"), timeout_seconds=1, max_connections=1
    )
    assert named.name == "primary"
    assert "testing" not in repr(named)
    named.close()


def test_from_url_rejects_unknown_parameters(bucket_url: str) -> None:
    with pytest.raises(ConfigError, match="profile"):
        S3Backend.from_url(
            parse_backend_url(bucket_url + "&profile=x"), timeout_seconds=1, max_connections=1
        )


def test_round_trip(backend: S3Backend) -> None:
    data = b"hello \x00 world"
    meta = {"failover_version": "0001-abc", "failover_sha256": hashlib.sha256(data).hexdigest()}
    stored = backend.put(
        "dir/a.txt", Payload.from_bytes(data), content_type="text/plain", metadata=meta
    )
    assert stored.key == "dir/a.txt"
    assert stored.size == len(data)
    assert stored.metadata == meta
    assert stored.etag
    assert stored.last_modified.tzinfo is not None

    head = backend.head("dir/a.txt")
    assert (head.size, head.content_type, head.metadata, head.etag) == (
        len(data),
        "text/plain",
        meta,
        stored.etag,
    )
    fetched = backend.get("dir/a.txt")
    assert fetched.data == data
    assert fetched.info.metadata == meta

    with backend.open("dir/a.txt") as reader:
        assert reader.info.size == len(data)
        assert reader.read(5) == b"hello"
        assert reader.read() == data[5:]
        assert reader.read() == b""
    reader.close()  # closing twice is fine

    backend.delete("dir/a.txt")
    with pytest.raises(NotFoundError):
        backend.head("dir/a.txt")
    backend.delete("dir/a.txt")  # deleting a missing key succeeds


def test_metadata_names_come_back_lower_case(backend: S3Backend) -> None:
    backend.put("k", Payload.from_bytes(b"x"), content_type="", metadata={"Team": "Ops"})
    assert backend.head("k").metadata == {"team": "Ops"}


def test_underscored_metadata_names_survive_moto(backend: S3Backend, raw_client: object) -> None:
    # moto's Werkzeug server drops request headers with "_" in their names, so the
    # backend spells "_" as "-" on the wire.
    meta = {"failover_version": "v1", "failover_sha256": "ab" * 32}
    backend.put("k", Payload.from_bytes(b"x"), content_type="", metadata=meta)
    assert backend.head("k").metadata == meta
    assert backend.get("k").info.metadata == meta
    raw = raw_client.head_object(Bucket=backend.bucket, Key="k")  # type: ignore[attr-defined]
    assert raw["Metadata"] == {"failover-version": "v1", "failover-sha256": "ab" * 32}


def test_prefix_is_added_and_stripped(
    bucket_url: str, backend: S3Backend, raw_client: object
) -> None:
    bucket = parse_backend_url(bucket_url).bucket
    prefixed = S3Backend.from_url(
        parse_backend_url(bucket_url.replace(bucket, bucket + "/tenant-1", 1)),
        timeout_seconds=5,
        max_connections=2,
    )
    prefixed.put("a", Payload.from_bytes(b"1"), content_type="", metadata={})
    backend.put("outside", Payload.from_bytes(b"2"), content_type="", metadata={})

    raw = raw_client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    assert sorted(item["Key"] for item in raw["Contents"]) == ["outside", "tenant-1/a"]
    assert [obj.key for obj in prefixed.list()] == ["a"]
    assert prefixed.get("a").data == b"1"
    prefixed.close()


def test_list_is_sorted_filtered_and_without_metadata(backend: S3Backend) -> None:
    for key in ["b/2", "a/1", "b/1", "é/3", "c"]:
        backend.put(key, Payload.from_bytes(key.encode()), content_type="", metadata={"m": "v"})
    listed = list(backend.list())
    assert [obj.key for obj in listed] == ["a/1", "b/1", "b/2", "c", "é/3"]
    assert all(obj.metadata is None for obj in listed)
    assert all(isinstance(obj.last_modified, datetime) for obj in listed)
    assert [obj.size for obj in listed] == [3, 3, 3, 1, 4]
    assert [obj.key for obj in backend.list("b/")] == ["b/1", "b/2"]
    assert list(backend.list("zzz")) == []


# -- multipart --------------------------------------------------------------------------


def test_multipart_round_trip(backend: S3Backend, raw_client: object, tmp_path: object) -> None:
    data = os.urandom(20 * MIB + 123)
    with _spooled(data, tmp_path) as payload:
        assert not payload.in_memory
        stored = backend.put(
            "big.bin", payload, content_type="application/octet-stream", metadata={"k": "v"}
        )
    assert stored.size == len(data)
    # A multipart ETag ends in "-<number of parts>": 20 MiB in 8 MiB parts is 3 parts.
    assert stored.etag is not None
    assert stored.etag.strip('"').endswith("-3")
    head = backend.head("big.bin")
    assert (head.size, head.metadata, head.content_type) == (
        len(data),
        {"k": "v"},
        "application/octet-stream",
    )
    assert backend.get("big.bin").data == data
    assert _uploads(raw_client, backend.bucket) == []


class _ExplodingReader(io.RawIOBase):
    """Yields zeros, then fails like a disk that went away."""

    def __init__(self, fail_after: int) -> None:
        self._left = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            raise OSError("spool file vanished")
        count = min(len(buffer), self._left)
        buffer[:count] = b"\0" * count
        self._left -= count
        return count


class _ExplodingPayload(Payload):
    __slots__ = ("_fail_after",)

    def __init__(self, *, size: int, fail_after: int) -> None:
        super().__init__(data=None, path=None, size=size, sha256="0" * 64)
        self._fail_after = fail_after

    def open(self):  # type: ignore[no-untyped-def]
        return io.BufferedReader(_ExplodingReader(self._fail_after))


def test_failed_multipart_upload_is_aborted(backend: S3Backend, raw_client: object) -> None:
    payload = _ExplodingPayload(size=20 * MIB, fail_after=10 * MIB)
    with pytest.raises(OSError, match="spool file vanished"):
        backend.put("broken.bin", payload, content_type="", metadata={})
    assert _uploads(raw_client, backend.bucket) == []
    with pytest.raises(NotFoundError):
        backend.head("broken.bin")


def test_rejected_multipart_completion_is_aborted(
    backend: S3Backend, raw_client: object, tmp_path: object
) -> None:
    backend.put("taken", Payload.from_bytes(b"first"), content_type="", metadata={})
    with _spooled(os.urandom(9 * MIB), tmp_path) as payload, pytest.raises(PreconditionFailedError):
        backend.put("taken", payload, content_type="", metadata={}, if_absent=True)
    assert _uploads(raw_client, backend.bucket) == []
    assert backend.get("taken").data == b"first"


# -- conditional writes -----------------------------------------------------------------


def test_if_absent_creates_only_once(backend: S3Backend) -> None:
    backend.put("once", Payload.from_bytes(b"1"), content_type="", metadata={}, if_absent=True)
    with pytest.raises(PreconditionFailedError) as caught:
        backend.put("once", Payload.from_bytes(b"2"), content_type="", metadata={}, if_absent=True)
    assert not is_transient(caught.value)
    assert caught.value.backend == backend.name
    assert backend.get("once").data == b"1"


def test_if_match_replaces_only_that_revision(backend: S3Backend) -> None:
    first = backend.put("doc", Payload.from_bytes(b"v1"), content_type="", metadata={})
    assert first.etag is not None
    second = backend.put(
        "doc", Payload.from_bytes(b"v2"), content_type="", metadata={}, if_match=first.etag
    )
    with pytest.raises(PreconditionFailedError):
        backend.put(
            "doc", Payload.from_bytes(b"v3"), content_type="", metadata={}, if_match=first.etag
        )
    assert backend.get("doc").data == b"v2"
    assert backend.head("doc").etag == second.etag
    with pytest.raises(PreconditionFailedError):
        backend.put(
            "missing", Payload.from_bytes(b"x"), content_type="", metadata={}, if_match=first.etag
        )


def test_if_match_on_multipart(backend: S3Backend, tmp_path: object) -> None:
    first = backend.put("big", Payload.from_bytes(b"small"), content_type="", metadata={})
    assert first.etag is not None
    data = os.urandom(9 * MIB)
    with _spooled(data, tmp_path) as payload:
        backend.put("big", payload, content_type="", metadata={}, if_match=first.etag)
        with pytest.raises(PreconditionFailedError):
            backend.put("big", payload, content_type="", metadata={}, if_match=first.etag)
    assert backend.get("big").data == data


# -- missing things ---------------------------------------------------------------------


def test_missing_object_is_not_found(backend: S3Backend) -> None:
    for call in (
        lambda: backend.head("nope"),
        lambda: backend.get("nope"),
        lambda: backend.open("nope"),
        lambda: backend.get("nope", byte_range=(5, 1)),
        lambda: backend.get("nope", byte_range=(5, None)),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.key == "nope"
        assert caught.value.backend == backend.name
        assert not isinstance(caught.value, BackendError)


def test_missing_bucket_is_not_a_missing_object(moto_server: EmulatorProcess) -> None:
    ghost = S3Backend(
        f"ghost-{uuid.uuid4().hex[:12]}",
        region="us-east-1",
        endpoint_url=moto_server.endpoint,
        timeout_seconds=5,
        max_connections=2,
    )
    listing = ghost.list()  # lazy: nothing is fetched until iteration starts
    calls: list[Callable[[], object]] = [
        lambda: ghost.head("k"),
        lambda: ghost.get("k"),
        lambda: ghost.put("k", Payload.from_bytes(b"x"), content_type="", metadata={}),
        lambda: ghost.delete("k"),
        lambda: next(listing),
    ]
    for call in calls:
        with pytest.raises(BucketNotFoundError) as caught:
            call()
        assert not is_transient(caught.value)
    ghost.close()


# -- ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        ((0, None), b"0123456789"),
        ((2, 5), b"234"),
        ((7, None), b"789"),
        ((8, 100), b"89"),
        ((3, 3), b""),
        ((6, 2), b""),
        ((10, None), b""),
        ((50, 60), b""),
    ],
)
def test_range_reads_follow_slice_semantics(
    backend: S3Backend, byte_range: tuple[int, int | None], expected: bytes
) -> None:
    backend.put("digits", Payload.from_bytes(b"0123456789"), content_type="", metadata={})
    fetched = backend.get("digits", byte_range=byte_range)
    assert fetched.data == expected == b"0123456789"[slice(*byte_range)]
    assert fetched.info.size == 10


def test_range_reads_of_an_empty_object(backend: S3Backend) -> None:
    backend.put("empty", Payload.from_bytes(b""), content_type="", metadata={})
    assert backend.get("empty").data == b""
    assert backend.get("empty", byte_range=(0, None)).data == b""
    assert backend.get("empty", byte_range=(0, 1)).data == b""
    with backend.open("empty", byte_range=(1, None)) as reader:
        assert reader.read() == b""
        assert reader.info.size == 0


def test_streamed_range_in_chunks(backend: S3Backend) -> None:
    data = bytes(range(256)) * 64
    backend.put("r", Payload.from_bytes(data), content_type="", metadata={})
    with backend.open("r", byte_range=(100, 5000)) as reader:
        chunks = iter(lambda: reader.read(1000), b"")
        assert b"".join(chunks) == data[100:5000]


def test_negative_range_is_a_programming_error(backend: S3Backend) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        backend.get("x", byte_range=(-1, None))


# -- permanent client-side errors -------------------------------------------------------


def test_non_ascii_metadata_is_a_permanent_error(backend: S3Backend) -> None:
    with pytest.raises(BackendRequestError) as caught:
        backend.put("m", Payload.from_bytes(b"x"), content_type="", metadata={"city": "Zürich"})
    assert isinstance(caught.value.__cause__, ParamValidationError)
    assert not is_transient(caught.value)


def test_missing_credentials_say_how_to_provide_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/no-credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/no-config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _backend_at(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PermissionDeniedError, match="AWS_ACCESS_KEY_ID"):
        store.head("k")
    store.close()


def test_import_error_names_the_extra() -> None:
    code = "import sys; sys.modules['boto3'] = None; import failover.backends.s3"
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted below
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "pip install 'failover[aws]'" in result.stderr


# -- network faults ---------------------------------------------------------------------


def test_refused_connection_is_unavailable_and_transient(dummy_credentials: str) -> None:
    store = _backend_at(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendUnavailable) as caught:
        store.get("k")
    assert is_transient(caught.value)
    assert dummy_credentials not in str(caught.value)
    assert dummy_credentials not in repr(caught.value)
    store.close()


@contextmanager
def _http_server(status: int, code: str) -> Iterator[str]:
    """A loopback server answering every request with one S3-style error."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected {code}</Message><RequestId>r1</RequestId></Error>"
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, *, with_body: bool) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_PUT(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "code", "expected", "expected_for_head"),
    [
        (503, "SlowDown", ThrottledError, ThrottledError),
        (500, "InternalError", ServerError, ServerError),
        (403, "AccessDenied", PermissionDeniedError, PermissionDeniedError),
        # Only the error code tells a lost condition from other conflicts, and HEAD
        # answers have no body to carry it.
        (409, "ConditionalRequestConflict", PreconditionFailedError, BackendRequestError),
        (400, "InvalidArgument", BackendRequestError, BackendRequestError),
    ],
)
def test_http_errors_are_mapped(
    dummy_credentials: str,
    status: int,
    code: str,
    expected: type[BackendError],
    expected_for_head: type[BackendError],
) -> None:
    with _http_server(status, code) as endpoint:
        store = _backend_at(endpoint)
        with pytest.raises(expected) as caught:
            store.get("k")
        assert code in str(caught.value)
        assert is_transient(caught.value) == (status >= 500)
        with pytest.raises(expected_for_head):
            # HEAD answers carry no body: the status alone must decide.
            store.head("k")
        with pytest.raises(expected):
            store.put("k", Payload.from_bytes(b"data"), content_type="", metadata={})
        assert dummy_credentials not in str(caught.value)
        store.close()


@pytest.mark.usefixtures("dummy_credentials")
def test_blackholed_endpoint_times_out_within_the_timeout(blackhole: Blackhole) -> None:
    # The kernel completes the handshake for a listening socket even if nobody calls
    # accept(), so the client connects and then waits for an answer that never comes.
    store = _backend_at(blackhole.endpoint, timeout_seconds=0.5)
    calls: list[Callable[[], object]] = [
        lambda: store.head("k"),
        lambda: store.get("k"),
        lambda: store.put("k", Payload.from_bytes(b"x" * MIB), content_type="", metadata={}),
    ]
    for call in calls:
        began = time.monotonic()
        with pytest.raises(BackendTimeout) as caught:
            call()
        elapsed = time.monotonic() - began
        assert is_transient(caught.value)
        # One request that timed out once: botocore did not try again.
        requests = blackhole.requests()
        assert len(requests) == 1, [r.split(b"\r\n", 1)[0] for r in requests]
        # A write must not add botocore's 1 s wait for "100 Continue" on top: that
        # wait happens only for a request that asks for it.
        head = requests[0].split(b"\r\n\r\n", 1)[0].lower()
        assert b"expect: 100-continue" not in head
        # The timeout is what ends the call; without it the call would wait forever.
        # The bound is 20x the 0.5 s timeout, so that only a call the timeout did not
        # end, not a loaded machine, fails it.
        assert elapsed < 10.0, f"a blackholed call took {elapsed:.1f} s"
    store.close()


# -- the moto launcher --------------------------------------------------------------------


@pytest.mark.usefixtures("dummy_credentials")
def test_launcher_starts_creates_resets_and_stops() -> None:
    emulator = _moto.start()
    try:
        assert emulator.kind == "s3"
        assert emulator.running
        assert 0 < emulator.started_seconds < 30
        assert emulator.env["AWS_DEFAULT_REGION"] == "us-east-1"
        url = _moto.create_bucket(emulator, "launcher-test")
        assert url == f"s3://launcher-test?region=us-east-1&endpoint_url={emulator.endpoint}"
        assert _moto.create_bucket(emulator, "launcher-test") == url  # idempotent
        proxied = _moto.create_bucket(emulator, "launcher-test", endpoint="http://127.0.0.1:1")
        assert proxied.endswith("endpoint_url=http://127.0.0.1:1")

        store = S3Backend.from_url(parse_backend_url(url), timeout_seconds=5, max_connections=2)
        store.put("k", Payload.from_bytes(b"x"), content_type="", metadata={})
        _moto.reset(emulator)
        with pytest.raises(BucketNotFoundError):
            store.head("k")
        store.close()
    finally:
        emulator.stop()
    assert not emulator.running
    with pytest.raises(OSError), socket.create_connection((emulator.host, emulator.port), 1):
        pass
