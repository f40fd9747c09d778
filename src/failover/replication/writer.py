"""Last-writer-wins replica writes: never replace a newer version with an older one.

Every replicated object carries its version stamp. Two writers (or a writer and the
repairer) may reach the replicas in different orders, so a plain overwrite could leave
replicas holding different versions for ever. Each replica write is therefore made
conditional with the provider's own compare-and-swap:

1. try a create-only write (``if_absent``): the common case, a new key, costs one
   request;
2. if the key exists, ``head`` it: a version at least as new as ours means ours is
   superseded (the replica already holds the winner, which counts as acknowledged);
   an older one is replaced with ``if_match`` on its etag;
3. if that condition fails (someone wrote in between), look again, a few times.

Large payloads ``head`` first, so that a create-only upload of many megabytes is not
wasted on a key that exists; so do keys the writer knows exist (:class:`RecentKeys`, the
keys it wrote lately), which makes an overwrite two requests instead of three. The hint
only picks which conditional path to try first, so a wrong hint costs a request, never
correctness. Deletes follow the same rule: a delete writes a marker with this
function (:func:`~failover.replication.markers.write_marker`), so it replaces only a
replica whose version is older than the delete.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from failover.backends.base import META_VERSION, Backend, StoredObject
from failover.errors import NotFoundError, PreconditionFailedError
from failover.payload import CHUNK_SIZE, Payload

__all__ = ["RecentKeys", "ReplicaWrite", "write_if_newer"]

_MAX_ROUNDS = 5


@dataclass(frozen=True, slots=True)
class ReplicaWrite:
    """Outcome of one replica write.

    Attributes:
        stored: what the replica holds now (ours, or the newer version that won).
        superseded: True if the replica already held a version at least as new.
        untrusted: the version replaced because it was beyond the trust horizon (a
            stamp from a clock far ahead), or "" when none was.
    """

    stored: StoredObject
    superseded: bool
    untrusted: str = ""


class RecentKeys:
    """A bounded, thread-safe set of the keys written lately (least recent evicted first).

    Args:
        capacity: how many keys to remember.
    """

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        """Remember ``key`` as the most recent."""
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            if len(self._keys) > self._capacity:
                self._keys.popitem(last=False)

    def discard(self, key: str) -> None:
        """Forget ``key`` (it was deleted)."""
        with self._lock:
            self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        """Tell whether ``key`` was written lately."""
        with self._lock:
            return key in self._keys

    def __len__(self) -> int:
        """How many keys are remembered."""
        with self._lock:
            return len(self._keys)


def _version_of(info: StoredObject) -> str:
    return (info.metadata or {}).get(META_VERSION, "")


def write_if_newer(
    backend: Backend,
    key: str,
    payload: Payload,
    *,
    content_type: str,
    metadata: Mapping[str, str],
    version: str,
    exists: bool = False,
    horizon: str | None = None,
) -> ReplicaWrite:
    """Write ``payload`` at ``version`` unless the replica holds a version as new or newer.

    Args:
        backend: the replica.
        key: object key.
        payload: the bytes.
        content_type: MIME type.
        metadata: the metadata to store (with the version stamp).
        version: this write's version stamp.
        exists: the key probably exists: look first instead of trying a create-only
            write.
        horizon: the highest version stamp trusted now; a replica's version beyond it
            (from a clock far ahead) does not win: it is replaced.

    Raises:
        PreconditionFailedError: the replica kept changing under us for several rounds.
        BackendError: the backend failed (transient or permanent).
    """
    current: StoredObject | None = None
    # Big uploads, and keys known to exist, look before sending the bytes.
    looked = exists or payload.size > CHUNK_SIZE
    untrusted = ""
    for _ in range(_MAX_ROUNDS):
        if looked:
            try:
                current = backend.head(key)
            except NotFoundError:
                current = None
            if current is not None and _version_of(current) >= version:
                if horizon is None or _version_of(current) <= horizon:
                    return ReplicaWrite(current, superseded=True)
                untrusted = _version_of(current)
        try:
            if current is None:
                stored = backend.put(
                    key, payload, content_type=content_type, metadata=metadata, if_absent=True
                )
            else:
                stored = backend.put(
                    key,
                    payload,
                    content_type=content_type,
                    metadata=metadata,
                    if_match=current.etag,
                )
        except PreconditionFailedError:
            looked = True  # it exists, or changed since we looked: look (again)
            continue
        return ReplicaWrite(stored, superseded=False, untrusted=untrusted)
    raise PreconditionFailedError(
        f"{key!r} kept changing during {_MAX_ROUNDS} conditional writes", backend=backend.name
    )
