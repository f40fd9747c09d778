"""Start and stop the real cloud emulators for tests, each on a free 127.0.0.1 port.

moto serves S3, azurite Azure Blob Storage and fake-gcs-server Google Cloud Storage.
:func:`start_redis` starts a throwaway redis-server, for shared breaker state
(``FAILOVER_BREAKER_STORAGE``); :func:`redis_url` gives its URL.

Example:
    >>> emu = start("s3")                       # doctest: +SKIP
    >>> url = create_bucket(emu, "replica-a")   # "s3://replica-a?endpoint_url=…"
    >>> emu.stop()

Each launcher waits until the emulator answers, and ``EmulatorProcess.stop()`` stops it by
process group and waits for it to exit. ``EmulatorProcess.env`` holds the environment
variables a client needs (dummy credentials, connection strings); :func:`apply_env`
sets them.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Literal

from failover.testing.emulators._process import EmulatorError, EmulatorProcess, free_port
from failover.testing.emulators._redis import redis_url
from failover.testing.emulators._redis import start as start_redis

if TYPE_CHECKING:
    from failover.testing.proxy import FaultProxy

__all__ = [
    "KINDS",
    "EmulatorError",
    "EmulatorKind",
    "EmulatorProcess",
    "apply_env",
    "create_bucket",
    "redis_url",
    "start",
    "start_behind_proxy",
    "start_redis",
]

EmulatorKind = Literal["s3", "azure", "gcs"]
KINDS: tuple[EmulatorKind, ...] = ("s3", "azure", "gcs")

_MODULES = {
    "s3": "failover.testing.emulators._moto",
    "azure": "failover.testing.emulators._azurite",
    "gcs": "failover.testing.emulators._fakegcs",
}


def _module(kind: str) -> Any:
    try:
        return importlib.import_module(_MODULES[kind])
    except KeyError:
        raise ValueError(f"unknown emulator kind {kind!r}; use one of {KINDS}") from None


def start(kind: EmulatorKind, **options: Any) -> EmulatorProcess:
    """Start one emulator and wait until it answers.

    Args:
        kind: ``"s3"`` (moto), ``"azure"`` (azurite) or ``"gcs"`` (fake-gcs-server).
        **options: launcher options, e.g. ``port=`` and, for fake-gcs-server,
            ``external_url=`` (set it to a proxy's URL when a proxy fronts the emulator).

    Raises:
        EmulatorError: the emulator is not installed or did not answer in time.
    """
    emulator: EmulatorProcess = _module(kind).start(**options)
    return emulator


def create_bucket(
    emulator: EmulatorProcess, bucket: str, *, endpoint: str | None = None, name: str | None = None
) -> str:
    """Create a bucket/container on ``emulator`` and return a backend URL for it.

    Args:
        emulator: a started emulator.
        bucket: bucket or container name (lower-case letters, digits and dashes).
        endpoint: put this endpoint into the URL instead of the emulator's own (a
            ``FaultProxy`` in front of it, say); the bucket is still created directly.
        name: backend name for the URL's ``name=`` parameter.
    """
    url: str = _module(emulator.kind).create_bucket(emulator, bucket, endpoint=endpoint)
    if name:
        url += ("&" if "?" in url else "?") + f"name={name}"
    return url


def apply_env(emulator: EmulatorProcess) -> None:
    """Set ``emulator.env`` in ``os.environ`` (for clients created in this process)."""
    os.environ.update(emulator.env)


def start_behind_proxy(kind: EmulatorKind, **options: Any) -> tuple[EmulatorProcess, FaultProxy]:
    """Start an emulator with a :class:`~failover.testing.FaultProxy` in front of it.

    Clients should use ``proxy.endpoint`` (``create_bucket(emu, b, endpoint=proxy.endpoint)``
    builds such a URL). fake-gcs-server is told the proxy's URL as its external URL, so
    that download links and resumable-upload sessions also go through the proxy.

    Returns:
        ``(emulator, proxy)``; stop both (``proxy.stop()``, ``emulator.stop()``).
    """
    from failover.testing.proxy import FaultProxy  # noqa: PLC0415 - proxy is optional here

    port = free_port()
    proxy = FaultProxy("127.0.0.1", port).start()
    try:
        if kind == "gcs":
            options.setdefault("external_url", proxy.endpoint)
        emulator = start(kind, port=port, **options)
    except BaseException:
        proxy.stop()
        raise
    return emulator, proxy
