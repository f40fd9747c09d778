"""Repair: work through the journal until every replica holds every action.

For each pending row the repairer asks the *other* replicas what they hold, never the
caller's memory:

* a **put** row is repaired by copying the newest version any replica holds (at least
  the row's version) to the target, with a last-writer-wins conditional write
  (:func:`~failover.replication.writer.write_if_newer`), after checking the copied
  bytes against their sha256;
* a **delete** row (a tombstone) writes a delete marker over the target's copy unless
  the target holds a newer version (:func:`~failover.replication.markers.write_marker`);
  a put row whose newest holder is a marker is repaired the same way;
* a put that no replica holds and that is older than the grace period was never
  acknowledged (its writer died or gave up before any replica stored it): the row is
  *dropped*, since nothing exists to copy.

Besides its own journal, each pass completes the **hints** other instances left in the
replicas (:mod:`failover.replication.hints`: a lost host's work is not lost), and removes
delete markers whose grace period is over once every replica holds them.

Every call goes through the :class:`~failover.dispatch.Dispatcher`, so the repairer
respects breakers (it does not hammer a backend whose breaker is open: those rows stay
pending), retries and deadlines. Repair is idempotent: running it twice, or from two
processes or hosts at once, does no harm.

**Pacing.** Catch-up after an outage competes with the application for the same
connections, the same CPU and the recovered cloud's capacity: a pass performs one action
at a time by default (``concurrency``), so foreground requests keep each backend's
workers while the backlog drains. (With eight at a time, foreground p99 rose to about
400 ms for the seconds after a cloud returned in the outage benchmark.)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from failover.backends.base import META_VERSION, Backend, StoredObject
from failover.dispatch import Dispatcher
from failover.errors import FailoverError, NotFoundError
from failover.replication.hints import Hint, hints_for, remove_hint
from failover.replication.journal import JournalAction, RepairJournal
from failover.replication.layout import Layout, bytes_match
from failover.replication.markers import is_marker, marker_due, remove_marker, write_marker
from failover.replication.version import stamp_at
from failover.replication.writer import ReplicaWrite
from failover.types import RepairReport

__all__ = ["InFlight", "RepairWorker", "Repairer"]

logger = logging.getLogger("failover.repair")


class InFlight:
    """Replica actions this process is performing right now (the repairer skips them)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], int] = {}
        self._changed = threading.Condition()

    def add(self, names: Collection[str], key: str) -> None:
        """Mark ``key`` as being written to each of ``names``."""
        with self._changed:
            for name in names:
                self._items[name, key] = self._items.get((name, key), 0) + 1

    def discard(self, name: str, key: str) -> None:
        """The action of ``name`` on ``key`` finished (or was never started)."""
        with self._changed:
            count = self._items.get((name, key), 0) - 1
            if count > 0:
                self._items[name, key] = count
            else:
                self._items.pop((name, key), None)
            if not self._items:
                self._changed.notify_all()

    def wait_idle(self, timeout_seconds: float) -> bool:
        """Wait until nothing is in flight; False if ``timeout_seconds`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._items, timeout=timeout_seconds)

    def __contains__(self, item: object) -> bool:
        with self._changed:
            return item in self._items


def _version(info: StoredObject) -> str:
    return (info.metadata or {}).get(META_VERSION, "")


@dataclass
class _Tally:
    repaired: int = 0
    dropped: int = 0
    pending: int = 0
    purged: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, failure: tuple[str, str, str] | None = None) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if failure is not None:
                self.failed.append(failure)


class Repairer:
    """Performs the pending journal actions of one Storage's backends.

    Args:
        backends: the replicas by name.
        journal: the repair journal.
        dispatcher: runs every backend call (breakers, retries, deadlines).
        in_flight: actions this process is still performing (skipped).
        grace_seconds: a put row younger than this is never dropped (its write may
            still be in flight in another process).
        layout: how objects are stored (copies or erasure-coded shares).
        identities: backend name to replica identity (where hints for it are kept);
            default: no hints are read.
        marker_grace_seconds: how long delete markers stay after every replica has
            them (``None``: never removed by this repairer).
        trusts: tells whether a version stamp is within the allowed clock skew; a
            replica holding one beyond it is not copied from (default: all trusted).
        concurrency: actions repaired at once (each is a few sequential requests).
    """

    def __init__(
        self,
        *,
        backends: Mapping[str, Backend],
        journal: RepairJournal,
        dispatcher: Dispatcher,
        in_flight: InFlight,
        grace_seconds: float,
        layout: Layout | None = None,
        identities: Mapping[str, str] | None = None,
        marker_grace_seconds: float | None = None,
        trusts: Callable[[str], bool] | None = None,
        concurrency: int = 1,
    ) -> None:
        self._trusts = trusts or (lambda _version: True)
        self._layout = layout or Layout(list(backends))
        self._identities = dict(identities or {})
        self._marker_grace = marker_grace_seconds
        self._concurrency = concurrency
        self._backends = backends
        self._journal = journal
        self._dispatch = dispatcher
        self._in_flight = in_flight
        self._grace_seconds = grace_seconds
        self._lock = threading.Lock()  # one pass at a time per Storage

    def run_once(self, *, limit: int | None = None) -> RepairReport:
        """Attempt every pending action and hint once, remove expired markers.

        Returns what happened (hints count like journal rows).
        """
        with self._lock:
            tally = _Tally()
            work = self._work(limit)
            with cf.ThreadPoolExecutor(
                max_workers=self._concurrency, thread_name_prefix="failover-repair"
            ) as pool:
                for _ in pool.map(lambda i: self._attempt(i[0], i[1], i[2], tally), work):
                    pass
                for _ in pool.map(lambda m: self._purge(m[0], m[1], tally), self._due_markers()):
                    pass
            failed = sorted(tally.failed)
            return RepairReport(
                repaired=tally.repaired,
                pending=tally.pending,
                failed=tuple(failed),
                dropped=tally.dropped,
                purged=tally.purged,
            )

    def _work(self, limit: int | None) -> list[tuple[JournalAction, list[Hint], bool]]:
        """This pass's actions: the journal's rows and the hints, one per (replica, key).

        A replica and key both in the journal and in hints is repaired once, to the
        newer of the two versions (which covers the older). The flag tells whether the
        journal has a row for it.
        """
        work: dict[tuple[str, str], tuple[JournalAction, list[Hint], bool]] = {
            (a.backend, a.key): (a, [], True)
            for a in self._journal.pending(self._backends, limit=limit)
        }
        for hinted, hints in self._hinted_actions():
            where = (hinted.backend, hinted.key)
            journaled = work.get(where)
            if journaled is None:
                work[where] = (hinted, hints, False)
            elif journaled[0].version < hinted.version:
                work[where] = (hinted, hints, True)
            else:
                work[where] = (journaled[0], hints, True)
        return list(work.values())

    def _attempt(
        self, action: JournalAction, hints: list[Hint], journaled: bool, tally: _Tally
    ) -> None:
        outcome = self._perform(action, tally)
        if outcome is None:
            return
        if outcome != "pending":
            self._journal.complete(action.backend, action.key, action.version)
            self._remove_hints(hints)
        if outcome == "current":
            if not journaled:
                return  # a hint for work already done (another instance's, or a late hint)
            outcome = "repaired"
        tally.add(outcome)

    def _perform(self, action: JournalAction, tally: _Tally) -> str | None:
        """Repair one action; its outcome, or None when it failed (already counted)."""
        if (action.backend, action.key) in self._in_flight:
            return "pending"
        if not self._dispatch.breakers.available(action.backend):
            return "pending"  # do not hammer a backend whose breaker is open
        try:
            if action.op == "delete":
                outcome = self._repair_delete(action)
            elif action.op == "verify":
                outcome = self._repair_corrupt(action)
            else:
                outcome = self._repair_put(action)
        except (FailoverError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self._journal.note_failure(action, reason)
            tally.add("pending", (action.backend, action.key, reason))
            return None
        deleted = outcome in ("repaired", "current") and action.op == "delete"
        if deleted and self._marker_grace is not None:
            self._journal.record_marker(action.key, action.version)
        return outcome

    # -- hints -------------------------------------------------------------------------

    def _hinted_actions(self) -> list[tuple[JournalAction, list[Hint]]]:
        """The newest hinted action per (replica, key), with every hint that names it."""
        found: dict[tuple[str, str], list[Hint]] = {}
        # Hints for a replica whose breaker is open are read too (on the holders, which
        # are up): they count as pending, so a pass never reports "nothing pending"
        # while a replica's hints are outstanding. Holders are chosen once per pass.
        up = {name for name in self._backends if self._dispatch.breakers.available(name)}
        for target, identity in self._identities.items():
            for holder, backend in self._backends.items():
                if holder == target or holder not in up:
                    continue
                try:
                    hints = self._call(
                        holder,
                        "hints",
                        identity,
                        lambda b=backend, i=identity: list(hints_for(b, i)),  # type: ignore[misc]
                    )
                except (FailoverError, OSError):
                    continue  # that holder's hints wait for the next pass
                assert isinstance(hints, list)
                for hint in hints:
                    found.setdefault((target, hint.key), []).append(hint)
        self._report_hints(found)
        work = []
        for (target, key), hints in found.items():
            newest = max(hints, key=lambda h: h.version)
            created = newest.stored.last_modified.timestamp()
            action = JournalAction(target, key, newest.version, newest.op, created=created)
            work.append((action, hints))
        random.shuffle(work)  # instances spread over the hints instead of racing
        return work

    def _report_hints(self, found: Mapping[tuple[str, str], list[Hint]]) -> None:
        """Tell the telemetry how many hints each replica has waiting, and the oldest."""
        now = time.time()
        for target in self._identities:
            ages = [
                now - hint.stored.last_modified.timestamp()
                for (name, _key), hints in found.items()
                if name == target
                for hint in hints
            ]
            count = sum(1 for name, _key in found if name == target)
            self._dispatch.telemetry.stats.record_hints(target, count, max(ages, default=0.0))

    def _remove_hints(self, hints: list[Hint]) -> None:
        for hint in hints:
            holder = self._backends[hint.holder]
            # A hint left behind costs the next pass a head that finds the target up to
            # date, nothing more.
            with contextlib.suppress(FailoverError, OSError):
                self._call(
                    hint.holder,
                    "hint-remove",
                    hint.stored.key,
                    functools.partial(remove_hint, holder, hint),
                )

    # -- delete markers ----------------------------------------------------------------

    def _due_markers(self) -> list[tuple[str, str]]:
        if self._marker_grace is None:
            return []
        return self._journal.markers(older_than=stamp_at(time.time() - self._marker_grace))

    def _purge(self, key: str, version: str, tally: _Tally) -> None:
        """Remove the markers of a delete once every replica has it (or a newer write)."""
        assert self._marker_grace is not None
        if not marker_due(version, grace_seconds=self._marker_grace, now=time.time()):
            return
        if self._journal.pending_for_key(key):
            return  # a replica may still miss the delete
        found: dict[str, StoredObject | None] = {}
        for name in self._backends:
            try:
                found[name] = self._head(name, key)
            except (FailoverError, OSError):
                return  # cannot tell whether that replica holds it: later
        for info in found.values():
            if info is not None and not is_marker(info) and _version(info) < version:
                return  # a replica still holds a copy the delete must remove first
        for name, info in found.items():
            if info is not None and is_marker(info) and _version(info) == version:
                remove = functools.partial(remove_marker, self._backends[name], info)
                try:
                    self._call(name, "purge", key, remove)
                except (FailoverError, OSError):
                    return
        self._journal.forget_marker(key, version)
        tally.add("purged")

    def _call(self, name: str, operation: str, key: str, fn: Callable[[], object]) -> object:
        return self._dispatch.call(name, f"repair-{operation}", key, fn, self._dispatch.deadline())

    def _head(self, name: str, key: str) -> StoredObject | None:
        backend = self._backends[name]
        try:
            info = self._call(name, "head", key, lambda: backend.head(key))
        except NotFoundError:
            return None
        assert isinstance(info, StoredObject)
        return info

    def _repair_delete(self, action: JournalAction) -> str:
        target = self._backends[action.backend]
        outcome = self._call(
            action.backend,
            "delete",
            action.key,
            lambda: write_marker(target, action.key, version=action.version),
        )
        assert isinstance(outcome, ReplicaWrite)
        return "current" if outcome.superseded else "repaired"

    def _repair_corrupt(self, action: JournalAction) -> str:
        key = action.key
        target = self._backends[action.backend]
        info = self._head(action.backend, key)
        if info is None or is_marker(info):
            return self._repair_put(action)
        if _version(info) > action.version:
            return "repaired"  # overwritten by a newer write since
        intact = self._call(action.backend, "verify", key, lambda: bytes_match(target, key, info))
        if intact:
            return "repaired"
        holders, unanswered = self._holders(action, at_least=_version(info), exact=True)
        if unanswered:
            raise unanswered[0]  # nobody can tell which replicas are intact
        if len(holders) < self._layout.min_holders:
            return "pending"
        rebuild = functools.partial(
            self._layout.rebuild,
            self._backends,
            action.backend,
            key,
            holders,
            replace_etag=info.etag,
        )
        self._call(action.backend, "put", key, rebuild)
        return "repaired"

    def _holders(
        self, action: JournalAction, *, at_least: str, exact: bool = False
    ) -> tuple[dict[str, StoredObject], list[BaseException]]:
        """Other replicas holding ``at_least`` (or newer, unless ``exact``).

        Returns:
            The holders, and the errors of the replicas that could not answer.
        """
        holders: dict[str, StoredObject] = {}
        unanswered: list[BaseException] = []
        for name in self._backends:
            if name == action.backend:
                continue
            try:
                info = self._head(name, action.key)
            except (FailoverError, OSError) as exc:
                unanswered.append(exc)
                continue
            if info is None:
                continue
            version = _version(info)
            if not self._trusts(version):
                continue  # a stamp from a clock far ahead is not spread to others
            if version == at_least or (not exact and version > at_least):
                holders[name] = info
        return holders, unanswered

    def _repair_put(self, action: JournalAction) -> str:
        key = action.key
        target_info = self._head(action.backend, key)
        if target_info is not None and _version(target_info) >= action.version:
            return "current"  # already there (the original write landed after all)
        holders, unanswered = self._holders(action, at_least=action.version)
        if not holders:
            age = time.time() - action.created
            if unanswered or age < self._grace_seconds:
                return "pending"  # cannot tell yet whether some replica has it
            return "dropped"  # never acknowledged anywhere: nothing to copy
        newest = max(holders.values(), key=_version)
        if is_marker(newest):
            # Deleted after the write the target missed: it gets the delete instead.
            return self._repair_delete(
                JournalAction(action.backend, key, _version(newest), "delete")
            )
        holders = {n: i for n, i in holders.items() if not is_marker(i)}
        rebuild = functools.partial(
            self._layout.rebuild, self._backends, action.backend, key, holders
        )
        self._call(action.backend, "put", key, rebuild)
        return "repaired"


class RepairWorker:
    """Runs :meth:`Repairer.run_once` every ``interval_seconds`` in a daemon thread.

    ``stop()`` returns promptly: it does not wait for a pass blocked on a hung replica
    (the journal keeps what that pass did not finish).
    """

    def __init__(self, repairer: Repairer, *, interval_seconds: float) -> None:
        self._repairer = repairer
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="failover-repair", daemon=True)

    def start(self) -> RepairWorker:
        """Start the background thread."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = self._repairer.run_once()
            except Exception:
                logger.exception("background repair pass failed")
                continue
            if report.repaired or report.failed:
                logger.info(
                    "repair pass: %d repaired, %d pending, %d failed",
                    report.repaired,
                    report.pending,
                    len(report.failed),
                )

    def stop(self, *, timeout_seconds: float = 1.0) -> None:
        """Ask the thread to stop and wait briefly for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_seconds)
