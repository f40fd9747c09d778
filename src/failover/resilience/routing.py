"""Read routing: in which order to try the replicas, and when to hedge.

A router turns the configured backends into an attempt order. Every candidate appears
exactly once: the ones the caller may try first, then the excluded ones (breaker open)
in priority order, so that the caller can still name each of them in
``AllBackendsFailed.errors``.

* :class:`OrderedRouter` keeps the configured priority order.
* :class:`HealthRouter` spreads reads by measured health with the *power of two
  choices*: pick two distinct candidates at random, put the better one (higher
  :class:`~failover.resilience.health.HealthTracker` score, then lower latency) first,
  then order the rest by score (then latency, then priority). Random pairs avoid
  herding every client onto the one backend that looks best; the comparison steers
  reads away from slow or failing ones. Equally healthy backends (cold ones, say)
  share the first place at random.

**Panic mode** (Envoy's panic threshold). Exclusion is a guess: when too many backends
look unavailable, trusting it would fail reads that could succeed. So when fewer than
``panic_threshold`` (50 % by default) of the candidates are available, nothing is
excluded: the plan says ``panic=True`` and the caller should try every backend in the
plan order, breaker or not. When *none* is available, that order is the priority order.

Hedging: :class:`HedgePolicy` decides how long to wait for the first replica before
sending the same read to a second one, fixed or adaptive (a percentile of recent
latencies of the first replica, from a :class:`LatencyWindow`).
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from failover.errors import ConfigError
from failover.resilience.health import HealthSnapshot, HealthTracker

__all__ = [
    "HealthRouter",
    "HedgePolicy",
    "LatencyWindow",
    "OrderedRouter",
    "RoutePlan",
    "Router",
    "nearest_rank",
]


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The attempt order for one call.

    Attributes:
        order: every candidate exactly once; those to try first, then the excluded.
        excluded: candidates not to try (the caller reports "breaker open" for them);
            always empty in panic mode.
        panic: True when too few candidates were available to trust exclusion: the
            caller should try every backend in ``order``, even those whose breaker
            refuses calls.
    """

    order: tuple[str, ...]
    excluded: frozenset[str]
    panic: bool


class Router(Protocol):
    """A read-order policy."""

    def plan(self, candidates: Sequence[str], *, available: Callable[[str], bool]) -> RoutePlan:
        """Return the attempt plan for one call.

        Args:
            candidates: backend names in priority order (no duplicates).
            available: tells whether a backend may be called now; must not have side
                effects (use ``BreakerRegistry.available``, not ``allow``).

        Returns:
            The plan.
        """
        ...

    def order(self, candidates: Sequence[str], *, available: Callable[[str], bool]) -> list[str]:
        """Return ``plan(...).order`` as a list.

        Args:
            candidates: backend names in priority order (no duplicates).
            available: side-effect-free availability check.

        Returns:
            Every candidate exactly once.
        """
        ...


class _RouterBase:
    """Shared panic logic; subclasses order the routable candidates."""

    def __init__(self, *, panic_threshold: float = 0.5) -> None:
        if not 0.0 <= panic_threshold <= 1.0:
            raise ConfigError(f"panic_threshold must be within 0..1, got {panic_threshold}")
        self._panic_threshold = float(panic_threshold)

    @property
    def panic_threshold(self) -> float:
        """Fraction of candidates that must be available for exclusion to apply."""
        return self._panic_threshold

    def plan(self, candidates: Sequence[str], *, available: Callable[[str], bool]) -> RoutePlan:
        """Return the attempt plan for one call.

        Args:
            candidates: backend names in priority order (no duplicates).
            available: tells whether a backend may be called now; must not have side
                effects (use ``BreakerRegistry.available``, not ``allow``).

        Returns:
            The plan (see the module docstring for panic mode).

        Raises:
            ConfigError: ``candidates`` contains a name twice.
        """
        names = list(candidates)
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate backend names among candidates: {names!r}")
        if not names:
            return RoutePlan(order=(), excluded=frozenset(), panic=False)
        up = [name for name in names if available(name)]
        if not up:
            return RoutePlan(order=tuple(names), excluded=frozenset(), panic=True)
        if len(up) < self._panic_threshold * len(names):
            return RoutePlan(order=tuple(self._rank(names)), excluded=frozenset(), panic=True)
        routable = set(up)
        down = [name for name in names if name not in routable]
        return RoutePlan(order=(*self._rank(up), *down), excluded=frozenset(down), panic=False)

    def order(self, candidates: Sequence[str], *, available: Callable[[str], bool]) -> list[str]:
        """Return ``plan(...).order`` as a list.

        Args:
            candidates: backend names in priority order (no duplicates).
            available: side-effect-free availability check.

        Returns:
            Every candidate exactly once, the excluded ones last.

        Raises:
            ConfigError: ``candidates`` contains a name twice.
        """
        return list(self.plan(candidates, available=available).order)

    def _rank(self, names: list[str]) -> list[str]:
        raise NotImplementedError


