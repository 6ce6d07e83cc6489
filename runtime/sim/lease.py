"""What a simulated node's heartbeat timer knows for the lease: who vouches for this node, and revocations.

The daemon's heartbeat timer (C, or its twin ``runtime/heartbeat/_pytimer.py``)
sends with every heartbeat the membership its node installed (epoch and
members) and, per node, how long ago it last heard that node (the *age*).
A node that receives a peer's heartbeat learns when that peer last heard
*it* (its arrival time minus the age: the peer's *vouch*, which the lease is
counted from, ``runtime/daemon/lease.py``), and revokes its own lease at once
when the heartbeat carries a newer membership that leaves it out.
:class:`SimHeartbeats` is that bookkeeping on the virtual clock, beside the
heartbeat machine of ``spec/heartbeat.py``; the epoch rides in the beat
message's arguments, the members and ages beside them (:class:`BeatNote`).
One per start of the node's heartbeats (a halted node's rejoin and a
restarted service start a new timer, which has heard nobody yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wolfpack.runtime.heartbeat._wire import AGE_NEVER, age_ms

#: nanoseconds in a virtual millisecond (the wire's ages are computed from the daemon's ns clock)
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class BeatNote:
    """What rides beside a simulated heartbeat: its sender's installed members, and its ages by node id (ms
    since the sender last heard that node; ``AGE_NEVER``: never, or too long ago)."""

    members: frozenset[int]
    ages: tuple[int, ...]


@dataclass
class SimHeartbeats:
    me: int
    n: int
    #: the membership the heartbeats carry (the daemon's ``set_epoch``, at each install)
    epoch: int = 0
    members: frozenset[int] = frozenset()
    #: per peer: when this node last heard it (virtual ms)
    heard: dict[int, int] = field(default_factory=dict)
    #: per peer: (when it last heard this node, its epoch, its members), from its last heartbeat
    vouches: dict[int, tuple[int | None, int, frozenset[int]]] = field(default_factory=dict)
    #: per peer: the epoch its heartbeats revoked the lease for (once per epoch)
    revoked_for: dict[int, int] = field(default_factory=dict)

    def set_epoch(self, epoch: int, members: frozenset[int]) -> None:
        self.epoch, self.members = epoch, members

    def note(self, now: int) -> BeatNote:
        """What this node's next heartbeat carries besides its epoch."""
        ages = tuple(0 if k == self.me else
                     age_ms(now * NS_PER_MS, self.heard[k] * NS_PER_MS if k in self.heard else None)
                     for k in range(self.n))
        return BeatNote(self.members, ages)

    def received(self, src: int, epoch: int, note: BeatNote, now: int) -> int | None:
        """A heartbeat from ``src`` arrives: remember it and its vouch; the epoch to revoke the lease for (a
        newer membership without this node, news from this peer), or None (``_pytimer._accept``)."""
        self.heard[src] = now
        age = note.ages[self.me]
        self.vouches[src] = (None if age == AGE_NEVER else now - age, epoch, note.members)
        if epoch > self.epoch and self.me not in note.members and self.revoked_for.get(src, 0) < epoch:
            self.revoked_for[src] = epoch
            return epoch
        return None
