"""FaultyBackend: each fault mode, determinism under a seed, heal(), counters, hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from failover.backends.base import Backend
from failover.backends.memory import MemoryBackend
from failover.errors import (
    BackendTimeout,
    BackendUnavailable,
    NotFoundError,
    ThrottledError,
)
from failover.payload import Payload
from failover.testing.faults import FaultSettings, FaultyBackend, InjectedFault

DATA = b"hello, replicated world"


class RecordingSleep:
    """A fake sleep that records what it was asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make(**kwargs: object) -> tuple[FaultyBackend, MemoryBackend]:
    inner = MemoryBackend("mem")
    inner.put("k", Payload.from_bytes(DATA), content_type="text/plain", metadata={"a": "b"})
    kwargs.setdefault("sleep", RecordingSleep())
    return FaultyBackend(inner, **kwargs), inner  # type: ignore[arg-type]


def put(backend: Backend, key: str, data: bytes = DATA) -> None:
    backend.put(key, Payload.from_bytes(data), content_type="text/plain", metadata={})


def outcomes(backend: FaultyBackend, calls: int) -> list[str]:
    """Run ``calls`` gets and name each outcome (ok or the exception type)."""
    result = []
    for _ in range(calls):
        try:
            backend.get("k")
        except Exception as exc:
            result.append(type(exc).__name__)
        else:
            result.append("ok")
    return result


def run_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["result"] = target()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="test-faulty-caller", daemon=True)
    thread.start()
    return thread, box


# -- no faults ---------------------------------------------------------------------------


def test_without_faults_every_operation_delegates() -> None:
    faulty, inner = make()
    assert isinstance(faulty, Backend)
    assert faulty.name == "mem"
    assert faulty.inner is inner
    put(faulty, "dir/a", b"A")
    assert faulty.get("dir/a").data == b"A"
    assert faulty.get("k", byte_range=(0, 5)).data == b"hello"
    reader = faulty.open("k")
    assert reader.read() == DATA
    reader.close()
    assert faulty.head("k").size == len(DATA)
    assert [info.key for info in faulty.list("dir/")] == ["dir/a"]
    faulty.delete("dir/a")
    with pytest.raises(NotFoundError):
        faulty.head("dir/a")
    assert faulty.faults == {}
    assert faulty.injected == ()
    assert faulty.calls == {"put": 1, "get": 2, "open": 1, "head": 2, "list": 1, "delete": 1}


def test_name_can_be_overridden() -> None:
    faulty, _ = make(name="flaky")
    assert faulty.name == "flaky"
    faulty.set(error_rate=1.0)
    with pytest.raises(ThrottledError) as info:
        faulty.get("k")
    assert info.value.backend == "flaky"


# -- errors ------------------------------------------------------------------------------


def test_error_rate_one_raises_throttled_before_calling_inner() -> None:
    faulty, inner = make(error_rate=1.0)
    with pytest.raises(ThrottledError, match="injected ThrottledError on put 'new'") as info:
        put(faulty, "new")
    assert info.value.backend == "mem"
    assert info.value.transient
    with pytest.raises(NotFoundError):
        inner.head("new")
    assert faulty.faults == {"error": 1}
    assert faulty.injected == (InjectedFault("put", "new", "error"),)


def test_error_class_is_configurable() -> None:
    faulty, _ = make(error_rate=1.0, error=BackendUnavailable)
    with pytest.raises(BackendUnavailable):
        faulty.head("k")
    faulty.set(error=NotFoundError)
    with pytest.raises(NotFoundError) as info:
        faulty.head("k")
    assert (info.value.key, info.value.backend) == ("k", "mem")
    faulty.set(error=ConnectionResetError)
    with pytest.raises(ConnectionResetError):
        faulty.head("k")


def test_error_factory_gets_operation_and_key() -> None:
    seen: list[tuple[str, str]] = []

    def factory(operation: str, key: str) -> Exception:
        seen.append((operation, key))
        return TimeoutError(f"{operation}:{key}")

    faulty, _ = make(error_rate=1.0, error=factory)
    with pytest.raises(TimeoutError, match="delete:k"):
        faulty.delete("k")
    assert seen == [("delete", "k")]


def test_error_rate_zero_never_raises() -> None:
    faulty, _ = make(error_rate=0.0)
    assert outcomes(faulty, 50) == ["ok"] * 50


# -- determinism -------------------------------------------------------------------------


def test_same_seed_gives_the_same_fault_sequence() -> None:
    settings = {"error_rate": 0.5, "tail_latency_seconds": 1.0, "tail_probability": 0.3}
    first, _ = make(seed=7, **settings)
    second, _ = make(seed=7, **settings)
    other, _ = make(seed=8, **settings)
    sequence = outcomes(first, 60)
    assert outcomes(second, 60) == sequence
    assert first.injected == second.injected
    assert first.faults == second.faults
    assert 10 < sequence.count("ThrottledError") < 50
    assert outcomes(other, 60) != sequence


