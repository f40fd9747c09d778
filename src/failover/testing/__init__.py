"""Test support for applications that use failover: emulators, fixtures, fault injection."""

from __future__ import annotations

__all__: list[str] = []
