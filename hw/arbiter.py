"""The arbiter shell: carries out an arbitration machine's effects against a :class:`~wolfpack.hw.device.Disk`.

The rules are the machines' (:mod:`wolfpack.spec.arbitration`, SCSI-2, and
:mod:`wolfpack.spec.pr_arbitration`, SCSI-3); this shell only translates, like
``runtime/sim/device.py`` does for the simulator:

* ``start_timer``/``cancel_timer`` go to an injectable :class:`Scheduler`
  (:class:`VirtualScheduler` on the simulator's virtual clock in tests,
  :class:`AsyncioScheduler` in the daemon);
* a ``command`` runs on the device through ``scheduler.run`` (a thread executor
  under asyncio: device calls block), one at a time per node, in order; its
  outcome comes back as the machine's event (``reserve_ok``, ``reserve_conflict``,
  ``reserve_failed``; ``registered``, ``keys(mine, rival)``, ``preempt_unsupported``,
  ``failed``...).  The answer of a command the machine stopped waiting for (a
  newer command was sent since) is dropped;
* ``report`` effects go to ``on_report`` (``won``, ``lost_quorum``, ``degraded``,
  ``fenced``...).  ``lost_quorum`` is the self-fencing signal: it comes at most
  :attr:`Arbiter.fencing_bound_ms` (T + jitter + 3D) after the reservation was
  taken, and the daemon must stop every resource when it comes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from wolfpack.errors import DeviceError
from wolfpack.hw.device import Disk
from wolfpack.hw.errors import IllegalRequest, ReservationConflict
from wolfpack.hw.scsi import INVALID_FIELD_IN_CDB
from wolfpack.hw.transport import ResetLevel
from wolfpack.machines import LiveMachine
from wolfpack.spec.core import Emitted

log = logging.getLogger(__name__)

Report = Callable[[str, dict[str, Any]], None]


def pr_key(cluster: str, node: int) -> int:
    """The node's 8-byte PR key, as fence_scsi: 4 bytes from the cluster name's MD5, then the node id + 1."""
    prefix = int.from_bytes(hashlib.md5(cluster.encode(), usedforsecurity=False).digest()[:4], "big")
    return (prefix << 32) | (node + 1)


def node_of_key(cluster: str, key: int) -> int | None:
    """The node a key of this cluster belongs to (None: another cluster's or a foreign key)."""
    if key >> 32 != pr_key(cluster, 0) >> 32 or not key & 0xFFFFFFFF:
        return None
    return (key & 0xFFFFFFFF) - 1


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def call_later(self, ms: int, action: Callable[[], None]) -> Handle: ...

    def run(self, call: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None: ...


class VirtualScheduler:
    """On the simulator's :class:`~wolfpack.runtime.sim.clock.VirtualClock`: a device call runs at once and its
    answer arrives ``latency_ms`` later (``stall`` adds to it: a hung path)."""

    def __init__(self, clock: Any, latency_ms: int = 1) -> None:
        self.clock, self.latency_ms, self.stall_ms = clock, latency_ms, 0

    def call_later(self, ms: int, action: Callable[[], None]) -> Handle:
        handle: Handle = self.clock.call_later(ms, action)
        return handle

    def run(self, call: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        delay = self.latency_ms + self.stall_ms

        def later() -> None:
            try:
                result = call()
            except Exception as error:  # handed to the arbiter as the command's outcome
                failure = error
                self.clock.call_later(0, lambda: done(None, failure))
                return
            self.clock.call_later(0, lambda: done(result, None))

        self.clock.call_later(delay, later)


class AsyncioScheduler:
    """Under asyncio: timers are ``loop.call_later``; device calls run in one worker thread (in order)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk")

    def call_later(self, ms: int, action: Callable[[], None]) -> Handle:
        return self.loop.call_later(ms / 1000, action)

    def run(self, call: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        future = self.loop.run_in_executor(self.executor, call)
        future.add_done_callback(lambda f: done(None, f.exception()) if f.exception() else done(f.result(), None))


class DiskCommands:
    """Runs an arbitration machine's ``command`` effects on a :class:`Disk`, one at a time and in order, and gives
    each outcome back as the machine's event through ``answer``; the answer of a command the machine stopped
    waiting for (a newer command was sent since, or :meth:`forget` was called) is dropped.  Used by
    :class:`Arbiter` and by the daemon, whose node runs the machine itself."""

    def __init__(self, disk: Disk, scheduler: Scheduler, answer: Report, *, me: int, scsi3: bool,
                 cluster: str = "wolfpack") -> None:
        self.disk, self.scheduler, self.answer = disk, scheduler, answer
        self.me, self.scsi3, self.cluster = me, scsi3, cluster
        self.key = pr_key(cluster, me)
        self.sent = 0  # number of the newest command; older answers are dropped

    def send(self, name: str, args: dict[str, Any]) -> None:
        self.sent += 1
        number = self.sent
        self.scheduler.run(lambda: self.execute(name, args),
                           lambda result, error: self._answered(number, result, error, name))

    def forget(self) -> None:
        """Answers of the commands in flight are not wanted any more (the node died or its machine was rebuilt)."""
        self.sent += 1

    def _answered(self, number: int, answer: tuple[str, dict[str, Any]] | None, error: BaseException | None,
                  name: str) -> None:
        if error is not None:  # a bug in the shell, never a device answer: fail safe
            log.error("node %d: %s raised %r; treated as a failed command", self.me, name, error)
            answer = ("failed", {}) if self.scsi3 else ("reserve_failed", {})
        if answer is None or number != self.sent:
            return
        self.answer(answer[0], answer[1])

    def execute(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Run one command on the disk (in the worker); the machine's event for its outcome."""
        disk, scsi3 = self.disk, self.scsi3
        try:
            if name == "reset":
                disk.reset(ResetLevel.LUN)
                return None
            if name == "release":
                disk.register_ignore(0) if scsi3 else disk.release6()
                return None
            if not scsi3 and name == "reserve":
                disk.reserve6()
                return ("reserve_ok", {})
            return self._scsi3(name, args)
        except ReservationConflict:
            if name == "reserve":
                return ("reserve_conflict", {})
            if name == "preempt":
                return ("preempt_conflict", {})
            return ("failed", {})
        except IllegalRequest as error:
            if name == "preempt" and args.get("abort") and error.additional == INVALID_FIELD_IN_CDB:
                return ("preempt_unsupported", {})
            log.warning("node %d: %s", self.me, error)
            return ("failed", {})
        except DeviceError as error:
            log.warning("node %d: %s", self.me, error)
            if name in ("reset", "release"):
                return None
            return ("failed", {}) if scsi3 else ("reserve_failed", {})

    def _scsi3(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        disk, key = self.disk, self.key
        if name == "register":
            disk.register_ignore(key)
            return ("registered", {})
        if name == "reserve":
            disk.reserve(key)
            return ("reserve_ok", {})
        if name == "read_reservation":
            holder = disk.read_reservation().key
            node = -1 if holder is None else node_of_key(self.cluster, holder)
            return ("reservation", {"holder": -1 if node is None else node})
        if name == "read_keys":
            keys = disk.read_keys().keys
            others = sorted(n for n in (node_of_key(self.cluster, k) for k in keys if k != key)
                            if n is not None and n != self.me)
            return ("keys", {"mine": int(key in keys), "rival": others[0] if others else -1})
        if name == "preempt":
            disk.preempt(key, pr_key(self.cluster, int(args["victim"])), abort=bool(args["abort"]))
            return ("preempt_ok", {})
        raise ValueError(f"the arbiter does not know the command {name!r}")


class Arbiter:
    """One node's arbitration: ``machine`` (a SCSI-2 or SCSI-3 arbitration machine) driving ``disk``."""

    def __init__(self, machine: LiveMachine, disk: Disk, scheduler: Scheduler, *, cluster: str = "wolfpack",
                 on_report: Report | None = None, jitter_ms: int = 0) -> None:
        self.machine, self.disk, self.scheduler, self.cluster = machine, disk, scheduler, cluster
        self.on_report = on_report or (lambda name, args: None)
        self.timers: dict[str, Handle] = {}
        rec = machine.record
        self.me: int = rec.me
        self.commands = DiskCommands(disk, scheduler, lambda event, args: self.feed(event, **args), me=self.me,
                                     scsi3=machine.spec.name == "pr_arbitration", cluster=cluster)
        self.key = self.commands.key
        self.fencing_bound_ms = rec.renew_period_ms + jitter_ms + 3 * rec.reserve_timeout_ms
        self.degraded = False

    def feed(self, event: str, **args: Any) -> None:
        for effect in self.machine.step(event, **args):
            self._carry_out(effect)

    def crash(self) -> None:
        """The node dies (tests, benchmarks): its machine forgets everything, none of its timers fires, and
        answers of its commands still in flight are ignored; what it did to the disk stays."""
        self.feed("crash")
        for name in list(self.timers):
            self._cancel(name)
        self.commands.forget()

    def _carry_out(self, effect: Emitted) -> None:
        if effect.kind == "start_timer":
            self._cancel(effect.name)
            name = effect.name
            self.timers[name] = self.scheduler.call_later(int(effect.args["ms"]), lambda: self._fire(name))
        elif effect.kind == "cancel_timer":
            self._cancel(effect.name)
        elif effect.kind == "command":
            self.commands.send(effect.name, dict(effect.args))
        elif effect.kind == "report":
            if effect.name == "degraded":
                self.degraded = True
            log.log(logging.WARNING if effect.name in ("lost_quorum", "degraded") else logging.INFO,
                    "node %d arbitration on %s: %s", self.me, self.disk.name, effect.name)
            self.on_report(effect.name, dict(effect.args))

    def _cancel(self, name: str) -> None:
        handle = self.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self.feed(name)
