"""Operation histories of a fleet of writers, and a checker for them (Jepsen style).

A fleet test runs several processes that put, delete and read a few keys through
:class:`failover.Storage` while clouds fail and processes are killed. Each process
records every operation twice in a JSON-lines log: once when it is *invoked* (before
anything is sent) and once when it *completes* (after the call returned or raised).
:func:`read_history` turns those logs into :class:`Operation` records, and
:func:`check` verifies the whole history, plus what every replica holds at the end,
against a simple model.

The model
---------
Each key is a register whose states are a value id (written by the one ``put`` that
wrote it: value ids are unique) or *absent* (the initial state, or a ``delete``). Every
operation takes effect at some instant between its invocation and its completion, or
(unless acknowledged) never. That holds for an operation that raised too: failover
stamps each write with a version when it is invoked and a replica never goes back to an
older version, so a write whose caller already saw it fail (a late replica write, or
repair copying it) cannot overtake an operation invoked after that failure. Only an
operation that never completed (its process was killed mid-call) may take effect at any
instant after its invocation.

An operation is **acknowledged** when it is a ``put`` or ``delete`` that returned
normally (outcome ``ok``). ``unknown`` (``QuorumNotReached``, ``AllBackendsFailed``,
any other error, or no completion recorded) and ``superseded`` (the put raised
:class:`~failover.errors.Superseded`) may or may not have taken effect. ``fail`` means
"certainly not applied" and is excluded from the model: such a put must never be read.

"X strictly before Y" means ``X.completed_ns < Y.invoked_ns``. Times come from
:func:`time.monotonic_ns`, one clock for every process on a Linux host. The recorded
interval of an operation contains its real one (the invocation time is taken before the
call, the completion time after), so strict precedence in the record implies strict
precedence in reality: the rules below never flag a history that has a legal
explanation because of how it was timed.

The rules (per key)
-------------------
``phantom-read`` (a)
    A ``get`` that returned value *v* needs a ``put`` of *v* (any outcome but ``fail``)
    invoked before the get completed. A replica holding a value no put wrote is flagged
    under the same rule.
``stale-read`` (b)
    A ``get`` R that returned *v*, written by put X, is stale if some acknowledged
    operation Y that leaves another state (a put of another value, or a delete) lies
    strictly after X and strictly before R: ``X.completed < Y.invoked`` and
    ``Y.completed < R.invoked``. A ``get`` that returned *not found* needs some source
    of absence, the initial state or a delete D (any outcome but ``fail``) invoked
    before R completed, that no acknowledged put lies strictly between (strictly after
    D, strictly before R); the initial state is strictly before everything. So a
    not-found read after an acknowledged put is legal only if a delete that is not
    strictly before that put (nor before any later acknowledged put) could explain it.
``lost-write`` (c)
    Each replica's final state (after healing and repair) must come from a source X (the
    put of that value; or, for absent, a delete or the initial state) that no
    acknowledged operation leaving another state lies strictly after
    (``X.completed < Y.invoked``). In particular, once a put was acknowledged, the key
    may end absent only through a delete that was not strictly before every later
    acknowledged put.
``divergence`` (d)
    Every replica holds the same final state.

These are necessary conditions of linearizability, not a full linearizability check:
they are cheap, easy to explain, and every violation they report is a real one. They
do not, for example, flag two reads that flip between the values of two puts whose
outcome is unknown (a quorum system without read write-back legitimately does that).

The log format
--------------
One JSON object per line, ``event`` first:

* ``{"event": "invoke", "op": ID, "process": P, "kind": "put"|"delete"|"get",
  "key": K, "value": V|null, "time_ns": T}``: for a put, ``value`` is the value id written;
* ``{"event": "complete", "op": ID, "outcome": "ok"|"fail"|"unknown"|"superseded",
  "value": V|null, "time_ns": T, "error": E|null}``: for a successful get, ``value`` is the
  value id read, ``null`` for not found;
* other events (``"start"``, say) are ignored by the reader.

A process killed with SIGKILL can leave a torn last line: the reader ignores an
unparseable last line that has no newline, and an invocation without a completion is an
operation of unknown outcome that never completed. :class:`HistoryLog` writes the format.
"""

from __future__ import annotations

