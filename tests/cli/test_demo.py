"""``failover demo``: the main job, with the real emulators and with directories."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from failover.testing.emulators import EmulatorProcess, redis_url

from .conftest import Invoke, run_module

EMULATORS = ("moto_server", "azurite_server", "fake_gcs_server")


FLEET_ROWS = (
    "fleet: writes and deletes by host A while {down} was down",
    "fleet: what {down} missed when host A was lost (as hints)",
    "fleet: repairs by host B (empty journal)",
    "fleet: writes by the lost host repaired by the other instance",
    "fleet: deletes by the lost host repaired",
    "fleet: hints left",
)


def _row(output: str, check: str) -> str:
    """The summary row for ``check``: its result and verdict, spaces collapsed."""
    for line in output.splitlines():
        if line.startswith("│ " + check):
            cells = [cell.strip() for cell in line.strip("│ ").split("│")]
            return " ".join(cells[1:])
    raise AssertionError(f"no summary row {check!r} in:\n{output}")


@pytest.mark.integration
@pytest.mark.usefixtures(*EMULATORS)  # the demo starts its own; these prove they exist
def test_demo_with_the_real_emulators_keeps_every_invariant(tmp_path: Path) -> None:
    # How long the demo takes is a figure, not a verdict (it runs for about 25 s on an
    # idle machine). The time limit only stops a demo that hangs, with room for a loaded
    # machine and still under pytest's own 300 s timeout.
    proc = run_module("demo", "--clouds", "emulators", env={"TMPDIR": str(tmp_path)}, timeout=240)
    output = proc.stdout
    assert proc.returncode == 0, output + proc.stderr
    assert "clouds: real emulators: moto (S3) as aws" in output
    assert "aws taken down: blackhole" in output
    assert _row(output, "clouds") == "emulators"
    assert _row(output, "objects written before the outage") == "300"
    assert _row(output, "application-visible errors") == "0 PASS"
    assert re.fullmatch(r"\d+\.\d\d s PASS", _row(output, "time until aws's breaker opened"))
    assert re.fullmatch(r"[1-9]\d* \(0 pending\) PASS", _row(output, "repairs made"))
    assert _row(output, "replicas identical") == "yes PASS"
    _assert_fleet_act(output, down="aws")
    assert "every invariant held" in output
    assert list(tmp_path.iterdir()) == []  # its temporary directory is gone


def _assert_fleet_act(output: str, *, down: str) -> None:
    """The fleet act's rows: host A's 12 actions, missed by ``down``, repaired by host B."""
    assert "fleet: host A lost with its journal; " + down + " comes back" in output
    rows = [_row(output, check.format(down=down)) for check in FLEET_ROWS]
    # Host A wrote 6 new objects, overwrote 3 of host B's 6 and deleted the other 3:
    # ``down`` missed all 12 and the two other clouds each kept a hint per action.
    assert rows == [
        "9 + 3 acknowledged PASS",
        "12 / 12 actions, 24 hints PASS",
        "12 (0 pending) PASS",
        "9 / 9 on every replica PASS",
        "3 / 3 on every replica PASS",
        "0 PASS",
    ]


def test_demo_with_directories(failover_cli: Invoke) -> None:
    result = failover_cli(
        "demo",
        "--clouds",
        "local",
        "--objects",
        "40",
        "--down",
        "gcp",
        "--outage-seconds",
        "1",
    )
    output = result.stdout
    assert result.exit_code == 0, output
    assert "clouds: three local directories as aws, azure and gcp" in output
    assert "gcp taken down: every call hangs" in output
    assert _row(output, "application-visible errors") == "0 PASS"
    assert _row(output, "replicas identical") == "yes PASS"
    assert _row(output, "acknowledged writes on every replica").endswith("PASS")
    _assert_fleet_act(output, down="gcp")
    assert "every invariant held" in output


def test_demo_shares_breakers_through_redis(
    failover_cli: Invoke, redis_server: EmulatorProcess
) -> None:
    url = redis_url(redis_server, namespace="cli-demo")
    args = ("--clouds", "local", "--objects", "20", "--down", "gcp", "--outage-seconds", "1")
    result = failover_cli("demo", *args, "--breaker-storage", url)
    output = result.stdout
    assert result.exit_code == 0, output
    assert "shared breakers act: hosts A and B keep their breakers in redis://" in output
    assert _row(output, "shared breaker: B saw gcp open after A's failures").startswith("yes (")
    assert _row(output, "shared breaker: B saw gcp open after A's failures").endswith("PASS")
    assert _row(output, "shared breaker: B's calls to gcp while it was open") == "0 PASS"
    assert "every invariant held" in output
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        assert client.keys("cli-demo*") == []  # the demo's namespace is removed
    finally:
        client.close()


def test_demo_without_breaker_storage_has_no_shared_act(failover_cli: Invoke) -> None:
    args = ("--clouds", "local", "--objects", "5", "--down", "aws", "--outage-seconds", "0.5")
    output = failover_cli("demo", *args).stdout
    assert "every invariant held" in output
    assert "shared breaker" not in output


def test_demo_never_echoes_a_bad_breaker_storage(failover_cli: Invoke) -> None:
    result = failover_cli("demo", "--breaker-storage", "memcached://:hunter2@cache")
    assert result.exit_code == 2
    assert "--breaker-storage: unknown scheme 'memcached'" in result.output
    assert "hunter2" not in result.output


def test_demo_rejects_an_unknown_cloud(failover_cli: Invoke) -> None:
    result = failover_cli("demo", "--down", "mars")
    assert result.exit_code == 2
    assert "--down must be one of aws, azure, gcp" in result.output


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _interrupt_after_the_outage_begins(
    tmp_path: Path, sig: int, clouds: str
) -> tuple[int, str, set[int]]:
    """Start a demo, send ``sig`` once its cloud is down; return (exit code, output, children)."""
    demo = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # As in a terminal, Ctrl-C raises KeyboardInterrupt: a test run started in
            # the background by a non-interactive shell inherits SIGINT ignored, and
            # Python then leaves it ignored in its children.
            "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "sys.argv[0] = 'failover'; runpy.run_module('failover.cli', run_name='__main__')",
            "demo",
            "--clouds",
            clouds,
            "--objects",
            "10",
            "--outage-seconds",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert demo.stdout is not None
    children: set[int] = set()
    seen: list[str] = []
    down = False
    try:
        for line in demo.stdout:  # until the cloud is down: everything has started
            seen.append(line)
            with contextlib.suppress(psutil.NoSuchProcess):  # it ended: reported below
                children |= {c.pid for c in psutil.Process(demo.pid).children(recursive=True)}
            if "taken down" in line:
                down = True
                break
        # The outage lasts 60 s, so the demo must still be running: if it ended on its
        # own, that is the failure to report, not a signal sent to nobody.
        if not down or demo.poll() is not None:
            seen.append(demo.stdout.read())
            code = demo.wait(timeout=60)
            pytest.fail(
                f"the demo exited on its own (code {code}) before it was sent "
                f"{signal.Signals(sig).name}:\n{''.join(seen)}"
            )
        demo.send_signal(sig)
        rest = demo.stdout.read()
        code = demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    return code, rest, children


@pytest.mark.integration
@pytest.mark.usefixtures(*EMULATORS)
def test_ctrl_c_stops_the_emulators_and_removes_the_files(tmp_path: Path) -> None:
    code, rest, children = _interrupt_after_the_outage_begins(tmp_path, signal.SIGINT, "emulators")
    assert len(children) >= 3  # moto, azurite and fake-gcs-server were running
    assert code == 130, rest
    assert "interrupted" in rest
    assert [pid for pid in children if _alive(pid)] == []
    assert list(tmp_path.iterdir()) == []


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    code, rest, _ = _interrupt_after_the_outage_begins(tmp_path, signal.SIGTERM, "local")
    assert code == 130, rest
    assert "interrupted" in rest
    assert list(tmp_path.iterdir()) == []
