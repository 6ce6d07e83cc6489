"""Live machines built from the specs with ``transitions``.

:class:`LiveMachine` wraps one ``transitions.Machine`` (``auto_transitions``
off, ``queued`` on, invalid triggers are errors) generated from a
:class:`~wolfpack.spec.core.Spec`, and offers the pure step API the runtime
and the simulator use: ``step(trigger, **args)`` takes one event and returns
the effects to carry out.  Nothing here touches sockets, files, clocks or
processes; every rule comes from the spec's table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transitions import EventData, Machine, MachineError

from wolfpack.errors import InvalidEvent, SpecError
from wolfpack.spec.core import Emitted, Record, Spec, Transition


@dataclass(frozen=True)
class Step:
    """What one event did: for traces and for the operator's log."""

    machine: str
    trigger: str
    args: Mapping[str, Any]
    source: str
    dest: str
    outcome: str  # "transition", "ignored"
    effects: tuple[Emitted, ...] = ()
    reason: str = ""
    changes: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "trigger": self.trigger,
            "args": dict(self.args),
            "source": self.source,
            "dest": self.dest,
            "outcome": self.outcome,
            "effects": [e.as_dict() for e in self.effects],
        }


def effects_of(row: Transition, before: Record, args: Record, after: Record) -> tuple[Emitted, ...]:
    """The effect instances a fired row produces (conditional ones filtered)."""
    out = []
    for eff in row.effects:
        if eff.when is not None and not eff.when(before, args):
            continue
        values = {} if eff.args is None else eff.args(before, args, after)
        if values is None:  # an effect with nothing to do (e.g. an empty wave)
            continue
        out.append(Emitted(eff.kind, eff.name, dict(values)))
    return tuple(out)


class _Model:
    """The object ``transitions`` drives; kept apart so trigger names cannot
    clash with the wrapper's own attributes."""

    state: str


class LiveMachine:
    """One running instance of a spec."""

    def __init__(self, spec: Spec, record: Record | None = None, **values: Any) -> None:
        self.spec = spec
        self.record = record if record is not None else spec.record(**values)
        problems = spec.check_record(self.record)
        if problems:
            raise SpecError(f"invalid {spec.name} record: " + "; ".join(problems))
        self._model = _Model()
        self._fired: tuple[Transition, Record, Record] | None = None
        self._args = Record({})
        self.last: Step | None = None
        self._machine = Machine(
            model=self._model,
            states=list(spec.states),
            initial=self.record.state,
            transitions=[self._binding(row) for row in spec.transitions],
            auto_transitions=False,
            queued=True,
            send_event=True,
            ignore_invalid_triggers=False,
        )

    # -- the binding --------------------------------------------------------------
    def _binding(self, row: Transition) -> dict[str, Any]:
        guard = row.guard

        def condition(event: EventData) -> bool:
            return True if guard is None else bool(guard(self.record, self._args))

        def before(event: EventData) -> None:
            changes = {} if row.update is None else dict(row.update(self.record, self._args))
            dest = row.target(event.state.name)
            after = self.record.replace(state=dest, **changes)
            self._fired = (row, self.record, after)

        return {
            "trigger": row.trigger,
            "source": list(row.source),
            "dest": row.dest,
            "conditions": [condition],
            "before": [before],
        }

    @property
    def state(self) -> str:
        state: str = self.record.state
        return state

    # -- the step API ---------------------------------------------------------------
    def step(self, trigger: str, **args: Any) -> list[Emitted]:
        """Feed one event; return the effects the runtime must carry out.

        Raises :class:`InvalidEvent` for an unknown event, bad arguments, or
        an event the spec rejects in the current state.
        """
        event_args = self._check_args(trigger, args)
        source = self.record.state
        if not self.spec.rows(source, trigger):
            rule = self.spec.ignore_rule(source, trigger)
            if rule is None:
                raise SpecError(
                    f"the {self.spec.name} spec does not say what {trigger} does in {source}; "
                    "add a transition or an Ignore rule (wolfpack verify checks completeness)"
                )
            if rule.reject:
                raise InvalidEvent(f"{self.spec.name}: cannot {trigger} in state {source}: {rule.reason}")
            self.last = Step(self.spec.name, trigger, args, source, source, "ignored", reason=rule.reason)
            return []
        self._args, self._fired = event_args, None
        try:
            self._model.trigger(trigger)  # type: ignore[attr-defined]
        except MachineError as exc:  # pragma: no cover - rows() said the trigger exists here
            raise InvalidEvent(f"{self.spec.name}: {exc}") from exc
        if self._fired is None:
            raise SpecError(
                f"the {self.spec.name} spec has rows for {trigger} in {source} but no guard holds for "
                f"{self.record!r} {args}; make the guards cover every case"
            )
        row, before, after = self._fired
        self.record = after
        if self._model.state != after.state:  # pragma: no cover - binding invariant
            raise SpecError(f"transitions moved to {self._model.state}, the table says {after.state}")
        effects = effects_of(row, before, event_args, after)
        changes = {k: v for k, v in after.values().items() if before.values()[k] != v and k != "state"}
        self.last = Step(self.spec.name, trigger, args, source, after.state, "transition", effects, row.doc, changes)
        return list(effects)

    def may(self, trigger: str, **args: Any) -> bool:
        """Would ``trigger`` fire a transition now (not ignored, not rejected)?"""
        event_args = self._check_args(trigger, args)
        return any(r.guard is None or bool(r.guard(self.record, event_args))
                   for r in self.spec.rows(self.record.state, trigger))

    def _check_args(self, trigger: str, args: Mapping[str, Any]) -> Record:
        event = self.spec.event(trigger)
        rec = self.spec.event_args(trigger, args)
        for arg in event.args:
            value = args[arg.name]
            if not isinstance(value, int) or isinstance(value, bool) or not arg.valid(self.record, value):
                upper = arg.upper(self.record)
                rng = f">= {arg.lo}" if upper is None else f"in {arg.lo}..{upper - 1}"
                raise InvalidEvent(f"{self.spec.name}: {trigger}: argument {arg.name} must be an integer {rng} "
                                   f"({arg.doc}), got {value!r}")
        return rec
