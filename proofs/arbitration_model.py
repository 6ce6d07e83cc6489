"""Quorum arbitration as a composed model, and the quorum rules' exclusion.

The ``quorum_disk[n=N]`` models (N = 2, 3, 4) are products of N arbitration
machines (``arb0``, ``arb1``, ..., :mod:`wolfpack.spec.arbitration`) and the
quorum disk's reservation device (``dev``, :mod:`wolfpack.spec.reservation`).
Every rule comes from those two specs; this module only says which steps
are taken together, and derives even that from the specs' effects:

* a row of ``arbK`` with a ``command`` effect (``reset``, ``reserve``,
  ``release``) makes the device handle the event of that name in the same
  step, with the arguments the effect itself computes (``node = K``);
* the device's ``serve`` of node K's queued RESERVE makes ``arbK`` handle
  the answer the device reports (``reserve_ok``, ``reserve_conflict`` or
  ``reserve_failed``) in the same step; which answer is read from the
  device's own row guard for ``node = K``.

The answer's way back is folded into the serve step.  That loses no
behaviour: between the serve and the answer's arrival only node K's own
events matter to it (its timeout, crash or release), and each has the same
outcome taken just before the serve (the device serves the RESERVE of a
releasing node first; a crashed or timed-out node ignores the answer).

Time is abstracted away, soundly: every timer (``challenge_wait_elapsed``,
``renew_elapsed``, ``reserve_timeout``) may fire at any moment of its phase,
a queued RESERVE may be served at any later moment, nodes crash
(``arbK.crash``) and the device crashes and comes back at any step.  So the
properties below hold for **every** timing, including stalled owners and
stalled devices; no timing assumption is used.

What holds for every timing (proved for all depths):

* ``owner_holds_or_is_told_at_next_command``: a node that believes it owns
  the quorum disk holds the reservation, or the device has a unit attention
  waiting for it (a reset or power cycle since its last command).  Its next
  command (the renewal, due within T + jitter + 2D) then re-reserves or
  fails, and a failure is ``lost_quorum`` (self-fencing).
* ``one_owner_without_attention``: at most one node believes it owns the
  quorum disk without a reset since its last command.
* ``challenger_never_holds``: the reservation is held only by an owner, or
  by a node that crashed, timed out or gave up (a RESERVE answered after it
  stopped waiting); never by a node that is still challenging.

What does *not* hold without timing, and why the model shows it: two nodes
may believe they own the disk at once (witness ``two_owners_at_once``): a
stalled owner, or an owner whose fresh renewal a second challenger's reset
broke just before the first challenger's reserve.  The timing obligation
(``T + jitter + 3D < W``, see :mod:`wolfpack.spec.arbitration`) only rules
out the single-challenger case; the stale owner learns at its next renewal
(property above), and a new owner must wait out the self-fencing bound
``T + jitter + 3D`` before it takes over groups (design decision 3).

The quorum rules (:func:`quorum_results`): for 1 to 7 configured nodes, with
and without a witness, two disjoint partitions never both survive, under
Majority Node Set and under disk quorum (one reservation holder): one z3
query per size and kind, over every configured set, witness holder, disk
holder and pair of partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import z3

from wolfpack.errors import SpecError
from wolfpack.proofs.backend import symbolic, to_bool
from wolfpack.proofs.model import Component, Model, Property, Sync, View
from wolfpack.proofs.results import FAILED, PROVED, Result
from wolfpack.spec import arbitration, reservation
from wolfpack.spec.core import Effect, Record, Spec, Transition
from wolfpack.spec.expr import And, Exists, ForAll, Implies, Not, Or
from wolfpack.spec.quorum import NOBODY, QuorumKind, Witness, has_majority, majority, survives

NODES = 3
#: Cluster sizes the composed model is checked for (``wolfpack verify quorum_disk``).
MODEL_SIZES = (2, 3, 4)
DEVICE = "dev"
MODEL = "quorum_disk"
QUORUM = "quorum"
#: Configured-node counts the quorum exclusion is proved for.
QUORUM_SIZES = tuple(range(1, 8))


def arb(k: int) -> str:
    return f"arb{k}"


# -- syncs derived from the specs' effects --------------------------------------------------


def command_syncs(name: str, arb_spec: Spec, dev_spec: Spec) -> list[Sync]:
    """One sync per row of ``arb_spec`` that commands the device."""
    device_events = set(dev_spec.triggers)
    out: list[Sync] = []
    for row in arb_spec.transitions:
        for eff in row.effects:
            if eff.kind != "command":
                continue
            if eff.name not in device_events:
                raise SpecError(f"{arb_spec.name}: command {eff.name!r} is not an event of the {dev_spec.name} device")
            if row.guard is not None or eff.when is not None:
                raise SpecError(f"{arb_spec.name}: the composed model needs the rows that command the device "
                                f"to be unguarded ({row.trigger} from {row.source})")
            out.append(Sync(name, DEVICE, eff.name, _fires_from(name, row.source),
                            f"{name} {row.trigger} from {'/'.join(row.source)}: the device handles {eff.name}",
                            on=(row.trigger,), args=_command_args(name, eff)))
    return out


def _fires_from(name: str, source: tuple[str, ...]) -> Callable[[View, View], Any]:
    return lambda before, after: before[name].is_(*source)


def _command_args(name: str, eff: Effect) -> Callable[[View], Mapping[str, Any]]:
    def args(before: View) -> Mapping[str, Any]:
        rec = before[name]
        values = {} if eff.args is None else eff.args(rec, Record({}), rec)
        return dict(values or {})

    return args


def answer_syncs(name: str, k: int, arb_spec: Spec, dev_spec: Spec) -> list[Sync]:
    """One sync per (device row serving a RESERVE, answer it reports) towards node ``k``."""
    out: list[Sync] = []
    for row in dev_spec.transitions:
        if row.trigger != "serve":
            continue
        for eff in row.effects:
            if eff.kind != "report":
                continue
            if eff.name not in arb_spec.triggers:
                raise SpecError(f"{dev_spec.name}: answer {eff.name!r} is not an event of {arb_spec.name}")
            out.append(Sync(DEVICE, name, eff.name, _answers(k, row, eff),
                            f"the device serves node {k}'s RESERVE and answers {eff.name}", on=("serve",)))
    return out


def _answers(k: int, row: Transition, eff: Effect) -> Callable[[View, View], Any]:
    """The device's ``row`` served node ``k``'s RESERVE and reports ``eff``: node k's RESERVE was
    queued and no longer is (a serve clears only its own node's), and the row's guard holds for k."""
    event = Record({"node": k})

    def when(before: View, after: View) -> Any:
        dev = before[DEVICE]
        parts = [dev.pending[k], Not(after[DEVICE].pending[k]), dev.is_(*row.source)]
        if row.guard is not None:
            parts.append(row.guard(dev, event))
        if eff.when is not None:
            parts.append(eff.when(dev, event))
        return And(*parts)

    return when


def check_flushed_answers_are_ignored(arb_spec: Spec, dev_spec: Spec) -> None:
    """A RELEASE or reset serves the node's queued RESERVE and reports its answer in the node's own
    step, which the product cannot deliver; that is sound only if the node, after the row that sent
    the command, ignores every answer.  Raise if a spec change breaks this."""
    answers = [t for t in arb_spec.triggers if t in reservation.ANSWERS]
    for row in arb_spec.transitions:
        if any(e.kind == "command" and e.name in ("release", "reset") for e in row.effects):
            for source in row.source:
                after = row.target(source)
                handled = [a for a in answers if arb_spec.rows(after, a)]
                if handled:
                    raise SpecError(f"{arb_spec.name}: after {row.trigger} from {source} the node handles {handled}; "
                                    "the composed arbitration model would drop those answers")


# -- properties -----------------------------------------------------------------------------


def believes(view: View, k: int) -> Any:
    return arbitration.believes_owner(view[arb(k)])


def holds(view: View, k: int) -> Any:
    return view[DEVICE].holder == k


def _owner_holds_or_is_told(nodes: int) -> Callable[[View], Any]:
    return lambda v: ForAll(range(nodes), lambda k: Implies(
        believes(v, k), Or(holds(v, k), v[DEVICE].unit_attention[k])))


def _one_owner_without_attention(nodes: int) -> Callable[[View], Any]:
    def fresh(v: View, k: int) -> Any:
        return And(believes(v, k), Not(v[DEVICE].unit_attention[k]))

    return lambda v: ForAll(range(nodes), lambda j: ForAll(range(j + 1, nodes), lambda k: Not(
        And(fresh(v, j), fresh(v, k)))))


def _challenger_never_holds(nodes: int) -> Callable[[View], Any]:
    return lambda v: ForAll(range(nodes), lambda k: Implies(
        holds(v, k), v[arb(k)].is_(*arbitration.OWNER, arbitration.IDLE, arbitration.LOST)))


def _queued_iff_waiting(nodes: int) -> Callable[[View], Any]:
    """Lemma: node k's RESERVE is queued while it waits for the answer, and otherwise only after
    it crashed or timed out (Idle, Lost)."""
    waiting = arbitration.AWAITING_ANSWER
    return lambda v: ForAll(range(nodes), lambda k: And(
        Implies(v[arb(k)].is_(*waiting), v[DEVICE].pending[k]),
        Implies(v[DEVICE].pending[k], v[arb(k)].is_(*waiting, arbitration.IDLE, arbitration.LOST))))


def _owns(k: int) -> Callable[[View], Any]:
    return lambda v: And(believes(v, k), holds(v, k))


def _two_owners(view: View) -> Any:
    return And(believes(view, 0), believes(view, 1))


def _stale_owner(view: View) -> Any:
    return And(believes(view, 0), Not(holds(view, 0)))


@cache
def arbitration_model(nodes: int = NODES) -> Model:
    """``nodes`` arbitration machines and one reservation device, from the specs."""
    return build_arbitration_model(arbitration.make_arbitration_spec(nodes),
                                   reservation.make_reservation_spec(nodes), nodes)


def arbitration_models() -> tuple[Model, ...]:
    """The composed model for every size in :data:`MODEL_SIZES`."""
    return tuple(arbitration_model(n) for n in MODEL_SIZES)


def build_arbitration_model(arb_spec: Spec, dev_spec: Spec, nodes: int) -> Model:
    """The product of ``nodes`` >= 2 copies of ``arb_spec`` and one ``dev_spec`` (tests pass mutants)."""
    if nodes < 2:
        raise ValueError("the composed arbitration model needs at least 2 nodes (one alone has no rival)")
    check_flushed_answers_are_ignored(arb_spec, dev_spec)
    components = (*(Component(arb(k), arb_spec, {"me": k}) for k in range(nodes)), Component(DEVICE, dev_spec))
    syncs: list[Sync] = []
    for k in range(nodes):
        syncs += command_syncs(arb(k), arb_spec, dev_spec)
        syncs += answer_syncs(arb(k), k, arb_spec, dev_spec)
    properties = (
        Property("owner_holds_or_is_told_at_next_command", _owner_holds_or_is_told(nodes),
                 "a node that believes it owns the quorum disk holds the reservation, or the device has a unit "
                 "attention for it: its belief is stale only until its next command (the renewal), which "
                 "re-reserves or reports lost_quorum"),
        Property("one_owner_without_attention", _one_owner_without_attention(nodes),
                 "at most one node believes it owns the quorum disk with no reset since its last command"),
        Property("challenger_never_holds", _challenger_never_holds(nodes),
                 "the reservation is held by an owner, or by a node that crashed, timed out or gave up; never by "
                 "a node still challenging"),
        Property("queued_iff_waiting", _queued_iff_waiting(nodes),
                 "a node's RESERVE is queued at the device while the node waits for its answer (and otherwise only "
                 "after it crashed or timed out)", reported=False),
    )
    witnesses = (
        *(Property(f"node{k}_owns", _owns(k), f"node {k} owns the disk") for k in range(nodes)),
        Property("stale_owner", _stale_owner, "node 0 believes it owns the disk but another reset or took it"),
        Property("two_owners_at_once", _two_owners,
                 "nodes 0 and 1 both believe they own the disk (possible without timing: why the takeover waits)"),
    )
    return Model(f"{MODEL}[n={nodes}]", f"{nodes} arbitration machines and the reservation device", components,
                 tuple(syncs),
                 properties, witnesses, table_checks=False, bmc_bound=10)


# -- the quorum rules: two disjoint partitions never both survive ------------------------------------


def _exclusion_query(n: int, kind: QuorumKind) -> z3.BoolRef:
    """Some configuration (configured nodes, witness, disk holder) and two disjoint partitions that both survive."""
    configured = tuple(z3.Bool(f"configured{k}") for k in range(n))
    a = tuple(z3.Bool(f"a{k}") for k in range(n))
    b = tuple(z3.Bool(f"b{k}") for k in range(n))
    holder = z3.Int("disk_holder")
    witness = Witness(z3.Bool("witness"), z3.Int("witness_holder"))
    disk = tuple(holder == k for k in range(n))  # one reservation: at most one node holds it
    domain = And(holder >= NOBODY, holder < n, witness.holder >= NOBODY, witness.holder < n)
    disjoint = ForAll(range(n), lambda k: Not(And(a[k], b[k])))
    both = And(survives(kind, a, configured, disk, witness), survives(kind, b, configured, disk, witness))
    return to_bool(And(domain, disjoint, both))


def _majority_query(limit: int) -> z3.BoolRef:
    """``has_majority(v, n)`` differs from ``v >= majority(n)`` for some 0 <= v <= n <= limit."""
    v, n = z3.Int("votes"), z3.Int("total")
    cases = [And(n == t, to_bool(has_majority(v, n)) != (v >= majority(t))) for t in range(limit + 1)]
    return to_bool(And(v >= 0, v <= n, Exists(range(len(cases)), lambda i: cases[i])))


def quorum_results(sizes: tuple[int, ...] = QUORUM_SIZES) -> list[Result]:
    """One row per quorum kind: no two disjoint partitions survive, for every size in ``sizes``."""
    rows: list[Result] = []
    with symbolic():
        started = time.perf_counter()
        solver = z3.Solver()
        bad = solver.check(_majority_query(max(sizes) + 1)) == z3.sat
        rows.append(_row("majority_is_floor_half_plus_one", started, bad,
                         f"2 * votes > total exactly when votes >= floor(total/2) + 1, for totals 0..{max(sizes) + 1}"))
        for kind in QuorumKind:
            started = time.perf_counter()
            found = [n for n in sizes if z3.Solver().check(_exclusion_query(n, kind)) == z3.sat]
            what = "Majority Node Set (witness or not)" if kind == QuorumKind.MNS else "disk quorum"
            rows.append(_row(f"{kind.name.lower()}_partitions_exclusive", started, bool(found),
                             f"{what}: no two disjoint partitions both survive, for {sizes[0]}..{sizes[-1]} "
                             "configured nodes and every configuration" if not found else
                             f"{what}: two disjoint partitions can both survive with {found} configured nodes"))
    return rows


def _row(prop: str, started: float, failed: bool, detail: str) -> Result:
    return Result(QUORUM, prop, "smt", FAILED if failed else PROVED, time.perf_counter() - started, detail)
