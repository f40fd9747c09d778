"""FaultProxy in front of a keep-alive HTTP/1.1 server and in front of moto's S3 server."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from failover.testing.emulators import EmulatorProcess
from failover.testing.proxy import THREAD_NAME_PREFIX, FaultProxy

pytestmark = pytest.mark.integration

# Errors a client sees on a connection the proxy reset (before or after sending).
RESET_ERRORS = (ConnectionResetError, BrokenPipeError)


# -- a tiny keep-alive HTTP/1.1 server ---------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep connections alive, like azurite and fake-gcs
    timeout = 10

    def do_GET(self) -> None:
        # /bytes/N answers N bytes; anything else two.
        size = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/bytes/") else 2
        self._answer(b"x" * size)

    def do_PUT(self) -> None:
        received = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(str(len(received)).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the proxy cuts connections on purpose


@pytest.fixture(autouse=True)
def no_leaked_proxy_threads() -> Iterator[None]:
    yield
    assert proxy_threads() == []


@pytest.fixture
def http_server() -> Iterator[tuple[str, int]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="test-http-server",
        daemon=True,
    )
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def proxy(http_server: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(*http_server) as fault_proxy:
        yield fault_proxy


def connect(proxy: FaultProxy, *, timeout: float = 5.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)


def get(conn: http.client.HTTPConnection, path: str = "/") -> bytes:
    conn.request("GET", path)
    with conn.getresponse() as response:
        assert response.status == 200
        return response.read()


def wait_for(predicate: Callable[[], bool], *, timeout_seconds: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or the (generous) time runs out."""
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def proxy_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]


# -- each mode on new connections --------------------------------------------------------


def test_pass_through_forwards_both_ways_and_counts(proxy: FaultProxy) -> None:
    assert proxy.endpoint == f"http://127.0.0.1:{proxy.port}"
    assert proxy.mode == "pass_through"
    conn = connect(proxy)
    try:
        assert get(conn, "/bytes/1000") == b"x" * 1000
        conn.request("PUT", "/upload", body=b"y" * 200_000)
        with conn.getresponse() as response:
            assert response.read() == b"200000"
        assert get(conn, "/bytes/5") == b"xxxxx"
    finally:
        conn.close()
    stats = proxy.stats
    assert stats.connections_accepted == 1  # one keep-alive connection for three requests
    assert stats.bytes_to_upstream > 200_000
    assert stats.bytes_to_client > 1005
    assert wait_for(lambda: proxy.stats.active_connections == 0)


def test_latency_delays_every_response(proxy: FaultProxy) -> None:
    proxy.latency(0.5)
    conn = connect(proxy, timeout=30)
    try:
        started = time.monotonic()
        get(conn, "/bytes/2000000")  # at least 31 chunks of <= 64 KiB, delayed once
        get(conn)
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert elapsed >= 2 * 0.5
    # Once per response, not per chunk: that would take 32 x 0.5 s at least. The bound
    # sits far from both, so local work slowed down by a loaded machine cannot reach it.
    assert elapsed < 10.0, f"two responses took {elapsed:.1f} s"


def test_latency_per_chunk_delays_every_chunk(proxy: FaultProxy) -> None:
    proxy.latency(0.05, per_chunk=True)
    conn = connect(proxy)
    try:
        started = time.monotonic()
        assert len(get(conn, "/bytes/300000")) == 300_000  # at least 5 chunks of <= 64 KiB
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert elapsed >= 5 * 0.05


def test_latency_with_jitter_stays_within_bounds(proxy: FaultProxy) -> None:
    proxy.latency(0.1, jitter_seconds=0.1)
    conn = connect(proxy, timeout=30)
    try:
        started = time.monotonic()
        get(conn)
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert elapsed >= 0.1
    # The delay is at most 0.2 s; the bound is 25x that, so that only an unbounded
    # jitter, not a loaded machine, fails it.
    assert elapsed < 5.0, f"a response with 0.1 + 0.1 s jitter took {elapsed:.1f} s"


