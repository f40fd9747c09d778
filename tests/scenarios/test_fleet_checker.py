"""A fleet of writers, one cloud blackholed, writers killed: check the whole history.

Jepsen style: three real emulators (moto, azurite, fake-gcs-server) behind TCP fault
proxies; several writer processes (``fleet_writer.py``) put, delete and read a few keys
concurrently, each logging every operation's invocation and completion. A schedule
drawn from one master seed blackholes one cloud for a stretch, then restores it
(mid-run, or only once the writers are stopped), and kills writers with SIGKILL at
random moments; they are restarted on the same journal, except once on a new, empty
one (the host was lost with its disk). At the end every
writer is stopped, every proxy restored, and one fresh Storage (a new journal: it knows
nothing) runs ``repair()`` once. What each replica holds is then read directly, and the
history plus those final states go through :func:`failover.testing.history.check`.

Replay a run with ``FAILOVER_FLEET_SEED=<seed>`` (the seed is printed first and is in
every assertion message). The schedule is reproducible; the interleaving of the
processes is not, so a replay explores the same faults, not the same history.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from failover import NotFoundError, Storage
from failover.errors import FailoverError
from failover.testing import FaultProxy
from failover.testing.history import OUTCOMES, ReplicaState, check, read_history

from .conftest import ProxiedFactory
from .fleet_writer import value_of

pytestmark = [pytest.mark.integration, pytest.mark.scenario, pytest.mark.timeout(150)]

WRITER = Path(__file__).with_name("fleet_writer.py")
CLOUDS = (("s3", "aws"), ("azure", "azure"), ("gcs", "gcp"))
WRITERS = 3
KEYS = 6
PREFIX = "fleet"
# The schedule: faults and kills happen in [FIRST, LAST_FAULT]; when the cloud heals
# mid-run, the calm tail after it lets the writers' background repairers (every 0.5 s)
# catch up before they are stopped.
SCHEDULE_SECONDS = 26.0
FIRST = 2.0
LAST_FAULT = 20.0
# A writer stops by itself after this long (if the harness itself were killed).
WRITER_SECONDS = SCHEDULE_SECONDS + 30
# SIGTERM: the operation in progress (deadline 2 s) plus close() draining (2 s more).
STOP_SECONDS = 15.0
DELETE_MARKER = "failover_deleted"


@dataclass
class Slot:
    """One writer position: a process incarnation at a time, on a journal file."""

    index: int
    journal: Path
    process: subprocess.Popen[bytes] | None = None
    incarnations: int = 0
    logs: list[Path] = field(default_factory=list)
    journals: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One scheduled action, ``at`` seconds after the schedule starts."""

    at: float
    action: str  # "blackhole", "restore", "kill", "kill-new-disk"
    target: str | int


def _master_seed() -> int:
    text = os.environ.get("FAILOVER_FLEET_SEED", "").strip()
    return int(text) if text else random.SystemRandom().randrange(2**32)


def _schedule(rng: random.Random) -> list[Step]:
    """One blackhole stretch on one cloud, and 3-5 kills, one of them losing its disk.

    Half the seeds heal the cloud mid-run (a calm tail follows, in which the writers'
    own repairers catch up); the other half keep it down until the writers are stopped,
    so what it missed can only be completed by the final, fresh instance's repair().
    """
    victim = rng.choice([name for _, name in CLOUDS])
    down = rng.uniform(FIRST + 1, 8.0)
    heals_mid_run = rng.random() < 0.5
    up = down + rng.uniform(6.0, 10.0) if heals_mid_run else None
    steps = [Step(down, "blackhole", victim)]
    if up is not None:
        steps.append(Step(up, "restore", victim))
    kills = sorted(rng.uniform(FIRST, LAST_FAULT) for _ in range(rng.randint(3, 5)))
    # The host lost with its disk dies during the outage, when its journal holds what
    # the blackholed cloud missed: only the clouds themselves can still know it.
    lost_disk = rng.uniform(down + 1.0, (up or LAST_FAULT) - 0.5)
    steps += [Step(at, "kill", rng.randrange(WRITERS)) for at in kills]
    steps.append(Step(lost_disk, "kill-new-disk", rng.randrange(WRITERS)))
    return sorted(steps, key=lambda s: s.at)


