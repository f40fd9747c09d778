"""Envelope encryption: round trips, the format, tamper detection, rotation, range reads."""

from __future__ import annotations

import base64
import io
import os
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import IntegrityError
from failover.segmentation import (
    DEFAULT_CHUNK_SIZE,
    MAX_HEADER_SIZE,
    DecryptionError,
    Decryptor,
    EncryptionHeader,
    Encryptor,
    StaticKeyProvider,
    UnknownKeyError,
    ciphertext_size,
    decrypt,
    encrypt,
)
from failover.segmentation.crypto import TAG_SIZE

K1 = bytes(range(32))
K2 = bytes(range(50, 82))
KEYS = StaticKeyProvider([("k1", K1)])
C = 64  # a small chunk size so that a few hundred bytes span several chunks


def seal(data: bytes, *, key: str = "obj", version: str = "v1", chunk_size: int = C) -> bytes:
    return b"".join(
        encrypt(data, keys=KEYS, object_key=key, version=version, chunk_size=chunk_size)
    )


def unseal(blob: bytes, *, key: str = "obj", version: str = "v1", keys: object = KEYS) -> bytes:
    return b"".join(decrypt(blob, keys=keys, object_key=key, version=version))  # type: ignore[arg-type]


def chunks_of(blob: bytes) -> tuple[bytes, list[bytes]]:
    header = EncryptionHeader.parse(blob)
    body = blob[header.size :]
    stride = header.chunk_size + TAG_SIZE
    return blob[: header.size], [body[i : i + stride] for i in range(0, len(body), stride)]


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, 3 * C, 10 * C + 7])
def test_round_trip_around_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    blob = seal(data)
    assert len(blob) == ciphertext_size(size, key_id="k1", chunk_size=C)
    assert unseal(blob) == data


@pytest.mark.parametrize("size", [0, DEFAULT_CHUNK_SIZE, 3 * 1024 * 1024 + 5])
def test_round_trip_with_default_chunks_from_every_source_kind(size: int) -> None:
    data = os.urandom(size)
    encryptor = Encryptor(KEYS, object_key="a/b.bin", version="0001-w1")
    pieces = [data[i : i + 10_000] for i in range(0, size, 10_000)]  # odd-sized pieces
    blob = b"".join(encryptor.encrypt(iter(pieces)))
    assert len(blob) == encryptor.ciphertext_size(size)
    for source in (
        blob,
        io.BytesIO(blob),
        iter([blob[i : i + 777] for i in range(0, len(blob), 777)]),
    ):
        assert b"".join(decrypt(source, keys=KEYS, object_key="a/b.bin", version="0001-w1")) == data
    assert (
        unseal(
            b"".join(encrypt(io.BytesIO(data), keys=KEYS, object_key="k", version="v")),
            key="k",
            version="v",
        )
        == data
    )


def test_decryption_streams_chunk_by_chunk() -> None:
    data = os.urandom(10 * C)
    stream = decrypt(seal(data), keys=KEYS, object_key="obj", version="v1")
    assert next(stream) == data[:C]


def test_header_layout() -> None:
    blob = seal(b"hello")
    header = EncryptionHeader.parse(blob)
    assert blob[:4] == b"FOEN"
    assert blob[4:6] == b"\x01\x01"
    assert struct.unpack(">H", blob[6:8])[0] == header.size == 81 + len("k1")
    assert struct.unpack(">I", blob[8:12])[0] == C
    assert blob[20] == 2
    assert blob[21:23] == b"k1"
    assert header.key_id == "k1"
    assert len(header.wrapped_key) == 48
    assert header.to_bytes() == blob[: header.size]
    assert EncryptionHeader.read_from(io.BytesIO(blob)) == header
    assert header.plaintext_size(len(blob)) == 5
    assert "wrapped_key" not in repr(header)
    assert MAX_HEADER_SIZE == 81 + 255


@given(st.integers(0, 100_000), st.integers(1, 5000))
def test_sizes_invert(plaintext: int, chunk: int) -> None:
    header = EncryptionHeader("k", chunk, b"\0" * 8, b"\0" * 12, b"\0" * 48)
    total = header.ciphertext_size(plaintext)
    assert total == ciphertext_size(plaintext, key_id="k", chunk_size=chunk)
    assert header.plaintext_size(total) == plaintext


def test_impossible_sizes_are_rejected() -> None:
    header = EncryptionHeader.parse(seal(b"x" * 100))
    for bad in (header.size, header.size + TAG_SIZE - 1, header.size + C + TAG_SIZE + 3):
        with pytest.raises(DecryptionError, match="impossible"):
            header.plaintext_size(bad)


