"""Fixtures shared by the integration tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


class Blackhole:
    """An endpoint that accepts connections (via the backlog) and never answers.

    Nobody calls accept() while a client waits, so every connection it opened stays
    queued; :meth:`requests` takes them afterwards, with the bytes each one sent. A test
    counts attempts exactly instead of inferring them from how long a call took.
    """

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self.endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def requests(self) -> list[bytes]:
        """Accept every queued connection and return what each one sent, oldest first."""
        received: list[bytes] = []
        self._listener.setblocking(False)
        try:
            while True:
                try:
                    conn, _ = self._listener.accept()
                except BlockingIOError:
                    return received
                with conn:
                    conn.setblocking(False)
                    chunks: list[bytes] = []
                    while True:
                        try:
                            chunk = conn.recv(65536)
                        except (BlockingIOError, ConnectionError):
                            break
                        if not chunk:
                            break
                        chunks.append(chunk)
                    received.append(b"".join(chunks))
        finally:
            self._listener.setblocking(True)


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    """A listening socket on 127.0.0.1 that never answers (see :class:`Blackhole`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield Blackhole(sock)
