"""One spec as z3 terms: symbolic records, well-formedness, rows.

Nothing here knows any particular machine.  A :class:`SpecEncoding` turns
the data of a :class:`~wolfpack.spec.core.Spec` into z3:

* a *frame* (:class:`SymState`) is one symbolic copy of the record: the
  state is an ``Int`` indexing ``spec.states``; an int field is an ``Int``;
  a bool field a ``Bool``; an ``IntEnum`` field an ``Int`` restricted to the
  enum's values; a vector field a tuple of those;
* well-formedness is the field bounds plus the spec's ``domain``
  predicates (plus any parameter values a model fixes, e.g. 3 nodes);
* a row fires when the state is one of its sources, the event arguments
  are valid (``Arg.valid``), the guard holds, and the next record is the
  update applied to this one (destination state, every other field and
  every parameter unchanged).

Guards, updates and invariants are the spec's own functions, called on
symbolic records while the z3 backend is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import z3

from wolfpack.errors import SpecError
from wolfpack.proofs.backend import to_bool, to_term
from wolfpack.spec.core import Field, Record, Spec, Transition
from wolfpack.spec.expr import In


class SymState:
    """One symbolic copy of a spec's record (the state of one component at one step)."""

    def __init__(self, enc: SpecEncoding, tag: str) -> None:
        self.encoding = enc
        self.tag = tag
        name = enc.name
        self.state: z3.ArithRef = z3.Int(f"{name}.state@{tag}")
        values: dict[str, Any] = {"state": self.state}
        self.variables: list[z3.ExprRef] = [self.state]
        self.param_variables: list[z3.ExprRef] = []
        for f in enc.spec.fields:
            if f.length is None:
                value: Any = _variable(f, f"{name}.{f.name}@{tag}")
                terms = [value]
            else:
                value = tuple(_variable(f, f"{name}.{f.name}[{i}]@{tag}") for i in range(f.length))
                terms = list(value)
            values[f.name] = value
            (self.param_variables if f.param else self.variables).extend(terms)
        self.record = Record(values, enc.state_index)

    @property
    def all_variables(self) -> list[z3.ExprRef]:
        return self.variables + self.param_variables

    def value(self, name: str) -> Any:
        return getattr(self.record, name)


def _variable(f: Field, name: str) -> z3.ExprRef:
    return z3.Bool(name) if f.kind is bool else z3.Int(name)


