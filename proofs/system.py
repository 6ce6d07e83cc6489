"""A :class:`~wolfpack.proofs.model.Model` as a z3 transition system.

The transition relation is built once over a template pair of frames
(``x`` -> ``y``, event arguments tagged ``a``) and renamed for every step
with ``z3.substitute``, so a bounded run of depth N costs N renamings, not N
evaluations of the spec.  Each disjunct of the relation is kept as a
:class:`Choice` so that a satisfying model can be read back as the event
(with its arguments) that fired, and the followers that took part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import z3

from wolfpack.proofs.backend import to_bool
from wolfpack.proofs.encode import SpecEncoding, SymState, call
from wolfpack.proofs.model import Model, Property, Sync, View
from wolfpack.proofs.trace import Step
from wolfpack.spec.core import Record
from wolfpack.spec.expr import If


class Frame:
    """The whole model's state at one step: one :class:`SymState` per component."""

    def __init__(self, system: System, tag: str) -> None:
        self.tag = tag
        self.parts: dict[str, SymState] = {n: enc.frame(tag) for n, enc in system.encodings.items()}
        self.view = View({n: s.record for n, s in self.parts.items()}, system.spec_names)

    @property
    def variables(self) -> list[z3.ExprRef]:
        return [v for s in self.parts.values() for v in s.all_variables]

    @property
    def state_variables(self) -> list[z3.ExprRef]:
        """Variables that steps change (parameters excluded)."""
        return [v for s in self.parts.values() for v in s.variables]


@dataclass
class Alternative:
    """One way a component handles an event in a step: a row, or ignoring it."""

    label: str  # "row 3" or "ignored"
    row: int | None
    holds: z3.BoolRef
    args: Record


@dataclass
class FollowerPart:
    component: str
    sync: Sync
    when: z3.BoolRef
    alternatives: list[Alternative]


@dataclass
class Choice:
    """One disjunct of the transition relation: a component fires a row."""

    component: str
    row: int
    trigger: str
    args: Record
    holds: z3.BoolRef
    followers: list[FollowerPart]


