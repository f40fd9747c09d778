"""``failover demo``: three local clouds, one of them lost, nothing lost.

The demo needs no cloud account. It starts three stand-in clouds on this machine: the
real emulators (moto for S3, azurite for Azure Blob, fake-gcs-server for Google Cloud
Storage) when they are installed, otherwise three local directories. Then it:

1. writes ``objects`` objects with the ``quorum`` write policy;
2. keeps an application busy reading (bytes verified) and writing, with a live view of
   every backend (breaker, score, latency, calls, errors) and of the application;
3. takes one cloud down: a TCP blackhole in front of its emulator (requests vanish,
   nothing answers), or, with directories, calls that hang until they time out;
4. brings it back, waits for its breaker to close, repairs, and checks that every
   replica holds every acknowledged write, byte for byte;
5. the fleet act: two more instances, host A and host B, each with its own journal.
   While the same cloud is down again, host A writes and deletes a few objects, then
   its host is lost (closed, journal deleted). The cloud comes back and host B, whose
   journal knows nothing of that work, repairs it from the hints the other clouds
   kept; each cloud is then read directly, and no hint may be left;
6. with ``--breaker-storage redis://…`` only, the shared breakers act: hosts A and B
   keep their breakers in that Redis (under a namespace of the demo's own, removed at
   the end); the cloud goes down while host A writes until its breaker opens, and host
   B must see that breaker open and send the cloud no call.

It ends with a summary table and exits 0 only if every invariant held. Everything it
started (emulators, proxies, temporary directories, environment variables) is stopped
or removed on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib.util
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from failover._storage import Storage
from failover.backends import Backend, from_url
from failover.breaker_storage import BreakerStorageURL, parse_breaker_storage
from failover.config import Settings
from failover.drill import (
    BreakerTimeline,
    FleetDrill,
    MeteredBackend,
    SharedBreakerDrill,
    check_replicas,
    rehearse_lost_host,
    rehearse_shared_breaker,
    settle_repairs,
)
from failover.errors import ConfigError, FailoverError
from failover.events import EventHook
from failover.replication.hints import HINT_PREFIX
from failover.testing import FaultProxy, FaultyBackend
from failover.testing.emulators import (
    EmulatorError,
    EmulatorKind,
    EmulatorProcess,
    create_bucket,
    start,
    start_behind_proxy,
)

__all__ = [
    "CLOUDS",
    "CloudMode",
    "DemoClouds",
    "DemoOptions",
    "DemoResult",
    "SummaryRow",
    "run_demo",
    "summary_table",
]

#: The three stand-in clouds, by backend name.
CLOUDS: tuple[str, ...] = ("aws", "azure", "gcp")
#: ``auto`` uses the emulators when installed, else directories.
CloudMode = Literal["auto", "emulators", "local"]

_KIND: dict[str, EmulatorKind] = {"aws": "s3", "azure": "azure", "gcp": "gcs"}
_EMULATOR_NAME = {"aws": "moto", "azure": "azurite", "gcp": "fake-gcs-server"}
_SDK_MODULES = ("boto3", "azure.storage.blob", "google.cloud.storage")
_BUCKET = "failover-demo"
_PREFIX = "demo/"
#: Objects host B writes, and host A writes anew, in the fleet act.
_FLEET_OBJECTS = 6
_STATE_STYLE = {"closed": "green", "half-open": "yellow", "open": "bold red"}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How big and how brisk the demo is.

    Attributes:
        objects: objects written before the outage.
        clouds: ``auto``, ``emulators`` (fail if they are missing) or ``local``.
        down: the cloud to take down (``aws``, ``azure`` or ``gcp``).
        outage_seconds: how long that cloud stays down.
        threads: application threads reading and writing during the outage.
        ops_per_second: the application's pace (all threads together).
        timeout_seconds: one attempt's timeout (how long a blackholed call waits).
        breaker_fail_max: consecutive failures that open a breaker.
        breaker_reset_seconds: open breakers admit a trial after this long.
        breaker_storage: a ``redis://`` URL: adds the shared breakers act (``None``,
            the default, leaves it out).
    """

    objects: int = 300
    clouds: CloudMode = "auto"
    down: str = "aws"
    outage_seconds: float = 5.0
    threads: int = 4
    ops_per_second: float = 80.0
    timeout_seconds: float = 1.0
    breaker_fail_max: int = 3
    breaker_reset_seconds: float = 1.0
    breaker_storage: str | None = None

    def __post_init__(self) -> None:
        if self.down not in CLOUDS:
            raise ConfigError(f"--down must be one of {', '.join(CLOUDS)}, not {self.down!r}")
        if self.objects < 1:
            raise ConfigError(f"--objects must be at least 1, got {self.objects}")
        if self.outage_seconds <= 0:
            raise ConfigError(f"--outage-seconds must be > 0, got {self.outage_seconds}")
        if self.clouds not in ("auto", "emulators", "local"):
            raise ConfigError(f"--clouds must be auto, emulators or local, not {self.clouds!r}")
        self.shared_breakers()  # validates the URL (its errors never quote a password)

    def shared_breakers(self) -> BreakerStorageURL | None:
        """The parsed ``breaker_storage``, or ``None`` without one.

        Raises:
            ConfigError: it is not ``local`` nor a ``redis://`` URL.
        """
        if self.breaker_storage is None:
            return None
        try:
            return parse_breaker_storage(self.breaker_storage)
        except ConfigError as exc:
            raise ConfigError(f"--breaker-storage: {exc}") from exc


