"""The message-level regroup: N membership machines and the messages between them, checked by BMC.

Components (:mod:`wolfpack.proofs.network`): ``node0 .. node{N-1}``, the
membership machine of :func:`wolfpack.spec.membership.make_membership_spec`
with every node configured and one quorum kind, and ``net``: the statuses,
proposals, acknowledgements, commits and exits in flight, and the ghost
history of installs.  Every rule is the spec's own.

The environment, at any step:

* boots a node, or restarts one after a crash (``boot``); stops one on
  purpose (``shutdown``);
* lets a heartbeat suspect any node, see it back, or carry a newer epoch
  (``suspect``, ``peer_back``, ``peer_ahead``): heartbeats prove nothing, so
  any suspicion is possible, and a node may hear of a newer epoch at any time;
* lets a shell fail to load a sponsor's database (``database_unavailable``),
  at any time;
* fires a node's timers (``collect_elapsed``, ``install_wait_elapsed``)
  while they run, at any moment: every timing, not only the simulator's;
* delivers, duplicates, delays or loses any message;
* crashes a node: it keeps only what it keeps on disk (:data:`DURABLE`, the
  simulator's choice: epoch, round and the round it acknowledged).

Under Majority Node Set the arbitration machine does not run (the simulator
and the daemon start it only for a quorum disk), so ``disk_won`` and
``disk_lost`` never happen.  Properties, over the ghost history of installs
(the ``installed`` report, the one the failover manager and GUM act on):

* ``one_membership_per_epoch``: a node that is Stable has installed the set
  the first install of its epoch installed;
* ``stable_nodes_agree``: two Stable nodes at the same epoch have the same
  members;
* ``committed_sets_have_quorum``: every installed set satisfies the quorum
  rule of :mod:`wolfpack.spec.quorum` when it is installed (Majority Node
  Set: a majority of the configured nodes; disk: it holds the disk).

Epochs are tracked up to :data:`EPOCHS` (an install past it is not a step of
the model).  The checks are bounded model checking: a run of at most
``depth`` steps from the state where every node is down; the witnesses show
that such runs form, regroup and halt.

Under disk quorum (``wolfpack verify --deep``) the environment holds the disk
(ghost ``disk``) and the epoch recorded on it (ghost ``recorded``, written by
the holder's ``record_epoch``): a node reads that epoch (``disk_epoch``) then
wins the disk (``disk_won``) only while nobody holds it, and ``disk_lost``
reaches only the holder, which frees it (the old owner learns it lost before a
challenger wins).  ``one_membership_per_epoch`` and ``stable_nodes_agree``
are checked there; ``committed_sets_have_quorum`` does not hold without more
of decision 7's timing, and the model shows it: its witness is a set
committed on the acknowledgement of a holder that has lost the disk since.
What keeps groups safe then is the take-over wait (decision 7), which
``cluster[n=3]`` assumes and ``wolfpack verify timing`` checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from wolfpack.errors import SpecError
from wolfpack.proofs.backend import symbolic
from wolfpack.proofs.bmc import bounded_check
from wolfpack.proofs.model import Model, Property, View
from wolfpack.proofs.network import NET, FiredRow, Ghost, NetworkModel, NetworkSystem, network_model, node
from wolfpack.proofs.network_run import replay_network_run, with_live_records
from wolfpack.proofs.regroup_story import regroup_story
from wolfpack.proofs.results import Result
from wolfpack.proofs.trace import Run
from wolfpack.spec import membership, quorum
from wolfpack.spec.core import Field, Record, Spec
from wolfpack.spec.expr import And, Exists, ForAll, If, Implies, Not, Or
from wolfpack.spec.quorum import QuorumKind

#: what a node keeps on disk across a crash (the simulator's ``DURABLE["membership"]``)
DURABLE = ("epoch", "round", "acked")
#: the environment's events at a node; the disk's come from the arbitration machine (disk quorum only)
LOCAL = ("boot", "shutdown", "suspect", "peer_back", "peer_ahead", "clock_gap", "database_unavailable",
         "collect_elapsed", "install_wait_elapsed")
DISK_EVENTS = ("disk_won", "disk_lost", "disk_epoch")
#: the membership machine's command that writes a round's epoch on the disk it holds
RECORD = ("command", "record_epoch")
INSTALLED = ("report", "installed")
#: epochs the ghost history tracks
EPOCHS = 3
#: the models ``wolfpack verify regroup`` checks, (nodes, quorum kind), and the depth of each (parallel steps:
#: every node may act in each); ``wolfpack verify --depth N`` or ``--deep`` changes them
DEPTHS = {(3, QuorumKind.MNS): 6, (4, QuorumKind.MNS): 7}
SIZES = tuple(DEPTHS)
#: checked only by ``wolfpack verify --deep`` (minutes): disk quorum, at the depth its witnesses need
DEEP_DEPTHS = {(3, QuorumKind.DISK): 9}
NOBODY = -1


class Installs(Ghost):
    """The history of installs (the set and whether it met the quorum rule, per epoch), and the disk's holder."""

    solo = DISK_EVENTS

    def __init__(self, n: int, kind: QuorumKind, epochs: int = EPOCHS) -> None:
        self.n, self.kind, self.epochs = n, kind, epochs
        self.fields = (
            Field("used", bool, (False,) * epochs, "an install of epoch e+1 happened", length=epochs),
            Field("set", bool, (False,) * (epochs * n), "the set first installed at epoch e+1 [e*n+k]",
                  length=epochs * n),
            Field("quorate", bool, (False,) * epochs, "that install met the quorum rule", length=epochs),
            Field("disk", int, NOBODY, "who holds the quorum disk (-1: nobody)", lo=NOBODY, hi=n - 1),
            Field("recorded", int, 0, "the newest epoch recorded on the quorum disk", lo=0),
            Field("reader", int, NOBODY, "the node that read the disk's epoch and wins the disk next (-1: none)",
                  lo=NOBODY, hi=n - 1),
        )

    def allowed(self, system: NetworkSystem, k: int, trigger: str, env: Record) -> Any:
        if trigger == "disk_won":  # the shell reads the disk's epoch first (disk_epoch), then the node holds it
            return And(env.disk == NOBODY, env.reader == k)
        if trigger == "disk_lost":
            return env.disk == k
        if trigger == "disk_epoch":
            return And(env.disk == NOBODY, system.event_args(k, trigger, env).epoch == env.recorded)
        return True

    @staticmethod
    def installs(fired: Sequence[FiredRow]) -> list[FiredRow]:
        return [f for f in fired if any((e.kind, e.name) == INSTALLED for e in f.row.effects)]

    def updates(self, system: NetworkSystem, env: Record, fired: Sequence[FiredRow]) -> dict[str, Any]:
        n, ks = self.n, range(self.n)
        installs = self.installs(fired)
        holder = tuple(env.disk == k for k in ks)
        used, sets, quorate = list(env.used), list(env.set), list(env.quorate)
        for e in range(self.epochs):
            now = [(And(f.fired, f.after.epoch == e + 1), f) for f in installs]
            first = And(Not(env.used[e]), Or(*[c for c, _ in now]))
            used[e] = Or(env.used[e], first)
            for k in ks:
                sets[e * n + k] = If(first, system.chain([(c, f.after.members[k]) for c, f in now], False),
                                     env.set[e * n + k])
            rule = [(c, quorum.survives(self.kind, f.after.members, f.before.configured, holder)) for c, f in now]
            quorate[e] = If(first, system.chain(rule, False), env.quorate[e])
        recorded: Any = env.recorded
        for f in fired:
            for eff in f.row.effects:
                if (eff.kind, eff.name) == RECORD:  # written through the reservation: only its holder can
                    args = eff.args(f.before, f.args, f.after) if eff.args else None
                    assert args is not None, "record_epoch always carries its epoch"
                    epoch = args["epoch"]
                    when = True if eff.when is None else eff.when(f.before, f.args)
                    recorded = If(And(f.fired, when, env.disk == f.who, epoch > recorded), epoch, recorded)
        won = [(system.acting(k, lambda a: a.kind == "local" and a.trigger == "disk_won"), k) for k in ks]
        lost = Or(*[system.acting(k, lambda a: a.kind == "local" and a.trigger == "disk_lost") for k in ks])
        read = [(system.acting(k, lambda a: a.kind == "local" and a.trigger == "disk_epoch"), k) for k in ks]
        return {"used": tuple(used), "set": tuple(sets), "quorate": tuple(quorate),
                "disk": system.chain(won, If(lost, NOBODY, env.disk)), "recorded": recorded,
                "reader": system.chain(read, If(Or(*[c for c, _ in won]), NOBODY, env.reader))}

    def limits(self, system: NetworkSystem, env: Record, fired: Sequence[FiredRow]) -> list[Any]:
        return [Implies(f.fired, f.after.epoch <= self.epochs) for f in self.installs(fired)]


