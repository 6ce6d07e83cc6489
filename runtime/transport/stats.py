"""Counters of the transport, for tests and the admin API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class TransportStats:
    """What one node's transport has done since it started.

    ``frames_sent`` counts the MESSAGE frames queued for a peer, ``frames_received`` those delivered to
    ``on_message`` (handshake frames count in neither); ``rejected`` counts the
    frames and connections this node rejected, by reason code (``bad-mac``, ``replay``, ``oversized``, ``auth``
    ...); ``refused_by_peers`` the handshakes the peers refused, by their reason; ``dropped`` the messages
    :meth:`PeerManager.send` dropped (``peer-down``, ``backlog``); ``links_opened`` the authenticated
    connections that came up.
    """

    frames_sent: int = 0
    frames_received: int = 0
    links_opened: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    refused_by_peers: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int | dict[str, int]]:
        """A JSON-ready copy."""
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "links_opened": self.links_opened,
            "rejected": dict(self.rejected),
            "refused_by_peers": dict(self.refused_by_peers),
            "dropped": dict(self.dropped),
        }