class DemoClouds:
    """Three stand-in clouds on this machine; one of them can be taken down and back.

    Use as a context manager: on exit every emulator and proxy is stopped, environment
    variables set for the emulators are restored and the directory is removed.

    Args:
        mode: ``auto``, ``emulators`` or ``local``.
        down: the cloud that :meth:`take_down` takes down.
        timeout_seconds: how long a call to the downed cloud hangs (directories only;
            with emulators the client's own timeout decides).
    """

    def __init__(self, *, mode: CloudMode, down: str, timeout_seconds: float) -> None:
        self.mode = mode
        self.down = down
        self.timeout_seconds = timeout_seconds
        self.workdir = Path(tempfile.mkdtemp(prefix="failover-demo-"))
        self.using_emulators = False
        self.fallback_reason: str | None = None
        self.backends: list[MeteredBackend] = []
        self.urls: list[str] = []
        self._emulators: list[EmulatorProcess] = []
        self._proxy: FaultProxy | None = None
        # Directories: every client of the downed cloud has a fault injector.
        self._faulty: list[FaultyBackend] = []
        self._saved_env: dict[str, str | None] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
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

    def start(self) -> None:
        """Start the emulators (or fall back to directories) and build the backends.

        Raises:
            EmulatorError: ``mode="emulators"`` and they could not start.
        """
        if self.mode != "local":
            try:
                self._start_emulators()
            except (EmulatorError, ConfigError) as exc:
                self._stop_emulators()
                if self.mode == "emulators":
                    raise
                self.fallback_reason = str(exc)
            else:
                self.using_emulators = True
                return
        self._start_directories()

    def close(self) -> None:
        """Stop what was started and remove the work directory. Idempotent."""
        for faulty in self._faulty:
            faulty.heal()
        self._stop_emulators()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what the demo shows -----------------------------------------------------------

    @property
    def description(self) -> str:
        """One line saying what the three clouds are."""
        if self.using_emulators:
            return (
                "real emulators: moto (S3) as aws, azurite (Azure Blob) as azure, "
                "fake-gcs-server (Cloud Storage) as gcp"
            )
        why = f" (emulators not available: {self.fallback_reason})" if self.fallback_reason else ""
        return f"three local directories as aws, azure and gcp{why}"

    @property
    def outage(self) -> str:
        """How :meth:`take_down` takes the cloud down."""
        if self.using_emulators:
            return (
                f"blackhole: a TCP proxy in front of {_EMULATOR_NAME[self.down]} swallows "
                "every request"
            )
        return "every call hangs until the client's timeout"

    def take_down(self) -> None:
        """Take the cloud named ``down`` off the network (blackhole) or make it hang.

        With directories, this reaches every client built so far (:attr:`backends` and
        those of :meth:`connect`).
        """
        if self._proxy is not None:
            self._proxy.blackhole()
        for faulty in self._faulty:
            faulty.set(hang=True, hang_seconds=self.timeout_seconds)

    def bring_back(self) -> None:
        """Undo :meth:`take_down`. Harmless when the cloud is up."""
        if self._proxy is not None:
            self._proxy.pass_through()
        for faulty in self._faulty:
            faulty.heal()

    def connect(self) -> list[Backend]:
        """New clients of the three clouds, as another host would have (caller closes).

        :meth:`take_down` reaches them as it reaches :attr:`backends`.
        """
        built: list[Backend] = []
        try:
            for name, url in zip(CLOUDS, self.urls, strict=True):
                backend = from_url(url, timeout_seconds=self.timeout_seconds)
                if name == self.down and self._proxy is None:
                    backend = self._wrap_downed(backend)
                built.append(backend)
        except BaseException:
            for backend in built:
                backend.close()
            raise
        return built

    # -- internals -------------------------------------------------------------------

    def _start_emulators(self) -> None:
        missing = [m for m in _SDK_MODULES if not _importable(m)]
        if missing:
            raise EmulatorError(
                f"{', '.join(missing)} not installed (pip install 'failover[all,emulators]')"
            )
        with cf.ThreadPoolExecutor(max_workers=len(CLOUDS)) as pool:
            futures = {name: pool.submit(self._start_one, name) for name in CLOUDS}
            # Wait for all of them, so that none is left running if another failed.
            cf.wait(futures.values())
            results = {}
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except (EmulatorError, ConfigError, OSError) as exc:
                    raise EmulatorError(f"{_EMULATOR_NAME[name]}: {exc}") from exc
        for emulator, _url in results.values():
            self._set_env(emulator.env)
        for name in CLOUDS:
            _emulator, url = results[name]
            self.urls.append(url)
            self.backends.append(
                MeteredBackend(from_url(url, timeout_seconds=self.timeout_seconds))
            )

    def _start_one(self, name: str) -> tuple[EmulatorProcess, str]:
        kind = _KIND[name]
        if name == self.down:
            emulator, proxy = start_behind_proxy(kind)
            self._proxy = proxy
            self._emulators.append(emulator)
            return emulator, create_bucket(emulator, _BUCKET, endpoint=proxy.endpoint, name=name)
        emulator = start(kind)
        self._emulators.append(emulator)
        return emulator, create_bucket(emulator, _BUCKET, name=name)

    def _stop_emulators(self) -> None:
        for backend in self.backends:
            with contextlib.suppress(Exception):
                backend.close()
        if self._proxy is not None:
            with contextlib.suppress(RuntimeError):
                self._proxy.stop()
            self._proxy = None
        while self._emulators:
            self._emulators.pop().stop()

    def _start_directories(self) -> None:
        self.backends = []
        self.urls = []
        for name in CLOUDS:
            root = self.workdir / name
            root.mkdir()
            self.urls.append(f"file://{root}?name={name}")
            backend: Backend = from_url(self.urls[-1])
            if name == self.down:
                backend = self._wrap_downed(backend)
            self.backends.append(MeteredBackend(backend))

    def _wrap_downed(self, backend: Backend) -> FaultyBackend:
        faulty = FaultyBackend(backend)
        self._faulty.append(faulty)
        return faulty

    def _set_env(self, env: dict[str, str]) -> None:
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# -- the application and its live view -----------------------------------------------------


