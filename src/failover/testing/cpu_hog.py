"""Keep every core busy while something else runs: rehearse a loaded machine.

CI machines are shared and busy; a test suite (or an outage rehearsal) that only holds on
an idle machine does not hold. :class:`CpuHog` starts busy-looping processes, one per
core by default, and stops them when it leaves its ``with`` block. Each process also
stops by itself after ``max_seconds``, so none outlives a parent that was killed.

From a shell, run any command beside the hog; the exit code is the command's::

    python -m failover.testing.cpu_hog -- pytest tests/scenarios
    python -m failover.testing.cpu_hog --processes 3 -- bash .ci/run

``nox -s stress`` runs the integration and scenario tests this way.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Self

__all__ = ["CpuHog", "main"]

#: The longest a hog process spins when nobody stops it.
DEFAULT_MAX_SECONDS = 3600.0


def _spin(max_seconds: float) -> None:
    """Burn one core until ``max_seconds`` have passed (the process is usually killed first)."""
    give_up = time.monotonic() + max_seconds
    while time.monotonic() < give_up:
        for _ in range(100_000):
            pass


class CpuHog:
    """Busy-looping processes that keep the machine's cores loaded.

    Args:
        processes: how many to start; by default one per core (``os.cpu_count()``).
        max_seconds: each process stops by itself after this long.

    Raises:
        ValueError: for fewer than one process or a duration that is not positive.
    """

    def __init__(
        self, *, processes: int | None = None, max_seconds: float = DEFAULT_MAX_SECONDS
    ) -> None:
        count = processes if processes is not None else (os.cpu_count() or 1)
        if count < 1:
            raise ValueError(f"processes must be at least 1, not {count}")
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, not {max_seconds!r}")
        self._count = count
        self._max_seconds = max_seconds
        self._procs: list[BaseProcess] = []

    @property
    def pids(self) -> tuple[int, ...]:
        """Process ids of the hog processes that are running."""
        return tuple(p.pid for p in self._procs if p.pid is not None and p.is_alive())

    def start(self) -> Self:
        """Start the hog processes (daemons, so they die with this process)."""
        if self._procs:
            raise RuntimeError("this CpuHog is already running")
        context = multiprocessing.get_context("spawn")  # no inherited locks or threads
        for index in range(self._count):
            proc = context.Process(
                target=_spin, args=(self._max_seconds,), name=f"cpu-hog-{index}", daemon=True
            )
            proc.start()
            self._procs.append(proc)
        return self

    def stop(self) -> None:
        """Stop every hog process and wait for it to end."""
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join(timeout=10)
        self._procs = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CpuHog(processes={self._count}, running={len(self.pids)})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command beside a :class:`CpuHog`; return the command's exit code.

    Args:
        argv: ``[--processes N] [--max-seconds S] -- command [args...]``.

    Returns:
        The command's exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m failover.testing.cpu_hog",
        description="Run a command while busy-looping processes keep every core loaded.",
    )
    parser.add_argument("--processes", type=int, default=None, help="default: one per core")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    try:
        hog = CpuHog(processes=args.processes, max_seconds=args.max_seconds)
    except ValueError as exc:
        parser.error(str(exc))
    # Killed with SIGTERM, still stop the hog processes (the with block's exit does).
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    with hog:
        print(f"[cpu-hog] {hog!r} beside: {' '.join(command)}", file=sys.stderr, flush=True)
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
