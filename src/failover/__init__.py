"""failover: object storage that keeps working when one cloud is down.

One API over AWS S3, Azure Blob Storage, Google Cloud Storage, local directories and
memory, with replicated writes, verified reads that fail over between replicas, and
repair. Provider SDKs are optional extras, imported only when a backend needs them.

Example:
    >>> import failover
    >>> with failover.Storage.from_urls(["memory://a", "memory://b", "memory://c"]) as store:
    ...     info = store.put("hello.txt", b"hi")
    ...     store.get("hello.txt")
    b'hi'
"""

from __future__ import annotations

from failover._storage import Storage, StorageReader
from failover.config import Settings
from failover.errors import (
    AllBackendsFailed,
    BackendError,
    BackendSkipped,
    ConfigError,
    FailoverError,
    IntegrityError,
    InvalidKeyError,
    InvalidMetadataError,
    NotFoundError,
    PermanentError,
    QuorumNotReached,
    TransientError,
)
from failover.types import BackendHealth, ObjectInfo, ReconcileReport, RepairReport

__all__ = [
    "AllBackendsFailed",
    "BackendError",
    "BackendHealth",
    "BackendSkipped",
    "ConfigError",
    "FailoverError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidMetadataError",
    "NotFoundError",
    "ObjectInfo",
    "PermanentError",
    "QuorumNotReached",
    "ReconcileReport",
    "RepairReport",
    "Settings",
    "Storage",
    "StorageReader",
    "TransientError",
    "__version__",
]

__version__ = "0.1.0"
