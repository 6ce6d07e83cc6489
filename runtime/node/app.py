"""One node's cluster service above its machines: what the simulator and the daemon share.

A :class:`NodeApp` carries out the effects of a node's machines that are
neither messages nor timers, by the rules of ``docs/design/cluster-protocols.md``:

* **global updates**: the payload of an update (a list of changes) travels
  beside the GUM's ``lock_request`` and ``apply_update`` messages
  (:meth:`NodeApp.attach_payload`, :meth:`NodeApp.take_payload`), is kept
  by sequence number (an orphan's number given to a newer update replaces
  it, decision 5), and is applied on ``command apply``: the node's
  :class:`Database` stores it and says which failover-manager events it
  makes (a group's owner, a paused node, a group's configuration);
* **one update at a time**: changes to submit wait in a queue; the next is
  submitted when GUM is idle again (:meth:`NodeApp.after_step`) and the
  report of the one in flight has been handled (:meth:`NodeApp.route`: a
  step logs before its report, so a queue left at that point stalled until
  the next submit).  The failover
  manager's own updates (owners, pauses) were decided for the membership of
  their time: those still queued when a regroup starts or the node halts are
  dropped (the failover manager decides again for the next membership, as
  ``spec/gum.py`` asks of the caller);
* **groups and resources**: the failover manager's ``group_online`` /
  ``group_offline`` / ``groups_online`` / ``groups_offline`` /
  ``halt_groups`` drive the group machines, whose ``online_resources`` /
  ``offline_resources`` drive the resource machines, whose ``call`` effects
  go to the node's resource driver (simulated, or the resource monitors);
* **the rest** goes to :class:`Hooks` the shell supplies: the quorum disk's
  commands, the database transfer of a join, the quorum log on the disk, the
  fence devices.

Nothing here touches a socket, a file or a clock: the simulator and the
daemon hand it their :class:`~wolfpack.runtime.node.host.MachineHost`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from wolfpack.runtime.node.host import ApplyFailed, MachineHost, Routed
from wolfpack.spec.core import Emitted
from wolfpack.spec.wiring import GROUP_TO_FAILOVER, RESOURCE_TO_GROUP, route

Change = dict[str, Any]
Update = list[Change]
#: an event of the failover manager: (trigger, arguments)
FailoverEvent = tuple[str, dict[str, Any]]


class Database(Protocol):
    """Where a node keeps the updates it applies, and what they mean to its failover manager."""

    def encode(self, changes: Update) -> Update:
        """The payload of an update made of the failover manager's ``changes``."""

    def persist(self, seq: int, payload: Update) -> str | None:
        """Log update ``seq`` durably, before it is applied; or say why it cannot be applied here (nothing is
        then written)."""

    def apply(self, seq: int, payload: Update) -> list[FailoverEvent]:
        """Apply update ``seq``; the failover-manager events it makes, in order."""


def group_machine_name(g: int) -> str:
    return f"group{g}"


def resource_machine_name(g: int, i: int) -> str:
    return f"res{g}.{i}"


def parse_resource_machine(name: str) -> tuple[int, int]:
    g, i = name[3:].split(".")
    return int(g), int(i)


@dataclass
class Hooks:
    """What the shell does for the app (every hook has a harmless default)."""

    #: a resource machine's ``call`` effect: (machine name, entry point)
    drive: Callable[[str, str], None] = lambda machine, entry: None
    #: an arbitration machine's ``command`` to the quorum disk
    device: Callable[[Emitted], None] = lambda effect: None
    #: the membership machine asks for the sponsor's database (the join's transfer)
    load_database: Callable[[int], None] = lambda sponsor: None
    #: this node won the quorum disk; the newest membership epoch recorded on it, if the shell read it at once
    #: (the daemon reads it in a worker and feeds ``disk_epoch`` itself)
    disk_won: Callable[[], int | None] = lambda: None
    #: the membership machine records a round's epoch on the quorum disk it holds
    record_epoch: Callable[[int], None] = lambda epoch: None
    #: update ``seq`` was applied here, with this payload
    applied: Callable[[int, Update], None] = lambda seq, payload: None
    #: this node's own update was committed (its sender heard so)
    committed: Callable[[int, Update], None] = lambda seq, payload: None
    #: this node's own update ended: "committed", "aborted", "interrupted" or "refused" (with its payload)
    ended: Callable[[str, Update], None] = lambda outcome, payload: None
    #: the failover manager asks to fence these nodes (fencing required); the shell feeds back ``fence_succeeded``
    #: or ``fence_failed`` for each (the default fences nothing: a shell without fence devices never says it did)
    fence: Callable[[list[int]], None] = lambda nodes: None
    #: run a function after the current step (the event loop's ``call_soon``)
    defer: Callable[[Callable[[], None], str], None] = lambda fn, what: fn()


