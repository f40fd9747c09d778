from __future__ import annotations

import pytest

from failover.backends import LocalBackend, MemoryBackend, from_url, parse_backend_url
from failover.errors import ConfigError


def test_parse_components() -> None:
    url = parse_backend_url("s3://bucket/some/prefix?region=eu-west-1&name=primary")
    assert (url.scheme, url.bucket, url.prefix, url.name) == (
        "s3",
        "bucket",
        "some/prefix/",
        "primary",
    )
    assert url.params == {"region": "eu-west-1"}
    assert parse_backend_url("gs://b").name == "gs:b"
    assert parse_backend_url("az://c/").prefix == ""


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://x", "unknown scheme"),
        ("s3://", "missing bucket"),
        ("", "non-empty"),
        ("file://relative/path", "absolute path"),
        ("s3://b?region=a&region=b", "given twice"),
        ("az://c?account_key=SECRETVALUE", "do not put credentials"),
        ("s3://user:SECRETVALUE@bucket", "do not put credentials"),
    ],
)
def test_bad_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_backend_url(url)
    assert "SECRETVALUE" not in str(info.value)


def test_unknown_parameter_names_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="unknown parameter"):
        from_url("memory://x?colour=blue")


def test_from_url_builds_local_and_memory(tmp_path) -> None:
    local = from_url(f"file://{tmp_path}/replica?name=offline")
    assert isinstance(local, LocalBackend)
    assert local.name == "offline"
    memory_a = from_url("memory://shared")
    memory_b = from_url("memory://shared?name=other")
    assert isinstance(memory_a, MemoryBackend)
    from failover.payload import Payload

    with Payload.from_bytes(b"x") as payload:
        memory_a.put("k", payload, content_type="text/plain", metadata={})
    assert memory_b.get("k").data == b"x"
    MemoryBackend.forget("shared")


def test_import_failover_imports_no_provider_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, failover, failover.backends, failover.testing;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('boto3','botocore','azure','google')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
