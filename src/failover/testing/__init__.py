"""Test support for applications that use failover.

* :mod:`failover.testing.emulators`: start moto, azurite and fake-gcs-server on free
  loopback ports (also as pytest fixtures: ``moto_server``, ``azurite_server``,
  ``fake_gcs_server``, registered automatically when failover is installed).
* :class:`FaultyBackend`: wrap any backend to inject errors, latency, hangs and
  corrupted bytes, deterministically under a seed.
* :class:`FaultProxy`: a TCP proxy in front of an emulator (or any server) with latency,
  reset, blackhole, refuse, truncate and slow-drip modes switchable at run time.
* :class:`~failover.resilience.ManualClock`: a clock that never sleeps, for the
  resilience policies.
"""

from __future__ import annotations

from failover.resilience.clock import ManualClock
from failover.testing.faults import FaultSettings, FaultyBackend, InjectedFault
from failover.testing.proxy import FaultProxy, ProxyStats

__all__ = [
    "FaultProxy",
    "FaultSettings",
    "FaultyBackend",
    "InjectedFault",
    "ManualClock",
    "ProxyStats",
]
