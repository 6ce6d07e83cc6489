"""The hive: one node's copy of the cluster configuration database (REQUIREMENTS D1-D3).

A registry-like tree of keys, each with named JSON values, kept in one SQLite
file.  Clients and resource types read it with :meth:`Hive.get`,
:meth:`Hive.values`, :meth:`Hive.subkeys`, :meth:`Hive.exists` and
:meth:`Hive.walk`.  It changes in exactly two ways:

* :meth:`Hive.apply` ``(seq, ops)``: one global update, in sequence-number
  order (``seq == last_seq + 1``), all of its operations or none of them;
* :meth:`Hive.load_snapshot` / :meth:`Hive.restore`: the whole database
  replaced by a snapshot, when a joining node receives it from its sponsor or
  a stale node loads a checkpoint (``QuorumLog.catch_up``).

There is no other write method: "changes happen only through global updates".

Durability.  The file is opened with ``journal_mode=WAL`` and
``synchronous=FULL``: every :meth:`apply` is one SQLite transaction whose
commit fsyncs the write-ahead log before it returns, so an update that
:meth:`apply` acknowledged survives a crash or a power cut.  A crash during
:meth:`apply` leaves the hive at the previous update (SQLite rolls the
unfinished transaction back).  ``durable=False`` (``synchronous=OFF``) is for
tests and the simulator only: it survives a killed process but not a power
cut; ``Hive(":memory:")`` keeps the hive in memory (simulator, tests).  In
the daemon the order is: quorum log first (``QuorumLog.append``), then the
hive; a crash between the two leaves the log one update ahead, which
``QuorumLog.catch_up`` applies on restart.

The ``meta`` table holds the schema version, ``last_seq`` (the sequence number
of the last update applied), ``epoch`` (the membership epoch of that update;
never decreases) and ``last_digest`` (the fingerprint of that update, see
:func:`wolfpack.runtime.db.updates.update_digest`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db.snapshot import HiveContent, decode_snapshot, encode_snapshot
from wolfpack.runtime.db.updates import (
    InvalidOperation,
    JsonValue,
    Op,
    ancestors_and_self,
    canonical_json,
    check_key,
    check_value_name,
    parent_of,
    update_digest,
    validate_ops,
)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x57504856  # "WPHV"

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE keys (path TEXT PRIMARY KEY, parent TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX keys_by_parent ON keys (parent, path);
CREATE TABLE vals (key TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, name)) WITHOUT ROWID;
"""


class MissingKey(DatabaseError, LookupError):
    """A key that a read asked for does not exist in the hive."""


class OutOfOrderUpdate(DatabaseError):
    """A global update arrived with a sequence number other than ``last_seq + 1``."""

    def __init__(self, seq: int, last_seq: int) -> None:
        self.seq, self.last_seq = seq, last_seq
        if seq <= last_seq:
            message = (
                f"update {seq} is already applied (the hive is at update {last_seq}): it is a duplicate; "
                "acknowledge it without applying it again"
            )
        else:
            missed = f"update {last_seq + 1}" if seq == last_seq + 2 else f"updates {last_seq + 1}..{seq - 1}"
            message = (
                f"update {seq} cannot be applied: the hive is at update {last_seq} and has not seen "
                f"{missed}, so this node is stale; catch up first by replaying "
                "the quorum log (QuorumLog.catch_up) or by receiving the database from a sponsor"
            )
        super().__init__(message)

    @property
    def duplicate(self) -> bool:
        """True when the update was applied already (not a gap)."""
        return self.seq <= self.last_seq


def _subtree_bounds(key: str) -> tuple[str, str]:
    """Every path strictly under ``key`` is in ``[key + "/", key + "0")`` ('0' follows '/')."""
    return key + "/", key + "0"


