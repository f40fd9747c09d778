"""Storage facade over in-process backends (memory, with injected faults)."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from failover import (
    AllBackendsFailed,
    ConfigError,
    IntegrityError,
    InvalidKeyError,
    InvalidMetadataError,
    NotFoundError,
    QuorumNotReached,
    Storage,
)
from failover.backends import MemoryBackend
from failover.backends.base import META_SHA256, META_VERSION
from failover.config import Settings
from failover.errors import BackendTimeout, BackendUnavailable, PermissionDeniedError
from failover.payload import Payload
from failover.testing.faults import FaultyBackend

from ..conftest import deleted_on


def trio(**options: object) -> tuple[list[FaultyBackend], Storage]:
    """Three memory replicas behind fault injectors; repair only when asked."""
    backends = [FaultyBackend(MemoryBackend(name)) for name in ("a", "b", "c")]
    options.setdefault("repair_interval_seconds", 0)
    settings = Settings.from_urls(["a", "b", "c"], **options)  # type: ignore[arg-type]
    return backends, Storage(backends, settings=settings, writer_id="w1")


def down(backend: FaultyBackend) -> None:
    backend.set(error_rate=1.0, error=BackendUnavailable)


def test_put_replicates_to_every_backend_with_version_and_sha256() -> None:
    backends, store = trio()
    with store:
        info = store.put("r/q3.txt", b"hello", metadata={"team": "ops"})
        assert store.flush()  # the quorum acknowledged; the third replica too now
    assert info.checksum == hashlib.sha256(b"hello").hexdigest()
    assert info.content_type == "text/plain"
    assert info.metadata == {"team": "ops"}
    for backend in backends:
        stored = backend.inner.get("r/q3.txt")
        assert stored.data == b"hello"
        assert stored.info.metadata[META_SHA256] == info.checksum  # type: ignore[index]
        assert stored.info.metadata[META_VERSION] == info.version  # type: ignore[index]


def test_versions_increase_with_each_write() -> None:
    _, store = trio()
    with store:
        versions = [store.put("k", str(i).encode()).version for i in range(20)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 20


def test_put_accepts_file_objects_and_iterables() -> None:
    _, store = trio()
    data = os.urandom(3 * 1024 * 1024)
    with store:
        store.put("file", io.BytesIO(data))
        store.put("chunks", (data[i : i + 4096] for i in range(0, len(data), 4096)))
        assert store.get("file") == data
        assert store.get("chunks") == data
        with pytest.raises(TypeError, match="not str"):
            store.put("text", "a str")  # type: ignore[arg-type]


def test_invalid_key_and_metadata_rejected_before_any_backend_call() -> None:
    backends, store = trio()
    with store:
        with pytest.raises(InvalidKeyError):
            store.put("../escape", b"x")
        with pytest.raises(InvalidMetadataError):
            store.put("ok", b"x", metadata={"Bad-Name": "v"})
        with pytest.raises(InvalidKeyError):
            store.get("/abs")
    assert all(sum(b.calls.values()) == 0 for b in backends)


def test_quorum_write_survives_one_backend_down() -> None:
    backends, store = trio()
    down(backends[1])
    with store:
        info = store.put("k", b"v")
        assert info.backend == "a"
    assert backends[0].inner.get("k").data == b"v"
    with pytest.raises(NotFoundError):
        backends[1].inner.get("k")


def test_quorum_not_reached_with_two_down() -> None:
    backends, store = trio()
    down(backends[0])
    down(backends[2])
    with store, pytest.raises(QuorumNotReached) as info:
        store.put("k", b"v")
    assert info.value.succeeded == ("b",)
    assert set(info.value.failed) == {"a", "c"}
    assert isinstance(info.value.failed["a"], BackendUnavailable)


def test_all_policy_reports_the_failed_backend() -> None:
    backends, store = trio(write_policy="all")
    down(backends[2])
    with store, pytest.raises(QuorumNotReached) as info:
        store.put("k", b"v")
    assert set(info.value.succeeded) == {"a", "b"}
    assert list(info.value.failed) == ["c"]
    assert info.value.required == 3


def test_one_policy_acknowledges_after_first_replica() -> None:
    backends, store = trio(write_policy="one")
    down(backends[0])
    down(backends[1])
    with store:
        info = store.put("k", b"v")
    assert info.backend == "c"


def test_read_fails_over_on_transient_errors() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v")
        down(backends[0])
        assert store.get("k") == b"v"
        assert store.head("k").backend in {"b", "c"}
        with store.open("k") as reader:
            assert reader.read() == b"v"
        assert store.exists("k")


def test_read_fails_over_on_a_timeout_without_retrying_that_backend() -> None:
    backends, store = trio(retry_attempts=3, read_policy="ordered")
    with store:
        store.put("k", b"v")
        assert store.flush()
        backends[0].reset_counters()
        backends[0].set(error_rate=1.0, error=BackendTimeout)
        assert store.get("k") == b"v"
        # One timed-out attempt on "a", then the next replica: no second timeout.
        assert backends[0].calls["get"] == 1


def test_read_retries_a_timeout_on_the_last_backend_left() -> None:
    backends, store = trio(retry_attempts=3, read_policy="ordered")
    with store:
        store.put("k", b"v")
        assert store.flush()
        for backend in backends:
            backend.reset_counters()
            backend.set(error_rate=1.0, error=BackendTimeout)
        with pytest.raises(AllBackendsFailed):
            store.get("k")
    assert [b.calls["get"] for b in backends] == [1, 1, 3]


def test_read_retries_fast_transient_errors_before_failing_over() -> None:
    backends, store = trio(retry_attempts=3, read_policy="ordered")
    with store:
        store.put("k", b"v")
        assert store.flush()
        backends[0].reset_counters()
        down(backends[0])
        assert store.get("k") == b"v"
        assert backends[0].calls["get"] == 3


def test_read_fails_over_on_permanent_backend_errors() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v")
        backends[0].set(error_rate=1.0, error=PermissionDeniedError)
        assert store.get("k") == b"v"


def test_not_found_is_confirmed_by_every_replica() -> None:
    backends, store = trio()
    with store:
        # A replica that missed the write answers NotFound; another has it.
        with Payload.from_bytes(b"only-c") as payload:
            backends[2].inner.put("k", payload, content_type="text/plain", metadata={})
        assert store.get("k") == b"only-c"
        with pytest.raises(NotFoundError) as info:
            store.get("missing")
        assert isinstance(info.value, FileNotFoundError)
        assert not store.exists("missing")


def test_all_backends_failed_lists_every_backend() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v")
        for backend in backends:
            down(backend)
        with pytest.raises(AllBackendsFailed) as info:
            store.get("k")
    assert set(info.value.errors) == {"a", "b", "c"}
    assert all(isinstance(e, BackendUnavailable) for e in info.value.errors.values())


def test_corrupted_replica_is_skipped() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"precious")
        assert store.flush()
        backends[0].set(corrupt=True)
        assert store.get("k") == b"precious"
        for backend in backends:
            backend.set(corrupt=True)
        with pytest.raises(IntegrityError):
            store.get("k")


def test_streaming_read_detects_corruption_at_the_end() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"x" * 10_000)
        for backend in backends:
            backend.set(corrupt=True, operations={"open"})
        reader = store.open("k")
        chunks = [reader.read(1000) for _ in range(9)]
        assert sum(map(len, chunks)) == 9000
        with pytest.raises(IntegrityError):
            reader.read(1000)  # the last chunk completes the object: checksum fails
        reader.close()


def test_stream_resumes_on_another_replica_mid_read() -> None:
    backends, store = trio()
    data = os.urandom(100_000)
    with store:
        store.put("k", data)
        reader = store.open("k")
        first = reader.read(40_000)
        # The serving replica dies mid-stream: the rest comes from another replica.
        backends[0].inner.delete("k")

        class Broken:
            def read(self, size: int = -1, /) -> bytes:
                raise BackendUnavailable("connection reset", backend="a")

            def close(self) -> None:
                pass

        reader._reader = Broken()  # type: ignore[assignment]
        rest = reader.read()
        reader.close()
    assert first + rest == data


def test_range_reads() -> None:
    _, store = trio()
    with store:
        store.put("k", b"0123456789")
        assert store.get("k", byte_range=(2, 5)) == b"234"
        assert store.get("k", byte_range=(7, None)) == b"789"
        with store.open("k", byte_range=(1, 3)) as reader:
            assert reader.read() == b"12"
        with pytest.raises(ValueError):
            store.get("k", byte_range=(5, 2))


def test_list_merges_and_deduplicates_in_key_order() -> None:
    backends, store = trio()
    with store:
        store.put("a/1", b"1")
        store.put("a/2", b"2")
        with Payload.from_bytes(b"3") as payload:
            backends[2].inner.put("a/3", payload, content_type="text/plain", metadata={})
        down(backends[0])
        keys = [info.key for info in store.list("a/")]
    assert keys == ["a/1", "a/2", "a/3"]


def test_list_raises_when_every_backend_fails() -> None:
    backends, store = trio()
    for backend in backends:
        down(backend)
    with store, pytest.raises(AllBackendsFailed):
        list(store.list())


def test_delete_removes_everywhere_and_missing_is_fine() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"v")
        store.delete("k")
        store.delete("never")
        assert not store.exists("k")
        assert not store.exists("never")
        assert [i.key for i in store.list()] == []
    # Each replica keeps the delete (a marker) for the grace period, never the object.
    assert all(deleted_on(b.inner, "k") for b in backends)


def test_reconcile_finds_and_fixes_missing_and_stale_replicas() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"old")
        assert store.flush()  # b holds "old" before it goes down (quorum returns at 2)
        down(backends[1])
        store.put("k", b"new")
        store.put("only-two", b"x")
        assert store.flush()
        backends[1].heal()
        report = store.reconcile()
        assert report.stale["b"] == ("k",)
        assert report.missing["b"] == ("only-two",)
        assert not report.consistent
        fixed = store.reconcile(fix=True)
        assert fixed.fixed == 2
        assert store.reconcile().consistent
    assert backends[1].inner.get("k").data == b"new"


def test_reconcile_verify_bytes_detects_corruption() -> None:
    backends, store = trio()
    with store:
        store.put("k", b"good")
        assert store.flush()
        meta = dict(backends[0].inner.head("k").metadata or {})
        with Payload.from_bytes(b"evil") as payload:
            backends[0].inner.put("k", payload, content_type="text/plain", metadata=meta)
        assert store.reconcile().consistent  # cheap mode: same version, size and sha256
        report = store.reconcile(verify_bytes=True, fix=True)
        assert report.corrupt["a"] == ("k",)
        assert report.fixed == 1
    assert backends[0].inner.get("k").data == b"good"


def test_closed_storage_refuses_calls() -> None:
    _, store = trio()
    store.close()
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.get("k")


def test_duplicate_backend_names_rejected() -> None:
    with pytest.raises(ConfigError, match="unique"):
        Storage([MemoryBackend("x"), MemoryBackend("x")])
