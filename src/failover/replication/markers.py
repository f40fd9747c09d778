"""Delete markers: a delete is a fact each replica keeps, not only the deleting host.

A replicated delete does not remove the object. It writes a **delete marker** over it:
an empty object at the same key whose metadata says ``failover_deleted=1`` and carries
the delete's version stamp. The marker goes through the same last-writer-wins
conditional write as a put (:func:`~failover.replication.writer.write_if_newer`), so:

* a put of an older version that lands late (a slow third replica, another host's
  writer, a repair copy started before the delete) finds a newer version in place and
  is superseded instead of bringing the key back;
* any host's repair and reconcile tell "deleted at version V" from "missed a put" by
  looking at the replicas, with no journal of their own;
* a later put (a newer version) replaces the marker as it would any older object.

Reads never show a marker: ``get``, ``head``, ``open`` and ``exists`` take it as "not
found" (one that proves absence), and ``list`` hides it. After every replica holds the
marker and ``tombstone_grace_seconds`` (``FAILOVER_TOMBSTONE_GRACE_SECONDS``) have passed
since the delete, the markers are removed (:func:`remove_marker`, conditional on the
marker's own etag, so a put that replaced it meanwhile is never removed).

With one backend there is nothing to reconcile and no late replica write: a delete
removes the object.
"""

from __future__ import annotations

from failover.backends.base import META_VERSION, Backend, StoredObject
from failover.errors import NotFoundError, PreconditionFailedError
from failover.payload import Payload
from failover.replication.version import parse_version
from failover.replication.writer import ReplicaWrite, write_if_newer

__all__ = [
    "MARKER_CONTENT_TYPE",
    "META_DELETED",
    "DeletedMarker",
    "is_marker",
    "live",
    "marker_due",
    "remove_marker",
    "write_marker",
]

#: Metadata entry that makes an object a delete marker.
META_DELETED = "failover_deleted"
#: Content type of a marker (an empty body).
MARKER_CONTENT_TYPE = "application/x-failover-delete-marker"


class DeletedMarker(NotFoundError):
    """A replica answered with a delete marker: the key was deleted at ``version``.

    It is a :class:`~failover.errors.NotFoundError` (callers see "not found"), and it
    proves absence: the replica holds the delete, not merely nothing.
    """

    def __init__(self, key: str, *, backend: str, version: str) -> None:
        super().__init__(key, backend=backend)
        self.version = version


def is_marker(info: StoredObject) -> bool:
    """True if ``info`` describes a delete marker."""
    return (info.metadata or {}).get(META_DELETED) == "1"


def live(backend: str, info: StoredObject) -> StoredObject:
    """Return ``info`` unless it is a delete marker.

    Raises:
        DeletedMarker: it is one (with the delete's version).
    """
    if is_marker(info):
        raise DeletedMarker(
            info.key, backend=backend, version=(info.metadata or {}).get(META_VERSION, "")
        )
    return info


def write_marker(
    backend: Backend, key: str, *, version: str, horizon: str | None = None
) -> ReplicaWrite:
    """Write a delete marker at ``version`` unless the replica holds a newer version.

    Returns:
        The outcome: ``superseded`` when a newer version (a later put, or a later
        delete's marker) is already there and the delete lost to it.
    """
    with Payload.from_source(b"") as empty:
        return write_if_newer(
            backend,
            key,
            empty,
            content_type=MARKER_CONTENT_TYPE,
            metadata={META_VERSION: version, META_DELETED: "1"},
            version=version,
            horizon=horizon,
        )


def marker_due(version: str, *, grace_seconds: float, now: float) -> bool:
    """True when the grace period of a marker stamped ``version`` is over at ``now``."""
    parsed = parse_version(version)
    if parsed is None:
        return False
    return parsed[0] / 1000 + grace_seconds <= now


def remove_marker(backend: Backend, info: StoredObject) -> bool:
    """Remove the marker ``info`` describes, unless the key changed since.

    Returns:
        True if the marker is gone; False if another revision (a newer write) holds the
        key now and was left alone.
    """
    try:
        backend.delete(info.key, if_match=info.etag)
    except PreconditionFailedError:
        try:
            backend.head(info.key)
        except NotFoundError:
            return True  # gone already (a provider refusing if_match on a missing key)
        return False
    return True
