"""The z3 backend: the spec combinators mix Python values and z3 terms."""

import subprocess
import sys

import z3

from wolfpack.proofs.backend import symbolic
from wolfpack.spec import expr
from wolfpack.spec.defaults import RestartAction
from wolfpack.spec.expr import And, Count, If, Implies, In, Not, Or, Select, Store, Sum


def proved(claim: z3.BoolRef) -> bool:
    solver = z3.Solver()
    solver.add(z3.Not(claim))
    return solver.check() == z3.unsat


def test_python_values_mix_with_z3_terms() -> None:
    x, b = z3.Int("x"), z3.Bool("b")
    with symbolic():
        assert proved(And(True, b) == b)
        assert proved(And(False, b) == z3.BoolVal(False))
        assert proved(Or(False, b) == b)
        assert proved(Or(True, b))
        assert proved(Not(Not(b)) == b)
        assert proved(Implies(False, b))
        assert proved(If(b, 1, x) == z3.If(b, 1, x))
        assert If(True, x, 7) is x  # a concrete condition picks its branch
        assert proved(Sum(1, x, 2) == x + 3)
        assert proved(Count([b, True, x > 0]) == z3.If(b, 1, 0) + 1 + z3.If(x > 0, 1, 0))
        assert proved(In(x, (RestartAction.DONT_RESTART, 2)) == z3.Or(x == 0, x == 2))
        seq = (z3.Int("a0"), z3.Int("a1"), z3.Int("a2"))
        assert proved(z3.Implies(x == 1, Select(seq, x) == seq[1]))
        stored = Store(seq, x, 9)
        assert proved(z3.Implies(x == 2, z3.And(stored[2] == 9, stored[0] == seq[0])))


def test_the_backend_is_registered_only_inside_proofs() -> None:
    assert expr._backend is None
    with symbolic():
        assert expr._backend is not None
    assert expr._backend is None
    assert And(True, 1 < 2) is True  # concrete behaviour is untouched afterwards


def test_timing_checks_do_not_import_z3() -> None:
    """The daemon checks its configuration with wolfpack.proofs.timing: no z3 there."""
    probe = ("import sys, wolfpack.proofs.timing as t; t.check(t.default_config()); "
             "sys.exit(1 if 'z3' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
