"""The data model of a state machine specification.

A :class:`Spec` is pure data: states, events (with typed arguments), a typed
state record (:class:`Field`), transitions (trigger, source, destination,
guard, update, effects), the events each state ignores or rejects on purpose,
invariants and derived functions.  Everything else (the live machine in
``wolfpack.machines``, the diagrams, the z3 encoding in ``wolfpack.proofs``
and the hypothesis models in ``tests/``) is generated from it.

Guards, updates, effect conditions and invariants are plain functions over a
:class:`Record` (and the event's :class:`Record` of arguments) written with
the combinators of :mod:`wolfpack.spec.expr`, so the very function the
runtime evaluates is the one the proofs reason about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from wolfpack.errors import InvalidEvent, SpecError
from wolfpack.spec.expr import And, In, Not

Guard = Callable[[Any, Any], Any]
Update = Callable[[Any, Any], Mapping[str, Any]]
Predicate = Callable[[Any], Any]


@dataclass(frozen=True)
class Field:
    """One typed slot of a state record.

    ``kind`` is ``int``, ``bool`` or an ``IntEnum`` subclass.  Integer
    bounds are inclusive; ``hi`` may be None (unbounded).  A *param* is
    configuration: no transition changes it (the proofs hold for every value
    in its domain).  ``length`` makes the field a fixed-size vector (a tuple).
    """

    name: str
    kind: type
    default: Any
    doc: str
    lo: int | None = None
    hi: int | None = None
    param: bool = False
    length: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in (int, bool) and not (
            isinstance(self.kind, type) and issubclass(self.kind, IntEnum)
        ):
            raise SpecError(
                f"field {self.name!r} has kind {self.kind!r}; use int, bool or an IntEnum"
            )

    @property
    def is_enum(self) -> bool:
        return self.kind not in (int, bool)

    def bounds(self) -> tuple[int | None, int | None]:
        """Inclusive integer bounds (enums: their smallest and largest value)."""
        if self.kind is bool:
            return (0, 1)
        if self.is_enum:
            values = [int(v) for v in self.kind]  # type: ignore[attr-defined]
            return (min(values), max(values))
        return (self.lo, self.hi)

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not a valid concrete value, or None."""
        if self.length is not None:
            if not isinstance(value, tuple) or len(value) != self.length:
                return f"{self.name} must be a tuple of {self.length} values, got {value!r}"
            for item in value:
                problem = self._check_scalar(item)
                if problem:
                    return problem
            return None
        return self._check_scalar(value)

    def _check_scalar(self, value: Any) -> str | None:
        if self.kind is bool:
            return None if isinstance(value, bool) else f"{self.name} must be true or false, got {value!r}"
        if self.is_enum:
            try:
                self.kind(value)
            except ValueError:
                names = ", ".join(m.name for m in self.kind)  # type: ignore[attr-defined]
                return f"{self.name} must be one of {names}, got {value!r}"
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{self.name} must be an integer, got {value!r}"
        lo, hi = self.lo, self.hi
        if lo is not None and value < lo:
            return f"{self.name} must be >= {lo}, got {value}"
        if hi is not None and value > hi:
            return f"{self.name} must be <= {hi}, got {value}"
        return None


class Record:
    """An immutable state record: ``state`` plus the spec's fields.

    The same class carries concrete Python values (runtime, tests) and
    symbolic terms (proofs); guards cannot tell the difference.
    """

    __slots__ = ("_state_index", "_values")

    def __init__(self, values: Mapping[str, Any], state_index: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_state_index", state_index)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"record has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("records are immutable; use replace()")

    def replace(self, **changes: Any) -> Record:
        unknown = set(changes) - set(self._values)
        if unknown:
            raise SpecError(f"update names unknown field(s) {sorted(unknown)}")
        return Record({**self._values, **changes}, self._state_index)

    def is_(self, *states: str) -> Any:
        """The record's state is one of ``states`` (concrete or symbolic)."""
        if self._state_index is None:
            return self._values["state"] in states
        return In(self._values["state"], [self._state_index[s] for s in states])

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else _plain(v)) for k, v in self._values.items()}

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Record({inner})"


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, IntEnum) else value


