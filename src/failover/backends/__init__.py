"""Storage backends behind one seam, and :func:`from_url` to build one from a URL.

Provider SDKs are optional extras and are imported only when a backend of that kind is
built, so ``import failover`` stays light: ``S3Backend`` needs ``failover[aws]``,
``AzureBlobBackend`` ``failover[azure]``, ``GCSBackend`` ``failover[gcp]``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from failover.backends._url import (
    PARAMETERS,
    BackendURL,
    parse_backend_url,
    redact_backend_url,
    validate_backend_url,
)
from failover.backends.base import Backend, FetchedObject, ObjectReader, StoredObject
from failover.backends.local import LocalBackend
from failover.backends.memory import MemoryBackend
from failover.errors import ConfigError

if TYPE_CHECKING:
    from failover.backends.azure import AzureBlobBackend
    from failover.backends.gcs import GCSBackend
    from failover.backends.s3 import S3Backend

__all__ = [
    "PARAMETERS",
    "AzureBlobBackend",
    "Backend",
    "BackendURL",
    "FetchedObject",
    "GCSBackend",
    "LocalBackend",
    "MemoryBackend",
    "ObjectReader",
    "S3Backend",
    "StoredObject",
    "from_url",
    "parse_backend_url",
    "redact_backend_url",
    "validate_backend_url",
]

# scheme -> (module, class, extra that installs its SDK)
_PROVIDERS: dict[str, tuple[str, str, str]] = {
    "s3": ("failover.backends.s3", "S3Backend", "aws"),
    "az": ("failover.backends.azure", "AzureBlobBackend", "azure"),
    "gs": ("failover.backends.gcs", "GCSBackend", "gcp"),
}
_LAZY = {cls: (module, extra) for module, cls, extra in _PROVIDERS.values()}


def _load(module: str, cls: str, extra: str) -> Any:
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ConfigError(
            f"{cls} needs its provider SDK: pip install 'failover[{extra}]' ({exc})"
        ) from exc


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, extra = _LAZY[name]
        return _load(module, name, extra)
    raise AttributeError(f"module 'failover.backends' has no attribute {name!r}")


def from_url(url: str, *, timeout_seconds: float = 10.0, max_connections: int = 32) -> Backend:
    """Build a backend from its URL.

    Args:
        url: ``s3://bucket[/prefix]?region=…&endpoint_url=…``,
            ``az://container[/prefix]?account_url=…``,
            ``gs://bucket[/prefix]?project=…&endpoint=…``, ``file:///absolute/path`` or
            ``memory://name``; any of them with ``name=`` to override the backend name.
        timeout_seconds: connect and read timeout of one attempt.
        max_connections: HTTP connection pool size (match the expected concurrency).

    Raises:
        ConfigError: for a malformed URL, a parameter the scheme does not accept (see
            :data:`PARAMETERS`), or a missing SDK extra.
    """
    parsed = validate_backend_url(url)
    if parsed.scheme == "memory":
        return MemoryBackend.from_url(parsed)
    if parsed.scheme == "file":
        return LocalBackend.from_url(parsed)
    module, cls, extra = _PROVIDERS[parsed.scheme]
    backend: Backend = _load(module, cls, extra).from_url(
        parsed, timeout_seconds=timeout_seconds, max_connections=max_connections
    )
    return backend
