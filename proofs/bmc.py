"""Bounded model checking of a composed model, with short counterexamples.

:func:`bounded_check` unrolls a transition system (here the message-level
:class:`~wolfpack.proofs.network.NetworkSystem`) from its initial state one
step at a time.  At each depth it asks for a state that breaks a goal (the
model's properties, every component's invariants, well-formedness), then
records the first depth of each witness (the model is not vacuous).  A goal
broken at depth k is FAILED with that run, made as plain as the solver can
make it within :data:`SHORTEN_ROUNDS` queries (fewest and simplest actions, a
binary search on :meth:`~wolfpack.proofs.network.NetworkSystem.cost`); a goal
never broken is ``bounded``: no run of at most ``depth`` steps breaks it.
Nothing here is ever reported as proved for all depths.
"""

from __future__ import annotations

import time

import z3

from wolfpack.proofs.invariants import Goal, Prover, goals_of
from wolfpack.proofs.network import NetworkSystem
from wolfpack.proofs.results import BOUNDED, FAILED, PROVED, Result

#: at most this many queries make a counterexample simpler
SHORTEN_ROUNDS = 12


def bounded_check(system: NetworkSystem, depth: int) -> list[Result]:
    """BMC to ``depth``: the witnesses' first depths, then each goal FAILED (with its run) or bounded."""
    model = system.model
    prover = Prover(system, bound=depth)
    started = time.perf_counter()
    solver = z3.Solver()
    solver.add(system.init(prover.frame(0)))
    goals = goals_of(system)
    remaining: list[Goal] = list(goals)
    reached: dict[str, int] = {}
    results: dict[str, Result] = {}
    method = f"bmc bound {depth}"
    for k in range(depth + 1):
        if k > 0:
            solver.add(prover.step(k - 1))
        f = prover.frame(k)
        while remaining:
            good = z3.And(*[g.holds(f) for g in remaining])
            if solver.check(z3.Not(good)) != z3.sat:
                solver.add(good)  # no violation this short: deeper queries may assume it
                break
            m = shortest(system, prover, solver, z3.Not(good), k)
            broken = [g for g in remaining if z3.is_false(m.eval(g.holds(f), model_completion=True))]
            run = prover.read_run(m, k, broken)
            for g in broken:
                results[g.name] = Result(model.name, g.name, method, FAILED, time.perf_counter() - started,
                                         f"violated after {k} step(s)", run=run)
            remaining = [g for g in remaining if g not in broken]
        for w in model.witnesses:
            if w.name not in reached and solver.check(system.holds(w, f)) == z3.sat:
                reached[w.name] = k
    elapsed = time.perf_counter() - started
    for g in remaining:
        results[g.name] = Result(model.name, g.name, method, BOUNDED, elapsed,
                                 f"no violation within {depth} steps")
    missing = [w.name for w in model.witnesses if w.name not in reached]
    if missing:
        reach = Result(model.name, "reachability", method, FAILED, elapsed,
                       "; ".join(f"{w} not reached within {depth} steps" for w in missing))
    else:
        reach = Result(model.name, "reachability", method, PROVED, elapsed,
                       "every witness reached; first depth: " + ", ".join(f"{w}@{d}" for w, d in reached.items()))
    return [reach, *[results[g.name] for g in goals if g.reported or results[g.name].failed]]


def shortest(system: NetworkSystem, prover: Prover, solver: z3.Solver, bad: z3.BoolRef, k: int) -> z3.ModelRef:
    """A model of ``bad`` at depth ``k`` whose run does as little as possible (the solver has just found one):
    a binary search on the run's cost."""
    best = solver.model()
    if k == 0:
        return best
    cost = z3.Sum(*[system.cost(prover.frame(i), prover.frame(i + 1), f"s{i}") for i in range(k)])
    low, high = 0, best.eval(cost, model_completion=True).as_long()
    solver.push()
    solver.add(bad)
    for _ in range(SHORTEN_ROUNDS):
        if low >= high:
            break
        middle = (low + high) // 2
        if solver.check(cost <= middle) == z3.sat:
            best = solver.model()
            high = best.eval(cost, model_completion=True).as_long()
        else:
            low = middle + 1
    solver.pop()
    return best