@dataclass(frozen=True)
class Arg:
    """A typed argument of an event, e.g. the index of a resource.

    ``hi`` is exclusive and may be a function of the record (concrete or
    symbolic), e.g. ``lambda r: r.nodes``, or None (unbounded); ``hi_max``
    bounds it concretely for test generators.
    """

    name: str
    lo: int
    hi: int | Callable[[Any], Any] | None
    doc: str
    hi_max: int = 8

    def upper(self, rec: Any) -> Any:
        return self.hi(rec) if callable(self.hi) else self.hi

    def valid(self, rec: Any, value: Any) -> Any:
        upper = self.upper(rec)
        if upper is None:
            return value >= self.lo
        return And(value >= self.lo, value < upper)


@dataclass(frozen=True)
class Event:
    """A trigger the machine understands, with its documented arguments."""

    name: str
    doc: str
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class Effect:
    """An output of a transition: what the runtime must do.

    ``kind`` is one of :data:`EFFECT_KINDS`.  ``args`` computes the
    effect's arguments from (record before, event arguments, record after);
    ``when`` (over the record before and the event) makes the effect
    conditional; ``args`` returning None drops the effect (nothing to do).
    Effects are evaluated on concrete values only.
    """

    kind: str
    name: str
    args: Callable[[Any, Any, Any], Mapping[str, Any] | None] | None = None
    when: Guard | None = None

    def __post_init__(self) -> None:
        if self.kind not in EFFECT_KINDS:
            raise SpecError(f"effect kind {self.kind!r} is not one of {sorted(EFFECT_KINDS)}")

    def label(self) -> str:
        return f"{self.kind}:{self.name}"


EFFECT_KINDS = frozenset(
    {
        "call",  # call a resource entry point (Online, Offline, Terminate, IsAlive, ...)
        "start_timer",  # arm a timer for args["ms"] ms; when it fires, the event of the same name arrives
        "cancel_timer",  # disarm that timer (its event will not arrive)
        "report",  # tell another component (failover manager, group, cluster) something
        "command",  # ask other machines to act (e.g. online these resources)
        "send",  # send a message to other nodes
    }
)


@dataclass(frozen=True)
class Emitted:
    """An effect instance produced by one step."""

    kind: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "args": {k: _jsonable(v) for k, v in self.args.items()}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Transition:
    """One row of the table.

    ``dest`` None means an internal transition (the state does not change,
    no exit/entry).  ``guard`` and ``update`` take (record, event args).
    """

    trigger: str
    source: tuple[str, ...]
    dest: str | None
    guard: Guard | None = None
    update: Update | None = None
    effects: tuple[Effect, ...] = ()
    doc: str = ""

    @property
    def guard_name(self) -> str | None:
        return None if self.guard is None else self.guard.__name__

    def target(self, source: str) -> str:
        return source if self.dest is None else self.dest


@dataclass(frozen=True)
class Ignore:
    """An event a state handles on purpose by doing nothing.

    With ``reject=True`` the event is an operator error in those states: the
    machine raises :class:`InvalidEvent` carrying ``reason``.
    """

    trigger: str
    states: tuple[str, ...]
    reason: str
    reject: bool = False


@dataclass(frozen=True)
class Invariant:
    name: str
    holds: Predicate
    doc: str


@dataclass(frozen=True)
class Derived:
    """A function of the record defined by cases, e.g. the group state.

    Each case is (label, predicate).  The cases must be total and pairwise
    exclusive (``wolfpack verify`` proves it); ``priority`` documents the
    order used to make overlapping published definitions exclusive.
    """

    name: str
    cases: tuple[tuple[str, Predicate], ...]
    doc: str
    priority: tuple[str, ...] = ()

    def evaluate(self, rec: Record) -> str:
        matches = [label for label, pred in self.cases if pred(rec)]
        if len(matches) != 1:
            raise SpecError(
                f"derived {self.name} is {'ambiguous' if matches else 'undefined'} for {rec!r}: "
                f"matches {matches}; fix the cases in spec/"
            )
        return matches[0]


