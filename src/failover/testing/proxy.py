"""A small TCP fault proxy for rehearsing network outages against real emulators.

:class:`FaultProxy` listens on ``127.0.0.1`` and forwards every connection to one
upstream (an emulator, say). Its mode can be switched while clients are connected:

* ``pass_through``: forward bytes unchanged both ways.
* ``latency``: delay each response (the first chunk after the client sent data), or
  every chunk with ``per_chunk=True``.
* ``slow_drip``: forward responses a few bytes at a time with a pause before each piece
  (a response that never stalls long enough for a socket read timeout to fire).
* ``reset``: accept, then reset the connection (``SO_LINGER`` 0, the client sees RST).
* ``blackhole``: accept, read and discard, never answer.
* ``refuse``: stop listening, so connects are refused; the same port is listened on
  again when the mode changes.
* ``truncate``: forward at most ``after_bytes`` of each response (headers included),
  then close the connection.

A new mode applies to connections that are already open, not only to new ones: azurite
and fake-gcs-server keep connections alive, so a fault that waited for new connections
would silently miss most traffic. :meth:`FaultProxy.set_mode` returns once every open
connection has taken the new mode (switching to ``reset`` or ``refuse`` resets them,
``blackhole`` stops forwarding on them). A connection that was blackholed has lost
requests mid-stream, so it is closed when the blackhole ends.

Example:
    >>> with FaultProxy("127.0.0.1", emulator.port) as proxy:  # doctest: +SKIP
    ...     client = make_client(endpoint_url=proxy.endpoint)
    ...     proxy.blackhole()
    ...     ...  # calls through ``client`` now time out
    ...     proxy.pass_through()
"""

from __future__ import annotations

import contextlib
import itertools
import random
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, get_args

__all__ = ["THREAD_NAME_PREFIX", "FaultProxy", "ProxyMode", "ProxyStats"]

#: Every thread a proxy starts has a name beginning with this (for leak checks).
THREAD_NAME_PREFIX = "failover-fault-proxy"

ProxyMode = Literal[
    "pass_through", "latency", "slow_drip", "reset", "blackhole", "refuse", "truncate"
]

_MODES: frozenset[str] = frozenset(get_args(ProxyMode))
_PARAMS: dict[str, frozenset[str]] = {
    "latency": frozenset({"seconds", "jitter_seconds", "per_chunk"}),
    "slow_drip": frozenset({"chunk_bytes", "interval_seconds"}),
    "truncate": frozenset({"after_bytes"}),
}
_REQUIRED: dict[str, frozenset[str]] = {
    "latency": frozenset({"seconds"}),
    "truncate": frozenset({"after_bytes"}),
}

# How often idle worker threads look at the mode and the stop flag; it bounds how long
# set_mode() and stop() wait for them.
_POLL_SECONDS = 0.02
_RECV_BYTES = 64 * 1024
_BIND_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """Counters of a :class:`FaultProxy` since it started.

    Attributes:
        connections_accepted: client connections accepted (including ones reset at once).
        active_connections: connections currently open.
        bytes_to_upstream: bytes forwarded from clients to the upstream.
        bytes_to_client: bytes forwarded from the upstream to clients.
    """

    connections_accepted: int
    active_connections: int
    bytes_to_upstream: int
    bytes_to_client: int


@dataclass(frozen=True, slots=True)
class _ModeSpec:
    name: ProxyMode = "pass_through"
    seconds: float = 0.0
    jitter_seconds: float = 0.0
    per_chunk: bool = False
    chunk_bytes: int = 1
    interval_seconds: float = 0.1
    after_bytes: int = 0


def _make_spec(mode: str, params: dict[str, object]) -> _ModeSpec:
    if mode not in _MODES:
        raise ValueError(f"unknown proxy mode {mode!r}; use one of {sorted(_MODES)}")
    allowed = _PARAMS.get(mode, frozenset())
    unknown = sorted(set(params) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"mode {mode!r} got unknown parameter(s) {unknown}; accepts: {accepted}")
    missing = sorted(_REQUIRED.get(mode, frozenset()) - set(params))
    if missing:
        raise ValueError(f"mode {mode!r} needs parameter(s) {missing}")
    spec = _ModeSpec(name=mode, **params)  # type: ignore[arg-type]
    for field_name in ("seconds", "jitter_seconds", "interval_seconds", "after_bytes"):
        if getattr(spec, field_name) < 0:
            raise ValueError(f"{field_name} must not be negative")
    if spec.chunk_bytes < 1:
        raise ValueError("chunk_bytes must be at least 1")
    return spec


class _ClosedError(Exception):
    """Internal: the connection is finished (closed by a peer, a fault or stop())."""