def test_blackhole_makes_a_client_time_out(proxy: FaultProxy) -> None:
    proxy.blackhole()
    conn = connect(proxy, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            get(conn)
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5
    # The client's 0.5 s timeout ends the call; the bound (20x) only catches a call that
    # it did not end, never a loaded machine.
    assert elapsed < 10.0, f"a blackholed request took {elapsed:.1f} s"
    assert proxy.stats.bytes_to_upstream == 0

    proxy.pass_through()
    conn = connect(proxy)
    try:
        assert get(conn) == b"xx"
    finally:
        conn.close()


def test_reset_resets_new_connections(proxy: FaultProxy) -> None:
    proxy.reset()
    conn = connect(proxy)
    try:
        with pytest.raises(RESET_ERRORS):
            get(conn)
    finally:
        conn.close()
    assert proxy.stats.connections_accepted == 1

    proxy.pass_through()
    conn = connect(proxy)
    try:
        assert get(conn) == b"xx"
    finally:
        conn.close()


def test_refuse_then_pass_through_listens_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    conn = connect(proxy)
    try:
        with pytest.raises(ConnectionRefusedError):
            get(conn)
    finally:
        conn.close()

    proxy.pass_through()
    assert proxy.port == port
    conn = connect(proxy)
    try:
        assert get(conn) == b"xx"
    finally:
        conn.close()


def test_truncate_cuts_the_response(proxy: FaultProxy) -> None:
    proxy.truncate(after_bytes=500)  # headers fit, the body does not
    conn = connect(proxy)
    try:
        conn.request("GET", "/bytes/10000")
        with conn.getresponse() as response, pytest.raises(http.client.IncompleteRead) as info:
            response.read()
    finally:
        conn.close()
    assert 0 < len(info.value.partial) < 500


def test_truncate_to_nothing_closes_before_the_status_line(proxy: FaultProxy) -> None:
    proxy.truncate(after_bytes=0)
    conn = connect(proxy)
    try:
        with pytest.raises(http.client.RemoteDisconnected):
            get(conn)
    finally:
        conn.close()


def test_slow_drip_defeats_a_per_socket_timeout(proxy: FaultProxy) -> None:
    proxy.slow_drip(chunk_bytes=50, interval_seconds=0.05)
    conn = connect(proxy, timeout=0.3)  # every piece arrives well within the timeout
    try:
        started = time.monotonic()
        assert get(conn, "/bytes/500") == b"x" * 500
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    assert elapsed >= 0.5  # > 10 pieces, 0.05 s apart


# -- a new mode applies to connections already open --------------------------------------


def open_keep_alive(proxy: FaultProxy, *, timeout: float = 5.0) -> http.client.HTTPConnection:
    conn = connect(proxy, timeout=timeout)
    assert get(conn) == b"xx"
    return conn


def test_reset_applies_to_an_open_connection(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy)
    try:
        proxy.reset()
        with pytest.raises(RESET_ERRORS):
            get(conn)
    finally:
        conn.close()


def test_refuse_applies_to_an_open_connection(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy)
    try:
        proxy.refuse()
        with pytest.raises(RESET_ERRORS):
            get(conn)
    finally:
        conn.close()


def test_blackhole_applies_to_an_open_connection(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy, timeout=0.5)
    try:
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            get(conn)
        # The client's 0.5 s timeout ends the call; the bound (20x) only catches a call
        # that it did not end, never a loaded machine.
        assert time.monotonic() - started < 10.0
    finally:
        conn.close()
    assert proxy.stats.connections_accepted == 1


def test_a_blackholed_connection_is_closed_when_the_blackhole_ends(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy)
    try:
        proxy.blackhole()
        proxy.pass_through()
        # The proxy closed it (its stream lost requests); http.client notices at once.
        with pytest.raises((http.client.RemoteDisconnected, *RESET_ERRORS)):
            get(conn)
    finally:
        conn.close()


def test_latency_applies_to_an_open_connection(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy, timeout=60)
    try:
        proxy.latency(0.3)
        started = time.monotonic()
        assert get(conn) == b"xx"
        assert time.monotonic() - started >= 0.3
        # And taking it away applies too: a 30 s latency, lifted before the request, so
        # that "not delayed" is told from "delayed" with a margin no load can eat.
        proxy.latency(30.0)
        proxy.pass_through()
        started = time.monotonic()
        assert get(conn) == b"xx"
        elapsed = time.monotonic() - started
        assert elapsed < 10.0, f"the lifted 30 s latency still delayed a response ({elapsed:.1f} s)"
    finally:
        conn.close()
    assert proxy.stats.connections_accepted == 1


def test_truncate_applies_to_an_open_connection(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy)
    try:
        proxy.truncate(after_bytes=300)
        conn.request("GET", "/bytes/10000")
        with conn.getresponse() as response, pytest.raises(http.client.IncompleteRead):
            response.read()
    finally:
        conn.close()
    assert proxy.stats.connections_accepted == 1


def test_mode_change_interrupts_a_pending_latency(proxy: FaultProxy) -> None:
    conn = open_keep_alive(proxy)
    try:
        proxy.latency(30.0)
        conn.request("GET", "/")
        assert wait_for(lambda: proxy.stats.bytes_to_upstream > 0)
        started = time.monotonic()
        proxy.pass_through()
        with conn.getresponse() as response:
            assert response.read() == b"xx"
        # Far below the 30 s latency it interrupted: a loaded machine cannot close the gap.
        assert time.monotonic() - started < 10.0
    finally:
        conn.close()


# -- lifecycle and validation ------------------------------------------------------------


def test_stop_closes_everything_and_leaves_no_threads(http_server: tuple[str, int]) -> None:
    proxy = FaultProxy(*http_server).start()
    idle = open_keep_alive(proxy)
    pending = open_keep_alive(proxy)
    holes = [connect(proxy, timeout=5) for _ in range(2)]
    try:
        proxy.latency(30.0)
        pending.request("GET", "/")  # its response is held back by the proxy
        proxy.blackhole()
        for conn in holes:
            conn.request("GET", "/")  # swallowed
        assert wait_for(lambda: proxy.stats.connections_accepted == 4)
        assert proxy_threads()
        started = time.monotonic()
        proxy.stop()
        # stop() does not wait out the 30 s latency nor the blackhole: far below the
        # former, so a loaded machine cannot close the gap.
        assert time.monotonic() - started < 10.0
        assert proxy_threads() == []
        proxy.stop()  # idempotent
    finally:
        for conn in [idle, pending, *holes]:
            conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()


def test_a_proxy_starts_once_and_can_listen_on_a_given_port(
    http_server: tuple[str, int],
) -> None:
    with FaultProxy(*http_server) as first:
        port = first.port
    with FaultProxy(*http_server, listen_port=port) as second:
        assert second.port == port
        conn = connect(second)
        try:
            assert get(conn) == b"xx"
        finally:
            conn.close()
        with pytest.raises(RuntimeError):
            second.start()
    assert proxy_threads() == []


def test_an_unreachable_upstream_resets_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]  # bound but not listening: refuses
        with FaultProxy("127.0.0.1", dead_port) as proxy:
            conn = connect(proxy)
            try:
                with pytest.raises(RESET_ERRORS):
                    get(conn)
            finally:
                conn.close()


