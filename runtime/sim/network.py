"""A simulated datagram network between numbered nodes.

Every fault is a setting: per-link loss, delay (a range; a wide range
reorders), duplication, one-way cuts, partitions into groups, and crashed
nodes.  All randomness comes from the RNG given at construction, so a run
is a function of its seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wolfpack.runtime.sim.clock import VirtualClock

Deliver = Callable[[int, int, Any], None]  # (dst, src, payload)
Trace = Callable[[dict[str, Any]], None]


#: the two ways a message travels between nodes, as the daemon sends them
CHANNELS = ("heartbeats", "transport")


def channel_of(payload: Any) -> str:
    """Heartbeats are datagrams of their own (the C timer's UDP); every other machine's message is on the transport."""
    return "heartbeats" if getattr(payload, "machine", None) == "heartbeat" else "transport"


@dataclass(frozen=True)
class LinkPolicy:
    """How one direction of a link behaves."""

    loss: float = 0.0
    min_delay_ms: int = 1
    max_delay_ms: int = 1
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.loss <= 1.0 and 0.0 <= self.duplicate <= 1.0):
            raise ValueError("loss and duplicate are probabilities between 0 and 1")
        if not 0 <= self.min_delay_ms <= self.max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")


@dataclass
class NetStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0


class SimNetwork:
    def __init__(
        self,
        clock: VirtualClock,
        rng: random.Random,
        deliver: Deliver,
        default: LinkPolicy | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng
        self._deliver = deliver
        self.default = default or LinkPolicy()
        self._policy: dict[tuple[int, int], LinkPolicy] = {}
        self._cut: set[tuple[int, int]] = set()
        #: one channel cut: (src, dst) -> "heartbeats" (the UDP datagrams) or "transport" (every other message: TCP)
        self._cut_channel: dict[tuple[int, int], str] = {}
        self._slow: dict[tuple[int, int], int] = {}
        #: per link: when it was last healed of a cut, a slow transport or a degraded policy
        self._healed_at: dict[tuple[int, int], int] = {}
        self._down: set[int] = set()
        self._trace = trace
        self.stats = NetStats()

    # -- faults -------------------------------------------------------------------
    def set_policy(self, src: int, dst: int, policy: LinkPolicy) -> None:
        self._policy[(src, dst)] = policy

    def cut(self, src: int, dst: int) -> None:
        """Messages from ``src`` to ``dst`` are lost (one way)."""
        self._cut.add((src, dst))

    def cut_channel(self, src: int, dst: int, channel: str) -> None:
        """Only one channel from ``src`` to ``dst`` is lost: ``heartbeats`` (a firewall dropping UDP) or
        ``transport`` (TCP dropped while the heartbeats flow)."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
        self._cut_channel[(src, dst)] = channel

    def slow(self, src: int, dst: int, ms: int) -> None:
        """Messages from ``src`` to ``dst`` on the transport (every machine's but the heartbeats', which are
        datagrams of their own) take ``ms`` longer: TCP in retransmission backoff."""
        if ms < 0:
            raise ValueError(f"a link cannot be {ms} ms faster than it is")
        self._slow[(src, dst)] = ms

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between nodes of different groups (both ways)."""
        sets = [set(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1:]:
                for x in a:
                    for y in b:
                        self._cut.add((x, y))
                        self._cut.add((y, x))

    def heal(self) -> None:
        """Remove every cut, slow link and per-link policy."""
        for link in self._cut | set(self._cut_channel) | set(self._slow) | set(self._policy):
            self._healed_at[link] = self.clock.now
        self._cut.clear()
        self._cut_channel.clear()
        self._slow.clear()
        self._policy.clear()

    def crash(self, node: int) -> None:
        self._down.add(node)

    def restart(self, node: int) -> None:
        self._down.discard(node)

    def clean_since(self, src: int, dst: int) -> int | None:
        """Since when the link from ``src`` to ``dst`` has carried every message at the default policy (0: always),
        or None while it is cut, slow or degraded."""
        link = (src, dst)
        if link in self._cut or link in self._cut_channel or link in self._slow or link in self._policy:
            return None
        return self._healed_at.get(link, 0)

    def connected(self, src: int, dst: int) -> bool:
        return src not in self._down and dst not in self._down and (src, dst) not in self._cut

    # -- traffic -----------------------------------------------------------------
    def send(self, src: int, dst: int, payload: Any) -> None:
        self.stats.sent += 1
        policy = self._policy.get((src, dst), self.default)
        if not self.connected(src, dst) or self.rng.random() < policy.loss:
            self._drop(src, dst, payload, "cut" if not self.connected(src, dst) else "loss")
            return
        if self._channel_cut(src, dst, payload):
            self._drop(src, dst, payload, f"{self._cut_channel[(src, dst)]} cut")
            return
        copies = 2 if self.rng.random() < policy.duplicate else 1
        if copies == 2:
            self.stats.duplicated += 1
        for _ in range(copies):
            delay = self.rng.randint(policy.min_delay_ms, policy.max_delay_ms)
            if channel_of(payload) == "transport":
                delay += self._slow.get((src, dst), 0)
            self.clock.call_later(delay, lambda: self._arrive(src, dst, payload), f"msg {src}->{dst}")

    def _arrive(self, src: int, dst: int, payload: Any) -> None:
        # a message already on the wire arrives even if its sender has crashed since; it is lost if the
        # receiver is down or the link between them was cut while it was in flight
        if dst in self._down or (src, dst) in self._cut or self._channel_cut(src, dst, payload):
            self._drop(src, dst, payload, "cut in flight")
            return
        self.stats.delivered += 1
        self._deliver(dst, src, payload)

    def _channel_cut(self, src: int, dst: int, payload: Any) -> bool:
        return self._cut_channel.get((src, dst)) == channel_of(payload)

    def _drop(self, src: int, dst: int, payload: Any, why: str) -> None:
        self.stats.dropped += 1
        if self._trace is not None:
            self._trace({"t": self.clock.now, "drop": why, "src": src, "dst": dst})
