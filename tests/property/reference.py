"""A reference interpreter of a spec's table, for checking the live machine.

It reads the table directly: no ``transitions``, no ``wolfpack.machines``.
One step: the rows for (state, trigger) in table order, the first whose
guard holds fires (update, then effects); with no row the state's Ignore
rule says whether the event is ignored or rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wolfpack.spec.core import Emitted, Ignore, Record, Spec, Transition

FIRED, IGNORED, REJECTED = "fired", "ignored", "rejected"


@dataclass(frozen=True)
class Outcome:
    kind: str  # FIRED, IGNORED or REJECTED
    record: Record  # the record after the step (unchanged unless FIRED)
    effects: tuple[Emitted, ...] = ()
    row: Transition | None = None


def step(spec: Spec, rec: Record, trigger: str, args: Mapping[str, Any]) -> Outcome:
    event = Record(dict(args))
    rows = [t for t in spec.transitions if t.trigger == trigger and rec.state in t.source]  # table order
    for row in rows:
        if row.guard is None or row.guard(rec, event):
            changes = {} if row.update is None else dict(row.update(rec, event))
            after = rec.replace(state=row.dest or rec.state, **changes)
            return Outcome(FIRED, after, _effects(row, rec, event, after), row)
    if rows:
        raise AssertionError(f"{spec.name}: rows for {trigger} in {rec.state} but no guard holds for {rec!r} {args}")
    rule = ignore_rule(spec, rec.state, trigger)
    if rule is None:
        raise AssertionError(f"{spec.name}: the table says nothing about {trigger} in {rec.state}")
    return Outcome(REJECTED if rule.reject else IGNORED, rec)


def _effects(row: Transition, before: Record, event: Record, after: Record) -> tuple[Emitted, ...]:
    out = []
    for eff in row.effects:
        if eff.when is not None and not eff.when(before, event):
            continue
        values = {} if eff.args is None else eff.args(before, event, after)
        if values is not None:
            out.append(Emitted(eff.kind, eff.name, dict(values)))
    return tuple(out)


def has_rows(spec: Spec, state: str, trigger: str) -> bool:
    return any(t.trigger == trigger and state in t.source for t in spec.transitions)


def ignore_rule(spec: Spec, state: str, trigger: str) -> Ignore | None:
    return next((ig for ig in spec.ignored if ig.trigger == trigger and state in ig.states), None)
