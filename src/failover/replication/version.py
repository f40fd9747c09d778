"""Version stamps: a hybrid logical clock plus a writer id, totally ordered as strings.

A stamp looks like ``0001732650000123.000004.9f2c4e1ab37d55c0``: wall-clock milliseconds
(16 digits), a logical counter (6 digits) that breaks ties within a millisecond and keeps
stamps increasing when the wall clock steps back, and the writer id. Fixed-width fields
make string order equal to (time, counter, writer) order, so "last writer wins" is a
plain string comparison and every replica agrees on it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

__all__ = ["HybridClock", "parse_version"]

_MS_DIGITS = 16
_COUNTER_DIGITS = 6


class HybridClock:
    """Issues strictly increasing version stamps for one writer.

    Args:
        writer_id: distinguishes writers that stamp in the same millisecond
            (default: 16 random hex digits).
        wall_ms: source of wall-clock milliseconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        writer_id: str | None = None,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self.writer_id = writer_id or secrets.token_hex(8)
        if not self.writer_id.isalnum():
            raise ValueError("writer_id must be alphanumeric")
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._last_ms = 0
        self._counter = 0
        self._lock = threading.Lock()

    def now(self) -> str:
        """Return a new stamp, greater than every stamp this clock issued or observed."""
        with self._lock:
            wall = self._wall_ms()
            if wall > self._last_ms:
                self._last_ms, self._counter = wall, 0
            else:
                self._counter += 1
                if self._counter >= 10**_COUNTER_DIGITS:
                    self._last_ms, self._counter = self._last_ms + 1, 0
            ms = f"{self._last_ms:0{_MS_DIGITS}d}"
            return f"{ms}.{self._counter:0{_COUNTER_DIGITS}d}.{self.writer_id}"

    def observe(self, stamp: str) -> None:
        """Move the clock past a stamp seen from another writer (keeps causality)."""
        parsed = parse_version(stamp)
        if parsed is None:
            return
        ms, counter = parsed
        with self._lock:
            self._last_ms, self._counter = max((self._last_ms, self._counter), (ms, counter))


def parse_version(stamp: str) -> tuple[int, int] | None:
    """Return ``(milliseconds, counter)`` of a stamp, or None if it is not one."""
    parts = stamp.split(".")
    if len(parts) != 3 or len(parts[0]) != _MS_DIGITS or len(parts[1]) != _COUNTER_DIGITS:
        return None
    if not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])
