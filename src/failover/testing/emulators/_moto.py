"""Launcher for moto's S3 server (``pip install "moto[s3,server]"``).

moto runs as a child process (``python -m moto.server``) with the interpreter running
the tests, so the server comes from the same virtual environment as the client. State is
in memory; :func:`reset` wipes it. moto does not check credentials, but boto3 needs some,
so :attr:`EmulatorProcess.env` carries dummy ones.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import quote

from failover.testing.emulators._process import (
    EmulatorError,
    EmulatorProcess,
    free_port,
    start_process,
    wait_until,
)

__all__ = ["create_bucket", "reset", "start"]

#: Region of every bucket the launcher creates (moto's default, needs no location constraint).
REGION = "us-east-1"

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
#: Attempts when the port is ours to pick: another process may grab a free port between
#: choosing it and moto binding it.
_PORT_ATTEMPTS = 3
_HTTP_TIMEOUT_SECONDS = 5.0


def start(
    *, host: str = "127.0.0.1", port: int | None = None, timeout_seconds: float = 30.0
) -> EmulatorProcess:
    """Start ``moto.server`` on ``host:port`` and wait until it answers HTTP.

    Args:
        host: address to listen on (keep it loopback).
        port: TCP port; ``None`` picks a free one.
        timeout_seconds: how long to wait for the first answer.

    Returns:
        The running emulator; ``env`` holds dummy AWS credentials and the region.

    Raises:
        EmulatorError: moto (with its server extra) is not installed, or it exited or
            did not answer within ``timeout_seconds``.
    """
    missing = [mod for mod in ("moto", "flask", "werkzeug") if not _installed(mod)]
    if missing:
        raise EmulatorError(
            f"moto's S3 server needs {', '.join(missing)}: pip install 'moto[s3,server]' "
            "(or 'failover[emulators]')"
        )
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port(host)
        try:
            return _start_once(host, chosen, timeout_seconds)
        except _ExitedEarlyError:
            # Most likely the port was taken meanwhile; a hang is not retried.
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class _ExitedEarlyError(EmulatorError):
    """moto exited before answering (e.g. its port was taken)."""


def _start_once(host: str, port: int, timeout_seconds: float) -> EmulatorProcess:
    began = time.monotonic()
    process = start_process(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], env=_ENV
    )
    emulator = EmulatorProcess(kind="s3", host=host, port=port, process=process, env=dict(_ENV))
    try:
        wait_until(
            lambda: _answers(emulator.endpoint),
            timeout_seconds=timeout_seconds,
            what=f"moto server on {host}:{port}",
            process=process,
        )
    except EmulatorError as exc:
        exited = process.poll() is not None
        emulator.stop()
        if exited:
            raise _ExitedEarlyError(str(exc)) from exc
        raise
    except BaseException:
        emulator.stop()
        raise
    emulator.started_seconds = time.monotonic() - began
    return emulator


def create_bucket(emulator: EmulatorProcess, bucket: str, *, endpoint: str | None = None) -> str:
    """Create ``bucket`` on the moto server (idempotent) and return its backend URL.

    Args:
        emulator: a running moto emulator.
        bucket: bucket name (3-63 lower-case letters, digits, dots and dashes).
        endpoint: endpoint to put into the URL instead of the emulator's (a fault proxy
            in front of it, say); the bucket is created on the emulator directly.

    Returns:
        ``s3://<bucket>?region=us-east-1&endpoint_url=<endpoint>``.

    Raises:
        EmulatorError: moto refused to create the bucket.
    """
    # moto does not verify signatures, so a plain PUT creates the bucket without
    # building a boto3 client here.
    try:
        _request(emulator, f"/{quote(bucket)}", method="PUT")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        # Re-creating one's own bucket is fine: the call is idempotent by design.
        if "BucketAlreadyOwnedByYou" not in body:
            raise EmulatorError(f"moto could not create bucket {bucket!r}: {body}") from exc
    except OSError as exc:
        raise EmulatorError(f"moto at {emulator.endpoint} did not answer: {exc}") from exc
    target = quote(endpoint or emulator.endpoint, safe=":/")
    return f"s3://{bucket}?region={REGION}&endpoint_url={target}"


def reset(emulator: EmulatorProcess) -> None:
    """Wipe every bucket and object on the moto server (``POST /moto-api/reset``).

    Raises:
        EmulatorError: moto did not accept the reset.
    """
    try:
        _request(emulator, "/moto-api/reset", method="POST")
    except OSError as exc:
        raise EmulatorError(f"moto at {emulator.endpoint} refused the reset: {exc}") from exc


def _request(emulator: EmulatorProcess, path: str, *, method: str) -> None:
    # The URL is always http://<loopback>:<port>/…, built here, so S310 does not apply.
    request = urllib.request.Request(emulator.endpoint + path, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS):  # noqa: S310
        pass


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _answers(endpoint: str) -> bool:
    """True once moto's management API answers (any HTTP status proves it is serving)."""
    try:
        with urllib.request.urlopen(  # noqa: S310 - loopback http URL built above
            f"{endpoint}/moto-api/", timeout=1.0
        ):
            return True
    except urllib.error.HTTPError:
        return True
