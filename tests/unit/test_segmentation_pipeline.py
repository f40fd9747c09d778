"""Encryption and erasure coding together, as the storage layer will use them.

Three "backends" are dicts of share bytes: each stores one share per object.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.segmentation import (
    MAX_HEADER_SIZE,
    DecryptionError,
    Decryptor,
    EncryptionHeader,
    Encryptor,
    ErasureCode,
    NotEnoughSharesError,
    ShareDecoder,
    ShareHeader,
    ShareOpener,
    StaticKeyProvider,
    bytes_opener,
    decrypt,
    regenerate,
    spool_shares,
)
from failover.segmentation.erasure import CHECKSUM_SIZE, HEADER_SIZE
from failover.segmentation.throughput import measure_throughput

K1 = bytes(range(32))
K2 = bytes(range(7, 39))
KEYS = StaticKeyProvider([("k1", K1)])
BACKENDS = ("s3", "azure", "gcs")
CODE = ErasureCode.for_backends(len(BACKENDS), block_size=4096)
MARKER = b"<<TOP-SECRET-PLAINTEXT-MARKER-7f3a>>"


def write(
    data: bytes,
    *,
    key: str,
    version: str = "v1",
    keys: StaticKeyProvider = KEYS,
    chunk_size: int = 1024,
) -> dict[str, bytes]:
    encryptor = Encryptor(keys, object_key=key, version=version, chunk_size=chunk_size)
    sinks = [io.BytesIO() for _ in BACKENDS]
    CODE.encode_to(
        encryptor.encrypt(data), data_size=encryptor.ciphertext_size(len(data)), sinks=sinks
    )
    return {name: sink.getvalue() for name, sink in zip(BACKENDS, sinks, strict=True)}


def read(
    shares: dict[str, bytes], *, key: str, version: str = "v1", keys: StaticKeyProvider = KEYS
) -> bytes:
    decoder = ShareDecoder({name: bytes_opener(share) for name, share in shares.items()})
    return b"".join(decrypt(decoder.read(), keys=keys, object_key=key, version=version))


def without(shares: dict[str, bytes], lost: str) -> dict[str, bytes]:
    return {name: share for name, share in shares.items() if name != lost}


def sample(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size))
    for _ in range(3):
        if size >= len(MARKER):
            at = rng.randrange(0, size - len(MARKER) + 1)
            data[at : at + len(MARKER)] = MARKER
    return bytes(data)


SIZES = [0, 1, 1023, 1024, 1025, 2 * 4096 - 1, 2 * 4096, 2 * 4096 + 1, 3 * 1024 * 1024 + 17]


@pytest.mark.parametrize("size", SIZES)
def test_losing_any_one_backend_every_read_returns_the_original(size: int) -> None:
    data = sample(size, seed=size)
    shares = write(data, key=f"obj/{size}")
    assert read(shares, key=f"obj/{size}") == data
    for lost in BACKENDS:
        assert read(without(shares, lost), key=f"obj/{size}") == data


def test_no_single_backend_holds_readable_data() -> None:
    stored: dict[str, list[bytes]] = {name: [] for name in BACKENDS}
    for i in range(40):
        data = sample(random.Random(i).randrange(40, 20_000), seed=i)
        assert MARKER in data
        for name, share in write(data, key=f"docs/{i}").items():
            stored[name].append(share)
    for name, shares in stored.items():
        blob = b"".join(shares)
        assert MARKER not in blob, name
        assert MARKER[:12] not in blob, name
        for share in shares:  # and one share alone does not decode
            with pytest.raises(NotEnoughSharesError, match="need 2 intact shares"):
                b"".join(ShareDecoder({name: bytes_opener(share)}).read())


def test_without_encryption_a_data_share_would_leak_the_marker() -> None:
    """Control for the test above: the marker is findable when it is not encrypted."""
    data = sample(20_000, seed=1)
    sinks = [io.BytesIO() for _ in BACKENDS]
    CODE.encode_to(data, data_size=len(data), sinks=sinks)
    assert any(MARKER in sink.getvalue() for sink in sinks[:2])


def test_storage_overhead_is_about_n_over_k_with_encryption() -> None:
    size = 4 * 1024 * 1024
    shares = write(os.urandom(size), key="big", chunk_size=64 * 1024)
    assert sum(len(s) for s in shares.values()) / size == pytest.approx(1.5, rel=2e-3)


def test_corrupt_share_is_detected_and_read_served_by_the_others() -> None:
    data = sample(50_000, seed=3)
    shares = write(data, key="k")
    damaged = bytearray(shares["s3"])
    damaged[CODE.stripe_offset(2) + 100] ^= 0x01
    decoder = ShareDecoder(
        {
            "s3": bytes_opener(bytes(damaged)),
            **{n: bytes_opener(shares[n]) for n in ("azure", "gcs")},
        }
    )
    assert b"".join(decrypt(decoder.read(), keys=KEYS, object_key="k", version="v1")) == data
    assert list(decoder.failed) == ["s3"]
    # and repair regenerates the damaged share bit for bit from the two others
    rebuilt = b"".join(regenerate(0, {n: bytes_opener(shares[n]) for n in ("azure", "gcs")}))
    assert rebuilt == shares["s3"]


def test_tampering_that_fixes_the_block_checksum_is_caught_by_the_gcm_tag() -> None:
    data = sample(30_000, seed=4)
    shares = write(data, key="k")
    forged = bytearray(shares["s3"])
    header = ShareHeader.parse(bytes(forged))
    offset = CODE.stripe_offset(1)
    forged[offset + 10] ^= 0x80
    block = bytes(forged[offset : offset + CODE.block_size])
    crc = zlib.crc32(header.encoding_id + bytes([0]) + struct.pack(">I", 1) + block)
    forged[offset + CODE.block_size : offset + CODE.block_size + CHECKSUM_SIZE] = struct.pack(
        ">I", crc
    )
    with pytest.raises(DecryptionError):
        read({"s3": bytes(forged), "azure": shares["azure"]}, key="k")
    assert read({"azure": shares["azure"], "gcs": shares["gcs"]}, key="k") == data


def test_shares_cannot_be_moved_to_another_object_or_version() -> None:
    shares = write(b"balance: 100", key="acct/1", version="v7")
    with pytest.raises(DecryptionError):
        read(shares, key="acct/2", version="v7")
    with pytest.raises(DecryptionError):
        read(shares, key="acct/1", version="v6")


def test_key_rotation_keeps_old_objects_readable() -> None:
    old = write(b"old data", key="a")
    rotated = StaticKeyProvider([("k2", K2), ("k1", K1)])
    new = write(b"new data", key="b", keys=rotated)
    assert read(without(old, "gcs"), key="a", keys=rotated) == b"old data"
    assert read(without(new, "s3"), key="b", keys=rotated) == b"new data"
    with pytest.raises(DecryptionError, match="does not unwrap"):
        read(old, key="a", keys=StaticKeyProvider([("k1", K2)]))


def ranged_read(shares: dict[str, bytes], start: int, stop: int | None, *, key: str) -> bytes:
    """Plaintext range -> ciphertext range -> share stripes, fetching only what is needed."""
    decoder = ShareDecoder({n: bytes_opener(s) for n, s in shares.items()})
    header = EncryptionHeader.parse(b"".join(decoder.read_range(0, MAX_HEADER_SIZE)))
    plan = header.plan_range(start, stop, ciphertext_size=decoder.data_size)
    decryptor = Decryptor(KEYS, header, object_key=key, version="v1")
    return b"".join(decryptor.decrypt_range(decoder.read_range(plan.start, plan.stop), plan))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 30_000),
    start=st.integers(0, 31_000),
    length=st.one_of(st.none(), st.integers(0, 31_000)),
    lost=st.sampled_from(BACKENDS),
)
def test_range_reads_through_both_layers(
    size: int, start: int, length: int | None, lost: str
) -> None:
    data = random.Random(size).randbytes(size)
    shares = write(data, key="r")
    stop = None if length is None else start + length
    assert ranged_read(without(shares, lost), start, stop, key="r") == data[start:stop]


class _FileRange:
    def __init__(self, path: Path, start: int, stop: int | None) -> None:
        self._file = path.open("rb")
        self._file.seek(start)
        self._left = None if stop is None else stop - start

    def read(self, size: int = -1, /) -> bytes:
        if self._left is not None:
            size = self._left if size < 0 else min(size, self._left)
        piece = self._file.read(size)
        if self._left is not None:
            self._left -= len(piece)
        return piece

    def close(self) -> None:
        self._file.close()


def file_opener(path: Path) -> ShareOpener:
    return lambda start, stop: _FileRange(path, start, stop)


class _FileSink:
    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")

    def write(self, data: bytes, /) -> int:
        return self.file.write(data)


def test_memory_stays_bounded_for_a_64_mib_stream(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    code = ErasureCode(2, 3)  # default 64 KiB blocks: 128 KiB stripes
    piece = os.urandom(1024 * 1024)

    def plaintext() -> Iterator[bytes]:
        for _ in range(size // len(piece)):
            yield piece

    paths = [tmp_path / f"share{i}" for i in range(3)]
    sinks = [_FileSink(p) for p in paths]
    tracemalloc.start()
    try:
        encryptor = Encryptor(KEYS, object_key="big", version="v1")
        code.encode_to(
            encryptor.encrypt(plaintext()),
            data_size=encryptor.ciphertext_size(size),
            sinks=sinks,
        )
        for sink in sinks:
            sink.file.close()
        _, encode_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decoder = ShareDecoder({str(i): file_opener(paths[i]) for i in (1, 2)})  # degraded read
        digest = hashlib.sha256()
        total = 0
        for chunk in decrypt(decoder.read(), keys=KEYS, object_key="big", version="v1"):
            digest.update(chunk)
            total += len(chunk)
        _, decode_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert digest.digest() == hashlib.sha256(piece * (size // len(piece))).digest()
    # A stream 64 MiB long is coded within a few stripes' worth of memory (plus the
    # 1 MiB pieces the test's own source yields).
    print(f"tracemalloc peaks: encode {encode_peak} B, decode {decode_peak} B")
    assert encode_peak < 6 * 1024 * 1024, encode_peak
    assert decode_peak < 6 * 1024 * 1024, decode_peak


def test_spool_shares_makes_one_payload_per_backend(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    encryptor = Encryptor(KEYS, object_key="p", version="v1")
    payloads = spool_shares(
        encryptor.encrypt(data),
        code=CODE,
        data_size=encryptor.ciphertext_size(len(data)),
        spool_dir=str(tmp_path),
        memory_limit=1000,
    )
    try:
        assert len(payloads) == 3
        assert len(list(tmp_path.iterdir())) == 3
        for payload in payloads:
            assert not payload.in_memory
            raw = payload.read_all()
            assert payload.size == len(raw) == CODE.share_size(encryptor.ciphertext_size(len(data)))
            assert payload.sha256 == hashlib.sha256(raw).hexdigest()
        decoder = ShareDecoder({str(i): bytes_opener(p.read_all()) for i, p in enumerate(payloads)})
        assert b"".join(decrypt(decoder.read(), keys=KEYS, object_key="p", version="v1")) == data
    finally:
        for payload in payloads:
            payload.close()
    assert list(tmp_path.iterdir()) == []


def test_small_shares_stay_in_memory() -> None:
    payloads = spool_shares(b"hello", code=CODE, data_size=5)
    assert all(p.in_memory for p in payloads)
    assert [p.size for p in payloads] == [HEADER_SIZE + 3 + CHECKSUM_SIZE] * 3


def test_spool_shares_leaves_no_file_behind_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ended after"):
        spool_shares(
            b"x" * 10, code=CODE, data_size=10_000_000, spool_dir=str(tmp_path), memory_limit=0
        )
    assert list(tmp_path.iterdir()) == []


def test_measure_throughput_reports_mb_per_second() -> None:
    result = measure_throughput(size_mib=2, k=2, n=3, encrypt=True, repeat=1)
    assert result["encode_mb_s"] > 0
    assert result["decode_mb_s"] > 0
    assert result["decode_degraded_mb_s"] > 0
    assert result["overhead"] == pytest.approx(1.5, rel=0.01)
    plain = measure_throughput(size_mib=1, k=3, n=5, encrypt=False, repeat=1)
    assert plain["overhead"] == pytest.approx(5 / 3, rel=0.01)