def test_schedule_does_not_depend_on_which_faults_are_on() -> None:
    # Two draws per affected call whatever the settings: switching the tail latency on
    # must not shift which calls fail.
    with_tail, _ = make(seed=3, error_rate=0.5, tail_latency_seconds=1.0, tail_probability=0.5)
    without_tail, _ = make(seed=3, error_rate=0.5)
    assert outcomes(with_tail, 40) == outcomes(without_tail, 40)


# -- latency -----------------------------------------------------------------------------


def test_fixed_latency_sleeps_before_every_affected_call() -> None:
    sleep = RecordingSleep()
    faulty, _ = make(latency_seconds=0.25, sleep=sleep)
    faulty.get("k")
    faulty.head("k")
    assert sleep.calls == [0.25, 0.25]
    assert faulty.faults == {"latency": 2}


def test_tail_latency_is_added_with_its_probability() -> None:
    sleep = RecordingSleep()
    faulty, _ = make(
        latency_seconds=0.1, tail_latency_seconds=2.0, tail_probability=1.0, sleep=sleep
    )
    faulty.get("k")
    assert sleep.calls == [pytest.approx(2.1)]
    assert faulty.faults == {"latency": 1, "tail": 1}

    sleep.calls.clear()
    faulty.set(tail_probability=0.25, latency_seconds=0.0)
    outcomes(faulty, 200)
    tails = faulty.faults["tail"] - 1
    assert sleep.calls == [2.0] * tails
    assert 25 < tails < 75


def test_default_sleep_is_cut_short_by_heal() -> None:
    # A latency far longer than any wait below: only heal() can end the sleep in time.
    faulty = FaultyBackend(MemoryBackend("mem"), latency_seconds=600.0)
    put(faulty.inner, "k")
    thread, box = run_in_thread(lambda: faulty.get("k"))
    deadline = time.monotonic() + 30
    while faulty.faults.get("latency") != 1 and time.monotonic() < deadline:
        time.sleep(0.001)  # waiting for a condition, bounded by the deadline
    assert faulty.faults.get("latency") == 1, "the call never started its sleep"
    faulty.heal()
    thread.join(timeout=30)
    assert not thread.is_alive(), "heal() did not wake the sleeping call"
    assert "error" not in box


# -- hang --------------------------------------------------------------------------------