import enum
import itertools
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, get_args

__all__ = [
    "OUTCOMES",
    "HistoryFormatError",
    "HistoryLog",
    "OpKind",
    "Operation",
    "Outcome",
    "ReplicaState",
    "Rule",
    "Violation",
    "check",
    "read_history",
    "read_log",
]

OpKind = Literal["put", "delete", "get"]
"""What an operation did."""

Outcome = Literal["ok", "fail", "unknown", "superseded"]
"""How an operation ended (see the module docstring for what each one allows)."""

OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
"""Every outcome, in the order summaries print them."""

ReplicaState = str | None
"""What a replica holds for a key: a value id, or None when the key is absent."""

_KINDS: tuple[OpKind, ...] = get_args(OpKind)


class Rule(enum.StrEnum):
    """The rule a :class:`Violation` breaks (the module docstring defines each one)."""

    PHANTOM_READ = "phantom-read"
    STALE_READ = "stale-read"
    LOST_WRITE = "lost-write"
    DIVERGENCE = "divergence"


class HistoryFormatError(ValueError):
    """A history log (or an operation list) does not follow the format."""


@dataclass(frozen=True)
class Operation:
    """One operation of one process, as recorded.

    Attributes:
        op_id: unique over the whole history.
        process: which process ran it (one id per process incarnation).
        kind: ``put``, ``delete`` or ``get``.
        key: the key.
        value: for a put, the value id it wrote; for a completed get, the value id it
            read, or None for not found; None for a delete.
        invoked_ns: :func:`time.monotonic_ns` before the call.
        completed_ns: :func:`time.monotonic_ns` after the call, or None if no completion
            was recorded (the process was killed mid-call).
        outcome: ``ok``, ``fail``, ``unknown`` or ``superseded``.
        error: the error that ended it, when it raised (for messages only).
    """

    op_id: str
    process: str
    kind: OpKind
    key: str
    value: str | None = None
    invoked_ns: int = 0
    completed_ns: int | None = None
    outcome: Outcome = "unknown"
    error: str | None = None

    @property
    def acknowledged(self) -> bool:
        """True for a put or delete that returned normally."""
        return self.kind != "get" and self.outcome == "ok"

    @property
    def writes(self) -> ReplicaState:
        """The state a put or delete leaves: its value id, or None (absent)."""
        return self.value if self.kind == "put" else None

    def describe(self, origin_ns: int = 0) -> str:
        """A one-line description, times in seconds relative to ``origin_ns``."""
        what = {
            "put": f"put {self.value}",
            "delete": "delete",
            "get": f"get -> {'not found' if self.value is None else self.value}"
            if self.outcome == "ok"
            else "get",
        }[self.kind]
        start = (self.invoked_ns - origin_ns) / 1e9
        end = (
            "..." if self.completed_ns is None else f"{(self.completed_ns - origin_ns) / 1e9:.3f}s"
        )
        error = f" ({self.error})" if self.error and self.outcome != "ok" else ""
        return (
            f"{what} [op {self.op_id} by {self.process}, {start:.3f}s..{end}, "
            f"{self.outcome}{error}]"
        )

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    Attributes:
        key: the key it concerns.
        rule: which rule.
        message: what is wrong, naming the operations.
        ops: the operations involved (the read or write first, then the ones that
            show it wrong).
        replicas: for final-state rules, replica name to the state it holds.
    """

    key: str
    rule: Rule
    message: str
    ops: tuple[Operation, ...] = ()
    replicas: tuple[tuple[str, ReplicaState], ...] = ()

    def __str__(self) -> str:
        return f"{self.rule} on {self.key!r}: {self.message}"


# -- the checker -----------------------------------------------------------------------


# The initial state: absent, acknowledged, and strictly before every operation.
_INITIAL = None


def _completed(source: Operation | None) -> float:
    """Completion time of a source of state; -inf for the initial state, +inf if open."""
    if source is None:
        return -math.inf
    return math.inf if source.completed_ns is None else source.completed_ns


def _overwriters(
    source: Operation | None,
    state: ReplicaState,
    acknowledged: Sequence[Operation],
    *,
    before_ns: float,
) -> list[Operation]:
    """Acknowledged ops leaving another state than ``state``, after ``source``, before a time.

    "After": strictly after ``source``; "before": completed before ``before_ns`` (use
    ``math.inf`` for no bound).
    """
    done = _completed(source)
    return [
        y
        for y in acknowledged
        if y.writes != state
        and done < y.invoked_ns
        and y.completed_ns is not None
        and y.completed_ns < before_ns
    ]


def _validate(history: Sequence[Operation]) -> None:
    seen_ids: set[str] = set()
    values: set[tuple[str, str]] = set()
    for op in history:
        if op.op_id in seen_ids:
            raise HistoryFormatError(f"operation id {op.op_id!r} appears twice")
        seen_ids.add(op.op_id)
        if op.kind not in _KINDS or op.outcome not in OUTCOMES:
            raise HistoryFormatError(f"bad kind or outcome in {op!r}")
        if op.kind == "put":
            if op.value is None:
                raise HistoryFormatError(f"put without a value id: {op!r}")
            if (op.key, op.value) in values:
                raise HistoryFormatError(f"value id {op.value!r} put twice on {op.key!r}")
            values.add((op.key, op.value))
        if op.completed_ns is None and op.outcome != "unknown":
            raise HistoryFormatError(f"an operation that never completed must be unknown: {op!r}")
        if op.completed_ns is not None and op.completed_ns < op.invoked_ns:
            raise HistoryFormatError(f"completed before it was invoked: {op!r}")


def check(
    history: Iterable[Operation],
    final_state: Mapping[str, Mapping[str, ReplicaState]] | None = None,
) -> list[Violation]:
    """Check a history, and the replicas' final states, against the register model.

    Args:
        history: every operation of every process, in any order.
        final_state: key to replica name to what that replica holds after healing and
            repair (a value id, or None when absent). Keys missing here get only the
            read rules (a and b); keys present here but never operated on must be
            absent everywhere.

    Returns:
        The violations found, grouped by key (keys sorted), empty if none.

    Raises:
        HistoryFormatError: the history is malformed (an op id or put value id twice, an
            operation that never completed with an outcome other than ``unknown``).
    """
    ops = list(history)
    _validate(ops)
    origin = min((op.invoked_ns for op in ops), default=0)
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    finals = final_state or {}
    violations: list[Violation] = []
    for key in sorted(set(by_key) | set(finals)):
        key_ops = sorted(by_key.get(key, []), key=lambda op: op.invoked_ns)
        checker = _KeyChecker(key, key_ops, origin)
        violations.extend(checker.reads())
        replicas = finals.get(key)
        if replicas:
            violations.extend(checker.final(replicas))
    return violations


class _KeyChecker:
    """The rules for the operations on one key."""

    def __init__(self, key: str, ops: Sequence[Operation], origin_ns: int) -> None:
        self.key = key
        self.origin = origin_ns
        # Writes that may have taken effect (a "fail" one certainly did not).
        self.writes = [op for op in ops if op.kind != "get" and op.outcome != "fail"]
        self.acknowledged = [op for op in self.writes if op.acknowledged]
        self.puts = {op.value: op for op in self.writes if op.kind == "put"}
        self.deletes = [op for op in self.writes if op.kind == "delete"]
        self.gets = [op for op in ops if op.kind == "get" and op.outcome == "ok"]
        self.failed_puts = {op.value: op for op in ops if op.kind == "put" and op.outcome == "fail"}

    def _d(self, op: Operation) -> str:
        return op.describe(self.origin)

    def _absence_sources(self, before_ns: float) -> list[Operation | None]:
        """The initial state and the deletes invoked before ``before_ns``."""
        return [_INITIAL, *(d for d in self.deletes if d.invoked_ns < before_ns)]

    def reads(self) -> Iterable[Violation]:
        """Rules a (phantom reads) and b (stale reads) for every successful get."""
        for read in self.gets:
            assert read.completed_ns is not None  # an ok outcome has a completion
            if read.value is None:
                yield from self._not_found_read(read)
                continue
            put = self.puts.get(read.value)
            if put is None or put.invoked_ns >= read.completed_ns:
                yield self._phantom_read(read, put)
                continue
            later = _overwriters(put, put.value, self.acknowledged, before_ns=read.invoked_ns)
            if later:
                newest = max(later, key=lambda y: y.completed_ns or 0)
                what = (
                    "resurrected after an acknowledged delete"
                    if newest.kind == "delete"
                    else "older than an acknowledged put"
                )
                yield Violation(
                    self.key,
                    Rule.STALE_READ,
                    f"{self._d(read)} read a value {what}: {self._d(newest)} completed after "
                    f"{self._d(put)} completed and before the get began",
                    (read, put, newest),
                )

    def _phantom_read(self, read: Operation, put: Operation | None) -> Violation:
        if put is not None:
            why = f"its put was invoked only after the get completed: {self._d(put)}"
            involved: tuple[Operation, ...] = (read, put)
        elif read.value in self.failed_puts:
            failed = self.failed_puts[read.value]
            why = f"its put was recorded as certainly not applied: {self._d(failed)}"
            involved = (read, failed)
        else:
            why = "no put wrote that value"
            involved = (read,)
        return Violation(self.key, Rule.PHANTOM_READ, f"{self._d(read)}: {why}", involved)

    def _not_found_read(self, read: Operation) -> Iterable[Violation]:
        assert read.completed_ns is not None
        blocked: list[Operation] = []
        for source in self._absence_sources(read.completed_ns):
            later = _overwriters(source, None, self.acknowledged, before_ns=read.invoked_ns)
            if not later:
                return
            blocked.extend(later)
        # Every source of absence is overwritten; name the last acknowledged put before R.
        newest = max(blocked, key=lambda y: y.completed_ns or 0)
        deletes = [d for d in self.deletes if d.invoked_ns < read.completed_ns]
        about = (
            f"; the deletes that could explain it are all strictly before an acknowledged "
            f"put: {', '.join(self._d(d) for d in deletes)}"
            if deletes
            else "; no delete was invoked before it completed"
        )
        yield Violation(
            self.key,
            Rule.STALE_READ,
            f"{self._d(read)} found nothing after {self._d(newest)} was acknowledged{about}",
            (read, newest, *deletes),
        )

    def final(self, replicas: Mapping[str, ReplicaState]) -> Iterable[Violation]:
        """Rules c (acknowledged writes survive) and d (convergence) for the replicas."""
        holders: dict[ReplicaState, list[str]] = defaultdict(list)
        for name, state in sorted(replicas.items()):
            holders[state].append(name)
        listing = tuple(sorted(replicas.items()))
        if len(holders) > 1:
            shown = ", ".join(f"{n}={'absent' if s is None else s}" for n, s in listing)
            yield Violation(
                self.key, Rule.DIVERGENCE, f"the replicas differ: {shown}", replicas=listing
            )
        for state, names in holders.items():
            where = f"{'/'.join(names)} hold{'s' if len(names) == 1 else ''}"
            if state is None:
                sources = self._absence_sources(math.inf)
                what = "absent"
                origin = (
                    "; every delete is strictly before an acknowledged put"
                    if self.deletes
                    else "; the key was never deleted"
                )
            else:
                put = self.puts.get(state)
                if put is None:
                    yield Violation(
                        self.key,
                        Rule.PHANTOM_READ,
                        f"{where} value {state}, which no put wrote"
                        + (
                            " (its put was recorded as failed)" if state in self.failed_puts else ""
                        ),
                        replicas=listing,
                    )
                    continue
                sources = [put]
                what = f"value {state}"
                origin = f"; it was written by {self._d(put)}"
            blocked: list[Operation] = []
            for source in sources:
                later = _overwriters(source, state, self.acknowledged, before_ns=math.inf)
                if not later:
                    break
                blocked.extend(later)
            else:
                newest = max(blocked, key=lambda y: y.completed_ns or 0)
                yield Violation(
                    self.key,
                    Rule.LOST_WRITE,
                    f"{where} {what} at the end, but {self._d(newest)} was acknowledged "
                    f"after it{origin}",
                    (*(s for s in sources if s is not None), newest),
                    listing,
                )


# -- the log: writing and reading ------------------------------------------------------


class HistoryLog:
    """Append a process's operations to a JSON-lines log, durably, one line per event.

    Each line is flushed and fsynced before the call it announces is made (and before
    the next operation starts), so the log of a process killed with SIGKILL holds every
    operation that could have taken effect.

    Args:
        path: the log file (appended to; one file per process incarnation is simplest,
            as a torn last line then stays last).
        process: this process's id in the history.

    Example:
        >>> with HistoryLog("w1.jsonl", process="w1") as log:  # doctest: +SKIP
        ...     op = log.invoke("put", "k", value="w1.1")
        ...     store.put("k", b"w1.1")
        ...     log.complete(op, "ok")
    """

    def __init__(self, path: str | os.PathLike[str], *, process: str) -> None:
        self.process = process
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._ids = itertools.count(1)

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def event(self, name: str, **fields: Any) -> None:
        """Record an event the reader ignores (``start``, with the seed, say)."""
        self._write({"event": name, "process": self.process, **fields})

    def invoke(self, kind: OpKind, key: str, *, value: str | None = None) -> str:
        """Record an invocation (before the call); returns the operation id."""
        op_id = f"{self.process}.{next(self._ids)}"
        self._write(
            {
                "event": "invoke",
                "op": op_id,
                "process": self.process,
                "kind": kind,
                "key": key,
                "value": value,
                "time_ns": time.monotonic_ns(),
            }
        )
        return op_id

    def complete(
        self,
        op_id: str,
        outcome: Outcome,
        *,
        value: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record a completion (after the call returned or raised)."""
        now = time.monotonic_ns()
        self._write(
            {
                "event": "complete",
                "op": op_id,
                "outcome": outcome,
                "value": value,
                "time_ns": now,
                "error": error,
            }
        )

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a line cut short
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise HistoryFormatError(f"{path}:{number}: not a JSON line: {line[:80]!r}") from exc
        if not isinstance(record, dict):
            raise HistoryFormatError(f"{path}:{number}: not a JSON object")
        records.append(record)
    if tail.strip():
        try:
            record = json.loads(tail)
        except ValueError:
            record = None  # torn by a kill: the event it announced did not get logged
        if isinstance(record, dict):
            records.append(record)
    return records


