"""Retry budget: retries may add at most a fixed fraction to the traffic.

Without a budget, per-call retries multiply load exactly when a backend is struggling
(three attempts each turn an outage into three times the traffic). Finagle's answer,
copied here, is a token bucket shared by every call:

* each call *deposits* ``ratio`` tokens (0.2 by default: retries may add 20 %);
* each retry *withdraws* one token, and is not made when fewer than one is left;
* a *reserve* of ``min_retries_per_second * ttl_seconds`` tokens is always available,
  so a client with little traffic can still retry a little;
* deposits and withdrawals *expire* after ``ttl_seconds``, which both forgets old
  traffic and refills the reserve.

Expiry uses a ring of ``slices`` time slices (like Finagle's ``WindowedAdder``): a token
expires between ``ttl_seconds * (1 - 1 / slices)`` and ``ttl_seconds`` after it was
added. Internally tokens are integers (thousandths), so balances are exact.
"""

from __future__ import annotations

import math
import threading

from failover.errors import ConfigError
from failover.resilience.clock import Clock, SystemClock

__all__ = ["RetryBudget"]

_SCALE = 1000  # token thousandths: 0.2 tokens is exactly 200


class RetryBudget:
    """Thread-safe Finagle-style retry budget (token bucket with expiring tokens)."""

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_second: float = 10.0,
        ttl_seconds: float = 10.0,
        clock: Clock | None = None,
        slices: int = 10,
    ) -> None:
        """Create a budget.

        Args:
            ratio: tokens deposited per call; one retry costs one token (0.2 allows
                retries to add 20 % to the traffic).
            min_retries_per_second: reserve refilled over ``ttl_seconds``, available
                regardless of traffic.
            ttl_seconds: how long deposits and withdrawals count.
            clock: time source for expiry.
            slices: resolution of the expiry window.

        Raises:
            ConfigError: a parameter is negative, ``ttl_seconds`` is not positive or
                ``slices < 1``.
        """
        if not ratio >= 0 or math.isinf(ratio):
            raise ConfigError(f"retry budget ratio must be a finite number >= 0, got {ratio}")
        if not min_retries_per_second >= 0 or math.isinf(min_retries_per_second):
            raise ConfigError(
                f"min_retries_per_second must be a finite number >= 0, got {min_retries_per_second}"
            )
        if not ttl_seconds > 0 or math.isinf(ttl_seconds):
            raise ConfigError(f"ttl_seconds must be a finite number > 0, got {ttl_seconds}")
        if slices < 1:
            raise ConfigError(f"slices must be >= 1, got {slices}")
        self._ratio = float(ratio)
        self._min_retries_per_second = float(min_retries_per_second)
        self._ttl_seconds = float(ttl_seconds)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._deposit_amount = round(ratio * _SCALE)
        self._withdrawal_amount = _SCALE
        self._reserve = round(min_retries_per_second * ttl_seconds * _SCALE)
        self._slice_seconds = self._ttl_seconds / slices
        self._ring = [0] * slices
        self._window_sum = 0
        self._lock = threading.Lock()
        self._slice_index = self._index(self._clock.monotonic())

    def deposit(self) -> None:
        """Credit the budget for one call (do this once per call, not per attempt)."""
        with self._lock:
            self._add(self._deposit_amount)

    def try_withdraw(self) -> bool:
        """Take one retry's token if the balance allows it.

        Returns:
            True if the retry may go ahead (the token is spent), False if the budget
            is exhausted (nothing is spent).
        """
        with self._lock:
            self._expire()
            if self._reserve + self._window_sum < self._withdrawal_amount:
                return False
            self._add(-self._withdrawal_amount)
            return True

    @property
    def balance(self) -> float:
        """Tokens available now (retries that would be allowed), reserve included."""
        with self._lock:
            self._expire()
            return (self._reserve + self._window_sum) / _SCALE

    def _index(self, now: float) -> int:
        return math.floor(now / self._slice_seconds)

    def _add(self, amount: int) -> None:
        self._expire()
        self._ring[self._slice_index % len(self._ring)] += amount
        self._window_sum += amount

    def _expire(self) -> None:
        """Clear the slices that have left the window since the last call."""
        index = self._index(self._clock.monotonic())
        if index <= self._slice_index:
            return
        size = len(self._ring)
        if index - self._slice_index >= size:
            self._ring = [0] * size
            self._window_sum = 0
        else:
            for step in range(self._slice_index + 1, index + 1):
                position = step % size
                self._window_sum -= self._ring[position]
                self._ring[position] = 0
        self._slice_index = index

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self._ratio}, min_retries_per_second="
            f"{self._min_retries_per_second}, ttl_seconds={self._ttl_seconds}, "
            f"balance={self.balance})"
        )
