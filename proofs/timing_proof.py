"""The timing obligations proved with z3 over the reals (linear arithmetic).

With the configuration's numbers fixed, each obligation is linear in the
jitter; z3 proves it for every real jitter in ``[0, jitter_ms]``, or returns
the jitter at which it breaks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import z3

from wolfpack.proofs.results import FAILED, PROVED, Result
from wolfpack.proofs.timing import OBLIGATIONS, Obligation, Products

JITTER = "jitter_ms"
MACHINE = "timing"


def _terms(products: Products, config: Mapping[str, int], jitter: z3.ArithRef) -> z3.ArithRef:
    terms = []
    for product in products:
        factor = 1
        for name in product:
            if name != JITTER:
                factor *= config[name]
        terms.append(factor * jitter if JITTER in product else z3.RealVal(factor))
    return z3.Sum(*terms) if len(terms) > 1 else terms[0]


def _linear(o: Obligation, config: Mapping[str, int], jitter: z3.ArithRef) -> tuple[z3.ArithRef, z3.ArithRef]:
    return _terms(o.lhs, config, jitter), _terms(o.right, config, jitter)


def prove(o: Obligation, config: Mapping[str, int]) -> Result:
    started = time.perf_counter()
    jitter = z3.Real(JITTER)
    left, right = _linear(o, config, jitter)
    solver = z3.Solver()
    solver.add(jitter >= 0, jitter <= config[JITTER])
    solver.add(z3.Not(left < right if o.op == "<" else left <= right))
    answer = solver.check()
    elapsed = time.perf_counter() - started
    numbers = f"{o.text()}: {o.numbers(config)}"
    uses_jitter = any(JITTER in p for p in (*o.lhs, *o.right))
    if answer == z3.unsat:
        scope = f" for every jitter in [0, {config[JITTER]}] ms" if uses_jitter else ""
        return Result(MACHINE, o.name, "lra", PROVED, elapsed, f"{numbers}{scope}")
    where = ""
    if answer == z3.sat and uses_jitter:
        where = f"; breaks at jitter = {solver.model().eval(jitter)} ms"
    remedy = o.remedy(config)
    return Result(MACHINE, o.name, "lra", FAILED, elapsed, f"{numbers}{where}; {o.why}" + (f"; {remedy}" if remedy
                                                                                           else ""))


def prove_all(config: Mapping[str, int]) -> list[Result]:
    return [prove(o, config) for o in OBLIGATIONS]
