"""Erasure coding and encryption: codec throughput per core, put/get latency vs replicate.

Two parts, each with its variants interleaved in one process:

* **Codecs.** :func:`failover.segmentation.throughput.measure_throughput` times the codecs
  alone, in memory, on one thread (so every figure is per core): encrypt + erasure-code
  (``encode``), decode from the k data shares + decrypt (``decode``), and decode with data
  share 0 lost, so that Reed-Solomon reconstruction runs (``degraded``). Configurations:
  2-of-3 without encryption, 2-of-3 with encryption, 3-of-5 with encryption. Two
  references run alongside, on the same amount of data: encryption alone (AES-256-GCM in
  64 KiB chunks, what ``replicate`` + encryption does per byte) and sha256 (what plain
  ``replicate`` computes per byte on put and again on get). The configurations alternate
  within each repetition.
* **Emulators.** Four Storage instances over the three emulators (moto, azurite,
  fake-gcs-server; one fresh bucket per instance and cloud) put and get interleaved, call
  by call: ``replicate`` (the default layout), ``replicate + encryption``,
  ``erasure 2-of-3`` and ``erasure 2-of-3 + encryption``. Every instance uses
  ``write_policy="all"``, so a put returns once all three copies or all three shares are
  stored: each mode pays its whole write, which keeps the comparison fair. Each put writes
  a new key (a first write: one create-only request per backend); each get reads one of 8
  keys written beforehand. Afterwards every bucket is listed: the bytes stored over the
  three clouds divided by the bytes written, per mode and object size.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks import plots
from benchmarks.clouds import KINDS, Clouds
from benchmarks.context import RunContext
from benchmarks.report import Column, ScenarioResult, Table, Target, fmt_ratio, fmt_spread
from benchmarks.stats import interleave, spread, summarize
from failover import Storage
from failover.segmentation import Encryptor, StaticKeyProvider, decrypt, generate_master_key
from failover.segmentation.throughput import measure_throughput

NAME = "erasure"
SIZES = {"1KiB": 1024, "1MiB": 1024 * 1024}
KEYS = 8
MIB = 1024 * 1024
WRITE_POLICY = "all"
REPLICATE = "replicate"
#: Codec configurations measured with ``measure_throughput``: label -> (k, n, encrypt).
CODECS = {
    "2-of-3": (2, 3, False),
    "2-of-3 + encryption": (2, 3, True),
    "3-of-5 + encryption": (3, 5, True),
}
ENCRYPTION_ONLY = "encryption only"
SHA256 = "sha256 (reference)"
#: Storage modes on the emulators: label -> (bucket label, options beyond the defaults,
#: whether the run's generated master key is given as ``encryption_key``).
MODES: dict[str, tuple[str, dict[str, Any], bool]] = {
    REPLICATE: ("ec-replicate", {}, False),
    "replicate + encryption": ("ec-replicate-enc", {}, True),
    "erasure 2-of-3": ("ec-erasure", {"redundancy": "erasure", "ec_k": 2}, False),
    "erasure 2-of-3 + encryption": ("ec-erasure-enc", {"redundancy": "erasure", "ec_k": 2}, True),
}


def _codec_size_mib(ctx: RunContext) -> int:
    return ctx.pick(64, 8)


def _codec_best_of(ctx: RunContext) -> int:
    """Runs of each codec measurement inside one repetition; the fastest counts."""
    return ctx.pick(3, 1)


def _iterations(ctx: RunContext, size: int) -> tuple[int, int]:
    """(timed iterations, warm-up iterations) per mode for one block."""
    if size <= 64 * 1024:
        return ctx.pick(120, 10), ctx.pick(5, 2)
    return ctx.pick(30, 4), ctx.pick(3, 1)


# -- codecs ------------------------------------------------------------------------------


def _best_seconds(runs: int, call: Callable[[], object]) -> float:
    best = math.inf
    for _ in range(runs):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _blocks(block: bytes, count: int) -> Iterable[bytes]:
    return itertools.repeat(block, count)


def _encryption_only(size_mib: int, runs: int) -> dict[str, float]:
    """Encrypt + decrypt with no erasure code: the per-byte work of replicate + encryption."""
    keys = StaticKeyProvider([("bench", secrets.token_bytes(32))])
    block = secrets.token_bytes(MIB)

    def encrypt() -> Iterable[bytes]:
        encryptor = Encryptor(keys, object_key="bench", version="1")
        return encryptor.encrypt(_blocks(block, size_mib))

    def drain(chunks: Iterable[bytes]) -> int:
        # Chunks are dropped as they come, as measure_throughput's sinks do: keeping
        # them would time page faults, not the cipher.
        return sum(len(chunk) for chunk in chunks)

    encrypt_seconds = _best_seconds(runs, lambda: drain(encrypt()))
    ciphertext = list(encrypt())  # again, untimed, to decrypt
    decrypt_seconds = _best_seconds(
        runs, lambda: drain(decrypt(iter(ciphertext), keys=keys, object_key="bench", version="1"))
    )
    megabytes = size_mib * MIB / 1e6
    return {
        "encode_mb_s": megabytes / encrypt_seconds,
        "decode_mb_s": megabytes / decrypt_seconds,
        "overhead": sum(len(c) for c in ciphertext) / (size_mib * MIB),
    }


def _sha256(size_mib: int, runs: int) -> dict[str, float]:
    block = secrets.token_bytes(MIB)

    def digest() -> None:
        hasher = hashlib.sha256()
        for piece in _blocks(block, size_mib):
            hasher.update(piece)
        hasher.hexdigest()

    mb_s = size_mib * MIB / 1e6 / _best_seconds(runs, digest)
    return {"encode_mb_s": mb_s, "decode_mb_s": mb_s, "overhead": 1.0}


def _measure_codecs(ctx: RunContext) -> list[dict[str, Any]]:
    """One row per (configuration, repetition); configurations rotate within a repetition."""
    size_mib, runs = _codec_size_mib(ctx), _codec_best_of(ctx)
    measures: dict[str, Callable[[], dict[str, Any]]] = {
        label: functools.partial(measure_throughput, size_mib, k, n, encrypt, repeat=runs)
        for label, (k, n, encrypt) in CODECS.items()
    }
    measures[ENCRYPTION_ONLY] = functools.partial(_encryption_only, size_mib, runs)
    measures[SHA256] = functools.partial(_sha256, size_mib, runs)
    names = list(measures)
    rows = []
    for rep in range(ctx.repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            figures = measures[name]()
            rows.append({"codec": name, "rep": rep, **figures})
            ctx.log(
                f"erasure codec rep {rep + 1}/{ctx.repeats} {name}: encode "
                f"{figures['encode_mb_s']:.0f} MB/s, decode {figures['decode_mb_s']:.0f} MB/s"
                + (
                    f", degraded {figures['decode_degraded_mb_s']:.0f} MB/s"
                    if "decode_degraded_mb_s" in figures
                    else ""
                )
            )
    return rows


# -- emulators ---------------------------------------------------------------------------


def _open_stores(ctx: RunContext, clouds: Clouds) -> dict[str, Storage]:
    master_key = generate_master_key()
    stores: dict[str, Storage] = {}
    try:
        for mode, (label, options, encrypted) in MODES.items():
            urls = [clouds.bucket(kind, label) for kind in KINDS]
            stores[mode] = Storage.from_urls(
                urls,
                write_policy=WRITE_POLICY,
                journal=ctx.journal(label),
                encryption_key=master_key if encrypted else None,
                **options,
            )
    except BaseException:
        for store in stores.values():
            store.close()
        raise
    return stores


def _variants(
    op: str, size_name: str, rep: int, data: bytes, stores: dict[str, Storage]
) -> dict[str, Callable[[int], object]]:
    if op == "put":

        def put(store: Storage) -> Callable[[int], object]:
            # Its own counter, so that warm-up and timed calls never rewrite a key.
            counter = itertools.count()
            return lambda i: store.put(f"{size_name}/put/{rep}/{next(counter)}", data)

        return {mode: put(store) for mode, store in stores.items()}
    keys = [f"{size_name}/get/{rep}/{j}" for j in range(KEYS)]
    for store in stores.values():
        for key in keys:
            store.put(key, data)
        # The same bytes from every layout, checked once outside the timing.
        assert store.get(keys[0]) == data

    def get(store: Storage) -> Callable[[int], object]:
        return lambda i: store.get(keys[i % KEYS])

    return {mode: get(store) for mode, store in stores.items()}


def _stored_bytes(stores: dict[str, Storage]) -> list[dict[str, Any]]:
    """Bytes each mode's three buckets hold per object size, from the backends' listings."""
    rows = []
    for mode, store in stores.items():
        for size_name, size in SIZES.items():
            keys: set[str] = set()
            stored = 0
            per_cloud = {}
            for name, backend in store.backends.items():
                listed = list(backend.list(f"{size_name}/"))
                keys.update(obj.key for obj in listed)
                per_cloud[name] = sum(obj.size for obj in listed)
                stored += per_cloud[name]
            written = len(keys) * size
            rows.append(
                {
                    "mode": mode,
                    "size": size_name,
                    "objects": len(keys),
                    "written_bytes": written,
                    "stored_bytes": stored,
                    "per_cloud_bytes": per_cloud,
                    "overhead": stored / written if written else math.nan,
                }
            )
    return rows


def _measure_clouds(ctx: RunContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Latency rows per (op, size, repetition) with every mode, and the storage rows."""
    rows: list[dict[str, Any]] = []
    with Clouds(KINDS) as clouds:
        stores = _open_stores(ctx, clouds)
        try:
            for rep in range(ctx.repeats):
                for size_name, size in SIZES.items():
                    data = os.urandom(size)
                    for op in ("put", "get"):
                        iterations, warmup = _iterations(ctx, size)
                        variants = _variants(op, size_name, rep, data, stores)
                        samples = interleave(variants, iterations=iterations, warmup=warmup)
                        row: dict[str, Any] = {
                            "op": op,
                            "size": size_name,
                            "rep": rep,
                            **{mode: summarize(s) for mode, s in samples.items()},
                        }
                        rows.append(row)
                        ctx.log(
                            f"erasure rep {rep + 1}/{ctx.repeats} {op} {size_name}: "
                            + ", ".join(f"{m} {row[m]['p50_ms']:.1f}" for m in stores)
                            + " ms p50"
                        )
            storage = _stored_bytes(stores)
        finally:
            for store in stores.values():
                store.close()
    return rows, storage


