"""The transport between real sockets on 127.0.0.1: handshake, PeerManager, attacks and restarts.

Every wait is on a condition with a deadline (``eventually``), never a fixed sleep; ports come from bind(0).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from wolfpack.errors import ConfigError
from wolfpack.runtime.transport import handshake
from wolfpack.runtime.transport.backoff import Backoff
from wolfpack.runtime.transport.frames import (
    LENGTH,
    MAC_SIZE,
    OVERHEAD,
    Frame,
    FrameCodec,
    FrameError,
    FrameType,
    decode_body,
    encode_body,
    encode_frame,
)
from wolfpack.runtime.transport.handshake import HANDSHAKE_KEY, HandshakeRefused, Identity, Session
from wolfpack.runtime.transport.messages import Message
from wolfpack.runtime.transport.peers import PeerManager

KEY = b"the cluster key of the test lab!"
BAD_KEY = b"a key that is not the cluster's!"
CLUSTER = "lab"
BACKOFF = (0.005, 0.05)
DEADLINE = 5.0
LOGGER = "wolfpack.transport"


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 15))


async def eventually(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Wait (in short awaits) until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        await asyncio.sleep(0.002)


def logged(caplog: pytest.LogCaptureFixture, *words: str, level: int = logging.DEBUG) -> list[str]:
    """The transport's log lines (at ``level`` or above) that contain all ``words``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno >= level and all(w in r.getMessage() for w in words)
    ]


@pytest.fixture(autouse=True)
def _transport_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)


class Node:
    """A PeerManager with its callbacks recorded."""

    def __init__(self, node_id: int, *, key: bytes = KEY, fail_on: str | None = None, **options: Any) -> None:
        self.id = node_id
        self.inbox: list[tuple[int, Message]] = []
        self.ups: list[int] = []
        self.downs: list[int] = []
        self.fail_on = fail_on
        options.setdefault("backoff", BACKOFF)
        self.manager = PeerManager(
            node_id,
            CLUSTER,
            key,
            on_message=self._receive,
            on_peer_up=self.ups.append,
            on_peer_down=self.downs.append,
            **options,
        )

    def _receive(self, src: int, message: Message) -> None:
        if message.name == self.fail_on:
            raise RuntimeError("a handler bug")
        self.inbox.append((src, message))

    @property
    def stats(self) -> Any:
        return self.manager.stats

    def connected(self) -> set[int]:
        return self.manager.connected()

    def names(self) -> list[tuple[int, str, dict[str, int]]]:
        return [(src, m.name, dict(m.args)) for src, m in self.inbox]


@asynccontextmanager
async def cluster(*nodes: Node) -> AsyncIterator[None]:
    """Start every node, then tell each the others' addresses (so no port is guessed)."""
    async with AsyncExitStack() as stack:
        for node in nodes:
            await stack.enter_async_context(node.manager)
        for node in nodes:
            for other in nodes:
                if other is not node:
                    node.manager.add_peer(other.id, other.manager.listen_address)
        yield


def all_connected(nodes: list[Node]) -> Callable[[], bool]:
    return lambda: all(n.connected() == {m.id for m in nodes if m is not n} for n in nodes)


def ping(src: int, dst: int, n: int = 0) -> Message:
    return Message("test", "ping", {"src": src, "dst": dst, "n": n})


