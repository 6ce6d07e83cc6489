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


@dataclass
class Message:
    machine: str
    name: str
    args: Mapping[str, Any]
    payload: Any = None  # data that rides beside the machine's fields (e.g. a global update's content)


SendHook = Callable[["SimNode", Message], Message]
ReceiveHook = Callable[["SimNode", int, Message], None]


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

    def running(self) -> bool:
        return self.up

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
        if key in self.timers:
            self.timers[key].cancel()
        self.timers[key] = self.cluster.clock.call_later(
            ms, lambda: self._fire(key), f"timer {self.node_id}/{key[0]}/{key[1]}")

    def cancel_timer(self, key: TimerKey) -> None:
        handle = self.timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def route(self, machine: str, report: Emitted) -> Routed:
        return self.cluster.wiring(self, machine, report)

    def command(self, machine: str, effect: Emitted) -> None:
        self.commands.append((self.cluster.clock.now, machine, effect))
        self.cluster.on_command(self, machine, effect)

    def _fire(self, key: TimerKey) -> None:
        self.timers.pop(key, None)
        self.feed(key[0], key[1])

    def receive(self, src: int, message: Message) -> None:
        if not self.up:
            return
        if self.receive_hook is not None:
            self.receive_hook(self, src, message)
        self.feed(message.machine, message.name, src=src, **message.args)

    def crash(self) -> None:
        """The node stops dead: no more events, timers or messages."""
        self.up = False
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        self.cluster.network.crash(self.node_id)


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
