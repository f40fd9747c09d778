"""Hinted handoff: what a replica missed, kept by the replicas that did not miss it.

The repair journal is a file on the writing host; a host lost with its disk takes with
it the knowledge of which replicas missed which writes. So when a replicated write or
delete ends with some replicas acknowledged and others not (down, breaker open, too
slow), the writer also leaves a **hint** on each replica that took it: a small JSON
object under the reserved prefix ``.failover-hints/`` (keys cannot start with it, and
``list`` never shows it)::

    .failover-hints/<sha256(target identity)[:16]>/<sha256(key)[:32]>
    {"key": "reports/q3.csv", "version": "0001732650000123.000004.9f2c4e1a", "op": "put"}

One hint per (missed replica, key): it is written with the same last-writer-wins
conditional write as objects, so it always names the newest action the replica
missed. Any instance's repairer (``repair()`` or the background worker) lists the
hints for each replica that is reachable again, a few small listings per pass and no
full scan, performs each action exactly as it would a journal row, and removes the
hint conditionally on its etag (a newer hint written meanwhile survives).

**Many instances, one hint.** There is no lease. Every repair action is a conditional,
last-writer-wins write that checks what the target holds first, so performing it twice
is harmless and cheap (a ``head`` that finds the target up to date); a lease would need
a clock-bound expiry and would stall the hint for that long whenever its holder died,
which is the case hints exist for. Instances visit hints in a random order, so a fleet
mostly spreads the work instead of repeating it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from failover.backends.base import META_VERSION, Backend, StoredObject
from failover.errors import NotFoundError, PreconditionFailedError
from failover.keys import RESERVED_KEY_PREFIX
from failover.payload import Payload
from failover.replication.writer import write_if_newer

__all__ = ["HINT_PREFIX", "META_HINT", "Hint", "hints_for", "remove_hint", "write_hint"]

#: Where hints live on every replica.
HINT_PREFIX = RESERVED_KEY_PREFIX
#: Metadata entry that marks a hint object.
META_HINT = "failover_hint"


@dataclass(frozen=True, slots=True)
class Hint:
    """One hint read from a replica.

    Attributes:
        key: the object key the target replica missed an action on.
        version: the action's version stamp.
        op: ``"put"`` or ``"delete"``.
        holder: name of the replica the hint was read from.
        stored: the hint object itself (its etag makes removal conditional).
    """

    key: str
    version: str
    op: Literal["put", "delete"]
    holder: str
    stored: StoredObject


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def target_prefix(target_identity: str) -> str:
    """The prefix of the hints for one replica (by its identity, see ``replica_identity``)."""
    return f"{HINT_PREFIX}{_digest(target_identity, 16)}/"


def hint_key(target_identity: str, key: str) -> str:
    """Where the hint for ``key`` on the replica ``target_identity`` is stored."""
    return target_prefix(target_identity) + _digest(key, 32)


def write_hint(
    holder: Backend, target_identity: str, key: str, version: str, op: Literal["put", "delete"]
) -> None:
    """Leave on ``holder`` a hint that the replica ``target_identity`` missed an action.

    An existing hint for a newer action is kept (last writer wins).
    """
    body = json.dumps({"key": key, "version": version, "op": op}, sort_keys=True).encode()
    with Payload.from_source(body) as payload:
        write_if_newer(
            holder,
            hint_key(target_identity, key),
            payload,
            content_type="application/json",
            metadata={META_VERSION: version, META_HINT: "1"},
            version=version,
        )


def hints_for(holder: Backend, target_identity: str) -> Iterator[Hint]:
    """The hints ``holder`` keeps for the replica ``target_identity``.

    Objects under the prefix that are not well-formed hints are skipped.
    """
    for listed in holder.list(target_prefix(target_identity)):
        try:
            fetched = holder.get(listed.key)
        except NotFoundError:
            continue  # completed by another instance since the listing
        try:
            body = json.loads(fetched.data)
            key, version, op = str(body["key"]), str(body["version"]), body["op"]
        except (ValueError, KeyError, TypeError):
            continue
        if op not in ("put", "delete") or listed.key != hint_key(target_identity, key):
            continue
        yield Hint(key=key, version=version, op=op, holder=holder.name, stored=fetched.info)


def remove_hint(holder: Backend, hint: Hint) -> None:
    """Remove ``hint`` from ``holder`` unless a newer hint replaced it since it was read."""
    # A newer hint (kept for the next pass) fails the condition; a removed one is gone.
    with contextlib.suppress(PreconditionFailedError, NotFoundError):
        holder.delete(hint.stored.key, if_match=hint.stored.etag)
