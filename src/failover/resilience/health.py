"""Measured health of each backend: latency, error rate, and a 0..1 routing score.

The tracker keeps, per backend name, three numbers updated in O(1) per call:

* **latency**: a *peak EWMA* (Finagle's ``PeakEwma``). A sample above the current value
  replaces it at once, so a backend that turns slow is avoided after one slow call; a
  sample below it is blended in with weight ``1 - exp(-dt / decay_seconds)``, where
  ``dt`` is the time since the previous sample: the average decays with *time*, not with
  the number of calls, so a burst of fast answers does not erase a slow one instantly.
* **error rate**: an EWMA of "this call failed transiently" (1) or not (0). A sample
  weighs ``max(1 - exp(-dt / decay_seconds), 1 / error_window_calls)``: about the last
  ``error_window_calls`` calls under steady traffic, about the last ``decay_seconds``
  under light traffic, and a sample after a long silence replaces stale history.
* **consecutive failures**, reset by any success.

The first sample of a backend sets its latency, and moves its error rate from the
cold-start 0 with weight ``1 / error_window_calls`` (one early hiccup does not condemn
it). Callers record only *transient* failures with :meth:`HealthTracker.record_failure`;
an answer such as ``NotFoundError`` or a permanent 4xx proves the backend is up and is
recorded with :meth:`HealthTracker.record_success`.

**Score** (what :meth:`HealthTracker.score` returns and routing prefers)::

    r     = exp(-idle / idle_recovery_seconds)   # idle: seconds since the last sample
    cost  = latency * r                          # cold backend: the average latency, r = 1
    score = (best + floor) / (cost + floor) * (1 - error_rate * r)

``best`` is the lowest ``cost`` over every backend the tracker knows, and ``floor`` is
``latency_floor_seconds`` (1 ms by default) so that sub-millisecond differences count as
noise. The fastest error-free backend scores 1.0; one twice as slow about 0.5; one
failing half its calls loses half its score; one that always fails scores 0.

The factor ``r`` is Finagle's idle decay: a backend that is never tried first gets no
samples, and its stale numbers would keep it last forever. As it idles its cost and
error rate fade (under steady traffic ``idle`` is milliseconds and ``r`` is 1), until
it ranks first and gets a real call: a healed backend then keeps its good numbers, a
still-broken one drops back at once (a sample after a long idle time outweighs the old
history). Reported ``latency_ms`` and ``error_rate`` are the measured EWMAs, without
the fade.

**Cold start.** A backend without samples is treated as healthy with average latency:
error rate 0, latency the mean of the measured latencies of the backends that have
samples (0 when none has).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from failover.errors import ConfigError
from failover.resilience.clock import Clock, SystemClock
from failover.types import BackendHealth, BreakerState

__all__ = ["HealthSnapshot", "HealthTracker"]


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """One backend's health at one instant, as the tracker computes it.

    Attributes:
        name: backend name.
        score: 0 (avoid) .. 1 (best); see the module docstring for the formula.
        latency_ms: measured peak-EWMA latency in milliseconds (the cold-start
            average for a backend without samples).
        error_rate: measured EWMA of transient failures, 0..1.
        consecutive_failures: transient failures since the last success.
        samples: calls recorded so far (successes and failures).
        failures: transient failures recorded so far.
    """

    name: str
    score: float
    latency_ms: float
    error_rate: float
    consecutive_failures: int
    samples: int
    failures: int

    def to_backend_health(self, *, state: BreakerState, pending_repairs: int) -> BackendHealth:
        """Combine with the facts the tracker does not own into the public record.

        Args:
            state: the backend's circuit breaker state.
            pending_repairs: replica actions waiting in the journal for this backend.

        Returns:
            The :class:`~failover.types.BackendHealth` for ``Storage.health()``.
        """
        return BackendHealth(
            name=self.name,
            state=state,
            score=self.score,
            latency_ms=self.latency_ms,
            error_rate=self.error_rate,
            pending_repairs=pending_repairs,
        )


class _BackendStats:
    """Mutable per-backend numbers; only touched under the tracker's lock."""

    __slots__ = (
        "consecutive_failures",
        "error_rate",
        "failures",
        "last_sample_at",
        "latency_seconds",
        "samples",
    )

    def __init__(self) -> None:
        self.latency_seconds = 0.0
        self.error_rate = 0.0
        self.consecutive_failures = 0
        self.samples = 0
        self.failures = 0
        self.last_sample_at: float | None = None


