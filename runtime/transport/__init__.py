"""Node-to-node transport: authenticated, length-prefixed, versioned TCP frames.

``frames`` is the wire format, ``messages`` the schema of what the machines
send, ``handshake`` the challenge-response that authenticates a connection,
``peers`` the :class:`PeerManager` that keeps one link to every peer.
"""

from wolfpack.runtime.transport.frames import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    Frame,
    FrameAuthError,
    FrameCodec,
    FrameError,
    FrameType,
)
from wolfpack.runtime.transport.handshake import HandshakeRefused
from wolfpack.runtime.transport.link import LinkInfo
from wolfpack.runtime.transport.messages import Message
from wolfpack.runtime.transport.peers import PeerManager
from wolfpack.runtime.transport.stats import TransportStats

__all__ = [
    "DEFAULT_MAX_FRAME",
    "PROTOCOL_VERSION",
    "Frame",
    "FrameAuthError",
    "FrameCodec",
    "FrameError",
    "FrameType",
    "HandshakeRefused",
    "LinkInfo",
    "Message",
    "PeerManager",
    "TransportStats",
]
