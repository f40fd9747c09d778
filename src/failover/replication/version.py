"""Version stamps: a hybrid logical clock plus a writer id, totally ordered as strings.

A stamp looks like ``0001732650000123.000004.9f2c4e1ab37d55c0``: wall-clock milliseconds
(16 digits), a logical counter (6 digits) that breaks ties within a millisecond and keeps
stamps increasing when the wall clock steps back, and the writer id. Fixed-width fields
make string order equal to (time, counter, writer) order, so "last writer wins" is a
plain string comparison and every replica agrees on it.

Clocks are not trusted blindly. A stamp more than ``max_skew_ms`` ahead of this host's
wall clock comes from a host whose clock is wrong (or from a corrupted replica): it is
not *observed* (adopting it would push every later stamp of this writer into the
future), and :meth:`HybridClock.trusts` says it does not win over this writer's own
stamps, so the next write replaces it instead of being silently superseded. The fields
never overflow out of order: a stamp past the 16-digit millisecond field is refused.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

__all__ = ["HybridClock", "parse_version", "stamp_at"]

_MS_DIGITS = 16
_COUNTER_DIGITS = 6
_MAX_MS = 10**_MS_DIGITS - 1
#: Sorts after every writer id (letters and digits), so a horizon stamp tops its millisecond.
_TOP_WRITER = "~"


class HybridClock:
    """Issues strictly increasing version stamps for one writer.

    Args:
        writer_id: distinguishes writers that stamp in the same millisecond
            (default: 16 random hex digits).
        wall_ms: source of wall-clock milliseconds (injectable for tests).
        max_skew_ms: how far ahead of this host's clock a stamp may be and still be
            trusted (``None``: any stamp is trusted).
    """

    def __init__(
        self,
        *,
        writer_id: str | None = None,
        wall_ms: Callable[[], int] | None = None,
        max_skew_ms: int | None = None,
    ) -> None:
        self.writer_id = writer_id or secrets.token_hex(8)
        if not self.writer_id.isalnum():
            raise ValueError("writer_id must be alphanumeric")
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._max_skew_ms = max_skew_ms
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
            if self._last_ms > _MAX_MS:
                raise OverflowError("version stamp past its 16-digit millisecond field")
            ms = f"{self._last_ms:0{_MS_DIGITS}d}"
            return f"{ms}.{self._counter:0{_COUNTER_DIGITS}d}.{self.writer_id}"

    def horizon(self) -> str | None:
        """The highest stamp trusted now (``None`` when every stamp is trusted)."""
        if self._max_skew_ms is None:
            return None
        ms = min(self._wall_ms() + self._max_skew_ms, _MAX_MS)
        return f"{ms:0{_MS_DIGITS}d}.{10**_COUNTER_DIGITS - 1}.{_TOP_WRITER}"

    def ahead_ms(self, stamp: str) -> int:
        """How far ``stamp`` is ahead of this host's wall clock (negative: behind)."""
        parsed = parse_version(stamp)
        return 0 if parsed is None else parsed[0] - self._wall_ms()

    def trusts(self, stamp: str) -> bool:
        """True unless ``stamp`` is further ahead of this host's clock than the skew allowed."""
        horizon = self.horizon()
        return horizon is None or stamp <= horizon

    def observe(self, stamp: str) -> bool:
        """Move the clock past a stamp seen from another writer (keeps causality).

        Returns:
            False (and the clock unchanged) for a stamp that is not one, or that this
            clock does not trust (see :meth:`trusts`).
        """
        parsed = parse_version(stamp)
        if parsed is None or not self.trusts(stamp):
            return False
        ms, counter = parsed
        with self._lock:
            self._last_ms, self._counter = max((self._last_ms, self._counter), (ms, counter))
        return True


def parse_version(stamp: str) -> tuple[int, int] | None:
    """Return ``(milliseconds, counter)`` of a stamp, or None if it is not one."""
    parts = stamp.split(".")
    if len(parts) != 3 or len(parts[0]) != _MS_DIGITS or len(parts[1]) != _COUNTER_DIGITS:
        return None
    if not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def stamp_at(seconds: float) -> str:
    """A string that sorts after every stamp of earlier milliseconds than ``seconds``.

    Stamps of the same millisecond and later sort after it (it is their prefix).
    """
    ms = min(max(int(seconds * 1000), 0), _MAX_MS)
    return f"{ms:0{_MS_DIGITS}d}"
