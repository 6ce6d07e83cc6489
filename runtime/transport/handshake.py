"""Challenge-response at connect: both nodes prove they hold the cluster key, and agree on a session key.

The dialer D connects to the listener L; four frames, all under the public
:data:`HANDSHAKE_KEY` (a checksum, not a secret: the proofs inside carry the
authentication)::

    D -> L  HELLO      {"version", "node": D, "cluster", "nonce": nD}
    L -> D  CHALLENGE  {"version", "node": L, "cluster", "nonce": nL}
    D -> L  PROOF      {"mac": HMAC(session, "dialer"   + SHA256(hello + challenge))}
    L -> D  ACCEPT     {"mac": HMAC(session, "listener" + SHA256(hello + challenge))}

    base    = HMAC-SHA256(cluster_key, "wolfpack transport")
    session = HMAC-SHA256(base, nD + nL + D (u64 BE) + L (u64 BE))

Either side answers a check that fails (wrong version, cluster name or key, an
unexpected node id) with a ``REFUSED`` frame ``{"reason", "message"}`` and
closes; both sides raise :class:`HandshakeRefused`, which the caller logs.  The
listener reveals its proof only to a dialer that proved itself first.  After
``ACCEPT`` both sides switch their :class:`FrameCodec` to the session key;
sequence numbers go on from the handshake frames.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from typing import NoReturn

from wolfpack.errors import AuthenticationError, ProtocolError
from wolfpack.runtime.transport.frames import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    FrameCodec,
    FrameError,
    FrameType,
    JSONObject,
    decode_body,
    encode_body,
    reason_of,
)

HANDSHAKE_KEY = hashlib.sha256(b"wolfpack transport handshake").digest()
HANDSHAKE_MAX_FRAME = 4096  # an unauthenticated peer cannot make this node buffer more
NONCE_SIZE = 32
MAX_NODE_ID = (1 << 64) - 1
BASE_LABEL = b"wolfpack transport"
WRONG_KEY = (
    "wrong cluster key: the proof of the cluster key does not match this node's key (or a handshake was replayed)"
)


def derive_base_key(cluster_key: bytes) -> bytes:
    return hmac.new(cluster_key, BASE_LABEL, hashlib.sha256).digest()


def derive_session_key(
    base_key: bytes, dialer_nonce: bytes, listener_nonce: bytes, dialer: int, listener: int
) -> bytes:
    ids = struct.pack(">QQ", dialer, listener)
    return hmac.new(base_key, dialer_nonce + listener_nonce + ids, hashlib.sha256).digest()


def _proof(session_key: bytes, role: bytes, hello: bytes, challenge: bytes) -> bytes:
    transcript = hashlib.sha256(hello + challenge).digest()
    return hmac.new(session_key, role + transcript, hashlib.sha256).digest()


@dataclass(frozen=True)
class Identity:
    """Who this node is in the handshake: its id, its cluster's name and the key derived from the cluster key."""

    node_id: int
    cluster: str
    base_key: bytes

    @classmethod
    def from_cluster_key(cls, node_id: int, cluster: str, cluster_key: bytes) -> Identity:
        return cls(node_id, cluster, derive_base_key(cluster_key))