class OrderedRouter(_RouterBase):
    """Try backends in the configured priority order (excluded ones last)."""

    def __init__(self, *, panic_threshold: float = 0.5) -> None:
        """Create the router.

        Args:
            panic_threshold: fraction of candidates that must be available for
                exclusion to apply.

        Raises:
            ConfigError: ``panic_threshold`` is outside 0..1.
        """
        super().__init__(panic_threshold=panic_threshold)

    def _rank(self, names: list[str]) -> list[str]:
        return list(names)

    def __repr__(self) -> str:
        return f"OrderedRouter(panic_threshold={self._panic_threshold})"


class HealthRouter(_RouterBase):
    """Power of two choices over health scores (excluded ones last)."""

    def __init__(
        self,
        tracker: HealthTracker,
        *,
        rng: random.Random | None = None,
        panic_threshold: float = 0.5,
    ) -> None:
        """Create the router.

        Args:
            tracker: where scores and latencies come from.
            rng: random source for the two choices (seed it in tests).
            panic_threshold: fraction of candidates that must be available for
                exclusion to apply.

        Raises:
            ConfigError: ``panic_threshold`` is outside 0..1.
        """
        super().__init__(panic_threshold=panic_threshold)
        self._tracker = tracker
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - not crypto
        self._rng_lock = threading.Lock()  # random.Random is not documented thread-safe

    def _rank(self, names: list[str]) -> list[str]:
        if len(names) < 2:
            return list(names)
        snapshots = self._tracker.snapshots(names)
        priority = {name: index for index, name in enumerate(names)}

        def health(name: str) -> tuple[float, float]:
            snap: HealthSnapshot = snapshots[name]
            return (-snap.score, snap.latency_ms)

        with self._rng_lock:
            first, second = self._rng.sample(names, 2)
        # An exact tie keeps the random order, so equally healthy backends share the load.
        head = second if health(second) < health(first) else first
        rest = sorted(
            (name for name in names if name != head),
            key=lambda name: (*health(name), priority[name]),
        )
        return [head, *rest]

    def __repr__(self) -> str:
        return f"HealthRouter(panic_threshold={self._panic_threshold})"


class LatencyWindow:
    """Bounded ring of the most recent latencies of each backend; thread-safe."""

    def __init__(self, *, size: int = 128) -> None:
        """Create the window.

        Args:
            size: latencies kept per backend (older ones are dropped).

        Raises:
            ConfigError: ``size < 1``.
        """
        if size < 1:
            raise ConfigError(f"latency window size must be >= 1, got {size}")
        self._size = size
        self._lock = threading.Lock()
        self._samples: dict[str, deque[float]] = {}

    @property
    def size(self) -> int:
        """Latencies kept per backend."""
        return self._size

    def record(self, name: str, latency_seconds: float) -> None:
        """Remember one call's latency.

        Args:
            name: backend name.
            latency_seconds: how long the call took.

        Raises:
            ValueError: ``latency_seconds`` is negative or NaN.
        """
        if not latency_seconds >= 0:
            raise ValueError(f"latency_seconds must be >= 0, got {latency_seconds}")
        with self._lock:
            ring = self._samples.get(name)
            if ring is None:
                ring = self._samples[name] = deque(maxlen=self._size)
            ring.append(float(latency_seconds))

    def samples(self, name: str) -> tuple[float, ...]:
        """Return the kept latencies of a backend, oldest first.

        Args:
            name: backend name.

        Returns:
            Up to ``size`` latencies in seconds (empty for an unknown backend).
        """
        with self._lock:
            return tuple(self._samples.get(name, ()))

    def percentile(self, name: str, fraction: float) -> float | None:
        """Return a nearest-rank percentile of a backend's recent latencies.

        Args:
            name: backend name.
            fraction: 0 < fraction <= 1 (0.95 for p95).

        Returns:
            The latency in seconds, or ``None`` without samples.

        Raises:
            ValueError: ``fraction`` is outside (0, 1].
        """
        return nearest_rank(self.samples(name), fraction)