def _start(slot: Slot, urls: list[str], tmp_path: Path, seed: int) -> None:
    slot.incarnations += 1
    name = f"w{slot.index}.{slot.incarnations}"
    log = tmp_path / f"{name}.jsonl"
    slot.logs.append(log)
    if slot.journal not in slot.journals:
        slot.journals.append(slot.journal)
    with (tmp_path / f"{name}.out").open("wb") as out:
        slot.process = subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                "--journal",
                str(slot.journal),
                "--log",
                str(log),
                "--seed",
                str(seed),
                "--keys",
                str(KEYS),
                "--prefix",
                PREFIX,
                "--seconds",
                str(WRITER_SECONDS),
                *urls,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _writing(log: Path) -> bool:
    """True if the last event in a writer's log is the invocation of a put or delete."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 1024))
            tail = f.read()
    except FileNotFoundError:
        return False
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    last = lines[-1]
    return b'"event":"invoke"' in last and b'"kind":"get"' not in last


def _kill(slot: Slot, *, mid_write_within: float) -> bool:
    """SIGKILL a writer, preferably while a put or delete of it is in flight.

    Polls its log (bounded) for an invocation without its completion yet; kills anyway
    when ``mid_write_within`` seconds pass. Returns True if it caught a write in flight.
    """
    assert slot.process is not None
    give_up = time.monotonic() + mid_write_within
    caught = False
    while time.monotonic() < give_up and slot.process.poll() is None:
        if _writing(slot.logs[-1]):
            caught = True
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            slot.process.wait(timeout=0.002)  # a bounded poll of the log, not a delay
    slot.process.kill()
    slot.process.wait(timeout=30)
    return caught


def _replica_state(backend: object, key: str) -> ReplicaState:
    """What one replica holds: None if absent or a delete marker, else the value id."""
    for attempt in range(3):  # a connection closed by the healed proxy may fail once
        try:
            fetched = backend.get(key)  # type: ignore[attr-defined]
        except NotFoundError:
            return None
        except FailoverError:
            if attempt == 2:
                raise
            continue
        metadata = {k.lower(): v for k, v in (fetched.info.metadata or {}).items()}
        if DELETE_MARKER in metadata:
            return None
        try:
            return value_of(fetched.data)
        except ValueError:
            return f"<unparseable {fetched.data[:40]!r}>"
    raise AssertionError("unreachable")


def _output_tail(slot: Slot, tmp_path: Path) -> str:
    """The last lines a writer incarnation printed (for failure messages)."""
    out = tmp_path / f"w{slot.index}.{slot.incarnations}.out"
    return out.read_text(errors="replace")[-1500:] if out.exists() else ""


def _pending_keys(urls: list[str], journal: Path) -> list[tuple[str, str]]:
    """(backend, key) rows a writer's journal still holds (diagnostics only)."""
    with Storage.from_urls(urls, journal=str(journal), repair_interval_seconds=0) as store:
        return sorted({(a.backend, a.key) for a in store._journal.pending()})  # type: ignore[union-attr]


