"""The daemon's node: the machines of ``runtime/node``, run on asyncio timers and the real transport.

One task drains one queue (:meth:`DaemonNode.run`); everything that happens
to the node (a message, a heartbeat signal, a timer, a monitor's answer, an
administrator's request) is put on it as one callable, so transitions never
interleave.  The node decides nothing itself: it feeds events to the
machines and carries out their effects through :class:`NodeApp`.

Every step is written as one NDJSON record to the transition log (see
:mod:`.trace`).  What a restarted node keeps (``DURABLE`` of
``runtime/node/layout.py``) comes from two places: the hive holds GUM's
``last_seq`` and the failover manager's owners (and is committed within the
step that applies an update); the node state file holds the rest
(:data:`STATE_FILE_FIELDS`), written before the step's messages leave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.daemon.config import NodeConfig
from wolfpack.runtime.daemon.store import HiveDatabase, NodeState
from wolfpack.runtime.daemon.trace import TraceWriter
from wolfpack.runtime.node.app import Hooks, NodeApp, group_machine_name, parse_resource_machine
from wolfpack.runtime.node.host import MachineHost, Routed, TimerKey
from wolfpack.runtime.node.layout import (
    DURABLE,
    group_machines,
    protocol_machines,
    resource_defaults,
)
from wolfpack.runtime.transport.messages import Message
from wolfpack.spec.core import Emitted
from wolfpack.spec.failover import NO_GROUP

log = logging.getLogger("wolfpack.node")

#: group commit: queued updates of this node that travel as one global update (one lock, one sweep, one fsync
#: per node for all of them)
BATCH_LIMIT = 64

#: the durable fields the hive does not hold: written to the node state file when they change
STATE_FILE_FIELDS = {"membership": DURABLE["membership"],
                     "gum": tuple(f for f in DURABLE["gum"] if f != "last_seq")}

Send = Callable[[int, Message], object]

#: what the arbitration machine's reports mean to the operator
ARBITRATION_NEWS = {
    "won": (logging.INFO, "this node won the quorum disk (it owns it and renews its reservation)"),
    "lost_quorum": (logging.WARNING, "this node lost its reservation or could not renew it in time: it stops every "
                    "resource now (self-fencing) and rejoins later"),
    "released": (logging.INFO, "this node released the quorum disk"),
    "degraded": (logging.WARNING, "the target refuses PREEMPT AND ABORT (reason %s); fencing uses PREEMPT, so "
                 "writes a fenced node had queued are not aborted"),
    "fenced": (logging.WARNING, "node %s was fenced: its registration on the quorum disk was preempted"),
}


@dataclass
class Timer:
    generation: int
    handle: asyncio.TimerHandle


class DaemonNode(MachineHost):
    def __init__(self, config: NodeConfig, database: HiveDatabase, state: NodeState, trace: TraceWriter,
                 send: Send, hooks: Hooks) -> None:
        self.config = config
        self.node_id = config.node_id
        self.n = config.n
        self.slots = int(config["cluster.max_groups"])
        self.quorum = str(config["cluster.quorum"])
        self.database = database
        self.state = state
        self.trace = trace
        self._send = send
        self.queue: asyncio.Queue[Callable[[], None]] = asyncio.Queue()
        self.timers: dict[TimerKey, Timer] = {}
        self._generation = 0
        self.stopped = False
        self.machines = {}
        self.app = NodeApp(self, database, hooks, batch_limit=BATCH_LIMIT)
        self.app.store = database.records()
        self._resumed = asyncio.Event()
        self._resumed.set()
        #: groups whose resources changed while they ran here: rebuilt once offline
        self.pending_layout: set[str] = set()
        #: told when a group machine comes to rest offline here (its machine name)
        self.on_group_offline: Callable[[str], None] = lambda machine: None
        #: told when the membership machine halts
        self.on_halted: Callable[[], None] = lambda: None
        #: told when the membership machine leaves the cluster (Halted or Down), with that state
        self.on_left: Callable[[str], None] = lambda state: None
        #: told the epoch and the members the membership machine installs (the heartbeats carry them)
        self.on_installed: Callable[[int, list[int]], None] = lambda epoch, members: None
        #: told every step a machine logs (machine, record), after the node's own bookkeeping
        self.on_step: Callable[[str, Mapping[str, Any]], None] = lambda machine, record: None
        #: names of the reports the machines made since the last clear (e.g. the failover's move_refused)
        self.reports: list[str] = []
        timing = config.timing
        #: a gap in this node's own clock longer than this (the suspicion bound) means it was stalled
        self.gap_bound_s = timing["heartbeat_period_ms"] * timing["missed_heartbeats"] / 1000
        self._alive_at = time.monotonic()
        self._gap = 0.0
        #: the stalls this node woke from: (seconds, when)
        self.stalls: list[tuple[float, float]] = []
        self.build()

    # -- building the machines ------------------------------------------------------------
    def build(self) -> None:
        """Fresh protocol machines with what the node keeps on disk, and one group machine per group."""
        timing = self.config.timing
        self.machines = protocol_machines(self.node_id, self.n, self.slots, self.quorum, heartbeat=False,
                                          timing=timing, failover={"wanted": (NO_GROUP,) * self.slots},
                                          arbitration=str(self.config["cluster.arbitration"]))
        kept = dict(self.state.fields)
        kept.setdefault("gum", {})["last_seq"] = self.database.hive.last_seq
        for name, fields in DURABLE.items():  # the failover manager's owners come from the hive's events below
            values = {f: _record_value(v) for f, v in kept.get(name, {}).items() if f in fields}
            if values and name in self.machines:
                self.machines[name].record = self.machines[name].record.replace(**values)
        for name, live in self.machines.items():
            self.trace.machine(name, live, self._context())
        for info in catalog.groups(self.database.hive).values():
            self.build_group(info)
        # the node's own fencing setting; a cluster-wide one, if set, comes with the database's content below
        trigger, args = catalog.fencing_event(catalog.fencing_required(self.config["cluster.fencing"]))
        self.feed("failover", trigger, **args)
        for trigger, args in catalog.state_events(self.database.hive, self.n):  # the database's content
            self.feed("failover", trigger, **args)

    def build_group(self, info: catalog.GroupInfo) -> None:
        """(Re)build the machines of one group from its configuration (its resources may have changed)."""
        for name in [m for m in self.machines if m == group_machine_name(info.slot)
                     or (m.startswith("res") and parse_resource_machine(m)[0] == info.slot)]:
            del self.machines[name]
        if not 0 <= info.slot < self.slots or not info.resources:
            return
        built = group_machines(info.slot, info.config(), self.n, **resource_defaults(self.effective_config.timing))
        for name, live in built.items():
            self.machines[name] = live
            self.trace.machine(name, live, self._context())

    @property
    def effective_config(self) -> NodeConfig:
        """The node's configuration with the cluster-wide values (``wolfpack cluster set``) on top; resources and
        groups built from now on use them (the protocol timings are read once, at start)."""
        return self.config.with_cluster_values(catalog.parameters(self.database.hive))

    def group_idle(self, slot: int) -> bool:
        """The group's machines are at rest offline here (its layout may change)."""
        live = self.machines.get(group_machine_name(slot))
        return live is None or (live.state == "Offline" and not self.machines["failover"].record.running[slot])

    # -- MachineHost --------------------------------------------------------------------------
    def running(self) -> bool:
        return not self.stopped

    def _context(self) -> dict[str, Any]:
        m = self.machines.get("membership")
        g = self.machines.get("gum")
        return {"node": self.node_id, "epoch": int(m.record.epoch) if m else 0,
                "seq": int(g.record.last_seq) if g else 0}

    def log_step(self, machine: str, record: dict[str, Any]) -> None:
        self.trace.step(machine, record, self._context())
        self.app.after_step(machine, record)
        fields = STATE_FILE_FIELDS.get(machine)
        if fields is not None and "dest" in record:
            live = self.machines[machine]
            self.state.update(machine, {f: _json_value(getattr(live.record, f)) for f in fields})
        self._tell(machine, record)
        if (machine == "membership" and record.get("dest") in ("Halted", "Down")
                and record.get("source") not in ("Halted", "Down")):
            self.on_left(str(record["dest"]))
        if machine == "membership" and record.get("dest") == "Halted" and record.get("source") != "Halted":
            self.on_halted()
        if (machine.startswith("group") and record.get("dest") in ("Offline", "Failed")
                and record.get("source") != record.get("dest")):
            self.on_group_offline(machine)
        self.on_step(machine, record)

    def send(self, machine: str, name: str, to: int, args: Mapping[str, Any]) -> None:
        payload = self.app.attach_payload(machine, name, args)
        message = Message(machine, name, {k: int(v) for k, v in args.items()}, payload)  # type: ignore[arg-type]
        targets = [e.id for e in self.config.nodes if e.id != self.node_id] if to == -1 else [to]
        for peer in targets:
            self._send(peer, message)

    def start_timer(self, key: TimerKey, ms: int) -> None:
        self.cancel_timer(key)
        self._generation += 1
        generation = self._generation
        loop = asyncio.get_running_loop()
        handle = loop.call_later(ms / 1000, lambda: self.queue.put_nowait(lambda: self._fire(key, generation)))
        self.timers[key] = Timer(generation, handle)

    def cancel_timer(self, key: TimerKey) -> None:
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.handle.cancel()

    def _fire(self, key: TimerKey, generation: int) -> None:
        timer = self.timers.get(key)
        if timer is None or timer.generation != generation:
            return  # cancelled or restarted after it was queued
        del self.timers[key]
        if key[0] in self.machines:
            self.feed(key[0], key[1])

    def route(self, machine: str, report: Emitted) -> Routed:
        if machine == "arbitration" and report.name in ARBITRATION_NEWS:
            level, text = ARBITRATION_NEWS[report.name]
            log.log(level, "quorum disk: " + text, *report.args.values())
        self.reports.append(report.name)
        del self.reports[:-64]
        if machine == "membership" and report.name == "installed":
            # the wire membership.installed -> heartbeat.epoch_installed, to the C timer (no heartbeat machine here)
            self.on_installed(int(report.args["epoch"]),
                              [k for k in range(self.n) if report.args.get(f"m{k}")])
        return self.app.route(machine, report)

    def command(self, machine: str, effect: Emitted) -> None:
        self.app.command(machine, effect)

    # -- inputs ---------------------------------------------------------------------------------
    def receive(self, src: int, message: Message) -> None:
        """A machine's message from another node (authenticated by the transport)."""
        live = self.machines.get(message.machine)
        if live is None:
            log.warning("node %d sent %s.%s for a machine this node does not run; dropped", src, message.machine,
                        message.name)
            return
        self.app.take_payload(src, message.machine, message.name, message.args, message.payload)
        self.feed(message.machine, message.name, src=src, **message.args)

    def post(self, action: Callable[[], None]) -> None:
        """Do ``action`` in the node's task, after what is queued before it."""
        self.queue.put_nowait(action)

    def suspend(self) -> None:
        super().suspend()
        self._resumed.clear()

    def resume(self, first: Callable[[], None] | None = None) -> None:
        self._resumed.set()
        super().resume(first)

    async def run(self) -> None:
        """The node's one task: take the queued actions one by one, never while suspended.  Before each, the node
        looks at its own clock: after a gap longer than the suspicion bound it was stalled, and it halts before it
        handles anything that waited (the others may have taken its groups over)."""
        self._watch_clock()
        while True:
            action = await self.queue.get()
            await self._resumed.wait()
            self._check_clock()
            try:
                action()
            except Exception:
                log.exception("node %d: an action failed; the node halts its cluster role (fail safe)", self.node_id)
                self.fail_safe()
            self._alive_at = time.monotonic()

    def _watch_clock(self) -> None:
        """Every heartbeat period, in the loop: remember the longest gap since the last look."""
        now = time.monotonic()
        self._gap = max(self._gap, now - self._alive_at)
        self._alive_at = now
        if not self.stopped:
            asyncio.get_running_loop().call_later(self.config.timing["heartbeat_period_ms"] / 1000,
                                                  self._watch_clock)

    def _check_clock(self) -> None:
        gap = max(self._gap, time.monotonic() - self._alive_at)
        self._gap = 0.0
        if gap <= self.gap_bound_s:
            return
        self.stalls.append((gap, time.time()))
        del self.stalls[:-16]
        membership = self.machines["membership"].state
        log.warning("node %d: its clock jumped %.0f ms since its last step (more than the suspicion bound of %.0f ms): "
                    "it was stalled%s", self.node_id, gap * 1000, self.gap_bound_s * 1000,
                    "; it halts before it handles anything else" if membership not in ("Down", "Halted") else "")
        self.feed("membership", "clock_gap")

    def fail_safe(self) -> None:
        """Stop every resource and leave the cluster's work (an internal error must not leave them running)."""
        try:
            if self.machines["membership"].state not in ("Down", "Halted"):
                self.feed("membership", "shutdown")
            self.app.halt_groups()
        except Exception:
            log.exception("node %d: halting failed as well", self.node_id)

    def stop(self) -> None:
        self.stopped = True
        for timer in self.timers.values():
            timer.handle.cancel()
        self.timers.clear()

    # -- the operator's log: one sentence per decision --------------------------------------------
    def _tell(self, machine: str, record: Mapping[str, Any]) -> None:
        if "rejected" in record:
            log.debug("%s rejected %s: %s", machine, record.get("trigger"), record["rejected"])
            return
        if "failed" in record:
            log.warning("%s: %s failed: %s", machine, record.get("trigger"), record.get("why"))
            return
        source, dest, trigger = record.get("source"), record.get("dest"), record.get("trigger")
        if source == dest:
            return
        live = self.machines.get(machine)
        if machine == "membership":
            rec = live.record if live else None
            members = [k for k, m in enumerate(rec.members) if m] if rec else []
            if dest == "Stable":
                log.info("membership: installed epoch %s with nodes %s", rec.epoch if rec else "?", members)
            elif dest == "Halted":
                log.warning("membership: this node halted (%s): it stops its resources", trigger)
            elif dest == "Collecting" and source == "Stable":
                log.info("membership: regroup started (%s)", trigger)
        elif machine.startswith("group"):
            log.info("group %s: %s -> %s (%s)", machine[5:], source, dest, trigger)
        elif machine.startswith("res"):
            log.info("resource %s: %s -> %s (%s)", machine[3:], source, dest, trigger)
        elif machine in ("gum", "failover") and dest == "Halted":
            log.warning("%s: halted (%s)", machine, trigger)


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else int(value) if isinstance(value, bool | int) else value


def _record_value(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value

