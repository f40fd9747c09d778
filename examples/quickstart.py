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
        with failover.Storage.from_urls(urls, write_policy="quorum") as store:
            info = store.put("reports/q3.txt", b"revenue: up", metadata={"team": "ops"})
            print(
                f"stored {info.key} ({info.size} bytes, sha256 {info.checksum[:12]}...) "
                f"version {info.version}"
            )

            # One cloud loses everything (its directory vanishes): reads still work.
            shutil.rmtree(workdir / "aws")
            data = store.get("reports/q3.txt")
            print(f"read back with 'aws' gone: {data!r}")
            assert data == b"revenue: up"

            # 'aws' comes back empty; repair copies what it missed from the others.
            (workdir / "aws").mkdir()
            report = store.repair()
            print(f"repair: {report.repaired} replica(s) restored")
            assert (workdir / "aws" / "reports" / "q3.txt").read_bytes() == b"revenue: up"
            print("all three replicas identical:", store.reconcile().consistent)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