class System:
    """The transition system of a model (build it inside :func:`wolfpack.proofs.backend.symbolic`)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.encodings = {c.name: SpecEncoding(c.spec, c.name, c.fixed) for c in model.components}
        self.spec_names = {c.name: c.spec.name for c in model.components}
        self.shared = {(s.follower, s.trigger) for s in model.syncs}
        self.properties: tuple[Property, ...] = model.all_properties()
        self.x = self.frame("x")
        self.y = self.frame("y")
        self._arg_vars: dict[str, z3.ExprRef] = {}
        self.choices = self._build(self.x, self.y)
        self.template = z3.Or(*[c.holds for c in self.choices])

    def frame(self, tag: str) -> Frame:
        return Frame(self, tag)

    # -- predicates on frames ---------------------------------------------------------
    def well_formed(self, f: Frame) -> z3.BoolRef:
        return z3.And(*[self.encodings[n].well_formed(s) for n, s in f.parts.items()])

    def init(self, f: Frame) -> z3.BoolRef:
        return z3.And(*[self.encodings[n].init(s) for n, s in f.parts.items()])

    def holds(self, prop: Property, f: Frame) -> z3.BoolRef:
        first = next(iter(self.encodings.values()))
        return to_bool(call(first.spec, prop.holds, f.view))

    def all_hold(self, props: Sequence[Property], f: Frame) -> z3.BoolRef:
        return z3.And(self.well_formed(f), *[self.holds(p, f) for p in props])

    # -- the transition relation ------------------------------------------------------
    def _renaming(self, pre: Frame, post: Frame, tag: str) -> list[tuple[z3.ExprRef, z3.ExprRef]]:
        pairs = list(zip(self.x.variables, pre.variables, strict=True))
        pairs += list(zip(self.y.variables, post.variables, strict=True))
        pairs += [(v, z3.Const(name.replace("@a", f"@{tag}"), v.sort())) for name, v in self._arg_vars.items()]
        return pairs

    def arg_variables(self) -> list[z3.ExprRef]:
        """The template's event-argument variables (tag ``a``)."""
        return list(self._arg_vars.values())

    def step_var(self, name: str, sort: z3.SortRef) -> Any:
        """A free choice of the step template (which action, which row, ...), renamed for every step like an event
        argument, so that a model of a run tells what each step chose."""
        v = z3.Const(f"{name}@a", sort)
        self._arg_vars[str(v)] = v
        return v

    @staticmethod
    def chain(cases: Sequence[tuple[Any, Any]], default: Any) -> Any:
        """``value`` of the first case whose condition holds, else ``default`` (an if-then-else chain)."""
        out = default
        for cond, value in reversed(cases):
            out = If(cond, value, out)
        return out

    def trans(self, pre: Frame, post: Frame, tag: str) -> z3.BoolRef:
        """Some step takes ``pre`` to ``post`` (event arguments tagged ``tag``)."""
        return z3.substitute(self.template, *self._renaming(pre, post, tag))

    def _args(self, enc: SpecEncoding, trigger: str) -> Record:
        args = enc.event_args(trigger, "a")
        for v in args.values().values():
            self._arg_vars[str(v)] = v
        return args

    def _build(self, pre: Frame, post: Frame) -> list[Choice]:
        choices: list[Choice] = []
        for name, enc in self.encodings.items():
            trigger_args: dict[str, Record] = {}
            for index, row in enumerate(enc.spec.transitions):
                if (name, row.trigger) in self.shared:
                    continue
                args = trigger_args.get(row.trigger)
                if args is None:
                    args = trigger_args[row.trigger] = self._args(enc, row.trigger)
                local = enc.fire(row, pre.parts[name], post.parts[name], args)
                after = pre.view.replace(name, post.parts[name].record)
                followers, constraints = self._followers(name, row.trigger, pre, post, after)
                moved = {name} | {f.component for f in followers}
                still = [self.encodings[n].stay(pre.parts[n], post.parts[n]) for n in self.encodings if n not in moved]
                holds = z3.And(local, *constraints, *still)
                choices.append(Choice(name, index, row.trigger, args, holds, followers))
        return choices

    def _followers(self, initiator: str, trigger: str, pre: Frame, post: Frame,
                   after: View) -> tuple[list[FollowerPart], list[z3.BoolRef]]:
        """The follower parts of a step and the constraints they add (first matching sync wins)."""
        by_follower: dict[str, list[Sync]] = {}
        for s in self.model.syncs:
            if s.initiator == initiator and (not s.on or trigger in s.on):
                by_follower.setdefault(s.follower, []).append(s)
        parts: list[FollowerPart] = []
        constraints: list[z3.BoolRef] = []
        for follower, syncs in by_follower.items():
            enc = self.encodings[follower]
            f_pre, f_post = pre.parts[follower], post.parts[follower]
            relation: z3.BoolRef = enc.stay(f_pre, f_post)
            for s in reversed(syncs):
                when = to_bool(s.when(pre.view, after))
                alternatives = self._handle(enc, s, f_pre, f_post, pre.view)
                parts.insert(0, FollowerPart(follower, s, when, alternatives))
                relation = z3.If(when, z3.Or(*[a.holds for a in alternatives]), relation)
            constraints.append(relation)
        return parts, constraints

    def _handle(self, enc: SpecEncoding, s: Sync, f_pre: SymState, f_post: SymState,
                before: View) -> list[Alternative]:
        args = self._args(enc, s.trigger) if s.args is None else Record(dict(s.args(before)))
        out = [Alternative(f"row {i}", i, enc.fire(row, f_pre, f_post, args), args)
               for i, row in enc.rows_of(s.trigger)]
        out.append(Alternative("ignored", None, z3.And(enc.ignores(f_pre, s.trigger), enc.stay(f_pre, f_post)), args))
        return out

    # -- reading runs back --------------------------------------------------------------
    def decode_state(self, model: z3.ModelRef, f: Frame) -> dict[str, Record]:
        return {n: self.encodings[n].decode(model, s) for n, s in f.parts.items()}

    def decode_step(self, model: z3.ModelRef, pre: Frame, post: Frame, tag: str) -> Step:
        pairs = self._renaming(pre, post, tag)

        def true(term: z3.BoolRef) -> bool:
            return bool(z3.is_true(model.eval(z3.substitute(term, *pairs), model_completion=True)))

        def values(args: Record) -> dict[str, int]:
            out = {}
            for k, v in args.values().items():
                term = v if isinstance(v, z3.ExprRef) else z3.IntVal(int(v))
                out[k] = int(model.eval(z3.substitute(term, *pairs), model_completion=True).as_long())
            return out

        for choice in self.choices:
            if not true(choice.holds):
                continue
            followers = []
            for part in choice.followers:
                if not true(part.when):
                    continue
                for alt in part.alternatives:
                    if true(alt.holds):
                        followers.append(Step(part.component, part.sync.trigger, values(alt.args), alt.row))
                        break
            return Step(choice.component, choice.trigger, values(choice.args), choice.row, tuple(followers))
        raise AssertionError("no transition of the model explains this step")  # pragma: no cover
