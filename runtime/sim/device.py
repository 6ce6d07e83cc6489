"""A simulated quorum disk: the reservation device of the simulator.

The rules (who gets the reservation, what a reset breaks, what a failed
device answers) are the reservation spec's (:mod:`wolfpack.spec.reservation`),
run through a :class:`~wolfpack.machines.LiveMachine`; this module only adds
*when* things happen, on the virtual clock, and the faults:

* every command reaches the device ``latency_ms`` after it was sent, and the
  commands of one node run in the order it sent them;
* ``stall(delay_ms)`` (the whole device) or ``stall(delay_ms, node=k)`` (the
  path from node ``k``): each command sent from then on runs, and is
  answered, ``delay_ms`` later (a hung target or path), until ``resume``;
* ``crash()``: the device is gone, every RESERVE fails (the spec's
  ``Failed`` state); ``repair()`` brings it back, free.

A RESERVE is queued and served at once when it reaches the device (the
spec's ``reserve`` then ``serve``); the device's answers (``reserve_ok``,
``reserve_conflict``, ``reserve_failed``) go to the ``answer`` callback as
(node, event name), at the instant the command ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.runtime.sim.clock import VirtualClock
from wolfpack.spec.core import Emitted
from wolfpack.spec.reservation import make_reservation_spec

Answer = Callable[[int, str], None]  # (node, event of its arbitration machine)
Trace = Callable[[dict[str, Any]], None]

#: Commands the device understands from a node (events of the reservation spec with a node argument).
COMMANDS = ("reserve", "release", "reset")


class SimReservationDevice:
    """One quorum disk shared by ``nodes`` simulated nodes."""

    def __init__(self, clock: VirtualClock, nodes: int, answer: Answer, *, latency_ms: int = 1,
                 trace: Trace | None = None) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        self.clock = clock
        self.nodes = nodes
        self.machine = LiveMachine(make_reservation_spec(nodes))
        self.latency_ms = latency_ms
        self._answer = answer
        self._trace = trace
        self._stall_all = 0
        self._stall_path: dict[int, int] = {}
        self._last_run = [clock.now] * nodes  # per node: when its latest command runs (order of one initiator)

    # -- state ----------------------------------------------------------------------------------
    @property
    def holder(self) -> int:
        """The node holding the reservation, or -1."""
        holder: int = self.machine.record.holder
        return holder

    @property
    def failed(self) -> bool:
        return self.machine.state == "Failed"

    @property
    def settles_at(self) -> int:
        """When the last command sent so far runs: a command a stall held runs late even after :meth:`resume`,
        and the commands its node sent after it wait for it (one initiator's order)."""
        return max(self._last_run)

    # -- faults ------------------------------------------------------------------------------------
    def stall(self, delay_ms: int, node: int | None = None) -> None:
        """Hold every command sent from now on (from ``node``, or from everyone) for ``delay_ms``."""
        if delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
        if node is None:
            self._stall_all = delay_ms
        else:
            self._check_node(node)
            self._stall_path[node] = delay_ms
        self._note({"fault": "stall", "node": node, "delay_ms": delay_ms})

    def resume(self, node: int | None = None) -> None:
        """End a stall (of ``node``'s path, or of the whole device and every path)."""
        if node is None:
            self._stall_all = 0
            self._stall_path.clear()
        else:
            self._stall_path.pop(node, None)
        self._note({"fault": "resume", "node": node})

    def crash(self) -> None:
        self._step("crash")

    def repair(self) -> None:
        self._step("repair")

    # -- commands --------------------------------------------------------------------------------
    def carry_out(self, node: int, effect: Emitted) -> None:
        """Carry out a ``command`` effect of ``node``'s arbitration machine."""
        if effect.kind != "command":
            raise ValueError(f"the device carries out command effects, not {effect.kind}:{effect.name}")
        self.command(node, effect.name, effect.args)

    def command(self, node: int, name: str, args: Mapping[str, Any] | None = None) -> None:
        """``node`` sends ``name`` (reserve, release or reset); it runs after the latency and any stall."""
        self._check_node(node)
        if name not in COMMANDS:
            raise ValueError(f"unknown device command {name!r}; the device understands {', '.join(COMMANDS)}")
        sender = (args or {}).get("node", node)
        if sender != node:
            raise ValueError(f"node {node} sent a {name} on behalf of node {sender}")
        delay = self.latency_ms + max(self._stall_all, self._stall_path.get(node, 0))
        at = max(self.clock.now + delay, self._last_run[node])
        self._last_run[node] = at
        self.clock.call_at(at, lambda: self._run(node, name), f"device {name} from node {node}")

    def _run(self, node: int, name: str) -> None:
        if name == "reserve":
            self._step("reserve", node=node)
            self._step("serve", node=node)
        else:
            self._step(name, node=node)

    def _step(self, trigger: str, **args: int) -> None:
        effects = self.machine.step(trigger, **args)
        self._note({"device": trigger, **args, "holder": self.holder, "state": self.machine.state})
        for eff in effects:
            if eff.kind == "report":
                self._answer(int(eff.args["node"]), eff.name)

    def _check_node(self, node: int) -> None:
        if not 0 <= node < self.nodes:
            raise ValueError(f"node must be in 0..{self.nodes - 1}, got {node}")

    def _note(self, entry: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace({"t": self.clock.now, **entry})
