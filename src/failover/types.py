"""Frozen records returned by the public API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "BackendHealth",
    "BreakerState",
    "ObjectInfo",
    "ReconcileReport",
    "RepairReport",
    "field_name",
]

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a replica knows about one stored object.

    Attributes:
        key: the object key, as the application named it (without any URL prefix).
        size: length of the content in bytes.
        checksum: sha256 hex digest of the content.
        version: version stamp; string order is write order across all writers.
        content_type: the MIME type stored with the object.
        metadata: user metadata only (the library's own entries are removed).
        last_modified: when the answering replica last stored it (timezone-aware).
        backend: name of the backend that answered.
    """

    key: str
    size: int
    checksum: str
    version: str
    content_type: str
    metadata: Mapping[str, str]
    last_modified: datetime
    backend: str


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """Health of one backend as the routing layer sees it.

    Attributes:
        name: backend name.
        state: circuit breaker state.
        score: 0 (avoid) .. 1 (healthy); higher scores get more reads.
        latency_ms: exponentially weighted moving average of call latency.
        error_rate: exponentially weighted moving average of transient failures (0..1).
        pending_repairs: replica actions waiting in the journal for this backend.
    """

    name: str
    state: BreakerState
    score: float
    latency_ms: float
    error_rate: float
    pending_repairs: int

    def to_dict(self) -> dict[str, str | float | int]:
        """JSON-ready fields, named like the Prometheus families (see :func:`field_name`).

        Keys: ``backend``, ``breaker_state``, ``health_score``, ``latency_seconds``,
        ``error_ratio`` and ``repairs_pending``.
        """
        return {
            "backend": self.name,
            "breaker_state": self.state,
            "health_score": round(self.score, 4),
            "latency_seconds": round(self.latency_ms / 1000, 6),
            "error_ratio": round(self.error_rate, 4),
            "repairs_pending": self.pending_repairs,
        }


def field_name(family: str) -> str:
    """The key a quantity has in ``failover status --json`` and in events' ``to_dict()``.

    One rule ties them to the Prometheus families of :data:`failover.telemetry.PROMETHEUS`:
    the family name without the ``failover_`` prefix, without a leading ``backend_``
    (each entry or event is about one backend, named under the key ``backend``) and
    without the ``_total`` of counters. Units stay (``latency_seconds``); label names
    (``backend``, ``operation``, ``outcome``) are keys as they are.

    Args:
        family: a Prometheus family name, e.g. ``failover_backend_health_score``.

    Returns:
        The key, e.g. ``health_score``.
    """
    key = family.removeprefix("failover_").removeprefix("backend_")
    return key.removesuffix("_total")


@dataclass(frozen=True, slots=True)
class RepairReport:
    """Outcome of one pass over the repair journal.

    Attributes:
        repaired: number of replica actions completed in this pass.
        pending: actions still waiting (backend unavailable, breaker open, or failed
            in this pass).
        failed: ``(backend, key, reason)`` for actions that failed in this pass.
        dropped: writes no replica ever stored (their writer stopped before any
            acknowledgement), removed from the journal with nothing to copy.
        purged: deletes whose markers were removed from every replica (their grace
            period was over and every replica held them).
    """

    repaired: int = 0
    pending: int = 0
    failed: tuple[tuple[str, str, str], ...] = ()
    dropped: int = 0
    purged: int = 0


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Differences found by comparing every replica (anti-entropy).

    Each mapping goes from backend name to the keys in that state on that backend.

    Attributes:
        missing: keys the backend lacks although another replica has them.
        stale: keys the backend holds at an older version than another replica.
        corrupt: keys whose stored bytes or checksum do not match their version.
        orphaned: objects without failover metadata (written outside the library).
        fixed: number of replica actions performed when run with ``fix=True``.
        scanned: number of distinct keys compared.
        purged: deletes whose markers were removed (``fix=True``, grace period over).
    """

    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stale: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    corrupt: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    orphaned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fixed: int = 0
    scanned: int = 0
    purged: int = 0

    @property
    def consistent(self) -> bool:
        """True when no replica differs from the others."""
        return not any(
            keys
            for group in (self.missing, self.stale, self.corrupt, self.orphaned)
            for keys in group.values()
        )
