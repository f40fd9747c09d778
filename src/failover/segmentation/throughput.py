"""Encode/decode throughput of the segmentation codecs, on one thread (= per core).

Run ``python -m failover.segmentation.throughput [--size-mib 64] [-k 2] [-n 3]
[--no-encrypt]`` for a JSON line, or call :func:`measure_throughput` (the benchmark
suite does). Only the codecs are timed: data is generated and shares are kept in
memory, so no disk or network cost is included.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from failover.segmentation.crypto import DEFAULT_CHUNK_SIZE, Encryptor, decrypt
from failover.segmentation.erasure import (
    DEFAULT_BLOCK_SIZE,
    ErasureCode,
    ShareDecoder,
    Writable,
    bytes_opener,
)
from failover.segmentation.keys import StaticKeyProvider

__all__ = ["measure_throughput"]

_MIB = 1024 * 1024


class _Discard:
    """A sink that drops what it gets (keeping it would time page faults, not the codec)."""

    def write(self, data: bytes, /) -> int:
        return len(data)


def measure_throughput(
    size_mib: int = 64,
    k: int = 2,
    n: int = 3,
    encrypt: bool = True,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    repeat: int = 3,
) -> dict[str, float | int | bool]:
    """Time encrypting + erasure-coding ``size_mib`` MiB and decoding it back.

    Args:
        size_mib: data size in MiB.
        k: shares needed to decode.
        n: shares written.
        encrypt: include AES-256-GCM encryption and decryption.
        block_size: erasure block size in bytes.
        chunk_size: encryption chunk size in bytes.
        repeat: runs of each measurement; the fastest counts (the others absorb
            warm-up and noise from other processes).

    Returns:
        ``encode_mb_s``: encrypt + encode into discarding sinks, MB (10**6 bytes) of
        plaintext per second;
        ``decode_mb_s``: decode from the k data shares (the common, systematic case) +
        decrypt; ``decode_degraded_mb_s``: decode with data share 0 lost, so
        Reed-Solomon reconstruction runs (k >= 2); ``overhead``: stored bytes of all
        shares per plaintext byte; plus the parameters.
    """
    size = size_mib * _MIB
    keys = StaticKeyProvider([("bench", secrets.token_bytes(32))])
    code = ErasureCode(k, n, block_size)
    block = secrets.token_bytes(_MIB)

    def plaintext() -> Iterator[bytes]:
        for _ in range(size_mib):
            yield block

    def encode(sinks: Sequence[Writable]) -> None:
        if encrypt:
            encryptor = Encryptor(keys, object_key="bench", version="1", chunk_size=chunk_size)
            source: Iterable[bytes] = encryptor.encrypt(plaintext())
            data_size = encryptor.ciphertext_size(size)
        else:
            source, data_size = plaintext(), size
        code.encode_to(source, data_size=data_size, sinks=sinks)

    encode_seconds = _best_of(repeat, lambda: encode([_Discard()] * n))
    buffers = [io.BytesIO() for _ in range(n)]
    encode(buffers)  # again, untimed, to keep shares for decoding
    shares = [buffer.getvalue() for buffer in buffers]
    del buffers

    def decode(indices: Sequence[int]) -> None:
        decoder = ShareDecoder({str(i): bytes_opener(shares[i]) for i in indices})
        stream = decoder.read()
        if encrypt:
            stream = decrypt(stream, keys=keys, object_key="bench", version="1")
        got = sum(len(piece) for piece in stream)
        if got != size:
            raise AssertionError(f"decoded {got} bytes instead of {size}")

    systematic = _best_of(repeat, lambda: decode(range(k)))
    degraded = _best_of(repeat, lambda: decode(range(1, k + 1))) if k >= 2 and n > k else systematic
    megabytes = size / 1e6
    return {
        "size_mib": size_mib,
        "k": k,
        "n": n,
        "encrypt": encrypt,
        "block_size": block_size,
        "chunk_size": chunk_size,
        "encode_mb_s": round(megabytes / encode_seconds, 1),
        "decode_mb_s": round(megabytes / systematic, 1),
        "decode_degraded_mb_s": round(megabytes / degraded, 1),
        "overhead": round(sum(len(s) for s in shares) / size, 4),
    }


def _best_of(repeat: int, run: Callable[[], None]) -> float:
    best = math.inf
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`measure_throughput` as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("-k", type=int, default=2)
    parser.add_argument("-n", type=int, default=3)
    parser.add_argument("--no-encrypt", action="store_true")
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure_throughput(
        args.size_mib,
        args.k,
        args.n,
        not args.no_encrypt,
        block_size=args.block_size,
        chunk_size=args.chunk_size,
        repeat=args.repeat,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
