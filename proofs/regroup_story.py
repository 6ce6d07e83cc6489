"""A counterexample of the message-level regroup, written as a simulator story.

The story language (``tests/scenarios/cluster/*.sim``, run by ``wolfpack
simulate``) has boots, crashes, restarts, partitions and heals at given
milliseconds; the simulator does the rest with its own clock, heartbeats and
1-3 ms links.  :func:`regroup_story` turns a run of
:mod:`wolfpack.proofs.regroup_model` into such a story:

1. the run has been carried out again by the live machines
   (:func:`~wolfpack.proofs.network_run.replay_network_run`), which gives every
   message's fate and the row each action fired;
2. each action gets the simulator's time: a timer fires when the simulator's
   timer would (the spec's own ``start_timer`` effect, with the simulator's
   parameter values), a message arrives 1 ms after it was sent, a heartbeat
   suspicion comes a detection time after the link to that node was cut, a
   boot or crash as soon as what came before it in the run is done;
3. a link is cut (``partition A|B``: two nodes, both ways) around every
   message the run loses, and healed before every one it delivers.  Links in
   the simulator are cut both ways: when the run loses a message one way and
   delivers one the other way at the same time, the delivery is dropped too
   if the live machines show the run does not need it (the same rows fire
   without it and the property is still broken), otherwise the link stays up;
4. ``boot``, ``crash`` and ``restart`` are the run's own (a planned
   ``shutdown`` becomes a crash: the language has no stop); one group per node
   (preferring it) makes a split brain visible, since the simulator stops a
   story as soon as a group runs on two nodes;
5. the last lines expect what the run ends in (the memberships of the Stable
   nodes, the halted nodes): the story *passes* when the simulator gets there.

What it cannot write is listed in the story's comments: the simulator's
timing is fixed (links of 1-3 ms, timers of the configured length, a
suspicion only after a detection time without heartbeats, parameters at
their defaults), so a run that delivers a message long after it was sent or
suspects a node whose link is up is not reproduced exactly; the simulator
may then take another path.  The tests run stories of seeded bugs in the
simulator and check the model's own properties on its records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from wolfpack.proofs.network import NetworkModel, node
from wolfpack.proofs.network_run import Action, Replay, Sent, replay_network_run
from wolfpack.proofs.trace import Run
from wolfpack.spec import defaults as d
from wolfpack.spec import membership
from wolfpack.spec.core import Record

#: the simulated world's links deliver after 1-3 ms (``World``'s default link policy)
LINK_MS = 1
LINK_MAX_MS = 3
#: a cut link is suspected after this many milliseconds (heartbeat period x missed beats, plus one period)
DETECT_MS = d.HEARTBEAT_PERIOD_MS * (d.HEARTBEAT_MISSED_THRESHOLD + 1)
#: how long after the run's last action the final expectations may take to hold
SETTLE_MS = 50
#: how long the story runs on after that, so that groups come online on what was installed
RUN_ON_MS = 2000
SEED = 1

#: is the property the run breaks still broken by these final records (a run changed by a dropped delivery)
StillBroken = Callable[[Mapping[int, Record]], bool]


@dataclass
class Timeline:
    """The simulator's time of each action, the story's commands, and what it could not reproduce."""

    at: dict[tuple[int, int], int] = field(default_factory=dict)  # (step, node) -> ms
    suspicions: list[tuple[frozenset[int], int, int]] = field(default_factory=list)  # link cut from, until
    commands: list[tuple[int, int, str]] = field(default_factory=list)  # (ms, order, command)
    deviations: list[str] = field(default_factory=list)

    def command(self, ms: int, text: str, order: int = 1) -> None:
        self.commands.append((max(ms, 0), order, text))

    def end(self) -> int:
        return max(self.at.values(), default=0)


def simulator_params(net: NetworkModel, rec: Record) -> Record:
    """``rec`` with the parameters the simulated world gives its nodes (the spec's defaults), for timer lengths."""
    keep = {"me", "kind", "configured"}
    return rec.replace(**{f.name: f.default for f in net.spec.params() if f.name not in keep})


def _timers(net: NetworkModel, action: Action) -> list[tuple[str, int | None]]:
    """The timers ``action`` arms (name, simulator ms) or cancels (name, None), from the spec's own effects."""
    if action.row is None or action.before is None or action.after is None:
        return []
    row = net.spec.transitions[action.row]
    before, after = simulator_params(net, action.before), simulator_params(net, action.after)
    args = net.spec.event_args(action.trigger, action.args)
    out: list[tuple[str, int | None]] = []
    for eff in row.effects:
        if eff.when is not None and not eff.when(action.before, args):
            continue
        if eff.kind == "start_timer":
            values = dict((eff.args(before, args, after) if eff.args else None) or {})
            out.append((eff.name, int(values["ms"])))
        elif eff.kind == "cancel_timer":
            out.append((eff.name, None))
    return out


def timeline(replay: Replay, net: NetworkModel) -> Timeline:
    """Give every action the simulator's time; write the boots and crashes; note the heartbeat suspicions."""
    tl = Timeline()
    last: dict[int, int] = {}  # each node's latest action
    before_step = 0  # when everything of the earlier steps is done
    armed: dict[tuple[int, str], int] = {}
    crashed: set[int] = set()
    cut_since: dict[frozenset[int], int] = {}
    steps = sorted({a.step for a in replay.actions})
    for step in steps:
        for a in (a for a in replay.actions if a.step == step):
            at = max(before_step, last.get(a.node, 0))
            if a.kind == "crash" or a.trigger == "shutdown":
                tl.command(at, f"crash {a.node}")
                if a.trigger == "shutdown":
                    tl.deviations.append(f"step {step}: node {a.node} stops on purpose (shutdown); the story crashes "
                                         "it (no exit message)")
                crashed.add(a.node)
                armed = {key: due for key, due in armed.items() if key[0] != a.node}
            elif a.trigger == "boot":
                tl.command(at, f"{'restart' if a.node in crashed else 'boot'} {a.node}", order=2)
            elif a.trigger == "suspect" and a.args["node"] == a.node:
                tl.deviations.append(f"step {step}: node {a.node} suspects itself; heartbeats never do")
            elif a.trigger == "suspect":
                pair = frozenset((a.node, int(a.args["node"])))
                since = cut_since.setdefault(pair, before_step)
                at = max(at, since + DETECT_MS)
                tl.suspicions.append((pair, since, at))
            elif a.trigger == "peer_ahead":
                tl.deviations.append(f"step {step}: node {a.node} hears node {a.args['node']} at a newer epoch "
                                     "(peer_ahead) whatever their epochs; the simulator's heartbeats carry the real "
                                     "one")
            elif a.trigger == "clock_gap":
                tl.deviations.append(f"step {step}: node {a.node} finds its clock jumped (clock_gap): the story "
                                     "does not stall nodes")
            elif a.trigger == "database_unavailable":
                tl.deviations.append(f"step {step}: node {a.node} cannot load its sponsor's database "
                                     "(database_unavailable); the simulator says so only when the sponsor is down")
            elif a.trigger == "peer_back":
                cut_since.pop(frozenset((a.node, int(a.args["node"]))), None)
                at += d.HEARTBEAT_PERIOD_MS
            elif a.message is not None:
                sent_at = tl.at[(a.message.step, a.message.src)]
                if at > sent_at + LINK_MAX_MS:
                    tl.deviations.append(f"step {step}: node {a.node} gets a {a.trigger} {at - sent_at} ms after it "
                                         f"was sent; the simulator's links take at most {LINK_MAX_MS} ms")
                at = max(at, sent_at + LINK_MS)
            elif (a.node, a.trigger) in armed:
                at = max(at, armed.pop((a.node, a.trigger)))
            tl.at[(step, a.node)] = last[a.node] = at
            for name, ms in _timers(net, a):
                if ms is None:
                    armed.pop((a.node, name), None)
                else:
                    armed[(a.node, name)] = at + ms
        before_step = max([before_step, *(t for (s, _), t in tl.at.items() if s == step)])
    return tl


# -- links --------------------------------------------------------------------------------------------------


def _ignored(net: NetworkModel, rec: Record, message: str) -> bool:
    rule = net.spec.ignore_rule(rec.state, message)
    return rule is not None and not rule.reject


def _msg(m: Sent) -> str:
    return f"{m.name} {m.src}->{m.dst}"


def _needs(replay: Replay, tl: Timeline, net: NetworkModel) -> dict[frozenset[int], list[tuple[int, bool, Sent]]]:
    """Per link, (send time, lost?, message) of every message whose fate matters to the story."""
    end = tl.end()
    out: dict[frozenset[int], list[tuple[int, bool, Sent]]] = {}
    for m in replay.sent:
        at = tl.at[(m.step, m.src)]
        lost = m.delivered is None
        if lost and (at + LINK_MAX_MS >= end or _ignored(net, replay.records[m.step][m.dst], m.name)):
            continue  # still in flight when the run ends, or its receiver would ignore it anyway
        out.setdefault(frozenset((m.src, m.dst)), []).append((at, lost, m))
    return out


def link_commands(run: Run, replay: Replay, tl: Timeline, net: NetworkModel, still_broken: StillBroken) -> None:
    """Cut each link while the run loses messages on it (or a suspicion needs it cut); heal it before a
    message the run delivers."""
    needs = _needs(replay, tl, net)
    dropped: set[tuple[int | None, int]] = set()  # deliveries (step, receiver) the story gives up
    for sends in needs.values():
        for at, lost, m in sends:
            clash = [x for t, x_lost, x in sends if lost and not x_lost and abs(t - at) <= LINK_MAX_MS
                     and (x.delivered, x.dst) not in dropped]
            if not clash:
                continue
            drop = dropped | {(x.delivered, x.dst) for x in clash}
            again = replay_network_run(run, net, skip={(s, k) for s, k in drop if s is not None})
            if not again.problems and still_broken(again.records[-1]):
                dropped = drop
                tl.deviations.append(f"the run loses {_msg(m)} but delivers {', '.join(sorted(map(_msg, clash)))} "
                                     "on the same link at once; links are cut both ways, and the run does without "
                                     "that delivery: the story cuts the link")
            else:
                tl.deviations.append(f"the run loses {_msg(m)} but needs {', '.join(sorted(map(_msg, clash)))} on "
                                     "the same link at once; links are cut both ways: the story keeps the link up")
    points: dict[frozenset[int], list[tuple[int, bool]]] = {}
    for pair, sends in needs.items():
        points[pair] = [(at, lost or (m.delivered, m.dst) in dropped) for at, lost, m in sends]
    for pair, since, until in tl.suspicions:
        points.setdefault(pair, []).extend((t, True) for t in range(since, until + 1, d.HEARTBEAT_PERIOD_MS))
    _emit(points, tl)


def _emit(points: dict[frozenset[int], list[tuple[int, bool]]], tl: Timeline) -> None:
    """Turn each link's wanted states into partition/heal commands (a delivery wins a tie)."""
    changes: dict[int, dict[frozenset[int], bool]] = {}
    for pair, wanted in points.items():
        cut = False
        for at, want in sorted(wanted, key=lambda p: (p[0], p[1])):
            if want and any(t == at and not w for t, w in wanted):
                continue
            if want != cut:
                cut = want
                changes.setdefault(at if want else at - 1, {})[pair] = want
    current: set[frozenset[int]] = set()
    for at in sorted(changes):
        healed = any(not want for want in changes[at].values())
        for pair, want in changes[at].items():
            (current.add if want else current.discard)(pair)
        if healed:
            tl.command(at, "heal", order=0)
        shown = current if healed else {p for p, w in changes[at].items() if w}
        for pair in sorted(shown, key=sorted):
            tl.command(at, "partition " + "|".join(str(k) for k in sorted(pair)), order=0)


# -- the story ------------------------------------------------------------------------------------------------


def expectations(records: Mapping[int, Record]) -> list[str]:
    """What the run ends in, in the story language: Stable nodes' memberships and halted nodes."""
    out = []
    seen: set[tuple[int, ...]] = set()

    def members(rec: Record) -> tuple[int, ...]:
        return tuple(j for j, m in enumerate(rec.members) if m)

    for k, rec in sorted(records.items()):
        if rec.state == membership.STABLE:
            group = members(rec)
            if group not in seen and all(records[j].state == membership.STABLE and members(records[j]) == group
                                         for j in group):
                seen.add(group)
                out.append("expect members " + ",".join(map(str, group)))
        elif rec.state == membership.HALTED:
            out.append(f"expect halted {k}")
    return out


def regroup_story(run: Run, replay: Replay, net: NetworkModel, title: str, still_broken: StillBroken) -> str:
    """The story of ``run`` (a counterexample of a regroup model, carried out by the live machines in ``replay``),
    as the text of a ``.sim`` file."""
    tl = timeline(replay, net)
    link_commands(run, replay, tl, net, still_broken)
    n = net.n
    lines = [f"# {title}", "#", "# Written by `wolfpack verify` from the model's run (each step: at most one action "
             "per node, in node order):"]
    for step, part in enumerate(run.steps, start=1):
        times = sorted({tl.at[(s, k)] for (s, k) in tl.at if s == step})
        when = "/".join(map(str, times)) if times else "-"
        lines.append(f"#   {step:>2}. at {when} ms: {part.describe(True)}")
    lines += ["#", "# The story passes when the simulator reaches the state the run ends in (its last lines); it "
              "stops", "# earlier if a group runs on two nodes (the simulator's own check)."]
    if replay.problems:
        lines += ["#", "# The live machines do not carry the run out as the solver did:"]
        lines += [f"#   {p}" for p in replay.problems]
    if tl.deviations:
        lines += ["#", "# What the story cannot reproduce exactly:"]
        lines += [f"#   {x}" for x in tl.deviations]
    lines += ["", f"nodes {n}", f"seed {SEED}"]
    if int(run.states[0][node(0)].kind) == int(membership.DISK):
        lines.append("quorum disk")
    for k in range(n):
        lines.append(f"group g{k}: r{k}; preferred " + " ".join(str((k + j) % n) for j in range(n)))
    lines.append("")
    last = 0
    for ms, _, text in sorted(tl.commands):
        lines.append(f"at {ms:<6} {text}")
        last = ms
    end = tl.end()
    for i, text in enumerate(expectations(replay.records[-1])):
        lines.append(f"within {max(end - last, 0) + SETTLE_MS if i == 0 else 0:<4} {text}")
    lines += [f"# run on for {RUN_ON_MS} ms: groups come online on the memberships the run installed",
              f"at {max(end, last) + RUN_ON_MS:<6} expect updates agree"]
    return "\n".join(lines) + "\n"
