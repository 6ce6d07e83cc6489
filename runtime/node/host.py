"""The loop that runs one node's machines: feed an event, carry out the effects.

A :class:`MachineHost` holds one :class:`~wolfpack.machines.LiveMachine` per
machine of the node and carries out their effects by the conventions of
``docs/design/cluster-protocols.md``:

* ``send``: a message to the same machine on another node (``to`` = a node
  id, or -1 for every other configured node);
* ``start_timer`` / ``cancel_timer``: the event of the timer's name after
  ``ms`` milliseconds, unless cancelled or restarted first;
* ``report``: turned by the node's wiring into events of its other machines,
  handled before the next effect of the step that made it (run to completion);
* anything else (``command``, ``call``, ``persist``): handed to the node.

How a message travels, how time passes and what a command does is the
subclass's business: the simulator (:class:`wolfpack.runtime.sim.cluster.SimNode`,
a virtual clock and network) and the daemon (real timers and TCP) differ only
there.  Every step, and every event a machine rejected, is handed to
:meth:`MachineHost.log_step` as one record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wolfpack.errors import InvalidEvent, WolfpackError
from wolfpack.machines import LiveMachine
from wolfpack.spec.core import Emitted

#: (machine, event, arguments) to feed on the node
Routed = list[tuple[str, str, dict[str, Any]]]
TimerKey = tuple[str, str]  # (machine, timer name)


class ApplyFailed(WolfpackError):
    """A ``command`` could not be carried out: the host skips the step's later effects (and the events that
    carrying it out fed) and feeds ``event(**args)`` to the same machine, or to ``machine`` (GUM's
    ``apply_error``: "the runtime could not apply update seq")."""

    def __init__(self, event: str, args: Mapping[str, Any], why: str, machine: str | None = None) -> None:
        super().__init__(why)
        self.event = event
        self.event_args = dict(args)  # not ``args``: that is the exception's own
        self.machine = machine  # the machine that hears ``event``: the one whose effect failed unless named


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
    #
    # Run to completion, without recursion: the work of a node is a deque of events and effects.  A step's
    # effects, and the events that carrying one out feeds (a report's events, a command's events), go to the
    # front of the deque in order, so everything a step causes is done before the next event from outside: the
    # order is that of nested calls.  Kept as data, the remaining work can wait while the node does I/O that
    # the machines must see as done at once (:meth:`suspend`, the daemon's database transfer of a join).

    _work: deque[_Work]
    _new: list[_Work]
    _draining: bool = False
    _suspended: bool = False
    _steps: int = 0
    _carrying: _Effect | None = None  # the effect in hand (the one a suspended node waits on)

    def _ensure_queues(self) -> None:
        if not hasattr(self, "_work"):
            self._work = deque()
            self._new = []

    def feed(self, machine: str, trigger: str, **args: Any) -> None:
        """Give one event to one machine and carry out what it asks (now, or after the work in hand)."""
        if not self.running():
            return
        self._ensure_queues()
        if self._suspended and not self._draining:  # from outside, while the rest of a step waits: after it
            self._work.append(_Event(machine, trigger, args))
            return
        self._new.append(_Event(machine, trigger, args))
        if not self._draining:
            self._drain()

    @property
    def suspended(self) -> bool:
        """Waiting for I/O the machines must see as done at once: take no new events until :meth:`resume`."""
        return self._suspended

    def suspend(self) -> None:
        """Stop after the item in hand; the rest of the node's work waits for :meth:`resume`."""
        self._suspended = True

    def resume(self, first: Callable[[], None] | None = None) -> None:
        """Go on with the waiting work; ``first`` runs before it (its events are handled before the rest)."""
        self._ensure_queues()
        self._suspended = False
        held, self._new = self._new, []  # what the item in hand fed before it suspended: after ``first``'s
        self._draining = True
        try:
            if first is not None:
                first()
        finally:
            self._draining = False
            self._new += held
        self._drain()

    def _drain(self) -> None:
        self._draining = True
        try:
            self._flush()
            while self._work and not self._suspended:
                item = self._work.popleft()
                if isinstance(item, _Event):
                    self._step(item)
                else:
                    self._effect(item)
                if not self._suspended:  # else what the item fed waits with it (see resume, resume_failed)
                    self._flush()
        finally:
            self._draining = False

    def _flush(self) -> None:
        if self._new:
            self._work.extendleft(reversed(self._new))
            self._new = []

    def _step(self, item: _Event) -> None:
        if not self.running():
            return
        live = self.machines[item.machine]
        try:
            effects = live.step(item.trigger, **item.args)
        except InvalidEvent as exc:
            self.log_step(item.machine, {"trigger": item.trigger, "args": item.args, "rejected": str(exc)})
            return
        step = live.last
        assert step is not None
        self.log_step(item.machine, {"trigger": item.trigger, "args": dict(item.args), "source": step.source,
                                     "dest": step.dest, "outcome": step.outcome,
                                     "effects": [e.as_dict() for e in effects]})
        self._steps += 1
        self._new.extend(_Effect(item.machine, item.trigger, effect, self._steps) for effect in effects)

    def resume_failed(self, failed: ApplyFailed) -> None:
        """The I/O this node suspended for failed: as if the effect it was carrying out had raised ``failed``
        (the rest of that step is skipped, ``failed.event`` goes to its machine), then go on."""
        carrying = self._carrying
        self._new = []  # what it fed before it suspended is dropped with the rest of its step
        self.resume(first=None if carrying is None else lambda: self._fail(carrying, failed))

    def _effect(self, item: _Effect) -> None:
        if not self.running():
            return
        self._carrying = item
        try:
            self.carry_out(item.machine, item.effect)
        except ApplyFailed as failed:  # the step's later effects are skipped (GUM's apply_error)
            self._fail(item, failed)

    def _fail(self, item: _Effect, failed: ApplyFailed) -> None:
        self._new = []
        while self._work and isinstance(self._work[0], _Effect) and self._work[0].step == item.step:
            self._work.popleft()
        self.log_step(item.machine, {"trigger": item.trigger, "failed": item.effect.as_dict(), "why": str(failed)})
        self._new.append(_Event(failed.machine or item.machine, failed.event, failed.event_args))

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


@dataclass(frozen=True)
class _Event:
    machine: str
    trigger: str
    args: dict[str, Any]


@dataclass(frozen=True)
class _Effect:
    machine: str
    trigger: str  # the event whose step emitted it
    effect: Emitted
    step: int


_Work = _Event | _Effect