async def read_reply(reader: asyncio.StreamReader) -> list[Frame]:
    """Handshake frames a listener sent to a raw client, up to its REFUSED (or the end of the connection)."""
    codec, frames = FrameCodec(HANDSHAKE_KEY), []
    try:
        while (frame := await codec.read(reader)) is not None:
            frames.append(frame)
            if frame.type is FrameType.REFUSED:
                break
    except ConnectionError:
        pass
    return frames


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """Whether the other end closed the connection (cleanly, or with a reset because data was left unread)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


def hello(node_id: int, *, cluster: str = CLUSTER, nonce: str = "ab" * 32) -> bytes:
    return encode_body({"version": 1, "node": node_id, "cluster": cluster, "nonce": nonce})


# ------------------------------------------------------------------ three nodes


def test_three_nodes_connect_and_exchange_messages_both_ways(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        nodes = [Node(1), Node(2), Node(3)]
        one, two, three = nodes
        async with cluster(*nodes):
            await eventually(all_connected(nodes), "every node is connected to the two others")
            for a in nodes:
                for b in nodes:
                    if a is not b:
                        assert a.manager.send(b.id, ping(a.id, b.id))
            update = Message("gum", "update", {"seq": 1}, payload={"resource": "ip-1", "state": [1, 2]})
            assert two.manager.broadcast(update) == {1, 3}
            await eventually(lambda: [len(n.inbox) for n in nodes] == [3, 2, 3], "all messages have arrived")
            for node in nodes:
                pings = sorted((src, m.args["src"], m.args["dst"]) for src, m in node.inbox if m.name == "ping")
                assert pings == [(o.id, o.id, node.id) for o in nodes if o is not node]
            assert [(src, m) for src, m in one.inbox if m.machine == "gum"] == [(2, update)]
            assert [(src, m) for src, m in three.inbox if m.machine == "gum"] == [(2, update)]
            # the lower id dials the higher: one connection per pair, in a known direction
            assert {p: i.outbound for p, i in one.manager.links().items()} == {2: True, 3: True}
            assert {p: i.outbound for p, i in two.manager.links().items()} == {1: False, 3: True}
            assert {p: i.outbound for p, i in three.manager.links().items()} == {1: False, 2: False}
            assert [n.stats.frames_sent for n in nodes] == [2, 4, 2]
            assert [n.stats.frames_received for n in nodes] == [3, 2, 3]
            assert [n.stats.links_opened for n in nodes] == [2, 2, 2]
            assert [sorted(n.ups) for n in nodes] == [[2, 3], [1, 3], [1, 2]]
            assert all(not n.stats.rejected and not n.stats.dropped for n in nodes)
            assert logged(caplog, "node 1: node 2 is up (dialed 127.0.0.1:")
            assert logged(caplog, "node 2: node 1 is up (accepted from 127.0.0.1:")
            assert len([t for t in asyncio.all_tasks() if t.get_name().startswith("wolfpack-transport")]) == 6
        # a clean, cancellation-safe shutdown: no task of the transport is left behind
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("wolfpack-transport")] == []

    run(body())


def test_a_message_just_under_the_frame_limit_goes_through() -> None:
    async def body() -> None:
        nodes = [Node(1), Node(2)]
        one, two = nodes
        async with cluster(*nodes):
            await eventually(all_connected(nodes), "nodes 1 and 2 are connected")
            probe = len(Message("gum", "update", {"seq": 1}, payload="").to_body())
            big = Message("gum", "update", {"seq": 1}, payload="é" * ((one.manager.max_frame - OVERHEAD - probe) // 2))
            assert one.manager.max_frame - OVERHEAD - 1 <= len(big.to_body()) <= one.manager.max_frame - OVERHEAD
            assert one.manager.send(2, big) and one.manager.send(2, ping(1, 2))
            await eventually(lambda: len(two.inbox) == 2, "the big message and the ping arrived")
            assert two.inbox == [(1, big), (1, ping(1, 2))]

    run(body())


def test_a_removed_peer_is_no_longer_dialed_until_added_again(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        nodes = [Node(1), Node(2)]
        one, two = nodes
        async with cluster(*nodes):
            await eventually(all_connected(nodes), "nodes 1 and 2 are connected")
            one.manager.remove_peer(2)
            await eventually(lambda: one.downs == [2] and two.downs == [1], "both saw the link go")
            assert one.manager.send(2, ping(1, 2)) is False
            one.manager.add_peer(2, two.manager.listen_address)
            await eventually(all_connected(nodes), "nodes 1 and 2 are connected again")
            assert one.stats.links_opened == 2 and one.ups == [2, 2]

    run(body())


# ------------------------------------------------------------------ wrong key


@pytest.mark.parametrize("bad_id", [0, 9], ids=["bad-node-dials", "bad-node-is-dialed"])
def test_a_node_with_the_wrong_key_is_refused_and_both_sides_log_it(
    caplog: pytest.LogCaptureFixture, bad_id: int
) -> None:
    async def body() -> None:
        good = [Node(1), Node(2), Node(3)]
        bad = Node(bad_id, key=BAD_KEY)
        async with cluster(*good, bad):
            for g in good:
                if bad_id < g.id:  # the bad node dials, the good one refuses
                    refuser, refused = g, bad
                else:  # the good node dials, the bad one refuses
                    refuser, refused = bad, g
                await eventually(
                    lambda: bool(
                        logged(
                            caplog, f"node {refuser.id}: refused node {refused.id} at 127.0.0.1:", "wrong cluster key"
                        )
                        and logged(
                            caplog,
                            f"node {refused.id}: node {refuser.id} at 127.0.0.1:",
                            "refused this node: wrong cluster key",
                        )
                    ),
                    f"node {refuser.id} refused node {refused.id} and both logged it",
                )
            await eventually(all_connected(good), "the good nodes are connected")
            for a in good:
                for b in good:
                    if a is not b:
                        assert a.manager.send(b.id, ping(a.id, b.id))
                assert not a.manager.send(bad_id, ping(a.id, bad_id))
            await eventually(lambda: all(len(g.inbox) == 2 for g in good), "the good nodes have talked")
            assert bad.connected() == set() and bad.inbox == [] and bad.ups == []
            assert all(bad_id not in g.connected() and bad_id not in g.ups for g in good)
            refusing = good if bad_id == 0 else [bad]
            refused_ones = [bad] if bad_id == 0 else good
            assert all(n.stats.rejected["auth"] >= 1 for n in refusing)
            assert all(n.stats.refused_by_peers["auth"] >= 1 for n in refused_ones)
            assert all(r.levelno == logging.WARNING for r in caplog.records if "wrong cluster key" in r.getMessage())

    run(body())


# ------------------------------------------------------------------ garbage from a raw socket

GARBAGE = [
    # (id, bytes sent, reason the listener counts, reason in its REFUSED frame)
    ("http", b"GET / HTTP/1.1\r\nHost: wolfpack\r\n\r\n", "oversized"),
    ("random", bytes(random.Random(5).randrange(256) for _ in range(300)), "oversized"),
    ("tiny-length", LENGTH.pack(5) + b"hello", "too-short"),
    ("bad-mac", encode_frame(FrameType.HELLO, 0, hello(5), BAD_KEY), "bad-mac"),
    ("version", encode_frame(FrameType.HELLO, 0, hello(5), HANDSHAKE_KEY, version=7), "version"),
    ("unknown-type", encode_frame(42, 0, hello(5), HANDSHAKE_KEY), "unknown-type"),
    ("not-hello", encode_frame(FrameType.MESSAGE, 0, b"{}", HANDSHAKE_KEY), "unexpected"),
    ("bad-json", encode_frame(FrameType.HELLO, 0, b"{not json", HANDSHAKE_KEY), "bad-json"),
    ("no-nonce", encode_frame(FrameType.HELLO, 0, b'{"version":1,"node":5,"cluster":"lab"}', HANDSHAKE_KEY), "schema"),
    ("short-nonce", encode_frame(FrameType.HELLO, 0, hello(5, nonce="ab"), HANDSHAKE_KEY), "schema"),
    ("seq-skipped", encode_frame(FrameType.HELLO, 3, hello(5), HANDSHAKE_KEY), "gap"),
    ("other-cluster", encode_frame(FrameType.HELLO, 0, hello(5, cluster="prod"), HANDSHAKE_KEY), "wrong-cluster"),
    ("same-id", encode_frame(FrameType.HELLO, 0, hello(2), HANDSHAKE_KEY), "same-id"),
    ("cut-short", encode_frame(FrameType.HELLO, 0, hello(5), HANDSHAKE_KEY) + b"\x00\x00", "truncated"),
]


def test_garbage_on_a_raw_socket_is_refused_and_the_cluster_keeps_talking(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        nodes = [Node(1), Node(2)]
        one, two = nodes
        async with cluster(*nodes):
            await eventually(all_connected(nodes), "nodes 1 and 2 are connected")
            for name, data, reason in GARBAGE:
                before = two.stats.rejected[reason]
                reader, writer = await asyncio.open_connection(*two.manager.listen_address)
                writer.write(data)
                writer.write_eof()
                frames = await read_reply(reader)
                writer.close()
                assert frames, f"{name}: no reply"
                refusal = decode_body(frames[-1].body, "REFUSED")
                assert (frames[-1].type, refusal["reason"]) == (FrameType.REFUSED, reason), name
                await eventually(lambda: two.stats.rejected[reason] == before + 1, f"{name} is counted as {reason}")
                assert logged(caplog, "node 2: refused", str(refusal["message"]), level=logging.WARNING), name
            # a connection that closes at once is not an error, only a line at INFO
            reader, writer = await asyncio.open_connection(*two.manager.listen_address)
            writer.close()
            await eventually(lambda: two.stats.rejected["closed"] == 1, "the empty connection is noted")
            assert sum(two.stats.rejected.values()) == len(GARBAGE) + 1
            assert logged(caplog, "node 2: refused an unidentified peer at 127.0.0.1:", "over the limit of 4096")
            assert logged(caplog, "node 2: refused node 5 at 127.0.0.1:", "cluster 'prod'")
            # the cluster never noticed
            assert one.manager.send(2, ping(1, 2)) and two.manager.send(1, ping(2, 1))
            await eventually(lambda: len(one.inbox) == len(two.inbox) == 1, "the ping went both ways")
            assert one.downs == two.downs == [] and one.stats.links_opened == 1

    run(body())


# ------------------------------------------------------------------ a relay that replays and alters frames


class Tap:
    """A TCP relay between a dialer and a listener: forwards both ways, records the dialer's frames (one list
    per connection), and can replay one of them or alter the next MESSAGE frame."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sessions: list[list[bytes]] = []
        self.upstreams: list[asyncio.StreamWriter] = []
        self.alter_next_message = False
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Tap:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        host, port = self.server.sockets[0].getsockname()[:2]
        self.address = (host, port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    def messages(self) -> list[bytes]:
        return [f for f in self.sessions[-1] if f[LENGTH.size + 1] == FrameType.MESSAGE]

    def replay(self, frame: bytes) -> None:
        self.upstreams[-1].write(frame)

    async def _relay(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_r, up_w = await asyncio.open_connection(*self.target)
        self._writers += [down_w, up_w]
        frames: list[bytes] = []
        self.sessions.append(frames)
        self.upstreams.append(up_w)
        back = asyncio.create_task(self._pipe(up_r, down_w))
        self._tasks.add(back)
        try:
            while True:
                prefix = await down_r.readexactly(LENGTH.size)
                frame = prefix + await down_r.readexactly(LENGTH.unpack(prefix)[0])
                if self.alter_next_message and frame[LENGTH.size + 1] == FrameType.MESSAGE:
                    self.alter_next_message = False
                    i = len(frame) - MAC_SIZE - 2  # a byte of the body
                    frame = frame[:i] + bytes([frame[i] ^ 0x20]) + frame[i + 1 :]
                frames.append(frame)
                up_w.write(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_w.close()
            down_w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
        except ConnectionError:
            pass
        finally:
            writer.close()


@asynccontextmanager
async def tapped_pair() -> AsyncIterator[tuple[Node, Node, Tap]]:
    """Node 1 dials node 2 through a Tap (node 2 knows no peers, so it never dials)."""
    two = Node(2)
    async with two.manager, Tap(two.manager.listen_address) as tap:
        one = Node(1, peers={2: tap.address})
        async with one.manager:
            await eventually(lambda: one.connected() == {2} and two.connected() == {1}, "1 and 2 connected")
            yield one, two, tap


def test_a_replayed_frame_drops_the_connection_which_then_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with tapped_pair() as (one, two, tap):
            assert one.manager.send(2, ping(1, 2, n=1))
            await eventually(lambda: len(two.inbox) == 1, "the first ping arrived")
            tap.replay(tap.messages()[-1])
            await eventually(lambda: two.stats.rejected["replay"] == 1, "node 2 rejected the replay")
            await eventually(
                lambda: one.stats.links_opened == 2 and one.connected() == {2} and two.connected() == {1},
                "node 1 reconnected",
            )
            assert one.manager.send(2, ping(1, 2, n=2))
            await eventually(lambda: len(two.inbox) == 2, "the second ping arrived")
            assert [m.args["n"] for _, m in two.inbox] == [1, 2]  # the replayed copy was never delivered
            assert logged(
                caplog,
                "node 2: dropped the connection with node 1",
                "sequence number 2",
                "replayed",
                level=logging.WARNING,
            )
            assert (one.downs, one.ups, two.downs, two.ups) == ([2], [2, 2], [1], [1, 1])
            assert sum(two.stats.rejected.values()) == 1
            # no stream of the dead connection is kept (one writer per live connection)
            assert len(one.manager._writers) == len(two.manager._writers) == 1

    run(body())


def test_an_altered_frame_drops_the_connection_which_then_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with tapped_pair() as (one, two, tap):
            tap.alter_next_message = True
            assert one.manager.send(2, ping(1, 2, n=1))
            await eventually(lambda: two.stats.rejected["bad-mac"] == 1, "node 2 rejected the altered frame")
            await eventually(lambda: one.stats.links_opened == 2 and two.connected() == {1}, "node 1 reconnected")
            assert one.manager.send(2, ping(1, 2, n=2))
            await eventually(lambda: len(two.inbox) == 1, "the second ping arrived")
            assert [m.args["n"] for _, m in two.inbox] == [2]  # the altered message was never delivered
            assert logged(
                caplog, "node 2: dropped the connection with node 1", "does not verify", level=logging.WARNING
            )

    run(body())


def test_a_captured_handshake_replayed_on_a_new_connection_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with tapped_pair() as (one, two, tap):
            assert one.manager.send(2, ping(1, 2))
            await eventually(lambda: len(two.inbox) == 1, "the ping arrived")
            captured = b"".join(tap.sessions[0])  # HELLO, PROOF, then the MESSAGE under the session key
            assert [f[LENGTH.size + 1] for f in tap.sessions[0]] == [
                FrameType.HELLO,
                FrameType.PROOF,
                FrameType.MESSAGE,
            ]
            reader, writer = await asyncio.open_connection(*two.manager.listen_address)
            writer.write(captured)
            frames = await read_reply(reader)
            writer.close()
            assert [f.type for f in frames] == [FrameType.CHALLENGE, FrameType.REFUSED]
            assert decode_body(frames[-1].body, "REFUSED")["reason"] == "auth"
            assert two.stats.rejected == {"auth": 1}
            assert logged(caplog, "node 2: refused node 1 at 127.0.0.1:", "wrong cluster key", level=logging.WARNING)
            # the real link was not disturbed, and the replayed message was not delivered
            assert len(two.inbox) == 1 and one.downs == two.downs == []
            assert one.manager.send(2, ping(1, 2, n=1))
            await eventually(lambda: len(two.inbox) == 2, "a later ping arrived")

    run(body())


# ------------------------------------------------------------------ an authenticated peer that misbehaves


async def raw_session(node: Node, node_id: int = 7) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Session]:
    """A hand-driven dialer that completes the handshake with the right key."""
    reader, writer = await asyncio.open_connection(*node.manager.listen_address)
    session = await handshake.dial(
        reader, writer, Identity.from_cluster_key(node_id, CLUSTER, KEY), expect_peer=node.id
    )
    await eventually(lambda: node_id in node.connected(), f"node {node.id} admitted node {node_id}")
    return reader, writer, session


def test_a_message_that_breaks_the_schema_is_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        two = Node(2, fail_on="boom")
        async with two.manager:
            reader, writer, session = await raw_session(two)

            def send(body: bytes) -> None:
                writer.write(session.codec.encode(FrameType.MESSAGE, body))

            send(b'{"machine":"m","name":"n","args":{"x":"1"}}')
            send(b"not json")
            send(Message("m", "boom").to_body())
            send(Message("m", "ok", {"x": 1}).to_body())
            await eventually(lambda: len(two.inbox) == 1, "the good message arrived")
            assert two.names() == [(7, "ok", {"x": 1})]
            assert two.stats.rejected == {"schema": 1, "bad-json": 1}
            assert logged(caplog, "node 2: rejected a message from node 7", "not an integer", "stays up")
            assert logged(caplog, "the message handler failed on m.boom from node 7", level=logging.ERROR)
            assert two.connected() == {7} and two.downs == []
            # and node 2 can still talk back over the same session
            assert two.manager.send(7, Message("m", "hello", {"y": 2}))
            frame = await session.codec.read(reader)
            assert frame is not None and Message.from_body(frame.body) == Message("m", "hello", {"y": 2})
            writer.close()
            await eventually(lambda: two.downs == [7], "node 2 saw node 7 leave")

    run(body())


BAD_SESSION_FRAMES: list[tuple[str, Callable[[FrameCodec], bytes], str, str]] = [
    ("handshake-frame", lambda c: c.encode(FrameType.HELLO, b"{}"), "unexpected", "only MESSAGE frames belong"),
    ("unknown-type", lambda c: encode_frame(77, c.next_send, b"{}", c.key), "unknown-type", "unknown frame type 77"),
    (
        "version",
        lambda c: encode_frame(FrameType.MESSAGE, c.next_send, b"{}", c.key, version=2),
        "version",
        "protocol version 2",
    ),
    ("handshake-key", lambda c: encode_frame(FrameType.MESSAGE, c.next_send, b"{}", HANDSHAKE_KEY), "bad-mac", "MAC"),
    ("replay", lambda c: encode_frame(FrameType.MESSAGE, c.next_send - 1, b"{}", c.key), "replay", "replayed"),
    ("gap", lambda c: encode_frame(FrameType.MESSAGE, c.next_send + 1, b"{}", c.key), "gap", "deleted or reordered"),
    ("oversized", lambda c: LENGTH.pack(1 << 20), "oversized", "over the limit of 8192"),
    ("truncated", lambda c: c.encode(FrameType.MESSAGE, b"{}")[:-5], "truncated", "closed after"),
]


@pytest.mark.parametrize(
    ("make", "reason", "words"), [b[1:] for b in BAD_SESSION_FRAMES], ids=[b[0] for b in BAD_SESSION_FRAMES]
)
def test_a_bad_frame_from_an_authenticated_peer_drops_its_connection(
    caplog: pytest.LogCaptureFixture, make: Callable[[FrameCodec], bytes], reason: str, words: str
) -> None:
    async def body() -> None:
        two = Node(2, max_frame=8192)
        async with two.manager:
            reader, writer, session = await raw_session(two)
            writer.write(session.codec.encode(FrameType.MESSAGE, Message("m", "first").to_body()))
            writer.write(make(session.codec))
            if reason == "truncated":
                writer.write_eof()
            await eventually(lambda: two.downs == [7], "node 2 dropped node 7")
            assert two.names() == [(7, "first", {})]
            assert two.stats.rejected == {reason: 1}
            assert logged(
                caplog, "node 2: dropped the connection with node 7 at 127.0.0.1:", words, level=logging.WARNING
            )
            assert await closed_by_peer(reader)
            writer.close()

    run(body())


def test_a_peer_that_connects_again_replaces_its_old_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        two = Node(2)
        async with two.manager:
            old_reader, old_writer, _ = await raw_session(two)
            new_reader, new_writer, new = await raw_session(two)
            assert await closed_by_peer(old_reader)  # node 2 closed the old one
            assert two.connected() == {7} and two.ups == [7] and two.downs == []
            assert logged(caplog, "node 2: node 7 connected again from 127.0.0.1:", "closed its old connection")
            assert two.manager.send(7, Message("m", "still"))
            frame = await new.codec.read(new_reader)
            assert frame is not None and Message.from_body(frame.body).name == "still"
            old_writer.close()
            new_writer.close()

    run(body())


# ------------------------------------------------------------------ restarts and a peer that is down


def test_a_restarted_peer_is_reconnected_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        one = Node(1)
        async with one.manager:
            first = Node(2)
            async with first.manager:
                address = first.manager.listen_address
                one.manager.add_peer(2, address)
                await eventually(lambda: one.connected() == {2} and first.connected() == {1}, "1 and 2 connected")
                assert one.manager.send(2, ping(1, 2, n=1))
                await eventually(lambda: len(first.inbox) == 1, "the first ping arrived")
            await eventually(lambda: one.downs == [2], "node 1 saw node 2 go")
            assert one.manager.send(2, ping(1, 2, n=2)) is False
            await eventually(
                lambda: bool(logged(caplog, f"node 1: cannot reach node 2 at 127.0.0.1:{address[1]}", "retrying")),
                "node 1 tried to redial and failed",
            )
            second = Node(2, listen=address)  # the same node, restarted on its port
            async with second.manager:
                await eventually(lambda: one.connected() == {2} and second.connected() == {1}, "1 and 2 reconnected")
                assert one.manager.send(2, ping(1, 2, n=3))
                await eventually(lambda: len(second.inbox) == 1, "the ping after the restart arrived")
            assert [m.args["n"] for _, m in second.inbox] == [3]
            assert one.ups == [2, 2] and one.stats.links_opened == 2 and one.stats.dropped["peer-down"] == 1
            assert logged(caplog, "node 1: lost the connection with node 2", "the peer closed the connection")

    run(body())


def test_send_to_a_down_peer_neither_blocks_nor_raises(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        with socket.socket() as placeholder:  # a bound port nobody listens on: connections are refused
            placeholder.bind(("127.0.0.1", 0))
            port = placeholder.getsockname()[1]
            one = Node(1, peers={2: ("127.0.0.1", port)}, max_frame=8192)
            async with one.manager:
                results = [one.manager.send(2, ping(1, 2, n)) for n in range(3)]
                results.append(one.manager.send(5, ping(1, 5)))  # a node it has never heard of
                assert results == [False] * 4
                assert one.manager.broadcast(Message("gum", "update")) == set()
                assert one.stats.dropped == {"peer-down": 5} and one.stats.frames_sent == 0
                assert (
                    len(logged(caplog, "node 1: dropping messages for node 2", "node 2 is down", level=logging.INFO))
                    == 1
                )
                assert len(logged(caplog, "node 1: dropped test.ping for node 2")) == 2  # the rest at debug level
                with pytest.raises(FrameError, match="over the limit of 8192"):
                    one.manager.send(2, Message("gum", "update", payload="x" * 8192))
                await eventually(
                    lambda: bool(logged(caplog, f"node 1: cannot reach node 2 at 127.0.0.1:{port}")),
                    "node 1 tried to dial node 2",
                )
                await eventually(lambda: bool(logged(caplog, "still unreachable")), "node 1 tried again")
                assert one.connected() == set() and one.ups == []

    run(body())


def test_a_peer_that_does_not_read_gets_its_messages_dropped_not_buffered(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        two = Node(2, max_backlog=1 << 20)
        async with two.manager:
            _reader, writer, _ = await raw_session(two)  # ... and never reads again
            big = Message("gum", "update", payload="x" * 500_000)
            results = [two.manager.send(7, big) for _ in range(100)]
            assert False in results, "the kernel took 50 MB without the peer reading"
            first_drop = results.index(False)
            assert all(results[:first_drop]) and two.stats.frames_sent == first_drop
            assert two.stats.dropped["backlog"] == 100 - first_drop and two.connected() == {7}
            assert logged(
                caplog, "node 2: dropping messages for node 7", "bytes waiting to be sent", level=logging.INFO
            )
            writer.close()

    run(body())


# ------------------------------------------------------------------ the handshake alone


async def handshake_pair(dialer: Identity, listener: Identity, expect: int | None = None) -> list[Any]:
    """Run both halves over a socket pair; each result is a Session or the exception it raised."""
    a, b = socket.socketpair()
    reader_a, writer_a = await asyncio.open_connection(sock=a)
    reader_b, writer_b = await asyncio.open_connection(sock=b)

    async def listen() -> Session:
        pending = await handshake.accept(reader_b, writer_b, listener)
        return pending.accept()

    results = await asyncio.gather(
        handshake.dial(reader_a, writer_a, dialer, expect_peer=expect), listen(), return_exceptions=True
    )
    writer_a.close()
    writer_b.close()
    return list(results)


def identity(node_id: int, key: bytes = KEY, cluster: str = CLUSTER) -> Identity:
    return Identity.from_cluster_key(node_id, cluster, key)


def test_handshake_agrees_on_a_fresh_session_key() -> None:
    async def body() -> None:
        first = await handshake_pair(identity(1), identity(2), expect=2)
        second = await handshake_pair(identity(1), identity(2), expect=2)
        for dialer_side, listener_side in (first, second):
            assert isinstance(dialer_side, Session) and isinstance(listener_side, Session)
            assert (dialer_side.peer_id, dialer_side.dialer_id) == (2, 1)
            assert (listener_side.peer_id, listener_side.dialer_id) == (1, 1)
            assert dialer_side.codec.key == listener_side.codec.key != HANDSHAKE_KEY
            assert dialer_side.codec.next_send == listener_side.codec.next_receive == 2
        assert first[0].codec.key != second[0].codec.key  # fresh nonces, fresh key

    run(body())


def test_session_key_is_the_documented_derivation() -> None:
    nonce_d, nonce_l = bytes(range(32)), bytes(range(32, 64))
    base = hmac.new(KEY, b"wolfpack transport", hashlib.sha256).digest()
    expected = hmac.new(base, nonce_d + nonce_l + struct.pack(">QQ", 3, 8), hashlib.sha256).digest()
    assert handshake.derive_base_key(KEY) == base
    assert handshake.derive_session_key(base, nonce_d, nonce_l, 3, 8) == expected
    assert handshake.derive_session_key(base, nonce_d, nonce_l, 8, 3) != expected


@pytest.mark.parametrize(
    ("dialer", "listener", "expect", "refused_by", "reason", "words"),
    [
        (identity(1, BAD_KEY), identity(2), 2, "listener", "auth", "wrong cluster key"),
        (identity(1), identity(2, BAD_KEY), 2, "listener", "auth", "wrong cluster key"),
        (identity(1, cluster="prod"), identity(2), 2, "listener", "wrong-cluster", "cluster 'prod'"),
        (identity(2), identity(2), None, "listener", "same-id", "this node's own"),
        (identity(1), identity(3), 2, "dialer", "wrong-node", "node 2 is answered by node 3"),
    ],
    ids=["dialer-key", "listener-key", "cluster", "same-id", "wrong-node"],
)
def test_handshake_refusals_are_raised_on_both_sides(
    dialer: Identity, listener: Identity, expect: int | None, refused_by: str, reason: str, words: str
) -> None:
    async def body() -> None:
        dialer_side, listener_side = await handshake_pair(dialer, listener, expect)
        for side, error in (("dialer", dialer_side), ("listener", listener_side)):
            assert isinstance(error, HandshakeRefused), (side, error)
            assert (error.reason, error.by_peer) == (reason, side != refused_by)
            assert words in str(error)
        assert dialer_side.peer_id == (listener.node_id if refused_by == "dialer" else expect)
        assert listener_side.peer_id == dialer.node_id

    run(body())


def test_a_listener_that_cannot_prove_the_key_is_refused_by_the_dialer(caplog: pytest.LogCaptureFixture) -> None:
    """An impostor at a peer's address answers the challenge with a made-up proof: the dialer must not trust it."""

    async def body() -> None:
        told: list[Frame] = []

        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            codec = FrameCodec(HANDSHAKE_KEY)
            try:
                await codec.read(reader)  # HELLO
                writer.write(codec.encode(FrameType.CHALLENGE, hello(2)))
                await codec.read(reader)  # PROOF
                writer.write(codec.encode(FrameType.ACCEPT, encode_body({"mac": "00" * 32})))
                if (frame := await codec.read(reader)) is not None:
                    told.append(frame)
            finally:
                writer.close()

        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        async with server:
            one = Node(1, peers={2: server.sockets[0].getsockname()[:2]})
            async with one.manager:
                await eventually(lambda: one.stats.rejected["auth"] >= 2, "node 1 refused the impostor twice")
                assert one.connected() == set() and one.ups == [] and one.stats.links_opened == 0
                assert logged(
                    caplog, "node 1: refused node 2 at 127.0.0.1:", "wrong cluster key", level=logging.WARNING
                )
                assert told and all(f.type is FrameType.REFUSED for f in told)
                assert one.manager.send(2, ping(1, 2)) is False

    run(body())


# ------------------------------------------------------------------ backoff and configuration


def test_backoff_doubles_up_to_the_maximum_with_jitter_and_resets() -> None:
    backoff = Backoff(0.1, 1.0, rng=random.Random(3))
    delays = [backoff.next() for _ in range(7)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert 0.05 <= backoff.next() <= 0.1


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"key": b"short"}, "at least 16 bytes"),
        ({"node_id": -1}, "not a node id"),
        ({"cluster_name": ""}, "cluster name"),
        ({"peers": {1: ("127.0.0.1", 1234)}}, "its own peer"),
        ({"peers": {2: ("127.0.0.1", 0)}}, "port 1-65535"),
        ({"backoff": (1.0, 0.5)}, "0 < min <= max"),
        ({"max_frame": 100}, "max_frame 100"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_message(kwargs: dict[str, Any], words: str) -> None:
    args: dict[str, Any] = {"node_id": 1, "cluster_name": CLUSTER, "key": KEY} | kwargs
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        PeerManager(args.pop("node_id"), args.pop("cluster_name"), args.pop("key"), **args)


def test_listen_address_needs_a_running_manager() -> None:
    manager = PeerManager(1, CLUSTER, KEY)
    with pytest.raises(RuntimeError, match="not running"):
        _ = manager.listen_address


def test_redial_replaces_the_link_at_once_from_the_dialing_side_only() -> None:
    async def body() -> None:
        nodes = [Node(1, backoff=(5.0, 10.0)), Node(2, backoff=(5.0, 10.0))]
        one, two = nodes
        async with cluster(*nodes):
            await eventually(all_connected(nodes), "connected")
            two.manager.redial(1)  # the higher id does not dial: nothing happens
            await asyncio.sleep(0.05)
            assert [n.stats.links_opened for n in nodes] == [1, 1]
            one.manager.redial(2)  # a fresh connection now, not after the 5 s backoff
            await eventually(lambda: one.stats.links_opened == 2 and all_connected(nodes)(), "a new link", 2.0)
            assert one.manager.send(2, ping(1, 2))
            await eventually(lambda: len(two.inbox) == 1, "a message on the new link", 2.0)

    run(body())
