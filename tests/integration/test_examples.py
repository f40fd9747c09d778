"""Every example in examples/ runs, as a user would run it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from failover import Settings, Storage
from failover.backends import from_url
from failover.errors import BackendUnavailable
from failover.testing import FaultyBackend

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=EXAMPLES.parent,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_loses_a_cloud_and_nothing_else() -> None:
    proc = _run(str(EXAMPLES / "quickstart.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "read back with 'aws' gone: b'revenue: up'" in proc.stdout
    assert "all three replicas identical: True" in proc.stdout


def test_webapp_serves_uploads_through_an_outage(tmp_path: Path) -> None:
    webapp = _load("webapp")
    urls = [f"file://{tmp_path}/{name}?name={name}" for name in ("aws", "azure", "gcp")]
    faults = {
        name: FaultyBackend(from_url(url))
        for name, url in zip(("aws", "azure", "gcp"), urls, strict=True)
    }
    settings = Settings.from_urls(
        urls, journal=str(tmp_path / "journal.sqlite"), repair_interval_seconds=0
    )
    with Storage(list(faults.values()), settings=settings) as store:
        client = webapp.create_app(store).test_client()
        created = client.put("/files/docs/a.txt", data=b"alpha", content_type="text/plain")
        assert created.status_code == 201
        assert created.get_json()["size"] == 5

        faults["gcp"].set(error_rate=1.0, error=BackendUnavailable)
        download = client.get("/files/docs/a.txt")
        assert download.status_code == 200
        assert download.data == b"alpha"
        assert download.mimetype == "text/plain"
        assert client.put("/files/docs/b.txt", data=b"beta").status_code == 201
        assert client.get("/health").get_json()["gcp"]["pending"] >= 0
        faults["gcp"].heal()

        assert [f["key"] for f in client.get("/files?prefix=docs/").get_json()] == [
            "docs/a.txt",
            "docs/b.txt",
        ]
        assert client.delete("/files/docs/a.txt").status_code == 204
        assert client.get("/files/docs/a.txt").status_code == 404
        assert client.put("/files/..", data=b"x").status_code == 400


@pytest.mark.integration
@pytest.mark.usefixtures("moto_server", "azurite_server", "fake_gcs_server")
def test_the_pytest_example_passes() -> None:
    # The session fixtures prove the emulators are installed; the example's own pytest
    # session starts its own through the same plugin.
    proc = _run(
        "-m", "pytest", str(EXAMPLES / "test_webapp_outage.py"), "-q", "-p", "no:cacheprovider"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
