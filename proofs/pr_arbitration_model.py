"""SCSI-3 quorum arbitration as a composed model: N ``pr_arbitration`` machines and the persistent reservation.

``quorum_disk_pr[n=2]`` is the product of N machines
(:mod:`wolfpack.spec.pr_arbitration`, ``parb0``...) and one device
(:mod:`wolfpack.spec.persistent_reservation`, ``pdev``).  As in
:mod:`wolfpack.proofs.arbitration_model`, every rule comes from the two specs
and the synchronisations are derived from their effects:

* a row of ``parbK`` with a ``command`` effect makes the device handle the event
  of that name in the same step, with the arguments the effect computes from
  the node's record (``node = K``, and ``victim``/``abort`` for a preempt); the
  row is told apart from its siblings by its trigger, source and destination;
* the device's ``serve`` of node K's queued command makes ``parbK`` handle the
  answer the device reports, with the answer's arguments (``keys``' ``mine``
  and ``rival``, ``reservation``'s ``holder``) computed by the device's effect.

Time is abstracted away as in the SCSI-2 model: timers fire at any moment of
their phase, a queued command runs at any later moment, nodes and the device
crash at any step, and any node's software may send a WRITE at any step (the
worst case of a buggy or stale node).  So the properties hold for every timing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from wolfpack.errors import SpecError
from wolfpack.proofs.model import Component, Model, Property, Sync, View
from wolfpack.spec import persistent_reservation as pr
from wolfpack.spec import pr_arbitration as parb
from wolfpack.spec.core import Effect, Record, Spec, Transition
from wolfpack.spec.expr import And, ForAll, Implies, Not, Or

MODEL = "quorum_disk_pr"
MODEL_SIZES = (2,)
DEVICE = "pdev"


def node(k: int) -> str:
    return f"parb{k}"


def command_syncs(name: str, arb_spec: Spec, dev_spec: Spec) -> list[Sync]:
    """One sync per row of ``arb_spec`` that commands the device."""
    out: list[Sync] = []
    for row in arb_spec.transitions:
        for eff in row.effects:
            if eff.kind != "command":
                continue
            if eff.name not in dev_spec.triggers:
                raise SpecError(f"{arb_spec.name}: command {eff.name!r} is not an event of {dev_spec.name}")
            siblings = [t for t in arb_spec.transitions if t is not row and t.trigger == row.trigger
                        and set(t.source) & set(row.source) and t.dest == row.dest]
            if siblings and not _record_guard(row):
                raise SpecError(f"{arb_spec.name}: {row.trigger} from {row.source} to {row.dest} is not one row; "
                                "the composed model tells commanding rows apart by trigger, source and destination")
            out.append(Sync(name, DEVICE, eff.name, _fired(name, row),
                            f"{name} {row.trigger} from {'/'.join(row.source)}: the device queues {eff.name}",
                            on=(row.trigger,), args=_args(name, eff)))
    return out


def _record_guard(row: Transition) -> bool:
    """The row's guard reads only the record (not the event), so the sync can evaluate it."""
    if row.guard is None:
        return False
    try:
        row.guard(Record({"sent": True, "me": 0, "rival": 0, "abort": True}), Record({}))
    except AttributeError:
        return False
    return True


def _fired(name: str, row: Transition) -> Callable[[View, View], Any]:
    record_guard = _record_guard(row)

    def when(before: View, after: View) -> Any:
        parts = [before[name].is_(*row.source)]
        if record_guard and row.guard is not None:
            parts.append(row.guard(before[name], Record({})))
        if row.dest is not None:
            parts.append(after[name].is_(row.dest))
        return And(*parts)

    return when


def _args(name: str, eff: Effect) -> Callable[[View], Mapping[str, Any]]:
    def args(before: View) -> Mapping[str, Any]:
        rec = before[name]
        return dict((eff.args or (lambda r, e, r2: {}))(rec, Record({}), rec) or {})

    return args


def answer_syncs(name: str, k: int, dev_spec: Spec) -> list[Sync]:
    """One sync per (device serve row, answer it reports) towards node ``k``."""
    out: list[Sync] = []
    for row in dev_spec.transitions:
        if row.trigger != "serve":
            continue
        for eff in row.effects:
            if eff.kind == "report":
                out.append(Sync(DEVICE, name, eff.name, _serves(k, row), f"the device answers node {k}: {eff.name}",
                                on=("serve",), args=_answer_args(k, eff)))
    return out


def _serves(k: int, row: Transition) -> Callable[[View, View], Any]:
    event = Record({"node": k})

    def when(before: View, after: View) -> Any:
        dev = before[DEVICE]
        parts = [dev.queued[k] != int(pr.Cmd.NONE), after[DEVICE].queued[k] == int(pr.Cmd.NONE), dev.is_(*row.source)]
        if row.guard is not None:
            parts.append(row.guard(dev, event))
        return And(*parts)

    return when


def _answer_args(k: int, eff: Effect) -> Callable[[View], Mapping[str, Any]]:
    def args(before: View) -> Mapping[str, Any]:
        dev = before[DEVICE]
        values = dict((eff.args or (lambda r, e, r2: {}))(dev, Record({"node": k}), dev) or {})
        values.pop("node", None)
        return values

    return args


# -- properties ---------------------------------------------------------------------------------


