"""Helpers for the command-line tests: run ``failover`` in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from failover.cli import app
from failover.testing import emulators

from ..conftest import unique_bucket

Invoke = Callable[..., Result]
_EMULATOR_FIXTURE = {"s3": "moto_server", "azure": "azurite_server", "gcs": "fake_gcs_server"}


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a command: a private journal and a wide terminal."""
    return {"COLUMNS": "200", "FAILOVER_JOURNAL": str(tmp_path / "journal.sqlite")}


@pytest.fixture
def failover_cli(cli_env: dict[str, str]) -> Invoke:
    """Run ``failover ARGS...`` in-process through the Typer app (the console script's code).

    Keyword ``env`` adds variables (``None`` unsets one); ``input`` feeds standard input.
    """
    runner = CliRunner()

    def invoke(
        *args: str, env: Mapping[str, str | None] | None = None, input: bytes | None = None
    ) -> Result:
        return runner.invoke(
            app, list(args), env={**cli_env, **(env or {})}, input=input, catch_exceptions=False
        )

    return invoke


def run_module(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m failover.cli ARGS...`` as a new process."""
    return subprocess.run(
        [sys.executable, "-m", "failover.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
        check=False,
    )


@pytest.fixture
def memory_urls() -> list[str]:
    """Three in-process backends, fresh for each test."""
    run = uuid.uuid4().hex[:8]
    return [f"memory://cli-{run}-{name}?name={name}" for name in ("aws", "azure", "gcp")]


@pytest.fixture
def cloud_urls(request: pytest.FixtureRequest) -> list[str]:
    """A fresh bucket on each real emulator, named aws, azure and gcp."""
    urls = []
    for kind, name in (("s3", "aws"), ("azure", "azure"), ("gcs", "gcp")):
        emulator = request.getfixturevalue(_EMULATOR_FIXTURE[kind])
        urls.append(emulators.create_bucket(emulator, unique_bucket(kind), name=name))
    return urls
