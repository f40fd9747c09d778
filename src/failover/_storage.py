"""The Storage facade: one object-storage API over several replicas."""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import io
import mimetypes
import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Literal, TypeVar

from failover.backends import from_url
from failover.backends.base import (
    META_SHA256,
    META_VERSION,
    Backend,
    ByteRange,
    FetchedObject,
    ObjectReader,
    StoredObject,
    replica_identity,
    resolve_range,
)
from failover.config import Settings
from failover.dispatch import Dispatcher
from failover.errors import (
    AllBackendsFailed,
    BackendError,
    BackendSkipped,
    ConfigError,
    FailoverError,
    IntegrityError,
    NotFoundError,
    QuorumNotReached,
    Superseded,
    is_transient,
)
from failover.events import ClockSkewDetected, EventHook
from failover.keys import (
    RESERVED_KEY_PREFIX,
    RESERVED_METADATA_PREFIX,
    validate_key,
    validate_metadata,
    validate_prefix,
)
from failover.payload import Payload, PayloadSource
from failover.replication import hints
from failover.replication.journal import RepairJournal
from failover.replication.layout import (
    META_CONTENT_SHA256,
    META_LAYOUT,
    META_SIZE,
    Layout,
)
from failover.replication.markers import DeletedMarker, is_marker, live, write_marker
from failover.replication.reconcile import Reconciler
from failover.replication.repair import InFlight, Repairer, RepairWorker
from failover.replication.version import HybridClock
from failover.replication.writer import RecentKeys, write_if_newer
from failover.resilience import Clock
from failover.types import BackendHealth, ObjectInfo, ReconcileReport, RepairReport

__all__ = ["Storage", "StorageReader"]

T = TypeVar("T")
_WORKERS_PER_BACKEND = 16
_READ_CHUNK = 1024 * 1024