def test_same_plaintext_never_gives_the_same_ciphertext() -> None:
    assert seal(b"same") != seal(b"same")


def test_an_encryptor_is_single_use() -> None:
    encryptor = Encryptor(KEYS, object_key="o", version="v")
    b"".join(encryptor.encrypt(b"a"))
    with pytest.raises(RuntimeError, match="one object only"):
        encryptor.encrypt(b"b")


def test_every_single_byte_change_is_detected() -> None:
    data = os.urandom(3 * C + 10)
    blob = seal(data)
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(DecryptionError):
            unseal(bytes(tampered))


def test_tampered_chunk_names_it_and_is_an_integrity_error() -> None:
    blob = bytearray(seal(os.urandom(3 * C)))
    header = EncryptionHeader.parse(bytes(blob))
    blob[header.size + (C + TAG_SIZE) + 5] ^= 0xFF
    stream = decrypt(bytes(blob), keys=KEYS, object_key="obj", version="v1")
    assert len(next(stream)) == C  # chunk 0 is intact and authenticated
    with pytest.raises(IntegrityError, match="chunk 1 of 'obj' failed authentication"):
        next(stream)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: [c[1], c[0], *c[2:]], id="reorder"),
        pytest.param(lambda c: c[:-1], id="drop-last-chunk"),
        pytest.param(lambda c: [c[0], *c[2:]], id="drop-middle-chunk"),
        pytest.param(lambda c: [*c, c[-1]], id="append-copy-of-last"),
        pytest.param(lambda c: [*c[:-1], c[-2], c[-1]], id="duplicate-chunk"),
        pytest.param(lambda c: [*c[:-1], c[-1][:-1]], id="truncate-mid-chunk"),
        pytest.param(lambda c: [], id="no-chunks"),
    ],
)
def test_structural_changes_are_detected(mutate: object) -> None:
    head, chunks = chunks_of(seal(os.urandom(4 * C)))
    assert len(chunks) == 4
    forged = head + b"".join(mutate(chunks))  # type: ignore[operator]
    with pytest.raises(DecryptionError):
        unseal(forged)


def test_truncation_at_a_chunk_boundary_of_an_exact_multiple_is_detected() -> None:
    head, chunks = chunks_of(seal(os.urandom(2 * C)))
    assert len(chunks) == 2
    with pytest.raises(DecryptionError):
        unseal(head + chunks[0])


@pytest.mark.parametrize(("key", "version"), [("other", "v1"), ("obj", "v2"), ("obj/", "v1")])
def test_ciphertext_is_bound_to_its_object_key_and_version(key: str, version: str) -> None:
    blob = seal(b"payroll")
    with pytest.raises(DecryptionError, match="another object key or version"):
        unseal(blob, key=key, version=version)


def test_chunks_cannot_be_swapped_between_objects() -> None:
    head_a, chunks_a = chunks_of(seal(os.urandom(2 * C), key="a"))
    head_b, chunks_b = chunks_of(seal(os.urandom(2 * C), key="b"))
    with pytest.raises(DecryptionError):
        unseal(head_a + chunks_b[0] + chunks_a[1], key="a")
    with pytest.raises(DecryptionError):
        unseal(head_b + b"".join(chunks_a), key="a")  # b's data key, a's chunks


def test_wrong_master_key_is_a_clear_error_without_key_material() -> None:
    blob = seal(b"secret")
    impostor = StaticKeyProvider([("k1", K2)])
    with pytest.raises(DecryptionError) as info:
        unseal(blob, keys=impostor)
    message = str(info.value)
    assert "master key configured as 'k1' does not unwrap" in message
    assert "'obj'" in message
    for secret in (base64.b64encode(K1).decode(), base64.b64encode(K2).decode(), K2.hex()):
        assert secret not in message


def test_unknown_key_id_says_which_id_and_where_to_add_it() -> None:
    blob = seal(b"secret")
    with pytest.raises(UnknownKeyError) as info:
        unseal(blob, keys=StaticKeyProvider([("k9", K1)]))
    assert info.value.key_id == "k1"
    assert "'k1'" in str(info.value)
    assert "FAILOVER_ENCRYPTION_KEY" in str(info.value)


