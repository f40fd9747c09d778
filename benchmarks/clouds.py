"""Private emulators for one scenario: started on entry, stopped on exit."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from types import TracebackType

from failover.testing import FaultProxy, emulators
from failover.testing.emulators import EmulatorKind, EmulatorProcess

__all__ = ["KINDS", "Clouds"]

#: Every cloud, in the order the scenarios list them.
KINDS: tuple[EmulatorKind, ...] = ("s3", "azure", "gcs")
_counter = itertools.count()


class Clouds:
    """Start moto, azurite and fake-gcs-server (each optionally behind a FaultProxy).

    Use as a context manager; everything started is stopped on exit, even on errors.
    The emulators' client environment (dummy credentials, connection strings) is applied
    to ``os.environ`` so that backends and raw SDK clients built here find it.

    Args:
        kinds: which emulators to start.
        proxied: kinds to start behind a :class:`~failover.testing.FaultProxy`.
    """

    def __init__(self, kinds: Iterable[EmulatorKind] = KINDS, *, proxied: Iterable[str] = ()):
        self._kinds = tuple(kinds)
        self._proxied = frozenset(proxied)
        self._emulators: dict[str, EmulatorProcess] = {}
        self._proxies: dict[str, FaultProxy] = {}

    def __enter__(self) -> Clouds:
        try:
            for kind in self._kinds:
                if kind in self._proxied:
                    emulator, proxy = emulators.start_behind_proxy(kind)
                    self._proxies[kind] = proxy
                else:
                    emulator = emulators.start(kind)
                self._emulators[kind] = emulator
                emulators.apply_env(emulator)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every proxy and emulator started (idempotent)."""
        for proxy in self._proxies.values():
            proxy.stop()
        for emulator in self._emulators.values():
            emulator.stop()
        self._proxies.clear()
        self._emulators.clear()

    def bucket(self, kind: str, label: str, *, name: str | None = None) -> str:
        """Create a fresh bucket on ``kind``'s emulator; return its backend URL.

        The URL goes through the kind's proxy when it has one.
        """
        bucket = f"{label}-{next(_counter)}-{uuid.uuid4().hex[:8]}"
        proxy = self._proxies.get(kind)
        return emulators.create_bucket(
            self._emulators[kind],
            bucket,
            endpoint=proxy.endpoint if proxy else None,
            name=name or kind,
        )

    def proxy(self, kind: str) -> FaultProxy:
        """The FaultProxy in front of ``kind``'s emulator."""
        return self._proxies[kind]