# -- the result --------------------------------------------------------------------------


def _mb_s(spread_: dict[str, float]) -> str:
    if math.isnan(spread_["median"]):
        return "n/a"
    return fmt_spread(spread_, lambda v: f"{v:.0f}")


def _ms(spread_: dict[str, float]) -> str:
    return fmt_spread(spread_, lambda v: f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def _codec_table(codec_rows: list[dict[str, Any]], size_mib: int) -> Table:
    table = Table(
        "Codec throughput on one core, MB/s of plaintext (median and min-max over runs)",
        [
            Column("codec", "codec"),
            Column("encode", "encode MB/s", _mb_s),
            Column("decode", "decode MB/s", _mb_s),
            Column("degraded", "degraded decode MB/s", _mb_s),
            Column("overhead", "stored ÷ plaintext", fmt_ratio),
        ],
        note=(
            f"{size_mib} MiB in memory, one thread, no I/O; each figure is the fastest of "
            "its run's passes. `encode`: encrypt (if on) + erasure-code into n shares; "
            "`decode`: from the k data shares + decrypt; `degraded`: with data share 0 "
            "lost, so Reed-Solomon reconstruction runs. `encryption only` is AES-256-GCM in "
            "64 KiB chunks without erasure coding (replicate + encryption); sha256 is what "
            "plain replicate computes on put and verifies on get. MB = 10^6 bytes."
        ),
    )
    for codec in dict.fromkeys(r["codec"] for r in codec_rows):
        runs = [r for r in codec_rows if r["codec"] == codec]
        table.rows.append(
            {
                "codec": codec,
                "encode": spread([r["encode_mb_s"] for r in runs]),
                "decode": spread([r["decode_mb_s"] for r in runs]),
                "degraded": spread([r.get("decode_degraded_mb_s", math.nan) for r in runs]),
                "overhead": runs[0]["overhead"],
            }
        )
    return table


def _latency_table(cloud_rows: list[dict[str, Any]]) -> Table:
    table = Table(
        "put/get latency over the three emulators vs replicate (median and min-max over runs)",
        [
            Column("op", "op"),
            Column("size", "size"),
            Column("mode", "mode"),
            Column("p50", "p50 ms", _ms),
            Column("p99", "p99 ms", _ms),
            Column("ratio_p50", "p50 ÷ replicate", fmt_spread),
            Column("ratio_p99", "p99 ÷ replicate", fmt_spread),
        ],
        note=(
            f"write_policy `{WRITE_POLICY}` for every mode (a put returns when all three "
            "copies or shares are stored), read_policy `health` (the default): a replicate "
            "get reads one copy, an erasure get reads k = 2 shares. Each put writes a new "
            "key; gets read 8 keys written beforehand. Ratios are of the same run's p50s "
            "(p99s), modes interleaved call by call."
        ),
    )
    for op in ("put", "get"):
        for size_name in SIZES:
            runs = [r for r in cloud_rows if (r["op"], r["size"]) == (op, size_name)]
            for mode in MODES:
                table.rows.append(
                    {
                        "op": op,
                        "size": size_name,
                        "mode": mode,
                        "p50": spread([r[mode]["p50_ms"] for r in runs]),
                        "p99": spread([r[mode]["p99_ms"] for r in runs]),
                        "ratio_p50": spread(
                            [r[mode]["p50_ms"] / r[REPLICATE]["p50_ms"] for r in runs]
                        ),
                        "ratio_p99": spread(
                            [r[mode]["p99_ms"] / r[REPLICATE]["p99_ms"] for r in runs]
                        ),
                    }
                )
    return table


def _storage_table(storage: list[dict[str, Any]]) -> Table:
    table = Table(
        "Storage overhead: bytes stored over the three clouds ÷ bytes written",
        [
            Column("mode", "mode"),
            Column("size", "object size"),
            Column("objects", "objects"),
            Column("overhead", "stored ÷ written", fmt_ratio),
            Column("extra", "bytes per object beyond n÷k copies", lambda v: f"{v:.0f}"),
        ],
        note=(
            "From the backends' own listings of every bucket (S3, Azure and GCS report the "
            "stored size of each object, share or ciphertext). n÷k is 3 for replicate and "
            "1.5 for 2-of-3; the extra bytes are headers (share header and per-block "
            "checksums, encryption header and a 16-byte tag per 64 KiB chunk)."
        ),
    )
    for row in storage:
        copies = 1.5 if row["mode"].startswith("erasure") else 3.0
        objects = row["objects"] or 1
        ideal = copies * row["written_bytes"]
        table.rows.append(
            {
                "mode": row["mode"],
                "size": row["size"],
                "objects": row["objects"],
                "overhead": row["overhead"],
                "extra": (row["stored_bytes"] - ideal) / objects,
            }
        )
    return table


def _targets(codec: Table, latency: Table, storage: Table) -> list[Target]:
    """The summary's lines: no numeric target in the issue, so every one is reported."""
    row = next(r for r in codec.rows if r["codec"] == "2-of-3 + encryption")
    targets = [
        Target(
            name=f"erasure codec 2-of-3 + encryption: {figure}",
            requirement="report MB/s per core",
            value=row[figure]["median"],
            spread=row[figure],
            met=None,
            unit="MB/s",
        )
        for figure in ("encode", "decode", "degraded")
    ]
    rows = {(r["op"], r["size"], r["mode"]): r for r in latency.rows}
    for op in ("put", "get"):
        for size_name in SIZES:
            row = rows[(op, size_name, "erasure 2-of-3 + encryption")]
            plain = rows[(op, size_name, "erasure 2-of-3")]["ratio_p50"]["median"]
            targets.append(
                Target(
                    name=f"erasure 2-of-3 + encryption: {op} {size_name} p50 ÷ replicate",
                    requirement="report (latency vs replicate mode)",
                    value=row["ratio_p50"]["median"],
                    spread=row["ratio_p50"],
                    met=None,
                    detail=f"without encryption {fmt_ratio(plain)}",
                )
            )
    targets.extend(
        Target(
            name=f"erasure 2-of-3 + encryption: stored ÷ written, {r['size']} objects",
            requirement="report (storage overhead; replicate 3.0)",
            value=r["overhead"],
            spread=spread([r["overhead"]]),
            met=None,
        )
        for r in storage.rows
        if r["mode"] == "erasure 2-of-3 + encryption"
    )
    return targets


def run(ctx: RunContext) -> ScenarioResult:
    codec_rows = _measure_codecs(ctx)
    cloud_rows, storage_rows = _measure_clouds(ctx)
    codec = _codec_table(codec_rows, _codec_size_mib(ctx))
    latency = _latency_table(cloud_rows)
    storage = _storage_table(storage_rows)
    result = ScenarioResult(
        name=NAME,
        title="Erasure coding and encryption vs replicate",
        parameters={
            "codec_size_mib": _codec_size_mib(ctx),
            "codec_passes": _codec_best_of(ctx),
            "sizes": list(SIZES),
            "iterations_1KiB": _iterations(ctx, 1024)[0],
            "iterations_1MiB": _iterations(ctx, MIB)[0],
            "repeats": ctx.repeats,
            "settings": f"three backends, write_policy {WRITE_POLICY}, otherwise defaults; "
            "erasure: redundancy=erasure, ec_k=2; encryption: a generated 256-bit master key",
        },
        tables=[codec, latency, storage],
        targets=_targets(codec, latency, storage),
        data={"codecs": codec_rows, "clouds": cloud_rows, "storage": storage_rows},
    )
    plot = plots.erasure(codec.rows, latency.rows, ctx.out_dir / f"{NAME}.png")
    if plot:
        result.plots.append(plot)
    return result
