"""Membership, quorum and ownership composed: 3 nodes, one group, atomic regroups, for all depths.

Components: the ``ownership`` product of :mod:`wolfpack.proofs.models` (one
group machine, ``node0 .. node2`` node machines, synchronised on accepting,
releasing and halting), and ``cluster``: the latest committed membership
(its epoch and members), the quorum kind (free: both are checked), who holds
the quorum disk, and a ghost that remembers whether an epoch was ever
committed twice.  Every rule of the group and the nodes is their spec's; the
quorum rule is :func:`wolfpack.spec.quorum.survives`.  A step is one of:

* a step of the ownership product: the group's own events (online on a
  node, move, failover, resource reports, ...) with the nodes accepting and
  releasing it, and the nodes' own events (join, pause, resume, leave,
  evict, readmit; a leave or an eviction halts the node and stops the group
  if it owns it).  A node's ``form``, ``join_accepted``,
  ``regroup_survived`` and ``regroup_excluded`` happen only in a regroup;
* **a regroup outcome**: a set P of nodes that are taking part (Online,
  Paused or Joining) and satisfy the quorum rule (the pruned set a
  coordinator commits), and an epoch above every epoch the nodes of P have
  installed (the membership machine proposes a round above every round its
  members saw, and installed epochs are rounds).  In the same step the nodes
  of P install it (``regroup_survived``, or ``join_accepted`` for a joining
  node), every other node taking part halts (``regroup_excluded``) and, if
  it owns the group, the group's ``owner_halted`` fires;
* the quorum disk changes hands, at any time.

**Assumption** (decision 3 of the design notes, a timing obligation that
``wolfpack verify timing`` checks): a node outside the committed set stops
its resources before the survivors take its groups over (detection +
halt_bound < takeover_wait).  The model makes that one step: the regroup
that commits P halts everybody outside it.

The group's ``owner`` stands for the owner the global updates record: one
value that every node has (``gum_cluster`` proves the nodes' histories are
prefixes of one sequence), changed only by the group's own rows (online on a
node, a move completing); the failover manager's choice of node is free
here, so every placement is covered.

Under disk quorum the disk records epochs (``recorded``): the holder writes
the epoch of every round it acknowledges or proposes before that round can
be committed, and a node that wins the disk starts its rounds above what is
recorded there (the membership machine's ``record_epoch`` and
``disk_epoch``).  A disk regroup therefore commits an epoch above the
recorded one and records it.  (Without the record, a node that won the disk
after the last membership halted committed an epoch above its own, which
could be one already committed: the story ``disk_epochs_never_repeat``.)

Properties: a group is active on at most one node; an active group's owner
is a member of the latest committed membership; and every committed
membership has a new epoch (one committed membership per epoch), under both
quorum kinds.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import z3

from wolfpack.proofs.backend import symbolic, to_bool
from wolfpack.proofs.encode import SpecEncoding, SymState
from wolfpack.proofs.invariants import Prover
from wolfpack.proofs.model import Component, Model, Property, Sync, View
from wolfpack.proofs.models import active, halting_triggers, ownership_model
from wolfpack.proofs.results import Result
from wolfpack.proofs.system import Alternative, Choice, FollowerPart, Frame, System
from wolfpack.proofs.table import reachability
from wolfpack.spec import node as node_spec
from wolfpack.spec import quorum
from wolfpack.spec.core import Field, Record, Spec
from wolfpack.spec.expr import And, Exists, ForAll, Implies, Not
from wolfpack.spec.group import make_group_spec
from wolfpack.spec.quorum import QuorumKind

NODES = 3
GROUP_SIZE = 2
CLUSTER = "cluster"
NOBODY = -1
#: node events that only a regroup outcome gives (``form`` is a regroup that admits a joining node)
REGROUP_EVENTS = ("form", "join_accepted", "regroup_survived", "regroup_excluded")
TAKING_PART = (node_spec.ONLINE, node_spec.PAUSED, node_spec.JOINING)


def cluster_spec(n: int) -> Spec:
    """The latest committed membership, the quorum, the disk, and the ghost (no rows: the regroup step sets it)."""
    return Spec(
        name="cluster", doc="the latest committed membership and the quorum", states=("Up",), initial="Up",
        fields=(
            Field("kind", int, QuorumKind.MNS, "quorum kind: 0 Majority Node Set, 1 disk", lo=0, hi=1, param=True),
            Field("configured", bool, (True,) * n, "configured nodes", param=True, length=n),
            Field("epoch", int, 0, "epoch of the latest committed membership (0: none yet)", lo=0),
            Field("members", bool, (False,) * n, "the latest committed membership", length=n),
            Field("disk", int, NOBODY, "who holds the quorum disk (-1: nobody)", lo=NOBODY, hi=n - 1),
            Field("recorded", int, 0, "the newest epoch recorded on the quorum disk (disk quorum)", lo=0),
            Field("reused", bool, False, "ghost: some regroup committed an epoch not above the latest"),
        ),
        events=(), transitions=())


def node_name(k: int) -> str:
    return f"node{k}"


# -- properties ---------------------------------------------------------------------------------------------


def properties(n: int) -> tuple[Property, ...]:
    ks = range(n)

    def c(v: View) -> Record:
        return v[CLUSTER]

    def member(v: View, k: int) -> Any:
        return v[node_name(k)].is_(*node_spec.MEMBER)

    def mns(v: View) -> Any:
        return c(v).kind == QuorumKind.MNS

    return (
        Property("one_membership_per_epoch", lambda v: Not(c(v).reused),
                 "every committed membership has an epoch above the latest one: one committed membership per "
                 "epoch (under disk quorum, above every epoch recorded on the disk)"),
        Property("disk_records_the_latest_epoch", lambda v: Implies(Not(mns(v)), c(v).recorded >= c(v).epoch),
                 "under disk quorum the disk records the latest committed epoch", reported=False),
        Property("active_owner_in_latest_membership", lambda v: Implies(active(v.group), Exists(ks, lambda k: And(
            v.group.owner == k, c(v).members[k]))),
                 "an active group's recorded owner is a member of the latest committed membership"),
        Property("members_are_in_the_latest_membership",
                 lambda v: ForAll(ks, lambda k: Implies(member(v, k), c(v).members[k])),
                 "a node that is Online or Paused is in the latest committed membership", reported=False),
        Property("latest_members_have_its_epoch", lambda v: Implies(mns(v), ForAll(ks, lambda k: And(
            v[node_name(k)].epoch <= c(v).epoch, Implies(c(v).members[k], v[node_name(k)].epoch == c(v).epoch)))),
                 "under Majority Node Set no node has installed an epoch above the latest, and its members have "
                 "installed it", reported=False),
        Property("latest_membership_has_quorum", lambda v: Implies(And(mns(v), c(v).epoch >= 1), quorum.mns_survives(
            c(v).members, c(v).configured)),
                 "under Majority Node Set the latest committed membership holds a majority", reported=False),
    )


# -- the model ------------------------------------------------------------------------------------------------


def _never(before: View, after: View) -> Any:
    return False


def regroup_syncs(n: int) -> tuple[Sync, ...]:
    """The node events of a regroup outcome, as synchronisations of ``cluster`` (carried out by the regroup step;
    declared so that no node takes them on its own)."""
    docs = {"form": "a node forms a cluster only through a regroup that admits it (join_accepted)",
            "join_accepted": "a regroup admits joining node {k} at its epoch",
            "regroup_survived": "a regroup keeps member {k}: it installs the new epoch",
            "regroup_excluded": "a regroup leaves node {k} out: it halts in the same step (decision 3)"}
    return tuple(Sync(CLUSTER, node_name(k), t, _never, docs[t].format(k=k), on=("regroup",))
                 for k in range(n) for t in REGROUP_EVENTS)


@cache
def cluster_model(n: int = NODES, group_size: int = GROUP_SIZE) -> Model:
    return build_cluster_model(make_group_spec(group_size), node_spec.SPEC, n)


def build_cluster_model(group: Spec, nodes: Spec, n: int = NODES) -> Model:
    """The composed model of ``n`` node machines running ``nodes``, one group running ``group``, and the regroup
    outcomes (tests pass mutants)."""
    owned = ownership_model(group, nodes, n)
    components = (*owned.components, Component(CLUSTER, cluster_spec(n), {"configured": (True,) * n}))
    witnesses = (
        *owned.witnesses,
        Property("active_again_after_its_owner_halted", lambda v: And(active(v.group), v.group.failover_count >= 1),
                 "the group's owner halted (left out, left or evicted) and the group is active again"),
    )
    return Model(f"cluster[n={n}]", f"membership (atomic regroups under the quorum rule), quorum, {n} nodes and one "
                 f"group of {len(group.field('res').default)} resources; take-over waits for the halt (decision 3)",
                 components, (*owned.syncs, *regroup_syncs(n)), (*owned.properties, *properties(n)), witnesses,
                 table_checks=False, bmc_bound=10)


class ClusterSystem(System):
    """The ownership product's steps, plus the regroup outcome and the disk changing hands."""

    #: under disk quorum a regroup commits an epoch above the one recorded on the disk (a test turns it off)
    disk_records_epochs = True

    def _build(self, pre: Frame, post: Frame) -> list[Choice]:
        choices = super()._build(pre, post)
        return [*choices, self._regroup(pre, post), self._disk(pre, post)]

    def _stay(self, pre: Frame, post: Frame, names: set[str]) -> list[z3.BoolRef]:
        return [self.encodings[m].stay(pre.parts[m], post.parts[m]) for m in self.encodings if m not in names]

    @staticmethod
    def _cluster_params(pre: Frame, post: Frame) -> list[z3.BoolRef]:
        s, s2 = pre.parts[CLUSTER], post.parts[CLUSTER]
        return [s2.state == s.state, *[a == b for a, b in zip(s.param_variables, s2.param_variables, strict=True)]]

    def _regroup(self, pre: Frame, post: Frame) -> Choice:
        n = len([c for c in self.model.components if c.spec.name == "node"])
        ks = range(n)
        bits = tuple(self.step_var(f"{CLUSTER}.p{k}", z3.IntSort()) for k in ks)  # 1: node k is in the committed set
        chosen = tuple(b == 1 for b in bits)
        epoch = self.step_var(f"{CLUSTER}.epoch", z3.IntSort())
        c, c2 = pre.parts[CLUSTER].record, post.parts[CLUSTER].record
        nodes = [pre.parts[node_name(k)] for k in ks]
        taking_part = [to_bool(s.record.is_(*TAKING_PART)) for s in nodes]
        parts: list[Any] = [
            *[z3.Or(b == 0, b == 1) for b in bits], z3.Or(*chosen),
            *[z3.Implies(chosen[k], taking_part[k]) for k in ks],
            *[z3.Implies(chosen[k], epoch > nodes[k].record.epoch) for k in ks],
            z3.Implies(to_bool(c.kind == QuorumKind.DISK), epoch > c.recorded) if self.disk_records_epochs
            else z3.BoolVal(True),
            to_bool(quorum.survives(c.kind, chosen, c.configured, tuple(c.disk == k for k in ks))),
            c2.epoch == epoch, *[c2.members[k] == chosen[k] for k in ks], c2.disk == c.disk,
            c2.recorded == z3.If(to_bool(c.kind == QuorumKind.DISK), epoch, c.recorded),
            c2.reused == z3.Or(c.reused, epoch <= c.epoch), *self._cluster_params(pre, post),
        ]
        followers: list[FollowerPart] = []
        syncs = {(s.follower, s.trigger): s for s in self.model.syncs}
        for k in ks:
            name = node_name(k)
            enc, s, s2 = self.encodings[name], nodes[k], post.parts[name]
            new_epoch = Record({"epoch": epoch})
            survived = self._rows(enc, s, s2, "regroup_survived", new_epoch)
            admitted = self._rows(enc, s, s2, "join_accepted", new_epoch)
            out = self._rows(enc, s, s2, "regroup_excluded", Record({}))
            joining = to_bool(s.record.is_(node_spec.JOINING))
            followers += [FollowerPart(name, syncs[(name, "regroup_survived")], z3.And(chosen[k], z3.Not(joining)),
                                       survived),
                          FollowerPart(name, syncs[(name, "join_accepted")], z3.And(chosen[k], joining), admitted),
                          FollowerPart(name, syncs[(name, "regroup_excluded")],
                                       z3.And(z3.Not(chosen[k]), taking_part[k]), out)]
            parts.append(z3.If(chosen[k], z3.Or(*[a.holds for a in (*survived, *admitted)]), z3.If(
                taking_part[k], z3.Or(*[a.holds for a in out]), enc.stay(s, s2))))
        # a node left out halts (every one of its resources stops) if its spec's regroup_excluded says so
        halts = "regroup_excluded" in halting_triggers(self.encodings[node_name(0)].spec)
        halted = z3.Or(*[z3.And(z3.Not(chosen[k]), taking_part[k], to_bool(pre.parts["group"].record.owner == k))
                         for k in ks]) if halts else z3.BoolVal(False)
        g_enc, g, g2 = self.encodings["group"], pre.parts["group"], post.parts["group"]
        owner_halted = self._rows(g_enc, g, g2, "owner_halted", Record({}))
        owner_halted.append(Alternative("ignored", None, z3.And(g_enc.ignores(g, "owner_halted"), g_enc.stay(g, g2)),
                                        Record({})))
        followers.append(FollowerPart("group", Sync(CLUSTER, "group", "owner_halted", _never,
                                                    "the owner is left out"), halted, owner_halted))
        parts.append(z3.If(halted, z3.Or(*[a.holds for a in owner_halted]), g_enc.stay(g, g2)))
        args = Record({**{f"p{k}": bits[k] for k in ks}, "epoch": epoch})
        return Choice(CLUSTER, -1, "regroup", args, z3.And(*[to_bool(p) for p in parts]), followers)

    @staticmethod
    def _rows(enc: SpecEncoding, s: SymState, s2: SymState, trigger: str, args: Record) -> list[Alternative]:
        """The rows of ``trigger`` that change the record (a stale regroup outcome is not one)."""
        return [Alternative(f"row {i}", i, enc.fire(row, s, s2, args), args)
                for i, row in enumerate(enc.spec.transitions)
                if row.trigger == trigger and (row.update is not None or row.dest is not None)]

    def _disk(self, pre: Frame, post: Frame) -> Choice:
        holder = self.step_var(f"{CLUSTER}.holder", z3.IntSort())
        c, c2 = pre.parts[CLUSTER].record, post.parts[CLUSTER].record
        n = len(c.members)
        same = [to_bool(getattr(c2, f) == getattr(c, f)) for f in ("epoch", "recorded", "reused")]
        same += [c2.members[k] == c.members[k] for k in range(n)]
        holds = z3.And(holder >= NOBODY, holder < n, c2.disk == holder, *same, *self._cluster_params(pre, post),
                       *self._stay(pre, post, {CLUSTER}))
        return Choice(CLUSTER, -1, "disk_changes_hands", Record({"holder": holder}), holds, [])


def check_cluster(model: Model | None = None) -> list[Result]:
    """Every component state and witness reachable, then the properties (with the lemmas and every component's
    invariants) for all depths: induction, k-induction or Spacer (:class:`~wolfpack.proofs.invariants.Prover`)."""
    model = model or cluster_model()
    with symbolic():
        system = ClusterSystem(model)
        return [reachability(system, model.bmc_bound), *Prover(system, bound=model.bmc_bound).run()]
