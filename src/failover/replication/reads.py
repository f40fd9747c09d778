"""The read path over replicas: which replica to ask, what its answer proves.

:class:`ReplicaReads` asks the replicas through the dispatcher (breakers, health routing,
hedging, deadlines) and adds what storage needs on top: the journal's knowledge of which
replicas missed an action, delete markers, "not found" only when it is proven
(N - W + 1 trustworthy answers), versions compared across a majority for
``consistency="latest"``, copies without failover metadata checked against the other
holders, and merged listings. Encrypted and erasure-coded objects are decoded on top of
it by :mod:`failover.segmentation.decode`.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

from failover.backends.base import (
    META_SHA256,
    META_VERSION,
    Backend,
    ByteRange,
    ObjectReader,
    StoredObject,
)
from failover.dispatch import Dispatcher
from failover.errors import (
    AllBackendsFailed,
    BackendError,
    BackendSkipped,
    FailoverError,
    IntegrityError,
    NotFoundError,
)
from failover.keys import RESERVED_KEY_PREFIX
from failover.replication.journal import RepairJournal
from failover.replication.markers import DeletedMarker, is_marker
from failover.replication.reader import StorageReader
from failover.replication.stored import close_reader, info_of, meta, object_info, verify_bytes
from failover.types import ObjectInfo

__all__ = ["ReplicaReads"]

T = TypeVar("T")


class ReplicaReads:
    """Reads of whole copies (replicated objects), and the read logic decoders share.

    Args:
        backends: the replicas by name, in priority order.
        dispatcher: runs every backend call.
        journal: the repair journal (None with a single backend).
        required_acks: the acknowledgements a write needs (W).
    """

    def __init__(
        self,
        backends: Mapping[str, Backend],
        *,
        dispatcher: Dispatcher,
        journal: RepairJournal | None,
        required_acks: int,
    ) -> None:
        self._backends = backends
        self._dispatch = dispatcher
        self._journal = journal
        self._required_acks = required_acks
        #: Several replicas: copies without failover metadata are compared.
        self.replicated = len(backends) > 1

    def get(
        self,
        key: str,
        byte_range: ByteRange | None,
        exclude: Mapping[str, BaseException],
    ) -> bytes:
        """The bytes of a replicated object from the first replica with intact ones."""

        def verify(name: str, fetched: Any) -> None:
            if byte_range is None:
                try:
                    verify_bytes(key, name, fetched.info, fetched.data)
                except IntegrityError:
                    self.schedule(name, key, meta(fetched.info, META_VERSION), "verify")
                    raise
                if self.replicated and not meta(fetched.info, META_SHA256):
                    self.check_unversioned(key, name, hashlib.sha256(fetched.data).hexdigest())

        _, fetched = self.first(
            "get",
            key,
            lambda b: b.get(key, byte_range=byte_range),
            info_of=info_of,
            accept=verify,
            exclude=exclude,
        )
        data: bytes = fetched.data
        return data

    def open(self, key: str, byte_range: ByteRange | None) -> StorageReader:
        """A verified, resumable stream over a replicated object."""
        name, reader = self.first(
            "open",
            key,
            lambda b: b.open(key, byte_range=byte_range),
            info_of=info_of,
            discard=close_reader,
        )
        return StorageReader(self, key, name, reader, byte_range=byte_range)

    def head(self, key: str) -> ObjectInfo:
        """Describe ``key`` from the first replica that has it."""
        name, info = self.first("head", key, lambda b: b.head(key), info_of=lambda info: info)
        return object_info(info, first_backend=name)

    def first(
        self,
        operation: str,
        key: str,
        fn: Callable[[Backend], T],
        *,
        info_of: Callable[[T], StoredObject],
        accept: Callable[[str, T], None] | None = None,
        discard: Callable[[T], None] | None = None,
        exclude: Mapping[str, BaseException] | None = None,
    ) -> tuple[str, T]:
        """First accepted answer from a replica; a NotFound is confirmed by every replica.

        Replicas with a pending repair for the key are not trusted: one that missed a
        put is asked only after the others, one that missed a delete is not asked. A
        delete marker is a "not found" answer; a replica answering with a version older
        than a marker another replica gave in this read missed that delete: its answer
        is refused and the delete scheduled for it.

        Returns ``(backend name, answer)``.
        """
        skip, demote = self.journal_hints(key, exclude or {})
        deleted: dict[str, str] = {}  # replica -> version of the marker it answered with

        def attempt(name: str) -> T:
            answer = fn(self._backends[name])
            info = info_of(answer)
            if is_marker(info):
                if discard is not None:
                    discard(answer)
                deleted[name] = meta(info, META_VERSION)
                raise DeletedMarker(key, backend=name, version=deleted[name])
            return answer

        def check(name: str, answer: T) -> None:
            newest_delete = max(deleted.values(), default="")
            if newest_delete and meta(info_of(answer), META_VERSION) < newest_delete:
                if discard is not None:
                    discard(answer)
                self.schedule(name, key, newest_delete, "delete")
                raise DeletedMarker(key, backend=name, version=newest_delete)
            if accept is not None:
                accept(name, answer)

        try:
            return self._dispatch.first(
                operation,
                key,
                attempt,
                accept=check,
                discard=discard,
                # Another replica may hold a write this one missed: keep looking.
                is_miss=lambda exc: isinstance(exc, NotFoundError),
                demote=demote,
                exclude=skip,
            )
        except AllBackendsFailed as failure:
            errors = failure.errors
            misses = [e for e in errors.values() if isinstance(e, NotFoundError)]
            corrupt = [e for e in errors.values() if isinstance(e, IntegrityError)]
            if misses and not corrupt and self._absence_confirmed(key, errors):
                raise NotFoundError(key) from failure
            if corrupt and len(corrupt) + len(misses) == len(errors):
                raise IntegrityError(
                    f"{key!r}: no replica holds bytes matching their sha256 "
                    f"({len(corrupt)} corrupt)"
                ) from failure
            raise

    def _absence_confirmed(self, key: str, errors: Mapping[str, BaseException]) -> bool:
        """Tell whether the replicas' answers prove that ``key`` does not exist.

        A write is acknowledged by ``required_acks`` (W) of the N replicas, so any
        N - W + 1 of them include one that holds it: that many trustworthy "not found"
        answers prove absence (Dynamo's read/write quorum overlap). A "not found" from
        a replica the journal knows missed a write of the key proves nothing; one from a
        replica that missed its delete (not asked) counts, since the key is gone, and so
        does a delete marker newer than the write the journal knows it missed.
        Fewer answers than that, with the rest unreachable, is an availability error.
        """
        pending = self._journal.pending_for_key(key) if self._journal is not None else {}

        def trusted_absence(name: str, exc: BaseException) -> bool:
            if not isinstance(exc, NotFoundError):
                return False
            if name not in pending or pending[name].op == "delete":
                return True
            return isinstance(exc, DeletedMarker) and exc.version >= pending[name].version

        trusted = [name for name, exc in errors.items() if trusted_absence(name, exc)]
        return len(trusted) >= len(self._backends) - self._required_acks + 1

    def journal_hints(
        self, key: str, exclude: Mapping[str, BaseException]
    ) -> tuple[dict[str, BaseException], set[str]]:
        """Replicas not to ask (a pending delete) and to ask last (a pending put)."""
        skipped = dict(exclude)
        demote: set[str] = set()
        if self._journal is not None:
            for name, action in self._journal.pending_for_key(key).items():
                if action.op == "delete":
                    skipped.setdefault(name, NotFoundError(key, backend=name))
                else:
                    demote.add(name)
        return skipped, demote

    def schedule(
        self, name: str, key: str, version: str, op: Literal["put", "delete", "verify"]
    ) -> None:
        """Journal a read repair for one replica (the repairer performs it)."""
        if self._journal is not None and version:
            self._journal.record([name], key, version, op)

    def schedule_corrupt(
        self, key: str, failed: Mapping[str, BaseException], infos: Mapping[str, StoredObject]
    ) -> None:
        """Journal a rewrite for each share that failed its checksums in a read."""
        for name, exc in failed.items():
            if isinstance(exc, IntegrityError) and name in infos:
                self.schedule(name, key, meta(infos[name], META_VERSION), "verify")

    def check_unversioned(self, key: str, name: str, digest: str) -> None:
        """Serve a copy without failover metadata only if the other holders agree.

        Such a copy carries no sha256 to check it against: it may be an object written
        by another tool (then every holder has the same bytes), or a replica whose
        metadata was stripped and bytes changed. Each other replica that holds the key
        is compared (its recorded sha256, else its bytes); one that disagrees makes this
        copy untrustworthy. Replicas that cannot be asked are not counted.

        Raises:
            IntegrityError: another replica holds different bytes.
        """
        deadline = self._dispatch.deadline()
        for other, backend in self._backends.items():
            if other == name:
                continue
            try:
                info = self._dispatch.call(other, "head", key, partial(backend.head, key), deadline)
                if is_marker(info):
                    continue
                theirs = (
                    meta(info, META_SHA256)
                    or hashlib.sha256(
                        self._dispatch.call(
                            other, "get", key, partial(backend.get, key), deadline
                        ).data
                    ).hexdigest()
                )
            except (NotFoundError, BackendError, BackendSkipped, OSError):
                continue
            if theirs != digest:
                raise IntegrityError(
                    f"{key!r} on {name} has no failover metadata and other bytes than {other}"
                )

    def stale_replicas(self, key: str) -> dict[str, BaseException]:
        """Ask a majority for their version; return the replicas not holding the newest.

        Each stale replica is scheduled for read repair, including those that answer
        after the majority did (their heads finish in the background). When the newest
        version is a delete marker the key is deleted: NotFoundError, and the replicas
        still holding an older copy are scheduled for the delete.
        """
        lock = threading.Lock()
        newest_box: list[tuple[str, Literal["put", "delete"]]] = []
        seen: dict[str, str] = {}

        def version_of(name: str) -> tuple[str, bool] | None:
            try:
                info = self._backends[name].head(key)
            except NotFoundError:
                answer = None
            else:
                answer = (meta(info, META_VERSION), is_marker(info))
            with lock:
                seen[name] = answer[0] if answer else ""
                late = bool(newest_box) and seen[name] < newest_box[0][0]
            if late:
                self.schedule(name, key, *newest_box[0])
            return answer

        answers = self._dispatch.fan_out(
            "head", key, version_of, required=len(self._backends) // 2 + 1
        )
        versions = {name: a for name, a in answers.items() if a is not None}
        if not versions:
            raise NotFoundError(key)
        newest, deleted = max(versions.values())
        op: Literal["put", "delete"] = "delete" if deleted else "put"
        with lock:
            newest_box.append((newest, op))
            # Answers that came in after the majority but before ``newest`` was known.
            between = [n for n, v in seen.items() if n not in answers and v < newest]
        for name in between:
            self.schedule(name, key, newest, op)
        stale = [n for n in answers if n not in versions or versions[n][0] < newest]
        for name in stale:
            self.schedule(name, key, newest, op)
        if deleted:
            holder = next(n for n, a in versions.items() if a == (newest, True))
            raise DeletedMarker(key, backend=holder, version=newest)
        # Read only from replicas known to hold the newest version: one that did not
        # answer in time may be stale too.
        excluded: dict[str, BaseException] = {
            name: BackendSkipped(f"[{name}] not read: its version was not confirmed")
            for name in self._backends
            if name not in answers
        }
        for name in stale:
            excluded[name] = NotFoundError(key, backend=name)
        return excluded

    def reopen_at(
        self, key: str, version: str, offset: int, stop: int | None, exclude: set[str]
    ) -> tuple[str, ObjectReader] | None:
        """Open ``key`` at ``version`` from ``offset`` on a replica not in ``exclude``."""
        deadline = self._dispatch.deadline()
        for name in self._dispatch.router.order(
            self._dispatch.names, available=self._dispatch.breakers.available
        ):
            if name in exclude:
                continue
            backend = self._backends[name]
            try:
                reader = self._dispatch.call(
                    name,
                    "open",
                    key,
                    lambda b=backend: b.open(key, byte_range=(offset, stop)),  # type: ignore[misc]
                    deadline,
                )
            except (FailoverError, OSError):
                continue
            if meta(reader.info, META_VERSION) == version:
                return name, reader
            reader.close()
        return None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The replicas' listings merged as they stream (see ``Storage.list``).

        Keys under the reserved hint prefix, keys this host's journal knows a replica
        missed the delete of, and keys whose newest entry is a delete marker are left out.
        """
        errors: dict[str, BaseException] = {}
        # A replica that missed a delete still lists the key: hide it there.
        deleted = (
            {bk for bk, a in self._journal.pending_under(prefix).items() if a.op == "delete"}
            if self._journal is not None
            else set()
        )
        streams = []
        for name, backend in self._backends.items():
            if not self._dispatch.breakers.available(name):
                errors[name] = BackendSkipped(f"[{name}] not listed: circuit breaker open")
                continue
            listing = _guarded_listing(name, backend.list(prefix), errors)
            if RESERVED_KEY_PREFIX.startswith(prefix):
                listing = (i for i in listing if not i[0].key.startswith(RESERVED_KEY_PREFIX))
            if deleted:
                listing = (item for item in listing if (item[1], item[0].key) not in deleted)
            streams.append(listing)
        merged = heapq.merge(*streams, key=lambda item: item[0].key.encode("utf-8"))
        current: list[tuple[StoredObject, str]] = []
        for item in merged:
            if current and current[0][0].key != item[0].key:
                yield from self._listed(current)
                current = []
            current.append(item)
        if current:
            yield from self._listed(current)
        if len(errors) == len(self._backends):
            raise AllBackendsFailed(f"list {prefix!r}", errors)

    def _listed(self, entries: Sequence[tuple[StoredObject, str]]) -> Iterator[ObjectInfo]:
        """The listing entry for one key (nothing if its newest version is a delete marker).

        Listings without metadata (S3) cannot tell a marker from an empty object: an
        empty entry is described with a ``head``, and so is every entry of a key where
        a marker was seen (its version must be compared with theirs). Other keys cost
        no request.
        """
        if any(s.metadata is None and s.size == 0 for s, _ in entries) or any(
            is_marker(s) for s, _ in entries
        ):
            entries = [(self._described(name, stored), name) for stored, name in entries]
        stored, name = max(entries, key=lambda item: meta(item[0], META_VERSION))
        if not is_marker(stored):
            yield object_info(stored, first_backend=name)

    def _described(self, name: str, stored: StoredObject) -> StoredObject:
        """``stored`` with its metadata (a head when the listing had none)."""
        if stored.metadata is not None:
            return stored
        backend = self._backends[name]
        try:
            return self._dispatch.call(
                name,
                "head",
                stored.key,
                partial(backend.head, stored.key),
                self._dispatch.deadline(),
            )
        except (FailoverError, OSError):
            return stored  # deleted since, or unreachable: the listing's word stands


def _guarded_listing(
    name: str, stream: Iterator[StoredObject], errors: dict[str, BaseException]
) -> Iterator[tuple[StoredObject, str]]:
    try:
        for stored in stream:
            yield stored, name
    except (BackendError, OSError) as exc:
        errors[name] = exc
