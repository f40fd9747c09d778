"""Process plumbing shared by the emulator launchers: ports, readiness, clean stops."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "EmulatorError",
    "EmulatorProcess",
    "free_port",
    "start_process",
    "wait_until",
]


class EmulatorError(RuntimeError):
    """An emulator is not installed, did not start, or did not answer in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout_seconds: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    poll_seconds: float = 0.05,
) -> None:
    """Poll ``ready`` until it returns True, the process dies, or the time runs out.

    Raises:
        EmulatorError: if the process exited or ``timeout_seconds`` passed.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        if process is not None and process.poll() is not None:
            raise EmulatorError(f"{what} exited with code {process.returncode} while starting")
        with contextlib.suppress(OSError):
            if ready():
                return
        if time.monotonic() >= deadline:
            raise EmulatorError(f"{what} did not answer within {timeout_seconds:.0f} s")
        time.sleep(poll_seconds)


@dataclass
class EmulatorProcess:
    """A started emulator: where it listens and how to stop it.

    Attributes:
        kind: ``"s3"``, ``"azure"`` or ``"gcs"``.
        host: listening address (always loopback).
        port: listening port.
        process: the child process (``None`` for an in-process server).
        env: environment variables a client of this emulator needs.
        started_seconds: how long start-up took until the emulator answered.
    """

    kind: str
    host: str
    port: int
    process: subprocess.Popen[bytes] | None
    env: dict[str, str] = field(default_factory=dict)
    started_seconds: float = 0.0
    _stop_hook: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the emulator."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the emulator process is alive."""
        if self.process is None:
            return self._stop_hook is not None
        return self.process.poll() is None

    def stop(self, *, timeout_seconds: float = 10.0) -> None:
        """Stop the emulator (SIGTERM, then SIGKILL) and wait for it to exit. Idempotent."""
        if self._stop_hook is not None:
            hook, self._stop_hook = self._stop_hook, None
            hook()
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=timeout_seconds)

    def kill(self) -> None:
        """Kill the emulator abruptly (SIGKILL), as an outage would, and reap it."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            self.stop()
            return
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def start_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group with all output discarded.

    Output goes to DEVNULL on purpose: an emulator whose pipes nobody drains blocks
    once the pipe buffer fills (fake-gcs-server hangs after a few hundred requests).
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