@dataclass
class _AppStats:
    """What the application saw (thread-safe through ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reads: int = 0
    writes: int = 0
    errors: int = 0
    last_error: str = ""
    expected: dict[str, bytes] = field(default_factory=dict)

    def record(self, *, read: bool, error: str | None = None) -> None:
        with self.lock:
            if read:
                self.reads += 1
            else:
                self.writes += 1
            if error is not None:
                self.errors += 1
                self.last_error = error


class _Application:
    """Threads that read (verifying bytes) and write new objects at a steady pace."""

    def __init__(
        self, store: Storage, stats: _AppStats, *, threads: int, ops_per_second: float
    ) -> None:
        self._store = store
        self._stats = stats
        self._stop = threading.Event()
        self._pause = threads / ops_per_second
        self._threads = [
            threading.Thread(
                target=self._work, args=(i,), name=f"failover-demo-app-{i}", daemon=True
            )
            for i in range(threads)
        ]
        self._count = threads

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _work(self, index: int) -> None:
        rng = random.Random(index)  # noqa: S311 - demo traffic, not secrets
        with self._stats.lock:
            # Each thread reads only keys it owns, so a read has exactly one right answer.
            own = [
                k for i, k in enumerate(sorted(self._stats.expected)) if i % self._count == index
            ]
        written = 0
        while not self._stop.is_set():
            if own and rng.random() < 0.75:
                key = rng.choice(own)
                try:
                    data = self._store.get(key)
                except (FailoverError, OSError) as exc:
                    self._stats.record(read=True, error=f"get {key}: {type(exc).__name__}")
                else:
                    with self._stats.lock:
                        wanted = self._stats.expected[key]
                    ok = data == wanted
                    self._stats.record(read=True, error=None if ok else f"get {key}: wrong bytes")
            else:
                key = f"{_PREFIX}live/{index}/{written:05d}"
                written += 1
                data = rng.randbytes(rng.randint(256, 4096))
                try:
                    self._store.put(key, data)
                except (FailoverError, OSError) as exc:
                    self._stats.record(read=False, error=f"put {key}: {type(exc).__name__}")
                else:
                    with self._stats.lock:
                        self._stats.expected[key] = data
                    self._stats.record(read=False)
                    own.append(key)
            self._stop.wait(self._pause)


class _Dashboard:
    """The live view: one row per cloud, then the application's counters."""

    def __init__(
        self, store: Storage, clouds: DemoClouds, stats: _AppStats, started: float
    ) -> None:
        self.store = store
        self.clouds = clouds
        self.stats = stats
        self.started = started
        self.phase = "starting"
        self.down = False

    def __rich__(self) -> RenderableType:
        elapsed = time.monotonic() - self.started
        heading = Text.assemble(f"t={elapsed:4.1f} s  ", Text.from_markup(self.phase))
        table = Table(expand=False)
        table.add_column("cloud")
        table.add_column("network")
        table.add_column("breaker")
        table.add_column("score", justify="right")
        table.add_column("latency", justify="right")
        table.add_column("calls", justify="right")
        table.add_column("errors", justify="right")
        health = self.store.health()
        for backend in self.clouds.backends:
            h = health[backend.name]
            is_down = self.down and backend.name == self.clouds.down
            table.add_row(
                backend.name,
                Text("DOWN", "bold red") if is_down else Text("up", "green"),
                Text(h.state, _STATE_STYLE[h.state]),
                f"{h.score:.2f}",
                f"{h.latency_ms:.0f} ms",
                str(backend.ops),
                Text(str(backend.errors), "red" if backend.errors else ""),
            )
        with self.stats.lock:
            reads, writes, errors = self.stats.reads, self.stats.writes, self.stats.errors
        app = Text.assemble(
            "application: ",
            (f"{reads + writes}", "bold"),
            f" calls ({reads} reads, {writes} writes), ",
            (f"{errors} errors", "bold red" if errors else "bold green"),
        )
        return Group(heading, table, app)


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the demo's summary.

    Attributes:
        check: what was measured.
        result: its value, as shown.
        passed: whether the invariant held (``None`` for information only).
    """

    check: str
    result: str
    passed: bool | None = None


@dataclass(frozen=True, slots=True)
class DemoResult:
    """The demo's outcome.

    Attributes:
        rows: the summary table.
        seconds: how long the demo took, start to finish.
        emulators: whether the real emulators were used.
    """

    rows: tuple[SummaryRow, ...]
    seconds: float
    emulators: bool

    @property
    def passed(self) -> bool:
        """True when every invariant held."""
        return all(row.passed is not False for row in self.rows)


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Run the whole demo, printing as it goes; return the summary.

    Args:
        options: size and pace of the demo.
        console: where to print (the live view needs a terminal; elsewhere only the
            final state and the summary are printed).

    Raises:
        EmulatorError: ``clouds="emulators"`` and they could not start.
        KeyboardInterrupt: interrupted; everything started was stopped first.
    """
    began = time.monotonic()
    console.print(
        Panel.fit(
            "[bold]failover demo[/]: three clouds, one of them lost, nothing lost",
            border_style="cyan",
        )
    )
    console.print("starting the clouds…")
    with DemoClouds(
        mode=options.clouds, down=options.down, timeout_seconds=options.timeout_seconds
    ) as clouds:
        console.print(f"clouds: {escape(clouds.description)}")
        return _Run(options, console, clouds, began).run()


