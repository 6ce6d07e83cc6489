"""The heartbeat datagram, in Python (the C engine has its own byte-compatible copy).

A datagram is 47 bytes, integers in network byte order::

    offset  size  field
         0     4  magic b"WPHB"
         4     1  version (2)
         5     2  sender node id (u16)
         7     8  incarnation (u64, random for each start of the sender)
        15     8  sequence (u64, strictly increasing per sender incarnation)
        23     8  epoch (u64, the membership epoch the sender installed; 0: none yet)
        31    16  MAC: HMAC-SHA256(mac_key, bytes 0..30) truncated to 16 bytes

with ``mac_key = HMAC-SHA256(cluster_key, b"wolfpack heartbeat")``, so the
cluster key itself is never used directly on the wire.  The MAC covers the
epoch: a node that halts on a peer's newer epoch (``peer_ahead``) halts only
on a heartbeat of the cluster.  Version 1 (without the epoch) is refused as
malformed: every node of a cluster runs one version.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

MAGIC = b"WPHB"
VERSION = 2
MAC_LEN = 16
HEADER = struct.Struct("!4sBHQQQ")
DATAGRAM_LEN = HEADER.size + MAC_LEN
KEY_LABEL = b"wolfpack heartbeat"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def derive_mac_key(cluster_key: bytes) -> bytes:
    """The 32-byte key heartbeats are authenticated with."""
    return hmac_sha256(cluster_key, KEY_LABEL)


def encode(mac_key: bytes, node_id: int, incarnation: int, seq: int, epoch: int) -> bytes:
    header = HEADER.pack(MAGIC, VERSION, node_id, incarnation, seq, epoch)
    return header + hmac_sha256(mac_key, header)[:MAC_LEN]


def well_formed(datagram: bytes) -> bool:
    return len(datagram) == DATAGRAM_LEN and datagram[:4] == MAGIC and datagram[4] == VERSION


def sender(datagram: bytes) -> int:
    """The node id of a well-formed datagram (not yet authenticated)."""
    return int.from_bytes(datagram[5:7], "big")


def mac_ok(mac_key: bytes, datagram: bytes) -> bool:
    header = datagram[: HEADER.size]
    return hmac.compare_digest(hmac_sha256(mac_key, header)[:MAC_LEN], datagram[HEADER.size :])


def decode(mac_key: bytes, datagram: bytes) -> tuple[int, int, int, int] | None:
    """``(node_id, incarnation, seq, epoch)`` of an authentic datagram, or None if malformed or forged."""
    if not well_formed(datagram) or not mac_ok(mac_key, datagram):
        return None
    _, _, node_id, incarnation, seq, epoch = HEADER.unpack(datagram[: HEADER.size])
    return node_id, incarnation, seq, epoch