# -- properties --------------------------------------------------------------------------------


def stable(v: View, k: int) -> Any:
    return v[node(k)].is_(membership.STABLE)


def properties(n: int, epochs: int = EPOCHS) -> tuple[Property, ...]:
    ks, es = range(n), range(epochs)

    def first_set(v: View, k: int) -> Any:
        r, env = v[node(k)], v[NET]
        return Exists(es, lambda e: And(r.epoch == e + 1, env.used[e],
                                        ForAll(ks, lambda j: r.members[j] == env.set[e * n + j])))

    def one_per_epoch(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(stable(v, k), first_set(v, k)))

    def agree(v: View) -> Any:
        return ForAll(ks, lambda j: ForAll(ks, lambda k: Implies(
            And(j < k, stable(v, j), stable(v, k), v[node(j)].epoch == v[node(k)].epoch),
            ForAll(ks, lambda i: v[node(j)].members[i] == v[node(k)].members[i]))))

    def quorate(v: View) -> Any:
        return ForAll(es, lambda e: Implies(v[NET].used[e], v[NET].quorate[e]))

    return (
        Property("one_membership_per_epoch", one_per_epoch,
                 "a Stable node has installed the set the first install of its epoch installed: one committed "
                 "membership per epoch"),
        Property("stable_nodes_agree", agree, "two Stable nodes at the same epoch have the same members"),
        Property("committed_sets_have_quorum", quorate,
                 "every installed set met the quorum rule (spec/quorum.py) when it was installed"),
    )