def read_log(path: str | os.PathLike[str]) -> list[Operation]:
    """Read one process's log (see the module docstring for the format).

    Raises:
        HistoryFormatError: a line other than a torn last one is not JSON, a completion
            has no invocation, or a field is missing.
    """
    return read_history([path])


def read_history(paths: Iterable[str | os.PathLike[str]]) -> list[Operation]:
    """Read the logs of every process into one history, sorted by invocation time.

    An invocation without a completion becomes an operation of ``unknown`` outcome
    with ``completed_ns=None``.

    Raises:
        HistoryFormatError: a line other than a torn last one is not JSON, an operation
            id appears twice, a completion has no invocation, or a field is missing.
    """
    invoked: dict[str, dict[str, Any]] = {}
    completed: dict[str, dict[str, Any]] = {}
    for path in map(Path, paths):
        for record in _records(path):
            event = record.get("event")
            op_id = record.get("op")
            if event not in ("invoke", "complete"):
                continue
            if not isinstance(op_id, str):
                raise HistoryFormatError(f"{path}: an {event} without an op id: {record}")
            target = invoked if event == "invoke" else completed
            if op_id in target:
                raise HistoryFormatError(f"{path}: operation {op_id!r} {event}d twice")
            target[op_id] = record
    orphans = sorted(set(completed) - set(invoked))
    if orphans:
        raise HistoryFormatError(f"completions without an invocation: {orphans[:5]}")
    ops: list[Operation] = []
    for op_id, start in invoked.items():
        end = completed.get(op_id)
        try:
            kind: OpKind = start["kind"]
            value = start.get("value") if kind == "put" else None
            if end is not None and kind == "get":
                value = end.get("value")
            ops.append(
                Operation(
                    op_id=op_id,
                    process=str(start["process"]),
                    kind=kind,
                    key=str(start["key"]),
                    value=value,
                    invoked_ns=int(start["time_ns"]),
                    completed_ns=None if end is None else int(end["time_ns"]),
                    outcome="unknown" if end is None else end["outcome"],
                    error=None if end is None else end.get("error"),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HistoryFormatError(f"operation {op_id!r}: bad record ({exc})") from exc
    ops.sort(key=lambda op: (op.invoked_ns, op.op_id))
    _validate(ops)
    return ops