class HealthTracker:
    """Thread-safe latency / error-rate tracker keyed by backend name.

    Recording is O(1) under one lock; reading a score is O(number of backends),
    because a score is relative to the best backend.
    """

    def __init__(
        self,
        *,
        names: Iterable[str] = (),
        clock: Clock | None = None,
        decay_seconds: float = 10.0,
        error_window_calls: int = 20,
        idle_recovery_seconds: float = 30.0,
        latency_floor_seconds: float = 0.001,
    ) -> None:
        """Create a tracker.

        Args:
            names: backends known from the start (scored as cold until sampled);
                others are added on their first record or query.
            clock: time source for the time-decayed averages.
            decay_seconds: time constant of both EWMAs (Finagle uses 10 s).
            error_window_calls: under steady traffic the error rate covers about this
                many recent calls (minimum sample weight ``1 / error_window_calls``).
            idle_recovery_seconds: time constant with which an idle backend's cost and
                error rate fade in its score (so that it is probed again);
                ``math.inf`` disables it.
            latency_floor_seconds: added to latencies in the score ratio, so that
                latency differences far below it do not matter.

        Raises:
            ConfigError: a time constant is not positive, or ``error_window_calls < 1``,
                or ``latency_floor_seconds`` is negative.
        """
        if not decay_seconds > 0:
            raise ConfigError(f"decay_seconds must be > 0, got {decay_seconds}")
        if not idle_recovery_seconds > 0:
            raise ConfigError(f"idle_recovery_seconds must be > 0, got {idle_recovery_seconds}")
        if error_window_calls < 1:
            raise ConfigError(f"error_window_calls must be >= 1, got {error_window_calls}")
        if not latency_floor_seconds >= 0:
            raise ConfigError(f"latency_floor_seconds must be >= 0, got {latency_floor_seconds}")
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._decay_seconds = float(decay_seconds)
        self._min_error_weight = 1.0 / error_window_calls
        self._idle_recovery_seconds = float(idle_recovery_seconds)
        self._latency_floor_seconds = float(latency_floor_seconds)
        self._lock = threading.Lock()
        self._stats: dict[str, _BackendStats] = {name: _BackendStats() for name in names}

    # -- recording ---------------------------------------------------------------------

    def record_success(self, name: str, latency_seconds: float) -> None:
        """Record a call that got an answer (including ``NotFoundError`` or a 4xx).

        Args:
            name: backend name.
            latency_seconds: how long the call took.

        Raises:
            ValueError: ``latency_seconds`` is negative or NaN.
        """
        self._record(name, latency_seconds, failed=False)

    def record_failure(self, name: str, latency_seconds: float) -> None:
        """Record a transient failure (timeout, refused connection, 5xx, throttling).

        Args:
            name: backend name.
            latency_seconds: how long the call took before failing (for a timeout,
                the timeout: a blackholed backend thus also looks slow).

        Raises:
            ValueError: ``latency_seconds`` is negative or NaN.
        """
        self._record(name, latency_seconds, failed=True)

    def _record(self, name: str, latency_seconds: float, *, failed: bool) -> None:
        if not latency_seconds >= 0:  # also rejects NaN
            raise ValueError(f"latency_seconds must be >= 0, got {latency_seconds}")
        now = self._clock.monotonic()
        outcome = 1.0 if failed else 0.0
        with self._lock:
            stats = self._stats.get(name)
            if stats is None:
                stats = self._stats[name] = _BackendStats()
            if stats.last_sample_at is None:
                # Latency has no prior worth keeping; the error rate starts from the
                # cold-start "healthy" so that one early hiccup does not zero the score.
                stats.latency_seconds = latency_seconds
                stats.error_rate = outcome * self._min_error_weight
            else:
                elapsed = max(0.0, now - stats.last_sample_at)
                keep = math.exp(-elapsed / self._decay_seconds)
                if latency_seconds > stats.latency_seconds:
                    stats.latency_seconds = latency_seconds  # the "peak" in peak EWMA
                else:
                    stats.latency_seconds = stats.latency_seconds * keep + latency_seconds * (
                        1.0 - keep
                    )
                weight = max(1.0 - keep, self._min_error_weight)
                stats.error_rate += (outcome - stats.error_rate) * weight
            stats.last_sample_at = now
            stats.samples += 1
            if failed:
                stats.failures += 1
                stats.consecutive_failures += 1
            else:
                stats.consecutive_failures = 0

    # -- reading -----------------------------------------------------------------------

    def score(self, name: str) -> float:
        """Return the backend's routing score, 0 (avoid) .. 1 (best).

        Args:
            name: backend name (an unknown name is scored as a cold backend).

        Returns:
            The score defined in the module docstring.
        """
        return self.snapshot(name).score

    def snapshot(self, name: str) -> HealthSnapshot:
        """Return the backend's current numbers.

        Args:
            name: backend name (an unknown name is reported as a cold backend).

        Returns:
            A frozen :class:`HealthSnapshot`.
        """
        return self.snapshots((name,))[name]

    def snapshots(self, names: Iterable[str] | None = None) -> dict[str, HealthSnapshot]:
        """Return consistent snapshots of several backends, computed under one lock.

        Args:
            names: the backends wanted; every known backend when ``None``. Unknown
                names are reported as cold backends (and take part in the best-latency
                comparison), but are not remembered.

        Returns:
            Backend name to snapshot, in the order of ``names``.
        """
        now = self._clock.monotonic()
        with self._lock:
            wanted = list(self._stats) if names is None else list(dict.fromkeys(names))
            measured = [s.latency_seconds for s in self._stats.values() if s.samples]
            cold_latency = math.fsum(measured) / len(measured) if measured else 0.0
            # name -> (measured latency, measured error rate, cost, faded error rate)
            rows: dict[str, tuple[float, float, float, float]] = {}
            for name, stats in self._stats.items():
                if not stats.samples or stats.last_sample_at is None:
                    rows[name] = (cold_latency, 0.0, cold_latency, 0.0)
                    continue
                idle = max(0.0, now - stats.last_sample_at)
                fade = math.exp(-idle / self._idle_recovery_seconds)
                rows[name] = (
                    stats.latency_seconds,
                    stats.error_rate,
                    stats.latency_seconds * fade,
                    stats.error_rate * fade,
                )
            for name in wanted:
                rows.setdefault(name, (cold_latency, 0.0, cold_latency, 0.0))
            best = min(cost for _, _, cost, _ in rows.values())
            floor = self._latency_floor_seconds
            cold = _BackendStats()
            result: dict[str, HealthSnapshot] = {}
            for name in wanted:
                latency, error_rate, cost, faded_error_rate = rows[name]
                stats = self._stats.get(name, cold)
                denominator = cost + floor
                latency_factor = (best + floor) / denominator if denominator > 0 else 1.0
                result[name] = HealthSnapshot(
                    name=name,
                    score=_clamp01(latency_factor * (1.0 - faded_error_rate)),
                    latency_ms=latency * 1000.0,
                    error_rate=error_rate,
                    consecutive_failures=stats.consecutive_failures,
                    samples=stats.samples,
                    failures=stats.failures,
                )
            return result

    def reset(self, name: str) -> None:
        """Forget everything measured about a backend (it becomes cold).

        Args:
            name: backend name.
        """
        with self._lock:
            self._stats[name] = _BackendStats()

    @property
    def names(self) -> tuple[str, ...]:
        """Every backend the tracker knows, in order of first appearance."""
        with self._lock:
            return tuple(self._stats)

    def __repr__(self) -> str:
        return f"HealthTracker(backends={list(self.names)!r})"


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))