def believes(v: View, k: int) -> Any:
    return parb.believes_owner(v[node(k)])


def registered(v: View, k: int) -> Any:
    return v[DEVICE].registered[k]


def _queue_matches_state(nodes: int) -> Callable[[View], Any]:
    """Lemma: a node waiting for an answer has that command queued (with its rival and abort for a preempt);
    a node in Challenging, Defending or Fencing has nothing queued."""
    def holds(v: View) -> Any:
        parts = []
        for k in range(nodes):
            rec, dev = v[node(k)], v[DEVICE]
            for state, command in parb.WAITING.items():
                parts.append(Implies(And(rec.is_(state), rec.sent), dev.queued[k] == int(pr.COMMANDS[command])))
                parts.append(Implies(And(rec.is_(state), Not(rec.sent)), dev.queued[k] == int(pr.Cmd.NONE)))
            parts.append(Implies(And(rec.is_(parb.PREEMPTING, parb.EXPELLING), rec.sent),
                                 And(dev.victim[k] == rec.rival, dev.qabort[k] == rec.abort)))
            parts.append(Implies(rec.is_(parb.CHALLENGING, parb.DEFENDING), dev.queued[k] == int(pr.Cmd.NONE)))
            parts.append(Implies(rec.is_(parb.CHALLENGING, parb.PREEMPTING, parb.EXPELLING),
                                 And(rec.rival >= 0, rec.rival != k)))
            parts.append(Implies(rec.is_(parb.CHALLENGING, parb.DEFENDING), rec.sent))
        return And(*parts)

    return holds


def _plain_preempt_only_without_abort(nodes: int) -> Callable[[View], Any]:
    """Lemma: a node preempts without abort only after the device refused PREEMPT AND ABORT."""
    return lambda v: ForAll(range(nodes), lambda k: And(
        Implies(Not(v[node(k)].abort), Not(v[DEVICE].abort_supported)),
        Implies(And(v[DEVICE].queued[k] == int(pr.Cmd.PREEMPT), Not(v[DEVICE].qabort[k])),
                Not(v[DEVICE].abort_supported))))


def _owner_holds_or_is_fenced(nodes: int) -> Callable[[View], Any]:
    return lambda v: ForAll(range(nodes), lambda k: Implies(
        believes(v, k), Or(v[DEVICE].holder == k, Not(registered(v, k)))))


def _one_owner_can_write(nodes: int) -> Callable[[View], Any]:
    def able(v: View, k: int) -> Any:
        return And(believes(v, k), registered(v, k))

    return lambda v: ForAll(range(nodes), lambda j: ForAll(range(j + 1, nodes), lambda k: Not(
        And(able(v, j), able(v, k)))))


def _no_late_write_with_abort(nodes: int) -> Callable[[View], Any]:
    return lambda v: Implies(v[DEVICE].abort_supported, ForAll(range(nodes), lambda k: Not(v[DEVICE].late[k])))


def _owns(k: int) -> Callable[[View], Any]:
    return lambda v: And(believes(v, k), v[DEVICE].holder == k)


@cache
def pr_arbitration_model(nodes: int) -> Model:
    return build_pr_model(parb.make_pr_arbitration_spec(nodes), pr.make_persistent_reservation_spec(nodes), nodes)


def pr_arbitration_models() -> tuple[Model, ...]:
    return tuple(pr_arbitration_model(n) for n in MODEL_SIZES)


def build_pr_model(arb_spec: Spec, dev_spec: Spec, nodes: int) -> Model:
    """The product of ``nodes`` >= 2 copies of ``arb_spec`` and one ``dev_spec`` (tests pass mutants)."""
    if nodes < 2:
        raise ValueError("the composed arbitration model needs at least 2 nodes (one alone has no rival)")
    components = (*(Component(node(k), arb_spec, {"me": k}) for k in range(nodes)), Component(DEVICE, dev_spec))
    syncs: list[Sync] = []
    for k in range(nodes):
        syncs += command_syncs(node(k), arb_spec, dev_spec)
        syncs += answer_syncs(node(k), k, dev_spec)
    properties = (
        Property("owner_holds_or_is_fenced", _owner_holds_or_is_fenced(nodes),
                 "a node that believes it owns the quorum disk holds the reservation, or its key is not registered "
                 "(it cannot write; its next check reports lost_quorum)"),
        Property("one_owner_can_write", _one_owner_can_write(nodes),
                 "at most one node believes it owns the quorum disk with its key registered"),
        Property("no_late_write_with_abort", _no_late_write_with_abort(nodes),
                 "on a target with PREEMPT AND ABORT no write of a fenced node is in flight (plain PREEMPT, the "
                 "degraded fallback, may leave one)"),
        Property("queue_matches_state", _queue_matches_state(nodes),
                 "a node waiting for an answer has that command queued at the device", reported=False),
        Property("plain_preempt_only_without_abort", _plain_preempt_only_without_abort(nodes),
                 "a node preempts without abort only on a target that refused PREEMPT AND ABORT", reported=False),
    )
    witnesses = (
        *(Property(f"node{k}_owns", _owns(k), f"node {k} owns the disk") for k in range(nodes)),
    )
    return Model(f"{MODEL}[n={nodes}]", f"{nodes} SCSI-3 arbitration machines and the persistent reservation",
                 components, tuple(syncs), properties, witnesses, table_checks=False, bmc_bound=11)
