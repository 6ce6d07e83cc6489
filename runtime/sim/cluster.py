"""Nodes of live machines wired to the simulated clock and network.

A :class:`SimNode` holds one :class:`~wolfpack.machines.LiveMachine` per
protocol machine and carries out their effects by the conventions of
``docs/design/cluster-protocols.md``:

* ``send``: a message to the same machine on another node (``to`` = a node
  id, or -1 for every other configured node), arriving as the event of the
  message's name with ``src`` added;
* ``start_timer`` / ``cancel_timer``: the event of the timer's name after
  ``ms`` virtual milliseconds, unless cancelled or restarted first;
* ``report``: handed to the node's wiring (a function the cluster is built
  with) that turns it into events of the node's other machines;
* ``command``: recorded for the caller (devices, resources) to act on.

A node can be *stalled* (:meth:`SimNode.stall`, the daemon stopped by
SIGSTOP, a VM pause, a swap storm): it handles nothing, and what would reach
it (its timers coming due, messages, reports, answers) waits in its backlog,
in order, as in the daemon's queue, until :meth:`SimNode.wake`.

Every step is appended to the trace as one record (time, node, machine,
trigger, source, destination, effects), so a run can be printed as a
timeline or saved as NDJSON, and two runs with one seed compare equal.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.runtime.node.host import MachineHost, Routed, TimerKey
from wolfpack.runtime.sim.clock import Handle, VirtualClock
from wolfpack.runtime.sim.network import LinkPolicy, SimNetwork
from wolfpack.spec.core import Emitted
from wolfpack.spec.wiring import route

#: (node, machine name, report) -> list of (machine, trigger, args) to feed on that node
Wiring = Callable[["SimNode", str, Emitted], Routed]


def no_wiring(node: SimNode, machine: str, report: Emitted) -> Routed:
    return []


def spec_wiring(node: SimNode, machine: str, report: Emitted) -> Routed:
    """The wiring of ``wolfpack.spec.wiring`` among the machines the node has."""
    return route(machine, report.name, report.args, set(node.machines))


#: the heartbeat machine's period timer
HEARTBEAT_TICK: TimerKey = ("heartbeat", "tick")


@dataclass
class Message:
    machine: str
    name: str
    args: Mapping[str, Any]
    payload: Any = None  # data that rides beside the machine's fields (e.g. a global update's content)


SendHook = Callable[["SimNode", Message], Message]
ReceiveHook = Callable[["SimNode", int, Message], None]
CrashHook = Callable[["SimNode"], None]


@dataclass
class SimNode(MachineHost):
    node_id: int
    cluster: SimCluster
    machines: dict[str, LiveMachine]
    timers: dict[TimerKey, Handle] = field(default_factory=dict)
    commands: list[tuple[int, str, Emitted]] = field(default_factory=list)
    up: bool = True
    send_hook: SendHook | None = None
    receive_hook: ReceiveHook | None = None
    crash_hook: CrashHook | None = None
    #: stalled: what would reach the node waits here, in order, until it wakes
    stalled: bool = False
    backlog: list[Callable[[], None]] = field(default_factory=list)
    #: where in each period this node's heartbeat ticks fall (ms after a multiple of the period), as each
    #: daemon's C timer thread runs on its own start time; None: on the timer's own schedule
    tick_phase_ms: int | None = None

    def running(self) -> bool:
        return self.up

    def feed(self, machine: str, trigger: str, **args: Any) -> None:
        if self.stalled and self.up:
            self.backlog.append(lambda: MachineHost.feed(self, machine, trigger, **args))
            return
        super().feed(machine, trigger, **args)

    def post(self, action: Callable[[], None]) -> None:
        """Do ``action`` in the node's loop: now, or after the backlog if the node is stalled."""
        if self.stalled:
            self.backlog.append(action)
        else:
            action()

    def stall(self) -> None:
        self.stalled = True

    def wake(self, first: Callable[[], None] | None = None) -> None:
        """Handle the backlog, in order, after ``first`` (the daemon's look at its clock)."""
        self.stalled = False
        if first is not None:
            first()
        backlog, self.backlog = self.backlog, []
        for action in backlog:
            action()

    def log_step(self, machine: str, record: dict[str, Any]) -> None:
        self.cluster.log(self, machine, record)

    def send(self, machine: str, name: str, to: int, args: Mapping[str, Any]) -> None:
        targets = [n for n in self.cluster.node_ids if n != self.node_id] if to == -1 else [to]
        message = Message(machine, name, args)
        if self.send_hook is not None:
            message = self.send_hook(self, message)
        for dst in targets:
            self.cluster.network.send(self.node_id, dst, message)

    def start_timer(self, key: TimerKey, ms: int) -> None:
        if key == HEARTBEAT_TICK and self.tick_phase_ms is not None and ms > 0:
            ms += (self.tick_phase_ms - (self.cluster.clock.now + ms)) % ms
        if key in self.timers:
            self.timers[key].cancel()
        handle = self.cluster.clock.call_later(
            ms, lambda: self._fire(key, handle), f"timer {self.node_id}/{key[0]}/{key[1]}")
        self.timers[key] = handle

    def cancel_timer(self, key: TimerKey) -> None:
        handle = self.timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def route(self, machine: str, report: Emitted) -> Routed:
        return self.cluster.wiring(self, machine, report)

    def command(self, machine: str, effect: Emitted) -> None:
        self.commands.append((self.cluster.clock.now, machine, effect))
        self.cluster.on_command(self, machine, effect)

    def _fire(self, key: TimerKey, handle: Handle) -> None:
        if self.timers.get(key) is not handle:
            return  # cancelled or restarted while it waited in a stalled node's backlog (the daemon's generation)
        if self.stalled:
            self.backlog.append(lambda: self._fire(key, handle))
            return
        del self.timers[key]
        self.feed(key[0], key[1])

    def receive(self, src: int, message: Message) -> None:
        if not self.up:
            return
        if self.stalled:
            self.backlog.append(lambda: self.receive(src, message))
            return
        if self.receive_hook is not None:
            self.receive_hook(self, src, message)
        self.feed(message.machine, message.name, src=src, **message.args)

    def crash(self) -> None:
        """The node stops dead: no more events, timers or messages."""
        self.up = False
        self.stalled = False
        self.backlog.clear()
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        self.cluster.network.crash(self.node_id)
        if self.crash_hook is not None:
            self.crash_hook(self)


