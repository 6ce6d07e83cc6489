"""Combinators that read the same on concrete and on symbolic values.

A guard, an update or an invariant in ``spec/`` is a small Python function
over a state record.  It uses only comparisons, arithmetic and the helpers
below.  Called on a record of plain Python values it returns a plain value
(that is what the runtime evaluates); called on a record of symbolic terms it
returns a symbolic term (that is what ``wolfpack.proofs`` reasons about).

This module never imports z3: the proof layer registers a *backend* (an
object with ``And``, ``Or``, ``Not``, ``If``, ``Implies``, ``Sum``,
``is_symbolic``) before it builds symbolic records.  Without a backend every
value must be concrete, so the daemon never pays for z3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol


class SymbolicBackend(Protocol):
    """What a symbolic engine must provide (the z3 one lives in proofs/)."""

    def is_symbolic(self, value: object) -> bool: ...

    def And(self, *args: Any) -> Any: ...

    def Or(self, *args: Any) -> Any: ...

    def Not(self, arg: Any) -> Any: ...

    def If(self, cond: Any, then: Any, other: Any) -> Any: ...

    def Sum(self, *args: Any) -> Any: ...


_backend: SymbolicBackend | None = None


def register_backend(backend: SymbolicBackend | None) -> None:
    """Install (or remove, with None) the symbolic backend."""
    global _backend
    _backend = backend


def _symbolic(values: Iterable[object]) -> bool:
    if _backend is None:
        return False
    return any(_backend.is_symbolic(v) for v in values)


def And(*args: Any) -> Any:
    """Conjunction; ``And()`` is True."""
    if _symbolic(args):
        assert _backend is not None
        return _backend.And(*args)
    return all(bool(a) for a in args)


def Or(*args: Any) -> Any:
    """Disjunction; ``Or()`` is False."""
    if _symbolic(args):
        assert _backend is not None
        return _backend.Or(*args)
    return any(bool(a) for a in args)


def Not(arg: Any) -> Any:
    if _symbolic((arg,)):
        assert _backend is not None
        return _backend.Not(arg)
    return not bool(arg)


def Implies(premise: Any, conclusion: Any) -> Any:
    return Or(Not(premise), conclusion)


def If(cond: Any, then: Any, other: Any) -> Any:
    """``then if cond else other`` (both branches are evaluated)."""
    if _symbolic((cond, then, other)):
        assert _backend is not None
        return _backend.If(cond, then, other)
    return then if cond else other


def Sum(*args: Any) -> Any:
    if _symbolic(args):
        assert _backend is not None
        return _backend.Sum(*args)
    return sum(args)


def Count(items: Iterable[Any]) -> Any:
    """Number of true conditions among ``items``."""
    return Sum(*(If(c, 1, 0) for c in items))


def In(value: Any, choices: Iterable[Any]) -> Any:
    """``value`` equals one of ``choices``."""
    return Or(*(value == c for c in choices))


def Select(seq: Sequence[Any], index: Any) -> Any:
    """``seq[index]`` where ``index`` may be symbolic (an If-chain then)."""
    if not _symbolic((index,)):
        return seq[index]
    result = seq[-1]
    for k in range(len(seq) - 2, -1, -1):
        result = If(index == k, seq[k], result)
    return result


def Store(seq: Sequence[Any], index: Any, value: Any) -> tuple[Any, ...]:
    """A copy of ``seq`` with ``seq[index] = value`` (``index`` may be symbolic)."""
    if not _symbolic((index,)):
        out = list(seq)
        out[index] = value
        return tuple(out)
    return tuple(If(index == k, value, seq[k]) for k in range(len(seq)))


def ForAll(indices: Iterable[int], body: Callable[[int], Any]) -> Any:
    """Conjunction of ``body(k)`` over a *concrete* range of indices."""
    return And(*(body(k) for k in indices))


def Exists(indices: Iterable[int], body: Callable[[int], Any]) -> Any:
    """Disjunction of ``body(k)`` over a *concrete* range of indices."""
    return Or(*(body(k) for k in indices))
