"""``python -m failover.cli``: the same as the ``failover`` console script."""

from __future__ import annotations

from failover.cli import main

main()