def witnesses(n: int, kind: QuorumKind) -> tuple[Property, ...]:
    """Runs the model must contain within the depth ``wolfpack verify`` checks it to: it is not vacuous.  Two
    nodes are first Stable together at depth 6 with 3 nodes, and at depth 8 with 4 (a majority is 3, and a
    coordinator takes one acknowledgement per step): ``--deep`` checks that.  Under disk quorum (``--deep``
    only) the witnesses are what the properties become without decision 7's timing: see :data:`DISK_NOTE`."""
    ks = range(n)
    installed = Property("a_membership_installed", lambda v: Exists(ks, lambda k: stable(v, k)),
                         "a node installed a membership")
    two = Property("two_nodes_installed", lambda v: Exists(ks, lambda j: Exists(ks, lambda k: And(
        j < k, stable(v, j), stable(v, k), v[node(j)].epoch == v[node(k)].epoch))),
                   "two nodes installed one membership")
    left_out = Property("a_left_out_node_halts", lambda v: Exists(ks, lambda j: Exists(ks, lambda k: And(
        v[node(k)].is_(membership.HALTED), stable(v, j), Not(v[node(j)].members[k])))),
                        "a node halted while another installed a membership without it")
    back = Property("a_node_is_back_after_a_crash", lambda v: Exists(ks, lambda k: And(
        v[NET].crashed[k], v[node(k)].is_(*membership.IN_ROUND), v[node(k)].acked >= 1)),
                    "a node that acknowledged a proposal crashed, restarted and takes part in a round again")
    if kind == QuorumKind.DISK:
        _, _, quorate = properties(n)
        return (installed, back,
                Property("installed_after_the_holder_lost_the_disk", lambda v: Not(quorate.holds(v)),
                         "a coordinator commits with the acknowledgement of the disk holder, which lost the disk "
                         "after acknowledging"))
    if n > 3:
        return installed, left_out, back
    return installed, two, left_out, back


