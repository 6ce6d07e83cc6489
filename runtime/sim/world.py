"""A whole simulated cluster: every protocol machine of every node, groups of
resources with a simulated resource driver, and the cluster-wide invariants.

Per node the world runs the heartbeat, membership, global update (GUM) and
failover machines, one group machine per group and one resource machine per
resource, all built from ``spec/`` and wired by ``spec/wiring.py``.  It only
carries out effects:

* GUM payloads (lists of owner changes) travel beside ``lock_request`` and
  ``apply_update`` messages and are applied on ``command apply``;
* the failover manager's ``submit_owners`` are queued and submitted one at a
  time; ``group_online`` / ``group_offline`` / ``halt_groups`` drive the
  local group machines, whose ``online_resources`` / ``offline_resources``
  drive the resource machines;
* a resource's ``call Online`` / ``call Offline`` is answered by the
  simulated driver after ``op_ms`` (``call Terminate`` is immediate);
* with ``quorum="disk"`` every node also runs the arbitration machine, whose
  ``command reset|reserve|release`` go to one shared simulated quorum disk
  (:class:`~wolfpack.runtime.sim.device.SimReservationDevice`) and whose
  answers come back as its events; the membership machines then use the
  disk rule, with the disk timings of ``spec/defaults.py`` (rounds that
  outlast a challenge, a take-over wait that outlasts a cut-off node's
  challenge).

:meth:`World.violations` checks what must hold at every instant: a group is
online (any resource not offline) on at most one live node, and only on a
node of an installed membership.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.runtime.sim.cluster import Message, SimCluster, SimNode
from wolfpack.runtime.sim.device import SimReservationDevice
from wolfpack.runtime.sim.network import LinkPolicy
from wolfpack.spec import defaults as d
from wolfpack.spec import dependencies
from wolfpack.spec.arbitration import make_arbitration_spec
from wolfpack.spec.core import Emitted
from wolfpack.spec.failover import make_failover_spec
from wolfpack.spec.group import make_group_spec
from wolfpack.spec.gum import make_gum_spec
from wolfpack.spec.heartbeat import make_heartbeat_spec
from wolfpack.spec.membership import make_membership_spec
from wolfpack.spec.quorum import QuorumKind
from wolfpack.spec.resource import SPEC as RESOURCE_SPEC
from wolfpack.spec.wiring import GROUP_TO_FAILOVER, RESOURCE_TO_GROUP, route

Update = list[dict[str, Any]]  # owner changes {"group", "node"} and configuration changes {"key", "value"}

#: the fields of each machine that a node keeps on its local disk across a restart
DURABLE: Mapping[str, tuple[str, ...]] = {
    "membership": ("epoch", "round", "acked"),
    "gum": ("last_seq", "locker"),
    "failover": ("owner",),
}


@dataclass(frozen=True)
class GroupConfig:
    name: str
    resources: Sequence[str]
    depends_on: Mapping[str, Sequence[str]] = field(default_factory=dict)
    preferred: Sequence[int] = ()
    failback: bool = False
    failback_window: tuple[int, int] = (-1, -1)  # FailbackWindowStart, FailbackWindowEnd hours (-1: any)


@dataclass
class NodeExtras:
    """Per-node runtime state that is not a machine's: GUM payloads, the submit queue."""

    pending: Update | None = None  # the update this node's GUM is submitting
    store: dict[int, Update] = field(default_factory=dict)  # payload by sequence number
    incoming: dict[int, Update] = field(default_factory=dict)  # lock requests' payloads, by sender
    queue: list[Update] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)  # the replicated configuration: KEY=VALUE updates


#: quorum kinds of the simulated world: Majority Node Set, or the shared quorum disk
QUORUMS = ("mns", "disk")


def group_machine_name(g: int) -> str:
    return f"group{g}"


def resource_machine_name(g: int, i: int) -> str:
    return f"res{g}.{i}"


