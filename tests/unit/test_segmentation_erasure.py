"""Erasure coding: any k of n shares decode, corrupt shares are skipped, repair is exact."""

from __future__ import annotations

import io
import itertools
import random
import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import BackendUnavailable, IntegrityError, NotFoundError
from failover.segmentation import (
    CorruptShareError,
    ErasureCode,
    MismatchedShareError,
    NotEnoughSharesError,
    ShareDecoder,
    ShareHeader,
    ShareOpener,
    bytes_opener,
    regenerate,
    verify_share,
)
from failover.segmentation.erasure import CHECKSUM_SIZE, HEADER_SIZE

B = 16  # a tiny block size so that short data spans many stripes


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def make_shares(data: bytes, code: ErasureCode, *, encoding_id: bytes | None = None) -> list[bytes]:
    sinks = [io.BytesIO() for _ in range(code.n)]
    code.encode_to(data, data_size=len(data), sinks=sinks, encoding_id=encoding_id)
    return [sink.getvalue() for sink in sinks]


def openers(shares: list[bytes], indices: object = None) -> dict[str, ShareOpener]:
    chosen = range(len(shares)) if indices is None else indices
    return {f"s{i}": bytes_opener(shares[i]) for i in chosen}  # type: ignore[attr-defined]


def decode(shares: dict[str, ShareOpener]) -> bytes:
    return b"".join(ShareDecoder(shares).read())


def flip(share: bytes, position: int) -> bytes:
    changed = bytearray(share)
    changed[position] ^= 0x40
    return bytes(changed)


CODES = [(1, 1), (1, 3), (2, 2), (2, 3), (3, 5), (4, 10)]


@pytest.mark.parametrize(("k", "n"), CODES)
@pytest.mark.parametrize(
    "size_of",
    [lambda s: 0, lambda s: 1, lambda s: s - 1, lambda s: s, lambda s: s + 1, lambda s: 7 * s + 3],
)
def test_round_trip_around_stripe_boundaries(k: int, n: int, size_of: Callable[[int], int]) -> None:
    code = ErasureCode(k, n, B)
    data = data_of(size_of(code.stripe_size))
    shares = make_shares(data, code)
    assert {len(s) for s in shares} == {code.share_size(len(data))}
    assert decode(openers(shares, range(n - k, n))) == data  # the last k: check blocks when n > k


@pytest.mark.parametrize(("k", "n"), [(2, 3), (3, 5)])
@pytest.mark.parametrize("size", [0, 1, 2 * 3 * B - 1, 5000])
def test_every_k_subset_decodes_in_every_order(k: int, n: int, size: int) -> None:
    code = ErasureCode(k, n, B)
    data = data_of(size)
    shares = make_shares(data, code)
    for subset in itertools.combinations(range(n), k):
        assert decode(openers(shares, subset)) == data, subset
        assert decode(openers(shares, reversed(subset))) == data, subset


def test_several_mib_with_the_default_block_size() -> None:
    code = ErasureCode.for_backends(3)
    assert (code.k, code.n) == (2, 3)
    data = data_of(3 * 1024 * 1024 + 12345)
    shares = make_shares(data, code)
    assert decode(openers(shares, [2, 0])) == data
    assert decode(openers(shares, [1, 2])) == data


def test_one_share_alone_cannot_be_decoded() -> None:
    shares = make_shares(data_of(1000), ErasureCode(2, 3, B))
    for i in range(3):
        with pytest.raises(NotEnoughSharesError) as info:
            decode(openers(shares, [i]))
        assert info.value.needed == 2
        assert isinstance(info.value, IntegrityError)


def test_storage_overhead_is_about_n_over_k() -> None:
    for k, n in [(2, 3), (3, 5), (4, 10), (1, 3)]:
        code = ErasureCode(k, n)
        size = 10 * 1024 * 1024
        assert code.overhead(size) == pytest.approx(n / k, rel=1e-3)
        assert code.overhead(size) > n / k
    assert ErasureCode(2, 3).overhead(0) == float("inf")
    assert ErasureCode(2, 3, B).share_size(0) == HEADER_SIZE


