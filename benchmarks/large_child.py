"""One large transfer in a fresh process, reporting its time and peak RSS growth.

Run by the ``large_objects`` scenario as ``python -m benchmarks.large_child JSON`` so that
the parent's own memory (emulator bookkeeping, earlier scenarios) cannot distort the
measurement. The JSON argument names the client (``raw`` or ``failover``), the operation
(``put`` or ``get``), the size and where to go; the result is one JSON line on stdout.

Peak RSS growth is the highest resident set size seen during the operation minus the
resident set size just before it (after imports, client set-up and a small warm-up
transfer). The highest size is the larger of a 5 ms sampler's and the kernel's
high-water mark (``VmHWM``), which is reset just before the operation (``clear_refs``)
so that set-up peaks do not count.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import threading
import time
from typing import Any

from benchmarks.raw import raw_client
from failover import Storage

READ_CHUNK = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


class PatternStream:
    """A readable stream of ``size`` pseudo-random bytes, generated as it is read.

    Nothing but one 1 MiB block is held: the source of a 256 MiB upload costs 1 MiB.
    """

    def __init__(self, size: int, *, seed: int = 7) -> None:
        self._size = size
        self._pos = 0
        self._block = random.Random(seed).randbytes(READ_CHUNK)

    def read(self, n: int = -1, /) -> bytes:
        left = self._size - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        parts = []
        want = n
        while want:
            offset = self._pos % READ_CHUNK
            take = min(want, READ_CHUNK - offset)
            parts.append(self._block[offset : offset + take])
            self._pos += take
            want -= take
        return b"".join(parts)

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True


def reset_high_water() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False if that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def high_water_bytes() -> int | None:
    """The kernel's peak RSS of this process (``VmHWM``), if it reports one."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Current resident set size (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


class PeakSampler:
    """Samples RSS every few milliseconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, interval_seconds: float = 0.005) -> None:
        self.peak = rss_bytes()
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def _failover(args: dict[str, Any]) -> tuple[Any, Any]:
    store = Storage.from_urls(
        args["urls"],
        write_policy="all",
        timeout_seconds=60,
        deadline_seconds=args["deadline_seconds"],
        repair_interval_seconds=0,
        journal=args["journal"],
    )
    info: dict[str, Any] = {}

    def put() -> None:
        info["backend"] = store.put(args["key"], PatternStream(args["size"])).backend

    def get() -> int:
        total = 0
        with store.open(args["key"]) as reader:
            info["backend"] = reader.info.backend
            while chunk := reader.read(READ_CHUNK):
                total += len(chunk)
        return total

    store.put("warm-up", b"x" * 1024)
    store.get("warm-up")
    return store, (put, get, info)


def _raw(args: dict[str, Any]) -> tuple[Any, Any]:
    client = raw_client(args["urls"][0], timeout_seconds=60)
    info: dict[str, Any] = {"backend": client.kind}

    def put() -> None:
        client.put_stream(args["key"], PatternStream(args["size"]), args["size"])

    def get() -> int:
        return client.get_stream(args["key"], READ_CHUNK)

    client.put("warm-up", b"x" * 1024)
    client.get("warm-up")
    return client, (put, get, info)


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    owner, (put, get, info) = _failover(args) if args["client"] == "failover" else _raw(args)
    try:
        gc.collect()
        reset = reset_high_water()
        before = rss_bytes()
        with PeakSampler() as sampler:
            started = time.perf_counter()
            if args["op"] == "put":
                put()
                moved = args["size"]
            else:
                moved = get()
            seconds = time.perf_counter() - started
        high_water = high_water_bytes() if reset else None
    finally:
        owner.close()
    if moved != args["size"]:
        raise SystemExit(f"moved {moved} bytes, expected {args['size']}")
    peak = max(sampler.peak, high_water or 0)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "bytes": moved,
                "rss_before": before,
                "rss_peak_sampled": sampler.peak,
                "rss_high_water": high_water,
                "rss_growth": peak - before,
                "backend": info.get("backend"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
