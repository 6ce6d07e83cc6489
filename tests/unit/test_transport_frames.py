"""The transport's wire format and message schema: round trips, and every kind of bad frame rejected with
the right error, reason code and a sentence that says what is wrong."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from wolfpack.errors import AuthenticationError, ProtocolError
from wolfpack.runtime.transport.frames import (
    DEFAULT_MAX_FRAME,
    HEADER,
    LENGTH,
    MAC_SIZE,
    OVERHEAD,
    PROTOCOL_VERSION,
    FrameAuthError,
    FrameCodec,
    FrameError,
    FrameType,
    encode_frame,
    reason_of,
)
from wolfpack.runtime.transport.messages import Message

KEY = hashlib.sha256(b"session key for tests").digest()
OTHER_KEY = hashlib.sha256(b"another session key").digest()


def message_body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def pair() -> tuple[FrameCodec, FrameCodec]:
    return FrameCodec(KEY), FrameCodec(KEY)


# ------------------------------------------------------------------ round trips


def test_frame_layout_is_length_header_body_mac() -> None:
    body = b'{"a":1}'
    data = encode_frame(FrameType.MESSAGE, 7, body, KEY)
    (length,) = LENGTH.unpack_from(data)
    assert length == len(data) - LENGTH.size == HEADER.size + len(body) + MAC_SIZE
    assert HEADER.unpack_from(data, LENGTH.size) == (PROTOCOL_VERSION, FrameType.MESSAGE, 7)
    content = data[LENGTH.size : -MAC_SIZE]
    assert data[-MAC_SIZE:] == hmac.new(KEY, content, hashlib.sha256).digest()
    assert content[HEADER.size :] == body


def test_frames_round_trip_in_sequence() -> None:
    sender, receiver = pair()
    bodies = [b"{}", b'{"x":[1,2,3]}', '{"é":"ü"}'.encode()]
    frames = [receiver.decode(sender.encode(FrameType.MESSAGE, body)) for body in bodies]
    assert [(f.type, f.seq, f.body) for f in frames] == [(FrameType.MESSAGE, i, b) for i, b in enumerate(bodies)]
    assert sender.next_send == receiver.next_receive == 3


def test_message_round_trip_with_and_without_payload() -> None:
    plain = Message("node", "heartbeat_lost", {"peer": 3, "epoch": -(1 << 63)})
    rich = Message("gum", "update", {"seq": 12}, payload={"resource": "ip-1", "props": [1, 2.5, None, True, "x"]})
    for message in (plain, rich):
        assert Message.from_body(message.to_body()) == message
    assert "payload" not in json.loads(plain.to_body())


def test_a_message_fills_a_frame_up_to_the_limit_and_no_further() -> None:
    limit = 4096
    codec = FrameCodec(KEY, max_frame=limit)
    fits = Message("gum", "update", {}, payload="x" * 1000)
    filler = limit - OVERHEAD - len(fits.to_body()) + 1000
    exact = Message("gum", "update", {}, payload="x" * filler).to_body()
    assert len(codec.encode(FrameType.MESSAGE, exact)) == limit
    with pytest.raises(FrameError, match="over the limit of 4096") as error:
        codec.encode(FrameType.MESSAGE, exact + b" ")
    assert error.value.reason == "oversized"


async def _read_all(data: bytes, codec: FrameCodec) -> list[object]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[object] = []
    while (frame := await codec.read(reader)) is not None:
        out.append((frame.type, frame.seq, frame.body))
    return out


def test_stream_reader_round_trip_ends_cleanly_at_eof() -> None:
    sender, receiver = pair()
    data = sender.encode(FrameType.MESSAGE, b"{}") + sender.encode(FrameType.MESSAGE, b"[]")
    assert asyncio.run(_read_all(data, receiver)) == [(FrameType.MESSAGE, 0, b"{}"), (FrameType.MESSAGE, 1, b"[]")]


# ------------------------------------------------------------------ bad frames


def forge(
    *, version: int = PROTOCOL_VERSION, ftype: int = FrameType.MESSAGE, seq: int = 0, body: bytes = b"{}"
) -> bytes:
    content = HEADER.pack(version, ftype, seq) + body
    return LENGTH.pack(len(content) + MAC_SIZE) + content + hmac.new(KEY, content, hashlib.sha256).digest()


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


GOOD = forge(body=b'{"machine":"m","name":"n","args":{}}')

BAD_FRAMES = [
    # (id, bytes, error class, reason, words the message must contain)
    ("truncated-prefix", GOOD[:3], FrameError, "truncated", "shorter than its 4-byte length prefix"),
    ("truncated-body", GOOD[:-1], FrameError, "truncated", "but has"),
    ("trailing-bytes", GOOD + b"\x00", FrameError, "trailing", "1 bytes follow a frame"),
    ("length-too-small", LENGTH.pack(5) + b"hello", FrameError, "too-short", "fewer than the 42 of a header and a MAC"),
    ("oversized-length", LENGTH.pack(DEFAULT_MAX_FRAME) + b"x" * 64, FrameError, "oversized", "over the limit"),
    ("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", FrameError, "oversized", "does not speak the Wolfpack"),
    ("wrong-version", forge(version=2), FrameError, "version", "protocol version 2, but this node speaks version 1"),
    ("unknown-type", forge(ftype=99), FrameError, "unknown-type", "unknown frame type 99"),
    ("type-zero", forge(ftype=0), FrameError, "unknown-type", "unknown frame type 0"),
    ("altered-body", flip(GOOD, len(GOOD) - MAC_SIZE - 3), FrameAuthError, "bad-mac", "does not verify"),
    ("altered-sequence", flip(GOOD, LENGTH.size + 9), FrameAuthError, "bad-mac", "altered on the way"),
    ("altered-mac", flip(GOOD, len(GOOD) - 1), FrameAuthError, "bad-mac", "does not verify"),
    (
        "other-key",
        encode_frame(FrameType.MESSAGE, 0, b"{}", OTHER_KEY),
        FrameAuthError,
        "bad-mac",
        "signed with another key",
    ),
]


@pytest.mark.parametrize(
    ("data", "kind", "reason", "words"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES]
)
def test_bad_frame_is_rejected_with_a_reason(data: bytes, kind: type[ProtocolError], reason: str, words: str) -> None:
    with pytest.raises(kind) as error:
        FrameCodec(KEY).decode(data)
    assert type(error.value) is kind
    assert reason_of(error.value) == reason
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("data", "kind", "reason", "words"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES]
)
def test_bad_frame_on_a_stream_is_rejected_the_same_way(
    data: bytes, kind: type[ProtocolError], reason: str, words: str
) -> None:
    if reason == "trailing":  # on a stream, trailing bytes are the start of the next frame
        reason = "truncated"
    if reason == "truncated":
        words = "closed"
    with pytest.raises(kind) as error:
        asyncio.run(_read_all(data, FrameCodec(KEY)))
    assert reason_of(error.value) == reason
    assert words in str(error.value)


def test_bad_mac_and_replay_are_authentication_errors() -> None:
    assert issubclass(FrameAuthError, AuthenticationError)
    assert issubclass(FrameError, ProtocolError)
    assert not issubclass(FrameError, AuthenticationError)


def test_replayed_frame_is_rejected() -> None:
    sender, receiver = pair()
    first = sender.encode(FrameType.MESSAGE, b"{}")
    receiver.decode(first)
    receiver.decode(sender.encode(FrameType.MESSAGE, b"{}"))
    with pytest.raises(FrameAuthError, match="sequence number 0 arrived when 2 was expected: a replayed") as error:
        receiver.decode(first)
    assert error.value.reason == "replay"


def test_reordered_or_deleted_frame_is_rejected() -> None:
    sender, receiver = pair()
    first, second = sender.encode(FrameType.MESSAGE, b"{}"), sender.encode(FrameType.MESSAGE, b"{}")
    with pytest.raises(FrameAuthError, match="sequence number 1 arrived when 0 was expected") as error:
        receiver.decode(second)
    assert error.value.reason == "gap"
    assert receiver.decode(first).seq == 0  # the rejected frame did not advance the window


def test_sequence_numbers_continue_across_rekey() -> None:
    sender, receiver = pair()
    receiver.decode(sender.encode(FrameType.HELLO, b"{}"))
    sender.rekey(OTHER_KEY, max_frame=DEFAULT_MAX_FRAME)
    after = sender.encode(FrameType.MESSAGE, b"{}")
    with pytest.raises(FrameAuthError, match="does not verify"):
        receiver.decode(after)  # still on the old key
    receiver.rekey(OTHER_KEY, max_frame=DEFAULT_MAX_FRAME)
    assert receiver.decode(after).seq == 1


# ------------------------------------------------------------------ message schema

BAD_MESSAGES = [
    ("not-json", b"{machine", "bad-json", "not valid JSON"),
    ("not-utf8", b'{"machine":"\xff"}', "bad-json", "not valid JSON"),
    ("nan", b'{"machine":"m","name":"n","args":{},"payload":NaN}', "bad-json", "NaN is not JSON"),
    ("duplicate-key", b'{"machine":"m","machine":"n","name":"n","args":{}}', "bad-json", "duplicate key"),
    ("deep-nesting", b"[" * 100_000 + b"]" * 100_000, "bad-json", "not valid JSON"),
    ("array", b"[1, 2]", "bad-json", "a JSON list, not an object"),
    ("arg-string", message_body(machine="m", name="n", args={"seq": "1"}), "schema", "argument seq is '1', not an int"),
    ("arg-float", message_body(machine="m", name="n", args={"seq": 1.0}), "schema", "argument seq is 1.0"),
    ("arg-bool", message_body(machine="m", name="n", args={"up": True}), "schema", "argument up is True"),
    ("arg-huge", message_body(machine="m", name="n", args={"x": 1 << 63}), "schema", "does not fit in 64 bits"),
    ("args-list", message_body(machine="m", name="n", args=[1]), "schema", "not a JSON list"),
    ("arg-name", message_body(machine="m", name="n", args={"a b": 1}), "schema", "argument name 'a b'"),
    ("machine-int", message_body(machine=5, name="n", args={}), "schema", "message machine 5 is not an identifier"),
    ("name-long", message_body(machine="m", name="n" * 65, args={}), "schema", "is not an identifier"),
    ("name-empty", message_body(machine="m", name="", args={}), "schema", "message name '' is not an identifier"),
    ("missing-args", message_body(machine="m", name="n"), "schema", "lacks the fields args"),
    ("extra-field", message_body(machine="m", name="n", args={}, x=1), "schema", "unknown fields x"),
]


@pytest.mark.parametrize(("body", "reason", "words"), [b[1:] for b in BAD_MESSAGES], ids=[b[0] for b in BAD_MESSAGES])
def test_bad_message_body_is_rejected_with_a_reason(body: bytes, reason: str, words: str) -> None:
    with pytest.raises(FrameError) as error:
        Message.from_body(body)
    assert error.value.reason == reason
    assert words in str(error.value)


def test_a_bad_message_cannot_even_be_built_or_sent() -> None:
    with pytest.raises(FrameError, match="argument n is '1', not an integer"):
        Message("m", "e", {"n": "1"})  # type: ignore[dict-item]
    with pytest.raises(FrameError, match="not JSON"):
        Message("m", "e", payload={"x": float("nan")}).to_body()
    with pytest.raises(FrameError, match="not JSON"):
        Message("m", "e", payload={"x": object()}).to_body()  # type: ignore[dict-item]
