"""failover: object storage and function invocation that keep working when one cloud is down.

One API over AWS S3, Azure Blob Storage, Google Cloud Storage, local directories and
memory, with replicated writes, verified reads that fail over between replicas, and
repair; and :class:`Invoker`, which calls the same function deployed on AWS Lambda,
Azure Functions, Google Cloud Functions or any HTTPS endpoint and fails over between
them. Provider SDKs are optional extras, imported only when a backend or target needs
them.

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
    Superseded,
    TransientError,
)
from failover.invoke import (
    CallableTarget,
    FunctionError,
    InvocationResult,
    Invoker,
    InvokerSettings,
    RequestRejected,
    TargetNotFoundError,
)
from failover.types import BackendHealth, ObjectInfo, ReconcileReport, RepairReport

__all__ = [
    "AllBackendsFailed",
    "BackendError",
    "BackendHealth",
    "BackendSkipped",
    "CallableTarget",
    "ConfigError",
    "FailoverError",
    "FunctionError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidMetadataError",
    "InvocationResult",
    "Invoker",
    "InvokerSettings",
    "NotFoundError",
    "ObjectInfo",
    "PermanentError",
    "QuorumNotReached",
    "ReconcileReport",
    "RepairReport",
    "RequestRejected",
    "Settings",
    "Storage",
    "StorageReader",
    "Superseded",
    "TargetNotFoundError",
    "TransientError",
    "__version__",
]

__version__ = "0.1.0"