class _Run:
    """One demo run over started clouds."""

    def __init__(
        self, options: DemoOptions, console: Console, clouds: DemoClouds, began: float
    ) -> None:
        self.options = options
        self.console = console
        self.clouds = clouds
        self.began = began
        self.stats = _AppStats()
        self.timeline = BreakerTimeline()
        self.settings = Settings.from_urls(
            clouds.urls,
            write_policy="quorum",
            read_policy="health",
            timeout_seconds=options.timeout_seconds,
            deadline_seconds=10,
            retry_attempts=2,
            breaker_fail_max=options.breaker_fail_max,
            breaker_reset_seconds=options.breaker_reset_seconds,
            repair_interval_seconds=0,
            journal=str(clouds.workdir / "journal.sqlite"),
        )

    def run(self) -> DemoResult:
        with Storage(self.clouds.backends, settings=self.settings, hooks=[self.timeline]) as store:
            self._seed(store)
            outage = self._outage(store)
            rows = self._finish(store, outage)
        rows += self._fleet()
        shared = self.options.shared_breakers()
        if shared is not None:
            rows += self._shared_breakers(shared)
        return DemoResult(
            rows=rows, seconds=time.monotonic() - self.began, emulators=self.clouds.using_emulators
        )

    def _seed(self, store: Storage) -> None:
        rng = random.Random(0)  # noqa: S311 - demo data, not secrets
        items = [
            (f"{_PREFIX}seed/{i:05d}", rng.randbytes(rng.randint(256, 4096)))
            for i in range(self.options.objects)
        ]

        def put(item: tuple[str, bytes]) -> None:
            key, data = item
            try:
                store.put(key, data)
            except (FailoverError, OSError) as exc:
                self.stats.record(read=False, error=f"put {key}: {type(exc).__name__}")
                return
            with self.stats.lock:
                self.stats.expected[key] = data
            self.stats.record(read=False)

        progress = Progress(
            TextColumn("writing objects with quorum"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        with progress, cf.ThreadPoolExecutor(max_workers=4) as pool:
            task = progress.add_task("seed", total=len(items))
            for _ in pool.map(put, items):
                progress.advance(task)

    def _outage(self, store: Storage) -> dict[str, float | None]:
        options = self.options
        app = _Application(
            store, self.stats, threads=options.threads, ops_per_second=options.ops_per_second
        )
        board = _Dashboard(store, self.clouds, self.stats, self.began)
        victim = options.down
        measured: dict[str, float | None] = {}
        say = self.console.print
        try:
            with Live(board, console=self.console, refresh_per_second=8, transient=False):
                board.phase = "all clouds up"
                app.start()
                try:
                    time.sleep(1.0)
                    self.clouds.take_down()
                    down_at = time.monotonic()
                    board.down = True
                    board.phase = f"[bold red]{victim} is DOWN[/] ({self.clouds.outage})"
                    say(f"[bold red]✗[/] {victim} taken down: {self.clouds.outage}")
                    time.sleep(options.outage_seconds)
                    # Stay down until the client has noticed (its breaker opened), however
                    # short the outage asked for, so the rest of the run means something.
                    _wait_for(
                        lambda: self.timeline.first(victim, "open", since=down_at) is not None,
                        timeout_seconds=options.timeout_seconds * 10,
                    )
                    measured["opened"] = self.timeline.first(victim, "open", since=down_at)
                    self.clouds.bring_back()
                    up_at = time.monotonic()
                    board.down = False
                    board.phase = f"{victim} is back; waiting for its breaker to close"
                    say(f"[bold green]✓[/] {victim} is back after {up_at - down_at:.1f} s")
                    limit = options.breaker_reset_seconds + options.timeout_seconds * 4 + 10
                    if _wait_for(
                        lambda: store.health()[victim].state == "closed", timeout_seconds=limit
                    ):
                        closed = self.timeline.first(victim, "closed", since=up_at)
                        measured["closed"] = closed if closed is not None else 0.0
                    board.phase = f"{victim} back in service; stopping the application"
                finally:
                    app.stop()
        finally:
            if not self.console.is_terminal:
                self.console.line()  # Live prints its last frame without a newline
        return measured

    def _finish(self, store: Storage, measured: dict[str, float | None]) -> tuple[SummaryRow, ...]:
        victim = self.options.down
        say = self.console.print
        with self.console.status("repairing the writes it missed…"):
            store.flush()  # replica writes still in flight end (or fail) first
            repaired, pending = settle_repairs(
                store, timeout_seconds=self.options.breaker_reset_seconds + 20
            )
        say(f"repair: {repaired} replica writes copied to {victim}, {pending} pending")
        with self.console.status("comparing every replica, byte for byte…"):
            try:
                consistent = store.reconcile(_PREFIX).consistent
            except FailoverError as exc:
                say(f"[red]reconcile failed:[/] {escape(str(exc))}")
                consistent = False
            with self.stats.lock:
                expected = dict(self.stats.expected)
            problems = _check_in_parallel(store, expected)
        for line in problems:
            say(f"[red]✗[/] {escape(line)}")
        opened, closed = measured.get("opened"), measured.get("closed")
        with self.stats.lock:
            errors, last_error = self.stats.errors, self.stats.last_error
            calls = self.stats.reads + self.stats.writes
        return (
            SummaryRow("clouds", "emulators" if self.clouds.using_emulators else "directories"),
            SummaryRow("objects written before the outage", str(self.options.objects)),
            SummaryRow("application calls (reads and writes)", str(calls)),
            SummaryRow(
                "application-visible errors",
                str(errors) + (f" (last: {last_error})" if errors else ""),
                errors == 0,
            ),
            SummaryRow(
                f"time until {victim}'s breaker opened",
                "did not open" if opened is None else f"{opened:.2f} s",
                opened is not None,
            ),
            SummaryRow(
                f"{victim} back in service after it returned",
                "breaker still open" if closed is None else f"{closed:.2f} s",
                closed is not None,
            ),
            SummaryRow(
                "repairs made", f"{repaired} ({pending} pending)", repaired > 0 and not pending
            ),
            SummaryRow("replicas identical", "yes" if consistent else "no", consistent),
            SummaryRow(
                "acknowledged writes on every replica",
                f"{len(expected)} / {len(expected)}"
                if not problems
                else f"no: {len(problems)} problem(s) shown above",
                not problems,
            ),
        )

    def _fleet(self) -> tuple[SummaryRow, ...]:
        """The fleet act: a host lost with its journal, its work repaired by another."""
        victim = self.options.down
        say = self.console.print
        say(
            f"[bold]fleet act[/]: hosts A and B, each with its own journal; {victim} goes "
            "down again while host A writes and deletes, then host A is lost"
        )

        def connect(journal: str) -> Storage:
            backends = self.clouds.connect()
            try:
                return Storage(
                    backends, settings=self.settings.with_options(journal=journal), hooks=[]
                )
            except BaseException:
                for backend in backends:
                    backend.close()
                raise

        lost = rehearse_lost_host(
            connect,
            target=victim,
            take_down=self.clouds.take_down,
            bring_back=self.clouds.bring_back,
            scratch=f"{_PREFIX}fleet/",
            journal_dir=self.clouds.workdir,
            objects=_FLEET_OBJECTS,
            outage="blackhole" if self.clouds.using_emulators else "hang",
            clean_up=False,  # the clouds go away with the demo; the summary reads them
            on_progress=lambda line: say(f"  [dim]fleet:[/] {escape(line)}"),
        )
        hints_left, where = self._hints_left()
        for line in lost.problems:
            say(f"[red]✗[/] fleet: {escape(line)}")
        return _fleet_rows(lost, victim=victim, hints_left=hints_left, where=where)

    def _shared_breakers(self, url: BreakerStorageURL) -> tuple[SummaryRow, ...]:
        """The shared breakers act: host A's open breaker, seen by host B through Redis."""
        victim = self.options.down
        say = self.console.print
        own = url.with_namespace(f"{url.namespace[:32]}.demo-{os.urandom(3).hex()}")
        say(
            f"[bold]shared breakers act[/]: hosts A and B keep their breakers in "
            f"{escape(own.redacted)}; {victim} goes down while host A writes"
        )
        settings = self.settings.with_options(
            breaker_storage=own,
            # Long enough that host B cannot reach its own trial while it is checked.
            breaker_reset_seconds=max(self.options.breaker_reset_seconds, 10.0),
        )

        def connect(journal: str, hooks: Sequence[EventHook]) -> Storage:
            backends: list[Backend] = [MeteredBackend(b) for b in self.clouds.connect()]
            try:
                return Storage(
                    backends, settings=settings.with_options(journal=journal), hooks=hooks
                )
            except BaseException:
                for backend in backends:
                    backend.close()
                raise

        def forget() -> None:
            from failover.shared_breakers import forget_namespace  # noqa: PLC0415

            forget_namespace(own)

        result = rehearse_shared_breaker(
            connect,
            target=victim,
            take_down=self.clouds.take_down,
            bring_back=self.clouds.bring_back,
            scratch=f"{_PREFIX}shared/",
            journal_dir=self.clouds.workdir,
            forget=forget,
            clean_up=False,  # the clouds go away with the demo; Redis is cleaned
            on_progress=lambda line: say(f"  [dim]shared:[/] {escape(line)}"),
        )
        for line in result.problems:
            say(f"[red]✗[/] shared breakers: {escape(line)}")
        return _shared_rows(result)

    def _hints_left(self) -> tuple[int | None, str]:
        """Every object under the hint prefix, on every cloud (read directly)."""
        backends = self.clouds.connect()
        counts: dict[str, int] = {}
        try:
            for backend in backends:
                counts[backend.name] = sum(1 for _ in backend.list(HINT_PREFIX))
        except (FailoverError, OSError) as exc:
            return None, f"unreadable: {type(exc).__name__}"
        finally:
            for backend in backends:
                backend.close()
        where = ", ".join(f"{n} on {name}" for name, n in counts.items() if n)
        return sum(counts.values()), where


def _fleet_rows(
    lost: FleetDrill, *, victim: str, hints_left: int | None, where: str
) -> tuple[SummaryRow, ...]:
    """The summary rows of the fleet act."""
    acted = lost.writes + lost.deletes
    return (
        SummaryRow(
            f"fleet: writes and deletes by host A while {victim} was down",
            f"{lost.writes} + {lost.deletes}"
            + (f", {lost.errors} failed" if lost.errors else " acknowledged"),
            lost.errors == 0 and acted > 0,
        ),
        SummaryRow(
            f"fleet: what {victim} missed when host A was lost (as hints)",
            f"{lost.missed} / {acted} actions, {lost.hints} hints",
            acted > 0 and lost.missed == acted and lost.hints > 0,
        ),
        SummaryRow(
            "fleet: repairs by host B (empty journal)",
            f"{lost.repaired} ({lost.pending} pending)",
            lost.repaired > 0 and lost.pending == 0,
        ),
        SummaryRow(
            "fleet: writes by the lost host repaired by the other instance",
            f"{lost.writes} / {lost.writes} on every replica"
            if lost.writes_repaired
            else "no: see above",
            lost.writes_repaired and lost.writes > 0,
        ),
        SummaryRow(
            "fleet: deletes by the lost host repaired",
            f"{lost.deletes} / {lost.deletes} on every replica"
            if lost.deletes_repaired
            else "no: see above",
            lost.deletes_repaired and lost.deletes > 0,
        ),
        SummaryRow(
            "fleet: hints left",
            "unknown" if hints_left is None else str(hints_left) + (f" ({where})" if where else ""),
            hints_left == 0 and lost.hints_left == 0,
        ),
    )


def _shared_rows(result: SharedBreakerDrill) -> tuple[SummaryRow, ...]:
    """The summary rows of the shared breakers act."""
    victim = result.backend
    seen = "yes" if result.seen else "no"
    if result.seen_after_seconds is not None:
        seen += f" ({result.seen_after_seconds:.2f} s after it opened)"
    return (
        SummaryRow(
            f"shared breaker: B saw {victim} open after A's failures",
            seen,
            result.opened and result.seen and not result.problems,
        ),
        SummaryRow(
            f"shared breaker: B's calls to {victim} while it was open",
            "unknown" if result.b_calls is None else str(result.b_calls),
            result.b_calls == 0 and result.errors == 0,
        ),
    )


def _check_in_parallel(
    store: Storage, expected: dict[str, bytes], *, per_backend: int = 2
) -> list[str]:
    """:func:`~failover.drill.check_replicas`, a few threads per replica."""
    keys = list(expected)
    chunks = [{key: expected[key] for key in keys[i::per_backend]} for i in range(per_backend)]
    backends = store.backends
    with cf.ThreadPoolExecutor(max_workers=len(backends) * per_backend) as pool:
        futures = [
            pool.submit(check_replicas, {name: backend}, chunk)
            for name, backend in backends.items()
            for chunk in chunks
        ]
        return [line for future in futures for line in future.result()]


def _wait_for(condition: Callable[[], bool], *, timeout_seconds: float) -> bool:
    give_up = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() >= give_up:
            return False
        time.sleep(0.05)
    return True


def summary_table(result: DemoResult) -> Table:
    """The summary as a rich table."""
    table = Table(title="failover demo: summary", title_style="bold", expand=False)
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_column("", justify="center")
    for row in result.rows:
        mark = (
            Text("")
            if row.passed is None
            else Text("PASS", "bold green")
            if row.passed
            else Text("FAIL", "bold red")
        )
        table.add_row(row.check, row.result, mark)
    return table
