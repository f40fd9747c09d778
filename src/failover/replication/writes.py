"""The write path: journal the intent, fan the write out, leave hints for misses.

:class:`ReplicaWrites` turns one ``put`` or ``delete`` into a replica action per
backend: the intent is journaled before anything is sent; each replica gets a
last-writer-wins conditional write (:func:`~failover.replication.writer.write_if_newer`,
or a delete marker: :mod:`failover.replication.markers`); the call returns once the
write policy's acknowledgements are in; replicas that end up missing the action get
hints on the replicas that took it (:mod:`failover.replication.hints`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Literal, TypeVar

from failover.backends.base import META_SHA256, META_VERSION, Backend, StoredObject
from failover.dispatch import Dispatcher
from failover.errors import FailoverError, QuorumNotReached, Superseded
from failover.events import ClockSkewDetected
from failover.payload import Payload, PayloadSource
from failover.replication import hints
from failover.replication.journal import RepairJournal
from failover.replication.layout import Layout
from failover.replication.markers import write_marker
from failover.replication.repair import InFlight
from failover.replication.stored import meta, object_info
from failover.replication.version import HybridClock
from failover.replication.writer import RecentKeys, write_if_newer
from failover.types import ObjectInfo

__all__ = ["ReplicaWrites"]

T = TypeVar("T")


class ReplicaWrites:
    """Replicated puts and deletes of one Storage.

    Args:
        backends: the replicas by name, in priority order.
        dispatcher: runs every backend call.
        journal: the repair journal (None with a single backend: plain writes).
        required_acks: the acknowledgements a write needs (W).
        clock: issues the version stamps.
        layout: how objects are stored (copies, encrypted, erasure-coded shares).
        in_flight: replica actions still running (``flush`` and ``close`` wait).
        identities: backend name to replica identity (where hints for it go).
    """

    def __init__(
        self,
        backends: Mapping[str, Backend],
        *,
        dispatcher: Dispatcher,
        journal: RepairJournal | None,
        required_acks: int,
        clock: HybridClock,
        layout: Layout,
        in_flight: InFlight,
        identities: Mapping[str, str],
    ) -> None:
        self._backends = backends
        self._dispatch = dispatcher
        self._journal = journal
        self._required_acks = required_acks
        self._clock = clock
        self._layout = layout
        self._in_flight = in_flight
        self._identities = identities
        self._recent_keys = RecentKeys()
        # One replica has nothing to repair from: no journal, no conditional writes.
        self._replicated = len(backends) > 1

    def put(
        self,
        key: str,
        data: PayloadSource,
        *,
        content_type: str,
        user_metadata: Mapping[str, str],
    ) -> ObjectInfo:
        """Store ``data`` at ``key`` (validated) on every replica; see ``Storage.put``."""
        payload = Payload.from_source(data)
        version = self._clock.now()
        base_metadata = {**user_metadata, META_VERSION: version}
        if self._layout.transforms:
            # Encrypt and/or erasure-code: each backend gets its own bytes (spooled).
            with payload:
                encoded = self._layout.encode(key, version, payload)
            payloads: Mapping[str, Payload] = encoded.payloads
            stored_metadata: dict[str, dict[str, str]] = {
                name: {**base_metadata, **extra} for name, extra in encoded.metadata.items()
            }
            cleanup = encoded.close
        else:
            payloads = dict.fromkeys(self._backends, payload)
            plain = {**base_metadata, META_SHA256: payload.sha256}
            stored_metadata = dict.fromkeys(self._backends, plain)
            cleanup = payload.close
        content_sha256, size = payload.sha256, payload.size
        known = self._replicated and key in self._recent_keys  # plain puts never look

        def write(backend: Backend) -> StoredObject:
            if not self._replicated:
                return backend.put(
                    key,
                    payloads[backend.name],
                    content_type=content_type,
                    metadata=stored_metadata[backend.name],
                )
            outcome = write_if_newer(
                backend,
                key,
                payloads[backend.name],
                content_type=content_type,
                metadata=stored_metadata[backend.name],
                version=version,
                exists=known,
                horizon=self._clock.horizon(),
            )
            self._recent_keys.add(key)
            if outcome.untrusted:
                self._report_skew(backend.name, key, outcome.untrusted)
            if outcome.superseded:
                self._clock.observe(meta(outcome.stored, META_VERSION))
            return outcome.stored

        try:
            acks = self._replicate("put", key, version, write, cleanup=cleanup)
        except BaseException:
            if not self._replicated:
                cleanup()
            raise
        newer = {n: meta(s, META_VERSION) for n, s in acks.items()}
        newer = {n: v for n, v in newer.items() if v != version}
        if newer:
            # A replica already held a newer version: ours lost the last-writer-wins
            # race and is not the key's value (repair spreads the winner, not ours).
            winner = max(newer, key=lambda n: newer[n])
            raise Superseded(key, version=version, current=newer[winner], backend=winner)
        name = next(iter(acks))
        info = object_info(acks[name], first_backend=name)
        return dataclasses.replace(info, size=size, checksum=content_sha256)

    def delete(self, key: str) -> None:
        """Delete ``key`` (validated) from every replica; see ``Storage.delete``."""
        version = self._clock.now()
        # Replicated, the key keeps a delete marker: a later put looks before writing.
        if self._replicated:
            self._recent_keys.add(key)
        else:
            self._recent_keys.discard(key)

        def remove(backend: Backend) -> None:
            if not self._replicated:
                backend.delete(key)
                return
            # A marker, not a removal: a late write of an older version loses to it.
            outcome = write_marker(backend, key, version=version, horizon=self._clock.horizon())
            if outcome.untrusted:
                self._report_skew(backend.name, key, outcome.untrusted)

        self._replicate("delete", key, version, remove)

    def _replicate(
        self,
        operation: Literal["put", "delete"],
        key: str,
        version: str,
        action: Callable[[Backend], T],
        *,
        cleanup: Callable[[], None] | None = None,
    ) -> dict[str, T]:
        """Journal the intent, fan ``action`` out, and clear each replica's row on success.

        The intent is durable before any replica is written, so a replica that misses
        the action (down, breaker open, too slow, writer killed) stays pending until the
        repairer brings it up to date.
        """
        journal = self._journal
        names = list(self._backends)
        if journal is not None:
            try:
                journal.record(names, key, version, operation)
                if operation == "delete":
                    journal.record_marker(key, version)
            except (sqlite3.Error, OSError) as exc:
                # Nothing was sent: without a durable intent no replica is written.
                if cleanup is not None:
                    cleanup()
                raise FailoverError(
                    f"{operation} of {key!r} not attempted: the repair journal "
                    f"{journal.path!r} cannot record it ({exc}); nothing was written. "
                    "Check that its disk has space and is writable (FAILOVER_JOURNAL)"
                ) from exc
            self._in_flight.add(names, key)

        acknowledged: set[str] = set()
        unfinished = [len(names)]
        lock = threading.Lock()

        def run(name: str) -> T:
            result = action(self._backends[name])
            if journal is not None:
                journal.complete(name, key, version)
            acknowledged.add(name)
            return result

        def finished(name: str) -> None:
            with lock:
                unfinished[0] -= 1
                last = unfinished[0] == 0
            if last and journal is not None and acknowledged and len(acknowledged) < len(names):
                missed = [n for n in names if n not in acknowledged]
                self._leave_hints(key, version, operation, missed, sorted(acknowledged))
            self._in_flight.discard(name, key)

        try:
            return self._dispatch.fan_out(
                operation,
                key,
                run,
                required=self._required_acks,
                cleanup=cleanup,
                on_finished=finished,
            )
        except QuorumNotReached as short:
            raise QuorumNotReached(
                key,
                operation=operation,
                version=version,
                required=short.required,
                succeeded=short.succeeded,
                failed=short.failed,
            ) from short

    def _leave_hints(
        self,
        key: str,
        version: str,
        operation: Literal["put", "delete"],
        missed: Sequence[str],
        holders: Sequence[str],
    ) -> None:
        """Leave, on each replica that took an action, a hint for each that missed it.

        The hints let any instance's repairer complete the action even if this host
        and its journal are lost. They are written in the background (``close`` and
        ``flush`` wait for them); one that fails leaves the journal row as the record.
        """
        deadline = self._dispatch.deadline()
        for holder in holders:
            for target in missed:
                hint_key = hints.hint_key(self._identities[target], key)
                write = partial(
                    hints.write_hint,
                    self._backends[holder],
                    self._identities[target],
                    key,
                    version,
                    operation,
                )
                self._in_flight.add([holder], hint_key)
                try:
                    future = self._dispatch.submit(holder, "hint", key, write, deadline)
                except (FailoverError, RuntimeError):
                    self._in_flight.discard(holder, hint_key)
                    continue  # stopping: the journal row remains the record
                future.add_done_callback(
                    lambda _f, h=holder, k=hint_key: self._in_flight.discard(h, k)  # type: ignore[misc]
                )

    def _report_skew(self, name: str, key: str, version: str) -> None:
        ahead = self._clock.ahead_ms(version) / 1000
        self._dispatch.emit(ClockSkewDetected(name, key, version, ahead))
