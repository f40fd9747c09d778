"""Fixtures for outage scenarios: emulators behind fault proxies, event recorders."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from failover.events import Event
from failover.testing import FaultProxy, emulators
from failover.testing.emulators import EmulatorKind, EmulatorProcess

from ..conftest import unique_bucket

_SESSION_FIXTURE = {"s3": "moto_server", "azure": "azurite_server", "gcs": "fake_gcs_server"}


class EventRecorder:
    """An event hook that keeps every event (thread-safe)."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def of(self, kind: type[Event], backend: str | None = None) -> list[Event]:
        with self._lock:
            return [
                e
                for e in self._events
                if isinstance(e, kind) and (backend is None or e.backend == backend)
            ]


@pytest.fixture
def recorder() -> EventRecorder:
    return EventRecorder()


ProxiedFactory = Callable[[EmulatorKind, str], tuple[str, FaultProxy]]


@pytest.fixture
def proxied_cloud(request: pytest.FixtureRequest) -> Iterator[ProxiedFactory]:
    """Start private emulators behind FaultProxies; returns (backend URL, proxy)."""
    started: list[tuple[EmulatorProcess, FaultProxy]] = []

    def make(kind: EmulatorKind, name: str) -> tuple[str, FaultProxy]:
        # The session emulator of this kind proves the tools exist (and fails in CI).
        request.getfixturevalue(_SESSION_FIXTURE[kind])
        emu, proxy = emulators.start_behind_proxy(kind)
        started.append((emu, proxy))
        url = emulators.create_bucket(emu, unique_bucket(kind), endpoint=proxy.endpoint, name=name)
        return url, proxy

    yield make
    for emu, proxy in started:
        proxy.stop()
        emu.stop()


@pytest.fixture
def healthy_cloud(request: pytest.FixtureRequest) -> Callable[[EmulatorKind, str], str]:
    """A fresh bucket on the session emulator of a kind; returns its backend URL."""

    def make(kind: EmulatorKind, name: str) -> str:
        emu = request.getfixturevalue(_SESSION_FIXTURE[kind])
        return emulators.create_bucket(emu, unique_bucket(kind), name=name)

    return make
