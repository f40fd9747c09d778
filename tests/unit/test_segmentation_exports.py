"""The segmentation package's public names, and its promise to import its extras lazily."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

MODULES = [
    "failover.segmentation",
    "failover.segmentation.crypto",
    "failover.segmentation.erasure",
    "failover.segmentation.errors",
    "failover.segmentation.keys",
    "failover.segmentation.spool",
    "failover.segmentation.throughput",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_exists_and_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for exported in module.__all__:
        value = getattr(module, exported)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, exported


def test_package_reexports_the_submodules_public_api() -> None:
    package = importlib.import_module("failover.segmentation")
    for exported in package.__all__:
        assert getattr(package, exported) is not None


def test_importing_the_package_does_not_import_cryptography_or_zfec() -> None:
    code = (
        "import sys, failover.segmentation, failover.segmentation.throughput; "
        "print('cryptography' in sys.modules, 'zfec' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]
