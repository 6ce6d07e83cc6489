"""The wire format: length-prefixed, versioned frames with a MAC and a sequence number.

One frame on the wire::

    +--------+---------+------+----------+------------------+-------------+
    | length | version | type | sequence | body             | mac         |
    | u32 BE | u8      | u8   | u64 BE   | length - 42 bytes| 32 bytes    |
    +--------+---------+------+----------+------------------+-------------+

``length`` counts everything after itself.  ``mac`` is HMAC-SHA256 over the
header (version, type, sequence) and the body, under the key of the connection:
a public handshake key while the peers authenticate each other, then the session
key derived in the handshake (see :mod:`wolfpack.runtime.transport.handshake`).
Each direction of a connection numbers its frames 0, 1, 2, ... and the receiver
accepts only the next number, so a replayed, reordered or deleted frame is
caught; a frame from another connection fails the MAC, since every connection
has its own session key.  Bodies are UTF-8 JSON objects.

Every rejection raises :class:`FrameError` (a :class:`~wolfpack.errors.ProtocolError`)
or, for a bad MAC or sequence number, :class:`FrameAuthError` (an
:class:`~wolfpack.errors.AuthenticationError`); both carry a short ``reason``
code for the statistics and a sentence for the log.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import TypeAlias

from wolfpack.errors import AuthenticationError, ProtocolError

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 1 << 20  # bytes, the whole frame including its length prefix

LENGTH = struct.Struct(">I")
HEADER = struct.Struct(">BBQ")  # version, type, sequence
MAC_SIZE = hashlib.sha256().digest_size
OVERHEAD = LENGTH.size + HEADER.size + MAC_SIZE  # bytes of a frame that are not body
MAX_SEQUENCE = (1 << 64) - 1

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
JSONObject: TypeAlias = "dict[str, JSONValue]"


class FrameType(enum.IntEnum):
    """What a frame carries.  The first five only appear in the handshake."""

    HELLO = 1
    CHALLENGE = 2
    PROOF = 3
    ACCEPT = 4
    REFUSED = 5
    MESSAGE = 6


class FrameError(ProtocolError):
    """A frame that is truncated, oversized, of an unknown type or version, or whose body breaks the schema."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FrameAuthError(AuthenticationError):
    """A frame whose MAC does not verify, or whose sequence number is not the next one expected."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def reason_of(error: ProtocolError) -> str:
    """The short reason code of a protocol error, for counters (``"protocol"`` if it has none)."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else "protocol"


@dataclass(frozen=True)
class Frame:
    """One decoded, authenticated frame."""

    type: FrameType
    seq: int
    body: bytes
    version: int = PROTOCOL_VERSION


def mac_of(key: bytes, content: bytes) -> bytes:
    return hmac.new(key, content, hashlib.sha256).digest()


def check_body_size(body_size: int, max_frame: int) -> None:
    """Raise :class:`FrameError` ("oversized") if a body of this size does not fit in a frame of ``max_frame``."""
    if body_size + OVERHEAD > max_frame:
        raise FrameError(
            "oversized",
            f"a frame with a {body_size}-byte body takes {body_size + OVERHEAD} bytes, over the limit of {max_frame}:"
            " send a smaller message or raise max_frame on every node",
        )


