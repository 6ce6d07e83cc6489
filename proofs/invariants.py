"""Proving invariants for all depths, or finding the run that breaks one.

The goals of a model are its well-formedness (field bounds and domain:
updates must keep records valid) and its properties (the spec's invariants;
for a product, the composed properties plus every component's invariants as
lemmas).  They are proved together, because a conjunction is often
inductive when its parts are not:

1. initiation: every initial state satisfies every goal (else: FAILED at depth 0);
2. 1-induction: goals(x) and a step x -> y imply goals(y): ``inductive``;
3. otherwise bounded model checking from the initial states up to the
   model's bound looks for a real violation: the shortest run is reported as
   FAILED for every goal it breaks, and the rest are tried again;
4. k-induction with simple paths for k = 2..K: ``k-induction k=N``;
5. z3's CHC engine (Spacer) on the rules Init -> Inv, Inv and step -> Inv',
   Inv and not goals -> Bad: ``spacer`` with the synthesised invariant;
6. if nothing closes: ``bmc bound N`` / ``bounded``, never "proved".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import z3

from wolfpack.proofs.results import BOUNDED, FAILED, PROVED, Result
from wolfpack.proofs.system import Frame, System
from wolfpack.proofs.trace import Run
from wolfpack.spec.core import Record

WELL_FORMED = "well_formed"
MAX_K = 6
SPACER_TIMEOUT_MS = 20_000
DEEP_BMC_FACTOR = 4


@dataclass(frozen=True)
class Goal:
    name: str
    doc: str
    holds: Callable[[Frame], z3.BoolRef]
    reported: bool = True


def goals_of(system: System) -> list[Goal]:
    out = [Goal(WELL_FORMED, "every field stays within its bounds and the spec's domain", system.well_formed)]
    for p in system.properties:
        out.append(Goal(p.name, p.doc, partial(system.holds, p), p.reported))
    return out


class Prover:
    """Runs the steps above on one system and returns one :class:`Result` per reported goal."""

    def __init__(self, system: System, *, bound: int, max_k: int = MAX_K,
                 spacer_timeout_ms: int = SPACER_TIMEOUT_MS) -> None:
        self.system = system
        self.bound = bound
        self.max_k = max_k
        self.spacer_timeout_ms = spacer_timeout_ms
        self.frames: list[Frame] = []
        self.spacer_refuted = False

    def frame(self, k: int) -> Frame:
        while len(self.frames) <= k:
            self.frames.append(self.system.frame(str(len(self.frames))))
        return self.frames[k]

    def step(self, k: int) -> z3.BoolRef:
        """The transition from frame k to frame k+1."""
        return self.system.trans(self.frame(k), self.frame(k + 1), f"s{k}")

    # -- the driver ------------------------------------------------------------------------
    def run(self) -> list[Result]:
        remaining = goals_of(self.system)
        self.results: dict[str, Result] = {}
        self.started = time.perf_counter()
        while remaining:
            broken = self.bmc(remaining, 0)
            if broken is None:
                if self.inductive(remaining, 1):
                    self.record(remaining, "inductive", PROVED)
                    break
                broken = self.bmc(remaining, self.bound)
            if broken is None:
                proof = self.deeper(remaining)
                if proof is not None:
                    self.record(remaining, proof[0], PROVED, invariant=proof[1])
                    break
                if self.spacer_refuted:
                    broken = self.bmc(remaining, DEEP_BMC_FACTOR * self.bound)
                    if broken is None:
                        self.record(remaining, "spacer", FAILED,
                                    f"Spacer found a violation deeper than {DEEP_BMC_FACTOR * self.bound} steps")
                        break
                else:
                    broken_names = [r.prop for r in self.results.values() if r.failed]
                    why = f" without {', '.join(broken_names)} (fix that first)" if broken_names else ""
                    self.record(remaining, f"bmc bound {self.bound}", BOUNDED,
                                f"no violation within {self.bound} steps; no induction closed{why}")
                    break
            run, violated = broken
            self.record(violated, f"bmc bound {max(self.bound, len(run.steps))}", FAILED,
                        f"violated after {len(run.steps)} step(s)", run=run)
            remaining = [g for g in remaining if g not in violated]
        return [self.results[g.name] for g in goals_of(self.system)
                if g.name in self.results and (g.reported or self.results[g.name].failed)]

    def record(self, goals: list[Goal], method: str, result: str, detail: str = "", *,
               run: Run | None = None, invariant: str | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        if result == PROVED and len(goals) > 1:
            detail = f"proved together with {len(goals) - 1} other goal(s)"
        for g in goals:
            self.results[g.name] = Result(self.system.model.name, g.name, method, result, elapsed, detail,
                                          run=run, invariant=invariant)

    # -- finding violations ----------------------------------------------------------------------
    def bmc(self, goals: list[Goal], depth: int) -> tuple[Run, list[Goal]] | None:
        """The shortest run (up to ``depth`` steps) whose last state breaks some goal."""
        solver = z3.Solver()
        solver.add(self.system.init(self.frame(0)))
        for k in range(depth + 1):
            if k > 0:
                solver.add(self.step(k - 1))
            f = self.frame(k)
            good = z3.And(*[g.holds(f) for g in goals])
            if solver.check(z3.Not(good)) == z3.sat:
                model = solver.model()
                violated = [g for g in goals if z3.is_false(model.eval(g.holds(f), model_completion=True))]
                return self.read_run(model, k, violated), violated
            solver.add(good)  # no shorter violation exists: the deeper queries may assume it
        return None

    def read_run(self, model: z3.ModelRef, depth: int, violated: list[Goal]) -> Run:
        system = self.system
        states = tuple(system.decode_state(model, self.frame(k)) for k in range(depth + 1))
        steps = tuple(system.decode_step(model, self.frame(k), self.frame(k + 1), f"s{k}") for k in range(depth))
        why = tuple(self.explain(g, states[-1]) for g in violated)
        return Run(system.model.name, states, steps, tuple(g.name for g in violated), why)

    def explain(self, goal: Goal, state: Mapping[str, Record]) -> str:
        if goal.name != WELL_FORMED:
            return f"{goal.name}: {goal.doc}"
        problems = []
        for name, rec in state.items():
            spec = self.system.encodings[name].spec
            problems += [f"{name}: {p}" if len(state) > 1 else p for p in spec.check_record(rec)]
        return f"{WELL_FORMED}: " + ("; ".join(problems) or "a record left its bounds")

    # -- proofs ------------------------------------------------------------------------------
    def deeper(self, goals: list[Goal]) -> tuple[str, str | None] | None:
        """After 1-induction failed and BMC found nothing: k-induction, then Spacer."""
        for k in range(2, min(self.max_k, self.bound + 1) + 1):
            if self.inductive(goals, k):
                return f"k-induction k={k}", None
        if any(r.failed for r in self.results.values()):
            return None  # the others failed: Spacer would search for an invariant of a broken spec
        invariant = self.spacer(goals)
        if invariant is not None:
            return "spacer", invariant
        return None

    def all_goals(self, goals: list[Goal], f: Frame) -> z3.BoolRef:
        return z3.And(*[g.holds(f) for g in goals])

    def inductive(self, goals: list[Goal], k: int) -> bool:
        """k-induction step: k consecutive good states on a simple path are followed by a good one."""
        solver = z3.Solver()
        frames = [self.frame(i) for i in range(k + 1)]
        for i in range(k):
            solver.add(self.all_goals(goals, frames[i]), self.step(i))
        if k > 1:
            for a in range(k + 1):
                for b in range(a + 1, k + 1):
                    solver.add(z3.Or(*[u != v for u, v in zip(frames[a].state_variables, frames[b].state_variables,
                                                              strict=True)]))
        solver.add(z3.Not(self.all_goals(goals, frames[k])))
        return bool(solver.check() == z3.unsat)

    def spacer(self, goals: list[Goal]) -> str | None:
        """Ask Spacer for an inductive invariant; its text, or None (unknown, or a deeper violation)."""
        system = self.system
        x, y = system.x, system.y
        fp = z3.Fixedpoint()
        fp.set(engine="spacer", timeout=self.spacer_timeout_ms)
        sorts = [v.sort() for v in x.variables]
        inv = z3.Function(f"Inv_{system.model.name}", *sorts, z3.BoolSort())
        bad = z3.Function(f"Bad_{system.model.name}", z3.BoolSort())
        fp.register_relation(inv, bad)
        fp.declare_var(*x.variables, *y.variables, *system.arg_variables())
        fp.rule(inv(*x.variables), system.init(x))
        fp.rule(inv(*y.variables), [inv(*x.variables), system.template])
        fp.rule(bad(), [inv(*x.variables), z3.Not(self.all_goals(goals, x))])
        try:
            answer = fp.query(bad())
        except z3.Z3Exception:  # timeout ("canceled") or resource limit: no answer
            return None
        if answer == z3.sat:
            self.spacer_refuted = True
        if answer != z3.unsat:
            return None
        cover = fp.get_cover_delta(-1, inv)
        formula = z3.substitute_vars(cover, *x.variables)
        return readable(z3.simplify(formula), single=not system.model.is_product)


def readable(formula: z3.ExprRef, *, single: bool) -> str:
    text = str(formula).replace("@x", "")
    if single:
        text = re.sub(r"\b[a-z_]+\.", "", text, count=0)
    return re.sub(r"\s+", " ", text)
