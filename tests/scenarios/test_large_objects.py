"""A large object replicated to three clouds, read back and repaired in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.scenario]

SCRIPT = Path(__file__).with_name("large_object_process.py")
MIB = 96
BOUND_MIB = 64  # the same bound the benchmark holds a 256 MiB object to


def test_large_object_streams_with_bounded_memory(healthy_cloud) -> None:
    urls = [healthy_cloud(kind, kind) for kind in ("s3", "azure", "gcs")]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--mib", str(MIB), *urls],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\n[large] {figures}")
    assert figures["sha256_ok"]
    assert figures["repaired"] == 1
    assert figures["repaired_size"] == MIB * 1024 * 1024
    for phase in ("growth_put_mib", "growth_get_mib", "growth_repair_mib"):
        assert figures[phase] <= BOUND_MIB, (phase, figures)