def call(spec: Spec, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a spec function on symbolic values, with a useful error if it cannot be."""
    try:
        return fn(*args)
    except (z3.Z3Exception, TypeError) as exc:
        name = getattr(fn, "__name__", repr(fn))
        raise SpecError(
            f"{spec.name}: {name} cannot be evaluated on symbolic values ({exc}); write guards, updates and "
            "invariants with the combinators of wolfpack.spec.expr (And, Or, Not, If, ...) instead of Python "
            "if/and/or/min/max"
        ) from exc


def equal(a: Any, b: Any) -> z3.BoolRef:
    """``a == b`` for scalars or equal-length tuples, as a z3 Boolean."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        if not (isinstance(a, tuple) and isinstance(b, tuple)) or len(a) != len(b):
            raise SpecError(f"cannot compare {a!r} with {b!r}: vector fields must keep their length")
        return z3.And(*[equal(x, y) for x, y in zip(a, b, strict=True)]) if a else z3.BoolVal(True)
    return to_bool(to_term(a) == to_term(b))


class SpecEncoding:
    """The z3 view of one spec, for one component of a model.

    ``name`` prefixes every variable (``node1.groups@3``); ``fixed`` pins
    parameters to values, e.g. ``{"nodes": 3}`` for a 3-node model.
    """

    def __init__(self, spec: Spec, name: str | None = None, fixed: Mapping[str, Any] | None = None) -> None:
        self.spec = spec
        self.name = name or spec.name
        self.state_index = {s: i for i, s in enumerate(spec.states)}
        self.fixed = dict(fixed or {})
        for key in self.fixed:
            if not spec.field(key).param:
                raise SpecError(f"{spec.name}: only parameters can be fixed by a model, {key!r} is a variable")
        self.events = {e.name: e for e in spec.events}

    def frame(self, tag: str) -> SymState:
        return SymState(self, tag)

    def state_is(self, s: SymState, *states: str) -> z3.BoolRef:
        return to_bool(In(s.state, [self.state_index[x] for x in states]))

    # -- well-formedness ---------------------------------------------------------
    def bounds(self, s: SymState) -> list[z3.BoolRef]:
        out = [s.state >= 0, s.state < len(self.spec.states)]
        for f in self.spec.fields:
            value = s.value(f.name)
            for item in value if isinstance(value, tuple) else (value,):
                out.extend(_scalar_bounds(f, item))
        return out

    def domain(self, s: SymState) -> list[z3.BoolRef]:
        out = [to_bool(call(self.spec, d.holds, s.record)) for d in self.spec.domain]
        out += [equal(s.value(k), v) for k, v in self.fixed.items()]
        return out

    def well_formed(self, s: SymState) -> z3.BoolRef:
        return z3.And(*self.bounds(s), *self.domain(s))

    def init(self, s: SymState) -> z3.BoolRef:
        """Initial state, every variable at its default, parameters anywhere in their domain."""
        parts = [s.state == self.state_index[self.spec.initial]]
        parts += [equal(s.value(f.name), f.default) for f in self.spec.variables()]
        return z3.And(*parts, self.well_formed(s))

    # -- events and rows -----------------------------------------------------------------
    def event_args(self, trigger: str, tag: str) -> Record:
        """Fresh symbolic integers for the arguments of ``trigger`` at step ``tag``."""
        return Record({a.name: z3.Int(f"{self.name}.{trigger}.{a.name}@{tag}") for a in self.events[trigger].args})

    def args_valid(self, pre: SymState, trigger: str, args: Record) -> z3.BoolRef:
        event = self.events[trigger]
        return z3.And(*[to_bool(a.valid(pre.record, getattr(args, a.name))) for a in event.args], z3.BoolVal(True))

    def guard(self, row: Transition, pre: SymState, args: Record) -> z3.BoolRef:
        return z3.BoolVal(True) if row.guard is None else to_bool(call(self.spec, row.guard, pre.record, args))

    def enabled(self, row: Transition, pre: SymState, args: Record) -> z3.BoolRef:
        """The row can fire: source state, valid arguments, guard."""
        return z3.And(self.state_is(pre, *row.source), self.args_valid(pre, row.trigger, args),
                      self.guard(row, pre, args))

    def next_values(self, row: Transition, pre: SymState, args: Record) -> dict[str, Any]:
        changes = {} if row.update is None else dict(call(self.spec, row.update, pre.record, args))
        for key in changes:
            f = self.spec.field(key)
            if f.param:
                raise SpecError(f"{self.spec.name}: transition {row.trigger} updates parameter {key!r}; "
                                "parameters are configuration and never change")
        return changes

    def fire(self, row: Transition, pre: SymState, post: SymState, args: Record) -> z3.BoolRef:
        """``row`` takes ``pre`` to ``post`` with ``args``."""
        changes = self.next_values(row, pre, args)
        dest = pre.state if row.dest is None else z3.IntVal(self.state_index[row.dest])
        frame = [equal(post.value(f.name), changes.get(f.name, pre.value(f.name))) for f in self.spec.fields]
        return z3.And(self.enabled(row, pre, args), post.state == dest, *frame)

    def stay(self, pre: SymState, post: SymState) -> z3.BoolRef:
        """Nothing changes (a stuttering or ignoring component)."""
        return z3.And(*[a == b for a, b in zip(pre.all_variables, post.all_variables, strict=True)])

    def ignores(self, pre: SymState, trigger: str) -> z3.BoolRef:
        """``pre`` is in a state that ignores ``trigger`` on purpose (rejections excluded)."""
        states = [s for ig in self.spec.ignored if ig.trigger == trigger and not ig.reject for s in ig.states]
        return self.state_is(pre, *states) if states else z3.BoolVal(False)

    def rows_of(self, trigger: str) -> list[tuple[int, Transition]]:
        return [(i, t) for i, t in enumerate(self.spec.transitions) if t.trigger == trigger]

    # -- reading a model back ---------------------------------------------------------
    def decode(self, model: z3.ModelRef, s: SymState) -> Record:
        values: dict[str, Any] = {"state": self.spec.states[_int(model, s.state)]}
        for f in self.spec.fields:
            value = s.value(f.name)
            if isinstance(value, tuple):
                values[f.name] = tuple(_concrete(f, model, v) for v in value)
            else:
                values[f.name] = _concrete(f, model, value)
        return Record(values)

    def decode_args(self, model: z3.ModelRef, args: Record) -> dict[str, int]:
        return {k: _int(model, v) for k, v in args.values().items()}


def _scalar_bounds(f: Field, value: z3.ExprRef) -> list[z3.BoolRef]:
    if f.kind is bool:
        return []
    if f.is_enum:
        return [to_bool(In(value, [int(v) for v in f.kind]))]  # type: ignore[attr-defined]
    out = []
    if f.lo is not None:
        out.append(value >= f.lo)
    if f.hi is not None:
        out.append(value <= f.hi)
    return out


def _int(model: z3.ModelRef, term: z3.ExprRef) -> int:
    return int(model.eval(term, model_completion=True).as_long())


def _concrete(f: Field, model: z3.ModelRef, term: z3.ExprRef) -> Any:
    if f.kind is bool:
        return z3.is_true(model.eval(term, model_completion=True))
    number = _int(model, term)
    if f.is_enum:
        try:
            member: IntEnum = f.kind(number)
            return member
        except ValueError:
            return number
    return number


def conjunction(terms: Sequence[Any]) -> z3.BoolRef:
    return z3.And(*[to_bool(t) for t in terms]) if terms else z3.BoolVal(True)
