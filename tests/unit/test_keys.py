from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import InvalidKeyError, InvalidMetadataError
from failover.keys import MAX_KEY_BYTES, validate_key, validate_metadata, validate_prefix

_segment_chars = st.characters(
    blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\\x7f\ufffe\uffff"
).filter(lambda c: not 0x80 <= ord(c) < 0xA0)
_segment = st.text(_segment_chars, min_size=1, max_size=20).filter(lambda s: s not in (".", ".."))


@given(st.lists(_segment, min_size=1, max_size=8))
def test_valid_keys_are_accepted_unchanged(segments: list[str]) -> None:
    key = "/".join(segments)
    if len(key.encode()) > MAX_KEY_BYTES:
        with pytest.raises(InvalidKeyError):
            validate_key(key)
    else:
        assert validate_key(key) == key


@given(st.text(min_size=0, max_size=50), st.sampled_from(["\x00", "\x1f", "\x7f", "\x85", "\n"]))
def test_control_characters_are_rejected(text: str, control: str) -> None:
    with pytest.raises(InvalidKeyError, match="control character"):
        validate_key(text + control + "x")


@given(
    st.lists(_segment, min_size=0, max_size=3),
    st.sampled_from([".", ".."]),
    st.lists(_segment, min_size=0, max_size=3),
)
def test_dot_segments_are_rejected(before: list[str], dots: str, after: list[str]) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key("/".join([*before, dots, *after]))


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "empty"),
        ("/abs", "starts with '/'"),
        ("a\\b", "'\\\\'"),
        ("a//b", "empty segment"),
        ("dir/", "ends with '/'"),
        ("é" * 513, "1026 bytes"),
        (b"bytes", "must be a str"),
        (None, "must be a str"),
    ],
)
def test_invalid_keys_name_the_problem(key: object, fragment: str) -> None:
    with pytest.raises(InvalidKeyError, match=fragment):
        validate_key(key)


def test_max_length_in_bytes_not_characters() -> None:
    assert validate_key("a" * 1024)
    assert validate_key("é" * 512)
    with pytest.raises(InvalidKeyError):
        validate_key("a" * 1025)


def test_invalid_key_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_key("")


@pytest.mark.parametrize("prefix", ["", "a", "a/", "reports/2024-"])
def test_valid_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/a", "a//", "../", "a\x00"])
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_prefix(prefix)


def test_metadata_rules() -> None:
    assert validate_metadata({"team": "ops", "_x1": ""}) == {"team": "ops", "_x1": ""}
    assert validate_metadata({"note": "two words"}) == {"note": "two words"}
    assert validate_metadata(None) == {}
    for bad_name in ["Team", "1x", "with-dash", "a b", "x" * 65, "failover_version"]:
        with pytest.raises(InvalidMetadataError):
            validate_metadata({bad_name: "v"})
    for bad_value in ["é", "line\nbreak", 3, " leading", "trailing "]:
        with pytest.raises(InvalidMetadataError):
            validate_metadata({"ok": bad_value})  # type: ignore[dict-item]
    with pytest.raises(InvalidMetadataError, match="2048"):
        validate_metadata({f"k{i}": "v" * 100 for i in range(30)})
