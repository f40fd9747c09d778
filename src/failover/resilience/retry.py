"""Retry one backend's call with full-jitter backoff, a retry budget and a deadline.

:class:`RetryPolicy` is an immutable value (shareable between threads and calls);
:func:`call_with_retries` runs a call under it on top of tenacity's ``Retrying``, with
the strategies composed as small objects:

* **retry** only when ``is_retryable(exc)`` (``failover.errors.is_transient`` by
  default): a ``NotFoundError`` or permanent error is raised at once;
* **wait** AWS "full jitter": ``uniform(0, min(max_delay, base * 2**n))`` before retry
  ``n`` (0 for the first retry);
* **stop** when the attempts are used up, or when the deadline would pass during the
  next sleep, or when the retry budget has no token left (checked last, so a token is
  spent only on a retry that really happens);
* **sleep** with the injectable clock (a ``ManualClock`` in tests never sleeps);
* the last exception is re-raised as itself, never wrapped in ``RetryError``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from failover.errors import ConfigError, is_transient
from failover.resilience.budget import RetryBudget
from failover.resilience.clock import Clock, SystemClock
from failover.resilience.deadline import Deadline

__all__ = ["OnRetry", "RetryPolicy", "call_with_retries"]

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""``on_retry(attempt, exc, delay_seconds)``: attempt ``attempt`` (1-based) failed with
``exc`` and the next one starts after ``delay_seconds``."""

# 2.0**1000 is still a finite float; beyond it the cap always wins anyway.
_MAX_EXPONENT = 1000

_default_rng = random.Random()  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one backend.

    Attributes:
        attempts: total attempts including the first (1 disables retries).
        base_delay_seconds: cap of the first retry's delay; doubles each retry.
        max_delay_seconds: cap of any single delay.
    """

    attempts: int = 3
    base_delay_seconds: float = 0.05
    max_delay_seconds: float = 2.0

    def __post_init__(self) -> None:
        """Validate the fields.

        Raises:
            ConfigError: ``attempts < 1``, or a delay is negative or not a number, or
                ``max_delay_seconds < base_delay_seconds``.
        """
        if self.attempts < 1:
            raise ConfigError(f"retry attempts must be >= 1, got {self.attempts}")
        if not self.base_delay_seconds >= 0 or math.isinf(self.base_delay_seconds):
            raise ConfigError(
                f"base_delay_seconds must be a finite number >= 0, got {self.base_delay_seconds}"
            )
        if not self.max_delay_seconds >= self.base_delay_seconds:
            raise ConfigError(
                f"max_delay_seconds ({self.max_delay_seconds}) must be >= "
                f"base_delay_seconds ({self.base_delay_seconds})"
            )

    def backoff_cap_seconds(self, retry: int) -> float:
        """Upper bound of the delay before retry ``retry``.

        Args:
            retry: 0 for the first retry (the second attempt), 1 for the next, ...

        Returns:
            ``min(max_delay_seconds, base_delay_seconds * 2**retry)``.

        Raises:
            ValueError: ``retry`` is negative.
        """
        if retry < 0:
            raise ValueError(f"retry index must be >= 0, got {retry}")
        growth = 2.0 ** min(retry, _MAX_EXPONENT)
        return min(self.max_delay_seconds, self.base_delay_seconds * growth)

    def delay_seconds(self, retry: int, *, rng: random.Random | None = None) -> float:
        """Full-jitter delay before retry ``retry``.

        Args:
            retry: 0 for the first retry (the second attempt), 1 for the next, ...
            rng: random source (a module-level one by default).

        Returns:
            A uniform random delay in ``[0, backoff_cap_seconds(retry)]``.

        Raises:
            ValueError: ``retry`` is negative.
        """
        source = rng if rng is not None else _default_rng
        return source.uniform(0.0, self.backoff_cap_seconds(retry))

    def delays(self, *, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the delays before each of the ``attempts - 1`` retries.

        Args:
            rng: random source (a module-level one by default).

        Yields:
            One full-jitter delay per retry, in order.
        """
        for retry in range(self.attempts - 1):
            yield self.delay_seconds(retry, rng=rng)


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    budget: RetryBudget | None = None,
    deadline: Deadline | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    is_retryable: Callable[[BaseException], bool] = is_transient,
    on_retry: OnRetry | None = None,
    deposit: bool = True,
) -> T:
    """Call ``fn`` and retry transient failures under a policy, budget and deadline.

    The call deposits once into ``budget`` (it counts as one request); each retry then
    withdraws one token. The first attempt always runs: checking the deadline before
    trying a backend at all is the caller's job (it knows what to report instead).

    Args:
        fn: the attempt; takes no arguments (bind them, and cap its timeout with
            ``deadline.cap(...)`` inside).
        policy: attempts and backoff.
        budget: shared retry budget; ``None`` for unlimited retries.
        deadline: the whole call's deadline; ``None`` for none.
        clock: time source for sleeping; by default the deadline's clock, else the
            system clock.
        rng: random source for the jitter.
        is_retryable: which exceptions may be retried.
        on_retry: called before each backoff sleep as ``on_retry(attempt, exc,
            delay_seconds)``, ``attempt`` being the 1-based number of the failed
            attempt.
        deposit: credit ``budget`` for this call; pass False when the caller deposits
            once per logical request that spans several calls (a read that fails over
            to another backend is still one request).

    Returns:
        What ``fn`` returned.

    Raises:
        BaseException: the last exception ``fn`` raised, unchanged, when it is not
            retryable or when attempts, deadline or budget ran out.
    """
    sleeper: Clock = (
        clock if clock is not None else (deadline.clock if deadline is not None else SystemClock())
    )

    # tenacity >= 8.3 computes the wait before asking stop, older versions after; the
    # delay is drawn once per failed attempt so that stop, wait and on_retry agree.
    delays: dict[int, float] = {}

    def delay_after(attempt: int) -> float:
        if attempt not in delays:
            delays[attempt] = policy.delay_seconds(attempt - 1, rng=rng)
        return delays[attempt]

    def wait(state: tenacity.RetryCallState) -> float:
        return delay_after(state.attempt_number)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        # Sleeping until (or past) the deadline would leave no time for the retry.
        if deadline is not None and deadline.remaining() <= delay_after(state.attempt_number):
            return True
        return budget is not None and not budget.try_withdraw()

    def retry(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return exc is not None and is_retryable(exc)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is None or state.outcome is None:
            return
        exc = state.outcome.exception()
        if exc is not None:
            on_retry(state.attempt_number, exc, delay_after(state.attempt_number))

    if budget is not None and deposit:
        budget.deposit()
    # Fast path: most calls succeed at once, and building a ``Retrying`` costs more
    # than the rest of the dispatch. The first attempt runs bare; only a retryable
    # failure hands over to tenacity, which replays that failure as its own first
    # attempt so that stop, wait, budget and ``on_retry`` see exactly the same history.
    try:
        return fn()
    except BaseException as exc:  # re-raised below unless retryable
        if policy.attempts < 2 or not is_retryable(exc):
            raise
        first_failure: list[BaseException] = [exc]

    def replay_then_call() -> T:
        if first_failure:
            raise first_failure.pop()
        return fn()

    retrying = tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=retry,
        sleep=sleeper.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(replay_then_call)
