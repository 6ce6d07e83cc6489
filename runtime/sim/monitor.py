"""The simulated resource monitor of one node: the resources' real processes and the lease it enforces.

The daemon's monitor (``runtime/monitor/process.py``) is a process apart from
the daemon: it keeps its resources' processes running whatever the daemon
does, and it terminates them by itself when the node's lease lapses, is
revoked or is ended.  This is that, on the virtual clock:

* :attr:`SimMonitor.running` is the set of resource machines whose
  processes run here: what "active on this node" means for the safety
  invariant (``World.violations``), rather than the resource machines' state;
* Online starts a process only under a fresh lease (else it fails, as the
  real monitor refuses it); Offline and Terminate stop it;
* the lease: :meth:`renew` (the daemon's loop, every heartbeat period while a
  quorum vouches for the node), :meth:`revoke` (the heartbeat thread, when a
  newer membership leaves the node out), :meth:`end` (the node halted); when
  it ends while processes run, the monitor kills them ``kill_ms`` later (its
  poll and the kill) and tells the node's resource machines
  (``is_alive_failed``), through the node's queue;
* :attr:`frozen` (the monitor stopped with its daemon): nothing is killed
  until it thaws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wolfpack.runtime.sim.clock import Handle, VirtualClock
from wolfpack.spec import defaults as d

#: the simulated monitor's delay from the end of a lease to the processes gone (its poll, then SIGKILL)
KILL_MS = d.LEASE_POLL_MS + 5


@dataclass
class SimMonitor:
    node: int
    clock: VirtualClock
    #: told the resource machines whose processes the lease's end killed
    on_killed: Callable[[list[str]], None]
    kill_ms: int = KILL_MS
    running: set[str] = field(default_factory=set)
    expiry: int = 0  # the lease holds while now < expiry
    revoked: int = 0  # non-zero: revoked by a membership of this epoch
    lapsed: bool = False  # the lease ended while processes ran: Online waits for a renewal
    frozen: bool = False
    #: every lapse: (when the lease ended, when the processes were gone, the machines killed)
    lapses: list[tuple[int, int, list[str]]] = field(default_factory=list)
    _check: Handle | None = None

    def fresh(self) -> bool:
        return not self.revoked and self.clock.now < self.expiry

    def may_start(self) -> bool:
        return self.fresh() and not self.lapsed

    # -- the daemon's calls ----------------------------------------------------------------
    def start(self, machine: str) -> bool:
        """Online completes: the process starts if the lease holds (else Online fails)."""
        if not self.may_start():
            return False
        self.running.add(machine)
        return True

    def stop(self, machine: str) -> None:
        self.running.discard(machine)

    def clear(self) -> None:
        """The daemon died (the real monitor sees its socket close and terminates everything, R4)."""
        self.running.clear()
        self._cancel()

    # -- the lease --------------------------------------------------------------------------
    def renew(self, expiry: int) -> None:
        self.expiry = expiry
        if self.fresh():
            self.lapsed = False
        self._arm()

    def end(self) -> None:
        self.expiry = 0
        self._arm()

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
        self._arm()

    # -- enforcement ------------------------------------------------------------------------------
    def _cancel(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def _arm(self) -> None:
        """Look at the lease again when it ends (now, if it has ended)."""
        self._cancel()
        if self.frozen:
            return
        ends = self.clock.now if not self.fresh() else self.expiry
        self._check = self.clock.call_at(max(ends, self.clock.now), self._ended, f"lease check {self.node}")

    def _ended(self) -> None:
        self._check = None
        if self.fresh() or self.frozen:
            return
        if not self.running:
            return
        ended = self.clock.now
        self.lapsed = True
        self._check = self.clock.call_later(self.kill_ms, lambda: self._kill(ended), f"lease kill {self.node}")

    def _kill(self, ended: int) -> None:
        """Once it saw the lease end, the monitor kills, even if a renewal arrives meanwhile (as the real one)."""
        self._check = None
        if self.frozen:
            return
        victims = sorted(self.running)
        self.running.clear()
        self.lapses.append((ended, self.clock.now, victims))
        self.on_killed(victims)