def test_hang_is_bounded_by_hang_seconds() -> None:
    faulty, _ = make(hang=True, hang_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(BackendTimeout, match=r"injected hang: .* within 0\.05 s") as info:
        faulty.get("k")
    elapsed = time.monotonic() - started
    assert elapsed >= 0.05
    # hang_seconds ends the hang; without it the call would hang for the default 30 s.
    # The bound is far from both, so a loaded machine cannot reach it.
    assert elapsed < 10.0, f"a 0.05 s hang took {elapsed:.1f} s"
    assert info.value.backend == "mem"
    assert faulty.faults == {"hang": 1, "timeout": 1}
    assert faulty.hanging == 0


def test_heal_from_another_thread_releases_a_hanging_call() -> None:
    faulty, _ = make(hang=True, hang_seconds=30.0)
    thread, box = run_in_thread(lambda: faulty.get("k").data)
    assert faulty.wait_until_hanging(1, timeout_seconds=5)
    assert faulty.hanging == 1
    assert thread.is_alive()
    faulty.heal()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert box == {"result": DATA}
    assert faulty.hanging == 0
    assert faulty.faults == {"hang": 1}


def test_lifting_only_the_hang_keeps_the_other_faults() -> None:
    faulty, _ = make(hang=True, error_rate=1.0)
    thread, box = run_in_thread(lambda: faulty.head("k"))
    assert faulty.wait_until_hanging(1, timeout_seconds=5)
    faulty.set(hang=False)
    thread.join(timeout=5)
    assert isinstance(box.get("error"), ThrottledError)


def test_close_releases_hanging_calls_with_a_timeout() -> None:
    faulty, _ = make(hang=True)
    thread, box = run_in_thread(lambda: faulty.head("k"))
    assert faulty.wait_until_hanging(1, timeout_seconds=5)
    faulty.close()
    thread.join(timeout=5)
    assert isinstance(box.get("error"), BackendTimeout)


def test_several_calls_hang_together() -> None:
    faulty, _ = make(hang=True)
    callers = [run_in_thread(lambda: faulty.head("k")) for _ in range(3)]
    assert faulty.wait_until_hanging(3, timeout_seconds=5)
    faulty.heal()
    for thread, box in callers:
        thread.join(timeout=5)
        assert "result" in box
    assert not faulty.wait_until_hanging(1, timeout_seconds=0)


# -- corruption --------------------------------------------------------------------------


def test_corrupt_flips_bytes_returned_by_get_and_open_but_not_head() -> None:
    faulty, _ = make(corrupt=True)
    fetched = faulty.get("k")
    assert fetched.data != DATA
    assert len(fetched.data) == len(DATA)
    assert fetched.data[1:] == DATA[1:]
    assert fetched.info.size == len(DATA)

    reader = faulty.open("k")
    try:
        streamed = reader.read(4) + reader.read()
    finally:
        reader.close()
    assert streamed != DATA
    assert streamed[1:] == DATA[1:]

    assert faulty.head("k").size == len(DATA)
    assert faulty.faults == {"corrupt": 2}


def test_corrupt_ranged_read_and_empty_object() -> None:
    faulty, inner = make(corrupt=True)
    assert faulty.get("k", byte_range=(6, 11)).data != DATA[6:11]
    put(inner, "empty", b"")
    assert faulty.get("empty").data == b""
    assert faulty.faults == {"corrupt": 1}


# -- scope and switches ------------------------------------------------------------------


def test_operations_restrict_which_calls_are_affected() -> None:
    faulty, inner = make(error_rate=1.0, operations={"get", "put"})
    assert faulty.head("k").size == len(DATA)
    faulty.delete("missing")
    assert [info.key for info in faulty.list()] == ["k"]
    with pytest.raises(ThrottledError):
        faulty.get("k")
    with pytest.raises(ThrottledError):
        put(faulty, "new")
    with pytest.raises(NotFoundError):
        inner.head("new")
    assert faulty.calls == {"head": 1, "delete": 1, "list": 1, "get": 1, "put": 1}
    assert faulty.faults == {"error": 2}


def test_keys_restrict_which_calls_are_affected() -> None:
    faulty, inner = make(error_rate=1.0, operations={"get"}, keys={"stalled"})
    put(inner, "stalled")
    assert faulty.get("k").data == DATA  # another key: untouched
    with pytest.raises(ThrottledError):
        faulty.get("stalled")
    assert faulty.head("stalled").size == len(DATA)  # another operation: untouched
    assert faulty.injected == (InjectedFault("get", "stalled", "error"),)


def test_a_scripted_stall_holds_one_key_until_healed() -> None:
    faulty, inner = make(hang=True, hang_seconds=600, operations={"get"}, keys=["slow"])
    put(inner, "slow")
    thread, box = run_in_thread(lambda: faulty.get("slow"))
    assert faulty.wait_until_hanging(1, timeout_seconds=30)
    assert faulty.get("k").data == DATA  # the other keys pass while "slow" stalls
    assert thread.is_alive()
    faulty.heal()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert box["result"].data == DATA  # type: ignore[attr-defined]


def test_keys_must_be_a_collection_not_one_string() -> None:
    with pytest.raises(TypeError, match="collection of keys"):
        FaultyBackend(MemoryBackend(), keys="k")
    faulty, _ = make()
    faulty.set(keys=("a", "b"))
    assert faulty.settings.keys == frozenset({"a", "b"})


def test_list_faults_strike_when_iteration_starts() -> None:
    faulty, _ = make(error_rate=1.0, operations=["list"])
    listing = faulty.list()
    with pytest.raises(ThrottledError):
        next(listing)


def test_set_changes_modes_and_heal_clears_all() -> None:
    faulty, _ = make()
    faulty.set(error_rate=1.0, corrupt=True, latency_seconds=1.0, operations={"head"})
    assert faulty.settings == FaultSettings(
        error_rate=1.0, corrupt=True, latency_seconds=1.0, operations=frozenset({"head"})
    )
    assert faulty.get("k").data == DATA
    with pytest.raises(ThrottledError):
        faulty.head("k")
    faulty.heal()
    assert faulty.settings == FaultSettings()
    assert faulty.head("k").size == len(DATA)


def test_counters_and_reset_counters() -> None:
    faulty, _ = make(error_rate=1.0, operations={"head"})
    faulty.get("k")
    faulty.get("k")
    with pytest.raises(ThrottledError):
        faulty.head("k")
    assert faulty.calls == {"get": 2, "head": 1}
    assert faulty.faults == {"error": 1}
    faulty.reset_counters()
    assert (faulty.calls, faulty.faults, faulty.injected) == ({}, {}, ())


@pytest.mark.parametrize(
    ("changes", "exc"),
    [
        ({"error_rate": 1.5}, ValueError),
        ({"tail_probability": -0.1}, ValueError),
        ({"latency_seconds": -1.0}, ValueError),
        ({"hang_seconds": -1.0}, ValueError),
        ({"operations": {"get", "copy"}}, ValueError),
        ({"no_such_setting": True}, TypeError),
    ],
)
def test_invalid_settings_are_rejected(changes: dict[str, object], exc: type[Exception]) -> None:
    faulty, _ = make()
    with pytest.raises(exc):
        faulty.set(**changes)
    assert faulty.settings == FaultSettings()


def test_invalid_constructor_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        FaultyBackend(MemoryBackend(), error_rate=2.0)
    with pytest.raises(ValueError, match="unknown operation"):
        FaultyBackend(MemoryBackend(), operations={"close"})
