"""The Storage facade: one object-storage API over several replicas.

:class:`Storage` validates arguments and delegates: writes to
:class:`~failover.replication.writes.ReplicaWrites`, reads to
:class:`~failover.replication.reads.ReplicaReads` (and, for encrypted or erasure-coded
objects, :class:`~failover.segmentation.decode.EncodedReads`), repair and reconcile to
:mod:`failover.replication.repair` and :mod:`failover.replication.reconcile`.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from failover.backends import from_url
from failover.backends.base import Backend, ByteRange, replica_identity
from failover.config import Settings
from failover.dispatch import Dispatcher
from failover.errors import ConfigError, FailoverError, NotFoundError
from failover.events import EventHook
from failover.keys import validate_key, validate_metadata, validate_prefix
from failover.payload import PayloadSource
from failover.replication.journal import RepairJournal
from failover.replication.layout import Layout
from failover.replication.reader import StorageReader
from failover.replication.reads import ReplicaReads
from failover.replication.reconcile import Reconciler
from failover.replication.repair import InFlight, Repairer, RepairWorker
from failover.replication.version import HybridClock
from failover.replication.writes import ReplicaWrites
from failover.resilience import Clock
from failover.telemetry import Peer, Telemetry, default_tracer
from failover.types import BackendHealth, ObjectInfo, ReconcileReport, RepairReport

if TYPE_CHECKING:
    from failover.segmentation.decode import EncodedReads

__all__ = ["Storage", "StorageReader"]

_WORKERS_PER_BACKEND = 16


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
        self._telemetry = Telemetry(
            tracer=default_tracer(), peers={b.name: Peer.of(b) for b in backends}
        )
        self._dispatch = Dispatcher(
            names,
            settings=settings,
            hooks=hooks,
            clock=clock,
            rng=rng,
            workers_per_backend=_WORKERS_PER_BACKEND,
            pending_repairs=self._pending_repairs,
            telemetry=self._telemetry,
            # Shared breakers (FAILOVER_BREAKER_STORAGE) are keyed by where the objects
            # live, never by a display name.
            breaker_keys={b.name: f"storage|{replica_identity(b)}" for b in backends},
        )
        self._clock = HybridClock(
            writer_id=writer_id, max_skew_ms=round(settings.max_clock_skew_seconds * 1000)
        )
        self._closed = False
        self._lock = threading.Lock()
        self._in_flight = InFlight()
        self._layout = _layout_for(settings, names)
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
        self._reads = ReplicaReads(
            self._backends,
            dispatcher=self._dispatch,
            journal=self._journal,
            required_acks=settings.required_acks,
        )
        self._writes = ReplicaWrites(
            self._backends,
            dispatcher=self._dispatch,
            journal=self._journal,
            required_acks=settings.required_acks,
            clock=self._clock,
            layout=self._layout,
            in_flight=self._in_flight,
            identities=self._identities,
        )
        self._encoded: EncodedReads | None = None
        if self._layout.transforms:
            from failover.segmentation.decode import EncodedReads  # noqa: PLC0415 - optional

            self._encoded = EncodedReads(
                self._backends, dispatcher=self._dispatch, layout=self._layout, reads=self._reads
            )

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

    @property
    def telemetry(self) -> Telemetry:
        """What this Storage measured: ``telemetry.stats`` (see :mod:`failover.telemetry`)."""
        return self._telemetry

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self._settings

    @property
    def backends(self) -> Mapping[str, Backend]:
        """The backends by name, in priority order."""
        return dict(self._backends)

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
        with self._telemetry.operation("put", key):
            return self._writes.put(
                key, data, content_type=content_type, user_metadata=user_metadata
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
        with self._telemetry.operation("delete", key):
            self._writes.delete(key)

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
        with self._telemetry.operation("get", key):
            exclude = self._reads.stale_replicas(key) if consistency == "latest" else {}
            if self._encoded is not None:
                return self._encoded.get(key, byte_range, exclude)
            return self._reads.get(key, byte_range, exclude)

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
        with self._telemetry.operation("open", key):
            if self._encoded is not None:
                return self._encoded.open(key, byte_range)
            return self._reads.open(key, byte_range)

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
        with self._telemetry.operation("head", key):
            return self._reads.head(key)

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
        return self._reads.list(prefix)

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
        with self._telemetry.operation("repair"):
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
        with self._telemetry.operation("reconcile", prefix):
            return reconciler.run(prefix, fix=fix, progress=progress)


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


def _layout_for(settings: Settings, names: Sequence[str]) -> Layout:
    code = None
    if settings.redundancy == "erasure":
        from failover.segmentation import ErasureCode  # noqa: PLC0415 - optional extra

        code = ErasureCode.for_backends(len(names), k=settings.erasure_k)
    return Layout(names, keys=settings.encryption_key, code=code)
