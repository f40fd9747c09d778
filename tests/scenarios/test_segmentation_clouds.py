"""Encrypted, erasure-coded (2-of-3) objects on the three real emulators."""

from __future__ import annotations

import hashlib
import os

import pytest

from failover import Storage
from failover.payload import Payload
from failover.segmentation import generate_master_key

from .conftest import ProxiedFactory

pytestmark = [pytest.mark.integration, pytest.mark.scenario]

MARKER = b"PLAINTEXT-MARKER-0c9d"
KINDS = ("s3", "azure", "gcs")


def _segmented(urls: list[str], tmp_path, **options: object) -> Storage:
    settings: dict[str, object] = {
        "redundancy": "erasure",
        "encryption_key": generate_master_key(),
        "journal": str(tmp_path / "j.sqlite"),
        "timeout_seconds": 0.5,
        "breaker_fail_max": 3,
        "breaker_reset_seconds": 0.5,
        "repair_interval_seconds": 0,
    }
    settings.update(options)
    return Storage.from_urls(urls, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("lost", KINDS)
def test_lose_any_one_cloud(
    lost: str, proxied_cloud: ProxiedFactory, healthy_cloud, tmp_path
) -> None:
    urls, proxies = [], {}
    for kind in KINDS:
        if kind == lost:
            url, proxies[kind] = proxied_cloud(kind, kind)  # type: ignore[arg-type]
        else:
            url = healthy_cloud(kind, kind)
        urls.append(url)
    objects = {f"doc/{i}": (MARKER + os.urandom(100)) * (50 * (i + 1)) for i in range(6)}
    # 2-of-3 shares: the default quorum is k + 1 = 3, which refuses writes while a cloud
    # is down; write_quorum=2 accepts them (each exposed to one more loss until repair).
    with _segmented(urls, tmp_path, write_quorum=2) as store:
        for key, data in objects.items():
            store.put(key, data)
        assert store.flush()
        proxies[lost].refuse()
        for key, data in objects.items():
            assert store.get(key) == data
        # Writes and repair work as in replication mode.
        written = os.urandom(300_000)
        store.put("during", written)
        assert store.flush()
        proxies[lost].pass_through()
        store._dispatch.breakers.reset(lost)
        report = store.repair()
        assert (report.repaired, report.pending) == (1, 0)
        assert store.reconcile(verify_bytes=True).consistent
        # No single cloud holds readable data: the marker is in none of the stored bytes.
        stored_total = 0
        for backend in store.backends.values():
            for key in objects:
                raw = backend.get(key).data
                stored_total += len(raw)
                assert MARKER not in raw
        overhead = stored_total / sum(len(d) for d in objects.values())
    print(f"\n[segmentation] lost {lost}: every read served; storage overhead {overhead:.3f}")
    assert 1.49 < overhead < 1.6


def test_tampered_share_on_a_cloud_is_detected_and_repaired(healthy_cloud, tmp_path) -> None:
    urls = [healthy_cloud(kind, kind) for kind in KINDS]
    data = os.urandom(250_000)
    with _segmented(urls, tmp_path, read_policy="ordered") as store:
        store.put("k", data)
        assert store.flush()
        s3 = store.backends["s3"]
        original = s3.get("k")
        tampered = bytearray(original.data)
        tampered[len(tampered) // 2] ^= 0x01
        with Payload.from_bytes(bytes(tampered)) as payload:
            s3.put(
                "k",
                payload,
                content_type=original.info.content_type,
                metadata=dict(original.info.metadata or {}),
            )
        assert hashlib.sha256(store.get("k")).digest() == hashlib.sha256(data).digest()
        assert store.health()["s3"].pending_repairs == 1
        assert store.repair().repaired == 1
        assert s3.get("k").data == original.data