def test_rotation_keeps_old_objects_readable_and_writes_with_the_new_key() -> None:
    old_blob = seal(b"written under k1")
    rotated = StaticKeyProvider([("k2", K2), ("k1", K1)])
    assert unseal(old_blob, keys=rotated) == b"written under k1"
    new = Encryptor(rotated, object_key="obj", version="v2")
    assert new.header.key_id == "k2"
    new_blob = b"".join(new.encrypt(b"written under k2"))
    assert unseal(new_blob, keys=rotated, version="v2") == b"written under k2"
    with pytest.raises(UnknownKeyError):
        unseal(new_blob, keys=KEYS, version="v2")


@pytest.mark.parametrize(
    ("blob", "fragment"),
    [
        (b"", "shorter than any header"),
        (b"PK\x03\x04" + bytes(40), "bad magic"),
        (b"FOEN\x02\x01" + bytes(40), "unsupported encryption format 2"),
        (b"FOEN\x01\x01\x00\x10" + bytes(40), "inconsistent sizes"),
    ],
)
def test_not_an_encrypted_object(blob: bytes, fragment: str) -> None:
    with pytest.raises(DecryptionError, match=fragment):
        unseal(blob)


def test_header_with_absurd_chunk_size_is_rejected_before_allocating() -> None:
    blob = bytearray(seal(b"x"))
    blob[8:12] = struct.pack(">I", 2**31)
    with pytest.raises(DecryptionError, match="inconsistent sizes"):
        EncryptionHeader.parse(bytes(blob))


def test_chunk_size_bounds() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        Encryptor(KEYS, object_key="o", version="v", chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        Encryptor(KEYS, object_key="o", version="v", chunk_size=64 * 1024 * 1024 + 1)


def _decrypt_range(blob: bytes, start: int, stop: int | None) -> tuple[bytes, int]:
    header = EncryptionHeader.parse(blob[:MAX_HEADER_SIZE])
    plan = header.plan_range(start, stop, ciphertext_size=len(blob))
    decryptor = Decryptor(KEYS, header, object_key="obj", version="v1")
    fetched = blob[plan.start : plan.stop]
    return b"".join(decryptor.decrypt_range(io.BytesIO(fetched), plan)), len(fetched)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 2000),
    chunk=st.integers(1, 300),
    start=st.integers(0, 2100),
    length=st.one_of(st.none(), st.integers(0, 2100)),
)
def test_range_reads_return_exactly_the_slice(
    size: int, chunk: int, start: int, length: int | None
) -> None:
    data = random.Random(size).randbytes(size)
    blob = seal(data, chunk_size=chunk)
    stop = None if length is None else start + length
    got, fetched = _decrypt_range(blob, start, stop)
    assert got == data[start:stop]
    wanted = len(data[start:stop])
    if wanted:  # only the chunks holding the range are fetched
        assert fetched <= ((wanted + 2 * chunk - 2) // chunk) * (chunk + TAG_SIZE)
    else:
        assert fetched == 0


def test_range_reads_detect_tampering_and_truncation_inside_the_range() -> None:
    data = os.urandom(10 * C)
    blob = seal(data)
    header = EncryptionHeader.parse(blob)
    decryptor = Decryptor(KEYS, header, object_key="obj", version="v1")
    plan = header.plan_range(3 * C + 5, 5 * C, ciphertext_size=len(blob))
    assert (plan.first_chunk, plan.chunk_count, plan.skip, plan.length) == (3, 2, 5, 2 * C - 5)
    fetched = bytearray(blob[plan.start : plan.stop])
    fetched[C + 20] ^= 1
    with pytest.raises(DecryptionError, match="chunk 4"):
        b"".join(decryptor.decrypt_range(bytes(fetched), plan))
    with pytest.raises(DecryptionError, match="truncated before chunk 4"):
        b"".join(decryptor.decrypt_range(blob[plan.start : plan.start + C + TAG_SIZE], plan))


def test_the_last_chunk_is_authenticated_as_last_in_range_reads() -> None:
    blob = seal(os.urandom(3 * C))
    header = EncryptionHeader.parse(blob)
    decryptor = Decryptor(KEYS, header, object_key="obj", version="v1")
    # Claim the object ends after chunk 1 (a truncated copy): chunk 1 was not sealed as last.
    truncated = header.size + 2 * (C + TAG_SIZE)
    plan = header.plan_range(C, None, ciphertext_size=truncated)
    with pytest.raises(DecryptionError):
        b"".join(decryptor.decrypt_range(blob[plan.start : plan.stop], plan))


def test_negative_ranges_are_rejected() -> None:
    header = EncryptionHeader.parse(seal(b"abc"))
    with pytest.raises(ValueError, match="non-negative"):
        header.plan_range(-1, None, ciphertext_size=header.ciphertext_size(3))
