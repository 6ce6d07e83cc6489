"""The models ``wolfpack verify`` checks, by name.

This is the only per-machine code of the proofs, and it only chooses
bounds and compositions; every rule comes from ``spec/``:

* ``resource`` and ``node``: each spec on its own, every parameter free in its domain;
* ``group``: the group machine for 1, 2, 3 and 4 resources, with every
  dependency matrix its domain allows (C4's ordering is the spec's
  ``dependency_order`` invariant);
* ``ownership``: a product of one group (4 resources) and 3 node machines,
  synchronised so that a node's ``accept_group`` / ``release_group`` fire in
  the same step as the group becoming active / inactive on it, and a node's
  halting rows (those that stop all its resources) fire together with the
  group's ``owner_halted``.  Its properties are "a group is active on at
  most one node", "active implies the owner is a member (Online or Paused)"
  and the two facts that make them inductive.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from wolfpack.errors import WolfpackError
from wolfpack.proofs.arbitration_model import arbitration_models
from wolfpack.proofs.model import Component, Model, Property, Sync, View, single
from wolfpack.proofs.pr_arbitration_model import pr_arbitration_models
from wolfpack.spec import arbitration, node, persistent_reservation, pr_arbitration, reservation, resource
from wolfpack.spec.core import Record, Spec
from wolfpack.spec.expr import And, Exists, ForAll, If, Implies, Not
from wolfpack.spec.failover import make_failover_spec
from wolfpack.spec.group import OFF, make_group_spec
from wolfpack.spec.gum import make_gum_spec
from wolfpack.spec.heartbeat import make_heartbeat_spec
from wolfpack.spec.membership import make_membership_spec

GROUP_SIZES = (1, 2, 3, 4)
OWNERSHIP_NODES = 3
OWNERSHIP_GROUP_SIZE = 4
#: the node effect that means "this node stops every resource it runs"
HALT_EFFECT = ("command", "stop_all_resources")


def group_model(n: int) -> Model:
    return single(make_group_spec(n), name=f"group[n={n}]",
                  doc=f"the group machine with {n} resource(s), every dependency matrix without self-loops, "
                      "every failover and failback policy")


# -- the ownership product -------------------------------------------------------------


def active(group: Record) -> Any:
    """Some resource of the group is not Offline (it may be running)."""
    n = len(group.res)
    return Exists(range(n), lambda i: group.res[i] != OFF)


def active_on(group: Record, k: int) -> Any:
    return And(active(group), group.owner == k)


def halting_triggers(spec: Spec) -> tuple[str, ...]:
    """The events of ``spec`` with a row that stops every resource of the node."""
    return tuple(sorted({t.trigger for t in spec.transitions
                         if any((e.kind, e.name) == HALT_EFFECT for e in t.effects)}))


def ownership_model(group_spec: Spec | None = None, node_spec: Spec | None = None,
                    nodes: int = OWNERSHIP_NODES) -> Model:
    """One group and ``nodes`` node machines, synchronised on ownership."""
    g_spec = group_spec or make_group_spec(OWNERSHIP_GROUP_SIZE)
    n_spec = node_spec or node.SPEC
    names = [f"node{k}" for k in range(nodes)]
    components = (Component("group", g_spec, {"nodes": nodes}), *(Component(n, n_spec) for n in names))
    halts = halting_triggers(n_spec)
    syncs: list[Sync] = []
    for k, name in enumerate(names):
        syncs += [
            Sync("group", name, "accept_group", _becomes(k, True),
                 f"the group becomes active on node {k}: node {k} accepts it in the same step"),
            Sync("group", name, "release_group", _becomes(k, False),
                 f"the group stops being active on node {k}: node {k} releases it in the same step"),
            Sync(name, "group", "owner_halted", _owner_is(k),
                 f"node {k} halts ({', '.join(halts)}) while it owns the group: the group's owner halted",
                 on=halts),
        ]

    def runs(view: View, k: int) -> Any:
        return view[names[k]].groups >= 1

    def member(rec: Record) -> Any:
        return rec.is_(*node.MEMBER)

    properties = (
        Property("active_on_at_most_one_node",
                 lambda v: ForAll(range(nodes), lambda j: ForAll(range(j + 1, nodes), lambda k: Not(
                     And(active(v.group), runs(v, j), runs(v, k))))),
                 "a group is active (some resource not Offline) on at most one node"),
        Property("active_owner_is_member",
                 lambda v: Implies(active(v.group), Exists(range(nodes), lambda k: And(
                     v.group.owner == k, member(v[names[k]])))),
                 "an active group's owner is a member node (Online or Paused)"),
        Property("runs_only_on_owner",
                 lambda v: ForAll(range(nodes), lambda k: Implies(And(active(v.group), runs(v, k)),
                                                                  v.group.owner == k)),
                 "a node runs an active group only if it is the group's recorded owner"),
        Property("node_counts_match",
                 lambda v: ForAll(range(nodes), lambda k: v[names[k]].groups == If(active_on(v.group, k), 1, 0)),
                 "each node counts the group (groups = 1) exactly while the group is active on it"),
    )
    witnesses = tuple(Property(f"active_on_node{k}", _runs_on(k), f"the group runs on node {k}")
                      for k in range(nodes))
    return Model("ownership", f"one group of {len(g_spec.field('res').default)} resources and {nodes} nodes",
                 components, tuple(syncs), properties, witnesses, table_checks=False, bmc_bound=8)


def _becomes(k: int, now_active: bool) -> Callable[[View, View], Any]:
    def when(before: View, after: View) -> Any:
        was, now = active_on(before.group, k), active_on(after.group, k)
        return And(Not(was), now) if now_active else And(was, Not(now))

    return when


def _runs_on(k: int) -> Callable[[View], Any]:
    return lambda view: active_on(view.group, k)


def _owner_is(k: int) -> Callable[[View, View], Any]:
    return lambda before, after: before.group.owner == k


# -- the registry -------------------------------------------------------------------------


@cache
def registry() -> dict[str, tuple[Model, ...]]:
    """Machine name (as typed on the command line) -> the models checked for it."""
    return {
        "resource": (single(resource.SPEC, doc="the resource machine; every parameter (RestartAction, "
                            "RestartThreshold, timeouts) free in its domain"),),
        "group": tuple(group_model(n) for n in GROUP_SIZES),
        "node": (single(node.SPEC, doc="the node machine; epochs and group counts unbounded"),),
        "ownership": (ownership_model(),),
        "heartbeat": tuple(single(make_heartbeat_spec(n), name=f"heartbeat[n={n}]",
                                  doc=f"heartbeat suspicion of one node in a {n}-node cluster") for n in (3,)),
        "membership": tuple(single(make_membership_spec(n), name=f"membership[n={n}]",
                                   doc=f"the regroup machine of one node in a {n}-node cluster, both quorum kinds")
                            for n in (3,)),
        "gum": (single(make_gum_spec(3), name="gum[n=3]", doc="the global update manager of one node in a "
                       "3-node cluster (locker, sweep, replay)"),),
        "failover": (single(make_failover_spec(3, 2), name="failover[n=3,g=2]",
                            doc="the failover manager of one node: 3 nodes, 2 groups"),),
        "reservation": (single(reservation.SPEC, doc="the quorum disk's reservation (SCSI-2 reserve/release/reset)"),),
        "arbitration": (single(arbitration.SPEC, doc="MSCS challenge/defense of one node"),),
        "quorum_disk": arbitration_models(),
        "persistent_reservation": (single(persistent_reservation.SPEC, doc="the quorum disk's SCSI-3 persistent "
                                          "reservation (register, reserve type 5, preempt, read keys, writes)"),),
        "pr_arbitration": (single(pr_arbitration.SPEC,
                                  doc="SCSI-3 challenge/defense and storage fencing of one node"),),
        "quorum_disk_pr": pr_arbitration_models(),
    }


MACHINES = ("resource", "group", "node", "ownership", "heartbeat", "membership", "gum", "gum_cluster", "failover",
            "reservation", "arbitration", "quorum_disk", "persistent_reservation", "pr_arbitration", "quorum_disk_pr",
            "regroup", "cluster", "quorum", "timing")
#: names that are checked outside the model registry (by their own checkers: :mod:`wolfpack.proofs.checks`, and
#: the timing obligations)
NOT_MODELS = ("gum_cluster", "regroup", "cluster", "quorum", "timing")


def select(names: tuple[str, ...]) -> list[Model]:
    """The registry's models for the given machine names (all when empty); the names of :data:`NOT_MODELS` are
    checked by their own checkers (see ``wolfpack verify``)."""
    unknown = [n for n in names if n not in MACHINES]
    if unknown:
        raise WolfpackError(f"unknown machine(s) {', '.join(unknown)}: choose from {', '.join(MACHINES)}")
    chosen = names or MACHINES
    return [m for name in chosen if name not in NOT_MODELS for m in registry()[name]]