class Storage:
    """Replicated object storage that keeps working when one cloud is down.

    Build it with :meth:`from_env` or :meth:`from_urls`, or pass backends directly.
    Use it as a context manager (or call :meth:`close`) to release clients and workers.

    Args:
        backends: the replicas, in priority order (names must be unique).
        settings: policies and timeouts; defaults apply when omitted.
        writer_id: identity in version stamps (default: random per instance).
        hooks: event hooks (default: log through the ``failover`` logger).
        clock: time source of the resilience policies (tests pass a ManualClock).
        rng: random source for routing and backoff jitter.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        settings: Settings | None = None,
        writer_id: str | None = None,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not backends:
            raise ConfigError("Storage needs at least one backend")
        names = [b.name for b in backends]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(
                f"backend names must be unique, got {', '.join(duplicates)} more than once; "
                "add name=… to the URLs"
            )
        if settings is None:
            settings = Settings(backends=tuple(names))
        elif len(settings.backends) != len(backends):
            # Settings describe these backends (validates the quorum against their count).
            settings = dataclasses.replace(settings, backends=tuple(names))
        self._settings = settings
        self._backends: dict[str, Backend] = {b.name: b for b in backends}
        self._journal: RepairJournal | None = None
        self._dispatch = Dispatcher(
            names,
            settings=settings,
            hooks=hooks,
            clock=clock,
            rng=rng,
            workers_per_backend=_WORKERS_PER_BACKEND,
            pending_repairs=self._pending_repairs,
        )
        self._clock = HybridClock(
            writer_id=writer_id, max_skew_ms=round(settings.max_clock_skew_seconds * 1000)
        )
        self._closed = False
        self._lock = threading.Lock()
        self._in_flight = InFlight()
        self._recent_keys = RecentKeys()
        self._layout = _layout_for(settings, names)
        # One replica has nothing to repair from: no journal, no conditional writes.
        self._replicated = len(backends) > 1
        self._repairer: Repairer | None = None
        self._worker: RepairWorker | None = None
        self._identities = {b.name: replica_identity(b) for b in backends}
        if self._replicated:
            try:
                self._journal = RepairJournal(settings.journal_path, replicas=self._identities)
            except BaseException:
                self._dispatch.close()
                raise
            self._repairer = Repairer(
                backends=self._backends,
                journal=self._journal,
                dispatcher=self._dispatch,
                in_flight=self._in_flight,
                grace_seconds=2 * settings.deadline_seconds,
                layout=self._layout,
                identities=self._identities,
                marker_grace_seconds=settings.tombstone_grace_seconds,
                trusts=self._clock.trusts,
            )
            if settings.repair_interval_seconds > 0:
                self._worker = RepairWorker(
                    self._repairer, interval_seconds=settings.repair_interval_seconds
                ).start()

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        writer_id: str | None = None,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> Storage:
        """Build the backends named in ``settings`` and a Storage over them.

        The keyword arguments are those of :class:`Storage`.
        """
        built: list[Backend] = []
        try:
            built.extend(
                from_url(
                    url,
                    timeout_seconds=settings.timeout_seconds,
                    max_connections=_WORKERS_PER_BACKEND * 2,
                )
                for url in settings.backends
            )
            return cls(
                built, settings=settings, writer_id=writer_id, hooks=hooks, clock=clock, rng=rng
            )
        except BaseException:
            for backend in built:
                backend.close()
            raise

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        hooks: Sequence[EventHook] | None = None,
    ) -> Storage:
        """Build from the ``FAILOVER_*`` environment variables (see ``docs/configuration.md``).

        Raises:
            ConfigError: a variable is missing or invalid (the message names it).
        """
        return cls.from_settings(Settings.from_env(environ), hooks=hooks)

    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str] | str,
        *,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> Storage:
        """Build from backend URLs in priority order and options named like the variables.

        Example:
            ``Storage.from_urls(["s3://a", "az://b", "gs://c"], write_policy="quorum")``

        Args:
            urls: backend URLs, in priority order.
            hooks: event hooks (default: log through the ``failover`` logger).
            clock: time source of the resilience policies.
            rng: random source for routing and jitter.
            **options: settings by their lower-case names (``timeout_seconds=2``).

        Raises:
            ConfigError: an option or URL is invalid (the message names it).
        """
        return cls.from_settings(
            Settings.from_urls(urls, **options), hooks=hooks, clock=clock, rng=rng
        )

    # -- properties --------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self._settings

    @property
    def backends(self) -> Mapping[str, Backend]:
        """The backends by name, in priority order."""
        return dict(self._backends)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Drain replica writes still in flight, then stop workers and release clients.

        A ``quorum`` or ``one`` write returns before its slower replicas finish; close
        waits for them, retries included, up to ``deadline_seconds`` (a short-lived
        process must not drop them). After it returns no attempt or retry starts: an
        attempt still stuck inside a provider SDK is abandoned, its replica stays
        pending in the journal, and the repairer (any instance's) completes it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._worker is not None:
            self._worker.stop()
        self._in_flight.wait_idle(self._settings.deadline_seconds)
        self._dispatch.close()
        if self._journal is not None:
            self._journal.close()
        for backend in self._backends.values():
            backend.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Storage(backends={list(self._backends)}, write_policy="
            f"{self._settings.write_policy!r}, read_policy={self._settings.read_policy!r})"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise FailoverError("this Storage is closed")

    # -- reads go through the dispatcher; these helpers add storage semantics ----------

    def _read(
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
        skip, demote = self._journal_hints(key, exclude or {})
        deleted: dict[str, str] = {}  # replica -> version of the marker it answered with

        def attempt(name: str) -> T:
            answer = fn(self._backends[name])
            info = info_of(answer)
            if is_marker(info):
                if discard is not None:
                    discard(answer)
                deleted[name] = _meta(info, META_VERSION)
                raise DeletedMarker(key, backend=name, version=deleted[name])
            return answer

        def check(name: str, answer: T) -> None:
            newest_delete = max(deleted.values(), default="")
            if newest_delete and _meta(info_of(answer), META_VERSION) < newest_delete:
                if discard is not None:
                    discard(answer)
                self._schedule(name, key, newest_delete, "delete")
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

    # -- writes ------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: PayloadSource,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store an object on every replica, acknowledged per the write policy.

        Args:
            key: object key (see the key rules in the docs).
            data: bytes, a binary file object, or an iterable of bytes; streams are
                spooled to a temporary file (bounded memory) and uploaded in parts.
            content_type: MIME type (default: guessed from the key, else
                ``application/octet-stream``).
            metadata: user metadata: lower-case identifier names, printable ASCII values
                without leading or trailing blanks.

        Returns:
            The stored object's description, from the first replica that acknowledged.

        Raises:
            InvalidKeyError: the key breaks the rules (nothing is written).
            InvalidMetadataError: metadata that not every cloud can store.
            QuorumNotReached: too few replicas acknowledged: the outcome is unknown
                (``.succeeded`` hold the write, which repair copies to the others
                unless superseded; ``.failed`` says why the rest did not confirm).
        """
        self._check_open()
        validate_key(key)
        user_metadata = validate_metadata(metadata)
        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
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
                self._clock.observe(_meta(outcome.stored, META_VERSION))
            return outcome.stored

        try:
            acks = self._replicate("put", key, version, write, cleanup=cleanup)
        except BaseException:
            if not self._replicated:
                cleanup()
            raise
        newer = {n: _meta(s, META_VERSION) for n, s in acks.items()}
        newer = {n: v for n, v in newer.items() if v != version}
        if newer:
            # A replica already held a newer version: ours lost the last-writer-wins
            # race and is not the key's value (repair spreads the winner, not ours).
            winner = max(newer, key=lambda n: newer[n])
            raise Superseded(key, version=version, current=newer[winner], backend=winner)
        name = next(iter(acks))
        info = _object_info(acks[name], first_backend=name)
        return dataclasses.replace(info, size=size, checksum=content_sha256)

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
                required=self._settings.required_acks,
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

    def delete(self, key: str) -> None:
        """Delete an object from every replica, acknowledged per the write policy.

        Deleting a missing key succeeds.

        Raises:
            InvalidKeyError: the key breaks the rules.
            QuorumNotReached: too few replicas acknowledged the delete: the outcome is
                unknown (see :class:`~failover.errors.QuorumNotReached`).
        """
        self._check_open()
        validate_key(key)

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

    # -- reads -------------------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        byte_range: ByteRange | None = None,
        consistency: Literal["any", "latest"] = "any",
    ) -> bytes:
        """Return an object's bytes, from the first replica that has intact ones.

        Args:
            key: object key.
            byte_range: ``(start, stop)`` to read ``data[start:stop]`` (``stop=None``: to
                the end). Whole reads are verified against the stored sha256; a replica
                whose bytes do not match is skipped and scheduled for repair.
            consistency: ``"any"`` (default) reads the first healthy replica;
                ``"latest"`` first asks a majority of replicas for their version, reads
                the highest one, and schedules read repair for replicas holding less.

        Raises:
            NotFoundError: no reachable replica has the key.
            IntegrityError: every replica's bytes fail their checksum.
            AllBackendsFailed: no replica could answer; ``.errors`` per backend.
            QuorumNotReached: with ``consistency="latest"``, a majority did not answer.
        """
        self._check_open()
        validate_key(key)
        byte_range = _check_range(byte_range)
        if consistency not in ("any", "latest"):
            raise ValueError(f"consistency must be 'any' or 'latest', not {consistency!r}")
        exclude = self._stale_replicas(key) if consistency == "latest" else {}
        if self._layout.code is not None:
            return self._get_decoded(key, byte_range, exclude)
        if self._layout.transforms:
            # Encrypted copies: fetch one whole copy whose ciphertext matches its sha256
            # (a tampered copy fails over to another), then decrypt it.
            def verify_copy(name: str, fetched: Any) -> None:
                _verify_bytes(key, name, fetched.info, fetched.data)

            _, fetched = self._read(
                "get",
                key,
                lambda b: b.get(key),
                info_of=_info_of,
                accept=verify_copy,
                exclude=exclude,
            )
            version = _meta(fetched.info, META_VERSION)
            plain = b"".join(self._layout.decrypt_stream(key, version, io.BytesIO(fetched.data)))
            start, stop = resolve_range(byte_range, len(plain))
            return plain[start:stop]

        def verify(name: str, fetched: Any) -> None:
            if byte_range is None:
                try:
                    _verify_bytes(key, name, fetched.info, fetched.data)
                except IntegrityError:
                    self._schedule(name, key, _meta(fetched.info, META_VERSION), "verify")
                    raise
                if self._replicated and not _meta(fetched.info, META_SHA256):
                    self._check_unversioned(key, name, hashlib.sha256(fetched.data).hexdigest())

        _, fetched = self._read(
            "get",
            key,
            lambda b: b.get(key, byte_range=byte_range),
            info_of=_info_of,
            accept=verify,
            exclude=exclude,
        )
        data: bytes = fetched.data
        return data

    def _check_unversioned(self, key: str, name: str, digest: str) -> None:
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
                    _meta(info, META_SHA256)
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

    def _get_decoded(
        self, key: str, byte_range: ByteRange | None, exclude: Mapping[str, BaseException]
    ) -> bytes:
        """Read an erasure-coded object; if its plaintext fails its sha256, find the liar.

        Every share's block checksums passed, yet the decoded bytes are wrong: one share
        was rewritten with recomputed checksums. Decoding again without each share in
        turn finds a set whose plaintext matches; the share left out is scheduled for
        repair and the verified bytes are returned.
        """
        try:
            with self._open_transformed(key, byte_range, exclude=exclude) as reader:
                data: bytes = reader.read()
                return data
        except IntegrityError as mismatch:
            if byte_range is not None:
                raise
            for suspect in self._backends:
                if suspect in exclude:
                    continue
                try:
                    without = {**exclude, suspect: mismatch}
                    with self._open_transformed(key, None, exclude=without) as reader:
                        data = reader.read()
                        version = reader.info.version
                except (IntegrityError, AllBackendsFailed, NotFoundError):
                    continue
                self._schedule(suspect, key, version, "verify")
                return data
            raise

    def _stale_replicas(self, key: str) -> dict[str, BaseException]:
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
                answer = (_meta(info, META_VERSION), is_marker(info))
            with lock:
                seen[name] = answer[0] if answer else ""
                late = bool(newest_box) and seen[name] < newest_box[0][0]
            if late:
                self._schedule(name, key, *newest_box[0])
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
            self._schedule(name, key, newest, op)
        stale = [n for n in answers if n not in versions or versions[n][0] < newest]
        for name in stale:
            self._schedule(name, key, newest, op)
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

    def _schedule(
        self, name: str, key: str, version: str, op: Literal["put", "delete", "verify"]
    ) -> None:
        """Journal a read repair for one replica (the repairer performs it)."""
        if self._journal is not None and version:
            self._journal.record([name], key, version, op)

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> StorageReader:
        """Open an object for streaming reads (file-like: ``read(n)``, iteration, ``with``).

        A whole-object stream is verified against the stored sha256 when it reaches the
        end (``IntegrityError`` then). If the replica fails mid-stream, reading resumes
        from another replica holding the same version at the same offset.

        Raises:
            NotFoundError: no reachable replica has the key.
            AllBackendsFailed: no replica could open it.
        """
        self._check_open()
        validate_key(key)
        byte_range = _check_range(byte_range)
        if self._layout.transforms:
            return self._open_transformed(key, byte_range)
        name, reader = self._read(
            "open",
            key,
            lambda b: b.open(key, byte_range=byte_range),
            info_of=_info_of,
            discard=_close_reader,
        )
        return StorageReader(self, key, name, reader, byte_range=byte_range)

    def _open_transformed(
        self,
        key: str,
        byte_range: ByteRange | None,
        *,
        exclude: Mapping[str, BaseException] | None = None,
    ) -> StorageReader:
        """Stream the plaintext of an encrypted and/or erasure-coded object.

        GCM tags and share checksums authenticate every chunk, so the stream needs no
        sha256 of its own; a byte range is cut from the decoded stream.
        """
        chunks: Iterator[bytes]
        if self._layout.code is None:
            # Encrypted full copies: read one verified copy, decrypt it as it streams.
            name, reader = self._read(
                "open", key, lambda b: b.open(key), info_of=_info_of, discard=_close_reader
            )
            version = _meta(reader.info, META_VERSION)
            chunks = self._layout.decrypt_stream(key, version, reader)
            infos = {name: reader.info}
        else:
            name, chunks, infos = self._decode_shares(key, exclude=exclude or {})
        first = infos[name]
        plain_size = int(_meta(first, META_SIZE) or first.size)
        start, stop = resolve_range(byte_range, plain_size)
        sized = dataclasses.replace(first, size=plain_size)
        stream = _ChunkReader(sized, _cut(chunks, start, stop))
        # Shares' block checksums are CRC-32s, which anyone rewriting a share can
        # recompute: a whole read is also checked against the plaintext's sha256 (stored
        # for unencrypted objects; GCM tags authenticate encrypted ones).
        return StorageReader(
            self,
            key,
            name,
            stream,
            byte_range=byte_range,
            expected_sha256=_meta(first, META_CONTENT_SHA256),
        )

    def _decode_shares(
        self, key: str, *, exclude: Mapping[str, BaseException]
    ) -> tuple[str, Iterator[bytes], dict[str, StoredObject]]:
        """Open k shares of ``key`` (healthiest first) and return a plaintext iterator.

        Shares that turn out corrupt are scheduled for repair.
        """
        skipped, demote = self._journal_hints(key, exclude)
        infos: dict[str, StoredObject] = {}
        failed: dict[str, BaseException] = {}
        deadline = self._dispatch.deadline()
        assert self._layout.code is not None
        # The k healthiest shares, opened in parallel (hedged when one is slow); the
        # decoder reads headers and blocks from these streams and opens others itself
        # only if one of them fails.
        opened, errors, untried = self._dispatch.gather(
            "open",
            key,
            lambda name: _live_reader(name, self._backends[name].open(key, byte_range=(0, None))),
            need=self._layout.code.k,
            is_miss=lambda exc: isinstance(exc, NotFoundError),
            discard=_close_reader,
            deadline=deadline,
            demote=demote,
            exclude=skipped,
        )
        readers = dict(opened)
        order = [*readers, *untried]

        def opener(name: str) -> Callable[[int, int | None], ObjectReader]:
            backend = self._backends[name]

            def open_range(start: int, stop: int | None) -> ObjectReader:
                reader = readers.pop(name, None) if (start, stop) == (0, None) else None
                if reader is None:
                    reader = self._dispatch.call(
                        name,
                        "open",
                        key,
                        lambda: _live_reader(name, backend.open(key, byte_range=(start, stop))),
                        deadline,
                    )
                infos.setdefault(name, reader.info)
                return reader

            return open_range

        def release_unused() -> None:
            for reader in readers.values():
                _close_reader(reader)
            readers.clear()

        chunks = self._layout.decode(key, order, opener, infos, failed=failed)
        try:
            first = next(chunks, b"")
        except IntegrityError as exc:
            release_unused()
            everything = {**errors, **failed}
            self._schedule_corrupt(key, failed, infos)
            if everything and all(isinstance(e, NotFoundError) for e in everything.values()):
                raise NotFoundError(key) from exc
            raise AllBackendsFailed(
                f"get {key!r}", {n: everything.get(n, exc) for n in self._backends}
            ) from exc
        release_unused()
        self._schedule_corrupt(key, failed, infos)
        used = next(n for n in order if n in infos and n not in failed)

        def rest() -> Iterator[bytes]:
            try:
                yield first
                yield from chunks
            finally:
                chunks.close()  # ends the decoder, which reports its failed shares
                self._schedule_corrupt(key, failed, infos)

        return used, rest(), infos

    def _report_skew(self, name: str, key: str, version: str) -> None:
        ahead = self._clock.ahead_ms(version) / 1000
        self._dispatch.emit(ClockSkewDetected(name, key, version, ahead))

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
        return len(trusted) >= len(self._backends) - self._settings.required_acks + 1

    def _journal_hints(
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

    def _schedule_corrupt(
        self, key: str, failed: Mapping[str, BaseException], infos: Mapping[str, StoredObject]
    ) -> None:
        for name, exc in failed.items():
            if isinstance(exc, IntegrityError) and name in infos:
                self._schedule(name, key, _meta(infos[name], META_VERSION), "verify")

    def head(self, key: str) -> ObjectInfo:
        """Describe an object (size, checksum, version, content type, metadata).

        Raises:
            NotFoundError: the key does not exist: enough replicas said so to overlap
                every acknowledged write (N - W + 1 of them), and none of those is
                known to have missed a write of it.
            AllBackendsFailed: no replica could answer, or too few to tell absence
                from an outage (``.errors`` has every backend's reason).
        """
        self._check_open()
        validate_key(key)
        name, info = self._read("head", key, lambda b: b.head(key), info_of=lambda info: info)
        return _object_info(info, first_backend=name)

    def exists(self, key: str) -> bool:
        """True if a replica has the key; False only when that is proven (see :meth:`head`).

        Raises:
            AllBackendsFailed: too few replicas answered to tell.
        """
        try:
            self.head(key)
        except NotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every key under ``prefix`` once, merged over replicas, in key order.

        Listings are lazy and merged as they stream. A replica that fails while listing
        is left out (the others cover it); only when every replica fails does the
        iteration raise AllBackendsFailed. Listings report size and time; provider
        listings without metadata (S3) leave ``checksum``/``version`` empty: use
        :meth:`head` for those.
        """
        self._check_open()
        validate_prefix(prefix)
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
        stored, name = max(entries, key=lambda item: _meta(item[0], META_VERSION))
        if not is_marker(stored):
            yield _object_info(stored, first_backend=name)

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

    # -- health and repair -------------------------------------------------------------

    def health(self) -> dict[str, BackendHealth]:
        """Health of every backend: breaker state, score, latency, errors, pending repairs."""
        return self._dispatch.backend_health()

    def _pending_repairs(self, name: str) -> int:
        return 0 if self._journal is None else self._journal.counts().get(name, 0)

    def flush(self, *, timeout_seconds: float | None = None) -> bool:
        """Wait until replica writes still in flight (after their acknowledgement) end.

        With ``write_policy="one"`` or ``"quorum"`` a call returns before the slower
        replicas finish; this waits for them, e.g. before a short-lived process exits.
        A replica that fails is left to the journal, as always.

        Args:
            timeout_seconds: the longest to wait (default: ``deadline_seconds``).

        Returns:
            True if nothing is in flight any more.
        """
        limit = self._settings.deadline_seconds if timeout_seconds is None else timeout_seconds
        return self._in_flight.wait_idle(limit)

    def repair(self) -> RepairReport:
        """Drain the repair journal now: bring replicas that missed writes up to date.

        Every pending action (a put or delete a replica missed, a corrupt replica found
        by a read) is attempted once. Actions for a backend whose breaker is open stay
        pending. The background worker (``repair_interval_seconds``) does the same
        periodically. With a single backend there is nothing to repair.
        """
        self._check_open()
        if self._repairer is None:
            return RepairReport()
        return self._repairer.run_once()

    def reconcile(
        self,
        prefix: str = "",
        *,
        fix: bool = False,
        verify_bytes: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReconcileReport:
        """Compare every replica (anti-entropy) and optionally repair the differences.

        Each key's newest version (highest version stamp with an intact checksum) is the
        reference; replicas missing it, holding an older version, or holding bytes that
        do not match their checksum are reported, and with ``fix=True`` rewritten from a
        replica that has the reference version. Objects without failover metadata are
        reported as orphaned and left alone.

        By default replicas are compared by version, recorded sha256 and size (cheap:
        listings and heads only); ``verify_bytes=True`` also reads every replica of the
        newest version and checks its bytes against the sha256.

        Keys the journal holds a tombstone for are treated as deleted, so reconcile
        never resurrects a delete that a replica missed. ``progress(done, total)`` is
        called after each key.

        Raises:
            AllBackendsFailed: a replica could not be listed (comparison needs all).
        """
        self._check_open()
        validate_prefix(prefix)
        reconciler = Reconciler(
            self._backends,
            journal=self._journal,
            verify_bytes=verify_bytes,
            layout=self._layout,
            trusts=self._clock.trusts,
            marker_grace_seconds=self._settings.tombstone_grace_seconds,
        )
        return reconciler.run(prefix, fix=fix, progress=progress)

    def _reopen_at(
        self, key: str, version: str, offset: int, stop: int | None, exclude: set[str]
    ) -> tuple[str, ObjectReader] | None:
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
            if _meta(reader.info, META_VERSION) == version:
                return name, reader
            reader.close()
        return None


class StorageReader(io.RawIOBase):
    """A verified, resumable stream over one object (returned by :meth:`Storage.open`).

    Attributes:
        info: the object's description from the replica that serves the stream.
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        backend: str,
        reader: ObjectReader,
        *,
        byte_range: ByteRange | None,
        expected_sha256: str | None = None,
    ) -> None:
        super().__init__()
        self._storage = storage
        self._key = key
        self._reader = reader
        self._stored = reader.info
        self._backend = backend
        self.info = _object_info(self._stored, first_backend=self._backend)
        self._start = byte_range[0] if byte_range else 0
        self._stop = byte_range[1] if byte_range else None
        self._offset = self._start
        size = self._stored.size
        self._end = size if self._stop is None else min(self._stop, size)
        whole = byte_range is None
        # The sha256 the whole stream must have: the plaintext's for a decoded stream,
        # else the one the serving replica recorded for its bytes.
        decoded = expected_sha256 is not None
        self._expected = expected_sha256 if decoded else _meta(self._stored, META_SHA256)
        self._verify = whole and bool(self._expected)
        # A plain copy without failover metadata is checked against the other holders.
        self._compare = whole and not decoded and not self._verify and storage._replicated
        self._digest = hashlib.sha256()
        self._tried = {self._backend}
        self._eof = False

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with the next bytes; 0 at the end of the object."""
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int | None = -1, /) -> bytes:
        """Read up to ``size`` bytes (everything left when negative or None)."""
        if self.closed:
            raise ValueError("I/O operation on closed StorageReader")
        if self._eof or size == 0:
            return b""
        want = -1 if size is None or size < 0 else size
        while True:
            try:
                chunk = self._reader.read(want)
                break
            except (BackendError, OSError) as exc:
                if not is_transient(exc) and not isinstance(exc, OSError):
                    raise
                self._resume(exc)
        if chunk:
            self._offset += len(chunk)
            if self._verify or self._compare:
                self._digest.update(chunk)
        # Verify as soon as the last byte is delivered, not on a later empty read that a
        # caller who knows the size may never make.
        if not chunk or want < 0 or self._offset >= self._end:
            self._finish()
        return chunk

    def _resume(self, cause: BaseException) -> None:
        version = _meta(self._stored, META_VERSION)
        found = (
            self._storage._reopen_at(self._key, version, self._offset, self._stop, self._tried)
            if version
            else None
        )
        if found is None:
            raise AllBackendsFailed(f"open {self._key!r}", {self._backend: cause}) from cause
        self._reader.close()
        self._backend, self._reader = found
        self._tried.add(self._backend)

    def _finish(self) -> None:
        self._eof = True
        if self._verify and self._digest.hexdigest() != self._expected:
            raise IntegrityError(
                f"{self._key!r}: streamed bytes from {self._backend} do not match their sha256"
            )
        if self._compare:
            self._storage._check_unversioned(self._key, self._backend, self._digest.hexdigest())

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over chunks of up to 1 MiB."""
        while chunk := self.read(_READ_CHUNK):
            yield chunk

    def close(self) -> None:
        """Release the underlying connection."""
        if not self.closed:
            self._reader.close()
        super().close()


