"""Developer and CI sessions. `nox` alone runs lint, types and the whole test suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYTHON = "3.11"
TEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def _install_node_tools(session: nox.Session) -> None:
    """azurite (the Azure Storage emulator) comes from npm into ./node_modules."""
    if (ROOT / "node_modules" / "azurite" / "package.json").exists():
        return
    session.run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", external=True)


def _install_redis_server(session: nox.Session) -> None:
    """redis-server (Debian's package) for the shared-breaker tests, where it is missing."""
    if shutil.which("redis-server") or os.environ.get("FAILOVER_REDIS_SERVER"):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        session.warn(
            "redis-server is missing and cannot be installed here (needs root and apt-get): "
            "its tests are skipped, or fail with CI=true"
        )
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run(
        "apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server", external=True
    )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against the real emulators (moto, azurite, fake-gcs-server, redis)."""
    session.install("-e", ".[test]")
    _install_node_tools(session)
    _install_redis_server(session)
    args = session.posargs or ["tests"]
    if os.environ.get("CI"):
        args = ["--require-emulators", *args]
    session.run("pytest", *args, env=TEST_ENV)


@nox.session(python=PYTHON)
def stress(session: nox.Session) -> None:
    """The integration, scenario and command tests while a CPU hog keeps every core busy.

    CI machines are loaded: a verdict that holds only on an idle machine is luck. The hog
    (``failover.testing.cpu_hog``, one busy-looping process per core by default) stops
    when pytest ends. ``nox -s stress -- tests/scenarios -k outage`` narrows the run; set
    ``STRESS_HOG_PROCESSES`` to change the number of hog processes.
    """
    session.install("-e", ".[test]")
    _install_node_tools(session)
    _install_redis_server(session)
    hog = ["python", "-m", "failover.testing.cpu_hog"]
    if os.environ.get("STRESS_HOG_PROCESSES"):
        hog += ["--processes", os.environ["STRESS_HOG_PROCESSES"]]
    tests = session.posargs or ["tests/integration", "tests/scenarios", "tests/cli"]
    session.run(*hog, "--", "pytest", "--require-emulators", *tests, env=TEST_ENV)


LINTED = [
    p for p in ("src", "tests", "benchmarks", "examples", "noxfile.py") if (ROOT / p).exists()
]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    """mypy --strict on the package, and the protocol-conformance modules in tests/typing."""
    session.install("-e", ".[all]", "mypy>=1.10", "pytest>=8", "boto3-stubs[s3]")
    session.run("mypy", "--strict", "src/failover")
    # obspec has no runtime conformance suite: assigning failover.obspec.Store to each
    # protocol and type-checking it is how conformance is proven (as obspec does).
    session.run("mypy", "--strict", "tests/typing")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation (mkdocs, strict: any warning fails)."""
    session.install("-e", ".[all,docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the emulators (``nox -s bench -- --quick`` for a smoke run)."""
    session.install("-e", ".[test,bench]")
    _install_node_tools(session)
    session.run("python", "-m", "benchmarks", *session.posargs)
