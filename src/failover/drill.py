"""Rehearse losing each backend, on the configured backends, and check nothing was lost.

A drill is the *test* step of a resilience plan: it takes one backend down at a time
(on the client side, so nothing outside this process is touched), keeps reading and
writing through :class:`~failover.Storage`, brings the backend back, repairs, and checks
that every replica converged. For each backend in turn, :func:`run_drill`:

1. writes ``objects`` scratch objects under a scratch prefix (with the configured write
   policy) and waits until every replica has them;
2. takes the backend down with a :class:`~failover.testing.FaultyBackend`: its calls
   hang for one ``timeout_seconds`` and then time out, as a blackholed network does
   (``outage="hang"``), or fail at once, as a refused connection does (``"error"``);
3. writes as many new objects and reads every scratch object back, verifying the bytes;
4. heals the backend, runs :meth:`Storage.repair() <failover.Storage.repair>`, and
   checks that the replicas are identical (a byte-verifying reconcile of the scratch
   prefix) and that every acknowledged write is on every replica;
5. deletes its scratch objects, and the hints left for them, from every replica.

With shared breakers (``FAILOVER_BREAKER_STORAGE=redis://…``, or ``breaker_storage=``),
the drill ends with :func:`rehearse_shared_breaker`: two instances over the backends,
with breakers in that storage under a namespace of the drill's own (so the
application's breakers are never touched, and it is removed afterwards); the first
backend is taken down for instance A until A's breaker opens, and instance B must then
report it open and send it no call.

With ``fleet=True`` each backend's outage is followed by a rehearsal of a *host* lost
with it (:func:`rehearse_lost_host`): two instances with their own journals; while the
backend is down, one of them writes and deletes scratch objects, then is closed and its
journal deleted; the backend comes back and the other instance's
:meth:`Storage.repair() <failover.Storage.repair>` completes the lost host's work from
the hints the replicas kept; every replica is checked directly, and the scratch objects,
delete markers and hints are removed.

The drill uses a private repair journal and no background repair, so it neither adds
work to the application's journal nor races with it. Its building blocks
(:class:`MeteredBackend`, :class:`BreakerTimeline`, :func:`check_replicas`,
:func:`rehearse_lost_host`) also drive ``failover demo``.

Example:
    >>> report = run_drill(Settings.from_env(), objects=10)  # doctest: +SKIP
    >>> report.passed                                        # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from failover._storage import Storage
from failover.backends import from_url, parse_backend_url
from failover.backends.base import replica_identity
from failover.breaker_storage import BreakerStorageURL, parse_breaker_storage
from failover.config import Settings
from failover.errors import (
    BackendUnavailable,
    ConfigError,
    FailoverError,
    NotFoundError,
    is_transient,
)
from failover.events import BreakerStateChanged, BreakerStorageUnavailable, Event, EventHook
from failover.replication.hints import Hint, hints_for, remove_hint
from failover.replication.markers import is_marker
from failover.testing.faults import FaultyBackend
from failover.types import BreakerState, ReconcileReport

if TYPE_CHECKING:
    from failover.backends.base import (
        Backend,
        ByteRange,
        FetchedObject,
        ObjectReader,
        StoredObject,
    )
    from failover.payload import Payload

__all__ = [
    "DEFAULT_PREFIX",
    "BackendDrill",
    "BreakerChange",
    "BreakerTimeline",
    "DrillReport",
    "FleetDrill",
    "MeteredBackend",
    "OutageKind",
    "SharedBreakerDrill",
    "check_deleted",
    "check_replicas",
    "rehearse_lost_host",
    "rehearse_shared_breaker",
    "run_drill",
    "settle_repairs",
]

#: Where drills write their scratch objects (a run adds ``<run id>/<backend>/``).
DEFAULT_PREFIX = "failover-drill/"

#: How the outage looks to the client: calls that hang until they time out, or that
#: fail at once.
OutageKind = Literal["hang", "error"]

_MAX_PROBLEMS = 10
_POLL_SECONDS = 0.05


# -- building blocks ---------------------------------------------------------------------


class MeteredBackend:
    """A Backend wrapper that counts calls and failures (thread-safe).

    A failure is any exception other than :class:`~failover.NotFoundError`, which is an
    answer. ``list`` counts once per listing, and a failure while iterating counts too.

    Args:
        inner: the backend to delegate to.
    """

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._ops = 0
        self._errors = 0

    @property
    def inner(self) -> Backend:
        """The wrapped backend."""
        return self._inner

    @property
    def name(self) -> str:
        """The inner backend's name."""
        return self._inner.name

    @property
    def identity(self) -> str:
        """The inner backend's identity: metering does not move where the objects live.

        Journal rows and hints are kept per identity, so an instance over metered
        backends and one over plain backends find each other's hints.
        """
        return replica_identity(self._inner)

    @property
    def ops(self) -> int:
        """Calls made so far."""
        with self._lock:
            return self._ops

    @property
    def errors(self) -> int:
        """Calls that failed so far."""
        with self._lock:
            return self._errors

    @contextlib.contextmanager
    def _metered(self) -> Iterator[None]:
        with self._lock:
            self._ops += 1
        try:
            yield
        except NotFoundError:
            raise
        except BaseException:
            with self._lock:
                self._errors += 1
            raise

    def put(
        self,
        key: str,
        payload: Payload,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> StoredObject:
        """Count, then store through the inner backend."""
        with self._metered():
            return self._inner.put(
                key,
                payload,
                content_type=content_type,
                metadata=metadata,
                if_absent=if_absent,
                if_match=if_match,
            )

    def get(self, key: str, *, byte_range: ByteRange | None = None) -> FetchedObject:
        """Count, then read through the inner backend."""
        with self._metered():
            return self._inner.get(key, byte_range=byte_range)

    def open(self, key: str, *, byte_range: ByteRange | None = None) -> ObjectReader:
        """Count, then open through the inner backend."""
        with self._metered():
            return self._inner.open(key, byte_range=byte_range)

    def head(self, key: str) -> StoredObject:
        """Count, then ask the inner backend."""
        with self._metered():
            return self._inner.head(key)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Count, then delete through the inner backend."""
        with self._metered():
            self._inner.delete(key, if_match=if_match)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Count, then list through the inner backend."""
        with self._metered():
            yield from self._inner.list(prefix)

    def close(self) -> None:
        """Close the inner backend."""
        self._inner.close()


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """One breaker transition seen by a :class:`BreakerTimeline`.

    Attributes:
        at: ``time.monotonic()`` when it was seen.
        backend: the backend whose breaker moved.
        old: the state before.
        new: the state after.
    """

    at: float
    backend: str
    old: BreakerState
    new: BreakerState


class BreakerTimeline:
    """An event hook that timestamps every breaker transition (thread-safe).

    Pass it in ``hooks=`` of a :class:`~failover.Storage`; then ask when a backend's
    breaker reached a state, e.g. how long after an outage began it opened.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[BreakerChange] = []

    def __call__(self, event: Event) -> None:
        """Record ``event`` if it is a :class:`~failover.events.BreakerStateChanged`."""
        if isinstance(event, BreakerStateChanged):
            change = BreakerChange(time.monotonic(), event.backend, event.old, event.new)
            with self._lock:
                self._changes.append(change)

    @property
    def changes(self) -> tuple[BreakerChange, ...]:
        """Every transition so far, oldest first."""
        with self._lock:
            return tuple(self._changes)

    def first(self, backend: str, state: BreakerState, *, since: float) -> float | None:
        """Seconds from ``since`` until ``backend``'s breaker first entered ``state``.

        Args:
            backend: backend name.
            state: ``"open"``, ``"half-open"`` or ``"closed"``.
            since: a ``time.monotonic()`` reading; earlier transitions are ignored.

        Returns:
            The delay, or ``None`` if it has not happened (yet).
        """
        for change in self.changes:
            if change.backend == backend and change.new == state and change.at >= since:
                return change.at - since
        return None


def check_replicas(
    backends: Mapping[str, Backend],
    expected: Mapping[str, bytes],
    *,
    limit: int = _MAX_PROBLEMS,
    attempts: int = 3,
) -> list[str]:
    """Read every expected object from every replica directly and compare the bytes.

    A transient error (timeout, throttling) is retried up to ``attempts`` times: it
    says nothing about the data.

    Args:
        backends: the replicas by name (``Storage.backends``).
        expected: key to the bytes the application last wrote (acknowledged writes).
        limit: stop after this many problems.
        attempts: tries per object when a replica fails transiently.

    Returns:
        One line per problem (``"<backend>: <key> missing"``, ``"... differs"``, or the
        error met); empty when every replica holds every object.
    """
    problems: list[str] = []
    for name, backend in backends.items():
        for key, data in expected.items():
            if len(problems) >= limit:
                return problems
            problem = _check_one(name, backend, key, data, attempts=attempts)
            if problem is not None:
                problems.append(problem)
    return problems


def _check_one(name: str, backend: Backend, key: str, data: bytes, *, attempts: int) -> str | None:
    for attempt in range(1, attempts + 1):
        try:
            fetched = backend.get(key)
        except NotFoundError:
            return f"{name}: {key} missing"
        except (FailoverError, OSError) as exc:
            if attempt < attempts and is_transient(exc):
                continue
            return f"{name}: {key} unreadable ({type(exc).__name__}: {exc})"
        return None if fetched.data == data else f"{name}: {key} differs from what was written"
    return None  # pragma: no cover - the loop always returns


def check_deleted(
    backends: Mapping[str, Backend],
    keys: Iterable[str],
    *,
    limit: int = _MAX_PROBLEMS,
    attempts: int = 3,
) -> list[str]:
    """Check on every replica directly that each key is deleted.

    A replica holding no object at the key, or a delete marker, holds the delete. A
    transient error is retried up to ``attempts`` times.

    Args:
        backends: the replicas by name (``Storage.backends``).
        keys: keys whose deletes were acknowledged.
        limit: stop after this many problems.
        attempts: tries per key when a replica fails transiently.

    Returns:
        One line per problem (``"<backend>: <key> still has a live copy"`` or the error
        met); empty when no replica holds a live copy of any of the keys.
    """
    wanted = list(keys)
    problems: list[str] = []
    for name, backend in backends.items():
        for key in wanted:
            if len(problems) >= limit:
                return problems
            problem = _check_gone(name, backend, key, attempts=attempts)
            if problem is not None:
                problems.append(problem)
    return problems


def _check_gone(name: str, backend: Backend, key: str, *, attempts: int) -> str | None:
    for attempt in range(1, attempts + 1):
        try:
            info = backend.head(key)
        except NotFoundError:
            return None
        except (FailoverError, OSError) as exc:
            if attempt < attempts and is_transient(exc):
                continue
            return f"{name}: {key} unreadable ({type(exc).__name__}: {exc})"
        return None if is_marker(info) else f"{name}: {key} still has a live copy"
    return None  # pragma: no cover - the loop always returns


def settle_repairs(
    store: Storage, *, timeout_seconds: float, poll_seconds: float = _POLL_SECONDS
) -> tuple[int, int]:
    """Call :meth:`Storage.repair() <failover.Storage.repair>` until nothing is pending.

    Right after a backend heals, some repairs stay pending: writes still in flight, or
    a breaker that has not admitted a trial yet. This repeats the repair pass until the
    journal is drained or ``timeout_seconds`` pass.

    Args:
        store: the storage to repair.
        timeout_seconds: the longest to keep trying.
        poll_seconds: pause between passes.

    Returns:
        ``(repaired, pending)``: replica actions completed over all passes, and those
        still pending at the end (0 when the replicas caught up).
    """
    give_up = time.monotonic() + timeout_seconds
    repaired = 0
    while True:
        report = store.repair()
        repaired += report.repaired
        if report.pending == 0 or time.monotonic() >= give_up:
            return repaired, report.pending
        time.sleep(poll_seconds)


# -- reports -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendDrill:
    """What happened while one backend was down.

    Attributes:
        backend: the backend that was taken down.
        outage: how it failed (``"hang"`` or ``"error"``).
        writes: writes attempted while it was down.
        write_errors: those that raised (the write policy could not be met).
        reads: reads attempted while it was down (bytes verified).
        read_errors: those that raised or returned the wrong bytes.
        breaker_opened_after_seconds: from the outage until its breaker opened, or
            ``None`` if it did not open (health routing may have avoided it enough).
        repaired: replica actions :meth:`~failover.Storage.repair` reported.
        consistent: the replicas of the scratch objects were identical after repair.
        intact: every acknowledged write was on every replica after repair.
        cleaned: no scratch object was left on any replica.
        duration_seconds: how long this part of the drill took.
        problems: what went wrong, one line each (at most ten).
    """

    backend: str
    outage: OutageKind
    writes: int = 0
    write_errors: int = 0
    reads: int = 0
    read_errors: int = 0
    breaker_opened_after_seconds: float | None = None
    repaired: int = 0
    consistent: bool = False
    intact: bool = False
    cleaned: bool = False
    duration_seconds: float = 0.0
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """No failed read or write, replicas converged and intact, scratch removed."""
        return (
            self.read_errors == 0
            and self.write_errors == 0
            and self.consistent
            and self.intact
            and self.cleaned
            and not self.problems
        )


@dataclass(frozen=True, slots=True)
class FleetDrill:
    """What happened when a host was lost with its journal while a backend was down.

    Host A and host B are two instances over the same backends, each with its own
    journal (:func:`rehearse_lost_host`).

    Attributes:
        backend: the backend that was down while host A wrote.
        outage: how it was down.
        scratch: the prefix of the rehearsal's objects.
        writes: puts host A had acknowledged while the backend was down (new keys and
            overwrites of keys host B had written).
        deletes: deletes (of keys host B had written) host A had acknowledged then.
        errors: puts and deletes of host A that raised.
        missed: acknowledged actions the backend did not hold when it came back, after
            host A was lost (another instance's repair may have done some already).
        hints: hints for the scratch keys found on the other replicas then.
        repaired: actions host B's repair (its journal empty) completed.
        pending: actions still pending after host B's repair.
        writes_repaired: every replica held every acknowledged write of host A.
        deletes_repaired: no replica held a live copy of a key host A deleted.
        hints_left: hints for the scratch keys still on a replica after the repair
            (``None``: not checked).
        cleaned: no scratch object, marker or hint was left on any replica (``None``:
            clean-up not asked for).
        duration_seconds: how long the rehearsal took.
        problems: what went wrong, one line each (at most ten).
    """

    backend: str
    outage: str
    scratch: str
    writes: int = 0
    deletes: int = 0
    errors: int = 0
    missed: int = 0
    hints: int = 0
    repaired: int = 0
    pending: int = 0
    writes_repaired: bool = False
    deletes_repaired: bool = False
    hints_left: int | None = None
    cleaned: bool | None = None
    duration_seconds: float = 0.0
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Host A's actions were acknowledged and host B's repair completed them.

        After the repair every replica held host A's writes and deletes and no hint was
        left; the scratch was removed (when asked).
        """
        return (
            self.errors == 0
            and self.writes + self.deletes > 0
            and self.writes_repaired
            and self.deletes_repaired
            and self.hints_left == 0
            and self.cleaned is not False
            and not self.problems
        )


@dataclass(frozen=True, slots=True)
class SharedBreakerDrill:
    """Whether instance B saw the breaker instance A opened, through the shared storage.

    Attributes:
        backend: the backend that was down for instance A.
        storage: the breaker storage (its URL without password, and the drill's
            namespace).
        opened: instance A's breaker for the backend opened.
        seen: instance B then reported that breaker open.
        seen_after_seconds: from A's breaker opening until B reported it open.
        b_calls: calls instance B sent to the backend afterwards, while it read and wrote
            (0 unless B had too few other backends to meet the write policy).
        errors: reads and writes of A or B that raised.
        cleaned: the scratch objects and hints, and the drill's breakers in the
            storage, were removed (``None``: clean-up not asked for).
        duration_seconds: how long the rehearsal took.
        problems: what went wrong, one line each (at most ten).
    """

    backend: str
    storage: str
    opened: bool = False
    seen: bool = False
    seen_after_seconds: float | None = None
    b_calls: int | None = None
    errors: int = 0
    cleaned: bool | None = None
    duration_seconds: float = 0.0
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """A's breaker opened, B saw it open, no call failed, nothing was left behind."""
        return (
            self.opened
            and self.seen
            and self.errors == 0
            and self.cleaned is not False
            and not self.problems
        )

    @property
    def summary(self) -> str:
        """One line, e.g. ``shared breaker: B saw aws open after A's failures: yes``."""
        verdict = "yes" if self.seen else "no"
        detail = []
        if self.seen_after_seconds is not None:
            detail.append(f"{self.seen_after_seconds:.2f} s after it opened")
        if self.b_calls is not None:
            detail.append(f"B's calls to {self.backend} since: {self.b_calls}")
        more = f" ({'; '.join(detail)})" if detail else ""
        return f"shared breaker: B saw {self.backend} open after A's failures: {verdict}{more}"


@dataclass(frozen=True, slots=True)
class DrillReport:
    """The outcome of a drill over one or more backends.

    Attributes:
        prefix: the scratch prefix of this run.
        backends: every configured backend, in priority order.
        write_policy: the configured write policy.
        required_acks: acknowledgements a write needed.
        objects: scratch objects written before each outage.
        results: one entry per backend taken down, in the order they were.
        fleet: with ``fleet=True``, one lost-host rehearsal per backend taken down.
        shared: with shared breakers, the rehearsal of one instance's open breaker
            seen by another.
    """

    prefix: str
    backends: tuple[str, ...]
    write_policy: str
    required_acks: int
    objects: int
    results: tuple[BackendDrill, ...] = field(default_factory=tuple)
    fleet: tuple[FleetDrill, ...] = field(default_factory=tuple)
    shared: tuple[SharedBreakerDrill, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when every backend's outage, and every other rehearsal, passed."""
        return (
            bool(self.results)
            and all(r.passed for r in self.results)
            and all(f.passed for f in self.fleet)
            and all(s.passed for s in self.shared)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``failover drill --json`` prints)."""
        data = asdict(self)
        data["passed"] = self.passed
        data["results"] = list(data["results"])
        data["fleet"] = list(data["fleet"])
        data["shared"] = list(data["shared"])
        entries: list[tuple[dict[str, Any], BackendDrill | FleetDrill | SharedBreakerDrill]] = [
            *zip(data["results"], self.results, strict=True),
            *zip(data["fleet"], self.fleet, strict=True),
            *zip(data["shared"], self.shared, strict=True),
        ]
        for entry, result in entries:
            entry["problems"] = list(result.problems)
            entry["passed"] = result.passed
        data["backends"] = list(self.backends)
        return data


# -- the drill ---------------------------------------------------------------------------


def run_drill(
    settings: Settings,
    *,
    targets: Sequence[str] | None = None,
    objects: int = 20,
    outage: OutageKind = "hang",
    prefix: str = DEFAULT_PREFIX,
    fleet: bool = False,
    breaker_storage: str | BreakerStorageURL | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> DrillReport:
    """Take each backend down in turn and verify reads, writes, repair and convergence.

    Args:
        settings: the configuration to rehearse (``Settings.from_env()``).
        targets: names of the backends to take down, in this order (default: all, in
            priority order).
        objects: scratch objects written before each outage (and again during it).
        outage: ``"hang"`` (calls hang for ``timeout_seconds``, then time out) or
            ``"error"`` (calls fail at once as if the connection were refused).
        prefix: scratch prefix; each run writes under ``<prefix><run id>/``.
        fleet: after each backend's outage, also rehearse a host lost with its
            journal while that backend is down (:func:`rehearse_lost_host`, with
            ``objects`` scratch objects, under ``<prefix><run id>/<backend>/fleet/``).
        breaker_storage: a shared breaker storage (``redis://…``) to rehearse instead
            of ``settings.breaker_storage``. With one, the drill ends with
            :func:`rehearse_shared_breaker` on the first target, under a namespace of
            its own that is removed afterwards.
        on_progress: called with a short line as each step starts.

    Returns:
        The report; :attr:`DrillReport.passed` says whether every invariant held.

    Raises:
        ConfigError: an unknown target name, ``objects < 1``, an unknown outage kind,
            or a backend URL that cannot be built.
    """
    if objects < 1:
        raise ConfigError(f"objects must be at least 1, got {objects}")
    if outage not in ("hang", "error"):
        raise ConfigError(f"outage must be 'hang' or 'error', got {outage!r}")
    names = _backend_names(settings)
    chosen = list(targets) if targets else list(names)
    unknown = [t for t in chosen if t not in names]
    if unknown:
        raise ConfigError(
            f"unknown backend(s) {', '.join(unknown)}; configured: {', '.join(names)}"
        )
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    run_prefix = f"{prefix}{run_id}/"
    say = on_progress or (lambda _line: None)
    results: list[BackendDrill] = []
    lost_hosts: list[FleetDrill] = []
    shared: list[SharedBreakerDrill] = []
    journal_dir = tempfile.mkdtemp(prefix="failover-drill-")
    try:
        drill_settings = settings.with_options(
            journal=f"{journal_dir}/journal.sqlite",
            repair_interval_seconds=0,
            # The drill's instances keep their breakers to themselves (its outages must
            # not open the application's shared breakers); the shared rehearsal below
            # uses a namespace of its own.
            breaker_storage="local",
        )
        storage_url = (
            settings.breaker_storage
            if breaker_storage is None
            else _parse_breaker_storage(breaker_storage)
        )
        for target in chosen:
            scratch = f"{run_prefix}{_slug(target)}/"
            say(f"{target}: taking it down ({outage}) under {scratch}")
            results.append(
                _BackendRun(
                    drill_settings,
                    target=target,
                    scratch=scratch,
                    objects=objects,
                    outage=outage,
                    say=say,
                ).run()
            )
            if fleet:
                injected = _InjectedOutage(drill_settings, target=target, outage=outage)
                lost_hosts.append(
                    rehearse_lost_host(
                        injected.connect,
                        target=target,
                        take_down=injected.take_down,
                        bring_back=injected.bring_back,
                        scratch=f"{scratch}fleet/",
                        journal_dir=journal_dir,
                        objects=objects,
                        outage=outage,
                        on_progress=say,
                    )
                )
        if storage_url is not None:
            shared.append(
                _shared_breaker_drill(
                    drill_settings,
                    storage_url,
                    target=chosen[0],
                    scratch=f"{run_prefix}shared-breaker/",
                    journal_dir=journal_dir,
                    outage=outage,
                    run_id=run_id,
                    say=say,
                )
            )
    finally:
        shutil.rmtree(journal_dir, ignore_errors=True)
    return DrillReport(
        prefix=run_prefix,
        backends=tuple(names),
        write_policy=settings.write_policy,
        required_acks=settings.required_acks,
        objects=objects,
        results=tuple(results),
        fleet=tuple(lost_hosts),
        shared=tuple(shared),
    )


def _parse_breaker_storage(value: str | BreakerStorageURL) -> BreakerStorageURL | None:
    if isinstance(value, BreakerStorageURL):
        return value
    try:
        return parse_breaker_storage(value)
    except ConfigError as exc:
        raise ConfigError(f"breaker_storage: {exc}") from exc


def _shared_breaker_drill(
    settings: Settings,
    url: BreakerStorageURL,
    *,
    target: str,
    scratch: str,
    journal_dir: str,
    outage: OutageKind,
    run_id: str,
    say: Callable[[str], None],
) -> SharedBreakerDrill:
    """:func:`rehearse_shared_breaker` on the configured backends, in its own namespace."""
    own = url.with_namespace(f"{url.namespace[:32]}.drill-{run_id[-6:]}")
    # Long enough that B cannot reach its own half-open trial while it is checked.
    reset = max(settings.breaker_reset_seconds, 10.0)
    injected = _InjectedOutage(
        settings.with_options(breaker_storage=own, breaker_reset_seconds=reset),
        target=target,
        outage=outage,
    )
    say(f"{target}: shared breakers in {own.redacted}; instance A meets the outage")
    return rehearse_shared_breaker(
        injected.connect,
        target=target,
        take_down=injected.take_down,
        bring_back=injected.bring_back,
        scratch=scratch,
        journal_dir=journal_dir,
        forget=lambda: _forget(own),
        on_progress=say,
    )


def _forget(url: BreakerStorageURL) -> None:
    from failover.shared_breakers import forget_namespace  # noqa: PLC0415 - needs redis

    forget_namespace(url)


def _backend_names(settings: Settings) -> list[str]:
    return [parse_backend_url(url).name for url in settings.backends]


def _faulty_backends(settings: Settings) -> list[FaultyBackend]:
    """The configured backends, each behind a fault injector (all faults off)."""
    built: list[Backend] = []
    try:
        built.extend(
            from_url(url, timeout_seconds=settings.timeout_seconds) for url in settings.backends
        )
    except BaseException:
        for backend in built:
            backend.close()
        raise
    return [FaultyBackend(backend) for backend in built]


def _fail(backend: FaultyBackend, outage: OutageKind, *, timeout_seconds: float) -> None:
    """Make ``backend`` look down: calls hang then time out, or fail at once."""
    if outage == "hang":
        backend.set(hang=True, hang_seconds=timeout_seconds)
    else:
        backend.set(error_rate=1.0, error=BackendUnavailable)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "backend"


class _BackendRun:
    """One backend's outage: seed, fail, traffic, heal, repair, verify, clean up."""

    def __init__(
        self,
        settings: Settings,
        *,
        target: str,
        scratch: str,
        objects: int,
        outage: OutageKind,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.target = target
        self.scratch = scratch
        self.objects = objects
        self.outage: OutageKind = outage
        self.say = say
        self.rng = random.Random(f"{scratch}")  # noqa: S311 - test data, not secrets
        self.expected: dict[str, bytes] = {}
        self.problems: list[str] = []
        self.counts: Counter[str] = Counter()
        self.began = 0.0

    def _problem(self, line: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(line)

    def _data(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(64, 4096))

    def run(self) -> BackendDrill:
        started = time.monotonic()
        timeline = BreakerTimeline()
        faulty = {backend.name: backend for backend in _faulty_backends(self.settings)}
        store = Storage(list(faulty.values()), settings=self.settings, hooks=[timeline])
        result: dict[str, Any] = {}
        try:
            result = self._rehearse(store, faulty, timeline)
        finally:
            faulty[self.target].heal()
            result["cleaned"] = self._clean_up(faulty)
            store.close()
        return BackendDrill(
            backend=self.target,
            outage=self.outage,
            duration_seconds=time.monotonic() - started,
            problems=tuple(self.problems),
            **result,
        )

    def _rehearse(
        self, store: Storage, faulty: Mapping[str, FaultyBackend], timeline: BreakerTimeline
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seeds = self._seed(store, faulty)
        if seeds is None:
            return result
        self._outage(store, faulty[self.target], seeds)
        result.update(
            writes=self.counts["writes"],
            write_errors=self.counts["write_errors"],
            reads=self.counts["reads"],
            read_errors=self.counts["read_errors"],
            breaker_opened_after_seconds=timeline.first(self.target, "open", since=self.began),
        )
        self.say(f"{self.target}: back; repairing")
        faulty[self.target].heal()
        result.update(self._repair(store))
        return result

    def _seed(self, store: Storage, faulty: Mapping[str, FaultyBackend]) -> list[str] | None:
        self.say(f"{self.target}: writing {self.objects} scratch objects")
        seeds = [f"{self.scratch}seed-{i:04d}" for i in range(self.objects)]
        for key in seeds:
            data = self._data()
            try:
                store.put(key, data)
            except FailoverError as exc:
                self._problem(f"write {key} before the outage failed: {exc}")
                return None
            self.expected[key] = data
        return seeds if self._wait_until_replicated(faulty, seeds) else None

    def _outage(self, store: Storage, target: FaultyBackend, seeds: list[str]) -> None:
        self.say(f"{self.target}: down; reading and writing through the others")
        _fail(target, self.outage, timeout_seconds=self.settings.timeout_seconds)
        self.began = time.monotonic()
        for i, seed in enumerate(seeds):
            key = f"{self.scratch}during-{i:04d}"
            self._write(store, key)
            self._read(store, seed)
            if key in self.expected:
                self._read(store, key)
        # Keep the backend down until every write that met the outage has failed, as
        # it would against a dead cloud; healing earlier would let them through.
        store.flush(timeout_seconds=self.settings.deadline_seconds + 1.0)

    def _repair(self, store: Storage) -> dict[str, Any]:
        result: dict[str, Any] = {}
        # Repairs for the healed backend wait until its breaker admits a trial again.
        settle_seconds = self.settings.breaker_reset_seconds + self.settings.deadline_seconds
        try:
            repaired, pending = settle_repairs(store, timeout_seconds=settle_seconds)
        except FailoverError as exc:
            self._problem(f"repair failed: {exc}")
        else:
            result["repaired"] = repaired
            if pending:
                self._problem(f"{pending} repair(s) still pending after {settle_seconds:g} s")
        try:
            report = store.reconcile(self.scratch, verify_bytes=True)
        except FailoverError as exc:
            self._problem(f"reconcile failed: {exc}")
        else:
            result["consistent"] = report.consistent
            if not report.consistent:
                self._problem(f"replicas differ after repair: {_describe_differences(report)}")
        replica_problems = check_replicas(store.backends, self.expected)
        for line in replica_problems:
            self._problem(f"after repair, {line}")
        result["intact"] = not replica_problems
        return result

    def _write(self, store: Storage, key: str) -> None:
        data = self._data()
        self.counts["writes"] += 1
        try:
            store.put(key, data)
        except FailoverError as exc:
            self.counts["write_errors"] += 1
            self._problem(f"write {key} failed during the outage: {exc}")
        else:
            self.expected[key] = data

    def _read(self, store: Storage, key: str) -> None:
        self.counts["reads"] += 1
        try:
            data = store.get(key)
        except (FailoverError, OSError) as exc:
            self.counts["read_errors"] += 1
            self._problem(f"read {key} failed during the outage: {exc}")
            return
        if data != self.expected[key]:
            self.counts["read_errors"] += 1
            self._problem(f"read {key} during the outage returned other bytes")

    def _wait_until_replicated(self, faulty: Mapping[str, FaultyBackend], keys: list[str]) -> bool:
        """Wait until every replica has every seed (the outage hits a replica in sync)."""
        give_up = time.monotonic() + self.settings.deadline_seconds
        for name, backend in faulty.items():
            for key in keys:
                while True:
                    try:
                        backend.head(key)
                        break
                    except NotFoundError:
                        pass
                    except (FailoverError, OSError) as exc:
                        self._problem(f"{name}: {key} unreadable before the outage: {exc}")
                        return False
                    if time.monotonic() > give_up:
                        self._problem(f"{name}: {key} not replicated before the outage")
                        return False
                    time.sleep(_POLL_SECONDS)
        return True

    def _clean_up(self, faulty: Mapping[str, FaultyBackend]) -> bool:
        self.say(f"{self.target}: deleting scratch objects")
        return _remove_scratch(faulty, self.scratch, self._problem)


def _scratch_hints(backends: Mapping[str, Backend], scratch: str) -> list[Hint]:
    """Every hint, on every replica, for a key under ``scratch`` (for any other replica).

    Raises:
        FailoverError: a replica's hints could not be listed or read.
        OSError: the same, from a local backend.
    """
    found: list[Hint] = []
    for holder_name, holder in backends.items():
        for name, backend in backends.items():
            if name != holder_name:
                hints = hints_for(holder, replica_identity(backend))
                found += [hint for hint in hints if hint.key.startswith(scratch)]
    return found


def _remove_scratch(
    backends: Mapping[str, Backend], scratch: str, problem: Callable[[str], None]
) -> bool:
    """Remove every object (delete markers included) and hint of the scratch keys.

    A repair pass may leave a hint it did not read after completing the action from
    the journal (the replica's breaker admitted calls again during the pass); once the
    scratch objects are gone, such a hint would stay pending in every instance's repair
    until its grace period ends. So the hints go too, first.

    Returns:
        True if nothing of the scratch is left on any replica (``problem`` is told why
        not otherwise).
    """
    cleaned = True
    try:
        hints = _scratch_hints(backends, scratch)
    except (FailoverError, OSError) as exc:
        problem(f"hints unreadable at clean-up: {exc}")
        hints, cleaned = [], False
    for hint in hints:
        try:
            remove_hint(backends[hint.holder], hint)
        except (FailoverError, OSError) as exc:
            problem(f"{hint.holder}: could not remove a hint: {exc}")
            cleaned = False
    for name, backend in backends.items():
        try:
            for stored in list(backend.list(scratch)):
                backend.delete(stored.key)
            left = next(iter(backend.list(scratch)), None)
        except (FailoverError, OSError) as exc:
            problem(f"{name}: could not delete scratch objects: {exc}")
            cleaned = False
            continue
        if left is not None:
            problem(f"{name}: scratch object {left.key} left behind")
            cleaned = False
    try:
        left_hints = _scratch_hints(backends, scratch)
    except (FailoverError, OSError) as exc:
        problem(f"hints unreadable after clean-up: {exc}")
        return False
    if left_hints:
        problem(f"{len(left_hints)} hint(s) for {scratch} left behind")
    return cleaned and not left_hints


# -- a host lost with its journal ---------------------------------------------------------


def rehearse_lost_host(
    connect: Callable[[str], Storage],
    *,
    target: str,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
    scratch: str,
    journal_dir: str | os.PathLike[str],
    objects: int = 6,
    outage: str = "hang",
    clean_up: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> FleetDrill:
    """Lose a host with its journal while ``target`` is down; another instance repairs.

    Two instances, host A and host B, are built with ``connect`` (each over its own
    backend clients and with its own journal in ``journal_dir``). Then:

    1. host B writes ``objects`` objects under ``scratch`` and waits until every
       replica has them;
    2. ``take_down()``; host A writes ``objects`` new objects, overwrites half of host
       B's and deletes the others (acknowledged by the write policy), and waits until
       its replica writes and hints have ended;
    3. host A is lost: closed, and its journal deleted;
    4. ``bring_back()``; what ``target`` missed is counted directly, with the hints
       the other replicas keep for it;
    5. host B, whose journal knows nothing of host A's work, runs
       :meth:`Storage.repair() <failover.Storage.repair>` (until nothing is pending);
    6. every replica is read directly: each must hold host A's writes byte for byte and
       no live copy of a key it deleted (a delete marker counts as deleted), and no
       hint for the scratch keys may be left;
    7. with ``clean_up``, the scratch objects, delete markers and hints are removed.

    ``bring_back()`` is also called if a step fails, so it must be harmless to repeat.

    Args:
        connect: builds one instance given the path of its journal; the instance owns
            its backends (closing it closes them) and ``take_down`` must reach them.
        target: name of the backend ``take_down`` takes down.
        take_down: takes ``target`` down for every instance built so far.
        bring_back: undoes ``take_down``.
        scratch: prefix of every key written (ends with ``/``); nothing else is touched,
            except that host B's repair, like any instance's, also completes hints
            other writers left.
        journal_dir: directory for the two journals (removed at the end).
        objects: objects host B writes, and host A writes anew.
        outage: how ``take_down`` fails the backend (for the report).
        clean_up: remove the scratch objects, markers and hints at the end.
        on_progress: called with a short line as each step starts.

    Returns:
        The outcome; :attr:`FleetDrill.passed` says whether every invariant held.

    Raises:
        ConfigError: ``objects < 1``.
    """
    if objects < 1:
        raise ConfigError(f"objects must be at least 1, got {objects}")
    return _LostHostRun(
        connect,
        target=target,
        take_down=take_down,
        bring_back=bring_back,
        scratch=scratch,
        journal_dir=os.fspath(journal_dir),
        objects=objects,
        outage=outage,
        clean_up=clean_up,
        say=on_progress or (lambda _line: None),
    ).run()


class _InjectedOutage:
    """Instances over the configured backends, whose ``target`` goes down together."""

    def __init__(self, settings: Settings, *, target: str, outage: OutageKind) -> None:
        self.settings = settings
        self.target = target
        self.outage: OutageKind = outage
        self._wrappers: list[FaultyBackend] = []

    def connect(self, journal: str, hooks: Sequence[EventHook] = ()) -> Storage:
        backends = _faulty_backends(self.settings)
        self._wrappers += [b for b in backends if b.name == self.target]
        try:
            return Storage(
                backends, settings=self.settings.with_options(journal=journal), hooks=hooks
            )
        except BaseException:
            for backend in backends:
                backend.close()
            raise

    def take_down(self) -> None:
        for wrapper in self._wrappers:
            _fail(wrapper, self.outage, timeout_seconds=self.settings.timeout_seconds)

    def bring_back(self) -> None:
        for wrapper in self._wrappers:
            wrapper.heal()


def _remove_journal(path: str) -> None:
    """Delete a journal as a lost disk would: the database and its WAL files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


class _LostHostRun:
    """One lost-host rehearsal (see :func:`rehearse_lost_host`)."""

    def __init__(
        self,
        connect: Callable[[str], Storage],
        *,
        target: str,
        take_down: Callable[[], None],
        bring_back: Callable[[], None],
        scratch: str,
        journal_dir: str,
        objects: int,
        outage: str,
        clean_up: bool,
        say: Callable[[str], None],
    ) -> None:
        self.connect = connect
        self.target = target
        self.take_down = take_down
        self.bring_back = bring_back
        self.scratch = scratch
        self.journal_dir = journal_dir
        self.objects = objects
        self.outage = outage
        self.clean_up = clean_up
        self.say = say
        self.rng = random.Random(scratch)  # noqa: S311 - test data, not secrets
        self.written: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.problems: list[str] = []
        self.result: dict[str, Any] = {}

    def _problem(self, line: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(line)

    def _data(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(64, 4096))

    def run(self) -> FleetDrill:
        started = time.monotonic()
        run = secrets.token_hex(3)
        journals = [
            os.path.join(self.journal_dir, f"fleet-{run}-host-{host}.sqlite") for host in "ab"
        ]
        survivor = self.connect(journals[1])
        try:
            try:
                self._rehearse(survivor, journals[0])
            finally:
                self.bring_back()
                if self.clean_up:
                    self.result["cleaned"] = self._clean_up(survivor.backends)
        finally:
            survivor.close()
            for journal in journals:
                _remove_journal(journal)
        return FleetDrill(
            backend=self.target,
            outage=self.outage,
            scratch=self.scratch,
            writes=len(self.written),
            deletes=len(self.deleted),
            duration_seconds=time.monotonic() - started,
            problems=tuple(self.problems),
            **self.result,
        )

    def _rehearse(self, survivor: Storage, lost_journal: str) -> None:
        lost = self.connect(lost_journal)
        try:
            existing = self._seed(survivor)
            if existing is None:
                return
            self.say(f"{self.target}: down ({self.outage}); host A writes and deletes")
            self.take_down()
            self._write_and_delete(lost, existing)
            # Everything host A sent has ended (and its hints are written) before the
            # host is lost, as with a host that dies after its requests completed.
            if not lost.flush(timeout_seconds=lost.settings.deadline_seconds + 1.0):
                self._problem("host A still had replica writes in flight when it was lost")
        finally:
            lost.close()
            _remove_journal(lost_journal)
        self.say(f"host A lost with its journal; {self.target} comes back")
        self.bring_back()
        backends = survivor.backends
        self._observe(backends)
        self.say(f"host B (its journal knows nothing of host A's work) repairs {self.target}")
        settings = survivor.settings
        settle_seconds = settings.breaker_reset_seconds + settings.deadline_seconds
        try:
            repaired, pending = settle_repairs(survivor, timeout_seconds=settle_seconds)
        except FailoverError as exc:
            self._problem(f"host B's repair failed: {exc}")
        else:
            self.result.update(repaired=repaired, pending=pending)
            if pending:
                self._problem(f"{pending} repair(s) still pending after {settle_seconds:g} s")
        self._verify(backends)

    def _seed(self, survivor: Storage) -> dict[str, bytes] | None:
        self.say(f"host B writes {self.objects} objects under {self.scratch}")
        existing: dict[str, bytes] = {}
        for i in range(self.objects):
            key, data = f"{self.scratch}old-{i:04d}", self._data()
            try:
                survivor.put(key, data)
            except FailoverError as exc:
                self._problem(f"host B's write {key} before the outage failed: {exc}")
                return None
            existing[key] = data
        survivor.flush()
        problems = check_replicas(survivor.backends, existing)
        for line in problems:
            self._problem(f"before the outage, {line}")
        return None if problems else existing

    def _write_and_delete(self, lost: Storage, existing: Mapping[str, bytes]) -> None:
        errors = 0
        actions: list[tuple[str, bytes | None]] = [
            (f"{self.scratch}new-{i:04d}", self._data()) for i in range(self.objects)
        ]
        # Half of host B's keys are overwritten (the replica holds an older version),
        # the others deleted (it holds a copy the delete must remove).
        actions += [
            (key, self._data() if i % 2 else None) for i, key in enumerate(sorted(existing))
        ]
        for key, data in actions:
            try:
                if data is None:
                    lost.delete(key)
                else:
                    lost.put(key, data)
            except FailoverError as exc:
                errors += 1
                verb = "delete" if data is None else "write"
                self._problem(f"host A's {verb} {key} failed during the outage: {exc}")
                continue
            if data is None:
                self.deleted.append(key)
            else:
                self.written[key] = data
        self.result["errors"] = errors

    def _observe(self, backends: Mapping[str, Backend]) -> None:
        """Count what the target missed, and the hints kept for it, before any repair."""
        target = {self.target: backends[self.target]}
        missed = len(check_replicas(target, self.written, limit=len(self.written)))
        missed += len(check_deleted(target, self.deleted, limit=len(self.deleted)))
        self.result["missed"] = missed
        hints = self._hints(backends, when="before the repair")
        if hints is not None:
            self.result["hints"] = len(hints)
        self.say(
            f"{self.target} missed {missed} of host A's "
            f"{len(self.written) + len(self.deleted)} actions; "
            f"{len(hints or ())} hint(s) on the other replicas"
        )

    def _verify(self, backends: Mapping[str, Backend]) -> None:
        self.say("checking every replica directly")
        write_problems = check_replicas(backends, self.written)
        delete_problems = check_deleted(backends, self.deleted)
        for line in write_problems + delete_problems:
            self._problem(f"after host B's repair, {line}")
        self.result.update(writes_repaired=not write_problems, deletes_repaired=not delete_problems)
        left = self._hints(backends, when="after the repair")
        if left is not None:
            self.result["hints_left"] = len(left)
            if left:
                self._problem(f"{len(left)} hint(s) for {self.scratch} left after the repair")

    def _hints(self, backends: Mapping[str, Backend], *, when: str) -> list[Hint] | None:
        """Every hint for a scratch key on every replica; None if one could not be read."""
        try:
            return _scratch_hints(backends, self.scratch)
        except (FailoverError, OSError) as exc:
            self._problem(f"hints unreadable {when}: {exc}")
            return None

    def _clean_up(self, backends: Mapping[str, Backend]) -> bool:
        self.say(f"deleting the objects, markers and hints under {self.scratch}")
        return _remove_scratch(backends, self.scratch, self._problem)


# -- one instance's open breaker, seen by another ---------------------------------------


def rehearse_shared_breaker(
    connect: Callable[[str, Sequence[EventHook]], Storage],
    *,
    target: str,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
    scratch: str,
    journal_dir: str | os.PathLike[str],
    objects: int = 4,
    forget: Callable[[], None] | None = None,
    clean_up: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> SharedBreakerDrill:
    """Instance A meets an outage of ``target``; instance B must see A's breaker open.

    Two instances, A and B, are built with ``connect(journal, hooks)``, their breakers
    in the same shared storage (``breaker_storage``; use a namespace of the rehearsal's
    own). Then:

    1. B writes ``objects`` objects under ``scratch``;
    2. ``take_down()``; A writes until its breaker for ``target`` opens;
    3. B must report that breaker open (:meth:`Storage.health()
       <failover.Storage.health>`) without having met a single failure itself, then
       reads its objects and writes as many again: none may fail, and the calls B sends
       to ``target`` meanwhile are counted (0, unless B's write policy cannot be met
       without it);
    4. ``bring_back()``; with ``clean_up`` the scratch objects and hints are removed;
       ``forget()`` removes the rehearsal's breakers from the shared storage.

    Args:
        connect: builds one instance given its journal path and event hooks; its
            backends are its own and ``take_down`` must reach A's.
        target: the backend ``take_down`` takes down.
        take_down: takes ``target`` down for the instances built so far.
        bring_back: undoes ``take_down`` (harmless to repeat).
        scratch: prefix of every key written (ends with ``/``).
        journal_dir: directory for the two journals (removed at the end).
        objects: objects B writes before and during the outage.
        forget: removes the rehearsal's breakers from the shared storage (called at
            the end in any case).
        clean_up: remove the scratch objects, markers and hints.
        on_progress: called with a short line as each step starts.

    Returns:
        The outcome; :attr:`SharedBreakerDrill.passed` says whether every invariant held.

    Raises:
        ConfigError: ``objects < 1``.
    """
    if objects < 1:
        raise ConfigError(f"objects must be at least 1, got {objects}")
    return _SharedBreakerRun(
        connect,
        target=target,
        take_down=take_down,
        bring_back=bring_back,
        scratch=scratch,
        journal_dir=os.fspath(journal_dir),
        objects=objects,
        forget=forget,
        clean_up=clean_up,
        say=on_progress or (lambda _line: None),
    ).run()


class _StorageTrouble:
    """An event hook that keeps the first :class:`BreakerStorageUnavailable` it sees."""

    def __init__(self) -> None:
        self.first: BreakerStorageUnavailable | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, BreakerStorageUnavailable) and self.first is None:
            self.first = event


def _calls_to(backend: Backend) -> int | None:
    """Calls a metered or fault-injecting backend has received (``None``: not counted)."""
    if isinstance(backend, MeteredBackend):
        return backend.ops
    if isinstance(backend, FaultyBackend):
        return sum(backend.calls.values())
    return None


class _SharedBreakerRun:
    """One shared-breaker rehearsal (see :func:`rehearse_shared_breaker`)."""

    def __init__(
        self,
        connect: Callable[[str, Sequence[EventHook]], Storage],
        *,
        target: str,
        take_down: Callable[[], None],
        bring_back: Callable[[], None],
        scratch: str,
        journal_dir: str,
        objects: int,
        forget: Callable[[], None] | None,
        clean_up: bool,
        say: Callable[[str], None],
    ) -> None:
        self.connect = connect
        self.target = target
        self.take_down = take_down
        self.bring_back = bring_back
        self.scratch = scratch
        self.journal_dir = journal_dir
        self.objects = objects
        self.forget = forget
        self.clean_up = clean_up
        self.say = say
        self.rng = random.Random(scratch)  # noqa: S311 - test data, not secrets
        self.timeline = BreakerTimeline()
        self.trouble = _StorageTrouble()
        self.problems: list[str] = []
        self.result: dict[str, Any] = {"errors": 0}

    def _problem(self, line: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(line)

    def _data(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(64, 1024))

    def run(self) -> SharedBreakerDrill:
        started = time.monotonic()
        run = secrets.token_hex(3)
        journals = [
            os.path.join(self.journal_dir, f"shared-{run}-host-{host}.sqlite") for host in "ab"
        ]
        storage = "?"
        hooks_a: list[EventHook] = [self.timeline, self.trouble]
        b = self.connect(journals[1], [self.trouble])
        try:
            storage = str(b.settings.breaker_storage or "local")
            a = self.connect(journals[0], hooks_a)
            try:
                self._rehearse(a, b)
            finally:
                self.bring_back()
                a.close()
            if self.clean_up:
                self.result["cleaned"] = self._clean_up(b)
        finally:
            self.bring_back()
            b.close()
            for journal in journals:
                _remove_journal(journal)
            # Once both are closed: an instance still open could write its breakers again.
            if self.forget is not None and not self._forget():
                self.result["cleaned"] = False
        return SharedBreakerDrill(
            backend=self.target,
            storage=storage,
            duration_seconds=time.monotonic() - started,
            problems=tuple(self.problems),
            **self.result,
        )

    def _rehearse(self, a: Storage, b: Storage) -> None:
        if b.settings.breaker_storage is None:
            self._problem("no shared breaker storage is configured")
            return
        seeds = self._seed(b)
        if seeds is None or self._storage_failed():
            return
        self.say(f"{self.target}: down for instance A; A writes until its breaker opens")
        self.take_down()
        began = time.monotonic()
        self._trip(a, began)
        opened = self.timeline.first(self.target, "open", since=began)
        self.result["opened"] = opened is not None
        if opened is None:
            self._problem(f"instance A's breaker for {self.target} did not open")
            return
        if self._storage_failed():
            return
        self.say(f"instance A's breaker for {self.target} opened; does instance B see it?")
        opened_at = began + opened
        seen = _wait_for_state(b, self.target, "open", timeout_seconds=5.0)
        self.result["seen"] = seen
        if not seen:
            self._problem(f"instance B still reports {self.target} {b.health()[self.target].state}")
            return
        self.result["seen_after_seconds"] = max(0.0, time.monotonic() - opened_at)
        self._use(b, seeds)

    def _storage_failed(self) -> bool:
        trouble = self.trouble.first
        if trouble is not None:
            self._problem(f"the breaker storage {trouble.backend} failed: {trouble.error}")
        return trouble is not None

    def _seed(self, b: Storage) -> dict[str, bytes] | None:
        self.say(f"instance B writes {self.objects} objects under {self.scratch}")
        seeds: dict[str, bytes] = {}
        for i in range(self.objects):
            key, data = f"{self.scratch}seed-{i:04d}", self._data()
            try:
                b.put(key, data)
            except FailoverError as exc:
                self._problem(f"instance B's write {key} before the outage failed: {exc}")
                return None
            seeds[key] = data
        b.flush()
        return seeds

    def _trip(self, a: Storage, began: float) -> None:
        """A writes (every write reaches every backend) until its breaker opens."""
        settings = a.settings
        patience = settings.breaker_fail_max * settings.timeout_seconds + settings.deadline_seconds
        give_up = began + patience
        i = 0
        while self.timeline.first(self.target, "open", since=began) is None:
            if time.monotonic() >= give_up or i >= 4 * settings.breaker_fail_max:
                break
            key = f"{self.scratch}a-{i:04d}"
            i += 1
            try:
                a.put(key, self._data())
            except FailoverError as exc:
                self.result["errors"] += 1
                self._problem(f"instance A's write {key} failed: {exc}")
        # Failures of attempts still in flight may be what opens it.
        while self.timeline.first(self.target, "open", since=began) is None:
            if time.monotonic() >= give_up:
                return
            time.sleep(_POLL_SECONDS)

    def _use(self, b: Storage, seeds: Mapping[str, bytes]) -> None:
        counted = b.backends[self.target]
        before = _calls_to(counted)
        for i, (key, data) in enumerate(seeds.items()):
            try:
                if b.get(key) != data:
                    self._problem(f"instance B read wrong bytes for {key}")
                b.put(f"{self.scratch}b-{i:04d}", self._data())
            except FailoverError as exc:
                self.result["errors"] += 1
                self._problem(f"instance B's call failed while {self.target} was open: {exc}")
        after = _calls_to(counted)
        if before is not None and after is not None:
            self.result["b_calls"] = after - before
        self.say(
            f"instance B saw {self.target} open and sent it "
            f"{self.result.get('b_calls', '?')} call(s)"
        )

    def _clean_up(self, b: Storage) -> bool:
        self.say(f"deleting the objects and hints under {self.scratch}")
        b.flush()
        return _remove_scratch(b.backends, self.scratch, self._problem)

    def _forget(self) -> bool:
        assert self.forget is not None
        try:
            self.forget()
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            self._problem(f"the rehearsal's breakers could not be removed: {exc}")
            return False
        return True


def _wait_for_state(
    store: Storage, backend: str, state: BreakerState, *, timeout_seconds: float
) -> bool:
    give_up = time.monotonic() + timeout_seconds
    while store.health()[backend].state != state:
        if time.monotonic() >= give_up:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _describe_differences(report: ReconcileReport) -> str:
    parts = []
    groups = {
        "missing": report.missing,
        "stale": report.stale,
        "corrupt": report.corrupt,
        "orphaned": report.orphaned,
    }
    for label, group in groups.items():
        for name, keys in group.items():
            if keys:
                parts.append(f"{len(keys)} {label} on {name}")
    return ", ".join(parts) or "none"