#: why the disk model has a witness where the others have a property
DISK_NOTE = ("the disk records the epoch of every round its holder acknowledges or proposes, and a node that wins "
             "it starts its rounds above what is recorded: one membership per epoch; but a set may be committed on "
             "the acknowledgement of a holder that has lost the disk since (its witness), which decision 7's timing "
             "covers (the old owner stops before a challenger wins, and the take-over waits for it)")


def local_events(spec: Spec, kind: QuorumKind) -> tuple[str, ...]:
    events = LOCAL + (DISK_EVENTS if kind == QuorumKind.DISK else ())
    sent = {e.name for t in spec.transitions for e in t.effects if e.kind == "send"}
    unaccounted = [t for t in spec.triggers if t not in events and t not in sent and t not in DISK_EVENTS]
    if unaccounted:
        raise SpecError(f"membership has events {unaccounted} the regroup model does not account for")
    return events


def name_of(n: int, kind: QuorumKind) -> str:
    return f"regroup[n={n},{kind.name.lower()}]"


def build_regroup_model(spec: Spec, n: int, kind: QuorumKind = QuorumKind.MNS,
                        depth: int | None = None) -> tuple[Model, NetworkModel]:
    """The message-level model of ``n`` nodes running ``spec`` (tests pass mutants)."""
    net = NetworkModel(spec, n, local_events(spec, kind), DURABLE,
                       {"kind": int(kind), "configured": (True,) * n}, Installs(n, kind))
    quorum_text = "Majority Node Set" if kind == QuorumKind.MNS else "disk quorum (the disk changes hands only " \
                                                                     "after its holder lost it)"
    doc = (f"{n} membership machines, {quorum_text}; messages lost, duplicated, reordered; crashes, restarts and "
           f"suspicions at any step; epochs up to {EPOCHS}")
    props = properties(n) if kind == QuorumKind.MNS else properties(n)[:2]
    if kind == QuorumKind.DISK:
        doc += "; " + DISK_NOTE
    model = network_model(name_of(n, kind), doc, net, props, witnesses(n, kind),
                          depth if depth is not None else DEPTHS.get((n, kind), DEEP_DEPTHS.get((n, kind), 6)))
    return model, net


@cache
def regroup_model(n: int, kind: QuorumKind = QuorumKind.MNS, depth: int | None = None) -> tuple[Model, NetworkModel]:
    return build_regroup_model(membership.make_membership_spec(n), n, kind, depth)


# -- checking -----------------------------------------------------------------------------------


def check_regroup(model: Model, net: NetworkModel) -> list[Result]:
    """BMC of the model; a counterexample is carried out again by the live machines, and comes with its story."""
    with symbolic():
        system = NetworkSystem(model, net)
        results = bounded_check(system, model.bmc_bound)
    stories: dict[int, tuple[Run, str]] = {}
    out = []
    for r in results:
        if r.run is not None:
            if id(r.run) not in stories:
                stories[id(r.run)] = _story(model, net, r.run, system.relevant)
            run, story = stories[id(r.run)]
            r = dataclasses.replace(r, run=run, story=story)
        out.append(r)
    return out


def _story(model: Model, net: NetworkModel, run: Run, relevant: set[str]) -> tuple[Run, str]:
    replay = replay_network_run(run, net, relevant)
    live = with_live_records(run, replay)
    broken = [p for p in model.all_properties() if p.name in run.violated]

    def still_broken(records: Mapping[int, Record]) -> bool:
        view = View({**live.states[-1], **{node(k): rec for k, rec in records.items()}},
                    {c.name: c.spec.name for c in model.components})
        return any(not p.holds(view) for p in broken)

    title = f"{model.name}: a counterexample to {', '.join(run.violated)}, found by wolfpack verify"
    return live, regroup_story(live, replay, net, title, still_broken)
