"""The repair journal: durable intent for every replica action, in SQLite (WAL mode).

Before a replicated write or delete is sent, one row per backend records "this backend
must end up holding ``key`` at ``version``" (or, for a delete, a *tombstone*: "must not
hold ``key`` at a version older than ``version``"). A backend's row is removed when it
acknowledges. Whatever is left is exactly the set of replicas that may have missed an
action — after a timeout, an open breaker, or the writing process being killed — and
the repairer works through it.

Durability: intents are committed with ``synchronous=FULL`` (the WAL is fsynced before
the write is sent, so not even a power loss forgets an acknowledged write's intent);
completions use ``synchronous=NORMAL`` (a completion lost to a power cut only makes
repair re-check a replica that is already fine). WAL mode with ``busy_timeout`` makes
the file safe to share between processes on one host. The file is created ``0600``.

One row per ``(replica, key)``: a newer version replaces an older pending one, because
repairing to the newest version also repairs every older write.

**Scope.** Rows are keyed by each replica's *identity* (scheme, endpoint, account,
bucket or directory, prefix: :func:`~failover.backends.base.replica_identity`), never
by its display name, and a journal object sees only the rows of the replicas it was
opened for. Two configurations sharing one file (two applications on a host with the
default path, different prefixes in the same buckets, both naming a backend ``aws``)
therefore never see, repair or drop each other's rows; two configurations over the
same places share them, as they should. Files written before rows were scoped (schema
version 0, rows keyed by name) are migrated once, by the first configuration that
opens them: its backends' names are taken to mean its replicas.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from failover.errors import ConfigError

__all__ = ["JournalAction", "RepairJournal"]

#: ``put``: hold ``key`` at ``version`` or newer; ``delete``: a tombstone; ``verify``: the
#: replica's bytes at ``version`` failed their checksum and must be rewritten.
ActionKind = Literal["put", "delete", "verify"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    backend TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('put', 'delete', 'verify')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (backend, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS actions_by_key ON actions (key);
CREATE TABLE IF NOT EXISTS markers (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"""
#: ``PRAGMA user_version`` of a file whose rows are keyed by replica identity.
_SCOPED_SCHEMA = 1

_BUSY_TIMEOUT_MS = 30_000
_COLUMNS = "backend, key, version, op, attempts, last_error, created"


@dataclass(frozen=True, slots=True)
class JournalAction:
    """One pending replica action.

    Attributes:
        backend: the replica that may lack the action.
        key: object key.
        version: the version to hold (put) or the tombstone's version (delete).
        op: ``"put"`` or ``"delete"``.
        attempts: repair attempts made so far.
        last_error: why the last repair attempt failed, if it did.
        created: when the action was recorded (Unix time).
    """

    backend: str
    key: str
    version: str
    op: ActionKind
    attempts: int = 0
    last_error: str | None = None
    created: float = 0.0


