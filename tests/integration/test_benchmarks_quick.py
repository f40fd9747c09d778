"""Smoke test of the benchmark harness: its quick mode on one scenario writes sound results.

Runs ``python -m benchmarks --quick --scenario overhead`` as a user would (a child
process with its own emulators) and checks the JSON it writes, not the figures in it:
timings on a shared CI machine prove nothing, the harness's plumbing does.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Only stops a harness that hangs: how long the quick run takes is one of the figures
#: the harness measures, not a verdict (about 10 s on an idle machine). It leaves a
#: loaded machine ample room, and room for the clean-up below under pytest's 300 s.
HANG_LIMIT_SECONDS = 200


@pytest.fixture
def emulators_installed(moto_server, azurite_server, fake_gcs_server) -> None:
    """Skip (locally) or fail (CI) like every emulator test when a tool is missing.

    The harness starts its own private emulators; the session ones only prove that
    moto, azurite and fake-gcs-server can start here.
    """


def _run_harness(out: Path) -> tuple[int, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--scenario",
            "overhead",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=HANG_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGINT lets the harness stop its emulators on the way out (if it is still
        # running: it may have ended since the time ran out).
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            if process.poll() is None:
                process.kill()
            _, stderr = process.communicate()
        pytest.fail(f"quick overhead run hung for over {HANG_LIMIT_SECONDS} s:\n{stderr[-3000:]}")
    return process.returncode, stderr


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.usefixtures("emulators_installed")
def test_quick_overhead_run_writes_its_results(tmp_path: Path) -> None:
    code, stderr = _run_harness(tmp_path)
    assert code == 0, stderr[-3000:]

    result = json.loads((tmp_path / "overhead.json").read_text())
    assert result["schema_version"] == 1
    assert result["scenario"] == "overhead"
    assert result["mode"] == "quick"
    assert result["duration_seconds"] > 0
    machine = result["machine"]
    assert machine["logical_cpus"] >= 1
    assert len(machine["load_average"]) == 3
    assert len(machine["load_average_after"]) == 3
    assert machine["versions"]["failover"]
    assert result["parameters"]["repeats"] == 1

    targets = {t["name"]: t for t in result["targets"]}
    assert set(targets) == {"overhead s3", "overhead azure", "overhead gcs"}
    for target in targets.values():
        assert _number(target["value"])
        assert target["spread"]["runs"] == 1
        assert target["spread"]["min"] <= target["spread"]["median"] <= target["spread"]["max"]
        assert isinstance(target["met"], bool)
        assert target["verdict"] in {"met", "**missed**"}

    latency = result["tables"][0]
    assert len(latency["rows"]) == 3 * 2 * 2  # providers x (put, get) x (1 KiB, 1 MiB)
    for row in latency["rows"]:
        for column in ("raw_p50", "backend_p50", "failover_p50"):
            assert _number(row[column])
            assert row[column] > 0
        assert _number(row["ratio_p50"]["median"])
        assert _number(row["ratio_p99"]["median"])

    for sample in result["data"]["clouds"]:
        for variant in ("raw", "backend", "failover"):
            assert sample[variant]["n"] > 0
            assert (
                sample[variant]["min_ms"] <= sample[variant]["p50_ms"] <= sample[variant]["max_ms"]
            )

    markdown = (tmp_path / "overhead.md").read_text()
    assert "| overhead s3 |" in markdown
    assert "overhead.md" in (tmp_path / "README.md").read_text()