def test_last_stripe_is_shrunk_not_padded_to_a_full_block() -> None:
    code = ErasureCode(3, 4, 1024)
    assert code.block_length(0, 1) == 1
    assert code.share_size(1) == HEADER_SIZE + 1 + CHECKSUM_SIZE
    assert code.share_size(3 * 1024 + 7) == HEADER_SIZE + 1024 + 3 + 2 * CHECKSUM_SIZE


def test_code_is_systematic_so_unencrypted_data_shares_hold_plaintext() -> None:
    data = b"A" * 16 + b"B" * 16
    shares = make_shares(data, ErasureCode(2, 3, 16))
    assert b"A" * 16 in shares[0]
    assert b"B" * 16 in shares[1]
    assert b"A" * 16 not in shares[2]  # the check share mixes both


def test_share_header_layout() -> None:
    code = ErasureCode(3, 5, 4096)
    shares = make_shares(data_of(100_000), code, encoding_id=bytes(range(16)))
    raw = shares[4]
    assert raw[:4] == b"FOSH"
    assert tuple(raw[4:8]) == (1, 3, 5, 4)
    assert struct.unpack(">IQ", raw[8:20]) == (4096, 100_000)
    assert raw[20:36] == bytes(range(16))
    assert struct.unpack(">I", raw[36:40])[0] == zlib.crc32(raw[:36])
    header = ShareHeader.parse(raw)
    assert (header.k, header.n, header.index, header.block_size, header.data_size) == (
        3,
        5,
        4,
        4096,
        100_000,
    )
    assert header.to_bytes() == raw[:HEADER_SIZE]
    assert header.share_size == len(raw)
    first_block = raw[HEADER_SIZE : HEADER_SIZE + 4096]
    crc = struct.unpack(">I", raw[HEADER_SIZE + 4096 : HEADER_SIZE + 4100])[0]
    assert crc == zlib.crc32(bytes(range(16)) + bytes([4]) + struct.pack(">I", 0) + first_block)


def test_encoding_is_deterministic_for_a_given_encoding_id() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(500)
    assert make_shares(data, code, encoding_id=b"x" * 16) == make_shares(
        data, code, encoding_id=b"x" * 16
    )
    assert make_shares(data, code) != make_shares(data, code)


@pytest.mark.parametrize("stripe", [0, 3, 7])
def test_corrupt_block_is_skipped_and_another_share_takes_over(stripe: int) -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(8 * code.stripe_size - 5)
    shares = make_shares(data, code)
    shares[0] = flip(shares[0], code.stripe_offset(stripe) + 3)
    decoder = ShareDecoder(openers(shares))
    assert b"".join(decoder.read()) == data
    assert list(decoder.failed) == ["s0"]
    assert isinstance(decoder.failed["s0"], CorruptShareError)
    assert f"checksum mismatch in stripe {stripe}" in str(decoder.failed["s0"])


def test_corrupt_checksum_bytes_are_detected_too() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(100)
    shares = make_shares(data, code)
    shares[1] = flip(shares[1], code.stripe_offset(1) + B + 1)
    decoder = ShareDecoder(openers(shares))
    assert b"".join(decoder.read()) == data
    assert "s1" in decoder.failed


def test_corruption_without_a_spare_fails_clearly() -> None:
    code = ErasureCode(2, 3, B)
    shares = make_shares(data_of(100), code)
    shares[0] = flip(shares[0], code.stripe_offset(2))
    with pytest.raises(NotEnoughSharesError, match="s0: CorruptShareError"):
        decode(openers(shares, [0, 1]))


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda s: flip(s, 5), "header checksum mismatch"),
        (lambda s: b"JUNK" + s[4:], "bad magic"),
        (lambda s: s[:20], "shorter than a share header"),
        (lambda s: s[:-3], "truncated at stripe"),
    ],
)
def test_damaged_shares_are_dropped(damage: Callable[[bytes], bytes], fragment: str) -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(200)
    shares = make_shares(data, code)
    shares[1] = damage(shares[1])
    decoder = ShareDecoder(openers(shares))
    assert b"".join(decoder.read()) == data
    assert fragment in str(decoder.failed["s1"])


