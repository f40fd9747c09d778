"""Storage with client-side encryption and erasure coding, over memory replicas."""

from __future__ import annotations

import hashlib
import os

import pytest

from failover import AllBackendsFailed, IntegrityError, NotFoundError, Storage
from failover.backends import MemoryBackend
from failover.config import Settings
from failover.errors import BackendUnavailable, QuorumNotReached
from failover.events import Event, HedgeFired
from failover.payload import Payload
from failover.segmentation import generate_master_key
from failover.testing import FaultyBackend

KEY_A = generate_master_key()
KEY_B = generate_master_key()
MARKER = b"TOP-SECRET-MARKER-7f3a"


def segmented(
    *, redundancy: str = "erasure", key: str | None = KEY_A, **options: object
) -> tuple[list[FaultyBackend], Storage]:
    backends = [FaultyBackend(MemoryBackend(name)) for name in ("a", "b", "c")]
    options.setdefault("repair_interval_seconds", 0)
    settings = Settings.from_urls(
        ["a", "b", "c"], redundancy=redundancy, encryption_key=key, **options
    )  # type: ignore[arg-type]
    return backends, Storage(backends, settings=settings)


def stored_bytes(backend: FaultyBackend, key: str) -> bytes:
    return backend.inner.get(key).data


def down(backend: FaultyBackend) -> None:
    backend.set(error_rate=1.0, error=BackendUnavailable)


