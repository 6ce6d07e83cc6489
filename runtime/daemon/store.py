"""What a node keeps on its local disk: the hive, the quorum log, and the machines' durable fields.

:class:`HiveDatabase` is the daemon's :class:`~wolfpack.runtime.node.app.Database`: a global update is a
list of hive operations (:mod:`.catalog`); ``persist`` checks it against the hive and appends it to the
quorum log (fdatasync'd), ``apply`` commits it to the hive (synchronous=FULL) and says what it means to
the failover manager.  Under Majority Node Set a change is committed once written on a majority (Q4): GUM
sweeps every member of a membership that holds a majority, each of which logs it before it applies it.

:class:`NodeState` is the small file of the machines' fields that must survive a restart
(``runtime/node/layout.py``'s ``DURABLE``): the membership epoch, round and accepted round (a node never
accepts two proposals of one round), GUM's locker.  It is written atomically and fsync'd before the step
that changed it sends anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wolfpack.errors import DatabaseError
from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.db.checkpoint import write_atomic
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.quorum_log import QuorumLog
from wolfpack.runtime.db.updates import InvalidOperation, Op, validate_ops
from wolfpack.runtime.node.app import FailoverEvent, Update

log = logging.getLogger("wolfpack.store")

#: a checkpoint of the quorum log every this many updates (L2: MSCS resets its log when it grows)
CHECKPOINT_EVERY = 1000


class HiveDatabase:
    def __init__(self, hive: Hive, quorum_log: QuorumLog, n: int, epoch: Callable[[], int],
                 on_groups_changed: Callable[[set[str]], None] | None = None,
                 log_first: Callable[[int, int, list[Op]], None] | None = None) -> None:
        self.hive = hive
        self.quorum_log = quorum_log
        self.n = n
        self._epoch = epoch
        self._on_groups_changed = on_groups_changed or (lambda names: None)
        #: where an update is logged before the local quorum log (the quorum disk's log, if this node owns it);
        #: raises DatabaseError if it cannot be
        self.log_first = log_first or (lambda seq, epoch, ops: None)

    def encode(self, changes: Update) -> Update:
        return catalog.encode(changes)

    def persist(self, seq: int, payload: Update) -> str | None:
        try:
            ops = validate_ops(payload)
            self.hive.check(ops)
        except InvalidOperation as exc:
            return f"update {seq} does not fit the cluster database: {exc}"
        epoch = max(self._epoch(), self.quorum_log.epoch)
        try:
            self.log_first(seq, epoch, ops)
            self.quorum_log.append(seq, epoch, ops)
        except DatabaseError as exc:
            return str(exc)
        return None

    def apply(self, seq: int, payload: Update) -> list[FailoverEvent]:
        ops = validate_ops(payload)
        before = catalog.by_slot(self.hive)
        self.hive.apply(seq, ops, epoch=max(self._epoch(), self.hive.epoch))
        if seq - self.quorum_log.checkpoint_seq >= CHECKPOINT_EVERY:
            self.quorum_log.checkpoint(self.hive)
        touched = catalog.touched_groups(ops)
        if touched:
            self._on_groups_changed(touched)
        return catalog.events_of(before, self.hive, ops, self.n)

    def records(self) -> dict[int, Update]:
        """The payloads of the updates the log holds after its checkpoint (GUM may send the last again)."""
        return {r.seq: [dict(op) for op in r.ops] for r in self.quorum_log.records()}


@dataclass
class NodeState:
    """The machines' durable fields, by machine (``{"membership": {"epoch": 3, ...}, "gum": {...}}``)."""

    path: Path
    fields: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> NodeState:
        if not path.exists():
            return cls(path, {})
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not an object of objects")
        except (OSError, ValueError) as exc:
            raise DatabaseError(f"the node state file {path} is unreadable ({exc}); it holds the regroup rounds "
                                "this node took part in: restore it, or remove it only if the node is being "
                                "re-added as a new node") from exc
        return cls(path, data)

    def update(self, machine: str, values: Mapping[str, Any]) -> None:
        """Record ``values`` of ``machine`` durably if they changed."""
        current = self.fields.get(machine, {})
        if all(current.get(k) == v for k, v in values.items()):
            return
        self.fields[machine] = {**current, **values}
        write_atomic(self.path, json.dumps(self.fields, sort_keys=True).encode())
