"""The dispatcher: runs calls on named backends under every resilience policy.

Both facades (:class:`~failover.Storage` and :class:`~failover.Invoker`) hand their
I/O to one :class:`Dispatcher`, which composes the pure strategies of
:mod:`failover.resilience` around it, each doing one job:

* **workers**: each backend has its own thread pool, so a hung backend cannot starve
  the others, and a call that passes its deadline is *abandoned* (the caller gets
  ``BackendTimeout``; the worker finishes when the SDK's socket timeout fires).
* **breaker**: an open breaker skips its backend without waiting; in half-open state
  one trial call goes through. Only transient failures count.
* **retries**: transient failures are retried on the same backend with full-jitter
  backoff, within the attempts, the call's deadline and the shared retry budget.
* **health and routing**: every outcome feeds the health tracker; reads go first to the
  backend the router prefers (power of two choices over the health score, or priority
  order), and fail over to the next one on a failure.
* **hedging**: with ``read_policy="hedged"``, a backend that has not answered within the
  hedge delay gets company: the next backend is asked too and the first good answer wins.
* **fan-out**: writes go to every backend in parallel and return as soon as the
  required number acknowledged.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import itertools
import random
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from failover.config import Settings
from failover.errors import (
    AllBackendsFailed,
    BackendSkipped,
    BackendTimeout,
    QuorumNotReached,
    is_transient,
)
from failover.events import (
    BackendDemoted,
    BackendRecovered,
    BreakerStateChanged,
    Event,
    EventHook,
    FailedOver,
    HedgeFired,
    LoggingHook,
    RetryScheduled,
    emit,
)
from failover.resilience import (
    BreakerRegistry,
    Clock,
    Deadline,
    HealthRouter,
    HealthTracker,
    HedgePolicy,
    LatencyWindow,
    OrderedRouter,
    RetryBudget,
    RetryPolicy,
    Router,
    SystemClock,
    call_with_retries,
)
from failover.telemetry import Telemetry
from failover.types import BackendHealth, BreakerState

if TYPE_CHECKING:
    import pybreaker

    from failover.shared_breakers import SharedBreakers

__all__ = ["Dispatcher"]

T = TypeVar("T")

#: A backend whose score falls below this (5x slower than the best, or failing most
#: calls) is reported demoted ...
DEMOTE_BELOW = 0.2
#: ... and recovered once it climbs back above this (hysteresis avoids flapping events).
RECOVER_ABOVE = 0.5
_DEMOTION_CHECK_EVERY = 16


class Dispatcher:
    """Runs calls on named backends with breakers, retries, routing, hedging and fan-out.

    Args:
        names: backend names in priority order.
        settings: timeouts, attempts, breaker and read-policy settings.
        hooks: event hooks (default: one :class:`~failover.events.LoggingHook`).
        clock: time source for deadlines, backoff, health and breakers.
        rng: random source for routing and jitter (seed it for reproducible tests).
        workers_per_backend: threads per backend (bounds its concurrent calls).
        pending_repairs: returns the number of journaled actions for a backend.
        breaker_keys: what identifies each backend's breaker across instances when
            ``settings.breaker_storage`` shares breakers (default: the name).
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        settings: Settings,
        hooks: Sequence[EventHook] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        workers_per_backend: int = 16,
        pending_repairs: Callable[[str], int] | None = None,
        telemetry: Telemetry | None = None,
        breaker_keys: Mapping[str, str] | None = None,
    ) -> None:
        self._names = tuple(names)
        #: Counts (and, with a tracer, traces) every backend attempt.
        self.telemetry = telemetry or Telemetry()
        self._settings = settings
        self._hooks: tuple[EventHook, ...] = tuple(hooks) if hooks is not None else (LoggingHook(),)
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - load balancing, not cryptography
        self._pending_repairs = pending_repairs or (lambda _name: 0)
        self.breakers = BreakerRegistry(
            names=self._names,
            fail_max=settings.breaker_fail_max,
            reset_timeout_seconds=settings.breaker_reset_seconds,
            clock=self._clock,
            on_state_change=self._on_breaker_change,
            storage_factory=self._shared_breaker_storage(breaker_keys or {}),
        )
        self.health = HealthTracker(names=self._names, clock=self._clock)
        self.latencies = LatencyWindow()
        self.budget = RetryBudget(clock=self._clock)
        self.retry_policy = RetryPolicy(attempts=settings.retry_attempts)
        self.router: Router = (
            OrderedRouter()
            if settings.read_policy == "ordered"
            else HealthRouter(self.health, rng=self._rng)
        )
        self.hedge_policy = HedgePolicy(
            fixed_delay_seconds=None
            if settings.hedge_delay_ms is None
            else settings.hedge_delay_ms / 1000.0
        )
        self._executors = {
            name: cf.ThreadPoolExecutor(
                max_workers=workers_per_backend, thread_name_prefix=f"failover-{name}"
            )
            for name in self._names
        }
        self._demoted: set[str] = set()
        self._since_check: dict[str, int] = {}
        self._demoted_lock = threading.Lock()
        self._stopped = threading.Event()
        # The tracer's gauges read breakers, scores and repairs live, until close().
        self.telemetry.watch(self.backend_health, repairs=pending_repairs is not None)

    # -- configuration -----------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Backend names in priority order."""
        return self._names

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self._settings

    @property
    def clock(self) -> Clock:
        """The time source of every policy."""
        return self._clock

    @property
    def hooks(self) -> tuple[EventHook, ...]:
        """The event hooks."""
        return self._hooks

    def deadline(self, seconds: float | None = None) -> Deadline:
        """A new deadline for one public call (``deadline_seconds`` by default)."""
        return Deadline.after(
            self._settings.deadline_seconds if seconds is None else seconds, clock=self._clock
        )

    def emit(self, event: Event) -> None:
        """Deliver an event to the hooks."""
        emit(self._hooks, event)

    def close(self) -> None:
        """Stop: no attempt or retry starts from now on; never waits for a hung backend.

        An attempt already inside a backend call is abandoned: it runs to its end on its
        worker thread, and only what it does itself (a journal row cleared) follows.
        """
        self._stopped.set()
        self.telemetry.close()
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        if self._shared_breakers is not None:
            self._shared_breakers.close()

    def _shared_breaker_storage(
        self, keys: Mapping[str, str]
    ) -> Callable[[str], pybreaker.CircuitBreakerStorage] | None:
        """The breakers' storage factory when ``breaker_storage`` shares them, else None."""
        self._shared_breakers: SharedBreakers | None = None
        url = self._settings.breaker_storage
        if url is None:
            return None
        # Imported here: the redis client is needed only with shared breakers.
        from failover.shared_breakers import SharedBreakers  # noqa: PLC0415

        shared = self._shared_breakers = SharedBreakers(
            url,
            timeout_seconds=url.client_timeout_seconds(
                attempt_seconds=self._settings.timeout_seconds,
                deadline_seconds=self._settings.deadline_seconds,
            ),
            on_event=self.emit,
            clock=self._clock,
        )
        return lambda name: shared.storage(keys.get(name, name))

    # -- one backend -------------------------------------------------------------------

    def submit(
        self,
        name: str,
        operation: str,
        key: str,
        fn: Callable[[], T],
        deadline: Deadline,
        *,
        ignore_breaker: bool = False,
        retry: bool = True,
        hedged: bool = False,
    ) -> cf.Future[T]:
        """Start ``fn`` on ``name``'s workers; return its future.

        ``retry=False`` does not retry a *timeout* on this backend: the caller has
        another backend to fail over to, and a second timeout on a backend that just
        used up one would only double the wait. Other transient errors (refused
        connections, 5xx, throttling) fail fast and are retried as usual. ``hedged``
        marks a hedged attempt (for telemetry).
        """
        return self._executors[name].submit(
            self._run,
            name,
            fn,
            operation=operation,
            key=key,
            deadline=deadline,
            ignore_breaker=ignore_breaker,
            retry=retry,
            parent=self.telemetry.capture(),
            hedged=hedged,
        )

    def call(
        self,
        name: str,
        operation: str,
        key: str,
        fn: Callable[[], T],
        deadline: Deadline,
        *,
        ignore_breaker: bool = False,
    ) -> T:
        """Run ``fn`` on one backend and wait for it, at most until the deadline."""
        if deadline.expired:
            raise BackendSkipped(f"[{name}] not tried: the call's deadline was reached")
        future = self.submit(name, operation, key, fn, deadline, ignore_breaker=ignore_breaker)
        return self._wait(name, future, deadline)

    def _wait(self, name: str, future: cf.Future[T], deadline: Deadline) -> T:
        try:
            return future.result(timeout=deadline.remaining())
        except cf.TimeoutError:
            future.cancel()
            raise BackendTimeout(
                # A call may bring its own deadline (Invoker.invoke(timeout_seconds=...)),
                # so the configured deadline_seconds is not necessarily the one missed.
                "no answer within the call's deadline",
                backend=name,
            ) from None

    def _run(
        self,
        name: str,
        fn: Callable[[], T],
        *,
        operation: str,
        key: str,
        deadline: Deadline,
        ignore_breaker: bool,
        retry: bool = True,
        parent: object = None,
        hedged: bool = False,
    ) -> T:
        attempts = itertools.count(1)

        def attempt() -> T:
            if self._stopped.is_set():  # closed while queued or between retries
                raise BackendSkipped(f"[{name}] not tried: the store was closed")
            if not ignore_breaker and not self.breakers.allow(name):
                raise BackendSkipped(
                    f"[{name}] not tried: circuit breaker open "
                    f"(next trial in {self.breakers.retry_after(name):.1f} s)"
                )
            with self.telemetry.attempt(
                name, operation, key, next(attempts), parent=parent, hedged=hedged
            ):
                started = self._clock.monotonic()
                try:
                    result = fn()
                except BaseException as exc:
                    self._record(name, exc, self._clock.monotonic() - started)
                    raise
                self._record(name, None, self._clock.monotonic() - started)
                return result

        def on_retry(attempt_number: int, exc: BaseException, delay: float) -> None:
            self.emit(RetryScheduled(name, operation, key, attempt_number, delay, _describe(exc)))

        return call_with_retries(
            attempt,
            policy=self.retry_policy,
            budget=self.budget,
            deadline=deadline,
            clock=self._clock,
            rng=self._rng,
            on_retry=on_retry,
            is_retryable=is_transient if retry else _transient_but_not_timeout,
            deposit=False,  # deposited once per public call, in first() and fan_out()
        )

    def _record(self, name: str, exc: BaseException | None, elapsed: float) -> None:
        failed = exc is not None and is_transient(exc)
        if failed:
            assert exc is not None
            self.health.record_failure(name, elapsed)
            self.breakers.record_failure(name, exc)
        else:
            # An answer (NotFound, a permanent 4xx) proves the backend is up.
            self.health.record_success(name, elapsed)
            self.latencies.record(name, elapsed)
            self.breakers.record_success(name)
        # Scoring looks at every backend: do it on failures, while demoted, and on every
        # 16th success (enough to notice a backend turning slow), not on every call.
        with self._demoted_lock:
            self._since_check[name] = count = self._since_check.get(name, 0) + 1
            due = failed or name in self._demoted or count % _DEMOTION_CHECK_EVERY == 0
        if due:
            self._check_demotion(name)

    def _check_demotion(self, name: str) -> None:
        score = self.health.score(name)
        with self._demoted_lock:
            if name not in self._demoted and score < DEMOTE_BELOW:
                self._demoted.add(name)
                event: Event | None = BackendDemoted(name, score)
            elif name in self._demoted and score > RECOVER_ABOVE:
                self._demoted.discard(name)
                event = BackendRecovered(name, score)
            else:
                event = None
        if event is not None:
            self.emit(event)

    def _on_breaker_change(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self.emit(BreakerStateChanged(name, old, new))

    # -- reads: first good answer ------------------------------------------------------

    def first(
        self,
        operation: str,
        key: str,
        fn: Callable[[str], T],
        *,
        accept: Callable[[str, T], None] | None = None,
        is_miss: Callable[[BaseException], bool] = lambda _exc: False,
        is_final: Callable[[BaseException], bool] = lambda _exc: False,
        discard: Callable[[T], None] | None = None,
        hedged: bool | None = None,
        deadline: Deadline | None = None,
        demote: Collection[str] = (),
        exclude: Mapping[str, BaseException] | None = None,
    ) -> tuple[str, T]:
        """Ask backends in routing order until one gives an accepted answer.

        Args:
            operation: name for events and errors (``"get"``, ``"invoke"``).
            key: object key or idempotency key, for events and errors.
            fn: the call, given the backend name.
            accept: may raise to reject an answer (e.g. a checksum mismatch) and move on.
            is_miss: errors that are answers but not the one wanted (NotFound: another
                replica may have the object); they move on without a failover event.
            is_final: errors to raise at once without trying another backend (a
                caller's mistake, such as an HTTP 400).
            discard: releases an answer that lost a hedge race (closes a stream).
            hedged: hedge reads (default: ``read_policy == "hedged"``).
            deadline: the call's deadline (default: ``deadline_seconds`` from now).
            demote: backends to try only after all the others (e.g. replicas with a
                pending repair for this key).
            exclude: backends not to ask at all, with the error to report for each.

        Returns:
            ``(backend name, answer)``.

        Raises:
            AllBackendsFailed: nobody answered acceptably; ``.errors`` has an entry for
                every backend (its error, a miss, or why it was not tried).
        """
        use_hedging = self._settings.read_policy == "hedged" if hedged is None else hedged
        winners, errors, _ = self.gather(
            operation,
            key,
            fn,
            need=1,
            accept=accept,
            is_miss=is_miss,
            is_final=is_final,
            discard=discard,
            hedged=use_hedging,
            deadline=deadline,
            demote=demote,
            exclude=exclude,
        )
        if winners:
            return winners[0]
        raise AllBackendsFailed(
            f"{operation} {key!r}", {n: errors[n] for n in self._names if n in errors}
        )

    def gather(
        self,
        operation: str,
        key: str,
        fn: Callable[[str], T],
        *,
        need: int,
        accept: Callable[[str, T], None] | None = None,
        is_miss: Callable[[BaseException], bool] = lambda _exc: False,
        is_final: Callable[[BaseException], bool] = lambda _exc: False,
        discard: Callable[[T], None] | None = None,
        hedged: bool = True,
        deadline: Deadline | None = None,
        demote: Collection[str] = (),
        exclude: Mapping[str, BaseException] | None = None,
    ) -> tuple[list[tuple[str, T]], dict[str, BaseException], list[str]]:
        """Ask ``need`` backends at once, in routing order, for the first ``need`` answers.

        A backend that fails is replaced by the next in line, and (when ``hedged``, the
        default: a k-of-n read is as slow as its slowest part) one that has not answered
        after the hedge delay gets company from the next one too. Answers that arrive
        after ``need`` others are released with ``discard``. :meth:`first` is the case
        ``need=1``.

        Args:
            operation: name for events and errors.
            key: object key, for events and errors.
            fn: the call, given the backend name.
            need: how many answers are wanted.
            accept: may raise to reject an answer and move on (see :meth:`first`).
            is_miss: errors that are answers (NotFound), moved past without an event.
            is_final: errors to raise at once (see :meth:`first`).
            discard: releases an answer that is not used.
            hedged: hedge slow backends.
            deadline: the call's deadline (default: ``deadline_seconds`` from now).
            demote: backends to ask only after all the others.
            exclude: backends not to ask at all, with the error to report for each.

        Returns:
            ``(answers, errors, untried)``: ``(backend, answer)`` pairs in the order they
            came in (fewer than ``need`` if too few backends answered), each failed or
            skipped backend's error, and the backends not asked, in routing order.
        """
        deadline = deadline or self.deadline()
        self.budget.deposit()
        plan = self.router.plan(self._names, available=self.breakers.available)
        errors: dict[str, BaseException] = dict(exclude or {})
        for name in plan.excluded:
            if name in errors:
                continue
            errors[name] = BackendSkipped(
                f"[{name}] not tried: circuit breaker open "
                f"(next trial in {self.breakers.retry_after(name):.1f} s)"
            )
        queue = [name for name in plan.order if name not in errors]
        if demote:
            queue.sort(key=lambda name: name in demote)  # stable: keeps routing order
        race = _Race(
            self,
            operation=operation,
            key=key,
            fn=fn,
            accept=accept,
            is_miss=is_miss,
            is_final=is_final,
            discard=discard,
            deadline=deadline,
            ignore_breaker=plan.panic,
        )
        winners = race.run(queue, errors, hedge=hedged, need=need)
        return winners, errors, queue

    # -- writes: fan-out ---------------------------------------------------------------

    def fan_out(
        self,
        operation: str,
        key: str,
        fn: Callable[[str], T],
        *,
        required: int,
        cleanup: Callable[[], None] | None = None,
        deadline: Deadline | None = None,
        on_finished: Callable[[str], None] | None = None,
    ) -> dict[str, T]:
        """Run ``fn`` on every backend in parallel; return once ``required`` succeeded.

        Backends whose breaker is open are skipped unless skipping them would make the
        requirement impossible to meet. ``on_finished(name)`` is called once per backend
        when its work is over (all retries included), or at once if it was skipped.
        Replicas slower than the acknowledgement keep running on their own workers;
        ``cleanup`` runs when the last of them finishes.

        Returns:
            Backend name to answer, in priority order, for those that acknowledged.

        Raises:
            QuorumNotReached: fewer than ``required`` acknowledged; ``.failed`` says why
                for each of the others.
        """
        deadline = deadline or self.deadline()
        self.budget.deposit()
        available = [n for n in self._names if self.breakers.available(n)]
        panic = len(available) < required
        targets = list(self._names) if panic else available
        failed: dict[str, BaseException] = {
            name: BackendSkipped(f"[{name}] not tried: circuit breaker open")
            for name in self._names
            if name not in targets
        }
        if on_finished is not None:
            for name in failed:
                on_finished(name)
        futures: dict[cf.Future[T], str] = {
            self.submit(
                name, operation, key, functools.partial(fn, name), deadline, ignore_breaker=panic
            ): name
            for name in targets
        }
        if on_finished is not None:
            for future, name in futures.items():
                future.add_done_callback(lambda _f, n=name: on_finished(n))  # type: ignore[misc]
        if cleanup is not None:
            _call_when_all_done(list(futures), cleanup)
        acks: dict[str, T] = {}
        pending = set(futures)
        while pending and len(acks) < required:
            # Once the requirement cannot be met, still collect the replicas in flight
            # (within the deadline) so that QuorumNotReached tells the whole story.
            impossible = len(acks) + len(pending) < required
            done, pending = cf.wait(
                pending,
                timeout=deadline.remaining(),
                return_when=cf.ALL_COMPLETED if impossible else cf.FIRST_COMPLETED,
            )
            if not done:
                break
            for future in done:
                name = futures[future]
                exc = future.exception()
                if exc is None:
                    acks[name] = future.result()
                else:
                    failed[name] = exc
        if len(acks) >= required:
            return {name: acks[name] for name in self._names if name in acks}
        for future in pending:
            failed[futures[future]] = BackendTimeout(
                "no acknowledgement within the call's deadline",
                backend=futures[future],
            )
        raise QuorumNotReached(
            key,
            operation=operation,
            required=required,
            succeeded=[n for n in self._names if n in acks],
            failed={n: failed[n] for n in self._names if n in failed},
        )

    # -- health ------------------------------------------------------------------------

    def backend_health(self) -> dict[str, BackendHealth]:
        """Health of every backend (breaker state, score, latency, error rate, repairs)."""
        snapshots = self.health.snapshots(self._names)
        return {
            name: snapshots[name].to_backend_health(
                state=self.breakers.state(name),
                pending_repairs=self._pending_repairs(name),
            )
            for name in self._names
        }


class _Race(Generic[T]):
    """One read: sequential failover, or hedged requests racing for the first answer."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        operation: str,
        key: str,
        fn: Callable[[str], T],
        accept: Callable[[str, T], None] | None,
        is_miss: Callable[[BaseException], bool],
        is_final: Callable[[BaseException], bool],
        discard: Callable[[T], None] | None,
        deadline: Deadline,
        ignore_breaker: bool,
    ) -> None:
        self.d = dispatcher
        self.operation = operation
        self.key = key
        self.fn = fn
        self.accept = accept
        self.is_miss = is_miss
        self.is_final = is_final
        self.discard = discard
        self.deadline = deadline
        self.ignore_breaker = ignore_breaker
        self.started: dict[cf.Future[T], float] = {}

    def run(
        self, queue: list[str], errors: dict[str, BaseException], *, hedge: bool, need: int
    ) -> list[tuple[str, T]]:
        """Ask backends from ``queue`` until ``need`` answers are in; return them.

        ``queue`` is consumed: what is left in it was not asked.
        """
        pending: dict[cf.Future[T], str] = {}
        winners: list[tuple[str, T]] = []
        try:
            while (queue or pending) and len(winners) < need:
                short = len(pending) + len(winners) < need
                if queue and (short or (hedge and pending and self._hedge_due(pending))):
                    if self.deadline.expired:
                        break
                    name = queue.pop(0)
                    self._launch(name, pending, hedging=not short, last=not queue)
                    continue
                timeout = self.deadline.remaining()
                if hedge and queue:
                    timeout = min(timeout, self._hedge_delay(pending))
                done = _first_done(pending, timeout)
                if not done:
                    if self.deadline.expired:
                        break
                    continue  # the hedge delay passed: the loop launches the next
                for future in done:
                    if len(winners) >= need:
                        break  # the rest stay pending: abandoned (and discarded) below
                    name = pending.pop(future)
                    outcome = self._settle(name, future, errors)
                    if outcome is not None:
                        winners.append((name, outcome))
        finally:
            self._abandon(pending, errors, won=len(winners) >= need)
            if len(winners) < need:
                for name in queue:
                    errors.setdefault(
                        name, BackendSkipped(f"[{name}] not tried: the call's deadline was reached")
                    )
        return winners

    def _launch(
        self, name: str, pending: dict[cf.Future[T], str], *, hedging: bool, last: bool
    ) -> None:
        if hedging:
            primary = next(iter(pending.values()))
            self.d.emit(
                HedgeFired(primary, self.operation, self.key, name, self._hedge_delay(pending))
            )
        future = self.d.submit(
            name,
            self.operation,
            self.key,
            (lambda: self.fn(name)),
            self.deadline,
            ignore_breaker=self.ignore_breaker,
            # While another backend is left to ask, a timeout fails over at once (the
            # next replica is the retry, as with Envoy's previous-hosts predicate)
            # instead of costing a second timeout on the same sick backend; only the
            # last one left retries a timeout in place.
            retry=last,
            hedged=hedging,
        )
        self.started[future] = self.d.clock.monotonic()
        pending[future] = name

    def _hedge_delay(self, pending: dict[cf.Future[T], str]) -> float:
        newest = max(pending, key=lambda f: self.started[f])
        delay = self.d.hedge_policy.delay_for(self.d.latencies, pending[newest])
        waited = self.d.clock.monotonic() - self.started[newest]
        return max(0.0, delay - waited)

    def _hedge_due(self, pending: dict[cf.Future[T], str]) -> bool:
        return self._hedge_delay(pending) <= 0.0

    def _settle(
        self, name: str, future: cf.Future[T], errors: dict[str, BaseException]
    ) -> T | None:
        exc = future.exception()
        if exc is None:
            result: T = future.result()
            if self.accept is None:
                return result
            try:
                self.accept(name, result)
            except Exception as rejected:  # noqa: BLE001 - any rejection moves on
                exc = rejected
            else:
                return result
        errors[name] = exc
        if self.is_final(exc):
            raise exc
        if not self.is_miss(exc):
            self.d.emit(FailedOver(name, self.operation, self.key, _describe(exc)))
        return None

    def _abandon(
        self, pending: dict[cf.Future[T], str], errors: dict[str, BaseException], *, won: bool
    ) -> None:
        for future, name in pending.items():
            future.cancel()
            if self.discard is not None:
                future.add_done_callback(self._discarder())
            if not won:
                errors[name] = BackendTimeout(
                    "no answer within the call's deadline",
                    backend=name,
                )

    def _discarder(self) -> Callable[[cf.Future[T]], None]:
        discard = self.discard
        assert discard is not None

        def done(future: cf.Future[T]) -> None:
            if not future.cancelled() and future.exception() is None:
                discard(future.result())

        return done


def _transient_but_not_timeout(exc: BaseException) -> bool:
    return is_transient(exc) and not isinstance(exc, BackendTimeout)


def _first_done(pending: Collection[cf.Future[T]], timeout: float) -> set[cf.Future[T]]:
    """``cf.wait(..., FIRST_COMPLETED)``, without its waiter set-up for a lone future.

    A read without hedging always waits on exactly one future; waiting on the future's
    own condition halves the cost of the hand-back from the worker thread.
    """
    if len(pending) != 1:
        done, _ = cf.wait(pending, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return done
    (future,) = pending
    try:
        future.exception(timeout=timeout)
    except cf.CancelledError:
        pass
    except TimeoutError:
        return set()
    return {future}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _call_when_all_done(futures: list[cf.Future[T]], callback: Callable[[], None]) -> None:
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: cf.Future[T]) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            callback()

    if not futures:
        callback()
    for future in futures:
        future.add_done_callback(one_done)
