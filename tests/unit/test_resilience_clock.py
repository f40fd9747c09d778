"""Clock, Deadline and the package's exported names."""

from __future__ import annotations

import dataclasses
import importlib
import math

import pytest

import failover.resilience as resilience
from failover.errors import ConfigError
from failover.resilience import Clock, Deadline, ManualClock, SystemClock

MODULES = ["breaker", "budget", "clock", "deadline", "health", "retry", "routing"]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_has_all_and_exports_exist(module: str) -> None:
    mod = importlib.import_module(f"failover.resilience.{module}")
    assert mod.__all__
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_package_reexports_everything_it_lists() -> None:
    assert sorted(resilience.__all__) == resilience.__all__
    for name in resilience.__all__:
        assert getattr(resilience, name) is not None


def test_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(ManualClock(), Clock)


def test_manual_clock_advances_and_records_sleeps() -> None:
    clock = ManualClock(start_seconds=100.0)
    assert clock.monotonic() == 100.0
    clock.advance(2.5)
    assert clock.monotonic() == 102.5
    clock.sleep(0.5)
    clock.sleep(0)
    assert clock.monotonic() == 103.0
    assert clock.sleeps == (0.5, 0.0)


def test_manual_clock_refuses_to_go_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.sleep(-0.1)
    assert clock.monotonic() == 0.0


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    clock.sleep(0)
    assert clock.monotonic() >= first


def test_deadline_counts_down_on_its_clock() -> None:
    clock = ManualClock()
    deadline = Deadline.after(5, clock=clock)
    assert deadline.remaining() == 5
    assert not deadline.expired
    clock.advance(3)
    assert deadline.remaining() == 2
    assert deadline.cap(10) == 2
    assert deadline.cap(1.5) == 1.5
    clock.advance(4)
    assert deadline.remaining() == 0.0
    assert deadline.expired
    assert deadline.cap(10) == 0.0


def test_deadline_cap_is_never_negative() -> None:
    deadline = Deadline.after(1, clock=ManualClock())
    assert deadline.cap(-3) == 0.0


def test_deadline_never_expires() -> None:
    clock = ManualClock()
    deadline = Deadline.never(clock=clock)
    clock.advance(1e9)
    assert deadline.remaining() == math.inf
    assert not deadline.expired
    assert deadline.cap(7) == 7


def test_deadline_is_a_frozen_value() -> None:
    deadline = Deadline.after(1, clock=ManualClock())
    with pytest.raises(dataclasses.FrozenInstanceError):
        deadline.expires_at = 3.0  # type: ignore[misc]


@pytest.mark.parametrize("seconds", [-1.0, math.nan])
def test_deadline_rejects_bad_budgets(seconds: float) -> None:
    with pytest.raises(ConfigError):
        Deadline.after(seconds, clock=ManualClock())


def test_deadline_defaults_to_the_system_clock() -> None:
    deadline = Deadline.after(60)
    assert isinstance(deadline.clock, SystemClock)
    assert 59 < deadline.remaining() <= 60
