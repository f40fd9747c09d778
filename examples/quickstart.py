"""Quickstart: three replicas, one of them lost, nothing lost.

Runs anywhere with no cloud account: the three "clouds" are local directories.
Point FAILOVER_BACKENDS at real buckets (s3://…, az://…, gs://…) and the same code
runs against AWS, Azure and Google Cloud.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import failover


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="failover-quickstart-"))
    urls = [f"file://{workdir}/{cloud}?name={cloud}" for cloud in ("aws", "azure", "gcp")]
    try:
        with failover.Storage.from_urls(
            urls,
            write_policy="quorum",  # a write is acknowledged by 2 of the 3 replicas
            journal=str(workdir / "journal.sqlite"),  # remembers what a replica missed
            repair_interval_seconds=0,  # repair only when asked, to show each step
        ) as store:
            info = store.put("reports/q3.txt", b"revenue: up", metadata={"team": "ops"})
            print(
                f"stored {info.key} ({info.size} bytes, sha256 {info.checksum[:12]}...) "
                f"version {info.version}"
            )

            # A quorum write returns once 2 replicas have it; flush() waits for the
            # third, so that the copy being lost next is complete first.
            store.flush()
            # One cloud loses everything (its directory vanishes): reads still work...
            shutil.rmtree(workdir / "aws")
            data = store.get("reports/q3.txt")
            print(f"read back with 'aws' gone: {data!r}")
            assert data == b"revenue: up"

            # ... and so do writes: the other two acknowledge them.
            store.put("reports/q4.txt", b"revenue: up again")
            print("stored reports/q4.txt while 'aws' is gone")

            # 'aws' comes back empty. repair() replays the writes it missed while it was
            # away; reconcile(fix=True) compares every replica and restores what it lost
            # before (here: everything, since its directory was wiped).
            (workdir / "aws").mkdir()
            repaired = store.repair().repaired
            restored = store.reconcile(fix=True).fixed
            print(f"repair: {repaired} missed write(s) replayed; reconcile: {restored} restored")
            for key in ("reports/q3.txt", "reports/q4.txt"):
                assert (workdir / "aws" / key).read_bytes() == store.get(key)
            print("all three replicas identical:", store.reconcile().consistent)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