class World:
    def __init__(self, nodes: int, groups: Sequence[GroupConfig], seed: int = 0, op_ms: int = 50,
                 policy: LinkPolicy | None = None, restart_threshold: int = 3, quorum: str = "mns") -> None:
        if quorum not in QUORUMS:
            raise ValueError(f"quorum must be one of {', '.join(QUORUMS)}, got {quorum!r}")
        self.n = nodes
        self.groups = list(groups)
        self.op_ms = op_ms
        self.quorum = quorum
        self.extras = {i: NodeExtras() for i in range(nodes)}
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
        self._armed: list[tuple[int, str, str]] = []  # (node, machine, effect name): crash right after it
        self.disk = SimReservationDevice(self.cluster.clock, nodes, self._disk_answer, trace=self.cluster.trace.append)
        for node in self.cluster.nodes.values():
            node.send_hook = self._attach_payload
            node.receive_hook = self._take_payload

    # -- building the nodes --------------------------------------------------------
    def _machines_for(self, me: int) -> dict[str, LiveMachine]:
        n, gs = self.n, len(self.groups)
        preferred = []
        for g in self.groups:
            row = list(g.preferred)[:n]
            preferred += row + [-1] * (n - len(row))
        disk = self.quorum == "disk"
        membership = {"kind": QuorumKind.DISK, "max_rounds": -(-d.DISK_REGROUP_WINDOW_MS // d.REGROUP_STAGE_MS)
                      } if disk else {}
        machines = {
            "heartbeat": LiveMachine(make_heartbeat_spec(n), me=me),
            "membership": LiveMachine(make_membership_spec(n), me=me, **membership),
            "gum": LiveMachine(make_gum_spec(n), me=me),
            "failover": LiveMachine(make_failover_spec(n, gs), me=me, preferred=tuple(preferred),
                                    takeover_wait_ms=d.DISK_TAKEOVER_WAIT_MS if disk else d.TAKEOVER_WAIT_MS,
                                    failback=tuple(g.failback for g in self.groups),
                                    failback_start=tuple(g.failback_window[0] for g in self.groups),
                                    failback_end=tuple(g.failback_window[1] for g in self.groups)),
        }
        if disk:
            machines["arbitration"] = LiveMachine(make_arbitration_spec(n), me=me)
        for gi, g in enumerate(self.groups):
            machines[group_machine_name(gi)] = LiveMachine(
                make_group_spec(len(g.resources)), dep=dependencies.matrix(g.resources, g.depends_on), nodes=n,
                failover_threshold=max(n - 1, 0))
            for ri in range(len(g.resources)):
                machines[resource_machine_name(gi, ri)] = LiveMachine(
                    RESOURCE_SPEC, restart_threshold=self._restart_threshold)
        return machines

    def boot(self, node: int) -> None:
        sim = self.cluster.nodes[node]
        sim.feed("heartbeat", "start")
        sim.feed("membership", "boot")

    def restart(self, node: int) -> None:
        """A crashed node comes back with fresh machines (it remembers nothing) and boots."""
        sim = self.cluster.nodes[node]
        old = sim.machines
        sim.machines = self._machines_for(node)
        # what a node keeps on disk across a restart: the epochs and rounds it took part in (so it never
        # accepts a second proposal for a round) and the cluster database (applied updates, owners)
        for name, fields in DURABLE.items():
            kept = {f: getattr(old[name].record, f) for f in fields}
            sim.machines[name].record = sim.machines[name].record.replace(**kept)
        kept = self.extras[node]
        self.extras[node] = NodeExtras(store=kept.store, config=kept.config)
        sim.up = True
        self.cluster.network.restart(node)
        self.boot(node)

    def boot_all(self) -> None:
        for i in range(self.n):
            self.boot(i)

    # -- GUM payloads ride beside their messages ---------------------------------------
    def _attach_payload(self, node: SimNode, message: Message) -> Message:
        extra = self.extras[node.node_id]
        if message.machine == "gum" and message.name == "lock_request":
            return Message(message.machine, message.name, message.args, payload=extra.pending)
        if message.machine == "gum" and message.name == "apply_update":
            return Message(message.machine, message.name, message.args,
                           payload=extra.store.get(int(message.args["seq"])))
        return message

    def _take_payload(self, node: SimNode, src: int, message: Message) -> None:
        extra = self.extras[node.node_id]
        if message.machine == "gum" and message.name == "lock_request":
            extra.incoming[src] = message.payload or []
        elif message.machine == "gum" and message.name == "apply_update" and message.payload is not None:
            self._keep(node, int(message.args["seq"]), message.payload)
        elif message.machine == "gum" and message.name == "lock_granted" and extra.pending is not None:
            self._keep(node, int(message.args["seq"]), extra.pending)

    def _keep(self, node: SimNode, seq: int, payload: Update) -> None:
        """Keep the payload of update ``seq`` for when GUM applies it.  Past what this node applied, a newer
        payload replaces an older one: an update numbered by a locker that died before anyone else had it is
        an orphan, and the new locker gives its number to another update (decision 5)."""
        store = self.extras[node.node_id].store
        if seq > node.machines["gum"].record.last_seq:
            store[seq] = payload
        else:
            store.setdefault(seq, payload)

    # -- effects that are not messages or timers -----------------------------------------
    def _wiring(self, node: SimNode, machine: str, report: Emitted) -> list[tuple[str, str, dict[str, Any]]]:
        out = route(machine, report.name, report.args, set(node.machines))
        if machine.startswith("res") and report.name in RESOURCE_TO_GROUP:
            gi, ri = (int(x) for x in machine[3:].split("."))
            event = RESOURCE_TO_GROUP[report.name]
            takes_index = any(a.name == "i" for a in node.machines[group_machine_name(gi)].spec.event(event).args)
            args = {"i": ri} if takes_index else {}
            out.append((group_machine_name(gi), event, args))
        if machine.startswith("group") and report.name in GROUP_TO_FAILOVER:
            out.append(("failover", GROUP_TO_FAILOVER[report.name], {"group": int(machine[5:])}))
        if machine == "arbitration" and report.name == "won":
            self._replay_quorum_log(node)
        if machine == "gum" and report.name in ("committed", "aborted", "refused"):
            extra = self.extras[node.node_id]
            if report.name == "committed" and extra.pending is not None:
                self.committed[int(report.args["seq"])] = extra.pending
            extra.pending = None
        return out

    def _after_step(self, node: SimNode, machine: str, entry: dict[str, Any]) -> None:
        """When GUM is idle again, submit the next queued update (after the current step); crash a node
        armed to die right after one of its effects (its other effects of that step still happen)."""
        for arm in list(self._armed):
            if arm[:2] == (node.node_id, machine) and any(e.get("name") == arm[2] for e in entry.get("effects", [])):
                self._armed.remove(arm)
                self.cluster.clock.call_later(0, node.crash, f"armed crash of {node.node_id}")
        extra = self.extras[node.node_id]
        if machine == "gum" and entry.get("dest") == "Idle" and extra.pending is None and extra.queue:
            self.cluster.clock.call_later(0, lambda: self._next_submit(node), f"submit {node.node_id}")

    def _command(self, node: SimNode, machine: str, effect: Emitted) -> None:
        me, extra, args = node.node_id, self.extras[node.node_id], effect.args
        if machine == "failover" and effect.name == "submit_owners":
            extra.queue.append(list(args["updates"]))
            self._next_submit(node)
        elif machine == "failover" and effect.name == "group_online":
            node.feed(group_machine_name(int(args["group"])), "online", node=me)
        elif machine == "failover" and effect.name == "group_offline":
            node.feed(group_machine_name(int(args["group"])), "offline")
        elif machine == "failover" and effect.name == "groups_online":
            for g in args["groups"]:
                node.feed(group_machine_name(int(g)), "online", node=me)
        elif machine == "failover" and effect.name == "groups_offline":
            for g in args["groups"]:
                node.feed(group_machine_name(int(g)), "offline")
        elif machine == "failover" and effect.name == "halt_groups":
            self._halt_groups(node)
        elif machine == "gum" and effect.name == "apply":
            seq = int(args["seq"])
            if seq not in extra.store:  # the locker applies a lock request's payload first
                holder = node.machines["gum"].record.lock_holder
                extra.store[seq] = extra.incoming.get(holder, extra.pending or [])
            if self.quorum == "disk" and self.disk.holder == me:
                self.disk_log[seq] = extra.store[seq]  # written through the reservation: only its holder can
            for change in extra.store[seq]:
                if "key" in change:
                    extra.config[str(change["key"])] = str(change["value"])
                elif "pause" in change:
                    node.feed("failover", "paused_applied", node=change["pause"], paused=change["paused"])
                else:
                    node.feed("failover", "owner_applied", group=change["group"], node=change["node"])
        elif machine == "gum" and effect.name == "persist":
            pass  # the quorum log: kept in ``store`` for the simulation
        elif machine.startswith("group") and effect.name in ("online_resources", "offline_resources"):
            gi = int(machine[5:])
            trigger = "online" if effect.name == "online_resources" else "offline"
            for ri in args["resources"]:
                node.feed(resource_machine_name(gi, ri), trigger)
        elif machine.startswith("res") and effect.kind == "call":
            self._drive(node, machine, effect.name)
        elif machine == "arbitration":
            self.disk.carry_out(me, effect)
        elif machine == "membership" and effect.name == "load_database":
            self._load_database(node, int(args["sponsor"]))
        elif machine == "node" or effect.kind == "command":
            pass

    def _load_database(self, node: SimNode, sponsor: int) -> None:
        """The database transfer of a join: this node installs a membership behind its sponsor, so it takes
        the sponsor's database (updates up to the sponsor's last, the configuration, group owners and paused
        nodes) and drops whatever it had beyond it (orphans).  The simulator copies it at this instant; the
        daemon sends a snapshot over the transport."""
        source = self.cluster.nodes[sponsor]
        if sponsor == node.node_id or not source.up:
            return  # a dead sponsor cannot send: this node stays behind and GUM halts it at the next gap
        seq = int(source.machines["gum"].record.last_seq)
        mine, theirs = self.extras[node.node_id], self.extras[sponsor]
        mine.store = {k: v for k, v in theirs.store.items() if k <= seq}
        mine.config = dict(theirs.config)
        table = source.machines["failover"].record
        self._adopt(node, seq, source.machines["gum"].record, dict(enumerate(table.owner)),
                    dict(enumerate(table.paused)))

    def _replay_quorum_log(self, node: SimNode) -> None:
        """A node that wins the quorum disk replays the quorum log before it forms or joins with the disk:
        the partition-in-time rule (a node that was down while others changed the configuration must not
        form with its stale database).  The log is the authority up to its last record."""
        if not self.disk_log:
            return
        mine = self.extras[node.node_id]
        last = int(node.machines["gum"].record.last_seq)
        top = max(self.disk_log)
        if top <= last and all(mine.store.get(k) == v for k, v in self.disk_log.items()):
            return
        mine.store = {**{k: v for k, v in mine.store.items() if k > top}, **self.disk_log}
        self._rebuild(node, max(top, last))

    def _rebuild(self, node: SimNode, seq: int) -> None:
        """Recompute what a node derives from its updates 1..seq (configuration, group owners) and give its
        GUM the new history."""
        mine = self.extras[node.node_id]
        mine.config = {}
        owners: dict[int, int] = {}
        paused: dict[int, int] = {}
        for k in sorted(mine.store):
            if k > seq:
                break
            for change in mine.store[k]:
                if "key" in change:
                    mine.config[str(change["key"])] = str(change["value"])
                elif "pause" in change:
                    paused[int(change["pause"])] = int(change["paused"])
                else:
                    owners[int(change["group"])] = int(change["node"])
        self._adopt(node, seq, node.machines["gum"].record, owners, paused)

    @staticmethod
    def _adopt(node: SimNode, seq: int, gum: Any, owners: Mapping[int, int], paused: Mapping[int, int]) -> None:
        """Give a node's machines a database it took: GUM's history up to ``seq`` with the locker and members of
        ``gum`` (the record of the node it came from), then the group owners and paused nodes it holds."""
        node.feed("gum", "database_loaded", seq=seq, locker=int(gum.locker),
                  **{f"alive{k}": int(m) for k, m in enumerate(gum.members)})
        for g, owner in sorted(owners.items()):
            node.feed("failover", "owner_applied", group=g, node=int(owner))
        for k, p in sorted(paused.items()):
            node.feed("failover", "paused_applied", node=k, paused=int(p))

    def _disk_answer(self, node: int, event: str) -> None:
        self.cluster.nodes[node].feed("arbitration", event)

    # -- what a test or a story does -------------------------------------------------------
    def submit_config(self, node: int, key: str, value: str) -> None:
        """An administrator on ``node`` changes the configuration: one global update KEY=VALUE."""
        sim = self.cluster.nodes[node]
        if not sim.up:
            return
        self.extras[node].queue.append([{"key": key, "value": value}])
        self._next_submit(sim)

    def move(self, group: int, node: int) -> None:
        """An administrator moves a group: the request goes to the node that runs it (as an RPC would)."""
        for owner in self.online_on(group) or self.running_on(group):
            self.cluster.nodes[owner].feed("failover", "move_requested", group=group, node=node)

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

    def _next_submit(self, node: SimNode) -> None:
        extra = self.extras[node.node_id]
        if extra.pending is not None or not extra.queue or node.machines["gum"].state != "Idle":
            return  # one update in flight at a time; an idle GUM picks the queue up again
        extra.pending = extra.queue.pop(0)
        node.feed("gum", "submit")

    def _halt_groups(self, node: SimNode) -> None:
        for gi, g in enumerate(self.groups):
            for ri in range(len(g.resources)):
                node.feed(resource_machine_name(gi, ri), "terminate")
            node.feed(group_machine_name(gi), "owner_halted")

    def _drive(self, node: SimNode, machine: str, entry: str) -> None:
        """The simulated resource driver: Online/Offline succeed after op_ms."""
        answer = {"Online": "online_succeeded", "Offline": "offline_succeeded"}.get(entry)
        if answer is None:
            return
        self.cluster.clock.call_later(self.op_ms, lambda: node.feed(machine, answer), f"driver {machine}")

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

    def online_on(self, gi: int) -> list[int]:
        return [i for i, node in self.cluster.nodes.items()
                if node.up and node.machines[group_machine_name(gi)].state == "Online"]

    def update_violations(self, nodes: Collection[int] | None = None) -> list[str]:
        """Global updates: the applied updates of any two live nodes (of ``nodes``, default all) are
        prefixes of one sequence, and every committed update is what each node that got that far applied
        (nothing committed is lost or changed).

        Nodes in the cluster only (up, membership running at the newest epoch, GUM not halted): a node that
        crashed or was left out right after applying an update nobody else got holds an orphan (decision 5).  Known
        gap: a node that comes back with an orphan keeps it, because the join's database transfer and
        the quorum log's replay are not built in the simulator yet."""
        problems = []
        chosen = self.cluster.nodes if nodes is None else nodes
        applied = {i: self.cluster.nodes[i].machines["gum"].record.last_seq for i in chosen
                   if self._in_cluster(i)}
        for seq, payload in self.committed.items():
            for i, last in applied.items():
                if last >= seq and self.extras[i].store.get(seq) != payload:
                    problems.append(f"node {i} applied {self.extras[i].store.get(seq)} as update {seq}, "
                                    f"but {payload} was committed")
        nodes = sorted(applied)
        for a in nodes:
            for b in nodes:
                if a < b:
                    upto = min(applied[a], applied[b])
                    for seq in range(1, upto + 1):
                        if self.extras[a].store.get(seq) != self.extras[b].store.get(seq):
                            problems.append(f"nodes {a} and {b} applied different updates as number {seq}")
                            break
        return problems

    def _in_cluster(self, i: int) -> bool:
        """Up, taking part in the membership at the newest epoch any live node installed, GUM not halted
        (a node still in a superseded epoch will be left out: what it applied alone is an orphan)."""
        node = self.cluster.nodes[i]
        newest = max((n.machines["membership"].record.epoch for n in self.cluster.nodes.values() if n.up), default=0)
        return (node.up and node.machines["gum"].state != "Halted"
                and node.machines["membership"].state not in ("Down", "Halted")
                and node.machines["membership"].record.epoch == newest)

    def violations(self) -> list[str]:
        problems = []
        for gi, g in enumerate(self.groups):
            nodes = self.running_on(gi)
            if len(nodes) > 1:
                problems.append(f"group {g.name} runs on nodes {nodes} at once")
            for i in nodes:
                if self.cluster.nodes[i].machines["membership"].state not in ("Stable", "Collecting", "Proposing",
                                                                            "Accepted"):
                    problems.append(f"group {g.name} runs on node {i}, which is not in the cluster")
        return problems
