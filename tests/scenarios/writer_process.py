"""A writer run as a separate process by the crash and race scenarios.

Usage: python writer_process.py --journal J --acks FILE --prefix P --count N
       [--same-key] URL [URL ...]

Writes N objects (or N versions of one key with --same-key) with the quorum policy and
appends one line per *acknowledged* write to FILE, fsynced before the next write, so
that the parent knows exactly which writes were acknowledged when it kills this process.
A write that lost to a newer version of its key (``Superseded``, only possible with
--same-key) is appended to ``FILE.superseded`` instead.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from failover import Storage
from failover.errors import FailoverError, Superseded


def content_for(key: str, round_number: int = 0) -> bytes:
    """The bytes written for ``key`` (deterministic, so the parent can check them)."""
    seed = hashlib.sha256(f"{key}#{round_number}".encode()).digest()
    return seed * (64 + round_number % 7)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--acks", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--same-key", action="store_true")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    with (
        open(args.acks, "a", encoding="utf-8") as acks,
        Storage.from_urls(
            args.urls,
            journal=args.journal,
            write_policy="quorum",
            timeout_seconds=0.5,
            deadline_seconds=2,
            breaker_fail_max=3,
            breaker_reset_seconds=1,
            repair_interval_seconds=0,
        ) as store,
    ):
        for i in range(args.count):
            key = f"{args.prefix}race" if args.same_key else f"{args.prefix}{i:04d}"
            try:
                info = store.put(key, content_for(key, i if args.same_key else 0))
            except Superseded as lost:
                with open(f"{args.acks}.superseded", "a", encoding="utf-8") as out:
                    out.write(f"{key}\t{lost.version}\t{lost.current}\n")
                continue
            except FailoverError as exc:
                print(f"write {key} failed: {exc}", file=sys.stderr)
                continue
            acks.write(f"{key}\t{info.version}\t{info.checksum}\n")
            acks.flush()
            os.fsync(acks.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
