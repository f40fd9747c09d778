"""Launcher for azurite, the Azure Storage emulator (Blob service only).

azurite is a Node.js package installed with ``npm install`` in the project root (see
``package.json``). It is started with ``node`` directly rather than through ``npx``:
killing npx's process group leaves an orphaned node server behind.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import time
from pathlib import Path

from failover.testing.emulators._process import (
    EmulatorError,
    EmulatorProcess,
    free_port,
    start_process,
    wait_until,
)

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "MAIN_ENV",
    "connection_string",
    "create_bucket",
    "find_main",
    "start",
]

#: azurite's built-in development account; the name and key are published in
#: Microsoft's documentation and only ever work against a local emulator.
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

#: Environment variable that overrides where azurite's blob entry point is.
MAIN_ENV = "FAILOVER_AZURITE_MAIN"

_MAIN_RELATIVE = Path("node_modules", "azurite", "dist", "src", "blob", "main.js")


def find_main() -> Path:
    """Locate azurite's Blob service entry point (``dist/src/blob/main.js``).

    Looks at ``$FAILOVER_AZURITE_MAIN`` first, then for ``node_modules/azurite`` in the
    current directory and its parents, then next to this package's source tree (the
    repository root of an editable install).

    Raises:
        EmulatorError: azurite is not installed where any of those point.
    """
    override = os.environ.get(MAIN_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise EmulatorError(
                f"{MAIN_ENV}={override!r} does not point to azurite's dist/src/blob/main.js"
            )
        return path
    starts = (Path.cwd().resolve(), Path(__file__).resolve().parent)
    for start_dir in starts:
        for directory in (start_dir, *start_dir.parents):
            candidate = directory / _MAIN_RELATIVE
            if candidate.is_file():
                return candidate
    raise EmulatorError(
        "azurite is not installed: run `npm install` in the project root (it reads "
        f"package.json), or set {MAIN_ENV} to the path of azurite's dist/src/blob/main.js"
    )


def connection_string(endpoint: str) -> str:
    """Return the dev-account connection string for a Blob service at ``endpoint``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={endpoint}/{ACCOUNT_NAME};"
    )


def _answers_http(host: str, port: int) -> bool:
    # Any HTTP status means the server is up (azurite answers 400 to a bare "GET /").
    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
    finally:
        conn.close()
    return True


def start(
    *, host: str = "127.0.0.1", port: int | None = None, timeout_seconds: float = 30.0
) -> EmulatorProcess:
    """Start azurite's Blob service in memory on a free loopback port.

    Args:
        host: address to listen on.
        port: port to listen on (default: a free one).
        timeout_seconds: how long to wait for the first HTTP answer.

    Returns:
        The running emulator; its ``env`` holds ``AZURE_STORAGE_CONNECTION_STRING`` (for
        ``az://`` URLs without ``account_url``) and ``AZURE_STORAGE_KEY`` (for URLs with
        one), both for the well-known development account.

    Raises:
        EmulatorError: Node.js or azurite is missing, or the server did not answer.
    """
    node = shutil.which("node")
    if node is None:
        raise EmulatorError(
            "Node.js is not installed (no `node` on PATH); azurite needs Node.js 18 or newer"
        )
    main = find_main()
    port = port or free_port(host)
    argv = [
        node,
        str(main),
        "--blobHost",
        host,
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        # azure-storage-blob 12.31 sends a newer x-ms-version than azurite 3.35 knows.
        "--skipApiVersionCheck",
        "--disableTelemetry",
        # The account always comes from the first path segment, whatever the host name,
        # which is how backend URLs name it (http://127.0.0.1:PORT/devstoreaccount1).
        "--disableProductStyleUrl",
        "--silent",
    ]
    began = time.monotonic()
    process = start_process(argv)
    emulator = EmulatorProcess(kind="azure", host=host, port=port, process=process)
    try:
        wait_until(
            lambda: _answers_http(host, port),
            timeout_seconds=timeout_seconds,
            what=f"azurite on {host}:{port}",
            process=process,
        )
    except BaseException:
        emulator.stop()
        raise
    emulator.started_seconds = time.monotonic() - began
    emulator.env = {
        "AZURE_STORAGE_CONNECTION_STRING": connection_string(emulator.endpoint),
        "AZURE_STORAGE_KEY": ACCOUNT_KEY,
    }
    return emulator


def create_bucket(emulator: EmulatorProcess, container: str, *, endpoint: str | None = None) -> str:
    """Create ``container`` (if missing) and return an ``az://`` URL for it.

    Args:
        emulator: a running azurite.
        container: container name.
        endpoint: endpoint to put in the URL instead of the emulator's (a fault proxy).

    Returns:
        ``az://<container>?account_url=<endpoint>/devstoreaccount1``; the key comes from
        ``AZURE_STORAGE_KEY`` in ``emulator.env``.
    """
    # Imported here so that starting azurite does not need the Azure SDK installed.
    try:
        from azure.core.exceptions import ResourceExistsError  # noqa: PLC0415
        from azure.storage.blob import BlobServiceClient  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise EmulatorError(
            "creating an azurite container needs `pip install 'failover[azure]'`"
        ) from exc
    service = BlobServiceClient.from_connection_string(
        connection_string(emulator.endpoint), retry_total=0
    )
    with service, contextlib.suppress(ResourceExistsError):
        service.create_container(container)
    return f"az://{container}?account_url={endpoint or emulator.endpoint}/{ACCOUNT_NAME}"
