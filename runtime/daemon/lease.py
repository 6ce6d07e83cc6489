"""The daemon's side of the lease its resource monitors enforce (``runtime/monitor/lease.py``).

Every heartbeat period the daemon looks at what its heartbeat timer heard
and renews the lease if this node is a member of a quorate membership: its
membership machine runs (Stable, or in a round), its GUM has not halted, and
a quorum vouches for it.  A peer *vouches* when its last heartbeat said it
had heard this node lately (the age it gave, turned into this node's clock:
:meth:`~wolfpack.runtime.heartbeat.BaseHeartbeatTimer.vouches`), and that
heartbeat does not carry a newer membership without this node.  The lease
then holds until the oldest vouch a quorum needs plus ``timing.lease_ms``:

* Majority Node Set: ``floor(n/2)`` peers besides this node, the oldest of
  the freshest such vouches;
* disk quorum: the node that holds the quorum disk holds the lease now; any
  other node needs one member that vouches for it.

Anchoring on what the *others* heard of this node, not on what this node
heard of them, is what makes the timing obligation
``stalled_owner_stops_before_takeover`` hold under asymmetric faults: the
others suspect this node no sooner than ``missed_heartbeats - 1`` periods
after they last heard it, and this node's lease ends ``lease_ms`` after the
last time a quorum said it had.  A halted or stopping node ends the lease
(:meth:`LeaseKeeper.end`); the heartbeat thread revokes it by itself when a
newer membership leaves this node out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wolfpack.runtime.monitor.lease import LeasePage
from wolfpack.spec.quorum import majority

log = logging.getLogger("wolfpack.lease")

#: membership states in which the node is still a member of the membership it installed
MEMBER_STATES = ("Stable", "Collecting", "Proposing", "Accepted")

Vouches = Mapping[int, tuple[int | None, int, Collection[int]]]


def anchor_ns(me: int, configured: int, quorum: str, epoch: int, holds_disk: bool, vouches: Vouches,
              now_ns: int) -> int | None:
    """The time a quorum last vouched for this node (this node's monotonic ns), or None: no quorum does.

    ``vouches``: per peer, (when it last heard this node, its epoch, that membership's members)."""
    good = []
    for peer, (at, peer_epoch, members) in vouches.items():
        if peer == me or at is None:
            continue
        if peer_epoch > epoch and me not in members:
            continue  # a newer membership without this node: that peer does not vouch for it any more
        good.append(at)
    good.sort(reverse=True)
    if quorum == "disk":
        if holds_disk:
            return now_ns
        return good[0] if good else None
    needed = majority(configured) - 1  # peers besides this node: a majority of the configured nodes with it
    if needed == 0:
        return now_ns
    return good[needed - 1] if len(good) >= needed else None


def renewal_anchor(state: str, gum_halted: bool, me: int, configured: int, quorum: str, epoch: int,
                   holds_disk: bool, vouches: Vouches, now: int, lease_ms: int, per_ms: int = 1_000_000) -> int | str:
    """The anchor a renewal now counts the lease from (the lease then holds until ``anchor + lease_ms``), or why
    the node may not renew it: it is not a member of a quorate membership.  ``now`` and the vouches' times are
    in one unit, ``per_ms`` of them a millisecond (the daemon: monotonic ns; the simulator: virtual ms)."""
    if state not in MEMBER_STATES:
        return f"the membership machine is {state}"
    if gum_halted:
        return "its global update manager halted"
    anchor = anchor_ns(me, configured, quorum, epoch, holds_disk, vouches, now)
    if anchor is None:
        return "no quorum of the configured nodes says it heard this node lately"
    if anchor + lease_ms * per_ms <= now:
        return f"a quorum last vouched for this node {(now - anchor) / per_ms:.0f} ms ago"
    return anchor


@dataclass
class LeaseKeeper:
    """Writes the lease page; :meth:`renew` every heartbeat period, :meth:`end` when the node halts or stops."""

    path: Path
    me: int
    configured: int
    quorum: str
    lease_ms: int
    page: LeasePage = field(init=False)
    renewals: int = 0
    #: the anchor of the last renewal (monotonic ns), and why the last tick did not renew
    anchor: int | None = None
    not_renewed: str = "not yet a member of a membership"
    ended: int = 0

    def __post_init__(self) -> None:
        self.page = LeasePage.create(self.path)

    def renew(self, state: str, gum_halted: bool, epoch: int, holds_disk: bool, vouches: Vouches,
              now_ns: int | None = None) -> bool:
        """Renew the lease if this node is a member of a quorate membership; whether it did."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        renewal = renewal_anchor(state, gum_halted, self.me, self.configured, self.quorum, epoch, holds_disk, vouches,
                                 now, self.lease_ms)
        if isinstance(renewal, str):
            self.not_renewed = renewal
            return False
        anchor = renewal
        self.page.renew(anchor + self.lease_ms * 1_000_000)
        self.anchor = anchor
        self.renewals += 1
        self.not_renewed = ""
        return True

    def installed(self, epoch: int) -> None:
        """A membership was installed: a revocation about an older epoch no longer holds."""
        revoked = self.page.read().revoked
        if revoked and epoch >= revoked:
            self.page.clear_revoked()
            log.info("lease: epoch %d installed; the revocation for epoch %d is lifted", epoch, revoked)

    def end(self, why: str) -> None:
        """No lease from now on: the monitors stop every resource that may still run."""
        lease = self.page.read()
        if lease.expiry_ns or not self.ended:
            log.info("lease: ended (%s)", why)
        self.page.end()
        self.ended += 1
        self.not_renewed = why

    def status(self) -> dict[str, Any]:
        """What the admin API shows: how long the lease holds, since when a quorum vouched, why not renewed."""
        lease = self.page.read()
        now = time.monotonic_ns()
        return {"fresh": lease.fresh(now), "left_ms": round(lease.left_ms(now)), "revoked_for_epoch": lease.revoked,
                "vouched_ms_ago": None if self.anchor is None else round((now - self.anchor) / 1e6),
                "renewals": self.renewals, "not_renewed": self.not_renewed, "lease_ms": self.lease_ms}

    def close(self) -> None:
        self.page.close()
