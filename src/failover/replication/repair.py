"""Repair: work through the journal until every replica holds every action.

For each pending row the repairer asks the *other* replicas what they hold, never the
caller's memory:

* a **put** row is repaired by copying the newest version any replica holds (at least
  the row's version) to the target, with a last-writer-wins conditional write
  (:func:`~failover.replication.writer.write_if_newer`), after checking the copied
  bytes against their sha256;
* a **delete** row (a tombstone) removes the target's copy unless the target holds a
  newer version (:func:`~failover.replication.writer.delete_if_older`);
* a put that no replica holds and that is older than the grace period was never
  acknowledged (its writer died or gave up before any replica stored it): the row is
  *dropped*, since nothing exists to copy.

Every call goes through the :class:`~failover.dispatch.Dispatcher`, so the repairer
respects breakers (it does not hammer a backend whose breaker is open: those rows stay
pending), retries and deadlines. Repair is idempotent: running it twice, or from two
processes sharing a journal, does no harm.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from failover.backends.base import META_VERSION, Backend, StoredObject
from failover.dispatch import Dispatcher
from failover.errors import FailoverError, NotFoundError
from failover.replication.journal import JournalAction, RepairJournal
from failover.replication.layout import Layout, bytes_match
from failover.replication.writer import delete_if_older
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
        concurrency: int = 8,
    ) -> None:
        self._layout = layout or Layout(list(backends))
        self._concurrency = concurrency
        self._backends = backends
        self._journal = journal
        self._dispatch = dispatcher
        self._in_flight = in_flight
        self._grace_seconds = grace_seconds
        self._lock = threading.Lock()  # one pass at a time per Storage

    def run_once(self, *, limit: int | None = None) -> RepairReport:
        """Attempt every pending action once; return what happened."""
        with self._lock:
            tally = _Tally()
            actions = self._journal.pending(self._backends, limit=limit)
            with cf.ThreadPoolExecutor(
                max_workers=self._concurrency, thread_name_prefix="failover-repair"
            ) as pool:
                for _ in pool.map(lambda action: self._attempt(action, tally), actions):
                    pass
            failed = sorted(tally.failed)
            return RepairReport(
                repaired=tally.repaired,
                pending=tally.pending,
                failed=tuple(failed),
                dropped=tally.dropped,
            )

    def _attempt(self, action: JournalAction, tally: _Tally) -> None:
        if (action.backend, action.key) in self._in_flight:
            tally.add("pending")
            return
        if not self._dispatch.breakers.available(action.backend):
            tally.add("pending")  # do not hammer a backend whose breaker is open
            return
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
            return
        if outcome != "pending":
            self._journal.complete(action.backend, action.key, action.version)
        tally.add(outcome)

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
        self._call(
            action.backend,
            "delete",
            action.key,
            lambda: delete_if_older(target, action.key, version=action.version),
        )
        return "repaired"

    def _repair_corrupt(self, action: JournalAction) -> str:
        key = action.key
        target = self._backends[action.backend]
        info = self._head(action.backend, key)
        if info is None:
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
            if version == at_least or (not exact and version > at_least):
                holders[name] = info
        return holders, unanswered

    def _repair_put(self, action: JournalAction) -> str:
        key = action.key
        target_info = self._head(action.backend, key)
        if target_info is not None and _version(target_info) >= action.version:
            return "repaired"  # already there (the original write landed after all)
        holders, unanswered = self._holders(action, at_least=action.version)
        if not holders:
            age = time.time() - action.created
            if unanswered or age < self._grace_seconds:
                return "pending"  # cannot tell yet whether some replica has it
            return "dropped"  # never acknowledged anywhere: nothing to copy
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