# -- helpers of the facade (module-private) ---------------------------------------------


def _meta(info: StoredObject, name: str) -> str:
    if not info.metadata:
        return ""
    return info.metadata.get(name, "")


def _object_info(info: StoredObject, *, first_backend: str) -> ObjectInfo:
    metadata = info.metadata or {}
    if META_LAYOUT in metadata:
        # Encrypted or erasure-coded: the stored bytes are not the content. The content's
        # sha256 is recorded only when it is not encrypted (see replication.layout).
        size = int(metadata.get(META_SIZE, info.size))
        checksum = metadata.get(META_CONTENT_SHA256, "")
    else:
        size, checksum = info.size, metadata.get(META_SHA256, "")
    return ObjectInfo(
        key=info.key,
        size=size,
        checksum=checksum,
        version=metadata.get(META_VERSION, ""),
        content_type=info.content_type,
        metadata={k: v for k, v in metadata.items() if not k.startswith(RESERVED_METADATA_PREFIX)},
        last_modified=info.last_modified,
        backend=first_backend,
    )


def _verify_bytes(key: str, backend: str, info: StoredObject, data: bytes) -> None:
    expected = _meta(info, META_SHA256)
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise IntegrityError(f"{key!r} on {backend}: bytes do not match their sha256")


def _check_range(byte_range: ByteRange | None) -> ByteRange | None:
    if byte_range is None:
        return None
    try:
        start, stop = byte_range
    except (TypeError, ValueError):
        raise ValueError("byte_range must be a (start, stop) pair") from None
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"byte_range start must be an int >= 0, got {start!r}")
    if stop is not None and (not isinstance(stop, int) or stop < start):
        raise ValueError(f"byte_range stop must be None or an int >= start, got {stop!r}")
    return (start, stop)