class RepairJournal:
    """Durable record of replica actions not yet acknowledged (thread- and process-safe).

    Args:
        path: the SQLite file (created with 0600 permissions, parent directories
            created), or ``":memory:"`` for a journal that lives only as long as this
            object (tests, demos: it survives no crash).
        replicas: backend name to replica identity, for every backend of the
            configuration; the journal sees only these replicas' rows, and its methods
            take and return names. Default: each name of a backend passed later is its
            own identity (a journal used by one configuration only).

    Raises:
        ConfigError: the file cannot be created or opened (the message names it), or
            two names share one identity.
    """

    def __init__(self, path: str, *, replicas: Mapping[str, str] | None = None) -> None:
        self._path = path
        self._scope: dict[str, str] | None = None if replicas is None else dict(replicas)
        if self._scope is not None:
            shared = {i for i in self._scope.values() if list(self._scope.values()).count(i) > 1}
            if shared:
                names = sorted(n for n, i in self._scope.items() if i in shared)
                raise ConfigError(
                    f"backends {', '.join(names)} are one storage location; "
                    "each replica must be a different bucket, container, directory or prefix"
                )
        self._names = {i: n for n, i in (self._scope or {}).items()}
        # Delete markers belong to the configuration as a whole (all its replicas).
        self._marker_scope = "\n".join(sorted(self._names))
        self._lock = threading.RLock()
        try:
            if path != ":memory:":
                self._prepare_file(Path(path))
            self._conn = sqlite3.connect(
                path,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
                isolation_level=None,
            )
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if path != ":memory:":
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ConfigError(f"FAILOVER_JOURNAL={path!r}: SQLite refused WAL mode")
            self._conn.executescript(_SCHEMA)
            self._migrate_unscoped_rows()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"FAILOVER_JOURNAL={path!r}: cannot open the repair journal ({exc}); "
                "point it at a writable file on a persistent disk"
            ) from exc

    @staticmethod
    def _prepare_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)

    def _migrate_unscoped_rows(self) -> None:
        """Re-key rows of a schema-0 file by this configuration's identities (once)."""
        if self._scope is None:
            return  # an unscoped journal leaves the file for the first scoped one
        with self._transaction(durable=True) as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= _SCOPED_SCHEMA:
                return
            for name, identity in self._scope.items():
                conn.execute(
                    """INSERT OR IGNORE INTO actions
                       SELECT ?, key, version, op, attempts, last_error, created, updated
                       FROM actions WHERE backend = ?""",
                    (identity, name),
                )
                conn.execute("DELETE FROM actions WHERE backend = ?", (name,))
            conn.execute(f"PRAGMA user_version = {_SCOPED_SCHEMA}")

    @property
    def path(self) -> str:
        """The journal file (``":memory:"`` for an in-memory journal)."""
        return self._path

    def _identity(self, name: str) -> str:
        if self._scope is None:
            return name
        try:
            return self._scope[name]
        except KeyError:
            raise ValueError(f"backend {name!r} is not one of this journal's replicas") from None

    def _visible(self) -> tuple[str, list[object]]:
        """A SQL condition limiting rows to this journal's replicas, and its parameters.

        The condition holds only ``?`` placeholders (the identities are parameters), so
        the queries that interpolate it (S608 below) take no value into their text.
        """
        if self._scope is None:
            return "1", []
        identities: list[object] = list(self._names)
        return f"backend IN ({','.join('?' * len(identities))})", identities

    def _action(self, row: tuple[object, ...]) -> JournalAction:
        replica = str(row[0])
        return JournalAction(self._names.get(replica, replica), *row[1:])  # type: ignore[arg-type]

    @contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def record(self, backends: Iterable[str], key: str, version: str, op: ActionKind) -> None:
        """Durably record that each of ``backends`` must apply ``op`` at ``version``.

        An existing row for the same backend and key is replaced only by a newer version.
        """
        now = time.time()
        rows = [(self._identity(b), key, version, op, now, now) for b in backends]
        with self._transaction(durable=True) as conn:
            conn.executemany(
                """INSERT INTO actions (backend, key, version, op, created, updated)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (backend, key) DO UPDATE SET
                       version = excluded.version, op = excluded.op, attempts = 0,
                       last_error = NULL, updated = excluded.updated
                   WHERE excluded.version > actions.version""",
                rows,
            )

    def complete(self, backend: str, key: str, version: str) -> None:
        """Remove ``backend``'s row for ``key`` if it is still at ``version`` (or older)."""
        with self._transaction(durable=False) as conn:
            conn.execute(
                "DELETE FROM actions WHERE backend = ? AND key = ? AND version <= ?",
                (self._identity(backend), key, version),
            )

    def note_failure(self, action: JournalAction, reason: str) -> None:
        """Count a failed repair attempt of ``action`` (its row stays pending)."""
        with self._transaction(durable=False) as conn:
            conn.execute(
                """UPDATE actions SET attempts = attempts + 1, last_error = ?, updated = ?
                   WHERE backend = ? AND key = ? AND version = ?""",
                (
                    reason[:500],
                    time.time(),
                    self._identity(action.backend),
                    action.key,
                    action.version,
                ),
            )

    def pending(
        self, backends: Iterable[str] | None = None, *, limit: int | None = None
    ) -> list[JournalAction]:
        """Pending actions (for ``backends`` only, when given), oldest first."""
        visible, params = self._visible()
        query = f"SELECT {_COLUMNS} FROM actions WHERE {visible}"  # noqa: S608 - placeholders only
        names = list(backends) if backends is not None else None
        if names is not None:
            query += f" AND backend IN ({','.join('?' * len(names))})"
            params.extend(self._identity(n) for n in names)
        query += " ORDER BY updated, key"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [self._action(row) for row in rows]

    def pending_for_key(self, key: str) -> dict[str, JournalAction]:
        """Backend name to its pending action for ``key`` (usually empty)."""
        visible, params = self._visible()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM actions WHERE key = ? AND {visible}",  # noqa: S608
                [key, *params],
            ).fetchall()
        actions = [self._action(row) for row in rows]
        return {a.backend: a for a in actions}

    def pending_under(self, prefix: str) -> dict[tuple[str, str], JournalAction]:
        """``(backend, key)`` to pending action for keys starting with ``prefix``."""
        visible, params = self._visible()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM actions WHERE substr(key, 1, ?) = ? AND {visible}",  # noqa: S608
                [len(prefix), prefix, *params],
            ).fetchall()
        actions = [self._action(row) for row in rows]
        return {(a.backend, a.key): a for a in actions}

    def record_marker(self, key: str, version: str) -> None:
        """Remember that a delete left markers at ``version`` (to remove after the grace).

        An existing entry for ``key`` is replaced only by a newer version.
        """
        with self._transaction(durable=False) as conn:
            conn.execute(
                """INSERT INTO markers (scope, key, version) VALUES (?, ?, ?)
                   ON CONFLICT (scope, key) DO UPDATE SET version = excluded.version
                   WHERE excluded.version > markers.version""",
                (self._marker_scope, key, version),
            )

    def markers(self, *, older_than: str, limit: int | None = None) -> list[tuple[str, str]]:
        """``(key, version)`` of remembered markers with versions below ``older_than``."""
        query = "SELECT key, version FROM markers WHERE scope = ? AND version < ? ORDER BY version"
        params: list[object] = [self._marker_scope, older_than]
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [(str(key), str(version)) for key, version in rows]

    def forget_marker(self, key: str, version: str) -> None:
        """Drop the entry for ``key`` if it is still at ``version`` (or older)."""
        with self._transaction(durable=False) as conn:
            conn.execute(
                "DELETE FROM markers WHERE scope = ? AND key = ? AND version <= ?",
                (self._marker_scope, key, version),
            )

    def counts(self) -> dict[str, int]:
        """Number of pending actions per backend."""
        visible, params = self._visible()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT backend, COUNT(*) FROM actions WHERE {visible} GROUP BY backend",  # noqa: S608
                params,
            ).fetchall()
        return {self._names.get(replica, replica): count for replica, count in rows}

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"RepairJournal(path={self._path!r})"
