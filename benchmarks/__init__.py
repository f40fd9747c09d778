"""Benchmarks of failover against the raw cloud SDKs, on the local emulators.

Run ``python -m benchmarks`` (or ``nox -s bench``); ``--quick`` shrinks every scenario for
a smoke run, ``--scenario NAME`` picks scenarios. Each scenario starts its own emulators
(moto, azurite, fake-gcs-server), measures the raw SDK and failover alternately in the
same process, and writes ``<out>/<scenario>.json``, ``<scenario>.md`` and, where a
picture helps, ``<scenario>.png``; ``<out>/README.md`` sums up every target.

Scenarios (see ``docs/performance.md`` for the targets and the latest figures):

* ``overhead``: Storage over one backend vs the raw SDK client, put/get, 1 KiB and 1 MiB.
* ``fanout``: three-way ``all`` and ``quorum`` writes vs each single backend.
* ``outage``: steady mixed load while one backend is blackholed, then healed.
* ``hedging``: one backend stalls 5 % of reads: ``health`` vs ``hedged`` reads.
* ``large_objects``: 256 MiB through failover (3 backends) vs the raw SDK: throughput, RSS.
* ``erasure``: erasure 2-of-3 (with and without encryption) vs replicate: codec MB/s per
  core, put/get latency on the emulators, storage overhead.
"""