class HandshakeRefused(AuthenticationError):
    """A connection refused in the handshake, by this node (``by_peer=False``) or by the peer."""

    def __init__(self, reason: str, message: str, *, peer_id: int | None, by_peer: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.peer_id = peer_id
        self.by_peer = by_peer


@dataclass
class Session:
    """An authenticated connection's state: who is at the other end, who dialed, the keyed codec."""

    peer_id: int
    dialer_id: int
    codec: FrameCodec


@dataclass(frozen=True)
class _Greeting:
    node: int
    cluster: str
    nonce: bytes


def _parse_greeting(body: bytes, what: str) -> _Greeting:
    obj = decode_body(body, what)
    version, node, cluster, nonce = obj.get("version"), obj.get("node"), obj.get("cluster"), obj.get("nonce")
    if version != PROTOCOL_VERSION:
        raise FrameError(
            "version", f"the peer speaks protocol version {version!r}, this node {PROTOCOL_VERSION}: run one release"
        )
    if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node <= MAX_NODE_ID:
        raise FrameError("schema", f"the {what} frame's node id {node!r} is not an integer from 0 to 2**64-1")
    if not isinstance(cluster, str) or not cluster:
        raise FrameError("schema", f"the {what} frame's cluster name {cluster!r} is not a non-empty string")
    raw_nonce = _unhex(nonce, f"the {what} frame's nonce")
    if len(raw_nonce) != NONCE_SIZE:
        raise FrameError("schema", f"the {what} frame's nonce has {len(raw_nonce)} bytes, not {NONCE_SIZE}")
    return _Greeting(node, cluster, raw_nonce)


def _unhex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise FrameError("schema", f"{what} is {value!r}, not a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise FrameError("schema", f"{what} is not a hex string") from None


def _greeting(me: Identity, nonce: bytes) -> bytes:
    return encode_body({"version": PROTOCOL_VERSION, "node": me.node_id, "cluster": me.cluster, "nonce": nonce.hex()})


async def _expect(codec: FrameCodec, reader: asyncio.StreamReader, *kinds: FrameType) -> tuple[FrameType, bytes]:
    frame = await codec.read(reader)
    if frame is None:
        raise FrameError("closed", "the peer closed the connection during the handshake")
    if frame.type not in kinds:
        names = " or ".join(kind.name for kind in kinds)
        raise FrameError("unexpected", f"a {frame.type.name} frame in the handshake where {names} was expected")
    return frame.type, frame.body


def _refused_by_peer(body: bytes, peer_id: int | None) -> HandshakeRefused:
    obj = decode_body(body, "REFUSED")
    reason, message = obj.get("reason"), obj.get("message")
    return HandshakeRefused(
        reason if isinstance(reason, str) else "unknown",
        message if isinstance(message, str) else "no reason given",
        peer_id=peer_id,
        by_peer=True,
    )


def _refuse(
    codec: FrameCodec, writer: asyncio.StreamWriter, reason: str, message: str, peer_id: int | None
) -> NoReturn:
    """Tell the peer why (best effort, not if it is gone), and raise :class:`HandshakeRefused` here."""
    body: JSONObject = {"reason": reason, "message": message}
    if reason != "closed" and not writer.transport.is_closing():
        writer.write(codec.encode(FrameType.REFUSED, encode_body(body)))
    raise HandshakeRefused(reason, message, peer_id=peer_id, by_peer=False)


def _check_cluster(codec: FrameCodec, writer: asyncio.StreamWriter, me: Identity, greeting: _Greeting,
                   peer_id: int | None) -> None:
    """Refuse a peer that greets with another cluster's name."""
    if greeting.cluster != me.cluster:
        _refuse(codec, writer, "wrong-cluster",
                f"the peer is in cluster {greeting.cluster!r}, this node in {me.cluster!r}: check the cluster name",
                peer_id)


class PendingAccept:
    """A dialer the listener has authenticated; :meth:`accept` admits it."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        codec: FrameCodec,
        peer_id: int,
        session_key: bytes,
        proof: bytes,
        max_frame: int,
    ) -> None:
        self.peer_id = peer_id
        self._writer = writer
        self._codec = codec
        self._session_key = session_key
        self._proof = proof
        self._max_frame = max_frame

    def accept(self) -> Session:
        """Send ACCEPT with this node's proof (synchronously: no other frame can come between) and rekey."""
        self._writer.write(self._codec.encode(FrameType.ACCEPT, encode_body({"mac": self._proof.hex()})))
        self._codec.rekey(self._session_key, max_frame=self._max_frame)
        return Session(peer_id=self.peer_id, dialer_id=self.peer_id, codec=self._codec)


async def accept(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, me: Identity, *, max_frame: int = DEFAULT_MAX_FRAME
) -> PendingAccept:
    """The listener's half, up to a verified PROOF.  Raises :class:`HandshakeRefused` after telling the peer."""
    codec = FrameCodec(HANDSHAKE_KEY, max_frame=HANDSHAKE_MAX_FRAME)
    peer_id: int | None = None
    try:
        _, hello = await _expect(codec, reader, FrameType.HELLO)
        greeting = _parse_greeting(hello, "HELLO")
        peer_id = greeting.node
        _check_cluster(codec, writer, me, greeting, peer_id)
        if greeting.node == me.node_id:
            _refuse(
                codec,
                writer,
                "same-id",
                f"the peer claims node id {me.node_id}, which is this node's own: give every node its own id",
                peer_id,
            )
        nonce = secrets.token_bytes(NONCE_SIZE)
        challenge = _greeting(me, nonce)
        writer.write(codec.encode(FrameType.CHALLENGE, challenge))
        kind, proof_body = await _expect(codec, reader, FrameType.PROOF, FrameType.REFUSED)
        if kind is FrameType.REFUSED:
            raise _refused_by_peer(proof_body, peer_id)
        proof = _unhex(decode_body(proof_body, "PROOF").get("mac"), "the PROOF frame's mac")
        session_key = derive_session_key(me.base_key, greeting.nonce, nonce, greeting.node, me.node_id)
        if not hmac.compare_digest(proof, _proof(session_key, b"dialer", hello, challenge)):
            _refuse(codec, writer, "auth", WRONG_KEY, peer_id)
    except HandshakeRefused:
        raise
    except ProtocolError as error:
        _refuse(codec, writer, reason_of(error), str(error), peer_id)
    listener_proof = _proof(session_key, b"listener", hello, challenge)
    return PendingAccept(writer, codec, greeting.node, session_key, listener_proof, max_frame)


async def dial(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    me: Identity,
    *,
    expect_peer: int | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> Session:
    """The dialer's half.  ``expect_peer``: the node id the dialed address should have (``None``: any).

    Raises :class:`HandshakeRefused` if the listener refuses, or if the listener fails this node's checks
    (after telling it).
    """
    codec = FrameCodec(HANDSHAKE_KEY, max_frame=HANDSHAKE_MAX_FRAME)
    peer_id = expect_peer
    try:
        nonce = secrets.token_bytes(NONCE_SIZE)
        hello = _greeting(me, nonce)
        writer.write(codec.encode(FrameType.HELLO, hello))
        kind, challenge = await _expect(codec, reader, FrameType.CHALLENGE, FrameType.REFUSED)
        if kind is FrameType.REFUSED:
            raise _refused_by_peer(challenge, peer_id)
        greeting = _parse_greeting(challenge, "CHALLENGE")
        _check_cluster(codec, writer, me, greeting, greeting.node)
        if expect_peer is not None and greeting.node != expect_peer:
            _refuse(
                codec,
                writer,
                "wrong-node",
                f"the address of node {expect_peer} is answered by node {greeting.node}: check the peer addresses",
                greeting.node,
            )
        peer_id = greeting.node
        session_key = derive_session_key(me.base_key, nonce, greeting.nonce, me.node_id, greeting.node)
        proof = _proof(session_key, b"dialer", hello, challenge)
        writer.write(codec.encode(FrameType.PROOF, encode_body({"mac": proof.hex()})))
        kind, answer = await _expect(codec, reader, FrameType.ACCEPT, FrameType.REFUSED)
        if kind is FrameType.REFUSED:
            raise _refused_by_peer(answer, peer_id)
        their_proof = _unhex(decode_body(answer, "ACCEPT").get("mac"), "the ACCEPT frame's mac")
        if not hmac.compare_digest(their_proof, _proof(session_key, b"listener", hello, challenge)):
            _refuse(codec, writer, "auth", WRONG_KEY, peer_id)
    except HandshakeRefused:
        raise
    except ProtocolError as error:
        _refuse(codec, writer, reason_of(error), str(error), peer_id)
    codec.rekey(session_key, max_frame=max_frame)
    return Session(peer_id=greeting.node, dialer_id=me.node_id, codec=codec)
