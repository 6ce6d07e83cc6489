"""A run of a message-level model, carried out again by the live machines.

:func:`replay_network_run` takes a counterexample :class:`~wolfpack.proofs.trace.Run`
of a :class:`~wolfpack.proofs.network.NetworkSystem` and feeds it, action by
action and in node id order within a step, through one
:class:`~wolfpack.machines.LiveMachine` per node and a concrete network of
slots: each delivery takes the message the slot really holds, each crash
restarts the node's record from the spec's initial values and its durable
fields.  It returns every action with the effects the live machine emitted
and the fate of every message (delivered at which step, or lost), and the
differences from the records the solver reported (none: the run is legal).
This is what turns a counterexample into a simulator story.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from wolfpack.machines.live import LiveMachine
from wolfpack.proofs.network import NET, NetworkModel, message_fields, node
from wolfpack.proofs.trace import Run, Step
from wolfpack.spec.core import Emitted, Record

DUPLICATED = "duplicated"


@dataclass
class Sent:
    """One message put on the wire."""

    name: str
    src: int
    dst: int
    args: dict[str, Any]
    step: int
    delivered: int | None = None  # the step that delivered it (None: lost, or still in flight at the end)


@dataclass
class Action:
    """One node's action in one step of the run, as the live machine carried it out."""

    step: int  # 1-based, the run's step number
    node: int
    kind: str  # "local", "deliver", "crash"
    trigger: str
    args: dict[str, Any]
    effects: list[Emitted] = field(default_factory=list)
    message: Sent | None = None  # the message a delivery took
    sent: list[Sent] = field(default_factory=list)
    before: Record | None = None
    after: Record | None = None
    row: int | None = None  # the row the live machine fired (None: ignored, or a crash)


@dataclass
class Replay:
    actions: list[Action]
    sent: list[Sent]
    records: list[dict[int, Record]]  # after each step (index 0: initial)
    problems: list[str]  # where the live machines leave the run: another row fires, a message is not in flight
    differences: list[str]  # records that differ from the solver's (in the fields it searched)


def restart_record(net: NetworkModel, rec: Record) -> Record:
    """What a node that crashes keeps: parameters and durable fields; everything else starts again."""
    initial = net.spec.record(**{f.name: getattr(rec, f.name) for f in net.spec.params()})
    return initial.replace(**{f: getattr(rec, f) for f in net.durable})


def replay_network_run(run: Run, net: NetworkModel, relevant: Collection[str] | None = None,
                       skip: Collection[tuple[int, int]] = ()) -> Replay:
    """Carry ``run`` out with live machines; ``relevant`` (the solver's searched fields, ``node0.round``,
    ``node0.heard[1]``, ...) limits the comparison with the solver's records to those.  ``skip`` names
    deliveries (step, receiver) not to carry out: the message is lost instead; the problems then say where
    the run stops being the one the solver found (another row fires, a message is not there)."""
    n = net.n
    messages = message_fields(net.spec)
    machines = {k: LiveMachine(net.spec, record=run.states[0][node(k)]) for k in range(n)}
    slots: dict[tuple[str, int, int], Sent] = {}
    actions: list[Action] = []
    sent: list[Sent] = []
    records = [{k: machines[k].record for k in range(n)}]
    problems: list[str] = []
    differences: list[str] = []
    for number, step in enumerate(run.steps, start=1):
        for part in (step, *step.followers):
            if part.component == NET:
                if part.trigger != "crash":
                    continue
                k = int(part.args["node"])
                before = machines[k].record
                machines[k] = LiveMachine(net.spec, record=restart_record(net, before))
                actions.append(Action(number, k, "crash", "crash", {}, before=before, after=machines[k].record))
                continue
            k = int(part.component.removeprefix("node"))
            args = {a: v for a, v in part.args.items() if a != DUPLICATED}
            action = Action(number, k, "local", part.trigger, args, before=machines[k].record)
            if (number, k) in skip:
                continue
            if part.trigger in messages:
                message = slots.get((part.trigger, int(args["src"]), k))
                if message is None:
                    problems.append(f"step {number}: node {k} handles {part.trigger} from {args['src']}, which is "
                                    "not in flight")
                    continue
                action.kind, action.message = "deliver", message
                action.args = {"src": message.src, **message.args}
                if message.delivered is None:
                    message.delivered = number
                if not part.args.get(DUPLICATED):
                    del slots[(part.trigger, message.src, k)]
            action.row = _live_row(net, machines[k].record, part.trigger, action.args)
            if action.row != part.row:
                problems.append(f"step {number}: node {k} fires row {action.row} for {part.trigger}, the run row "
                                f"{part.row}")
            action.effects = machines[k].step(part.trigger, **action.args)
            action.after = machines[k].record
            for eff in action.effects:
                if eff.kind != "send":
                    continue
                values = dict(eff.args)
                to = values.pop("to")
                for d in range(n):
                    if d != k and to in (d, -1):
                        message = Sent(eff.name, k, d, values, number)
                        slots[(eff.name, k, d)] = message  # overwrites (loses) one not delivered yet
                        sent.append(message)
                        action.sent.append(message)
            actions.append(action)
        records.append({k: machines[k].record for k in range(n)})
        differences += _compare(number, records[-1], run.states[number], relevant)
    return Replay(actions, sent, records, problems, differences)


def _live_row(net: NetworkModel, rec: Record, trigger: str, args: Mapping[str, Any]) -> int | None:
    """The row the live machine fires (the first whose guard holds, in table order), None if it ignores the event."""
    event = net.spec.event_args(trigger, args)
    for row in net.spec.rows(rec.state, trigger):
        if row.guard is None or row.guard(rec, event):
            return net.spec.transitions.index(row)
    return None


def _compare(number: int, live: Mapping[int, Record], solver: Mapping[str, Record],
             relevant: Collection[str] | None) -> list[str]:
    out = []
    for k, rec in live.items():
        expected = solver[node(k)].values()
        diff = []
        for f, v in rec.values().items():
            items = list(enumerate(v)) if isinstance(v, tuple) else [(None, v)]
            for i, item in items:
                name = f"{node(k)}.{f}" + ("" if i is None else f"[{i}]")
                other = expected[f] if i is None else expected[f][i]
                if item != other and (relevant is None or name in relevant):
                    diff.append(f"{name} = {item} (the solver: {other})")
        if diff:
            out.append(f"step {number}: " + ", ".join(diff))
    return out


def with_live_records(run: Run, replay: Replay) -> Run:
    """``run`` with every node's records as the live machines computed them (fields the solver did not search
    keep their initial values in its model)."""
    states = tuple({**state, **{node(k): rec for k, rec in replay.records[i].items()}}
                   for i, state in enumerate(run.states))
    delivered = {(a.step, node(a.node)): a.args for a in replay.actions if a.kind == "deliver"}

    def fixed(number: int, part: Step) -> Step:
        args = delivered.get((number, part.component))
        if args is None:
            return part
        extra = {DUPLICATED: 1} if part.args.get(DUPLICATED) else {}
        return Step(part.component, part.trigger, {**args, **extra}, part.row, part.followers)

    steps = tuple(Step(s.component, s.trigger, fixed(i, s).args, s.row, tuple(fixed(i, f) for f in s.followers))
                  for i, s in enumerate(run.steps, start=1))
    return dataclasses.replace(run, states=states, steps=steps)