@pytest.mark.parametrize("redundancy", ["replicate", "erasure"])
@pytest.mark.parametrize("size", [0, 1, 1000, 300_000])
def test_round_trip_and_nothing_readable_on_any_backend(redundancy: str, size: int) -> None:
    data = (MARKER + os.urandom(64)) * (size // 86) + os.urandom(size % 86)
    backends, store = segmented(redundancy=redundancy)
    with store:
        info = store.put("secret.bin", data, metadata={"team": "ops"})
        assert store.flush()  # every backend's bytes are checked below
        assert info.checksum == hashlib.sha256(data).hexdigest()
        assert info.size == len(data)
        assert store.get("secret.bin") == data
        with store.open("secret.bin") as reader:
            assert reader.read() == data
        head = store.head("secret.bin")
        assert (head.size, head.metadata, head.version) == (
            len(data),
            {"team": "ops"},
            info.version,
        )
        assert head.checksum == ""  # no plaintext hash in provider metadata when encrypted
        assert [i.key for i in store.list()] == ["secret.bin"]
    for backend in backends:
        raw = stored_bytes(backend, "secret.bin")
        assert MARKER not in raw
        meta = backend.inner.head("secret.bin").metadata or {}
        assert hashlib.sha256(data).hexdigest() not in meta.values()


def test_erasure_overhead_is_n_over_k() -> None:
    backends, store = segmented(key=None)
    data = os.urandom(2_000_000)
    with store:
        store.put("big", data)
        assert store.flush()  # every share written, not only the quorum's
    stored = sum(len(stored_bytes(b, "big")) for b in backends)
    assert 1.49 < stored / len(data) < 1.52


def test_erasure_without_encryption_records_the_content_hash() -> None:
    _, store = segmented(key=None)
    with store:
        info = store.put("k", b"hello world" * 100)
        assert store.head("k").checksum == info.checksum


@pytest.mark.parametrize("lost", [0, 1, 2])
def test_any_one_backend_lost(lost: int) -> None:
    backends, store = segmented()
    data = os.urandom(200_000)
    with store:
        store.put("k", data)
        down(backends[lost])
        assert store.get("k") == data
        assert store.get("k", byte_range=(1000, 5000)) == data[1000:5000]
        with store.open("k", byte_range=(150_000, None)) as reader:
            assert reader.read() == data[150_000:]


def test_two_backends_lost_is_a_clear_failure() -> None:
    backends, store = segmented()
    with store:
        store.put("k", b"x" * 1000)
        down(backends[0])
        down(backends[1])
        with pytest.raises(AllBackendsFailed):
            store.get("k")


def test_missing_object_is_not_found() -> None:
    _, store = segmented()
    with store, pytest.raises(NotFoundError):
        store.get("nope")


def test_tampered_share_is_skipped_and_rebuilt_by_repair() -> None:
    backends, store = segmented(read_policy="ordered")
    data = os.urandom(100_000)
    with store:
        store.put("k", data)
        assert store.flush()
        original = stored_bytes(backends[0], "k")
        meta = dict(backends[0].inner.head("k").metadata or {})
        tampered = bytearray(original)
        tampered[5000] ^= 0xFF
        with Payload.from_bytes(bytes(tampered)) as payload:
            backends[0].inner.put("k", payload, content_type="x", metadata=meta)
        assert store.get("k") == data
        assert store.health()["a"].pending_repairs == 1
        assert store.repair().repaired == 1
    assert stored_bytes(backends[0], "k") == original  # regenerated bit for bit


def test_share_missed_during_an_outage_is_regenerated() -> None:
    backends, store = segmented(write_quorum=2)  # k: accept the write with c down
    data = os.urandom(150_000)
    with store:
        down(backends[2])
        store.put("k", data)
        assert store.flush()
        backends[2].heal()
        store._dispatch.breakers.reset("c")
        assert store.health()["c"].pending_repairs == 1
        assert store.repair().repaired == 1
        # The regenerated share is good: read with another backend lost.
        down(backends[0])
        assert store.get("k") == data


def test_reconcile_finds_and_regenerates_a_lost_share() -> None:
    backends, store = segmented()
    with store:
        store.put("k", b"payload" * 5000)
        assert store.flush()
        backends[1].inner.delete("k")
        report = store.reconcile()
        assert report.missing["b"] == ("k",)
        assert store.reconcile(fix=True).fixed == 1
        assert store.reconcile(verify_bytes=True).consistent


def test_key_rotation_keeps_old_objects_readable() -> None:
    backends, store = segmented(key=KEY_A)
    with store:
        store.put("old", b"written under the old key")
    rotated = f"new:{KEY_B},{KEY_A}"  # the new key first; the old one stays for reading
    settings = Settings.from_urls(
        ["a", "b", "c"], redundancy="erasure", encryption_key=rotated, repair_interval_seconds=0
    )
    with Storage(backends, settings=settings) as store:
        assert store.get("old") == b"written under the old key"
        store.put("new", b"written under the new key")
        assert store.get("new") == b"written under the new key"


def test_wrong_key_is_a_clear_error() -> None:
    backends, store = segmented(key=KEY_A)
    with store:
        store.put("k", b"data")
    settings = Settings.from_urls(
        ["a", "b", "c"], redundancy="erasure", encryption_key=KEY_B, repair_interval_seconds=0
    )
    with (
        Storage(backends, settings=settings) as other,
        pytest.raises((IntegrityError, AllBackendsFailed)) as info,
    ):
        other.get("k")
    assert "key" in str(info.value).lower()
    assert KEY_A not in str(info.value)
    assert KEY_B not in str(info.value)


def test_tampered_encrypted_copy_fails_over_to_another() -> None:
    backends, store = segmented(redundancy="replicate", read_policy="ordered")
    with store:
        store.put("k", b"confidential" * 100)
        assert store.flush()
        stored = backends[0].inner.get("k")
        tampered = bytearray(stored.data)
        tampered[-20] ^= 0x10
        with Payload.from_bytes(bytes(tampered)) as payload:
            backends[0].inner.put(
                "k", payload, content_type="x", metadata=dict(stored.info.metadata or {})
            )
        assert store.get("k") == b"confidential" * 100
        assert store.get("k", byte_range=(0, 12)) == b"confidential"


def test_a_read_opens_k_shares_once_each() -> None:
    backends, store = segmented(read_policy="ordered")
    data = os.urandom(200_000)
    with store:
        store.put("k", data)
        assert store.flush()
        for backend in backends:
            backend.reset_counters()
        assert store.get("k") == data
    opens = [b.calls.get("open", 0) for b in backends]
    assert opens == [1, 1, 0]  # k = 2 shares, each opened once (header and data)


def test_a_slow_share_is_hedged_by_the_next_one() -> None:
    events: list[Event] = []
    backends = [FaultyBackend(MemoryBackend(name)) for name in ("a", "b", "c")]
    settings = Settings.from_urls(
        ["a", "b", "c"],
        redundancy="erasure",
        encryption_key=KEY_A,
        repair_interval_seconds=0,
        read_policy="ordered",
        hedge_delay_ms=50,
        deadline_seconds=10,
    )
    store = Storage(backends, settings=settings, hooks=[events.append])
    data = os.urandom(100_000)
    with store:
        store.put("k", data)
        assert store.flush()
        backends[0].set(hang=True, operations=frozenset({"open"}))
        try:
            assert store.get("k") == data
        finally:
            backends[0].heal()
    hedges = [e for e in events if isinstance(e, HedgeFired)]
    assert [(e.backend, e.hedge) for e in hedges] == [("a", "c")]


def test_an_acknowledged_erasure_write_survives_losing_any_one_cloud() -> None:
    # Default quorum k + 1 = 3 of 3: with c down the write is not acknowledged, so no
    # acknowledged write ever rests on exactly k shares.
    backends, store = segmented()
    with store:
        down(backends[2])
        with pytest.raises(QuorumNotReached) as info:
            store.put("k", b"acknowledged" * 100)
        assert info.value.required == 3
        backends[2].heal()
        store._dispatch.breakers.reset("c")
        store.put("k", b"acknowledged" * 100)
        assert store.flush()
        for lost in backends:  # lose any one of the three: still readable
            lost.set(error_rate=1.0, error=BackendUnavailable)
            assert store.get("k") == b"acknowledged" * 100
            lost.heal()


def test_a_share_rewritten_with_recomputed_checksums_is_caught_by_the_content_sha256() -> None:
    from failover.segmentation.erasure import HEADER_SIZE, ShareHeader, _block_checksum

    backends, store = segmented(key=None, read_policy="ordered")  # erasure, no encryption
    honest = b"PAY 100 EUR TO ALICE...."
    with store:
        store.put("invoice", honest)
        assert store.flush()
        # Someone with access to one cloud rewrites share 0's block and recomputes its
        # CRC-32; the share's metadata is left as it was.
        stored = backends[0].inner.get("invoice")
        header = ShareHeader.parse(stored.data[:HEADER_SIZE])
        block = bytearray(stored.data[HEADER_SIZE:-4])  # a single stripe
        block[:3] = bytes(255 - b for b in block[:3])
        forged = (
            stored.data[:HEADER_SIZE]
            + bytes(block)
            + _block_checksum(header.checksum_seed, 0, bytes(block))
        )
        with Payload.from_bytes(forged) as payload:
            backends[0].inner.put(
                "invoice",
                payload,
                content_type=stored.info.content_type,
                metadata=dict(stored.info.metadata or {}),
            )
        with store.open("invoice") as reader, pytest.raises(IntegrityError):
            reader.read()  # a stream that meets it ends in an error, never in wrong bytes
        assert store.get("invoice") == honest  # decoded again without the forged share
        assert store.health()["a"].pending_repairs == 1  # and that share is to be rebuilt
        with store.open("invoice") as reader:
            assert reader.read() == honest  # the suspect share is read last from now on


def _share_numbers(store: Storage, key: str) -> dict[str, int]:
    from failover.segmentation.erasure import HEADER_SIZE, ShareHeader

    return {
        name: ShareHeader.parse(backend.get(key).data[:HEADER_SIZE]).index
        for name, backend in store.backends.items()
    }


def test_a_rebuilt_share_takes_the_missing_number_whatever_the_backend_order() -> None:
    stores = [f"ec-order-{n}-{os.urandom(4).hex()}" for n in "abc"]
    urls = {n: f"memory://{s}?name={n}" for n, s in zip("abc", stores, strict=True)}
    options = {"journal": ":memory:", "repair_interval_seconds": 0, "redundancy": "erasure"}
    try:
        with Storage.from_urls([urls["a"], urls["b"], urls["c"]], **options) as first:
            first.put("doc", b"important" * 1000)
            assert first.flush()
        # The operator reorders the backends, then a loses the object.
        with Storage.from_urls([urls["b"], urls["a"], urls["c"]], **options) as second:
            second.backends["a"].delete("doc")
            assert second.reconcile(fix=True).fixed == 1
            assert sorted(_share_numbers(second, "doc").values()) == [0, 1, 2]
            second.backends["c"].delete("doc")  # losing any one more is survivable
            assert second.get("doc") == b"important" * 1000
    finally:
        for name in stores:
            MemoryBackend.forget(name)


def test_reconcile_finds_a_duplicated_share_number_and_rebuilds_the_missing_one() -> None:
    backends, store = segmented(key=None, write_quorum=3)
    with store:
        store.put("doc", b"important" * 1000)
        copy = backends[1].inner.get("doc")  # b's share, copied over a's
        with Payload.from_bytes(copy.data) as payload:
            backends[0].inner.put(
                "doc",
                payload,
                content_type=copy.info.content_type,
                metadata=dict(copy.info.metadata or {}),
            )
        report = store.reconcile()
        assert report.corrupt["b"] == ("doc",)  # the later of the two holders of share 1
        assert store.reconcile(fix=True).fixed == 1
        assert sorted(_share_numbers(store, "doc").values()) == [0, 1, 2]
        assert store.reconcile(verify_bytes=True).consistent
