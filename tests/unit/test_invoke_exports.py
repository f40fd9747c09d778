"""The invocation API is importable from the top-level package (contract names)."""

from __future__ import annotations

import subprocess
import sys

import failover
import failover.invoke

TOP_LEVEL = (
    "CallableTarget",
    "FunctionError",
    "InvocationResult",
    "Invoker",
    "InvokerSettings",
    "RequestRejected",
    "TargetNotFoundError",
)


def test_invocation_names_are_exported_from_failover() -> None:
    for name in TOP_LEVEL:
        assert name in failover.__all__, name
        assert getattr(failover, name) is getattr(failover.invoke, name)


def test_importing_failover_imports_no_provider_sdk() -> None:
    code = (
        "import sys, failover, failover.invoke; "
        "print(sorted(m for m in ('boto3', 'urllib3', 'google.auth', 'requests') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
