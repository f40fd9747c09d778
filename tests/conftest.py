"""Shared fixtures: backends of every kind, each on a fresh bucket."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from failover.backends import Backend, from_url
from failover.backends.memory import MemoryBackend
from failover.config import ENV_PREFIX
from failover.errors import NotFoundError
from failover.replication.markers import is_marker
from failover.testing import emulators

BACKEND_KINDS = ("memory", "local", "s3", "azure", "gcs")
CLOUD_KINDS = ("s3", "azure", "gcs")
_EMULATOR_FIXTURE = {"s3": "moto_server", "azure": "azurite_server", "gcs": "fake_gcs_server"}
_counter = itertools.count()


def unique_bucket(label: str = "b") -> str:
    """A bucket name valid on every provider (lower case, digits, dashes, 3-63 chars)."""
    return f"{label}-{next(_counter)}-{uuid.uuid4().hex[:10]}"


def deleted_on(backend: Backend, key: str) -> bool:
    """True if ``backend`` holds no live copy of ``key`` (absent, or a delete marker)."""
    try:
        return is_marker(backend.head(key))
    except NotFoundError:
        return True


BackendFactory = Callable[..., Backend]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FAILOVER_* variable from the surrounding environment."""
    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX):
            monkeypatch.delenv(variable)
    return monkeypatch


@pytest.fixture(autouse=True)
def private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own default journal (``$XDG_STATE_HOME/failover/...``)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def make_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendFactory]:
    """Build backends of a kind on fresh buckets; closes them after the test."""
    made: list[Backend] = []

    def make(kind: str, *, name: str | None = None, timeout_seconds: float = 5.0) -> Backend:
        bucket = unique_bucket(kind)
        if kind == "memory":
            backend: Backend = MemoryBackend(name or f"memory:{bucket}")
        elif kind == "local":
            root = tmp_path_factory.mktemp(bucket)
            url = f"file://{root}" + (f"?name={name}" if name else "")
            backend = from_url(url)
        else:
            emulator = request.getfixturevalue(_EMULATOR_FIXTURE[kind])
            url = emulators.create_bucket(emulator, bucket, name=name)
            backend = from_url(url, timeout_seconds=timeout_seconds)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(params=BACKEND_KINDS)
def backend(request: pytest.FixtureRequest, make_backend: BackendFactory) -> Backend:
    """One backend of each kind, on a fresh bucket (the conformance suite's subject)."""
    kind: str = request.param
    if kind in CLOUD_KINDS:
        request.applymarker(pytest.mark.integration)
    return make_backend(kind)
