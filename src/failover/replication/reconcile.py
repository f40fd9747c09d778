"""Anti-entropy: compare every replica and repair what the journal cannot know about.

The journal knows the actions this host started. It cannot know about a replica
restored from an old backup, an object written or deleted outside failover, or a
write journaled on another host. :class:`Reconciler` lists every replica, compares
``(key, version, sha256, size)`` and classifies each replica of each key:

* **missing**: another replica has the key, this one does not;
* **stale**: this replica holds an older version than another one (or a version
  older than a tombstone in the journal: a delete it missed);
* **corrupt**: same version as the newest, but its size differs from the other holders
  (or, with ``verify_bytes``, its bytes do not match their sha256);
* **orphaned**: the object carries no failover metadata (written by another tool); it
  is reported and never touched.

With ``fix=True`` each difference is repaired from a replica holding the newest intact
version (last writer wins, conditional writes), and tombstoned keys are deleted.

A key whose newest version is a **delete marker** is deleted: replicas holding an
older copy are stale and get the marker; with ``fix=True`` the markers of a delete whose
grace period is over are removed once no replica holds anything older (reconcile sees
every replica, so it also cleans up after a host that deleted and was lost). Hint
objects under the reserved prefix are not compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from failover.backends.base import META_SHA256, META_VERSION, Backend, StoredObject
from failover.errors import AllBackendsFailed, BackendError, NotFoundError
from failover.keys import RESERVED_KEY_PREFIX
from failover.replication.journal import RepairJournal
from failover.replication.layout import META_SHARE, Layout, bytes_match
from failover.replication.markers import is_marker, marker_due, remove_marker, write_marker
from failover.replication.stored import meta
from failover.types import ReconcileReport

__all__ = ["Reconciler"]

#: ``progress(done, total)`` after each key.
Progress = Callable[[int, int], None]


class Reconciler:
    """One anti-entropy pass over the replicas of a Storage.

    Args:
        backends: the replicas by name, in priority order.
        journal: the repair journal (tombstones, and rows to clear once fixed).
        verify_bytes: read every holder of the newest version and check its sha256.
        layout: how objects are stored (copies or erasure-coded shares).
        trusts: tells whether a version stamp is within the allowed clock skew.
        marker_grace_seconds: delete markers older than this are removed with
            ``fix=True`` once every replica has the delete (``None``: never).
    """

    def __init__(
        self,
        backends: Mapping[str, Backend],
        *,
        journal: RepairJournal | None,
        verify_bytes: bool = False,
        layout: Layout | None = None,
        trusts: Callable[[str], bool] | None = None,
        marker_grace_seconds: float | None = None,
    ) -> None:
        self._marker_grace = marker_grace_seconds
        self._purged = 0
        self._layout = layout or Layout(list(backends))
        self._trusts = trusts or (lambda _version: True)
        self._backends = backends
        self._names = list(backends)
        self._journal = journal
        self._verify_bytes = verify_bytes

    def _listing(self, prefix: str) -> dict[str, dict[str, StoredObject]]:
        listing: dict[str, dict[str, StoredObject]] = {}
        errors: dict[str, BaseException] = {}
        for name, backend in self._backends.items():
            try:
                for stored in backend.list(prefix):
                    if stored.key.startswith(RESERVED_KEY_PREFIX):
                        continue  # hints: the library's own bookkeeping
                    listing.setdefault(stored.key, {})[name] = stored
            except (BackendError, OSError) as exc:
                errors[name] = exc
        if errors:
            raise AllBackendsFailed(f"reconcile {prefix!r}", errors)
        return listing

    def _tombstones(self, prefix: str) -> dict[str, str]:
        if self._journal is None:
            return {}
        tombs: dict[str, str] = {}
        for (_, key), action in self._journal.pending_under(prefix).items():
            if action.op == "delete" and action.version > tombs.get(key, ""):
                tombs[key] = action.version
        return tombs

    def _described(self, name: str, stored: StoredObject) -> StoredObject:
        if stored.metadata is not None:
            return stored
        return self._backends[name].head(stored.key)  # S3 listings carry no metadata

    def run(
        self, prefix: str = "", *, fix: bool = False, progress: Progress | None = None
    ) -> ReconcileReport:
        """Compare (and with ``fix``, repair) every key under ``prefix``.

        Raises:
            AllBackendsFailed: a replica could not be listed (comparison needs all).
        """
        listing = self._listing(prefix)
        tombs = self._tombstones(prefix)
        found: dict[str, dict[str, list[str]]] = {
            kind: {n: [] for n in self._names}
            for kind in ("missing", "stale", "corrupt", "orphaned")
        }
        fixed = 0
        keys = sorted(listing, key=lambda k: k.encode("utf-8"))
        for done, key in enumerate(keys, start=1):
            marks = {kind: {n: len(ks) for n, ks in per.items()} for kind, per in found.items()}
            try:
                fixed += self._reconcile_key(key, listing[key], tombs.get(key, ""), found, fix=fix)
            except NotFoundError:
                # Deleted between the listing and now: the listing no longer describes
                # it, and whoever deleted it journaled its own replicas. Report nothing
                # about it and leave it to the next pass rather than abort this one.
                for kind, per in found.items():
                    for name, listed_keys in per.items():
                        del listed_keys[marks[kind][name] :]
            if progress is not None:
                progress(done, len(keys))
        return ReconcileReport(
            missing={n: tuple(k) for n, k in found["missing"].items()},
            stale={n: tuple(k) for n, k in found["stale"].items()},
            corrupt={n: tuple(k) for n, k in found["corrupt"].items()},
            orphaned={n: tuple(k) for n, k in found["orphaned"].items()},
            fixed=fixed,
            scanned=len(keys),
            purged=self._purged,
        )

    def _reconcile_key(
        self,
        key: str,
        listed: dict[str, StoredObject],
        tombstone: str,
        found: dict[str, dict[str, list[str]]],
        *,
        fix: bool,
    ) -> int:
        replicas = {name: self._described(name, stored) for name, stored in listed.items()}
        versioned = {n: s for n, s in replicas.items() if meta(s, META_VERSION)}
        for name in replicas.keys() - versioned.keys():
            found["orphaned"][name].append(key)
        if not versioned:
            return 0
        # A version stamped too far ahead of this host's clock (a wrong clock, damaged
        # metadata) is not the newest: the newest trusted one replaces it.
        trusted = [meta(s, META_VERSION) for s in versioned.values()]
        trusted = [v for v in trusted if self._trusts(v)] or trusted
        newest = max(trusted)
        marked = [meta(s, META_VERSION) for s in versioned.values() if is_marker(s)]
        tombstone = max([tombstone, *(v for v in marked if v in trusted)])
        if tombstone and tombstone >= newest:
            return self._reconcile_deleted(key, versioned, tombstone, found, fix=fix)
        holders = [
            n for n in self._names if n in versioned and meta(versioned[n], META_VERSION) == newest
        ]
        sizes = sorted(versioned[n].size for n in holders)
        reference_size = sizes[len(sizes) // 2]  # the majority's size among the holders
        intact = [n for n in holders if self._intact(n, key, versioned[n], reference_size)]
        intact = self._without_duplicate_shares(intact, versioned)
        targets: list[tuple[str, str | None]] = []
        for name in self._names:
            if name not in replicas:
                found["missing"][name].append(key)
                targets.append((name, None))
            elif name in versioned and meta(versioned[name], META_VERSION) != newest:
                found["stale"][name].append(key)
                # Older: written over as usual. Newer can only be untrusted: replaced.
                older = meta(versioned[name], META_VERSION) < newest
                targets.append((name, None if older else versioned[name].etag))
            elif name in holders and name not in intact:
                found["corrupt"][name].append(key)
                targets.append((name, versioned[name].etag))
        if not (fix and len(intact) >= self._layout.min_holders):
            return 0
        sources = {n: versioned[n] for n in intact}
        for name, corrupt_etag in targets:
            self._layout.rebuild(self._backends, name, key, sources, replace_etag=corrupt_etag)
            self._clear(name, key, newest)
        return len(targets)

    def _reconcile_deleted(
        self,
        key: str,
        versioned: Mapping[str, StoredObject],
        tombstone: str,
        found: dict[str, dict[str, list[str]]],
        *,
        fix: bool,
    ) -> int:
        """A key deleted after every version still around: copies get the marker."""
        stale = [
            n
            for n, s in versioned.items()
            if not (is_marker(s) and meta(s, META_VERSION) >= tombstone)
        ]
        for name in stale:
            if not is_marker(versioned[name]):
                found["stale"][name].append(key)
        if not fix:
            return 0
        for name in stale:
            write_marker(self._backends[name], key, version=tombstone)
            self._clear(name, key, tombstone)
        holders = {n: s for n, s in versioned.items() if n not in stale}
        grace = self._marker_grace
        if (
            not stale
            and grace is not None
            and marker_due(tombstone, grace_seconds=grace, now=time.time())
        ):
            # Every replica listed holds the delete, and no late write can still land.
            for name, marker in holders.items():
                remove_marker(self._backends[name], marker)
            if self._journal is not None:
                self._journal.forget_marker(key, tombstone)
            self._purged += 1
        return sum(1 for n in stale if not is_marker(versioned[n]))

    def _without_duplicate_shares(
        self, intact: list[str], versioned: Mapping[str, StoredObject]
    ) -> list[str]:
        """Drop holders whose share number an earlier holder already has (erasure only).

        Two replicas with one share number hold one share twice and another not at all:
        the object has lost redundancy. The later one (in priority order) is then no
        longer counted as intact, so it is reported corrupt and rebuilt with the
        missing number.
        """
        if self._layout.code is None:
            return intact
        seen: set[str] = set()
        unique = []
        for name in intact:
            number = meta(versioned[name], META_SHARE)
            if number and number in seen:
                continue
            seen.add(number)
            unique.append(name)
        return unique

    def _clear(self, name: str, key: str, version: str) -> None:
        if self._journal is not None:
            self._journal.complete(name, key, version)

    def _intact(self, name: str, key: str, stored: StoredObject, reference_size: int) -> bool:
        if not meta(stored, META_SHA256) or stored.size != reference_size:
            return False
        return not self._verify_bytes or bytes_match(self._backends[name], key, stored)
