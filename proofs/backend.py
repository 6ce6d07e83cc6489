"""The z3 backend of :mod:`wolfpack.spec.expr`.

The combinators in ``spec/expr.py`` return plain Python values until a
backend is registered; this module provides the z3 one.  It is registered
only while a proof runs (:func:`symbolic`), so nothing outside
``wolfpack.proofs`` ever imports z3.

Spec functions mix Python constants with z3 terms freely (``And(True, x)``,
``If(c, 1, r.count)``, ``Sum(0, x)``, enum members as integers); the
backend turns the constants into z3 values of the right sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import z3

from wolfpack.spec import expr


def to_bool(value: Any) -> z3.BoolRef:
    """A z3 Boolean for a z3 term or a Python truth value."""
    if isinstance(value, z3.BoolRef):
        return value
    if isinstance(value, z3.ExprRef):
        raise TypeError(f"expected a Boolean term, got {value.sort()} term {value}")
    return z3.BoolVal(bool(value))


def to_term(value: Any) -> z3.ExprRef:
    """A z3 term for a z3 term, a Python bool or a Python int (enum members included)."""
    if isinstance(value, z3.ExprRef):
        return value
    if isinstance(value, bool):
        return z3.BoolVal(value)
    if isinstance(value, int):
        return z3.IntVal(int(value))
    raise TypeError(f"cannot use {value!r} ({type(value).__name__}) in a symbolic expression")


class Z3Backend:
    """Implements :class:`wolfpack.spec.expr.SymbolicBackend` with z3."""

    def is_symbolic(self, value: object) -> bool:
        return isinstance(value, z3.ExprRef)

    def And(self, *args: Any) -> Any:
        if any(not bool(a) for a in args if not isinstance(a, z3.ExprRef)):
            return z3.BoolVal(False)
        terms = [to_bool(a) for a in args if isinstance(a, z3.ExprRef)]
        return z3.And(*terms) if terms else z3.BoolVal(True)

    def Or(self, *args: Any) -> Any:
        if any(bool(a) for a in args if not isinstance(a, z3.ExprRef)):
            return z3.BoolVal(True)
        terms = [to_bool(a) for a in args if isinstance(a, z3.ExprRef)]
        return z3.Or(*terms) if terms else z3.BoolVal(False)

    def Not(self, arg: Any) -> Any:
        return z3.Not(to_bool(arg))

    def If(self, cond: Any, then: Any, other: Any) -> Any:
        if not isinstance(cond, z3.ExprRef):
            return then if cond else other
        a, b = to_term(then), to_term(other)
        if a.sort() != b.sort():
            raise TypeError(f"If branches have different sorts: {a.sort()} and {b.sort()}")
        return z3.If(to_bool(cond), a, b)

    def Sum(self, *args: Any) -> Any:
        if not args:
            return z3.IntVal(0)
        return z3.Sum(*[to_term(a) for a in args])


BACKEND = Z3Backend()


@contextmanager
def symbolic() -> Iterator[Z3Backend]:
    """Register the z3 backend for the duration of a ``with`` block.

    The previous backend (normally none) is restored afterwards, so the
    concrete behaviour of the combinators is never changed for good.
    """
    previous = expr._backend
    expr.register_backend(BACKEND)
    try:
        yield BACKEND
    finally:
        expr.register_backend(previous)
