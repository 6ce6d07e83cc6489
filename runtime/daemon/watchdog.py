"""The daemon's watchdog (``node.watchdog``, off by default): a whole-node hang resets the node.

The hardware watchdog (:mod:`wolfpack.hw.watchdog`) resets the machine unless it
is petted within its timeout.  The daemon pets it on its lease tick, every
heartbeat period, and only while this node's lease is fresh: a daemon that
stalls, or a node that hangs as a whole (its monitors too, which the lease
cannot help with), stops petting and the node is reset ``watchdog_timeout_s``
later, as SBD and Patroni use a watchdog.

The device is armed at the first fresh lease (a node that waits to join is never
reset for it) and disarmed, with the magic close, when the daemon itself ends
the lease (it halted, left, or stops): its monitors then stop the resources and
a reset would only cost the node its restart.  It is armed again at the next
fresh lease.  A lapse the daemon did not choose (it stalled, or stopped hearing
a quorum and has not yet halted) leaves the countdown running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wolfpack.hw.watchdog import NONE, LinuxWatchdog, Watchdog, WatchdogError, WatchdogPetter, open_watchdog

log = logging.getLogger("wolfpack.watchdog")


class WatchdogKeeper:
    def __init__(self, spec: str, timeout_s: int, driver: Callable[[str], Watchdog] = LinuxWatchdog) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.driver = driver
        self.petter: WatchdogPetter | None = None
        self.arms = 0
        self.error = ""

    @property
    def enabled(self) -> bool:
        return self.spec != NONE

    def tick(self, lease_fresh: bool) -> None:
        """The lease tick: arm at the first fresh lease, then pet while the lease is fresh."""
        if not self.enabled or not lease_fresh:
            return
        if self.petter is None:
            try:
                watchdog = open_watchdog(self.spec, timeout=self.timeout_s, driver=self.driver)
            except WatchdogError as exc:
                if str(exc) != self.error:
                    log.error("watchdog %s cannot be armed: %s; this node runs without it (set node.watchdog = "
                              "\"none\" to silence this, or fix the device)", self.spec, exc)
                self.error = str(exc)
                return
            self.petter = WatchdogPetter(watchdog)
            self.arms += 1
            self.error = ""
            log.info("watchdog %s armed (timeout %d s): a hang of this node resets it", self.spec,
                     watchdog.get_timeout())
        self.petter.tick(True)

    def release(self, why: str) -> None:
        """The daemon ended the lease itself: disarm (magic close) until the next fresh lease."""
        if self.petter is None:
            return
        self.petter.disarm()
        self.petter = None
        log.info("watchdog %s disarmed (%s); armed again with the next lease", self.spec, why)

    def status(self) -> dict[str, Any]:
        since = self.petter.since_last_pet() if self.petter is not None else None
        return {"device": self.spec, "armed": self.petter is not None, "timeout_s": self.timeout_s,
                "arms": self.arms, "pets": self.petter.pets if self.petter is not None else 0,
                "since_last_pet_ms": None if since is None else round(since * 1000), "error": self.error}
