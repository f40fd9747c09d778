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
5. deletes its scratch objects from every replica.

The drill uses a private repair journal and no background repair, so it neither adds
work to the application's journal nor races with it. Its building blocks
(:class:`MeteredBackend`, :class:`BreakerTimeline`, :func:`check_replicas`) also drive
``failover demo``.

Example:
    >>> report = run_drill(Settings.from_env(), objects=10)  # doctest: +SKIP
    >>> report.passed                                        # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from failover._storage import Storage
from failover.backends import from_url, parse_backend_url
from failover.config import Settings
from failover.errors import (
    BackendUnavailable,
    ConfigError,
    FailoverError,
    NotFoundError,
    is_transient,
)
from failover.events import BreakerStateChanged, Event
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
    "MeteredBackend",
    "OutageKind",
    "check_replicas",
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
class DrillReport:
    """The outcome of a drill over one or more backends.

    Attributes:
        prefix: the scratch prefix of this run.
        backends: every configured backend, in priority order.
        write_policy: the configured write policy.
        required_acks: acknowledgements a write needed.
        objects: scratch objects written before each outage.
        results: one entry per backend taken down, in the order they were.
    """

    prefix: str
    backends: tuple[str, ...]
    write_policy: str
    required_acks: int
    objects: int
    results: tuple[BackendDrill, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when every backend's outage passed."""
        return bool(self.results) and all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``failover drill --json`` prints)."""
        data = asdict(self)
        data["passed"] = self.passed
        for entry, result in zip(data["results"], self.results, strict=True):
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
    journal_dir = tempfile.mkdtemp(prefix="failover-drill-")
    try:
        drill_settings = settings.with_options(
            journal=f"{journal_dir}/journal.sqlite", repair_interval_seconds=0
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
    finally:
        shutil.rmtree(journal_dir, ignore_errors=True)
    return DrillReport(
        prefix=run_prefix,
        backends=tuple(names),
        write_policy=settings.write_policy,
        required_acks=settings.required_acks,
        objects=objects,
        results=tuple(results),
    )


def _backend_names(settings: Settings) -> list[str]:
    return [parse_backend_url(url).name for url in settings.backends]


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
        faulty: dict[str, FaultyBackend] = {}
        built: list[Backend] = []
        try:
            for url in self.settings.backends:
                backend = from_url(url, timeout_seconds=self.settings.timeout_seconds)
                built.append(backend)
                faulty[backend.name] = FaultyBackend(backend)
        except BaseException:
            for backend in built:
                backend.close()
            raise
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
        if self.outage == "hang":
            target.set(hang=True, hang_seconds=self.settings.timeout_seconds)
        else:
            target.set(error_rate=1.0, error=BackendUnavailable)
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
        cleaned = True
        for name, backend in faulty.items():
            try:
                for stored in list(backend.list(self.scratch)):
                    backend.delete(stored.key)
                left = next(iter(backend.list(self.scratch)), None)
            except (FailoverError, OSError) as exc:
                self._problem(f"{name}: could not delete scratch objects: {exc}")
                cleaned = False
                continue
            if left is not None:
                self._problem(f"{name}: scratch object {left.key} left behind")
                cleaned = False
        return cleaned


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