def _info_of(answer: FetchedObject | ObjectReader) -> StoredObject:
    return answer.info


def _live_reader(name: str, reader: ObjectReader) -> ObjectReader:
    """The reader, unless it reads a delete marker (then closed: DeletedMarker)."""
    if is_marker(reader.info):
        reader.close()
        live(name, reader.info)
    return reader


def _close_reader(reader: ObjectReader) -> None:
    reader.close()


def _layout_for(settings: Settings, names: Sequence[str]) -> Layout:
    code = None
    if settings.redundancy == "erasure":
        from failover.segmentation import ErasureCode  # noqa: PLC0415 - optional extra

        code = ErasureCode.for_backends(len(names), k=settings.erasure_k)
    return Layout(names, keys=settings.encryption_key, code=code)


def _cut(chunks: Iterator[bytes], start: int, stop: int) -> Iterator[bytes]:
    """The bytes ``[start, stop)`` of a stream of chunks (closes the stream when done)."""
    position = 0
    try:
        for chunk in chunks:
            end = position + len(chunk)
            if end > start and position < stop:
                yield chunk[max(0, start - position) : min(len(chunk), stop - position)]
            position = end
            if position >= stop:
                return
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


class _ChunkReader:
    """An ObjectReader over an iterator of chunks (decoded or decrypted plaintext)."""

    def __init__(self, info: StoredObject, chunks: Iterator[bytes]) -> None:
        self._info = info
        self._chunks = chunks
        self._buffer = b""

    @property
    def info(self) -> StoredObject:
        return self._info

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            data = self._buffer + b"".join(self._chunks)
            self._buffer = b""
            return data
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if callable(close):
            close()


def _guarded_listing(
    name: str, stream: Iterator[StoredObject], errors: dict[str, BaseException]
) -> Iterator[tuple[StoredObject, str]]:
    try:
        for stored in stream:
            yield stored, name
    except (BackendError, OSError) as exc:
        errors[name] = exc
