"""close() drains replica writes in flight; after it returns no attempt or retry starts."""

from __future__ import annotations

import threading
from pathlib import Path

from failover import Storage
from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.testing import FaultyBackend


def _store(backends: list, journal: Path, **options: object) -> Storage:
    settings = Settings.from_urls(
        [b.name for b in backends],
        journal=str(journal),
        repair_interval_seconds=0,
        **options,  # type: ignore[arg-type]
    )
    return Storage(backends, settings=settings)


def _worker_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"failover-{name}")]


def test_close_waits_for_a_replica_write_still_in_flight(tmp_path: Path) -> None:
    slow_inner = MemoryBackend("c")
    # The third replica takes a while; FaultyBackend.close() would cut that wait short,
    # so the write can only land if Storage.close() waited for it before closing.
    slow = FaultyBackend(slow_inner, latency_seconds=0.3, operations={"put"})
    store = _store([MemoryBackend("a"), MemoryBackend("b"), slow], tmp_path / "j.sqlite")
    info = store.put("k", b"v")  # quorum: acknowledged by a and b
    store.close()
    assert slow_inner.get("k").info.metadata["failover_version"] == info.version  # type: ignore[index]
    assert slow.faults == {"latency": 1}


def test_after_close_returns_no_retry_starts(tmp_path: Path) -> None:
    stuck_inner = MemoryBackend("c")
    stuck = FaultyBackend(stuck_inner, hang=True, hang_seconds=600, operations={"put"})
    store = _store(
        [MemoryBackend("a"), MemoryBackend("b"), stuck],
        tmp_path / "j.sqlite",
        deadline_seconds=0.5,  # how long close() waits before abandoning the stuck write
        retry_attempts=5,
    )
    store.put("k", b"v")
    assert stuck.wait_until_hanging(1, timeout_seconds=30)
    store.close()  # waits 0.5 s, abandons the stuck attempt, closes the backends
    # Closing the FaultyBackend released the hang with a transient timeout: a retry
    # would call put again. The worker thread ends without one.
    for worker in _worker_threads("c"):
        worker.join(timeout=30)
    assert not any(t.is_alive() for t in _worker_threads("c"))
    assert stuck.calls == {"put": 1}
    assert stuck.faults == {"hang": 1, "timeout": 1}
    # The replica that missed the write is still pending for any instance's repair.
    reopened = _store([MemoryBackend("a"), MemoryBackend("b"), stuck_inner], tmp_path / "j.sqlite")
    with reopened:
        assert reopened.health()["c"].pending_repairs == 1