def encode_frame(
    ftype: int,
    seq: int,
    body: bytes,
    key: bytes,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """One frame as bytes for the wire.  ``ftype`` and ``version`` are plain ints so that tests can forge bad ones."""
    check_body_size(len(body), max_frame)
    if not 0 <= seq <= MAX_SEQUENCE:
        raise FrameError("sequence", f"sequence number {seq} does not fit in 64 bits: reconnect to start a new session")
    content = HEADER.pack(version, ftype, seq) + body
    return LENGTH.pack(len(content) + MAC_SIZE) + content + mac_of(key, content)


def check_length(length: int, max_frame: int) -> None:
    """Validate a length prefix before reading what it announces."""
    if length < HEADER.size + MAC_SIZE:
        raise FrameError(
            "too-short",
            f"a frame announces {length} bytes, fewer than the {HEADER.size + MAC_SIZE} of a header and a MAC:"
            " the peer does not speak the Wolfpack transport",
        )
    if length + LENGTH.size > max_frame:
        raise FrameError(
            "oversized",
            f"a frame announces {length + LENGTH.size} bytes, over the limit of {max_frame}:"
            " the peer does not speak the Wolfpack transport, or max_frame differs between nodes",
        )


def parse_content(content: bytes, key: bytes) -> Frame:
    """Decode what follows a length prefix: check version, type and MAC (not the sequence number)."""
    version, ftype, seq = HEADER.unpack_from(content)
    if version != PROTOCOL_VERSION:
        raise FrameError(
            "version",
            f"a frame of protocol version {version}, but this node speaks version {PROTOCOL_VERSION}:"
            " run the same Wolfpack release on every node",
        )
    try:
        kind = FrameType(ftype)
    except ValueError:
        known = ", ".join(f"{t.value} {t.name}" for t in FrameType)
        raise FrameError("unknown-type", f"unknown frame type {ftype} (known: {known})") from None
    mac = content[-MAC_SIZE:]
    if not hmac.compare_digest(mac, mac_of(key, content[:-MAC_SIZE])):
        raise FrameAuthError(
            "bad-mac",
            f"the MAC of a {kind.name} frame (sequence {seq}) does not verify:"
            " the frame was altered on the way or signed with another key",
        )
    return Frame(kind, seq, bytes(content[HEADER.size : -MAC_SIZE]), version)


def parse_frame(data: bytes, key: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> Frame:
    """Decode one complete frame, length prefix included (no sequence check: see :class:`FrameCodec`)."""
    if len(data) < LENGTH.size:
        raise FrameError("truncated", f"a frame of {len(data)} bytes is shorter than its 4-byte length prefix")
    (length,) = LENGTH.unpack_from(data)
    check_length(length, max_frame)
    got = len(data) - LENGTH.size
    if got < length:
        raise FrameError("truncated", f"a frame announces {length} bytes after its length prefix but has {got}")
    if got > length:
        raise FrameError("trailing", f"{got - length} bytes follow a frame that announces {length} bytes")
    return parse_content(data[LENGTH.size :], key)


class FrameCodec:
    """Both directions of one connection: the key, the next sequence number to send and to receive."""

    def __init__(self, key: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.key = key
        self.max_frame = max_frame
        self.next_send = 0
        self.next_receive = 0

    def rekey(self, key: bytes, *, max_frame: int) -> None:
        """Switch to the session key once the handshake is done; sequence numbers go on counting."""
        self.key = key
        self.max_frame = max_frame

    def encode(self, ftype: FrameType, body: bytes) -> bytes:
        data = encode_frame(ftype, self.next_send, body, self.key, max_frame=self.max_frame)
        self.next_send += 1
        return data

    def decode(self, data: bytes) -> Frame:
        """Decode one complete frame and check that it is the next in sequence."""
        return self._in_sequence(parse_frame(data, self.key, max_frame=self.max_frame))

    async def read(self, reader: asyncio.StreamReader) -> Frame | None:
        """The next frame from ``reader``, or ``None`` if the peer closed the connection between frames."""
        try:
            prefix = await reader.readexactly(LENGTH.size)
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                return None
            raise FrameError(
                "truncated", f"the connection closed inside a length prefix ({len(error.partial)} of 4 bytes)"
            ) from None
        (length,) = LENGTH.unpack(prefix)
        check_length(length, self.max_frame)
        try:
            content = await reader.readexactly(length)
        except asyncio.IncompleteReadError as error:
            raise FrameError(
                "truncated", f"the connection closed after {len(error.partial)} of the {length} bytes of a frame"
            ) from None
        return self._in_sequence(parse_content(content, self.key))

    def _in_sequence(self, frame: Frame) -> Frame:
        expected = self.next_receive
        if frame.seq < expected:
            raise FrameAuthError(
                "replay",
                f"a {frame.type.name} frame with sequence number {frame.seq} arrived when {expected} was expected:"
                " a replayed or reordered frame",
            )
        if frame.seq > expected:
            raise FrameAuthError(
                "gap",
                f"a {frame.type.name} frame with sequence number {frame.seq} arrived when {expected} was expected:"
                " frames were deleted or reordered on the way",
            )
        self.next_receive = expected + 1
        return frame


def _no_constant(name: str) -> JSONValue:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, JSONValue]]) -> JSONObject:
    obj: JSONObject = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def decode_body(body: bytes, what: str) -> JSONObject:
    """A frame body as a JSON object; :class:`FrameError` ("bad-json") if it is not one."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FrameError("bad-json", f"the body of a {what} frame is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise FrameError("bad-json", f"the body of a {what} frame is a JSON {type(value).__name__}, not an object")
    return value


def encode_body(obj: JSONObject) -> bytes:
    """A JSON object as a compact UTF-8 frame body; :class:`FrameError` ("schema") if it is not JSON."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as error:
        raise FrameError("schema", f"a frame body is not JSON: {error}") from None