class SimCluster:
    """Nodes, a virtual clock, a network and one RNG: a reproducible world."""

    def __init__(
        self,
        machines_for: Callable[[int], dict[str, LiveMachine]],
        nodes: int,
        seed: int = 0,
        wiring: Wiring = no_wiring,
        policy: LinkPolicy | None = None,
        on_command: Callable[[SimNode, str, Emitted], None] | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.rng = random.Random(seed)
        self.trace: list[dict[str, Any]] = []
        self.step_hooks: list[Callable[[SimNode, str, dict[str, Any]], None]] = []
        self.network = SimNetwork(self.clock, self.rng, self._deliver, policy, trace=self._net_trace)
        self.wiring = wiring
        self.on_command = on_command or (lambda node, machine, effect: None)
        self.node_ids = list(range(nodes))
        self.nodes = {i: SimNode(i, self, machines_for(i)) for i in self.node_ids}

    def _deliver(self, dst: int, src: int, payload: Any) -> None:
        self.nodes[dst].receive(src, payload)

    def _net_trace(self, record: dict[str, Any]) -> None:
        self.trace.append(record)

    def log(self, node: SimNode, machine: str, record: dict[str, Any]) -> None:
        entry = {"t": self.clock.now, "node": node.node_id, "machine": machine, **record}
        self.trace.append(entry)
        for hook in self.step_hooks:
            hook(node, machine, entry)

    def run_for(self, ms: int) -> None:
        self.clock.run_for(ms, max_actions=1_000_000)

    def ndjson(self) -> str:
        return "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in self.trace)
