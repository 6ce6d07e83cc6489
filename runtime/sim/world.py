"""A whole simulated cluster: every protocol machine of every node, groups of
resources with a simulated resource driver, and the cluster-wide invariants.

Per node the world runs the heartbeat, membership, global update (GUM) and
failover machines, one group machine per group and one resource machine per
resource, all built from ``spec/`` (:mod:`wolfpack.runtime.node.layout`) and
wired by ``spec/wiring.py``.  Each node's effects are carried out by the
:class:`~wolfpack.runtime.node.app.NodeApp` the daemon runs too (GUM payloads
beside their messages, one update at a time, groups and resources driven by
the failover manager); the world supplies what a real node would do with
devices and disks:

* a resource's ``call`` goes to the node's resource monitor
  (:class:`~wolfpack.runtime.sim.monitor.SimMonitor`): ``Online`` /
  ``Offline`` complete after ``op_ms`` (``Terminate`` at once), and a
  process runs from an Online's completion, only under a fresh lease, to its
  Offline, Terminate, the lease's lapse, or the node's crash;
* the lease, as the daemon keeps it (``runtime/daemon/lease.py``): renewed
  every heartbeat period and at each install while a quorum vouches for the
  node (the heartbeats carry their sender's members and ages,
  :mod:`wolfpack.runtime.sim.lease`), revoked when a heartbeat carries a
  newer membership without the node, ended when the node halts;
* :meth:`World.stall`: a node's daemon (and its monitor, if asked) stops
  for a while; what reaches it waits, and on waking it looks at its clock
  first and halts (``clock_gap``) after a gap past the suspicion bound;
* with ``quorum="disk"`` every node also runs the arbitration machine, whose
  ``command reset|reserve|release`` go to one shared simulated quorum disk
  (:class:`~wolfpack.runtime.sim.device.SimReservationDevice`) and whose
  answers come back as its events; the membership machines then use the
  disk rule, with the disk timings of ``spec/defaults.py`` (rounds that
  outlast a challenge, a take-over wait that outlasts a cut-off node's
  challenge);
* the heartbeat machine's reports (``suspect``, ``peer_back``, ``peer_ahead``)
  reach the membership machine ``heartbeat_lag_ms`` later, as events of their
  own: in the daemon the heartbeats are counted by a timer thread, whose
  reports wait on the node's queue behind whatever the node is doing (a
  report may then be about an epoch the node installed in between);
* with ``rejoin_after_ms`` > 0, a node whose membership machine halted starts
  its cluster role again, as the daemon does (``node.rejoin_after_ms``): that
  much later, or as soon as it hears another node's membership message at
  least ``min(rejoin_after_ms, REJOIN_MIN_MS)`` after its halt.

:meth:`World.violations` checks what must hold at every instant, from the
monitors' processes: a group's processes run on at most one node, and only
on a node of an installed membership; :attr:`World.overlaps` records every
process start that broke the first, at its instant.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.runtime.daemon.lease import MEMBER_STATES, renewal_anchor
from wolfpack.runtime.node.app import FailoverEvent, Hooks, NodeApp, Update, change_events, parse_resource_machine
from wolfpack.runtime.node.app import group_machine_name as group_machine_name
from wolfpack.runtime.node.app import resource_machine_name as resource_machine_name
from wolfpack.runtime.node.host import ApplyFailed
from wolfpack.runtime.node.layout import DURABLE, QUORUMS, node_machines
from wolfpack.runtime.node.layout import GroupConfig as GroupConfig
from wolfpack.runtime.sim.cluster import Message, SimCluster, SimNode
from wolfpack.runtime.sim.device import SimReservationDevice
from wolfpack.runtime.sim.lease import BeatNote, SimHeartbeats
from wolfpack.runtime.sim.monitor import SimMonitor
from wolfpack.runtime.sim.network import LinkPolicy
from wolfpack.spec import defaults as d
from wolfpack.spec.core import Emitted

__all__ = ["CHECKPOINT_EVERY", "DURABLE", "QUORUMS", "REJOIN_AFTER_MS", "REJOIN_MIN_MS", "Checkpoint", "GroupConfig",
           "SimDatabase", "Stall", "World", "group_machine_name", "resource_machine_name"]

#: the daemon's default ``node.rejoin_after_ms``: a halted node starts its cluster role again this much later
REJOIN_AFTER_MS = 2000
#: the daemon's ``REJOIN_MIN_S``: a halted node that hears a regroup joins it, but not sooner after its halt
REJOIN_MIN_MS = 500
#: how long a heartbeat report takes to reach the membership machine (the daemon: from the timer thread, through
#: the event fd, to the node's queue)
HEARTBEAT_LAG_MS = 1
#: the simulated quorum log gets a checkpoint when its holder has applied this many updates past the last one
#: (the daemon: ``CHECKPOINT_EVERY``, 1000); small, so that short runs catch up from checkpoints too
CHECKPOINT_EVERY = 8

#: how long a node's lease holds after a quorum last vouched for it (the daemon's ``timing.lease_ms``)
LEASE_MS = d.LEASE_MS

#: a database's content: (configuration, group owners, paused nodes)
State = tuple[tuple[tuple[str, str], ...], tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class Checkpoint:
    """A database at update ``seq`` (its content, as derived from updates 1..seq) and update ``seq`` itself
    (GUM may deliver a node's last update again, so a node that catches up from here keeps its payload)."""

    seq: int
    state: State
    last: Update


@dataclass
class SimDatabase:
    """A simulated node's database: the configuration (``KEY=VALUE`` updates); owners and paused nodes live in
    the failover manager's record.  Updates are lists of changes: ``{"group", "node"}`` (an owner),
    ``{"pause", "paused"}`` and ``{"key", "value"}``."""

    config: dict[str, str] = field(default_factory=dict)

    def encode(self, changes: Update) -> Update:
        return changes

    def persist(self, seq: int, payload: Update) -> str | None:
        return None  # the simulated quorum log is the payload store

    def apply(self, seq: int, payload: Update) -> list[FailoverEvent]:
        events: list[FailoverEvent] = []
        for change in payload:
            if "key" in change:
                self.config[str(change["key"])] = str(change["value"])
            events += change_events(change)
        return events


@dataclass
class Stall:
    """A node's daemon stopped (and its monitor too, ``with_monitor``) from ``start`` for ``ms``; on waking it saw
    its clock jump by ``gap`` ms and halted before anything else if that passed the suspicion bound."""

    node: int
    start: int
    ms: int
    with_monitor: bool
    gap: int | None = None  # set when it wakes
    halted: bool = False


class World:
    def __init__(self, nodes: int, groups: Sequence[GroupConfig], seed: int = 0, op_ms: int = 50,
                 policy: LinkPolicy | None = None, restart_threshold: int = 3, quorum: str = "mns",
                 rejoin_after_ms: int = 0, heartbeat_lag_ms: int = HEARTBEAT_LAG_MS, lease_ms: int = LEASE_MS,
                 heartbeat_phases: Sequence[int] | None = None) -> None:
        if quorum not in QUORUMS:
            raise ValueError(f"quorum must be one of {', '.join(QUORUMS)}, got {quorum!r}")
        if rejoin_after_ms < 0:
            raise ValueError(f"rejoin_after_ms must be >= 0 (0: a halted node stays halted), got {rejoin_after_ms}")
        if heartbeat_lag_ms < 0:
            raise ValueError(f"heartbeat_lag_ms must be >= 0, got {heartbeat_lag_ms}")
        if lease_ms < 1:
            raise ValueError(f"lease_ms must be >= 1, got {lease_ms}")
        if heartbeat_phases is not None and (len(heartbeat_phases) != nodes or min(heartbeat_phases) < 0):
            raise ValueError(f"heartbeat_phases needs one phase >= 0 per node ({nodes}), got {list(heartbeat_phases)}")
        #: per node, where its heartbeat ticks fall in the period (None: every node's ticks at once)
        self.heartbeat_phases = None if heartbeat_phases is None else list(heartbeat_phases)
        self.n = nodes
        self.lease_ms = lease_ms
        self.rejoin_after_ms = rejoin_after_ms
        self.heartbeat_lag_ms = heartbeat_lag_ms
        #: per node: how often its service (re)started its cluster role, and when its membership last halted
        self._incarnation = dict.fromkeys(range(nodes), 0)
        self._halted_at: dict[int, int] = {}
        self.groups = list(groups)
        self.op_ms = op_ms
        self.quorum = quorum
        self._restart_threshold = restart_threshold
        self.cluster = SimCluster(self._machines_for, nodes, seed=seed, wiring=self._wiring,
                                  policy=policy or LinkPolicy(min_delay_ms=1, max_delay_ms=3),
                                  on_command=self._command)
        self.cluster.step_hooks.append(self._after_step)
        #: every update whose sender heard ``committed``: sequence number -> payload
        self.committed: dict[int, Update] = {}
        #: the quorum log on the quorum disk (disk quorum): every update the disk's holder applied, by number;
        #: a later record with the same number replaces an orphan (decision 5)
        self.disk_log: dict[int, Update] = {}
        #: the quorum log's checkpoint: the records up to its number are dropped from ``disk_log``
        self.disk_checkpoint: Checkpoint | None = None
        #: per node: the checkpoint its history starts from, when it caught up from one (its store holds no
        #: update before that number)
        self.bases: dict[int, Checkpoint] = {}
        #: the newest membership epoch recorded on the quorum disk by its holders (``record_epoch``)
        self.disk_epoch = 0
        self._armed: list[tuple[int, str, str]] = []  # (node, machine, effect name): crash right after it
        self.disk = SimReservationDevice(self.cluster.clock, nodes, self._disk_answer, trace=self.cluster.trace.append)
        self.apps = {i: self._app(node, SimDatabase(), {}) for i, node in self.cluster.nodes.items()}
        #: per node: its resource monitor (the resources' real processes, the lease it enforces), and what its
        #: heartbeat timer knows for the lease
        self.monitors = {i: self._monitor(i) for i in range(nodes)}
        self.beats = {i: SimHeartbeats(i, nodes) for i in range(nodes)}
        #: every stall, and per node the one under way; when each node's daemon last ran (its clock watch)
        self.stalls: list[Stall] = []
        #: every moment a resource's process started while its group's processes ran on another node: (time,
        #: group, the nodes where they ran then)
        self.overlaps: list[tuple[int, str, list[int]]] = []
        self._stalled: dict[int, Stall] = {}
        self._alive_at = dict.fromkeys(range(nodes), 0)
        for node in self.cluster.nodes.values():
            node.send_hook = self._attach_payload
            node.receive_hook = self._take_payload
            node.crash_hook = self._crashed
            self._lease_tick(node.node_id)

    # -- building the nodes --------------------------------------------------------
    def _machines_for(self, me: int) -> dict[str, LiveMachine]:
        return node_machines(me, self.n, self.groups, self.quorum, restart_threshold=self._restart_threshold)

    def _app(self, node: SimNode, database: SimDatabase, store: dict[int, Update]) -> NodeApp:
        me = node.node_id
        hooks = Hooks(drive=lambda machine, entry: self._drive(node, machine, entry),
                      device=lambda effect: self.disk.carry_out(me, effect),
                      load_database=lambda sponsor: self._load_database(node, sponsor),
                      disk_won=lambda: self._replay_quorum_log(node),
                      record_epoch=lambda epoch: self._record_epoch(me, epoch),
                      applied=lambda seq, payload: self._applied(me, seq, payload),
                      committed=self.committed.__setitem__,
                      defer=lambda fn, what: self.cluster.clock.call_later(0, fn, what))
        return NodeApp(node, database, hooks, store=store)

    def config(self, node: int) -> dict[str, str]:
        """The replicated configuration as node ``node`` has it."""
        database = self.apps[node].database
        assert isinstance(database, SimDatabase)
        return database.config

    def boot(self, node: int) -> None:
        sim = self.cluster.nodes[node]
        sim.tick_phase_ms = None if self.heartbeat_phases is None else self.heartbeat_phases[node]
        sim.feed("heartbeat", "start")
        sim.feed("membership", "boot")

    def restart(self, node: int) -> None:
        """A crashed node comes back, or a halted node's service starts its cluster role again (the daemon's
        rejoin): fresh machines with what the node keeps on disk, no timer of the old ones, then boot.  A
        service that did not stop keeps the updates its administrators queued."""
        sim = self.cluster.nodes[node]
        rejoining = sim.up
        for handle in sim.timers.values():
            handle.cancel()
        sim.timers.clear()
        self._incarnation[node] += 1
        self._halted_at.pop(node, None)
        old = sim.machines
        sim.machines = self._machines_for(node)
        # what a node keeps on disk across a restart: the epochs and rounds it took part in (so it never
        # accepts a second proposal for a round) and the cluster database (applied updates, owners)
        for name, fields in DURABLE.items():
            kept = {f: getattr(old[name].record, f) for f in fields}
            sim.machines[name].record = sim.machines[name].record.replace(**kept)
        kept_app = self.apps[node]
        database = kept_app.database
        assert isinstance(database, SimDatabase)
        self.apps[node] = self._app(sim, database, kept_app.store)
        if rejoining:
            self.apps[node].queue = kept_app.queue
        else:  # a new service: a new lease page (no lease yet) and a new monitor
            self.monitors[node] = self._monitor(node)
        self.beats[node] = SimHeartbeats(node, self.n)  # a new heartbeat timer, which has heard nobody yet
        sim.up = True
        self.cluster.network.restart(node)
        self.boot(node)

    def boot_all(self) -> None:
        for i in range(self.n):
            self.boot(i)

    # -- GUM payloads ride beside their messages ---------------------------------------
    def _attach_payload(self, node: SimNode, message: Message) -> Message:
        if message.machine == "heartbeat" and message.name == "beat":
            return Message(message.machine, message.name, message.args,
                           self.beats[node.node_id].note(self.cluster.clock.now))
        payload = self.apps[node.node_id].attach_payload(message.machine, message.name, message.args)
        return message if payload is None else Message(message.machine, message.name, message.args, payload)

    def _take_payload(self, node: SimNode, src: int, message: Message) -> None:
        me = node.node_id
        if message.machine == "heartbeat" and message.name == "beat" and isinstance(message.payload, BeatNote):
            revoke = self.beats[me].received(src, int(message.args["epoch"]), message.payload,
                                             self.cluster.clock.now)
            if revoke is not None:  # the heartbeat thread revokes the lease at once
                self.monitors[me].revoke(revoke)
            return
        if message.machine == "membership" and me in self._halted_at:
            self._heard_regroup(me)
        self.apps[me].take_payload(src, message.machine, message.name, message.args, message.payload)

    # -- a halted node starts its cluster role again (the daemon's node.rejoin_after_ms) -----------------
    def _halted(self, node: int) -> None:
        if self.rejoin_after_ms <= 0:
            return
        self._halted_at[node] = self.cluster.clock.now
        incarnation = self._incarnation[node]
        sim = self.cluster.nodes[node]
        self.cluster.clock.call_later(self.rejoin_after_ms,
                                      lambda: sim.post(lambda: self._rejoin_if_halted(node, incarnation)),
                                      f"rejoin {node}")

    def _heard_regroup(self, node: int) -> None:
        """A halted node hears a membership message: it joins that regroup (it starts its cluster role again,
        and the message then reaches its new machines), but not sooner than ``REJOIN_MIN_MS`` after its halt;
        before that the halted machine ignores the message."""
        if self.cluster.clock.now - self._halted_at[node] >= min(self.rejoin_after_ms, REJOIN_MIN_MS):
            self.restart(node)

    def _rejoin_if_halted(self, node: int, incarnation: int) -> None:
        sim = self.cluster.nodes[node]
        # a crash ends the service with its timers; a restart since is a new service
        if sim.up and self._incarnation[node] == incarnation and sim.machines["membership"].state == "Halted":
            self.restart(node)

    # -- effects that are not messages or timers -----------------------------------------
    def _wiring(self, node: SimNode, machine: str, report: Emitted) -> list[tuple[str, str, dict[str, Any]]]:
        routed = self.apps[node.node_id].route(machine, report)
        if machine == "membership" and report.name == "installed":
            self._epoch_installed(node.node_id, int(report.args["epoch"]),
                                  frozenset(k for k in range(self.n) if report.args.get(f"m{k}")))
        if machine != "heartbeat":
            return routed
        me, incarnation = node.node_id, self._incarnation[node.node_id]
        for target, trigger, args in routed:  # the daemon's timer thread: its reports wait on the node's queue
            self.cluster.clock.call_later(
                self.heartbeat_lag_ms, lambda t=target, g=trigger, a=args: self._heartbeat_report(me, incarnation,
                                                                                                    t, g, a),
                f"heartbeat report {me}/{trigger}")
        return []

    def _heartbeat_report(self, me: int, incarnation: int, target: str, trigger: str, args: dict[str, Any]) -> None:
        """A heartbeat report reaches the node's machine, unless the node crashed or restarted since (a restarted
        service has a new timer)."""
        node = self.cluster.nodes[me]
        if node.up and self._incarnation[me] == incarnation:
            node.feed(target, trigger, **args)

    def _after_step(self, node: SimNode, machine: str, entry: dict[str, Any]) -> None:
        """Crash a node armed to die right after one of its effects (its other effects of that step still
        happen); when GUM is idle again, submit the next queued update (after the current step)."""
        self._alive_at[node.node_id] = self.cluster.clock.now
        for arm in list(self._armed):
            if arm[:2] == (node.node_id, machine) and any(e.get("name") == arm[2] for e in entry.get("effects", [])):
                self._armed.remove(arm)
                self.cluster.clock.call_later(0, node.crash, f"armed crash of {node.node_id}")
        if (machine == "membership" and entry.get("dest") in ("Halted", "Down")
                and entry.get("source") not in ("Halted", "Down")):
            self.monitors[node.node_id].end()  # the daemon's on_left: no lease from now on
        if machine == "membership" and entry.get("dest") == "Halted" and entry.get("source") != "Halted":
            self._halted(node.node_id)
        self.apps[node.node_id].after_step(machine, entry)

    def _command(self, node: SimNode, machine: str, effect: Emitted) -> None:
        self.apps[node.node_id].command(machine, effect)

    def _applied(self, me: int, seq: int, payload: Update) -> None:
        if self.quorum == "disk" and self.disk.holder == me:
            self.disk_log[seq] = payload  # written through the reservation: only its holder can
            since = self.disk_checkpoint.seq if self.disk_checkpoint is not None else 0
            state = self.state_at(me, seq) if seq - since >= CHECKPOINT_EVERY else None
            if state is not None:
                self.disk_checkpoint = Checkpoint(seq, state, payload)
                self.disk_log = {k: v for k, v in self.disk_log.items() if k > seq}

    def state_at(self, node: int, seq: int) -> State | None:
        """The content of node ``node``'s database after update ``seq`` (of its history: from its checkpoint,
        if it caught up from one, then its updates); None if its history starts after ``seq`` or has a gap."""
        base = self.bases.get(node)
        if base is not None and base.seq > seq:
            return None
        config, owners, paused = ({}, {}, {}) if base is None else (dict(base.state[0]), dict(base.state[1]),
                                                                     dict(base.state[2]))
        store = self.apps[node].store
        for k in range(1 if base is None else base.seq + 1, seq + 1):
            if k not in store:
                return None
            for change in store[k]:
                if "key" in change:
                    config[str(change["key"])] = str(change["value"])
                for trigger, args in change_events(change):
                    if trigger == "owner_applied":
                        owners[args["group"]] = args["node"]
                    else:
                        paused[args["node"]] = args["paused"]
        return tuple(sorted(config.items())), tuple(sorted(owners.items())), tuple(sorted(paused.items()))

    def _load_database(self, node: SimNode, sponsor: int) -> None:
        """The database transfer of a join: this node installs a membership behind its sponsor, so it takes
        the sponsor's database (updates up to the sponsor's last, the configuration, group owners and paused
        nodes) and drops whatever it had beyond it (orphans).  The simulator copies it at this instant; the
        daemon sends a snapshot over the transport."""
        source = self.cluster.nodes[sponsor]
        if sponsor == node.node_id:
            return
        if not source.up:  # a dead sponsor cannot send: this node halts before it uses its own database
            raise ApplyFailed("database_unavailable", {}, f"sponsor {sponsor} is down: its database cannot be "
                              "loaded; the rest of the install is skipped and this node halts")
        seq = int(source.machines["gum"].record.last_seq)
        mine, theirs = self.apps[node.node_id], self.apps[sponsor]
        mine.store = {k: v for k, v in theirs.store.items() if k <= seq}
        if sponsor in self.bases:
            self.bases[node.node_id] = self.bases[sponsor]
        else:
            self.bases.pop(node.node_id, None)
        self.config(node.node_id).clear()
        self.config(node.node_id).update(self.config(sponsor))
        table = source.machines["failover"].record
        self._adopt(node, seq, source.machines["gum"].record, dict(enumerate(table.owner)),
                    dict(enumerate(table.paused)))

    def _record_epoch(self, me: int, epoch: int) -> None:
        if self.quorum == "disk" and self.disk.holder == me:  # written through the reservation: only its holder can
            self.disk_epoch = max(self.disk_epoch, epoch)

    def _replay_quorum_log(self, node: SimNode) -> int:
        """A node that wins the quorum disk replays the quorum log before it forms or joins with the disk:
        the partition-in-time rule (a node that was down while others changed the configuration must not
        form with its stale database).  The log is the authority up to its last record.  Returns the newest
        membership epoch recorded on the disk."""
        self._replay_updates(node)
        return self.disk_epoch

    def _replay_updates(self, node: SimNode) -> None:
        """Catch up from the quorum log: its checkpoint (if this node's database differs at that number), then
        its records; the log is the authority up to its last record (an update of this node's past it is kept:
        GUM takes it back or replays it)."""
        checkpoint = self.disk_checkpoint
        if not self.disk_log and checkpoint is None:
            return
        me = node.node_id
        mine = self.apps[me]
        last = int(node.machines["gum"].record.last_seq)
        top = max(self.disk_log, default=checkpoint.seq if checkpoint is not None else 0)
        same_base = checkpoint is None or (last >= checkpoint.seq
                                           and self.state_at(me, checkpoint.seq) == checkpoint.state)
        if not (top <= last and same_base and all(mine.store.get(k) == v for k, v in self.disk_log.items())):
            kept = {k: v for k, v in mine.store.items() if k > top}
            if same_base:
                mine.store = {**{k: v for k, v in mine.store.items() if k <= top}, **self.disk_log, **kept}
            else:
                assert checkpoint is not None
                self.bases[me] = checkpoint
                mine.store = {checkpoint.seq: checkpoint.last, **self.disk_log, **kept}
            self._rebuild(node, max(top, last))
        if last > top:  # this node's database is ahead of the log: as the daemon does, it writes a checkpoint
            state = self.state_at(me, last)
            if state is not None:
                self.disk_checkpoint = Checkpoint(last, state, mine.store[last])
                self.disk_log = {}

    def _rebuild(self, node: SimNode, seq: int) -> None:
        """Recompute what a node derives from its updates 1..seq (configuration, group owners) and give its
        GUM the new history."""
        state = self.state_at(node.node_id, seq)
        assert state is not None, f"node {node.node_id}: no history up to update {seq} after the quorum log's replay"
        config = self.config(node.node_id)
        config.clear()
        config.update(dict(state[0]))
        self._adopt(node, seq, node.machines["gum"].record, dict(state[1]), dict(state[2]))

    def _adopt(self, node: SimNode, seq: int, gum: Any, owners: Mapping[int, int], paused: Mapping[int, int]) -> None:
        """Give a node's machines a database it took: GUM's history up to ``seq`` with the locker and members of
        ``gum`` (the record of the node it came from), then the group owners and paused nodes it holds."""
        events: list[FailoverEvent] = [("owner_applied", {"group": g, "node": int(owner)})
                                       for g, owner in sorted(owners.items())]
        events += [("paused_applied", {"node": k, "paused": int(p)}) for k, p in sorted(paused.items())]
        self.apps[node.node_id].adopt(seq, int(gum.locker), [bool(m) for m in gum.members], events)

    def _disk_answer(self, node: int, event: str) -> None:
        self.cluster.nodes[node].feed("arbitration", event)

    # -- the resource monitors and the lease (runtime/daemon/service.py, runtime/daemon/lease.py) -------------
    def _monitor(self, me: int) -> SimMonitor:
        node = self.cluster.nodes[me]

        def answer(machine: str, event: str) -> None:
            if event == "online_succeeded":
                self._started(me, machine)
            node.feed(machine, event)
        return SimMonitor(me, self.cluster.clock, answer)

    def _started(self, me: int, machine: str) -> None:
        """A resource's process started on node ``me``: if its group's processes run on another node too, that
        is a two-copy moment, recorded at the instant it begins (:attr:`overlaps`; the checks every 10 ms of
        :meth:`violations` could miss a short one)."""
        gi = parse_resource_machine(machine)[0]
        nodes = self.active_on(gi)
        if len(nodes) > 1:
            self.overlaps.append((self.cluster.clock.now, self.groups[gi].name, nodes))

    def _crashed(self, node: SimNode) -> None:
        """The daemon died: its monitor sees its socket close and terminates everything (R4)."""
        self.monitors[node.node_id].clear()
        self._stalled.pop(node.node_id, None)

    def _lease_tick(self, me: int) -> None:
        """Every heartbeat period, in the daemon's loop (``_lease_ticks``, ``_watch_clock``): renew the lease, and
        look at the clock; a stalled daemon does neither."""
        node = self.cluster.nodes[me]
        if node.up and not node.stalled:
            self._alive_at[me] = self.cluster.clock.now
            self._renew(me)
        self.cluster.clock.call_later(d.HEARTBEAT_PERIOD_MS, lambda: self._lease_tick(me), f"lease tick {me}")

    def _renew(self, me: int) -> None:
        """Renew the lease if the node is a member of a quorate membership (the daemon's ``_renew_lease``)."""
        node = self.cluster.nodes[me]
        membership = node.machines["membership"]
        now = self.cluster.clock.now
        anchor = renewal_anchor(membership.state, node.machines["gum"].state == "Halted", me, self.n, self.quorum,
                                int(membership.record.epoch), bool(getattr(membership.record, "holds_disk", False)),
                                self.beats[me].vouches, now, self.lease_ms, per_ms=1)
        if not isinstance(anchor, str):
            self.monitors[me].renew(anchor + self.lease_ms)

    def _epoch_installed(self, me: int, epoch: int, members: frozenset[int]) -> None:
        """The membership machine installed ``epoch`` (the daemon's ``_epoch_installed``): the heartbeats carry
        it, a revocation about an older epoch is lifted, and the lease is renewed at once (Online needs it)."""
        self.beats[me].set_epoch(epoch, members)
        self.monitors[me].installed(epoch)
        self._renew(me)

    # -- a stalled daemon ----------------------------------------------------------------------
    def stall(self, node: int, ms: int, with_monitor: bool = False) -> Stall | None:
        """Node ``node``'s daemon stops for ``ms`` (SIGSTOP, a VM pause, a swap storm): no timer, message,
        heartbeat or lease renewal until it wakes, and what reaches it waits in its queue; ``with_monitor``
        stops its resource monitor too (nothing it hosts is killed until then).  On waking the daemon looks at
        its clock first, as ``DaemonNode.run`` does: after a gap longer than the suspicion bound (heartbeat
        period x missed heartbeats) it feeds ``clock_gap`` (it halts) before it handles anything that waited.
        Returns the stall (None: the node is down)."""
        sim = self.cluster.nodes[node]
        if ms < 0:
            raise ValueError(f"a stall lasts 0 ms or more, not {ms}")
        if not sim.up:
            return None
        if node in self._stalled:
            raise ValueError(f"node {node} is stalled already (since {self._stalled[node].start} ms)")
        stall = Stall(node, self.cluster.clock.now, ms, with_monitor)
        self.stalls.append(stall)
        self._stalled[node] = stall
        sim.stall()
        if with_monitor:
            self.monitors[node].freeze()
        self.cluster.clock.call_later(ms, lambda: self._wake(stall), f"wake {node}")
        return stall

    def stalled(self, node: int) -> bool:
        return node in self._stalled

    def _wake(self, stall: Stall) -> None:
        me = stall.node
        if self._stalled.get(me) is not stall:
            return  # it crashed meanwhile
        del self._stalled[me]
        sim = self.cluster.nodes[me]
        if stall.with_monitor:
            self.monitors[me].thaw()  # its answers join the daemon's queue, behind what waited there
        heartbeat = sim.machines["heartbeat"].record
        bound = int(heartbeat.period_ms) * int(heartbeat.threshold)  # the daemon's gap_bound_s
        stall.gap = self.cluster.clock.now - self._alive_at[me]

        def look_at_the_clock() -> None:
            assert stall.gap is not None
            if stall.gap > bound:
                stall.halted = sim.machines["membership"].state not in ("Down", "Halted")
                sim.feed("membership", "clock_gap")
            self._alive_at[me] = self.cluster.clock.now

        sim.wake(first=look_at_the_clock)

    # -- what a test or a story does -------------------------------------------------------
    def submit_config(self, node: int, key: str, value: str) -> None:
        """An administrator on ``node`` changes the configuration: one global update KEY=VALUE."""
        sim = self.cluster.nodes[node]
        if not sim.up:
            return
        # the request goes through the node's queue (the daemon's admin API posts it): a stalled node takes it
        # when it wakes
        sim.post(lambda: self.apps[node].submit([{"key": key, "value": value}]))

    def move(self, group: int, node: int) -> None:
        """An administrator moves a group: the request goes to the node that runs it (as an RPC would)."""
        for owner in self.online_on(group) or self.running_on(group):
            self.cluster.nodes[owner].feed("failover", "move_requested", group=group, node=node)

    def fail_resource(self, group: int, resource: int) -> bool:
        """Resource ``resource`` of group ``group`` dies where it is Online (its process is gone, its IsAlive
        check fails there); whether it was Online anywhere."""
        name = resource_machine_name(group, resource)
        hit = [n for n in self.cluster.nodes.values() if n.up and n.machines[name].state == "Online"]
        for node in hit:
            self.monitors[node.node_id].running.discard(name)
            node.feed(name, "is_alive_failed")
        return bool(hit)

    def drain(self, node: int) -> None:
        """An administrator pauses a node and moves its groups away."""
        self.cluster.nodes[node].feed("failover", "drain_requested")

    def resume(self, node: int, via: int | None = None) -> None:
        """An administrator resumes a paused node (through ``via``, or the node itself)."""
        self.cluster.nodes[node if via is None else via].feed("failover", "pause_requested", node=node, paused=0)

    def set_hour(self, hour: int) -> None:
        """Every node's clock shows a new hour of the day."""
        for sim in self.cluster.nodes.values():
            sim.feed("failover", "hour_changed", hour=hour)

    def crash_after(self, node: int, machine: str, effect: str) -> None:
        """Crash ``node`` right after the next step in which its ``machine`` emits ``effect``."""
        self._armed.append((node, machine, effect))

    def _drive(self, node: SimNode, machine: str, entry: str) -> None:
        """A resource machine's call goes to the node's monitor: Online/Offline succeed after op_ms (Online only
        under a fresh lease), Terminate at once."""
        self.monitors[node.node_id].call(machine, entry, self.op_ms)

    # -- observing ---------------------------------------------------------------------
    def running_on(self, gi: int) -> list[int]:
        """Live nodes where some resource of group ``gi`` is not Offline."""
        out = []
        for i, node in self.cluster.nodes.items():
            if not node.up:
                continue
            if any(node.machines[resource_machine_name(gi, ri)].state != "Offline"
                   for ri in range(len(self.groups[gi].resources))):
                out.append(i)
        return out

    def active_on(self, gi: int) -> list[int]:
        """Nodes where a process of some resource of group ``gi`` runs (the monitors' real process state)."""
        names = {resource_machine_name(gi, ri) for ri in range(len(self.groups[gi].resources))}
        return [i for i, monitor in self.monitors.items() if monitor.running & names]

    def online_on(self, gi: int) -> list[int]:
        return [i for i, node in self.cluster.nodes.items()
                if node.up and node.machines[group_machine_name(gi)].state == "Online"]

    def update_violations(self, nodes: Collection[int] | None = None) -> list[str]:
        """Global updates: the applied updates of any two live nodes (of ``nodes``, default all) are
        prefixes of one sequence, and every committed update is what each node that got that far applied
        (nothing committed is lost or changed).

        Nodes in the cluster only (up, membership running at the newest epoch, GUM not halted): a node that
        crashed or was left out right after applying an update nobody else got holds an orphan (decision 5).  A node
        that caught up from the quorum log's checkpoint is compared by its database at the checkpoint, then update
        by update."""
        problems = []
        chosen = self.cluster.nodes if nodes is None else nodes
        applied = {i: self.cluster.nodes[i].machines["gum"].record.last_seq for i in chosen
                   if self._in_cluster(i)}

        def since(i: int) -> int:
            """The first update node i holds one by one (it caught up from a checkpoint before it)."""
            base = self.bases.get(i)
            return 1 if base is None else base.seq

        for seq, payload in self.committed.items():
            for i, last in applied.items():
                if since(i) <= seq <= last and self.apps[i].store.get(seq) != payload:
                    problems.append(f"node {i} applied {self.apps[i].store.get(seq)} as update {seq}, "
                                    f"but {payload} was committed")
        nodes = sorted(applied)
        for a in nodes:
            for b in nodes:
                if a < b:
                    upto = min(applied[a], applied[b])
                    first = max(since(a), since(b))
                    if 1 < first <= upto and self.state_at(a, first) != self.state_at(b, first):
                        problems.append(f"nodes {a} and {b} have different databases at update {first}")
                        continue
                    for seq in range(first, upto + 1):
                        if self.apps[a].store.get(seq) != self.apps[b].store.get(seq):
                            problems.append(f"nodes {a} and {b} applied different updates as number {seq}")
                            break
        return problems

    def _in_cluster(self, i: int) -> bool:
        """Up, taking part in the membership at the newest epoch any node installed (a crashed node keeps its
        epoch on disk), GUM not halted: a node still in a superseded epoch will be left out, and what it applied
        alone is an orphan, also when the members of the newer epoch have all crashed since (it cannot form on
        its own, and when they come back it loads their database)."""
        node = self.cluster.nodes[i]
        newest = max((n.machines["membership"].record.epoch for n in self.cluster.nodes.values()), default=0)
        return (node.up and node.machines["gum"].state != "Halted"
                and node.machines["membership"].state not in ("Down", "Halted")
                and node.machines["membership"].record.epoch == newest)

    def violations(self) -> list[str]:
        """What must hold at every instant, counted from the monitors' processes (not from owners or machine
        states): a group's processes run on one node at most, and only on a node inside the cluster."""
        problems = []
        for gi, g in enumerate(self.groups):
            nodes = self.active_on(gi)
            if len(nodes) > 1:
                problems.append(f"group {g.name} runs on nodes {nodes} at once")
            for i in nodes:
                if self.cluster.nodes[i].machines["membership"].state not in MEMBER_STATES:
                    problems.append(f"group {g.name} runs on node {i}, which is not in the cluster")
        return problems
