"""CpuHog: busy processes that start, keep running, and stop when told."""

from __future__ import annotations

import sys

import psutil
import pytest

from failover.testing.cpu_hog import CpuHog, main


def test_hog_runs_the_processes_it_was_asked_for_and_stops_them() -> None:
    with CpuHog(processes=2, max_seconds=60) as hog:
        pids = hog.pids
        assert len(pids) == 2
        for pid in pids:
            assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    assert hog.pids == ()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_hog_processes_stop_by_themselves_after_max_seconds() -> None:
    hog = CpuHog(processes=1, max_seconds=0.01).start()
    try:
        (proc,) = hog._procs
        proc.join(timeout=60)  # ends on its own: nobody killed it
        assert proc.exitcode == 0
    finally:
        hog.stop()


@pytest.mark.parametrize(
    ("options", "message"), [({"processes": 0}, "processes"), ({"max_seconds": 0}, "max_seconds")]
)
def test_bad_options_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CpuHog(**options)  # type: ignore[arg-type]


def test_command_line_returns_the_commands_exit_code() -> None:
    code = main(["--processes", "1", "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert code == 3


def test_command_line_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--processes", "1"])
    assert info.value.code == 2
    assert "command" in capsys.readouterr().err