def test_unavailable_backends_are_skipped_like_corrupt_shares() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(300)
    shares = make_shares(data, code)

    def missing(start: int, stop: int | None) -> io.BytesIO:
        raise NotFoundError("k", backend="s0")

    def down(start: int, stop: int | None) -> io.BytesIO:
        raise BackendUnavailable("connection refused", backend="s1")

    decoder = ShareDecoder({"gone": missing, "down": down, **openers(shares, [2, 0])})
    assert b"".join(decoder.read()) == data
    assert set(decoder.failed) == {"gone", "down"}
    assert isinstance(decoder.failed["gone"], NotFoundError)


class _FailsAfter:
    """A reader that raises after some bytes, as a backend connection dying mid-read."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._reader = io.BytesIO(data)
        self._left = limit

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            raise BackendUnavailable("connection reset", backend="s0")
        piece = self._reader.read(min(size, self._left) if size >= 0 else self._left)
        self._left -= len(piece)
        return piece


def test_a_share_dying_mid_stream_is_replaced_from_that_stripe_by_range() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(20 * code.stripe_size)
    shares = make_shares(data, code)
    calls: list[tuple[str, int, int | None]] = []

    def recording(label: str, share: bytes, limit: int | None = None) -> ShareOpener:
        def opener(start: int, stop: int | None) -> object:
            calls.append((label, start, stop))
            piece = share[start:stop]
            return io.BytesIO(piece) if limit is None else _FailsAfter(piece, limit)

        return opener  # type: ignore[return-value]

    dying = code.stripe_offset(9) + 2
    decoder = ShareDecoder(
        {
            "s0": recording("s0", shares[0], dying),
            "s1": recording("s1", shares[1]),
            "s2": recording("s2", shares[2]),
        }
    )
    assert b"".join(decoder.read()) == data
    assert "s0" in decoder.failed
    # s2 was asked for its header, then for its blocks from stripe 9 to the end.
    assert ("s2", 0, HEADER_SIZE) in calls
    assert ("s2", code.stripe_offset(9), None) in calls


def test_unexpected_errors_are_not_swallowed() -> None:
    def broken(start: int, stop: int | None) -> io.BytesIO:
        raise RuntimeError("bug")

    shares = make_shares(b"abc", ErasureCode(2, 3, B))
    with pytest.raises(RuntimeError, match="bug"):
        decode({"s0": broken, **openers(shares, [1, 2])})


def test_shares_of_different_encodings_are_never_mixed() -> None:
    code = ErasureCode(2, 3, B)
    old, new = data_of(300, seed=1), data_of(300, seed=2)
    old_shares, new_shares = make_shares(old, code), make_shares(new, code)
    # The stale share is preferred, but the new encoding gathers k shares first.
    decoder = ShareDecoder(
        {
            "a": bytes_opener(old_shares[0]),
            "b": bytes_opener(new_shares[1]),
            "c": bytes_opener(new_shares[2]),
        }
    )
    assert b"".join(decoder.read()) == new
    assert isinstance(decoder.failed["a"], MismatchedShareError)
    # Two old shares first: the old encoding wins, the new share is reported.
    decoder = ShareDecoder(
        {
            "a": bytes_opener(old_shares[0]),
            "b": bytes_opener(old_shares[1]),
            "c": bytes_opener(new_shares[2]),
        }
    )
    assert b"".join(decoder.read()) == old
    assert "c" not in decoder.failed  # never needed, never opened


def test_a_stale_spare_is_rejected_when_it_is_needed() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(300, seed=1)
    shares = make_shares(data, code)
    stale = make_shares(data_of(300, seed=9), code)[2]
    shares[0] = flip(shares[0], code.stripe_offset(4))
    decoder = ShareDecoder(
        {"a": bytes_opener(shares[0]), "b": bytes_opener(shares[1]), "c": bytes_opener(stale)}
    )
    with pytest.raises(NotEnoughSharesError):
        b"".join(decoder.read())
    assert isinstance(decoder.failed["a"], CorruptShareError)
    assert isinstance(decoder.failed["c"], MismatchedShareError)


def test_duplicate_share_index_counts_once_but_serves_as_a_spare() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(300)
    shares = make_shares(data, code)
    damaged = flip(shares[0], code.stripe_offset(3))
    decoder = ShareDecoder(
        {
            "a": bytes_opener(damaged),
            "a-copy": bytes_opener(shares[0]),
            "b": bytes_opener(shares[1]),
        }
    )
    assert b"".join(decoder.read()) == data
    assert list(decoder.failed) == ["a"]


@pytest.mark.parametrize(("k", "n"), [(1, 3), (2, 3), (3, 5), (4, 10)])
def test_regenerate_rebuilds_each_share_bit_identical_from_any_k(k: int, n: int) -> None:
    code = ErasureCode(k, n, B)
    data = data_of(9 * code.stripe_size + 5)
    shares = make_shares(data, code)
    for lost in range(n):
        survivors = [i for i in range(n) if i != lost]
        for subset in itertools.combinations(survivors, k):
            assert b"".join(regenerate(lost, openers(shares, subset))) == shares[lost]


def test_regenerate_a_corrupt_share_while_another_source_is_corrupt_too() -> None:
    code = ErasureCode(3, 5, B)
    data = data_of(2000)
    shares = make_shares(data, code)
    broken = flip(shares[1], code.stripe_offset(5) + 1)
    with pytest.raises(CorruptShareError):
        verify_share(broken)
    sources = {
        "s0": bytes_opener(flip(shares[0], code.stripe_offset(2))),
        **openers(shares, [2, 3, 4]),
    }
    assert b"".join(regenerate(1, sources)) == shares[1]
    verify_share(b"".join(regenerate(1, sources)))


def test_regenerate_rejects_an_index_outside_the_code() -> None:
    shares = make_shares(b"abc", ErasureCode(2, 3, B))
    with pytest.raises(ValueError, match="from 0 to 2"):
        b"".join(regenerate(3, openers(shares)))


def test_verify_share() -> None:
    code = ErasureCode(2, 3, B)
    shares = make_shares(data_of(500), code)
    assert verify_share(io.BytesIO(shares[2]), label="gs").index == 2
    with pytest.raises(CorruptShareError, match="'gs': checksum mismatch in stripe 6"):
        verify_share(flip(shares[2], code.stripe_offset(6) + 2), label="gs")
    with pytest.raises(CorruptShareError, match="truncated"):
        verify_share(shares[2][:-1])
    with pytest.raises(CorruptShareError, match="after the last block"):
        verify_share(shares[2] + b"\0")


def test_empty_data() -> None:
    code = ErasureCode(2, 3, B)
    shares = make_shares(b"", code)
    assert all(len(s) == HEADER_SIZE for s in shares)
    assert decode(openers(shares, [2, 1])) == b""
    assert b"".join(regenerate(0, openers(shares, [1, 2]))) == shares[0]


def test_source_of_the_wrong_size_is_rejected() -> None:
    code = ErasureCode(2, 3, B)
    sinks = [io.BytesIO() for _ in range(3)]
    with pytest.raises(ValueError, match="ended after 10 bytes"):
        code.encode_to(b"x" * 10, data_size=11, sinks=sinks)
    with pytest.raises(ValueError, match="more than data_size=9"):
        code.encode_to(b"x" * 10, data_size=9, sinks=sinks)
    with pytest.raises(ValueError, match="3 sinks"):
        code.encode_to(b"x", data_size=1, sinks=sinks[:2])
    with pytest.raises(TypeError):
        list(code.encode("text", data_size=4))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("k", "n", "block_size"), [(0, 3, 16), (4, 3, 16), (1, 256, 16), (2, 3, 0), (2, 3, 2**27)]
)
def test_parameters_are_validated(k: int, n: int, block_size: int) -> None:
    with pytest.raises(ValueError):
        ErasureCode(k, n, block_size)


def test_header_property_reads_only_headers() -> None:
    code = ErasureCode(2, 3, B)
    shares = make_shares(data_of(1000), code)
    calls: list[tuple[int, int | None]] = []

    def recording(share: bytes) -> ShareOpener:
        def opener(start: int, stop: int | None) -> io.BytesIO:
            calls.append((start, stop))
            return io.BytesIO(share[start:stop])

        return opener

    decoder = ShareDecoder({f"s{i}": recording(s) for i, s in enumerate(shares)})
    assert decoder.data_size == 1000
    assert calls == [(0, HEADER_SIZE), (0, HEADER_SIZE)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kn=st.sampled_from([(1, 2), (2, 3), (3, 5), (4, 6)]),
    block=st.integers(1, 40),
    size=st.integers(0, 1500),
    start=st.integers(0, 1600),
    length=st.one_of(st.none(), st.integers(0, 1600)),
    drop=st.integers(0, 5),
)
def test_range_reads_return_exactly_the_slice_and_fetch_only_its_stripes(
    kn: tuple[int, int], block: int, size: int, start: int, length: int | None, drop: int
) -> None:
    k, n = kn
    code = ErasureCode(k, n, block)
    data = data_of(size)
    shares = make_shares(data, code)
    fetched: list[int] = []

    def counting(share: bytes) -> ShareOpener:
        def opener(a: int, b: int | None) -> io.BytesIO:
            piece = share[a:b]
            fetched.append(len(piece))
            return io.BytesIO(piece)

        return opener

    order = [i for i in range(n) if i != drop % n] if n > k else list(range(n))
    decoder = ShareDecoder({str(i): counting(shares[i]) for i in order})
    stop = None if length is None else start + length
    assert b"".join(decoder.read_range(start, stop)) == data[start:stop]
    wanted = len(data[start:stop])
    stripes = -(-(wanted + code.stripe_size - 1) // code.stripe_size) if wanted else 0
    body = sum(fetched) - k * HEADER_SIZE
    assert body <= k * stripes * (block + CHECKSUM_SIZE)


def test_a_decoder_serves_several_ranges() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(1000)
    decoder = ShareDecoder(openers(make_shares(data, code), [1, 2]))
    assert b"".join(decoder.read_range(10, 20)) == data[10:20]
    assert b"".join(decoder.read_range(900)) == data[900:]
    assert b"".join(decoder.read()) == data
    assert b"".join(decoder.read_range(2000)) == b""
    with pytest.raises(ValueError, match="non-negative"):
        list(decoder.read_range(-1))


class _Tracked(io.BytesIO):
    def __init__(self, data: bytes, registry: list[_Tracked]) -> None:
        super().__init__(data)
        registry.append(self)


def test_readers_are_closed_after_a_read_and_when_a_read_is_abandoned() -> None:
    code = ErasureCode(2, 3, B)
    data = data_of(50 * code.stripe_size)
    shares = make_shares(data, code)
    registry: list[_Tracked] = []

    def tracked(share: bytes) -> ShareOpener:
        return lambda a, b: _Tracked(share[a:b], registry)

    decoder = ShareDecoder({f"s{i}": tracked(s) for i, s in enumerate(shares)})
    assert b"".join(decoder.read()) == data
    assert decoder.used == ("s0", "s1")
    assert registry
    assert all(r.closed for r in registry)

    registry.clear()
    with ShareDecoder({f"s{i}": tracked(s) for i, s in enumerate(shares)}) as abandoned:
        stream = abandoned.read()
        next(stream)
    assert registry
    assert all(r.closed for r in registry)


def test_used_names_the_share_that_stood_in() -> None:
    code = ErasureCode(2, 3, B)
    shares = make_shares(data_of(100), code)
    shares[1] = flip(shares[1], code.stripe_offset(0))
    decoder = ShareDecoder(openers(shares))
    b"".join(decoder.read())
    assert decoder.used == ("s0", "s2")
    assert list(decoder.failed) == ["s1"]
