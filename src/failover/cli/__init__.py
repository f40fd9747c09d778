"""The ``failover`` command line: rehearse, audit, operate.

``failover demo`` shows the library surviving the loss of one of three local clouds;
``failover drill`` rehearses the same against the configured backends; ``failover
doctor`` audits the configuration for single points of failure; ``failover status``,
``repair`` and ``reconcile`` are the operator's tools; ``put``, ``get``, ``ls`` and
``rm`` move objects. Run ``failover --help`` for the details, or see the operations
guide in the documentation.

The console script ``failover`` calls :func:`main`; ``python -m failover.cli`` does too.
"""

from __future__ import annotations

from failover.cli._app import app, main

__all__ = ["app", "main"]
