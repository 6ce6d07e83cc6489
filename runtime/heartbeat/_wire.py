"""The heartbeat datagram, in Python (the C engine has its own byte-compatible copy).

A datagram is 183 bytes, integers in network byte order::

    offset  size  field
         0     4  magic b"WPHB"
         4     1  version (3)
         5     2  sender node id (u16)
         7     8  incarnation (u64, random for each start of the sender)
        15     8  sequence (u64, strictly increasing per sender incarnation)
        23     8  epoch (u64, the membership epoch the sender installed; 0: none yet)
        31     8  members (u64: bit k set if node k is in the sender's membership of that epoch)
        39   128  ages: 64 x u16, for node k the milliseconds since the sender last heard a valid heartbeat
                  of node k (0xFFFF: never, or longer ago than 65.534 s; the sender's own slot 0)
       167    16  MAC: HMAC-SHA256(mac_key, bytes 0..166) truncated to 16 bytes

with ``mac_key = HMAC-SHA256(cluster_key, b"wolfpack heartbeat")``, so the
cluster key itself is never used directly on the wire.  The MAC covers the
epoch: a node that halts on a peer's newer epoch (``peer_ahead``) halts only
on a heartbeat of the cluster.

The members and the ages serve the lease (``runtime/monitor/lease.py``): a
node's lease rests on a quorum of peers that say they heard it lately (the
age of its last heartbeat at them, which needs no common clock), and a
heartbeat of a newer membership that leaves the receiver out revokes the
receiver's lease at once.  Earlier versions are refused as malformed: every
node of a cluster runs one version.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence

MAGIC = b"WPHB"
VERSION = 3
MAC_LEN = 16
#: node ids the members and ages cover (the configuration's limit as well)
AGE_SLOTS = 64
#: an age that says "never heard", or longer ago than the field holds
AGE_NEVER = 0xFFFF
HEADER = struct.Struct(f"!4sBHQQQQ{AGE_SLOTS}H")
DATAGRAM_LEN = HEADER.size + MAC_LEN
KEY_LABEL = b"wolfpack heartbeat"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def derive_mac_key(cluster_key: bytes) -> bytes:
    """The 32-byte key heartbeats are authenticated with."""
    return hmac_sha256(cluster_key, KEY_LABEL)


def encode(mac_key: bytes, node_id: int, incarnation: int, seq: int, epoch: int, members: int = 0,
           ages: Sequence[int] | None = None) -> bytes:
    slots = list(ages) if ages is not None else [AGE_NEVER] * AGE_SLOTS
    if len(slots) != AGE_SLOTS or not all(0 <= a <= AGE_NEVER for a in slots):
        raise ValueError(f"ages must be {AGE_SLOTS} values in 0..{AGE_NEVER}")
    header = HEADER.pack(MAGIC, VERSION, node_id, incarnation, seq, epoch, members, *slots)
    return header + hmac_sha256(mac_key, header)[:MAC_LEN]


def well_formed(datagram: bytes) -> bool:
    return len(datagram) == DATAGRAM_LEN and datagram[:4] == MAGIC and datagram[4] == VERSION


def sender(datagram: bytes) -> int:
    """The node id of a well-formed datagram (not yet authenticated)."""
    return int.from_bytes(datagram[5:7], "big")


def mac_ok(mac_key: bytes, datagram: bytes) -> bool:
    header = datagram[: HEADER.size]
    return hmac.compare_digest(hmac_sha256(mac_key, header)[:MAC_LEN], datagram[HEADER.size :])


def decode(mac_key: bytes, datagram: bytes) -> tuple[int, int, int, int, int, tuple[int, ...]] | None:
    """``(node_id, incarnation, seq, epoch, members, ages)`` of an authentic datagram, or None if malformed or
    forged."""
    if not well_formed(datagram) or not mac_ok(mac_key, datagram):
        return None
    _, _, node_id, incarnation, seq, epoch, members, *ages = HEADER.unpack(datagram[: HEADER.size])
    return node_id, incarnation, seq, epoch, members, tuple(ages)


def age_ms(now_ns: int, seen_ns: int | None) -> int:
    """The age field for a heartbeat last seen at ``seen_ns`` (None: never)."""
    if seen_ns is None or seen_ns <= 0:
        return AGE_NEVER
    return min(AGE_NEVER - 1, max(0, (now_ns - seen_ns) // 1_000_000))
