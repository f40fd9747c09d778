"""One process of the fleet checker: random puts, deletes and reads, every one logged.

Usage: python fleet_writer.py --journal J --log FILE --seed N --keys K --prefix P
       --seconds S URL [URL ...]

For S seconds (or until SIGTERM) it runs random operations, drawn from
``random.Random(seed)``, on the keys ``P/k0`` .. ``P/k{K-1}``: a put of a value no other
operation ever writes, a delete, or a ``consistency="latest"`` read. Keys are not equally
popular: each process ranks them in its own random order, each half as likely as the one
before it, so a key one process writes all the time may be rarely touched once that
process is gone, and keeps what an outage (or a lost journal) did to it.

Each operation is logged twice to FILE with :class:`failover.testing.history.HistoryLog`
(fsynced): before it is sent, and when it returns or raises. ``Superseded`` is logged
as ``superseded``; every other error as ``unknown`` (a ``QuorumNotReached`` may have
landed, and nothing else is known for sure). On SIGTERM the loop stops after the
operation in progress and ``close()`` drains the replica writes still in flight.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time

from failover import NotFoundError, Storage
from failover.errors import InvalidKeyError, Superseded
from failover.testing.history import HistoryLog, OpKind

SEPARATOR = b"|"


def content_for(value_id: str, rng: random.Random) -> bytes:
    """The bytes of a put: the value id, a separator, then padding of a random length."""
    return value_id.encode() + SEPARATOR + b"." * rng.randint(16, 2048)


def value_of(data: bytes) -> str:
    """The value id stored in ``data`` (as written by :func:`content_for`).

    Raises:
        ValueError: the bytes were not written by :func:`content_for`.
    """
    head, separator, padding = data.partition(SEPARATOR)
    if not separator or padding.strip(b"."):
        raise ValueError(f"not a fleet value: {data[:40]!r}")
    return head.decode()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rng = random.Random(args.seed)
    process = f"{os.getpid()}.{args.seed}"
    keys = [f"{args.prefix}/k{i}" for i in range(args.keys)]
    rng.shuffle(keys)
    weights = [0.5**i for i in range(args.keys)]
    print(f"fleet writer {process}: seed {args.seed}", flush=True)

    with HistoryLog(args.log, process=process) as log:
        log.event("start", seed=args.seed, pid=os.getpid())
        store = Storage.from_urls(
            args.urls,
            journal=args.journal,
            write_policy="quorum",
            timeout_seconds=0.5,
            deadline_seconds=2,
            breaker_fail_max=3,
            breaker_reset_seconds=1,
            repair_interval_seconds=0.5,
        )
        try:
            puts = 0
            ends = time.monotonic() + args.seconds
            while not stop.is_set() and time.monotonic() < ends:
                key = rng.choices(keys, weights)[0]
                draw = rng.random()
                kind: OpKind = "put" if draw < 0.45 else "delete" if draw < 0.65 else "get"
                if kind == "put":
                    puts += 1
                    value = f"{process}:{puts}"
                    data = content_for(value, rng)
                    op = log.invoke("put", key, value=value)
                    try:
                        store.put(key, data)
                    except Superseded as lost:
                        log.complete(op, "superseded", error=_describe(lost))
                    except InvalidKeyError as bad:  # refused before anything was sent
                        log.complete(op, "fail", error=_describe(bad))
                    except Exception as exc:  # outcome unknown: it may have landed
                        log.complete(op, "unknown", error=_describe(exc))
                    else:
                        log.complete(op, "ok")
                elif kind == "delete":
                    op = log.invoke("delete", key)
                    try:
                        store.delete(key)
                    except InvalidKeyError as bad:
                        log.complete(op, "fail", error=_describe(bad))
                    except Exception as exc:
                        log.complete(op, "unknown", error=_describe(exc))
                    else:
                        log.complete(op, "ok")
                else:
                    op = log.invoke("get", key)
                    try:
                        read = store.get(key, consistency="latest")
                    except NotFoundError:
                        log.complete(op, "ok", value=None)
                    except Exception as exc:
                        log.complete(op, "unknown", error=_describe(exc))
                    else:
                        try:
                            log.complete(op, "ok", value=value_of(read))
                        except ValueError as garbage:  # a phantom: the checker flags it
                            log.complete(op, "ok", value=f"<unparseable {read[:40]!r}>")
                            print(garbage, file=sys.stderr)
                stop.wait(rng.uniform(0, 0.02))  # pacing, so that the emulators keep up
        finally:
            store.close()
            log.event("stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
