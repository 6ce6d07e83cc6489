"""Reconciliation before a node joins (issue 14; Pacemaker's probes and ``multiple-active``).

A node that starts, or comes back after it halted or left, may still run a
copy of a group another node now owns: a copy its monitor could not stop, one
an earlier monitor started (its pid file names it, and Open adopts it), or
one started by hand.  No machine here knows of such a copy (they are all
Offline), so neither the lease nor the failover manager would ever stop it.
Before the node boots its membership machine, it therefore *probes* every
resource of every group (the type's Probe: it starts nothing) and decides,
per resource, with :func:`decide`:

* nothing runs: nothing to do;
* this node owns the group, the group is wanted online, and the copy is one
  its own type started (adoptable): it is **kept**; the group's Online adopts
  it when the failover manager brings the group back here (after the
  take-over wait).  If it does not (the owner changed meanwhile), the copy is
  stopped then (:meth:`Reconciler.after_step`);
* any other copy is a stray.  If another node owns the group, the resource is
  *active on two nodes* (that owner may run it), and its ``multiple_active``
  setting says what to do: ``stop_start`` (the default) stops the copy here
  (Terminate, then a second probe to see it gone); the owner keeps, or
  starts, the only copy.  ``block`` stops nothing: the copy is left as it is,
  and this node does not join the cluster while it runs (it probes again
  every :data:`RECHECK_S`); the operator stops the copy he does not want,
  and the node joins by itself.  A stray of a group that nobody else owns
  (owned here but wanted offline, or owned by nobody) is stopped whatever
  the policy: it is no second copy.  A copy Terminate cannot reach (a port
  someone listens on, held by a process the monitor cannot see) blocks too.

The owner table is the one in the node's hive: at a start or rejoin, what it
had on disk.  When the join then loads a sponsor's newer database
(``runtime/daemon/transfer.py``), the node reconciles again against that
table *before* it resumes its machines (the install step waits), and a copy
this node no longer owns is stopped before its failover manager hears the
membership; a blocked one makes it halt and come back later.

Every copy found active is one log line that says what, where, what was
done, and what to do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.daemon.resources import ResourceBridge
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.node.app import resource_machine_name

log = logging.getLogger("wolfpack.reconcile")

#: the resource setting, its values and its default
SETTING = "multiple_active"
STOP_START, BLOCK = "stop_start", "block"
POLICIES = (STOP_START, BLOCK)
#: a node held back by a blocked copy probes again this often
RECHECK_S = 2.0
#: after Terminate, how long the copy may take to be gone (its process to exit and let its sockets go), and how
#: often it is probed meanwhile, before it counts as still there
GONE_WITHIN_S = 2.0
GONE_POLL_S = 0.05

#: what :func:`decide` says to do with a resource
NONE, KEEP, STOP, HOLD, UNKNOWN = "none", "keep", "stop", "block", "unknown"


def policy_problem(value: Any) -> str | None:
    """What is wrong with a ``multiple_active`` value, or None."""
    if value in POLICIES:
        return None
    return (f"{SETTING} must be {' or '.join(repr(p) for p in POLICIES)} (stop_start: stop a copy found on a node "
            f"that does not own the group; block: stop nothing, keep that node out until the operator does), "
            f"not {value!r}")


@dataclass(frozen=True)
class Target:
    """One resource to probe, with what the owner table says of its group."""

    machine: str
    resource: str  # "<group>/<resource>"
    group: str
    slot: int
    owner: int
    wanted: str  # "online" | "offline"
    policy: str = STOP_START


@dataclass(frozen=True)
class Verdict:
    target: Target
    action: str
    why: str
    #: the other node that owns the group (it may run a copy too): the resource is active on two nodes
    multiple_active: bool = False
    found: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.target.resource, "owner": self.target.owner, "policy": self.target.policy,
                "action": self.action, "why": self.why, "multiple_active": self.multiple_active,
                "pids": list(self.found.get("pids", []))}


def targets(hive: Hive, bound: Callable[[str], bool]) -> list[Target]:
    """Every resource of every group in ``hive`` that has a machine bound here."""
    owners = catalog.owners(hive)
    out = []
    for info in sorted(catalog.groups(hive).values(), key=lambda g: g.slot):
        for r in info.resources:
            machine = resource_machine_name(info.slot, r.index)
            if bound(machine):
                policy = r.values.get(SETTING, STOP_START)
                out.append(Target(machine, f"{info.name}/{r.name}", info.name, info.slot, owners.get(info.slot, -1),
                                  info.state, policy if policy in POLICIES else STOP_START))
    return out


def decide(me: int, target: Target, found: Mapping[str, Any]) -> Verdict:
    """What to do with what a probe found (pure)."""
    if "error" in found:
        return Verdict(target, UNKNOWN, f"the probe failed ({found['error']}); whether a copy runs here is unknown",
                       found=found)
    if not found.get("active"):
        return Verdict(target, NONE, "no copy runs here", found=found)
    if target.owner == me and target.wanted == "online" and found.get("adoptable"):
        return Verdict(target, KEEP, "this node owns the group: the copy is adopted when the group comes back here",
                       found=found)
    elsewhere = target.owner not in (me, -1)
    if not found.get("stoppable", True):
        return Verdict(target, HOLD, "Terminate cannot reach that copy (the probe cannot tell its process)",
                       multiple_active=elsewhere, found=found)
    if elsewhere and target.policy == BLOCK:
        return Verdict(target, HOLD, f"{SETTING}=block: the copy is left running", multiple_active=True, found=found)
    if elsewhere:
        return Verdict(target, STOP, f"{SETTING}=stop_start: node {target.owner} keeps or "
                       "starts the only one", multiple_active=True, found=found)
    if target.owner == me and target.wanted == "online":
        why = "this node owns the group, but its type did not start this copy (it cannot supervise it)"
    else:
        why = "the group is wanted offline" if target.owner == me else "no node owns the group"
    return Verdict(target, STOP, why, found=found)


def blocked(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.action == HOLD]


def sentence(me: int, v: Verdict, done: str) -> str:
    """The log line of a copy found active: what, where, what was done, what to do."""
    t = v.target
    pids = v.found.get("pids") or []
    what = f"resource {t.resource} is active on node {me}" + (f" (pid {', '.join(map(str, pids))})" if pids else "")
    whose = (f"node {t.owner} owns group {t.group} and may run it too: ACTIVE ON TWO NODES" if v.multiple_active
             else f"group {t.group} is {'owned by this node' if t.owner == me else 'owned by no node'}, wanted "
             f"{t.wanted}")
    todo = {HOLD: f"stop the copy you do not want by hand ({'kill ' + ' '.join(map(str, pids)) if pids else 'it'} "
                  f"here, or take group {t.group} offline on node {t.owner}); node {me} then joins by itself within "
                  f"{RECHECK_S:g} s"}.get(v.action, "")
    return f"reconcile: {what}; {whose}; {v.why}; {done}" + (f"; to do: {todo}" if todo else "")


class Reconciler:
    def __init__(self, me: int, bridge: ResourceBridge, hive: Callable[[], Hive],
                 spawn: Callable[[Any], None]) -> None:
        self.me = me
        self.bridge = bridge
        self._hive = hive
        self._spawn = spawn  # starts a coroutine in the daemon's task group
        #: copies kept for their owner to adopt: machine -> verdict
        self.kept: dict[str, Verdict] = {}
        self.runs: list[dict[str, Any]] = []
        self.holding = False

    async def run(self, why: str) -> list[Verdict]:
        """Probe every bound resource, stop the strays, and confirm they are gone; the verdicts."""
        started = time.monotonic_ns()
        todo = targets(self._hive(), lambda m: m in self.bridge.bindings)
        found = await asyncio.gather(*(self.bridge.probe(t.machine) for t in todo))
        verdicts = [decide(self.me, t, f) for t, f in zip(todo, found, strict=True)]
        verdicts = list(await asyncio.gather(*(self._carry_out(v) for v in verdicts)))
        self.kept = {v.target.machine: v for v in verdicts if v.action == KEEP}
        self.runs.append({"why": why, "started_ns": started, "finished_ns": time.monotonic_ns(),
                          "at": time.time(), "found": [v.as_dict() for v in verdicts if v.action != NONE]})
        del self.runs[:-8]
        return verdicts

    async def _carry_out(self, v: Verdict) -> Verdict:
        if v.action == UNKNOWN:
            log.warning("reconcile: resource %s: %s; node %d joins anyway", v.target.resource, v.why, self.me)
            return v
        if v.action in (NONE,):
            return v
        if v.action == KEEP:
            log.info("%s", sentence(self.me, v, "kept"))
            return v
        if v.action == HOLD:
            log.error("%s", sentence(self.me, v, f"node {self.me} does not join the cluster while it runs"))
            return v
        return await self.stop(v)

    async def stop(self, v: Verdict) -> Verdict:
        """Terminate the copy, then probe again: a copy that is still there blocks the join."""
        ok = await self.bridge.terminate_now(v.target.machine)
        again = await self.bridge.probe(v.target.machine)
        deadline = time.monotonic() + GONE_WITHIN_S
        while ok and again.get("active") and "error" not in again and time.monotonic() < deadline:
            # a killed process lets its sockets go only as it exits, a moment after the signal
            await asyncio.sleep(GONE_POLL_S)
            again = await self.bridge.probe(v.target.machine)
        if ok and not again.get("active") and "error" not in again:
            log.warning("%s", sentence(self.me, v, "stopped"))
            return v
        left = Verdict(v.target, HOLD, f"Terminate {'returned' if ok else 'failed'}, but the copy is still there "
                       f"({again.get('detail') or again.get('error')})", v.multiple_active, again)
        log.error("%s", sentence(self.me, left, f"node {self.me} does not join the cluster while it runs"))
        return left

    async def before_join(self, why: str) -> None:
        """Reconcile until no blocked copy is left (a bug in reconciliation counts as one: it is retried)."""
        while True:
            try:
                held = blocked(await self.run(why))
            except Exception:
                log.exception("reconcile: node %d could not reconcile its resources; it does not join yet and tries "
                              "again in %g s", self.me, RECHECK_S)
                held = []
                self.holding = True
            else:
                self.holding = bool(held)
                if not held:
                    return
            await asyncio.sleep(RECHECK_S)

    async def after_load(self, go: Callable[[], None], halt: Callable[[str], None]) -> None:
        """The join loaded a sponsor's database (the node's machines wait): reconcile against its owner table, then
        ``go`` on; a copy that must stay (blocked) makes the node ``halt`` instead (it comes back later, and its
        next start-up reconciliation holds it out until the copy is gone)."""
        try:
            held = blocked(await self.run("the join loaded a newer database"))
        except Exception:
            log.exception("reconcile: node %d could not reconcile after loading the database", self.me)
            halt("its reconciliation failed")
            return
        if held:
            halt(f"a copy of {', '.join(v.target.resource for v in held)} runs here and may not be stopped "
                 f"automatically ({SETTING}=block, or Terminate cannot reach it)")
            return
        go()

    def after_step(self, machine: str, record: Mapping[str, Any], running: Callable[[int], bool]) -> None:
        """After the failover manager brought back the groups this node owns: a kept copy whose group did not come
        back here is a stray now (its owner changed while this node was out): stop it."""
        if machine != "failover" or not self.kept:
            return
        if record.get("dest") == "Out":
            self.kept.clear()
        elif record.get("trigger") == "resume_owned_elapsed" and "rejected" not in record:
            kept, self.kept = self.kept, {}
            for v in kept.values():
                if running(v.target.slot):
                    log.info("reconcile: resource %s: the copy kept before the join was adopted by group %s's Online",
                             v.target.resource, v.target.group)
                    continue
                stray = Verdict(v.target, STOP, "the group did not come back here after the join (its owner changed "
                                "while this node was out)", found=v.found)
                self._spawn(self.stop(stray))

    def status(self) -> dict[str, Any]:
        """What the admin API shows: the last runs, the kept copies, whether the node is held back."""
        return {"holding": self.holding, "kept": sorted(v.target.resource for v in self.kept.values()),
                "runs": self.runs[-4:]}
