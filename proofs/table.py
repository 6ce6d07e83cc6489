"""Table hygiene of one spec: determinism, completeness, reachability, dead ends, derived functions.

Each check is a handful of z3 queries over *well-formed* records (field
bounds and the spec's domain) and *valid* event arguments; a failure names
the state, the event, the rows and a record that shows the problem.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from itertools import combinations
from typing import Any

import z3

from wolfpack.proofs.backend import to_bool
from wolfpack.proofs.encode import SpecEncoding, SymState, call
from wolfpack.proofs.model import Property
from wolfpack.proofs.results import FAILED, PROVED, Result
from wolfpack.proofs.system import Frame, System
from wolfpack.spec.core import Derived, Invariant, Record, Spec, Transition


def _show(rec: Record, args: dict[str, int] | None = None) -> str:
    values = rec.values()
    text = f"{values.pop('state')} " + " ".join(f"{k}={_plain(v)}" for k, v in values.items())
    if args:
        text += " with " + ", ".join(f"{k}={v}" for k, v in args.items())
    return text


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_plain(v) for v in value) + ")"
    return getattr(value, "name", str(value))


def _rowname(spec: Spec, row: Transition) -> str:
    index = spec.transitions.index(row)
    guard = f" [{row.guard_name}]" if row.guard_name else ""
    return f"row {index} ({row.trigger}{guard} -> {row.dest or '(stay)'})"


class TableChecks:
    """The table checks of one single-spec model."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.model = system.model
        (self.name, self.enc), = system.encodings.items()
        self.spec = self.enc.spec
        self.pre: SymState = system.x.parts[self.name]
        self.args = {e.name: self.enc.event_args(e.name, "q") for e in self.spec.events}

    def _witness(self, model: z3.ModelRef, trigger: str | None = None) -> str:
        rec = self.enc.decode(model, self.pre)
        args = self.enc.decode_args(model, self.args[trigger]) if trigger else None
        return _show(rec, args)

    def _result(self, prop: str, started: float, problems: Sequence[str], detail: str,
                method: str = "smt") -> Result:
        elapsed = time.perf_counter() - started
        if problems:
            return Result(self.model.name, prop, method, FAILED, elapsed, "; ".join(problems))
        return Result(self.model.name, prop, method, PROVED, elapsed, detail)

    # -- determinism and completeness ---------------------------------------------------
    def determinism(self) -> Result:
        started = time.perf_counter()
        solver = z3.Solver()
        solver.add(self.enc.well_formed(self.pre))
        problems, pairs = [], 0
        for state in self.spec.states:
            for trigger in self.spec.triggers:
                rows = self.spec.rows(state, trigger)
                if len(rows) < 2:
                    continue
                pairs += 1
                args = self.args[trigger]
                base = z3.And(self.enc.state_is(self.pre, state), self.enc.args_valid(self.pre, trigger, args))
                for a, b in combinations(rows, 2):
                    both = z3.And(base, self.enc.guard(a, self.pre, args), self.enc.guard(b, self.pre, args))
                    if solver.check(both) == z3.sat:
                        problems.append(f"{trigger} in {state}: {_rowname(self.spec, a)} and {_rowname(self.spec, b)} "
                                        f"can both fire, e.g. for {self._witness(solver.model(), trigger)}")
        return self._result("determinism", started, problems,
                            f"{pairs} (state, event) pairs with several rows; guards never overlap")

    def completeness(self) -> Result:
        started = time.perf_counter()
        solver = z3.Solver()
        solver.add(self.enc.well_formed(self.pre))
        problems, guarded, ignored = [], 0, 0
        for state in self.spec.states:
            for trigger in self.spec.triggers:
                rows = self.spec.rows(state, trigger)
                if not rows:
                    if self.spec.ignore_rule(state, trigger) is None:
                        problems.append(f"{trigger} in {state}: no row and no Ignore rule")
                    else:
                        ignored += 1
                    continue
                if any(r.guard is None for r in rows):
                    continue
                guarded += 1
                args = self.args[trigger]
                some = z3.Or(*[self.enc.guard(r, self.pre, args) for r in rows])
                gap = z3.And(self.enc.state_is(self.pre, state), self.enc.args_valid(self.pre, trigger, args),
                             z3.Not(some))
                if solver.check(gap) == z3.sat:
                    witness = self._witness(solver.model(), trigger)
                    problems.append(f"{trigger} in {state}: no guard holds for {witness}")
        total = len(self.spec.states) * len(self.spec.triggers)
        return self._result("completeness", started, problems,
                            f"{total} (state, event) pairs: {total - ignored} handled "
                            f"({guarded} by guards that cover every case), {ignored} ignored on purpose")

    # -- reachability and dead ends ------------------------------------------------------
    def reachability(self, bound: int) -> Result:
        return reachability(self.system, bound)

    def dead_ends(self, assume: Sequence[Invariant]) -> Result:
        """No dead end: every non-final state has a row to another state (when there is
        another state), and in every well-formed record there that satisfies the proved
        invariants ``assume``, some row (leaving or internal) is enabled for some arguments."""
        started = time.perf_counter()
        solver = z3.Solver()
        solver.add(self.enc.well_formed(self.pre))
        solver.add(*[to_bool(call(self.spec, inv.holds, self.pre.record)) for inv in assume])
        problems = []
        for state in self.spec.states:
            if state in self.spec.final_states:
                continue
            rows = [t for t in self.spec.transitions if state in t.source]
            if len(self.spec.states) > 1 and not any(t.dest not in (None, state) for t in rows):
                problems.append(f"{state} has no row to another state and is not declared final")
                continue
            triggers = sorted({t.trigger for t in rows})
            variables = [v for t in triggers for v in self.args[t].values().values()]
            enabled = z3.Or(*[self.enc.enabled(t, self.pre, self.args[t.trigger]) for t in rows])
            stuck = z3.ForAll(variables, z3.Not(enabled)) if variables else z3.Not(enabled)
            answer = solver.check(self.enc.state_is(self.pre, state), stuck)
            if answer == z3.sat:
                problems.append(f"{state} is a dead end for {self._witness(solver.model())}: no row can fire")
            elif answer == z3.unknown:
                problems.append(f"{state}: z3 could not decide whether some row can always fire")
        final = f"; final: {', '.join(self.spec.final_states)}" if self.spec.final_states else ""
        return self._result("no_dead_end", started, problems,
                            f"every non-final state has a way out and some row can always fire{final}")

    # -- derived functions ----------------------------------------------------------------
    def derived(self, d: Derived) -> Result:
        started = time.perf_counter()
        solver = z3.Solver()
        solver.add(self.enc.well_formed(self.pre))
        cases = [(label, to_bool(call(self.spec, pred, self.pre.record))) for label, pred in d.cases]
        problems = []
        if solver.check(z3.Not(z3.Or(*[c for _, c in cases]))) == z3.sat:
            problems.append(f"{d.name} is undefined for {self._witness(solver.model())}")
        for (la, a), (lb, b) in combinations(cases, 2):
            if solver.check(a, b) == z3.sat:
                problems.append(f"{d.name} is ambiguous: {la} and {lb} both hold for {self._witness(solver.model())}")
        return self._result(f"{d.name}_total_and_unambiguous", started, problems,
                            f"exactly one of {len(cases)} cases holds for every well-formed record")


