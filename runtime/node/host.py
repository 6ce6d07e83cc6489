"""The loop that runs one node's machines: feed an event, carry out the effects.

A :class:`MachineHost` holds one :class:`~wolfpack.machines.LiveMachine` per
machine of the node and carries out their effects by the conventions of
``docs/design/cluster-protocols.md``:

* ``send``: a message to the same machine on another node (``to`` = a node
  id, or -1 for every other configured node);
* ``start_timer`` / ``cancel_timer``: the event of the timer's name after
  ``ms`` milliseconds, unless cancelled or restarted first;
* ``report``: turned by the node's wiring into events of its other machines,
  fed at once (run to completion: a report's events are handled before the
  next effect of the step that made it);
* anything else (``command``, ``call``, ``persist``): handed to the node.

How a message travels, how time passes and what a command does is the
subclass's business: the simulator (:class:`wolfpack.runtime.sim.cluster.SimNode`,
a virtual clock and network) and the daemon (real timers and TCP) differ only
there.  Every step, and every event a machine rejected, is handed to
:meth:`MachineHost.log_step` as one record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wolfpack.errors import InvalidEvent, WolfpackError
from wolfpack.machines import LiveMachine
from wolfpack.spec.core import Emitted

#: (machine, event, arguments) to feed on the node
Routed = list[tuple[str, str, dict[str, Any]]]
TimerKey = tuple[str, str]  # (machine, timer name)


class ApplyFailed(WolfpackError):
    """A ``command`` could not be carried out: the host skips the step's later effects and feeds
    ``event(**args)`` to the same machine (GUM's ``apply_error``: "the runtime could not apply update seq")."""

    def __init__(self, event: str, args: Mapping[str, Any], why: str) -> None:
        super().__init__(why)
        self.event = event
        self.args = dict(args)


class MachineHost:
    """One node's machines and the carrying out of their effects.  Subclasses supply the I/O."""

    node_id: int
    machines: dict[str, LiveMachine]

    # -- what a subclass supplies --------------------------------------------------------
    def running(self) -> bool:
        """Whether the node takes events at all (a crashed or stopped node does not)."""
        return True

    def log_step(self, machine: str, record: dict[str, Any]) -> None:
        """One step (``trigger``, ``args``, ``source``, ``dest``, ``outcome``, ``effects``) or one rejection
        (``trigger``, ``args``, ``rejected``)."""

    def send(self, machine: str, name: str, to: int, args: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def start_timer(self, key: TimerKey, ms: int) -> None:
        raise NotImplementedError

    def cancel_timer(self, key: TimerKey) -> None:
        raise NotImplementedError

    def route(self, machine: str, report: Emitted) -> Routed:
        """The events a machine's report becomes on this node."""
        return []

    def command(self, machine: str, effect: Emitted) -> None:
        """An effect that is not a message, a timer or a report."""

    # -- the loop ---------------------------------------------------------------------------
    def feed(self, machine: str, trigger: str, **args: Any) -> None:
        """Give one event to one machine and carry out what it asks."""
        if not self.running():
            return
        live = self.machines[machine]
        try:
            effects = live.step(trigger, **args)
        except InvalidEvent as exc:
            self.log_step(machine, {"trigger": trigger, "args": args, "rejected": str(exc)})
            return
        step = live.last
        assert step is not None
        self.log_step(machine, {"trigger": trigger, "args": dict(args), "source": step.source, "dest": step.dest,
                                "outcome": step.outcome, "effects": [e.as_dict() for e in effects]})
        for effect in effects:
            try:
                self.carry_out(machine, effect)
            except ApplyFailed as failed:  # the step's later effects are skipped (GUM's apply_error)
                self.log_step(machine, {"trigger": trigger, "failed": effect.as_dict(), "why": str(failed)})
                self.feed(machine, failed.event, **failed.args)
                return

    def carry_out(self, machine: str, effect: Emitted) -> None:
        if effect.kind == "send":
            args = dict(effect.args)
            to = int(args.pop("to"))
            self.send(machine, effect.name, to, args)
        elif effect.kind == "start_timer":
            self.start_timer((machine, effect.name), int(effect.args["ms"]))
        elif effect.kind == "cancel_timer":
            self.cancel_timer((machine, effect.name))
        elif effect.kind == "report":
            for target, trigger, targs in self.route(machine, effect):
                self.feed(target, trigger, **targs)
        else:
            self.command(machine, effect)