def nearest_rank(samples: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest sample with ``fraction`` of them at or below.

    Args:
        samples: values in any order.
        fraction: 0 < fraction <= 1 (0.95 for p95).

    Returns:
        The percentile, or ``None`` for no samples.

    Raises:
        ValueError: ``fraction`` is outside (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"percentile fraction must be within (0, 1], got {fraction}")
    if not samples:
        return None
    ordered = sorted(samples)
    # The epsilon keeps float noise (0.95 * 60 = 57.00000000000001) from skipping a rank.
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """When to send a hedged (second) read.

    With ``fixed_delay_seconds`` set, that delay is used as is. Otherwise the delay is
    adaptive: the ``percentile`` of the first replica's recent latencies, but at most
    ``median_multiple`` times their median, clamped to
    ``[min_delay_seconds, max_delay_seconds]``; with fewer than ``min_samples``
    latencies known it is ``max_delay_seconds`` (hedge late rather than double the load
    on a guess).

    The median cap matters when a replica stalls often: once 5 % or more of its reads
    stall, its p95 *is* a stall, and a p95 delay would wait out the very stalls that
    hedging exists to cut. The median stays put, so ``4 x p50`` still fires early.

    Attributes:
        fixed_delay_seconds: fixed hedge delay, or ``None`` for adaptive
            (``FAILOVER_HEDGE_DELAY_MS`` / 1000).
        percentile: fraction for the adaptive delay (0.95: p95).
        min_delay_seconds: floor of the adaptive delay.
        max_delay_seconds: ceiling of the adaptive delay (and cold-start value).
        min_samples: latencies needed before the adaptive delay is trusted.
        median_multiple: cap of the adaptive delay as a multiple of the median
            latency (``None``: no cap).
    """

    fixed_delay_seconds: float | None = None
    percentile: float = 0.95
    median_multiple: float | None = 4.0
    min_delay_seconds: float = 0.005
    max_delay_seconds: float = 1.0
    min_samples: int = 10

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            ConfigError: a delay is negative, the floor exceeds the ceiling, the
                percentile is outside (0, 1] or ``min_samples < 1``.
        """
        fixed = self.fixed_delay_seconds
        if fixed is not None and not fixed >= 0:
            raise ConfigError(f"hedge delay must be >= 0 seconds, got {fixed}")
        if not 0.0 < self.percentile <= 1.0:
            raise ConfigError(f"hedge percentile must be within (0, 1], got {self.percentile}")
        if not 0.0 <= self.min_delay_seconds <= self.max_delay_seconds:
            raise ConfigError(
                "hedge delays need 0 <= min_delay_seconds <= max_delay_seconds, got "
                f"{self.min_delay_seconds} and {self.max_delay_seconds}"
            )
        if self.min_samples < 1:
            raise ConfigError(f"hedge min_samples must be >= 1, got {self.min_samples}")
        multiple = self.median_multiple
        if multiple is not None and not (multiple >= 1.0 and math.isfinite(multiple)):
            raise ConfigError(f"hedge median_multiple must be a number >= 1, got {multiple}")

    @property
    def adaptive(self) -> bool:
        """True when the delay follows measured latencies."""
        return self.fixed_delay_seconds is None

    def delay_seconds(self, latencies_seconds: Sequence[float]) -> float:
        """Compute the hedge delay from the first replica's recent latencies.

        Args:
            latencies_seconds: recent latencies of the replica tried first (ignored
                for a fixed delay).

        Returns:
            Seconds to wait for the first replica before hedging.
        """
        if self.fixed_delay_seconds is not None:
            return self.fixed_delay_seconds
        if len(latencies_seconds) < self.min_samples:
            return self.max_delay_seconds
        value = nearest_rank(latencies_seconds, self.percentile)
        assert value is not None  # min_samples >= 1
        if self.median_multiple is not None:
            median = nearest_rank(latencies_seconds, 0.5)
            assert median is not None
            value = min(value, self.median_multiple * median)
        return min(self.max_delay_seconds, max(self.min_delay_seconds, value))

    def delay_for(self, window: LatencyWindow, primary: str) -> float:
        """Compute the hedge delay for a read whose first replica is ``primary``.

        Args:
            window: recent latencies per backend.
            primary: the replica tried first.

        Returns:
            Seconds to wait for ``primary`` before hedging.
        """
        if self.fixed_delay_seconds is not None:
            return self.fixed_delay_seconds
        return self.delay_seconds(window.samples(primary))
