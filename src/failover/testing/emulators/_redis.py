"""Launcher for a throwaway redis-server, for the shared-breaker tests.

The server is Debian's ``redis-server`` package (``apt-get install redis-server``; the
project's ``.ci/run`` and ``nox -s tests`` install it where it is missing), found on
``PATH`` or at ``FAILOVER_REDIS_SERVER``. It listens on 127.0.0.1 only, keeps nothing on
disk (``--save '' --appendonly no``) and is stopped with its process group.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from urllib.parse import quote

from failover.testing.emulators._process import (
    EmulatorError,
    EmulatorProcess,
    free_port,
    start_process,
    wait_until,
)

__all__ = ["SERVER_VARIABLE", "binary_path", "ping", "redis_url", "start"]

#: An explicit redis-server binary (default: the one on PATH).
SERVER_VARIABLE = "FAILOVER_REDIS_SERVER"

_INSTALL_HINT = (
    "install Debian's redis-server package (`apt-get install redis-server`, as "
    "`bash .ci/run` does), or set FAILOVER_REDIS_SERVER to a redis-server binary"
)


def binary_path() -> str:
    """The redis-server binary to run.

    Raises:
        EmulatorError: there is none.
    """
    explicit = os.environ.get(SERVER_VARIABLE, "").strip()
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmulatorError(f"{SERVER_VARIABLE}={explicit} is not an executable")
        return explicit
    found = shutil.which("redis-server")
    if found is None:
        raise EmulatorError(f"redis-server is not installed: {_INSTALL_HINT}")
    return found


def start(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    password: str | None = None,
    timeout_seconds: float = 15.0,
) -> EmulatorProcess:
    """Start redis-server without persistence and wait until it answers PING.

    Args:
        host: address to listen on (keep it loopback).
        port: port to listen on; a free one when ``None``.
        password: require this password (``requirepass``).
        timeout_seconds: how long to wait for the server to answer.

    Returns:
        The running server (``kind="redis"``); :func:`redis_url` gives its URL.

    Raises:
        EmulatorError: redis-server is missing, exited, or did not answer in time.
    """
    binary = binary_path()
    port = port or free_port(host)
    workdir = tempfile.mkdtemp(prefix="failover-redis-")
    argv = [
        binary,
        "--bind",
        host,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir,
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    if password is not None:
        argv += ["--requirepass", password]
    emulator = EmulatorProcess(
        kind="redis",
        host=host,
        port=port,
        process=None,
        _stop_hook=lambda: shutil.rmtree(workdir, ignore_errors=True),
    )
    began = time.monotonic()
    try:
        emulator.process = start_process(argv)
    except OSError as exc:
        emulator.stop()
        raise EmulatorError(f"cannot run redis-server ({binary}): {exc}") from exc
    try:
        wait_until(
            lambda: ping(host, port, password=password),
            timeout_seconds=timeout_seconds,
            what=f"redis-server on {host}:{port}",
            process=emulator.process,
        )
    except BaseException:
        emulator.stop()
        raise
    emulator.started_seconds = time.monotonic() - began
    return emulator


def ping(
    host: str, port: int, *, password: str | None = None, timeout_seconds: float = 1.0
) -> bool:
    """True if a Redis server at ``host:port`` answers PING (after AUTH, with a password).

    Speaks the protocol directly, so that it needs no client library.
    """
    commands = [["PING"]]
    if password is not None:
        commands.insert(0, ["AUTH", password])
    request = b"".join(_command(*parts) for parts in commands)
    with socket.create_connection((host, port), timeout=timeout_seconds) as sock:
        sock.sendall(request)
        answer = b""
        while b"PONG" not in answer and answer.count(b"\r\n") < len(commands):
            chunk = sock.recv(1024)
            if not chunk:
                break
            answer += chunk
    return b"+PONG" in answer


def redis_url(
    emulator: EmulatorProcess,
    *,
    db: int = 0,
    password: str | None = None,
    host: str | None = None,
    port: int | None = None,
    **params: str | float,
) -> str:
    """A ``redis://`` URL for ``emulator`` (or for a proxy in front of it).

    Args:
        emulator: a started redis-server.
        db: the database number.
        password: put this password in the URL.
        host: use this host instead of the server's (a proxy's).
        port: use this port instead of the server's (a proxy's).
        **params: query parameters (``namespace=``, ``retry_seconds=``, ...).
    """
    auth = f":{quote(password, safe='')}@" if password is not None else ""
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"redis://{auth}{host or emulator.host}:{port or emulator.port}/{db}" + (
        f"?{query}" if query else ""
    )


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return f"*{len(encoded)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in encoded
    )
