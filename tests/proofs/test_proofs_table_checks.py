"""Table hygiene: each check finds the defect it is meant to find, on small specs written here.

Done-means 4: Microsoft's literal group-state definitions are ambiguous; ours are not.
"""

import dataclasses
from typing import Any

from wolfpack.proofs.model import single
from wolfpack.proofs.results import FAILED, PROVED, Result
from wolfpack.proofs.run import check_model
from wolfpack.spec.core import Arg, Derived, Event, Field, Ignore, Invariant, Spec, Transition
from wolfpack.spec.expr import And, Count, ForAll, Implies, In, Or
from wolfpack.spec.group import ResState, make_group_spec


def by_prop(results: list[Result]) -> dict[str, Result]:
    return {r.prop: r for r in results}


def small(**overrides: Any) -> Spec:
    """Two states and a bounded counter: a clean spec that each test breaks in one way."""
    values: dict[str, Any] = dict(
        name="small", doc="", states=("Idle", "Busy"), initial="Idle",
        fields=(Field("n", int, 0, "jobs", lo=0, hi=3),),
        events=(Event("start", "", (Arg("jobs", 1, 3, "how many"),)), Event("done", "")),
        transitions=(
            Transition("start", ("Idle",), "Busy", update=lambda r, e: {"n": e.jobs}),
            Transition("done", ("Busy",), "Idle", guard=lambda r, e: r.n == 1, update=lambda r, e: {"n": 0}),
            Transition("done", ("Busy",), None, guard=lambda r, e: r.n > 1, update=lambda r, e: {"n": r.n - 1}),
        ),
        ignored=(Ignore("start", ("Busy",), "busy"), Ignore("done", ("Idle",), "nothing to finish")),
        domain=(Invariant("busy_has_jobs", lambda r: Implies(r.is_("Busy"), r.n >= 1), "Busy means n >= 1"),),
    )
    values.update(overrides)
    return Spec(**values)


def test_a_clean_small_spec_passes_every_check() -> None:
    results = check_model(single(small()))
    assert all(r.result == PROVED for r in results), [(r.prop, r.detail) for r in results]


def test_overlapping_guards_are_found_with_a_witness() -> None:
    rows = list(small().transitions)
    rows[2] = dataclasses.replace(rows[2], guard=lambda r, e: r.n >= 1)
    row = by_prop(check_model(single(small(transitions=tuple(rows)))))["determinism"]
    assert row.result == FAILED
    assert "done in Busy: row 1" in row.detail and "row 2" in row.detail and "Busy n=1" in row.detail


def test_a_gap_in_the_guards_and_a_missing_ignore_rule_are_found() -> None:
    rows = list(small().transitions)
    rows[2] = dataclasses.replace(rows[2], guard=lambda r, e: r.n > 2)
    spec = small(transitions=tuple(rows), ignored=(Ignore("start", ("Busy",), "busy"),))
    row = by_prop(check_model(single(spec)))["completeness"]
    assert row.result == FAILED
    assert "done in Busy: no guard holds for Busy n=2" in row.detail
    assert "done in Idle: no row and no Ignore rule" in row.detail


def test_an_unreachable_state_and_a_dead_end_are_found() -> None:
    spec = small(states=("Idle", "Busy", "Lost"),
                 ignored=(*small().ignored, Ignore("start", ("Lost",), "x"), Ignore("done", ("Lost",), "x")))
    results = by_prop(check_model(single(spec)))
    assert results["reachability"].result == FAILED
    assert "Lost not reached within 12 steps" in results["reachability"].detail
    assert results["no_dead_end"].result == FAILED
    assert "Lost has no row to another state" in results["no_dead_end"].detail


def test_a_state_left_only_under_a_guard_that_can_be_false_is_a_dead_end() -> None:
    spec = small(domain=())  # without its domain, Busy with n = 0 is well-formed, and no row leaves it
    result = by_prop(check_model(single(spec)))["no_dead_end"]
    assert result.result == FAILED and "Busy is a dead end for Busy n=0: no row can fire" in result.detail


def test_the_reachability_detail_gives_the_first_depth_of_each_state() -> None:
    row = by_prop(check_model(single(small())))["reachability"]
    assert row.detail == "every target reached; first depth: Idle@0, Busy@1"


# --- done-means 4 ------------------------------------------------------------------------
def microsoft_group_state(n: int) -> Derived:
    """CLUSTER_GROUP_STATE exactly as Microsoft's documentation words it (no priority)."""
    ks = range(n)

    def count(r: Any, *values: ResState) -> Any:
        return Count(In(r.res[k], values) for k in ks)

    pending = (ResState.ONLINE_PENDING, ResState.OFFLINE_PENDING, *(
        [ResState.RESTARTING] if hasattr(ResState, "RESTARTING") else []))
    return Derived("group_state", cases=(
        ("Online", lambda r: ForAll(ks, lambda k: r.res[k] == ResState.ONLINE)),
        ("Offline", lambda r: Or(ForAll(ks, lambda k: r.res[k] == ResState.OFFLINE), n == 0)),
        ("Failed", lambda r: count(r, ResState.FAILED) >= 1),
        ("PartialOnline", lambda r: And(count(r, ResState.ONLINE) >= 1, count(r, *pending) == 0,
                                        count(r, ResState.FAILED) == 0)),
        ("Pending", lambda r: And(count(r, *pending) >= 1, count(r, ResState.FAILED) == 0)),
    ), doc="Microsoft's published definitions, copied literally")


def test_microsoft_literal_group_states_overlap_and_ours_do_not() -> None:
    ours = make_group_spec(3)
    literal = dataclasses.replace(ours, derived=(microsoft_group_state(3),))
    theirs = by_prop(check_model(single(literal)))["group_state_total_and_unambiguous"]
    assert theirs.result == FAILED
    assert "group_state is ambiguous: Online and PartialOnline both hold for" in theirs.detail
    assert "res=(ONLINE,ONLINE,ONLINE)" in theirs.detail
    mine = by_prop(check_model(single(ours)))["group_state_total_and_unambiguous"]
    assert mine.result == PROVED
