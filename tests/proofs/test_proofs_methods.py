"""How invariants are proved: 1-induction, k-induction, Spacer; bounded is never called proved."""

from typing import Any

from wolfpack.proofs.backend import symbolic
from wolfpack.proofs.invariants import Prover
from wolfpack.proofs.model import single
from wolfpack.proofs.results import BOUNDED, FAILED, PROVED, Result
from wolfpack.proofs.system import System
from wolfpack.spec.core import Event, Field, Invariant, Spec, Transition
from wolfpack.spec.expr import If, Not


def one_state(name: str, fields: tuple[Field, ...], update: Any, invariant: Any) -> Spec:
    return Spec(name=name, doc="", states=("S",), initial="S", fields=fields, events=(Event("tick", ""),),
                transitions=(Transition("tick", ("S",), None, update=update),),
                invariants=(Invariant("safe", invariant, "the property under test"),))


def prove(spec: Spec, prover: type[Prover] = Prover) -> dict[str, Result]:
    with symbolic():
        return {r.prop: r for r in prover(System(single(spec)), bound=6).run()}


# b is copied into a one step later and b itself is cleared: "not a" fails 1-induction (b may be
# set in an unreachable state) but holds two steps after any state.
SHIFT = one_state("shift", (Field("a", bool, False, ""), Field("b", bool, False, "")),
                  lambda r, e: {"a": r.b, "b": False}, lambda r: Not(r.a))

# y grows while x >= 0, shrinks otherwise; x only grows.  "y >= 0" needs "x >= 0" too, and an
# unreachable path with x < 0 can be as long as you like, so no k-induction closes: Spacer must.
DRIFT = one_state("drift", (Field("x", int, 0, ""), Field("y", int, 0, "")),
                  lambda r, e: {"x": r.x + 1, "y": If(r.x >= 0, r.y + 1, r.y - 1)}, lambda r: r.y >= 0)


def test_k_induction_reports_its_k() -> None:
    result = prove(SHIFT)["safe"]
    assert (result.method, result.result) == ("k-induction k=2", PROVED)


def test_spacer_proves_and_prints_the_invariant_it_found() -> None:
    result = prove(DRIFT)["safe"]
    assert (result.method, result.result) == ("spacer", PROVED)
    assert result.invariant is not None and "x <= -1" in result.invariant and "y <= -1" in result.invariant


class NoSpacer(Prover):
    def spacer(self, goals: Any) -> str | None:
        return None


def test_without_an_inductive_argument_the_result_is_bounded_not_proved() -> None:
    result = prove(DRIFT, NoSpacer)["safe"]
    assert (result.method, result.result) == ("bmc bound 6", BOUNDED)
    assert "no violation within 6 steps" in result.detail


def test_an_initial_state_that_breaks_an_invariant_fails_at_depth_0() -> None:
    spec = one_state("bad_start", (Field("x", int, 0, ""),), lambda r, e: {}, lambda r: r.x > 0)
    result = prove(spec)["safe"]
    assert result.result == FAILED and result.run is not None and result.run.steps == ()
    assert "0. initial" in result.run.text() and "violated: safe" in result.run.text()


def test_an_update_that_leaves_the_bounds_breaks_well_formed() -> None:
    bound_hi = 3
    spec = one_state("overflow", (Field("x", int, 0, "", lo=0, hi=bound_hi),), lambda r, e: {"x": r.x + 1},
                     lambda r: r.x >= 0)
    result = prove(spec)["well_formed"]
    assert result.result == FAILED and result.run is not None
    assert len(result.run.steps) == bound_hi + 1
    assert f"x must be <= {bound_hi}, got {bound_hi + 1}" in result.run.text()