#: the mark a failover decision's payload carries until the locker numbers it: the membership epoch it was made in
DECIDED_IN = "decided_in"


def unmarked(payload: Update) -> Update:
    """The payload without its decision mark (what is persisted, applied and swept)."""
    return [c for c in payload if not (isinstance(c, Mapping) and DECIDED_IN in c)]


def decided_in(payload: Update) -> int | None:
    """The oldest membership epoch a decision in this payload was made in (None: no decision; -1: a mark that
    is not an epoch, which a well-behaved node never sends: refused as the oldest)."""
    marks = [c[DECIDED_IN] for c in payload if isinstance(c, Mapping) and DECIDED_IN in c]
    if not marks:
        return None
    return min(m if isinstance(m, int) and not isinstance(m, bool) else -1 for m in marks)


@dataclass
class NodeApp:
    host: MachineHost
    database: Database
    hooks: Hooks = field(default_factory=Hooks)
    pending: Update | None = None  # the update this node's GUM is submitting
    store: dict[int, Update] = field(default_factory=dict)  # payload by sequence number
    incoming: dict[int, Update] = field(default_factory=dict)  # lock requests' payloads, by sender
    #: the payload of the apply_update being handled, by number: kept only if GUM persists it (its rule)
    offered: dict[int, Update] = field(default_factory=dict)
    queue: list[Update] = field(default_factory=list)
    #: group commit: at most this many queued updates travel as one global update (1: each on its own)
    batch_limit: int = 1
    parts: list[Update] = field(default_factory=list)  # the queued updates ``pending`` is made of
    _singles: int = 0  # after a refused batch, its updates go one at a time (only the bad one is refused)
    #: the failover manager's updates in the queue or in flight: id -> the groups whose owner each sets
    _decided: dict[int, list[int]] = field(default_factory=dict)

    # -- GUM payloads ride beside their messages -------------------------------------------
    def attach_payload(self, machine: str, name: str, args: Mapping[str, Any]) -> Update | None:
        """The payload to send with a message of ``machine``."""
        if machine == "gum" and name == "lock_request":
            return self.pending
        if machine == "gum" and name in ("apply_update", "lock_granted"):
            return self.store.get(int(args["seq"]))
        return None

    def take_payload(self, src: int, machine: str, name: str, args: Mapping[str, Any], payload: Any) -> None:
        """Keep the payload that came with a message (before the message is fed)."""
        if machine != "gum":
            return
        if name == "lock_request":
            self.incoming[src] = list(payload or [])
        elif name == "apply_update" and payload is not None:
            # whether this sweep is taken is GUM's decision: the payload is kept when GUM persists the update
            # (a former locker may still deliver an update nobody else numbered so, which GUM ignores)
            self.offered[int(args["seq"])] = list(payload)
        elif name == "lock_granted" and (payload is not None or self.pending is not None):
            # the grant carries what the locker applied under that number: the sweep delivers that (a grant sent
            # again to a holder that restarted meanwhile carries its former incarnation's update, not ``pending``)
            self.keep(int(args["seq"]), list(payload) if payload is not None else unmarked(self.pending or []))

    def keep(self, seq: int, payload: Update) -> None:
        """Keep the payload of update ``seq`` for when GUM applies it.  Past what this node applied, a newer
        payload replaces an older one: an update numbered by a locker that died before anyone else had it is
        an orphan, and the new locker gives its number to another update (decision 5)."""
        if seq > self.host.machines["gum"].record.last_seq:
            self.store[seq] = payload
        else:
            self.store.setdefault(seq, payload)

    # -- submitting ---------------------------------------------------------------------------
    def submit(self, changes: Update, decided: bool = False) -> Update:
        """Queue one global update; it is submitted when GUM is idle.  Its payload (reported to ``ended``).
        ``decided``: the failover manager's decision for the current membership (dropped at the next regroup)."""
        payload = self.database.encode(changes)
        if decided:  # the locker refuses it if the cluster has installed a newer membership by the time it numbers it
            payload = [{DECIDED_IN: int(self.host.machines["membership"].record.epoch)}, *payload]
        self.queue.append(payload)
        if decided:
            self._decided[id(payload)] = [int(c["group"]) for c in changes if "group" in c and "node" in c]
        self.next_submit()
        return payload

    def drop_decisions(self) -> None:
        """A regroup started or the node halted: the failover manager's queued updates are stale (a placement
        decided while a node was out may move a group that node runs again once it is back); the failover
        manager hears of each (``decision_lost``)."""
        dropped = [u for u in self.queue if id(u) in self._decided]
        if dropped:
            self.queue = [u for u in self.queue if id(u) not in self._decided]
            for u in dropped:
                self._lost(u)

    def _lost(self, payload: Update) -> None:
        """A decision of the failover manager that nobody applied: it hears which groups it was about."""
        for group in self._decided.pop(id(payload), []):
            self.host.feed("failover", "decision_lost", group=group)

    def next_submit(self) -> None:
        if self.pending is not None or not self.queue or self.host.machines["gum"].state != "Idle":
            return  # one update in flight at a time; an idle GUM picks the queue up again
        limit = 1 if self._singles > 0 else self.batch_limit
        self._singles = max(self._singles - 1, 0)
        self.parts = self.queue[:limit]
        del self.queue[:len(self.parts)]
        self.pending = self.parts[0] if len(self.parts) == 1 else [c for part in self.parts for c in part]
        self.host.feed("gum", "submit")

    def after_step(self, machine: str, entry: Mapping[str, Any]) -> None:
        """When GUM is idle again, submit the next queued update (after the current step)."""
        if machine == "gum" and entry.get("dest") == "Idle" and self.pending is None and self.queue:
            self.hooks.defer(self.next_submit, f"submit {self.host.node_id}")

    # -- reports between machines ---------------------------------------------------------------
    def route(self, machine: str, report: Emitted) -> Routed:
        out = route(machine, report.name, report.args, set(self.host.machines))
        if machine.startswith("res") and report.name in RESOURCE_TO_GROUP:
            gi, ri = parse_resource_machine(machine)
            group = group_machine_name(gi)
            event = RESOURCE_TO_GROUP[report.name]
            takes_index = any(a.name == "i" for a in self.host.machines[group].spec.event(event).args)
            out.append((group, event, {"i": ri} if takes_index else {}))
        if machine.startswith("group") and report.name in GROUP_TO_FAILOVER:
            out.append(("failover", GROUP_TO_FAILOVER[report.name], {"group": int(machine[5:])}))
        if machine == "arbitration" and report.name == "won":
            floor = self.hooks.disk_won()
            if floor is not None:  # before the membership machine hears that it holds the disk
                out.insert(0, ("membership", "disk_epoch", {"epoch": floor}))
        if machine == "membership" and report.name in ("regroup_started", "halted"):
            self.drop_decisions()
        if machine == "gum" and report.name in ("committed", "aborted", "interrupted", "refused"):
            outcome = report.name
            mine = None if self.pending is None else unmarked(self.pending)
            if outcome == "committed" and self.store.get(int(report.args["seq"]), mine) != mine:
                outcome = "aborted"  # the sweep carried another update under that number (see take_payload)
            if outcome == "committed" and mine is not None:
                self.hooks.committed(int(report.args["seq"]), mine)
            if report.name == "refused" and len(self.parts) > 1:  # try them one by one: only the bad one fails
                self.queue[0:0] = self.parts
                self._singles = len(self.parts)
            else:
                for part in self.parts:
                    if outcome in ("aborted", "refused"):  # nobody applied it (an interrupted one may be swept)
                        self._lost(part)
                    self._decided.pop(id(part), None)
                    self.hooks.ended(outcome, part)
            self.pending = None
            self.parts = []
            if self.queue:  # the step's log came before this report: after_step saw the update still in flight
                self.hooks.defer(self.next_submit, f"submit {self.host.node_id}")
        return out

    # -- commands ------------------------------------------------------------------------------
    def command(self, machine: str, effect: Emitted) -> None:
        args = effect.args
        if machine == "failover":
            self._failover_command(effect.name, args)
        elif machine == "gum" and effect.name == "persist":
            self._persist(int(args["seq"]))
        elif machine == "gum" and effect.name == "apply":
            self._apply(int(args["seq"]))
        elif machine.startswith("group") and effect.name in ("online_resources", "offline_resources"):
            gi = int(machine[5:])
            trigger = "online" if effect.name == "online_resources" else "offline"
            for ri in args["resources"]:
                self.host.feed(resource_machine_name(gi, ri), trigger)
        elif machine.startswith("res") and effect.kind == "call":
            self.hooks.drive(machine, effect.name)
        elif machine == "arbitration":
            self.hooks.device(effect)
        elif machine == "membership" and effect.name == "record_epoch":
            self.hooks.record_epoch(int(args["epoch"]))
        elif machine == "membership" and effect.name == "load_database":
            self.hooks.load_database(int(args["sponsor"]))

    def _failover_command(self, name: str, args: Mapping[str, Any]) -> None:
        me = self.host.node_id
        if name == "submit_owners":
            self.submit(list(args["updates"]), decided=True)
        elif name == "group_online":
            self._group(int(args["group"]), "online", node=me)
        elif name == "group_offline":
            self._group(int(args["group"]), "offline")
        elif name == "groups_online":
            for g in args["groups"]:
                self._group(int(g), "online", node=me)
        elif name == "groups_offline":
            for g in args["groups"]:
                self._group(int(g), "offline")
        elif name == "halt_groups":
            self.halt_groups()
        elif name == "fence_nodes":
            self.hooks.fence([int(k) for k in args["nodes"]])

    def _group(self, g: int, trigger: str, **args: Any) -> None:
        name = group_machine_name(g)
        if name in self.host.machines:  # a slot without a group (the daemon's free slots) has no machine
            self.host.feed(name, trigger, **args)

    def groups(self) -> list[int]:
        """The group indices this node has machines for."""
        return sorted(int(m[5:]) for m in self.host.machines if m.startswith("group"))

    def resources(self, g: int) -> list[int]:
        prefix = f"res{g}."
        return sorted(int(m[len(prefix):]) for m in self.host.machines if m.startswith(prefix))

    def halt_groups(self) -> None:
        """Stop every resource at once (Terminate) and tell each group its owner halted (N4)."""
        for g in self.groups():
            for ri in self.resources(g):
                self.host.feed(resource_machine_name(g, ri), "terminate")
            self.host.feed(group_machine_name(g), "owner_halted")

    # -- applying global updates --------------------------------------------------------------
    def _payload(self, seq: int) -> Update:
        gum = self.host.machines["gum"].record
        if gum.locker == self.host.node_id and gum.lock_holder != -1 and gum.locked_seq == seq:
            # the locker numbers an update and applies it first: its own, or the requester's (whatever an
            # earlier sweep left under that number is an orphan)
            holder = gum.lock_holder
            asked = (self.pending or []) if holder == self.host.node_id else self.incoming.get(holder, [])
            decided = decided_in(asked)
            epoch = int(self.host.machines["membership"].record.epoch)
            if decided is not None and decided < epoch:
                raise ApplyFailed("apply_error", {"seq": seq},
                                  f"update {seq} is a failover decision made in membership epoch {decided}, "
                                  f"and epoch {epoch} is installed now: refused (the new membership's coordinator "
                                  "places orphaned groups again; a group stopped for this hand-over comes back to "
                                  "its owner)")
            self.store[seq] = unmarked(asked)
        elif seq in self.offered:
            # the sweep GUM took, in the step handling its message: GUM persists only the number after the last
            # it applied, so this payload is the update under that number, whatever an earlier incarnation kept
            # there (its own update granted before it halted is an orphan)
            self.store[seq] = self.offered.pop(seq)
        elif seq not in self.store:
            self.store[seq] = unmarked(self.incoming.get(gum.lock_holder, self.pending or []))
        return self.store[seq]

    def _persist(self, seq: int) -> None:
        why = self.database.persist(seq, self._payload(seq))
        if why is not None:
            raise ApplyFailed("apply_error", {"seq": seq}, why)

    def _apply(self, seq: int) -> None:
        payload = self._payload(seq)
        for stale in [k for k in self.offered if k <= seq]:  # sweeps GUM did not take
            del self.offered[stale]
        self.hooks.applied(seq, payload)
        for trigger, args in self.database.apply(seq, payload):
            self.host.feed("failover", trigger, **args)

    def adopt(self, seq: int, locker: int, members: Sequence[bool], events: Sequence[FailoverEvent]) -> None:
        """Give this node's machines a database it took (a sponsor's, or the quorum log's): GUM's history up to
        ``seq`` with ``locker`` and ``members``, then the failover-manager events of its content."""
        self.host.feed("gum", "database_loaded", seq=seq, locker=int(locker),
                       **{f"alive{k}": int(m) for k, m in enumerate(members)})
        for trigger, args in events:
            self.host.feed("failover", trigger, **args)


def change_events(change: Mapping[str, Any]) -> list[FailoverEvent]:
    """The failover-manager event of one of its own changes (an owner, a paused node); [] for anything else."""
    if "pause" in change:
        return [("paused_applied", {"node": int(change["pause"]), "paused": int(change["paused"])})]
    if "group" in change and "node" in change:
        return [("owner_applied", {"group": int(change["group"]), "node": int(change["node"])})]
    return []