@dataclass(frozen=True)
class Spec:
    """One state machine, written once as data."""

    name: str
    doc: str
    states: tuple[str, ...]
    initial: str
    fields: tuple[Field, ...]
    events: tuple[Event, ...]
    transitions: tuple[Transition, ...]
    ignored: tuple[Ignore, ...] = ()
    invariants: tuple[Invariant, ...] = ()
    domain: tuple[Invariant, ...] = ()
    derived: tuple[Derived, ...] = ()
    final_states: tuple[str, ...] = ()
    state_docs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise SpecError(f"spec {self.name!r} is malformed:\n  " + "\n  ".join(problems))

    # -- structure -----------------------------------------------------
    def _problems(self) -> Iterable[str]:
        states = set(self.states)
        if len(states) != len(self.states):
            yield "duplicate state names"
        if self.initial not in states:
            yield f"initial state {self.initial!r} is not a state"
        events = {e.name for e in self.events}
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names) or "state" in names:
            yield "field names must be unique and not 'state'"
        for t in self.transitions:
            if t.trigger not in events:
                yield f"transition uses unknown event {t.trigger!r}"
            for s in (*t.source, *(() if t.dest is None else (t.dest,))):
                if s not in states:
                    yield f"transition {t.trigger} uses unknown state {s!r}"
        for ig in self.ignored:
            if ig.trigger not in events:
                yield f"ignore rule uses unknown event {ig.trigger!r}"
            for s in ig.states:
                if s not in states:
                    yield f"ignore rule for {ig.trigger} uses unknown state {s!r}"
                if any(s in t.source for t in self.transitions if t.trigger == ig.trigger):
                    yield f"{ig.trigger} in {s} is both handled and ignored"
        for s in self.final_states:
            if s not in states:
                yield f"final state {s!r} is not a state"

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise SpecError(f"spec {self.name} has no field {name!r}")

    def event(self, name: str) -> Event:
        for e in self.events:
            if e.name == name:
                return e
        raise InvalidEvent(
            f"{self.name} machine has no event {name!r}; known events: "
            + ", ".join(sorted(e.name for e in self.events))
        )

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.events)

    def rows(self, state: str, trigger: str) -> list[Transition]:
        """The transitions for (state, trigger), in table order."""
        return [t for t in self.transitions if t.trigger == trigger and state in t.source]

    def ignore_rule(self, state: str, trigger: str) -> Ignore | None:
        for ig in self.ignored:
            if ig.trigger == trigger and state in ig.states:
                return ig
        return None

    def variables(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.param)

    def params(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.param)

    # -- records -----------------------------------------------------------
    def record(self, state: str | None = None, **values: Any) -> Record:
        """A concrete record: defaults, overridden by ``values``, validated."""
        unknown = set(values) - {f.name for f in self.fields}
        if unknown:
            raise SpecError(f"{self.name} has no field(s) {sorted(unknown)}")
        full: dict[str, Any] = {"state": state or self.initial}
        for f in self.fields:
            full[f.name] = values.get(f.name, f.default)
        rec = Record(full)
        problems = self.check_record(rec)
        if problems:
            raise SpecError(f"invalid {self.name} record: " + "; ".join(problems))
        return rec

    def check_record(self, rec: Record) -> list[str]:
        problems = []
        if rec.state not in self.states:
            problems.append(f"state {rec.state!r} is not one of {', '.join(self.states)}")
        for f in self.fields:
            p = f.check(getattr(rec, f.name))
            if p:
                problems.append(p)
        if not problems:
            for d in self.domain:
                if not d.holds(rec):
                    problems.append(f"{d.name}: {d.doc}")
        return problems

    def event_args(self, trigger: str, args: Mapping[str, Any] | None = None) -> Record:
        ev = self.event(trigger)
        args = dict(args or {})
        expected = {a.name for a in ev.args}
        if set(args) != expected:
            raise InvalidEvent(
                f"event {trigger} of {self.name} takes arguments {sorted(expected) or 'none'}, "
                f"got {sorted(args) or 'none'}"
            )
        return Record(args)


def named(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a generated guard the name diagrams and proofs show."""
    fn.__name__ = name
    fn.__qualname__ = name
    return fn


def all_of(name: str, *guards: Guard) -> Guard:
    """A named guard that holds when every one of ``guards`` holds."""
    return named(name, lambda r, e: And(*(g(r, e) for g in guards)))


def negation(name: str, guard: Guard) -> Guard:
    """A named guard that holds when ``guard`` does not."""
    return named(name, lambda r, e: Not(guard(r, e)))
