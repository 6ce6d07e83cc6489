"""Counterexample runs: read back from z3, printed for humans, saved as JSON, replayed.

A :class:`Run` is the sequence of (event with its arguments, records after
it) from an initial state.  :meth:`Run.text` prints it so a person can follow
it; :meth:`Run.as_dict` is the JSON that ``wolfpack verify
--save-counterexample`` writes; :func:`replay` feeds a saved run through the
live machines (``wolfpack.machines.LiveMachine``) and checks every record,
which makes any counterexample a regression scenario (or a hypothesis
``@example``) at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from wolfpack.spec.core import Record, Spec

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Step:
    """One decoded step: the events (initiator first, then followers)."""

    component: str
    trigger: str
    args: Mapping[str, int]
    row: int | None
    followers: tuple[Step, ...] = ()

    def label(self, with_component: bool) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        text = f"{self.trigger}({args})"
        if with_component:
            text = f"{self.component}.{text}"
        if self.row is None:
            text += " [ignored]"
        return text

    def describe(self, with_component: bool) -> str:
        parts = [self.label(with_component)] + [f.label(True) for f in self.followers]
        return " + ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"component": self.component, "trigger": self.trigger, "args": dict(self.args),
                               "row": self.row}
        if self.followers:
            out["with"] = [f.as_dict() for f in self.followers]
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Step:
        return Step(data["component"], data["trigger"], dict(data["args"]), data["row"],
                    tuple(Step.from_dict(f) for f in data.get("with", ())))


@dataclass(frozen=True)
class Run:
    """A run of a model from an initial state, ending where ``violated`` fail."""

    model: str
    states: tuple[Mapping[str, Record], ...]  # states[0] initial; states[i] after steps[i-1]
    steps: tuple[Step, ...]
    violated: tuple[str, ...] = ()
    explanation: tuple[str, ...] = field(default=())

    @property
    def single(self) -> bool:
        return len(self.states[0]) == 1

    def text(self, indent: str = "    ") -> str:
        """The run as numbered lines: the initial records, then each event and what it changed."""
        single = self.single
        labels = [s.describe(not single) for s in self.steps]
        width = max([len("initial"), *map(len, labels)]) if single else 0
        lines = [f"{indent}counterexample: {len(self.steps)} step(s) from the initial state"]
        if single:
            (rec,) = self.states[0].values()
            lines.append(f"{indent}  0. {'initial'.ljust(width)}  {_show(rec, None)}")
        else:
            lines.append(f"{indent}  0. initial")
            lines += [f"{indent}       {name}: {_show(rec, None)}" for name, rec in self.states[0].items()]
        for i, label in enumerate(labels, start=1):
            before, after = self.states[i - 1], self.states[i]
            changed = [(n, r) for n, r in after.items() if r != before[n]]
            if single:
                shown = _show(changed[0][1], before[changed[0][0]]) if changed else "(no change)"
                lines.append(f"{indent}  {i}. {label.ljust(width)}  -> {shown}")
                continue
            lines.append(f"{indent}  {i}. {label}")
            for name, rec in changed:
                lines.append(f"{indent}       {name}: {_show(rec, before[name])}")
        for why in self.explanation:
            lines.append(f"{indent}  violated: {why}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "violated": list(self.violated),
            "initial": {n: _record_dict(r) for n, r in self.states[0].items()},
            "steps": [{"event": s.as_dict(), "state": {n: _record_dict(r) for n, r in self.states[i + 1].items()}}
                      for i, s in enumerate(self.steps)],
        }


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    if isinstance(value, IntEnum):
        return value.name
    return repr(value) if isinstance(value, str) else str(value)


def _show(rec: Record, before: Record | None) -> str:
    values = rec.values()
    state = values.pop("state")
    old = None if before is None else before.values()
    parts = [state if old is None or old["state"] != state else f"(stays {state})"]
    for k, v in values.items():
        if old is None or old[k] != v:
            parts.append(f"{k}={_value(v)}")
    return "  ".join(parts)


def _record_dict(rec: Record) -> dict[str, Any]:
    return {k: ([int(x) if isinstance(x, IntEnum) else x for x in v] if isinstance(v, tuple)
                else int(v) if isinstance(v, IntEnum) else v)
            for k, v in rec.values().items()}


def record_from_dict(spec: Spec, data: Mapping[str, Any]) -> Record:
    """A concrete record of ``spec`` from its JSON form (lists back to tuples, enums back to members)."""
    values: dict[str, Any] = {"state": data["state"]}
    for f in spec.fields:
        raw = data[f.name]

        def convert(x: Any, kind: type = f.kind) -> Any:
            return kind(x) if kind not in (int, bool) else x

        values[f.name] = tuple(convert(x) for x in raw) if f.length is not None else convert(raw)
    return Record(values)


def replay(data: Mapping[str, Any], specs: Mapping[str, Spec]) -> list[str]:
    """Feed a saved run through live machines; return the mismatches (empty: the run is legal).

    ``specs`` maps each component of the run to its spec (for a single
    machine: ``{"resource": resource.SPEC}``).
    """
    from wolfpack.machines.live import LiveMachine

    machines = {n: LiveMachine(specs[n], record=record_from_dict(specs[n], rec)) for n, rec in data["initial"].items()}
    problems: list[str] = []
    for i, entry in enumerate(data["steps"], start=1):
        event = Step.from_dict(entry["event"])
        for part in (event, *event.followers):
            machine = machines[part.component]
            spec = specs[part.component]
            if part.row is not None and machine.may(part.trigger, **part.args):
                args = spec.event_args(part.trigger, part.args)
                live = next(spec.transitions.index(r) for r in spec.rows(machine.state, part.trigger)
                            if r.guard is None or r.guard(machine.record, args))
                if live != part.row:
                    problems.append(f"step {i}: the run fires row {part.row} of {part.component}, the live machine "
                                    f"row {live} (the first in table order): the spec is not deterministic here")
            machine.step(part.trigger, **part.args)
        for name, rec in entry["state"].items():
            expected = record_from_dict(specs[name], rec)
            if machines[name].record != expected:
                problems.append(f"step {i} ({event.describe(True)}): {name} is {machines[name].record!r}, "
                                f"the run says {expected!r}")
    return problems
