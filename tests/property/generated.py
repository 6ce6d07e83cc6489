"""Hypothesis state machines generated from a spec.

:func:`machine_test` turns any :class:`~wolfpack.spec.core.Spec` into a
``RuleBasedStateMachine`` with one rule per trigger, which runs where the
table has rows for the trigger, and one rule ``ignored_or_rejected`` for the
events the current state ignores or rejects on purpose.  Each event, with
arguments drawn from the current record, goes into a
:class:`~wolfpack.machines.LiveMachine` and into the reference interpreter
(:mod:`reference`); they must agree on the record and the effects, and the
live machine must raise ``InvalidEvent`` where the table rejects.  After
every event the spec's invariants and domain predicates must hold on the
live record, and the table must say what every event does in its state.

Reaching deep states (a group of four resources all Online) by uniform
random choice is rare, so the generator leans towards progress, still inside
each argument's range: most draws pick arguments that change the record (the
resource whose report is expected), a rule with arguments may repeat its
trigger while it changes the record (a burst of reports), and ignored or
rejected events have one rule of their own instead of taking a share of
every trigger's rule.  Measured on the ``ci`` profile, these choices make
every run class reach every state (a one-rule-per-trigger-only generator
never reached ``Failed`` for groups of 1 and 4 resources; asking hypothesis
to ``target`` runs that fire many rows narrowed the runs instead).
"""

from __future__ import annotations

import itertools
import math
import random
import zlib
from collections.abc import Callable, Iterable, Mapping
from enum import IntEnum
from typing import Any, ClassVar

import reference
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from wolfpack.errors import InvalidEvent
from wolfpack.machines import LiveMachine
from wolfpack.spec.core import Arg, Emitted, Record, Spec

#: How often arguments that change the record are preferred, when there are any.
PROGRESS_BIAS = 0.75
#: How often a rule with arguments repeats its trigger while that changes the record.
BURST_BIAS = 0.75
#: The longest burst of one trigger in one rule (more than any group has resources).
MAX_BURST = 8
#: Probability that a trigger is enabled in one random walk (swarm testing).
SWARM_P = 0.5
#: The walks' name for the rule that sends an ignored or rejected event.
IGNORED = "(ignored or rejected)"


# --- arguments ------------------------------------------------------------------


def arg_bounds(arg: Arg, rec: Record) -> tuple[int, int]:
    """Inclusive (lo, hi) of the values drawn for ``arg`` in ``rec``: lo..min(upper, hi_max)-1."""
    upper = arg.upper(rec)
    return arg.lo, (arg.hi_max if upper is None else min(upper, arg.hi_max)) - 1


def _arg_ranges(spec: Spec, rec: Record, trigger: str) -> tuple[list[str], list[range]]:
    names = [a.name for a in spec.event(trigger).args]
    return names, [range(lo, hi + 1) for lo, hi in (arg_bounds(a, rec) for a in spec.event(trigger).args)]


def all_args(spec: Spec, rec: Record, trigger: str) -> list[dict[str, int]]:
    """Every argument tuple of ``trigger`` drawable in ``rec``."""
    names, ranges = _arg_ranges(spec, rec, trigger)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*ranges)]


def _nth_args(names: list[str], ranges: list[range], index: int) -> dict[str, int]:
    """The ``index``-th tuple of ``itertools.product(*ranges)``, without building the product."""
    values = []
    for r in reversed(ranges):
        index, digit = divmod(index, len(r))
        values.append(r[digit])
    return dict(zip(names, reversed(values), strict=True))


#: at most this many argument tuples are tried for progress (a fixed pseudo-random sample of larger products:
#: messages with many fields, such as a regroup proposal, have thousands)
PROGRESS_SAMPLE = 384
#: ... of which the first this many that change the record are kept (each is a reference step: a group's
#: configuration changes the record for nearly every tuple, and a burst asks again after every step)
PROGRESS_ENOUGH = 32


def progress_args(spec: Spec, rec: Record, trigger: str) -> list[dict[str, int]]:
    """The argument tuples with which ``trigger`` (one with arguments) changes the record."""
    if not spec.event(trigger).args:
        return []
    names, ranges = _arg_ranges(spec, rec, trigger)
    total = math.prod(len(r) for r in ranges)
    candidates: Iterable[dict[str, int]]
    if total > PROGRESS_SAMPLE:
        # a different sample for each record and trigger, the same in every run (sampled by index and decoded
        # lazily: a large product, such as a group's configuration with its preferred owners, is never built)
        seed = zlib.crc32(f"{trigger} {rec!r}".encode())
        indices = random.Random(seed).sample(range(total), PROGRESS_SAMPLE)
        candidates = (_nth_args(names, ranges, i) for i in indices)
    else:
        candidates = (dict(zip(names, values, strict=True)) for values in itertools.product(*ranges))
    progress: list[dict[str, int]] = []
    for a in candidates:  # the first PROGRESS_ENOUGH that change the record are choice enough for one draw
        if reference.step(spec, rec, trigger, a).record != rec:
            progress.append(a)
            if len(progress) == PROGRESS_ENOUGH:
                break
    return progress


