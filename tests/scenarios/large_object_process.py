"""Replicate, read back and repair one large object; print peak RSS growth as JSON.

Run in its own process by the large-object scenario (and for the figures in the docs):
    python large_object_process.py --mib 200 URL URL URL
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator

from failover import Storage

CHUNK = 1024 * 1024


def generated(mib: int) -> Iterator[bytes]:
    """``mib`` MiB of pseudo-random bytes, produced a chunk at a time."""
    block = hashlib.sha256(b"seed").digest() * (CHUNK // 32)
    for i in range(mib):
        yield i.to_bytes(8, "big") + block[8:]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    expected = hashlib.sha256()
    for chunk in generated(args.mib):
        expected.update(chunk)
    with (
        tempfile.TemporaryDirectory() as state,
        Storage.from_urls(
            args.urls,
            journal=f"{state}/j.sqlite",
            write_policy="all",
            timeout_seconds=60,
            deadline_seconds=600,
            repair_interval_seconds=0,
        ) as store,
    ):
        store.put("warm-up", b"x" * CHUNK)  # load SDK code paths before the baseline
        with store.open("warm-up") as reader:
            reader.read()
        baseline = peak_rss_mib()
        started = time.perf_counter()
        info = store.put("big.bin", generated(args.mib))
        put_seconds = time.perf_counter() - started
        after_put = peak_rss_mib()
        started = time.perf_counter()
        digest = hashlib.sha256()
        with store.open("big.bin") as reader:
            for chunk in reader:
                digest.update(chunk)
        get_seconds = time.perf_counter() - started
        after_get = peak_rss_mib()
        # One replica loses the object; repair copies it back from another, streaming.
        lost = list(store.backends)[-1]
        store.backends[lost].delete("big.bin")
        store._journal.record([lost], "big.bin", info.version, "put")  # type: ignore[union-attr]
        started = time.perf_counter()
        report = store.repair()
        repair_seconds = time.perf_counter() - started
        after_repair = peak_rss_mib()
        repaired_size = store.backends[lost].head("big.bin").size
    print(
        json.dumps(
            {
                "mib": args.mib,
                "sha256_ok": digest.hexdigest() == expected.hexdigest() == info.checksum,
                "repaired": report.repaired,
                "repaired_size": repaired_size,
                "baseline_rss_mib": round(baseline, 1),
                "growth_put_mib": round(after_put - baseline, 1),
                "growth_get_mib": round(after_get - baseline, 1),
                "growth_repair_mib": round(after_repair - baseline, 1),
                "put_mib_per_s": round(args.mib / put_seconds, 1),
                "get_mib_per_s": round(args.mib / get_seconds, 1),
                "repair_mib_per_s": round(args.mib / repair_seconds, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