@pytest.mark.parametrize(
    ("mode", "params", "message"),
    [
        ("jitter", {}, "unknown proxy mode"),
        ("latency", {}, "needs parameter"),
        ("latency", {"seconds": -1.0}, "must not be negative"),
        ("truncate", {"after_bytes": 10, "seconds": 1}, "unknown parameter"),
        ("reset", {"seconds": 1}, "unknown parameter"),
        ("slow_drip", {"chunk_bytes": 0}, "at least 1"),
    ],
)
def test_invalid_modes_are_rejected(
    proxy: FaultProxy, mode: Any, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        proxy.set_mode(mode, **params)
    assert proxy.mode == "pass_through"


def test_port_is_unknown_before_start(http_server: tuple[str, int]) -> None:
    proxy = FaultProxy(*http_server)
    with pytest.raises(RuntimeError):
        _ = proxy.port
    proxy.stop()  # stopping a proxy that never started is harmless


# -- in front of moto's S3 server, with boto3 --------------------------------------------


@pytest.fixture
def s3_proxy(moto_server: EmulatorProcess) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.host, moto_server.port) as fault_proxy:
        yield fault_proxy


def s3_client(endpoint: str, *, read_timeout: float = 5.0) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            connect_timeout=1,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1},
        ),
    )


@pytest.fixture
def bucket(moto_server: EmulatorProcess) -> str:
    name = f"proxy-{uuid.uuid4().hex[:12]}"
    direct = s3_client(moto_server.endpoint)
    direct.create_bucket(Bucket=name)
    direct.put_object(Bucket=name, Key="big", Body=b"b" * 100_000)
    direct.close()
    return name


def test_s3_pass_through_and_latency(s3_proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(s3_proxy.endpoint)
    try:
        client.put_object(Bucket=bucket, Key="k", Body=b"v")
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
        s3_proxy.latency(0.3)
        started = time.monotonic()
        assert client.head_object(Bucket=bucket, Key="k")["ContentLength"] == 1
        assert time.monotonic() - started >= 0.3
    finally:
        client.close()
    assert s3_proxy.stats.connections_accepted >= 1  # moto closes after every answer


def test_s3_blackhole_times_out_within_the_read_timeout(s3_proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(s3_proxy.endpoint, read_timeout=0.5)
    try:
        s3_proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            client.head_object(Bucket=bucket, Key="big")
        # The 0.5 s read timeout ends the call; the bound (20x) only catches a call that
        # it did not end, never a loaded machine.
        assert time.monotonic() - started < 10.0
    finally:
        client.close()


def test_s3_reset_is_a_connection_error(s3_proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(s3_proxy.endpoint)
    try:
        s3_proxy.reset()
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            client.head_object(Bucket=bucket, Key="big")
    finally:
        client.close()


def test_s3_refuse_then_recover(s3_proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(s3_proxy.endpoint)
    try:
        s3_proxy.refuse()
        with pytest.raises(EndpointConnectionError):
            client.head_object(Bucket=bucket, Key="big")
        s3_proxy.pass_through()
        assert client.head_object(Bucket=bucket, Key="big")["ContentLength"] == 100_000
    finally:
        client.close()


def test_s3_truncated_body_is_an_incomplete_read(s3_proxy: FaultProxy, bucket: str) -> None:
    client = s3_client(s3_proxy.endpoint)
    try:
        s3_proxy.truncate(after_bytes=2000)
        body = client.get_object(Bucket=bucket, Key="big")["Body"]
        with pytest.raises((IncompleteReadError, ResponseStreamingError)):
            body.read()
    finally:
        client.close()