class Hive:
    """One node's cluster database in SQLite; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.path = Path(path)
        self.in_memory = str(path) == ":memory:"
        self.durable = durable and not self.in_memory
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as error:
            raise DatabaseError(
                f"cannot open the hive {self.path}: {error}; check the path and its permissions"
            ) from None
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        try:
            self._db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'OFF'}")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise DatabaseError(
                f"{self.path} is not a usable SQLite database ({error}); a hive file was expected: "
                "move it away and receive the database from a sponsor"
            ) from None
        if mode.lower() != "wal" and not self.in_memory:
            raise DatabaseError(f"the hive {self.path} cannot use write-ahead logging (journal_mode is {mode})")
        if not tables:
            with self._transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self._db.executemany(
                    "INSERT INTO meta (name, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("last_seq", 0), ("epoch", 0), ("last_digest", "")],
                )
        elif app_id != APPLICATION_ID or "meta" not in tables:
            raise DatabaseError(
                f"{self.path} is an SQLite database but not a Wolfpack hive; "
                "give the hive its own file, or move this one away"
            )
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise DatabaseError(
                f"the hive {self.path} has schema version {meta.get('schema_version')!r}, this Wolfpack uses "
                f"{SCHEMA_VERSION}: run the Wolfpack version that wrote it, or receive the database from a sponsor"
            )
        self._read_meta()

    def _read_meta(self) -> tuple[int, int, str]:
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        self._last_seq, self._epoch = int(meta["last_seq"]), int(meta["epoch"])
        self._last_digest = str(meta["last_digest"])
        return self._last_seq, self._epoch, self._last_digest

    def _write_meta(self, last_seq: int, epoch: int, last_digest: str) -> None:
        self._db.executemany(
            "UPDATE meta SET value = ? WHERE name = ?",
            [(last_seq, "last_seq"), (epoch, "epoch"), (last_digest, "last_digest")],
        )

    @contextmanager
    def _transaction(self, *, commit: bool = True) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on any exception, or when ``commit`` is false)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise DatabaseError(f"cannot start a transaction on the hive {self.path}: {error}") from None
        try:
            yield
            if commit:
                self._db.execute("COMMIT")
        except BaseException as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._read_meta()
            if isinstance(error, sqlite3.Error):
                raise DatabaseError(
                    f"the hive {self.path} could not be written ({error}); nothing was changed: "
                    "check the disk (space, permissions) and retry"
                ) from error
            raise
        else:
            if not commit and self._db.in_transaction:
                self._db.execute("ROLLBACK")

    # ------------------------------------------------------------------ state
    @property
    def last_seq(self) -> int:
        """Sequence number of the last global update applied (0: none)."""
        return self._last_seq

    @property
    def epoch(self) -> int:
        """Membership epoch of the last global update applied."""
        return self._epoch

    @property
    def last_digest(self) -> str:
        """Fingerprint of the last global update applied ("" when none, or as the snapshot loaded said)."""
        return self._last_digest

    # ------------------------------------------------------------------ writes
    def apply(self, seq: int, ops: Sequence[Op], *, epoch: int | None = None) -> None:
        """Apply global update ``seq`` (all of ``ops`` or nothing) and set ``last_seq = seq``, durably.

        ``epoch`` is the membership epoch the update was issued in (None: keep
        the hive's).  Raises :class:`OutOfOrderUpdate` unless ``seq ==
        last_seq + 1``, :class:`InvalidOperation` when an operation is
        malformed or does not fit the content (the hive is then unchanged).
        """
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise InvalidOperation(f"sequence number {seq!r} is not a positive integer")
        body = validate_ops(ops)
        with self._transaction():
            last_seq, current_epoch, _ = self._read_meta()
            if seq != last_seq + 1:
                raise OutOfOrderUpdate(seq, last_seq)
            new_epoch = current_epoch if epoch is None else epoch
            if not isinstance(new_epoch, int) or isinstance(new_epoch, bool) or new_epoch < current_epoch:
                raise DatabaseError(
                    f"update {seq} comes from epoch {new_epoch!r}, older than the hive's epoch {current_epoch}: "
                    "it was issued by a member of an earlier membership and is refused; resubmit it"
                )
            self._apply_ops(body)
            digest = update_digest(seq, body)
            self._write_meta(seq, new_epoch, digest)
        self._last_seq, self._epoch, self._last_digest = seq, new_epoch, digest

    def check(self, ops: Sequence[Op]) -> None:
        """Raise :class:`InvalidOperation` if ``ops`` would not apply to the hive as it is; change nothing."""
        body = validate_ops(ops)
        with self._transaction(commit=False):
            self._apply_ops(body)

    def _apply_ops(self, ops: list[Op]) -> None:
        for index, op in enumerate(ops):
            kind, key = op["op"], op["key"]
            if kind == "create_key":
                self._db.executemany(
                    "INSERT OR IGNORE INTO keys (path, parent) VALUES (?, ?)",
                    [(path, parent_of(path)) for path in ancestors_and_self(key)],
                )
                continue
            if not self._exists(key):
                raise InvalidOperation(
                    f"operation #{index} ({kind}) names the key {key!r}, which does not exist: "
                    "create it first (create_key) in this or an earlier update; nothing was changed"
                )
            if kind == "delete_key":
                low, high = _subtree_bounds(key)
                self._db.execute("DELETE FROM keys WHERE path = ? OR (path >= ? AND path < ?)", (key, low, high))
                self._db.execute("DELETE FROM vals WHERE key = ? OR (key >= ? AND key < ?)", (key, low, high))
            elif kind == "set_value":
                self._db.execute(
                    "INSERT OR REPLACE INTO vals (key, name, value) VALUES (?, ?, ?)",
                    (key, op["name"], canonical_json(op["value"])),  # validate_ops checked it
                )
            else:  # delete_value
                deleted = self._db.execute("DELETE FROM vals WHERE key = ? AND name = ?", (key, op["name"])).rowcount
                if deleted != 1:
                    raise InvalidOperation(
                        f"operation #{index} (delete_value) names the value {op['name']!r} of key {key!r}, "
                        "which does not exist; nothing was changed"
                    )

    def load_snapshot(self, data: bytes) -> None:
        """Replace the whole content with a snapshot (from a sponsor or a checkpoint), in one transaction.

        A corrupt snapshot is refused before anything changes
        (:class:`wolfpack.runtime.db.snapshot.CorruptSnapshot`).  The snapshot
        may be older than the hive: the caller decides which copy is right.
        """
        self._load_content(decode_snapshot(data))

    def _load_content(self, content: HiveContent) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM keys")
            self._db.execute("DELETE FROM vals")
            self._db.executemany(
                "INSERT INTO keys (path, parent) VALUES (?, ?)", [(key, parent_of(key)) for key in content.keys]
            )
            self._db.executemany(
                "INSERT INTO vals (key, name, value) VALUES (?, ?, ?)",
                [(key, name, canonical_json(value)) for key, name, value in content.values],  # checked on decode
            )
            self._write_meta(content.last_seq, content.epoch, content.last_digest)
        self._last_seq, self._epoch, self._last_digest = content.last_seq, content.epoch, content.last_digest

    @classmethod
    def restore(cls, path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> Hive:
        """Open (or create) the hive at ``path`` with exactly the content of snapshot ``data``.

        The snapshot is checked before the file is touched, so a corrupt one
        leaves an existing hive as it was.
        """
        content = decode_snapshot(data)
        hive = cls(path, durable=durable)
        try:
            hive._load_content(content)
        except BaseException:
            hive.close()
            raise
        return hive

    # ------------------------------------------------------------------ reads
    def _exists(self, key: str) -> bool:
        return key == "" or self._db.execute("SELECT 1 FROM keys WHERE path = ?", (key,)).fetchone() is not None

    def exists(self, key: str) -> bool:
        """True if the key exists (the root ``""`` always does)."""
        return self._exists(check_key(key, root_ok=True))

    def get(self, key: str, name: str, default: Any = None) -> Any:
        """The value ``name`` of ``key``, or ``default`` when the key or the value does not exist."""
        row = self._db.execute(
            "SELECT value FROM vals WHERE key = ? AND name = ?", (check_key(key, root_ok=True), check_value_name(name))
        ).fetchone()
        return default if row is None else json.loads(row[0])

    def _require(self, key: str) -> str:
        if not self._exists(check_key(key, root_ok=True)):
            raise MissingKey(f"the hive has no key {key!r}; list what exists with subkeys() of its parent")
        return key

    def values(self, key: str) -> dict[str, JsonValue]:
        """Every value of ``key``, by name; raises :class:`MissingKey` when the key does not exist."""
        rows = self._db.execute("SELECT name, value FROM vals WHERE key = ? ORDER BY name", (self._require(key),))
        return {name: json.loads(value) for name, value in rows}

    def subkeys(self, key: str = "") -> list[str]:
        """The names (not paths) of the direct subkeys of ``key``, sorted."""
        rows = self._db.execute("SELECT path FROM keys WHERE parent = ?", (self._require(key),))
        skip = len(key) + 1 if key else 0
        return sorted(path[skip:] for (path,) in rows)

    def walk(self) -> Iterator[tuple[str, dict[str, JsonValue]]]:
        """Every key with its values, depth first, subkeys in sorted order (the root is not included)."""
        content = self.content()
        values: dict[str, dict[str, JsonValue]] = {key: {} for key in content.keys}
        children: dict[str, list[str]] = {key: [] for key in ("", *content.keys)}
        for key in content.keys:
            children[parent_of(key)].append(key)
        for key, name, value in content.values:
            values[key][name] = value
        stack = sorted(children[""], reverse=True)
        while stack:
            key = stack.pop()
            yield key, values[key]
            stack.extend(sorted(children[key], reverse=True))

    def content(self) -> HiveContent:
        """Everything the hive holds, read in one transaction, in canonical order."""
        self._db.execute("BEGIN")
        try:
            meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
            keys = tuple(sorted(path for (path,) in self._db.execute("SELECT path FROM keys")))
            rows = [(k, n, json.loads(v)) for k, n, v in self._db.execute("SELECT key, name, value FROM vals")]
        finally:
            self._db.execute("COMMIT")
        rows.sort(key=lambda row: (row[0], row[1]))
        return HiveContent(int(meta["last_seq"]), int(meta["epoch"]), str(meta["last_digest"]), keys, tuple(rows))

    def snapshot(self) -> bytes:
        """The whole hive (content and ``last_seq``/``epoch``) as checksummed snapshot bytes."""
        return encode_snapshot(self.content())

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Close the database (a clean close also folds the write-ahead log into the file)."""
        self._db.close()

    def __enter__(self) -> Hive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Hive({str(self.path)!r}, last_seq={self._last_seq}, epoch={self._epoch})"
