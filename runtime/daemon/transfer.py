"""The database transfer of a join (design decision 9), over the transport.

A member installed behind its sponsor runs ``command load_database(sponsor)``.
The node then *suspends* (the rest of that step, and every later event, waits):
it asks the sponsor for its database (``db.snapshot_request``), and the
sponsor answers at once with its hive's snapshot, its GUM locker and members,
and the payloads of its last updates (``db.snapshot``).  The node loads the
snapshot into its hive, restarts its quorum log there (its own later records
are orphans), gives its machines the database (GUM's ``database_loaded``, the
failover manager's events of the content), and resumes: for the machines the
transfer happened within the step, as in the simulator.  If the sponsor does
not answer within ``timeout_s`` (or its database is unusable) the membership
machine hears ``database_unavailable`` instead of the rest of the step (its
commit and its ``installed`` report are skipped), and the node halts: its own
database may hold orphans under committed numbers (the simulator's dead
sponsor); it joins again later.

``db`` messages are handled as they arrive, not on the node's queue: the queue
is what waits.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any

from wolfpack.errors import WolfpackError
from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.daemon.node import DaemonNode
from wolfpack.runtime.node.host import ApplyFailed
from wolfpack.runtime.transport.messages import Message

log = logging.getLogger("wolfpack.transfer")

#: payloads of the last updates a sponsor sends along (GUM may have to send its last update again)
RECENT_UPDATES = 16


class Transfer:
    def __init__(self, node: DaemonNode, send: Callable[[int, Message], object], on_loaded: Callable[[], None],
                 timeout_s: float = 3.0,
                 before_resume: Callable[[Callable[[], None], Callable[[str], None]], None] | None = None) -> None:
        self.node = node
        self._send = send
        self._on_loaded = on_loaded
        #: given (go on, halt with a reason) once the database is loaded, while the node still waits: the shell's
        #: reconciliation against the loaded owner table (``runtime/daemon/reconcile.py``) calls one of them
        self._before_resume = before_resume or (lambda go, halt: go())
        self.timeout_s = timeout_s
        self._waiting: tuple[int, asyncio.TimerHandle] | None = None

    # -- the joining node ----------------------------------------------------------------------
    def load(self, sponsor: int) -> None:
        """The membership machine's ``load_database``: suspend, ask the sponsor."""
        if sponsor == self.node.node_id:
            return
        log.info("database transfer: this node is behind; loading the database of node %d", sponsor)
        self.node.suspend()
        handle = asyncio.get_running_loop().call_later(self.timeout_s, self._gave_up, sponsor)
        self._waiting = (sponsor, handle)
        self._send(sponsor, Message("db", "snapshot_request", {"seq": self.node.database.hive.last_seq}))

    def _gave_up(self, sponsor: int) -> None:
        if self._waiting is None or self._waiting[0] != sponsor:
            return
        self._waiting = None
        log.warning("database transfer: node %d did not answer within %.1f s; this node halts rather than serve "
                    "with its own database (it may hold updates the cluster discarded) and joins again later",
                    sponsor, self.timeout_s)
        self.node.resume_failed(ApplyFailed("database_unavailable", {}, f"node {sponsor} did not send its database"))

    def _loaded(self, src: int, message: Message) -> None:
        if self._waiting is None or self._waiting[0] != src:
            log.info("database transfer: an unasked-for database from node %d; ignored", src)
            return
        self._waiting[1].cancel()
        self._waiting = None
        node, db = self.node, self.node.database
        try:
            payload: dict[str, Any] = message.payload if isinstance(message.payload, dict) else {}
            snapshot = base64.b64decode(str(payload["hive"]), validate=True)
            records = {int(seq): list(ops) for seq, ops in payload.get("records", [])}
            db.hive.load_snapshot(snapshot)
            db.quorum_log.reset(db.hive)
        except (KeyError, ValueError, TypeError, WolfpackError) as exc:
            log.error("database transfer: the database from node %d is unusable (%s); this node halts and joins "
                      "again later", src, exc)
            node.resume_failed(ApplyFailed("database_unavailable", {}, f"node {src}'s database is unusable: {exc}"))
            return
        seq = int(message.args["seq"])
        members = [bool(message.args.get(f"alive{k}", 0)) for k in range(node.n)]
        log.info("database transfer: loaded node %d's database at update %d", src, seq)
        node.app.store = {k: v for k, v in records.items() if k <= seq}
        self._on_loaded()

        def go() -> None:
            node.resume(first=lambda: node.app.adopt(seq, int(message.args["locker"]), members,
                                                     catalog.state_events(db.hive, node.n)))

        def halt(why: str) -> None:
            log.warning("database transfer: loaded, but %s; this node halts and joins again later", why)
            node.resume_failed(ApplyFailed("database_unavailable", {}, why))

        self._before_resume(go, halt)

    # -- the sponsor -----------------------------------------------------------------------------
    def _serve(self, src: int) -> None:
        node, db = self.node, self.node.database
        gum = node.machines["gum"].record
        recent = [[s, ops] for s, ops in sorted(node.app.store.items()) if s <= db.hive.last_seq][-RECENT_UPDATES:]
        snapshot = base64.b64encode(db.hive.snapshot()).decode()
        args = {"seq": db.hive.last_seq, "locker": int(gum.locker),
                **{f"alive{k}": int(m) for k, m in enumerate(gum.members)}}
        self._send(src, Message("db", "snapshot", args, {"hive": snapshot, "records": recent}))  # type: ignore[dict-item]
        log.info("database transfer: sent the database at update %d to node %d", db.hive.last_seq, src)

    def receive(self, src: int, message: Message) -> None:
        if message.name == "snapshot_request":
            self._serve(src)
        elif message.name == "snapshot":
            self._loaded(src, message)
        else:
            log.warning("node %d sent db.%s, which is not a database-transfer message; dropped", src, message.name)

