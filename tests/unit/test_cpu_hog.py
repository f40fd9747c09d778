"""CpuHog: busy processes that start, keep running, and stop when told."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

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


def test_command_line_stops_its_hog_when_terminated(tmp_path) -> None:
    started = tmp_path / "started"
    wrapper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failover.testing.cpu_hog",
            "--processes",
            "2",
            "--",
            sys.executable,
            "-c",
            f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(600)",
        ]
    )
    try:
        give_up = time.monotonic() + 60
        while not started.exists():  # the command runs: the hog is up beside it
            assert time.monotonic() < give_up, "the command never started"
            assert wrapper.poll() is None, "the wrapper ended by itself"
            time.sleep(0.01)  # polling a condition, bounded above
        hogs = [
            p
            for p in psutil.Process(wrapper.pid).children()
            if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(hogs) == 2
        wrapper.terminate()
        assert wrapper.wait(timeout=60) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(hogs, timeout=60)
        assert alive == []
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        for child in psutil.Process().children(recursive=True):
            if "time.sleep(600)" in " ".join(child.cmdline()):
                child.kill()