def test_fleet_history_is_consistent(proxied_cloud: ProxiedFactory, tmp_path: Path) -> None:
    seed = _master_seed()
    print(f"\n[fleet] master seed {seed} (replay: FAILOVER_FLEET_SEED={seed})")
    tag = f"[seed {seed}]"
    rng = random.Random(seed)
    proxies: dict[str, FaultProxy] = {}
    urls: list[str] = []
    for kind, name in CLOUDS:
        url, proxies[name] = proxied_cloud(kind, name)  # type: ignore[arg-type]
        urls.append(url)
    steps = _schedule(rng)
    print(f"[fleet] schedule: {', '.join(f'{s.at:.1f}s {s.action} {s.target}' for s in steps)}")

    slots = [Slot(i, tmp_path / f"journal-{i}.sqlite") for i in range(WRITERS)]
    problems: list[str] = []
    kills = lost_disks = faults = mid_write = 0
    started = time.monotonic()
    try:
        for slot in slots:
            _start(slot, urls, tmp_path, rng.randrange(2**31))
        for step in steps:
            # Pacing the schedule, not waiting for a condition.
            time.sleep(max(0.0, started + step.at - time.monotonic()))
            for slot in slots:
                assert slot.process is not None
                if slot.process.poll() is not None:
                    problems.append(
                        f"writer w{slot.index}.{slot.incarnations} exited by itself "
                        f"(code {slot.process.returncode}): {_output_tail(slot, tmp_path)}"
                    )
                    _start(slot, urls, tmp_path, rng.randrange(2**31))
            if step.action == "blackhole":
                proxies[str(step.target)].blackhole()
                faults += 1
            elif step.action == "restore":
                proxies[str(step.target)].pass_through()
            else:
                slot = slots[int(step.target)]
                mid_write += _kill(slot, mid_write_within=1.0)
                kills += 1
                if step.action == "kill-new-disk":
                    lost_disks += 1
                    slot.journal = tmp_path / f"journal-{slot.index}-disk{lost_disks}.sqlite"
                # Restarted at once: the schedule's next step is the pause before it.
                _start(slot, urls, tmp_path, rng.randrange(2**31))
        time.sleep(max(0.0, started + SCHEDULE_SECONDS - time.monotonic()))
    finally:
        for slot in slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)
        for slot in slots:
            if slot.process is None:
                continue
            try:
                code = slot.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait(timeout=30)
                problems.append(f"writer w{slot.index} ignored SIGTERM for {STOP_SECONDS} s")
                continue
            if code != 0:
                problems.append(
                    f"writer w{slot.index}.{slot.incarnations} exited with {code}: "
                    f"{_output_tail(slot, tmp_path)}"
                )
        for proxy in proxies.values():
            proxy.pass_through()
    run_seconds = time.monotonic() - started

    keys = [f"{PREFIX}/k{i}" for i in range(KEYS)]
    with Storage.from_urls(
        urls,
        journal=str(tmp_path / "final.sqlite"),
        timeout_seconds=0.5,
        deadline_seconds=5,
        repair_interval_seconds=0,
    ) as store:
        assert store.flush(), tag
        report = store.repair()
        final = {
            key: {name: _replica_state(backend, key) for name, backend in store.backends.items()}
            for key in keys
        }

    history = read_history(log for slot in slots for log in slot.logs)
    violations = check(history, final)

    # Diagnostics: what the surviving journals (not the lost disks) still wanted repaired.
    leftovers = {
        journal.name: pending
        for slot in slots
        for journal in slot.journals[-1:]
        if (pending := _pending_keys(urls, journal))
    }
    outcomes = Counter(op.outcome for op in history)
    kinds = Counter(op.kind for op in history)
    cut = sum(1 for op in history if op.completed_ns is None)
    processes = sum(slot.incarnations for slot in slots)
    print(
        f"[fleet] seed {seed}: {processes} processes, {len(history)} operations "
        f"({', '.join(f'{k} {kinds[k]}' for k in ('put', 'delete', 'get'))}; "
        f"{', '.join(f'{o} {outcomes[o]}' for o in OUTCOMES)}; {cut} cut by a kill), "
        f"faults injected {faults}, kills {kills} ({mid_write} mid-write, {lost_disks} with "
        f"the disk lost), "
        f"final repair {report}, violations {len(violations)} in {run_seconds:.1f} s"
    )
    for key, replicas in final.items():
        print(f"[fleet]   {key}: {replicas}")
    if leftovers:
        # The final instance never reads these journals: hints in the clouds must cover
        # what they hold (rows already completed through a hint are still listed).
        print(f"[fleet] rows left in the writers' last journals: {leftovers}")
    for violation in violations:
        print(f"[fleet] VIOLATION {violation}")

    assert outcomes["ok"] > 0, f"{tag} no operation succeeded: the harness did not run"
    assert not problems, f"{tag} writer problems: {problems}"
    shown = "\n".join(str(v) for v in violations[:20])
    assert not violations, f"{tag} {len(violations)} violations:\n{shown}"
