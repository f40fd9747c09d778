"""RetryBudget: deposits, withdrawals, reserve floor, expiry."""

from __future__ import annotations

import threading

import pytest

from failover.errors import ConfigError
from failover.resilience import ManualClock, RetryBudget


def withdraw_all(budget: RetryBudget, limit: int = 100_000) -> int:
    count = 0
    while count < limit and budget.try_withdraw():
        count += 1
    return count


def test_no_deposits_and_no_reserve_allows_no_retry() -> None:
    budget = RetryBudget(min_retries_per_second=0, clock=ManualClock())
    assert budget.balance == 0.0
    assert not budget.try_withdraw()


def test_each_call_earns_a_fifth_of_a_retry() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, clock=ManualClock())
    for _ in range(10):
        budget.deposit()
    assert budget.balance == 2.0
    assert withdraw_all(budget) == 2
    assert budget.balance == 0.0


def test_partial_tokens_do_not_buy_a_retry() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, clock=ManualClock())
    for _ in range(4):
        budget.deposit()
    assert budget.balance == pytest.approx(0.8)
    assert not budget.try_withdraw()
    budget.deposit()
    assert budget.try_withdraw()


def test_ratio_is_configurable() -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0, clock=ManualClock())
    for _ in range(7):
        budget.deposit()
    assert withdraw_all(budget) == 3


def test_reserve_floor_allows_retries_without_traffic() -> None:
    budget = RetryBudget(min_retries_per_second=10, ttl_seconds=10, clock=ManualClock())
    assert budget.balance == 100.0
    assert withdraw_all(budget) == 100


def test_reserve_and_deposits_add_up() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=1, ttl_seconds=10, clock=ManualClock())
    for _ in range(50):
        budget.deposit()
    assert withdraw_all(budget) == 10 + 10


def test_deposits_expire_after_ttl() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, ttl_seconds=10, clock=clock)
    for _ in range(5):
        budget.deposit()
    clock.advance(9.99)
    assert budget.balance == 1.0
    clock.advance(0.01)
    assert budget.balance == 0.0
    assert not budget.try_withdraw()


def test_expiry_is_per_slice() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, ttl_seconds=10, clock=clock)
    budget.deposit()  # slice 0
    clock.advance(5)
    budget.deposit()  # slice 5
    assert budget.balance == 2.0
    clock.advance(5)  # slice 10: the first deposit is gone
    assert budget.balance == 1.0
    clock.advance(5)  # slice 15: so is the second
    assert budget.balance == 0.0


def test_reserve_refills_when_withdrawals_expire() -> None:
    clock = ManualClock()
    budget = RetryBudget(min_retries_per_second=10, ttl_seconds=10, clock=clock)
    assert withdraw_all(budget) == 100
    clock.advance(5)
    assert not budget.try_withdraw()
    clock.advance(5)
    assert budget.balance == 100.0
    assert withdraw_all(budget) == 100


def test_long_idle_clears_the_window() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, clock=clock)
    for _ in range(3):
        budget.deposit()
    clock.advance(1_000)
    assert budget.balance == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ratio": -0.1},
        {"min_retries_per_second": -1},
        {"ttl_seconds": 0},
        {"slices": 0},
        {"ratio": float("inf")},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


def test_concurrent_withdrawals_never_overdraw() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, clock=ManualClock())
    for _ in range(1000):
        budget.deposit()  # 200 retries' worth
    granted: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(1 for _ in range(100) if budget.try_withdraw())
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 200
    assert budget.balance == 0.0


def test_concurrent_deposits_are_all_counted() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, clock=ManualClock())

    def hammer() -> None:
        for _ in range(500):
            budget.deposit()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.balance == 800.0