def _no_delay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reset_socket(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """A threaded TCP proxy on 127.0.0.1 whose faults can be switched at run time.

    Args:
        upstream_host: host of the server to forward to.
        upstream_port: its port.
        listen_port: port to listen on (default: a free port chosen at :meth:`start`).
        connect_timeout_seconds: how long to wait when connecting to the upstream; a
            client whose upstream connection fails is reset.
        ack_timeout_seconds: how long :meth:`set_mode` waits for open connections to
            take the new mode.
        seed: seed of the latency jitter.

    The proxy starts in ``pass_through`` mode. Use it as a context manager, or call
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_port: int | None = None,
        connect_timeout_seconds: float = 5.0,
        ack_timeout_seconds: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._host = "127.0.0.1"
        self._port = listen_port or 0
        self._connect_timeout = connect_timeout_seconds
        self._ack_timeout = ack_timeout_seconds
        self._rng = random.Random(seed)  # noqa: S311 - latency jitter, not cryptography
        self._cond = threading.Condition()
        self._spec = _ModeSpec()
        self._generation = 0
        # Worker (listener or connection) -> the mode generation it has taken.
        self._seen: dict[object, int] = {}
        self._threads: list[threading.Thread] = []
        self._conn_ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._listener_thread: threading.Thread | None = None
        self._listener_error: OSError | None = None
        self._started = False
        self._stopping = False
        self._accepted = 0
        self._active = 0
        self._to_upstream = 0
        self._to_client = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the listening socket and start accepting connections.

        Returns:
            The proxy itself.

        Raises:
            RuntimeError: if the proxy was already started.
            OSError: if the port cannot be bound.
        """
        with self._cond:
            if self._started:
                raise RuntimeError("FaultProxy can be started only once")
            self._started = True
        self._listener = self._bind()
        self._port = self._listener.getsockname()[1]
        thread = threading.Thread(
            target=self._listen_loop,
            name=f"{THREAD_NAME_PREFIX}:{self._port}:listener",
            daemon=True,
        )
        with self._cond:
            self._seen[_LISTENER] = self._generation
        self._listener_thread = thread
        thread.start()
        return self

    def stop(self, *, timeout_seconds: float = 5.0) -> None:
        """Close the listening socket and every connection, and join every thread.

        Idempotent.

        Args:
            timeout_seconds: the longest to wait for all threads together.

        Raises:
            RuntimeError: if a proxy thread is still alive after ``timeout_seconds``.
        """
        with self._cond:
            if not self._started or self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_seconds
        if self._listener_thread is not None:
            self._listener_thread.join(timeout_seconds)
        with self._cond:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in [self._listener_thread, *threads] if t and t.is_alive()]
        if alive:
            raise RuntimeError(f"fault proxy threads did not stop: {alive}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where and what --------------------------------------------------------------

    @property
    def host(self) -> str:
        """The listening address (always ``127.0.0.1``)."""
        return self._host

    @property
    def port(self) -> int:
        """The listening port (the same port across ``refuse``)."""
        if not self._port:
            raise RuntimeError("FaultProxy has no port before start()")
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, to give to a client as its endpoint."""
        return f"http://{self._host}:{self.port}"

    @property
    def mode(self) -> ProxyMode:
        """The current mode."""
        with self._cond:
            return self._spec.name

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of the proxy's counters."""
        with self._cond:
            return ProxyStats(
                connections_accepted=self._accepted,
                active_connections=self._active,
                bytes_to_upstream=self._to_upstream,
                bytes_to_client=self._to_client,
            )

    def __repr__(self) -> str:
        upstream = f"{self._upstream[0]}:{self._upstream[1]}"
        return f"FaultProxy({self._host}:{self._port} -> {upstream}, mode={self._spec.name})"

    # -- modes -----------------------------------------------------------------------

    def set_mode(self, mode: ProxyMode, **params: object) -> None:
        """Switch to ``mode`` for new and already-open connections.

        Returns once the listener and every open connection have taken the new mode
        (at most ``ack_timeout_seconds``): for ``refuse`` the port is then closed, for
        ``reset`` open connections have been reset, and leaving ``refuse`` the port is
        listened on again.

        Args:
            mode: one of ``pass_through``, ``latency``, ``slow_drip``, ``reset``,
                ``blackhole``, ``refuse``, ``truncate``.
            **params: the mode's parameters (see the method of the same name).

        Raises:
            ValueError: for an unknown mode, or missing, unknown or negative parameters.
            OSError: if the port could not be listened on again after ``refuse``.
        """
        spec = _make_spec(mode, dict(params))
        with self._cond:
            self._generation += 1
            generation = self._generation
            self._spec = spec
            self._cond.notify_all()
            if self._started and not self._stopping:
                self._cond.wait_for(
                    lambda: all(seen >= generation for seen in self._seen.values()),
                    timeout=self._ack_timeout,
                )
            error = self._listener_error
        if error is not None:
            raise error

    def pass_through(self) -> None:
        """Forward bytes unchanged both ways."""
        self.set_mode("pass_through")

    def latency(
        self, seconds: float, jitter_seconds: float = 0.0, *, per_chunk: bool = False
    ) -> None:
        """Delay responses.

        Args:
            seconds: delay before the first chunk of each response (the first chunk
                the upstream sends after the client sent data).
            jitter_seconds: add a uniformly random extra delay of up to this much.
            per_chunk: delay every chunk forwarded to the client instead.
        """
        self.set_mode(
            "latency", seconds=seconds, jitter_seconds=jitter_seconds, per_chunk=per_chunk
        )

    def slow_drip(self, chunk_bytes: int = 1, interval_seconds: float = 0.1) -> None:
        """Forward responses ``chunk_bytes`` at a time, pausing before each piece.

        Args:
            chunk_bytes: size of each piece sent to the client.
            interval_seconds: pause before each piece.
        """
        self.set_mode("slow_drip", chunk_bytes=chunk_bytes, interval_seconds=interval_seconds)

    def reset(self) -> None:
        """Reset open connections, and accept then reset new ones."""
        self.set_mode("reset")

    def blackhole(self) -> None:
        """Accept and read, but never answer or forward anything."""
        self.set_mode("blackhole")

    def refuse(self) -> None:
        """Stop listening so that connects are refused; open connections are reset."""
        self.set_mode("refuse")

    def truncate(self, after_bytes: int) -> None:
        """Forward at most ``after_bytes`` of each response, then close the connection.

        Args:
            after_bytes: bytes of the response (status line and headers included) that
                reach the client; the budget starts again with each request.
        """
        self.set_mode("truncate", after_bytes=after_bytes)

    # -- internals shared with the workers -------------------------------------------

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(128)
            sock.settimeout(_POLL_SECONDS)
        except BaseException:
            sock.close()
            raise
        return sock

    def _rebind(self) -> socket.socket:
        # Leaving "refuse": the port is ours again unless someone grabbed it meanwhile.
        deadline = time.monotonic() + _BIND_RETRY_SECONDS
        while True:
            try:
                return self._bind()
            except OSError:
                if time.monotonic() >= deadline or self._is_stopping():
                    raise
            with self._cond:
                self._cond.wait(_POLL_SECONDS)

    def _is_stopping(self) -> bool:
        with self._cond:
            return self._stopping

    def _current(self) -> tuple[_ModeSpec, int]:
        with self._cond:
            if self._stopping:
                raise _ClosedError
            return self._spec, self._generation

    def _ack(self, worker: object, generation: int) -> None:
        with self._cond:
            self._seen[worker] = generation
            self._cond.notify_all()

    def _retire(self, worker: object) -> None:
        with self._cond:
            self._seen.pop(worker, None)
            self._cond.notify_all()

    def _wait_for_change(self, generation: int, seconds: float) -> bool:
        """Wait up to ``seconds``; True if the mode changed or the proxy is stopping."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stopping or self._generation != generation, timeout=seconds
            )

    def _delay_seconds(self, spec: _ModeSpec) -> float:
        with self._cond:
            return spec.seconds + self._rng.uniform(0.0, spec.jitter_seconds)

    def _count(self, *, to_upstream: int = 0, to_client: int = 0) -> None:
        with self._cond:
            self._to_upstream += to_upstream
            self._to_client += to_client

    def _listen_loop(self) -> None:
        sock = self._listener
        try:
            while True:
                spec, generation = self._current()
                if spec.name == "refuse":
                    if sock is not None:
                        sock.close()
                        sock = None
                    self._ack(_LISTENER, generation)
                    self._wait_for_change(generation, 1.0)
                    continue
                if sock is None:
                    sock = self._rebind()
                self._ack(_LISTENER, generation)
                try:
                    client, _ = sock.accept()
                except (TimeoutError, ConnectionAbortedError):
                    continue
                self._admit(client)
        except _ClosedError:
            pass
        except OSError as exc:
            with self._cond:
                self._listener_error = exc
        finally:
            if sock is not None:
                sock.close()
            self._retire(_LISTENER)

    def _admit(self, client: socket.socket) -> None:
        with self._cond:
            self._accepted += 1
            spec, generation = self._spec, self._generation
            if self._stopping or spec.name in ("reset", "refuse"):
                _reset_socket(client)
                return
            conn = _Connection(self, client)
            thread = threading.Thread(
                target=conn.run,
                name=f"{THREAD_NAME_PREFIX}:{self._port}:conn-{next(self._conn_ids)}",
                daemon=True,
            )
            # Joined by stop(); finished threads are dropped here, not when they end,
            # so that stop() still joins a thread that is on its way out.
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            self._seen[conn] = generation
            self._active += 1
        thread.start()

    def _connection_closed(self, conn: _Connection) -> None:
        with self._cond:
            self._active -= 1
            self._seen.pop(conn, None)
            self._cond.notify_all()


#: Key of the listener thread in ``FaultProxy._seen``.
_LISTENER = object()


class _Connection:
    """One client connection and its upstream connection, pumped by one thread."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._generation = -1
        # Set while in, or after, a blackhole: requests were dropped, so the stream
        # cannot be resumed and the connection is closed when the blackhole ends.
        self._tainted = False
        # True from the moment the client sends data until the response starts.
        self._awaiting_response = False
        self._budget = 0

    def run(self) -> None:
        try:
            self._serve()
        except (_ClosedError, OSError):
            pass
        finally:
            self._selector.close()
            if self._upstream is not None:
                self._upstream.close()
            self._client.close()
            self._proxy._connection_closed(self)

    def _serve(self) -> None:
        self._client.settimeout(_POLL_SECONDS)
        # Forward small writes at once: Nagle's algorithm would hold the second piece
        # of a request or response until the peer's delayed ACK (~40 ms per call).
        _no_delay(self._client)
        self._sync()
        if not self._tainted:
            try:
                upstream = socket.create_connection(
                    self._proxy._upstream, timeout=self._proxy._connect_timeout
                )
            except OSError:
                _reset_socket(self._client)
                raise
            upstream.settimeout(_POLL_SECONDS)
            _no_delay(upstream)
            self._upstream = upstream
            self._selector.register(upstream, selectors.EVENT_READ, "upstream")
        self._selector.register(self._client, selectors.EVENT_READ, "client")
        while True:
            self._sync()
            for key, _ in self._selector.select(_POLL_SECONDS):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(_RECV_BYTES)
                except (TimeoutError, BlockingIOError):
                    continue
                if key.data == "client":
                    self._from_client(data)
                else:
                    self._from_upstream(data)

    def _sync(self) -> _ModeSpec:
        """Take the current mode, applying a change to this connection; ack it."""
        spec, generation = self._proxy._current()
        if generation != self._generation:
            self._enter(spec)
            self._generation = generation
            self._proxy._ack(self, generation)
        return spec

    def _enter(self, spec: _ModeSpec) -> None:
        if spec.name in ("reset", "refuse"):
            _reset_socket(self._client)
            raise _ClosedError
        if spec.name == "blackhole":
            self._tainted = True
            return
        if self._tainted:
            raise _ClosedError
        if spec.name == "truncate":
            self._budget = spec.after_bytes

    def _from_client(self, data: bytes) -> None:
        if not data:
            raise _ClosedError
        if self._tainted or self._upstream is None:
            return
        spec = self._sync()
        self._awaiting_response = True
        self._budget = spec.after_bytes
        self._send(self._upstream, memoryview(data), to_client=False)

    def _from_upstream(self, data: bytes) -> None:
        if not data:
            if self._tainted and self._upstream is not None:
                self._selector.unregister(self._upstream)
                self._upstream.close()
                self._upstream = None
                return
            raise _ClosedError
        if not self._tainted:
            self._to_client(memoryview(data))

    def _to_client(self, view: memoryview) -> None:
        while view:
            spec = self._sync()
            if self._tainted:
                return
            if spec.name == "latency" and (self._awaiting_response or spec.per_chunk):
                delay = self._proxy._delay_seconds(spec)
                if self._proxy._wait_for_change(self._generation, delay):
                    continue
            elif spec.name == "slow_drip":
                if self._proxy._wait_for_change(self._generation, spec.interval_seconds):
                    continue
                piece = view[: spec.chunk_bytes]
                self._send(self._client, piece, to_client=True)
                view = view[len(piece) :]
                continue
            elif spec.name == "truncate":
                piece = view[: self._budget]
                self._send(self._client, piece, to_client=True)
                self._budget -= len(piece)
                if len(piece) < len(view):
                    raise _ClosedError
                return
            self._awaiting_response = False
            self._send(self._client, view, to_client=True)
            return

    def _send(self, sock: socket.socket, view: memoryview, *, to_client: bool) -> None:
        # Bounded sends: a peer that stops reading must not keep stop() or set_mode()
        # waiting forever.
        while view:
            try:
                sent = sock.send(view)
            except TimeoutError:
                self._sync()
                if self._tainted:
                    return
                continue
            view = view[sent:]
            if to_client:
                self._proxy._count(to_client=sent)
            else:
                self._proxy._count(to_upstream=sent)