def drawable(spec: Spec, rec: Record, trigger: str) -> bool:
    """Every argument of ``trigger`` has a value to draw in ``rec``."""
    return all(lo <= hi for lo, hi in (arg_bounds(a, rec) for a in spec.event(trigger).args))


def fires(spec: Spec, rec: Record, trigger: str) -> bool:
    """The table has rows for (state, trigger): the trigger's own rule may run."""
    return reference.has_rows(spec, rec.state, trigger) and drawable(spec, rec, trigger)


def ignored_here(spec: Spec, rec: Record) -> list[str]:
    """The triggers the state ignores or rejects on purpose (the ignore rules)."""
    return [t for t in spec.triggers if reference.ignore_rule(spec, rec.state, t) and drawable(spec, rec, t)]


# --- messages ---------------------------------------------------------------------


def show(rec: Record) -> str:
    """A record as one readable line: enum names, vectors in brackets."""
    return " ".join(f"{k}={_plain(v)}" for k, v in rec.values().items())


def _plain(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(_plain(v) for v in value) + "]"
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _labels(effects: tuple[Emitted, ...]) -> list[str]:
    return [f"{e.kind}:{e.name}{dict(e.args) or ''}" for e in effects]


def violations(spec: Spec, rec: Record) -> list[str]:
    """Every invariant or domain predicate that fails on ``rec``, with why."""
    found = [f"invariant {inv.name} violated: {inv.doc}" for inv in spec.invariants if not inv.holds(rec)]
    found += [f"domain predicate {d.name} violated: {d.doc}" for d in spec.domain if not d.holds(rec)]
    found += [f"invalid record: {p}" for p in spec.check_record(rec)]
    return found


def check_invariants(spec: Spec, rec: Record) -> None:
    problems = violations(spec, rec)
    assert not problems, f"{spec.name}: " + "; ".join(problems) + f"\n  record: {show(rec)}"


# --- one event, live against reference ---------------------------------------------


def check_step(spec: Spec, live: LiveMachine, trigger: str, args: Mapping[str, int]) -> None:
    """Fire one event into ``live`` and require what the table says."""
    before = live.record
    expected = reference.step(spec, before, trigger, args)
    where = f"{spec.name}: {trigger} {dict(args)} in {show(before)}"
    if expected.kind == reference.REJECTED:
        try:
            live.step(trigger, **args)
        except InvalidEvent:
            pass
        else:
            raise AssertionError(f"{where}: the table rejects it, the live machine accepted it")
        assert live.record == before, f"{where}: a rejected event changed the record to {show(live.record)}"
        return
    effects = tuple(live.step(trigger, **args))
    assert live.record == expected.record, (
        f"{where}: the live machine reached {show(live.record)}, the table says {show(expected.record)}"
    )
    assert effects == expected.effects, (
        f"{where}: the live machine emitted {_labels(effects)}, the table says {_labels(expected.effects)}"
    )
    outcome = "ignored" if expected.kind == reference.IGNORED else "transition"
    assert live.last is not None and live.last.outcome == outcome, f"{where}: the live machine did not report {outcome}"


# --- the generated state machine -----------------------------------------------------


class SpecMachine(RuleBasedStateMachine):
    """What every generated machine shares; ``machine_test`` adds the rules."""

    spec: ClassVar[Spec]
    live: LiveMachine
    visited: set[str]

    def fire(self, trigger: str, args: Mapping[str, int]) -> None:
        check_step(self.spec, self.live, trigger, args)
        self.visited.add(self.live.state)

    def teardown(self) -> None:
        # shown by ``pytest --hypothesis-show-statistics``: how many runs reached each state
        for state in sorted(getattr(self, "visited", ())):
            event(f"reached {state}")


def machine_test(spec: Spec, records: st.SearchStrategy[Record]) -> type[RuleBasedStateMachine]:
    """A state machine test of ``spec`` starting from records drawn by ``records``.

    One rule per trigger runs where the table has rows for it; one more rule,
    ``ignored_or_rejected``, sends an event the current state ignores or
    rejects (with the rows' rules alone most steps would be wasted on
    ignored events, and deep states would hardly be reached).
    """

    class Machine(SpecMachine):
        @initialize(record=records)
        def start(self, record: Record) -> None:
            assert record.state == spec.initial, f"initial records start in {spec.initial}, got {show(record)}"
            self.live = LiveMachine(spec, record)
            self.visited = {record.state}

        @invariant()
        def spec_invariants_hold(self) -> None:
            check_invariants(spec, self.live.record)
            state = self.live.state
            silent = [t for t in spec.triggers if not reference.has_rows(spec, state, t)
                      and reference.ignore_rule(spec, state, t) is None]
            assert not silent, f"{spec.name}: the table says nothing about {silent} in {state}"

        @precondition(lambda self: bool(ignored_here(spec, self.live.record)))
        @rule(data=st.data())
        def ignored_or_rejected(self, data: st.DataObject) -> None:
            trigger = data.draw(st.sampled_from(ignored_here(spec, self.live.record)), label="trigger")
            rec = self.live.record
            args = {a.name: data.draw(st.integers(*arg_bounds(a, rec)), label=a.name) for a in spec.event(trigger).args}
            self.fire(trigger, args)

    Machine.spec = spec
    for trigger in spec.triggers:
        name = trigger if not hasattr(Machine, trigger) else f"fire_{trigger}"
        setattr(Machine, name, _rule(spec, trigger, name))
    Machine.__name__ = Machine.__qualname__ = f"{spec.name.capitalize()}Machine"
    return Machine


def _rule(spec: Spec, trigger: str, name: str) -> Callable[..., None]:
    has_args = bool(spec.event(trigger).args)

    def fire(self: SpecMachine, data: st.DataObject) -> None:
        self.fire(trigger, _draw_args(spec, self.live.record, trigger, data))
        if not has_args or not _likely(data, "repeat while it changes the record"):
            return
        for _ in range(MAX_BURST):
            progress = progress_args(spec, self.live.record, trigger)
            if not progress:
                break
            check_invariants(spec, self.live.record)
            self.fire(trigger, data.draw(st.sampled_from(progress), label="args"))

    fire.__name__ = fire.__qualname__ = name
    decorated = rule(data=st.data())(fire)
    return precondition(lambda self: fires(spec, self.live.record, trigger))(decorated)  # type: ignore[no-any-return]


def _draw_args(spec: Spec, rec: Record, trigger: str, data: st.DataObject) -> dict[str, int]:
    progress = progress_args(spec, rec, trigger)
    if progress and _likely(data, "prefer progress"):
        return data.draw(st.sampled_from(progress), label="args")  # type: ignore[no-any-return]
    return {a.name: data.draw(st.integers(*arg_bounds(a, rec)), label=a.name) for a in spec.event(trigger).args}


def _likely(data: st.DataObject, label: str) -> bool:
    """True 3 times in 4, as PROGRESS_BIAS and BURST_BIAS say (shrinks towards False)."""
    return data.draw(st.integers(0, 3), label=label) > 0


# --- seeded random walks ---------------------------------------------------------------


def random_walks(
    spec: Spec, initial: Callable[[random.Random], Record], walks: int, steps: int, seed: int
) -> Mapping[str, int]:
    """Seeded random walks through the reference interpreter, drawn as the rules draw; visits per state.

    Like hypothesis' stateful runs, each walk enables a random subset of the
    triggers (swarm testing).
    """
    rng = random.Random(seed)
    visits = dict.fromkeys(spec.states, 0)
    for _ in range(walks):
        rec = initial(rng)
        visits[rec.state] += 1
        enabled = [t for t in (*spec.triggers, IGNORED) if rng.random() < SWARM_P] or [*spec.triggers, IGNORED]
        for _ in range(steps):
            choices = [t for t in enabled if (ignored_here(spec, rec) if t == IGNORED else fires(spec, rec, t))]
            if not choices:
                break
            trigger = rng.choice(choices)
            if trigger == IGNORED:
                trigger = rng.choice(ignored_here(spec, rec))
            rec = reference.step(spec, rec, trigger, _random_args(spec, rec, trigger, rng)).record
            visits[rec.state] += 1
            if spec.event(trigger).args and rng.random() < BURST_BIAS:  # a burst, as in the rules
                for _ in range(MAX_BURST):
                    progress = progress_args(spec, rec, trigger)
                    if not progress:
                        break
                    rec = reference.step(spec, rec, trigger, rng.choice(progress)).record
                    visits[rec.state] += 1
    return visits


def _random_args(spec: Spec, rec: Record, trigger: str, rng: random.Random) -> dict[str, int]:
    progress = progress_args(spec, rec, trigger)
    if progress and rng.random() < PROGRESS_BIAS:
        return rng.choice(progress)
    return {a.name: rng.randint(*arg_bounds(a, rec)) for a in spec.event(trigger).args}
