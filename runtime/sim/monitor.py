"""The simulated resource monitor of one node: the resources' real processes and the lease it enforces.

The daemon's monitor (``runtime/monitor/process.py``) is a process apart from
the daemon: it keeps its resources' processes running whatever the daemon
does, and it terminates them by itself when the node's lease lapses, is
revoked or is ended.  This is that, on the virtual clock:

* :attr:`SimMonitor.running` is the set of resource machines whose
  processes run here: what "active on this node" means for the safety
  invariant (``World.violations``), rather than the resource machines' state;
* :meth:`SimMonitor.call` carries out a resource machine's ``call``: Online
  is refused at once without a fresh lease (``online_failed``, as
  ``_start_call`` refuses it), else its process starts when it completes,
  ``op_ms`` later; Offline stops it when it completes; Terminate stops it at
  once; a new call abandons the one in flight (``_abandon``);
* the lease: :meth:`renew` (the daemon's loop, every heartbeat period while a
  quorum vouches for the node), :meth:`revoke` (the heartbeat thread, when a
  newer membership leaves the node out), :meth:`end` (the node halted); when
  it ends while a resource may run (its process runs, or its Online is in
  flight), the monitor cancels the Online calls in flight, kills the
  processes ``kill_ms`` later (its poll and the kill) and tells the node's
  resource machines (``is_alive_failed``; ``online_failed`` for an Online
  that was in flight), through the node's queue, as ``_lapse`` and
  ``_lapsed`` do; it refuses Online until a renewal newer than the lapse;
* :attr:`frozen` (the monitor stopped with its daemon): nothing completes
  and nothing is killed until it thaws;
* :meth:`clear`: the daemon died; the real monitor sees its socket close,
  terminates everything and exits (R4): this one answers nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wolfpack.runtime.sim.clock import Handle, VirtualClock
from wolfpack.spec import defaults as d

#: the simulated monitor's delay from the end of a lease to the processes gone (its poll, then SIGKILL)
KILL_MS = d.LEASE_POLL_MS + 5

#: (resource machine, event): what the monitor tells the node's resource machines
Answer = Callable[[str, str], None]


@dataclass
class SimMonitor:
    node: int
    clock: VirtualClock
    #: gives one resource machine of the node one event (through the node's queue)
    answer: Answer
    kill_ms: int = KILL_MS
    running: set[str] = field(default_factory=set)
    #: resource machines whose Online is in flight (they may run: a lapse terminates them too)
    starting: set[str] = field(default_factory=set)
    expiry: int = 0  # the lease holds while now < expiry
    revoked: int = 0  # non-zero: revoked by a membership of this epoch
    generation: int = 0  # counts the daemon's writes of the lease
    lapsed_generation: int | None = None  # the lease that lapsed last: Online waits for a newer one
    frozen: bool = False
    gone: bool = False  # the daemon died, and the monitor with it
    #: every lapse: (when the lease ended, when the processes were gone, the machines killed)
    lapses: list[tuple[int, int, list[str]]] = field(default_factory=list)
    _calls: dict[str, Handle] = field(default_factory=dict)  # Online/Offline in flight, by machine
    _check: Handle | None = None
    _killing: bool = False  # a lapse was seen: the kill is under way
    _thawed: list[Callable[[], None]] = field(default_factory=list)  # what came due while frozen

    def fresh(self) -> bool:
        return not self.revoked and self.clock.now < self.expiry

    def no_lease(self) -> str | None:
        """Why Online is refused now (None: it is not), as ``MonitorProcess.no_lease``."""
        if self.revoked:
            return "the lease was revoked"
        if not self.fresh():
            return "this node holds no fresh lease"
        if self.lapsed_generation is not None and self.generation <= self.lapsed_generation:
            return "the lease lapsed and the daemon has not renewed it since"
        return None

    # -- the daemon's calls ----------------------------------------------------------------
    def call(self, machine: str, entry: str, op_ms: int) -> None:
        """A resource machine's ``call``: Online and Offline complete ``op_ms`` later, Terminate at once; the
        health checks are not simulated."""
        if self.gone or entry not in ("Online", "Offline", "Terminate"):
            return
        if entry == "Online" and machine in self._calls:
            return  # the real monitor refuses it: a call is still in flight (and says so in its log)
        if entry == "Online" and self.no_lease() is not None:
            self._later(0, lambda: self.answer(machine, "online_failed"), f"monitor {self.node} refuses {machine}")
            return
        self._abandon(machine)
        if entry == "Terminate":
            self.running.discard(machine)
            return
        if entry == "Online":
            self.starting.add(machine)
        self._calls[machine] = self._later(op_ms, lambda: self._done(machine, entry), f"driver {machine}")

    def _abandon(self, machine: str) -> None:
        handle = self._calls.pop(machine, None)
        if handle is not None:
            handle.cancel()
        self.starting.discard(machine)

    def _done(self, machine: str, entry: str) -> None:
        del self._calls[machine]
        if entry == "Online":
            self.starting.discard(machine)
            self.running.add(machine)
            self.answer(machine, "online_succeeded")
        else:
            self.running.discard(machine)
            self.answer(machine, "offline_succeeded")

    def clear(self) -> None:
        """The daemon died (the real monitor sees its socket close and terminates everything, R4)."""
        self.gone = True
        for machine in list(self._calls):
            self._abandon(machine)
        self.running.clear()
        self._cancel()

    # -- the lease --------------------------------------------------------------------------
    def renew(self, expiry: int) -> None:
        self.generation += 1
        self.expiry = expiry
        self._arm()

    def end(self) -> None:
        self.renew(0)

    def revoke(self, epoch: int) -> None:
        self.revoked = max(self.revoked, epoch)
        self._arm()

    def installed(self, epoch: int) -> None:
        if self.revoked and epoch >= self.revoked:
            self.revoked = 0

    def freeze(self) -> None:
        self.frozen = True
        self._cancel()

    def thaw(self) -> None:
        self.frozen = False
        due, self._thawed = self._thawed, []
        for action in due:
            action()
        self._arm()

    # -- enforcement ------------------------------------------------------------------------------
    def _later(self, ms: int, action: Callable[[], None], label: str) -> Handle:
        """``action`` ``ms`` from now, or when the monitor thaws if it is frozen then."""
        def due() -> None:
            if self.gone:
                return
            if self.frozen:
                self._thawed.append(action)
            else:
                action()
        return self.clock.call_later(ms, due, label)

    def _cancel(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def _arm(self) -> None:
        """Look at the lease again when it ends (now, if it has ended)."""
        self._cancel()
        if self.frozen or self.gone:
            return
        ends = self.clock.now if not self.fresh() else self.expiry
        self._check = self.clock.call_at(max(ends, self.clock.now), self._ended, f"lease check {self.node}")

    def _ended(self) -> None:
        self._check = None
        if self.fresh() or self.frozen or self._killing or not (self.running or self.starting):
            return
        ended = self.clock.now
        self.lapsed_generation = self.generation
        killed, cancelled = set(self.running), set(self.starting)  # what may run now (``_lapse``'s ``live``)
        for machine in cancelled:  # an Online in flight must not start anything more
            handle = self._calls.pop(machine, None)
            if handle is not None:
                handle.cancel()
        # not self._check: a renewal re-arms the watch, but must not call the kill off
        self._killing = True
        self._later(self.kill_ms, lambda: self._kill(ended, killed, cancelled), f"lease kill {self.node}")

    def _kill(self, ended: int, killed: set[str], cancelled: set[str]) -> None:
        """Once it saw the lease end, the monitor kills what may have run then, even if a renewal arrives
        meanwhile (as the real one)."""
        self._killing = False
        killed &= self.running
        cancelled &= self.starting - self.running
        self.running -= killed
        self.starting -= cancelled
        self.lapses.append((ended, self.clock.now, sorted(killed | cancelled)))
        for machine in sorted(killed):
            if machine not in self._calls:  # an Offline in flight reports itself
                self.answer(machine, "is_alive_failed")
        for machine in sorted(cancelled):
            self.answer(machine, "online_failed")
