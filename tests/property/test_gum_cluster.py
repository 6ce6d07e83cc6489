"""The GUM machine against its table (generated), for every node of a 3-node cluster; and the
composed model of 3 nodes and the network (:mod:`wolfpack.proofs.gum_model`): proved, and not vacuous
(a seeded protocol bug is caught with a readable run).

``TestGum`` is the hypothesis state machine that :mod:`generated` builds
from ``make_gum_spec(3)``: the live machine must agree with the reference
interpreter on every record and effect, raise where the table rejects, and
keep the spec's invariants after every event.  Its initial records are
every node (``me``) with every node as the locker: from the default record
(locker 0) the locker never changes while node 0 lives, so node 0 and its
successor 1 could never reach ``Awaiting`` (a sender whose locker died
before its sweep reached the new locker).
"""

from __future__ import annotations

import dataclasses
import unittest
from typing import Any

from generated import machine_test, random_walks
from hypothesis import settings
from hypothesis import strategies as st

from wolfpack.proofs.backend import symbolic
from wolfpack.proofs.gum_model import GumSystem, build_gum_model, check_gum, gum_model
from wolfpack.proofs.invariants import Prover, goals_of
from wolfpack.proofs.results import PROVED
from wolfpack.spec.core import Record, Spec
from wolfpack.spec.expr import And, Or
from wolfpack.spec.gum import AT_REST, make_gum_spec

NODES = 3
SPEC = make_gum_spec(NODES)


def initial_records(spec: Spec) -> st.SearchStrategy[Record]:
    """Idle records of every node, with every node as the locker."""
    ids = st.integers(0, NODES - 1)
    return st.builds(lambda me, locker: spec.record(me=me, locker=locker), ids, ids)


def _test_case(spec: Spec) -> type[unittest.TestCase]:
    case = machine_test(spec, initial_records(spec)).TestCase
    case.settings = settings()  # the loaded profile
    return case


TestGum = _test_case(SPEC)


#: Reached only through submit, the locker's grant and a membership change that removes the locker before
#: the sweep reaches the new one, each with the right arguments, before any of the many events that halt the
#: node: no seeded walk of the generator finds it (0 in 3000 walks).  test_gum.py drives the machines there.
RARE = ("Awaiting",)


def test_random_walks_reach_every_other_state() -> None:
    visits = random_walks(SPEC, lambda rng: SPEC.record(me=rng.randrange(NODES), locker=rng.randrange(NODES)),
                          walks=300, steps=50, seed=1)
    missed = [s for s, count in visits.items() if count == 0 and s not in RARE]
    assert not missed, f"300 seeded random walks never reached {missed}; visits: {visits}"


# --- the composed model of 3 nodes and the network (proofs/gum_model.py) ----------------------------


def _locker_never_replays_for_a_dead_holder(spec: Spec) -> Spec:
    """A mutant: only a *new* locker replays; a locker whose lock holder died just installs the membership."""
    rows = list(spec.transitions)
    replay = [i for i, t in enumerate(rows) if t.trigger == "membership_changed"
              and t.guard_name in ("replay_goes_on", "replay_ends", "replay_ends_in_regroup")]
    (install,) = [i for i, t in enumerate(rows) if t.trigger == "membership_changed" and t.source == AT_REST]
    guards = [rows[i].guard for i in replay]
    assert len(guards) == 3 and all(g is not None for g in guards)

    def replays(r: Any, e: Any) -> Any:
        return Or(*[g(r, e) for g in guards if g is not None])

    for i in replay:
        g = rows[i].guard
        assert g is not None
        rows[i] = dataclasses.replace(rows[i], guard=lambda r, e, g=g: And(g(r, e), r.locker != r.me))
    calm = rows[install].guard
    assert calm is not None
    rows[install] = dataclasses.replace(rows[install], guard=lambda r, e: Or(
        calm(r, e), And(replays(r, e), r.locker == r.me)))
    return dataclasses.replace(spec, transitions=tuple(rows))


def test_the_composed_model_is_proved_for_all_depths() -> None:
    results = check_gum(gum_model(NODES))
    assert all(r.result == PROVED for r in results), [r for r in results if r.result != PROVED]
    by_name = {r.prop: r for r in results}
    assert by_name["reachability"].detail.startswith("every witness reached")
    for prop in ("applied_prefixes_agree", "lag_is_being_repaired", "no_update_applied_twice",
                 "live_nodes_stay_in", "one_sweep_at_a_time"):
        assert by_name[prop].method == "inductive", by_name[prop]


def test_a_locker_that_does_not_replay_is_caught_with_a_readable_run() -> None:
    model = build_gum_model(_locker_never_replays_for_a_dead_holder(SPEC), NODES, bound=4)
    with symbolic():
        system = GumSystem(model)
        goals = [g for g in goals_of(system) if g.name == "lag_is_being_repaired"]
        found = Prover(system, bound=4).bmc(goals, 4)
    assert found is not None, "the mutant's missing replay went unnoticed"
    run, _ = found
    text = run.text()
    assert len(run.steps) == 3, text
    assert "1. node1.submit()" in text or "1. node2.submit()" in text, text
    assert "lock_request" in text and "env.crash" in text and "violated: lag_is_being_repaired" in text, text