def _in_state(enc: SpecEncoding, name: str, state: str, f: Frame) -> z3.BoolRef:
    return enc.state_is(f.parts[name], state)


def _witness_holds(system: System, witness: Property, f: Frame) -> z3.BoolRef:
    return system.holds(witness, f)


def reachability(system: System, bound: int) -> Result:
    """BMC from the initial states: the first depth at which each state of each component (and each
    of the model's witnesses) is reached; a target not reached within ``bound`` steps fails."""
    started = time.perf_counter()
    model = system.model
    targets: dict[str, Callable[[Frame], z3.BoolRef]] = {}
    for name, enc in system.encodings.items():
        for state in enc.spec.states:
            label = state if not model.is_product else f"{name}.{state}"
            targets[label] = partial(_in_state, enc, name, state)
    for w in model.witnesses:
        targets[w.name] = partial(_witness_holds, system, w)
    depth: dict[str, int] = {}
    solver = z3.Solver()
    frames = [system.frame("r0")]
    solver.add(system.init(frames[0]))
    for k in range(bound + 1):
        if k > 0:
            frames.append(system.frame(f"r{k}"))
            solver.add(system.trans(frames[k - 1], frames[k], f"rs{k}"))
        for label, target in targets.items():
            if label not in depth and solver.check(target(frames[k])) == z3.sat:
                depth[label] = k
        if len(depth) == len(targets):
            break
    elapsed = time.perf_counter() - started
    missing = [t for t in targets if t not in depth]
    method = f"bmc bound {bound}"
    if missing:
        return Result(model.name, "reachability", method, FAILED, elapsed,
                      "; ".join(f"{t} not reached within {bound} steps from the initial state" for t in missing))
    reached = ", ".join(f"{t}@{d}" for t, d in depth.items())
    return Result(model.name, "reachability", method, PROVED, elapsed, f"every target reached; first depth: {reached}")


def run_table_checks(system: System, proved: Sequence[Invariant]) -> list[Result]:
    """All table checks of a single-spec model; ``proved`` invariants may be assumed for dead ends."""
    checks = TableChecks(system)
    out = [checks.determinism(), checks.completeness(), checks.reachability(system.model.bmc_bound),
           checks.dead_ends(proved)]
    out += [checks.derived(d) for d in checks.spec.derived]
    return out

