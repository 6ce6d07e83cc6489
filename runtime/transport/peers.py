"""The connection manager: one authenticated TCP link to every peer, kept up with backoff.

Who dials whom: **the lower node id dials the higher**.  Every node listens;
for each peer with a higher id it runs one dialing task that connects, runs
the link until it breaks, waits a backoff delay (exponential, with jitter) and
dials again.  A node accepts an authenticated connection from any node of its
cluster, so a peer that restarts is back as soon as it dials or is dialed; if
a second connection from the same peer arrives (the peer restarted before this
node noticed the old one die), the newer one replaces the older.  Hence one
connection per pair, and no race between two nodes dialing each other.  A
node that joins is dialed by the lower ids once they learn its address
(:meth:`PeerManager.add_peer`), and dials the higher ids itself.

Each connection is one asyncio task (the dialing task for outgoing links, a
task per accepted connection for incoming ones), all in one
:class:`asyncio.TaskGroup` owned by the manager.  No task ever raises: every
failure is logged (logger ``wolfpack.transport``) and counted in
:attr:`PeerManager.stats`; a malformed or forged frame drops its connection
(which is then redialed), a well-authenticated message that breaks the schema
is dropped alone.  :meth:`PeerManager.send` never waits: it hands the frame to
the socket's buffer, or drops it with a log line if the peer is down or too
far behind; the machines above tolerate lost messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

from wolfpack.errors import ConfigError, ProtocolError
from wolfpack.runtime.transport import handshake
from wolfpack.runtime.transport.backoff import Backoff
from wolfpack.runtime.transport.frames import DEFAULT_MAX_FRAME, FrameError, FrameType, check_body_size, reason_of
from wolfpack.runtime.transport.handshake import HANDSHAKE_MAX_FRAME, MAX_NODE_ID, HandshakeRefused, Identity
from wolfpack.runtime.transport.link import Link, LinkInfo, format_address
from wolfpack.runtime.transport.messages import Message
from wolfpack.runtime.transport.stats import TransportStats

log = logging.getLogger("wolfpack.transport")

Address = tuple[str, int]
MessageHandler = Callable[[int, Message], object]
PeerHandler = Callable[[int], object]
MIN_KEY_SIZE = 16


def _check_node_id(what: str, node_id: object) -> int:
    if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 <= node_id <= MAX_NODE_ID:
        raise ConfigError(f"{what} {node_id!r} is not a node id: use an integer from 0 to 2**64-1")
    return node_id


def _check_address(peer: int, address: object) -> Address:
    if not (
        isinstance(address, tuple)
        and len(address) == 2
        and isinstance(address[0], str)
        and isinstance(address[1], int)
        and 0 < address[1] < 65536
    ):
        raise ConfigError(f"the address of node {peer}, {address!r}, is not a (host, port) pair with a port 1-65535")
    return address[0], address[1]


class PeerManager:
    """This node's end of the transport.  Use as ``async with PeerManager(...) as peers:``.

    ``on_message(src, message)``, ``on_peer_up(peer)`` and ``on_peer_down(peer)`` are called from the event
    loop and must not block (typically ``queue.put_nowait``); an exception in them is logged and ignored.
    """

    def __init__(
        self,
        node_id: int,
        cluster_name: str,
        key: bytes,
        *,
        listen: Address = ("127.0.0.1", 0),
        peers: Mapping[int, Address] | None = None,
        on_message: MessageHandler | None = None,
        on_peer_up: PeerHandler | None = None,
        on_peer_down: PeerHandler | None = None,
        backoff: tuple[float, float] = (0.1, 10.0),
        max_frame: int = DEFAULT_MAX_FRAME,
        handshake_timeout: float = 5.0,
        max_backlog: int | None = None,
    ) -> None:
        self.node_id = _check_node_id("this node's id", node_id)
        if not isinstance(cluster_name, str) or not cluster_name:
            raise ConfigError(f"the cluster name {cluster_name!r} is empty or not a string: give the cluster a name")
        if not isinstance(key, bytes) or len(key) < MIN_KEY_SIZE:
            raise ConfigError(
                f"the cluster key is not at least {MIN_KEY_SIZE} bytes: use the same random key of 32 bytes on every"
                " node (for example from /dev/urandom)"
            )
        if not isinstance(max_frame, int) or max_frame < HANDSHAKE_MAX_FRAME:
            raise ConfigError(f"max_frame {max_frame!r} is below {HANDSHAKE_MAX_FRAME} bytes: the default is 1 MiB")
        if not handshake_timeout > 0:
            raise ConfigError(f"handshake_timeout {handshake_timeout!r} is not a positive number of seconds")
        Backoff(*backoff)  # validates
        self.cluster_name = cluster_name
        self.stats = TransportStats()
        self._identity = Identity.from_cluster_key(node_id, cluster_name, key)
        self._listen = listen
        self._peers: dict[int, Address] = {}
        for peer, address in (peers or {}).items():
            self._check_peer(peer, address)
            self._peers[peer] = address
        self._on_message = on_message
        self._on_peer_up = on_peer_up
        self._on_peer_down = on_peer_down
        self._backoff = backoff
        self._max_frame = max_frame
        self._handshake_timeout = handshake_timeout
        self._max_backlog = max_backlog if max_backlog is not None else max(8 << 20, 4 * max_frame)
        self._links: dict[int, Link] = {}
        self._down: dict[int, asyncio.Event] = {}
        self._dialers: dict[int, asyncio.Task[None]] = {}
        self._kicks: dict[int, asyncio.Event] = {}  # set: dial again now, without waiting out the backoff
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._quiet_drops: set[int] = set()  # peers whose dropped sends were logged at INFO in this outage
        self._quiet_unreachable: set[int] = set()
        self._stack: AsyncExitStack | None = None
        self._group: asyncio.TaskGroup | None = None
        self._server: asyncio.Server | None = None
        self._closing = False

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> PeerManager:
        if self._stack is not None:
            raise RuntimeError("this PeerManager is already running; create a new one to start again")
        stack = AsyncExitStack()
        self._group = await stack.enter_async_context(asyncio.TaskGroup())
        self._closing = False
        try:
            host, port = self._listen
            self._server = await asyncio.start_server(self._on_connect, host, port)
        except BaseException:
            self._closing = True
            await stack.aclose()
            self._group = None
            raise
        self._stack = stack
        log.info(
            "node %d: listening on %s for cluster %r",
            self.node_id,
            format_address(self.listen_address),
            self.cluster_name,
        )
        for peer in sorted(self._peers):
            if peer > self.node_id:
                self._start_dialer(peer)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.close()
        for task in list(self._tasks):
            task.cancel()
        stack, self._stack = self._stack, None
        try:
            return bool(await stack.__aexit__(exc_type, exc, tb)) if stack is not None else False
        finally:
            await self._close_writers()
            if self._server is not None:
                await self._server.wait_closed()
            self._server = None
            self._group = None
            self._links.clear()
            self._dialers.clear()

    async def _close_writers(self) -> None:
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            writer.close()
        waits = [asyncio.create_task(_wait_closed(writer)) for writer in writers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=1.0)
            for task in pending:
                task.cancel()

    @property
    def max_frame(self) -> int:
        """The largest frame, in bytes (length prefix included), this node sends or accepts."""
        return self._max_frame

    @property
    def listen_address(self) -> Address:
        """The (host, port) this node listens on, once started (the real port after binding port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the PeerManager is not running: use it in `async with` first")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    # ---------------------------------------------------------------- peers

    def add_peer(self, peer: int, address: Address) -> None:
        """Learn (or update) a peer's address; dial it if its id is higher than this node's."""
        self._check_peer(peer, address)
        self._peers[peer] = address
        if self._group is not None and not self._closing and peer > self.node_id and peer not in self._dialers:
            self._start_dialer(peer)

    def remove_peer(self, peer: int) -> None:
        """Forget a peer: stop dialing it and close its link."""
        self._peers.pop(peer, None)
        task = self._dialers.pop(peer, None)
        if task is not None:
            task.cancel()
        link = self._links.get(peer)
        if link is not None:
            link.close()

    def redial(self, peer: int) -> None:
        """Replace the link to ``peer`` with a fresh connection now (this node dials the higher ids; for a lower id
        nothing is done: it redials, and its new connection replaces the old one here).

        For when the heartbeats say ``peer`` is back after an outage: an old TCP connection may hold data in
        retransmission backoff for seconds after the network healed, while the machines' rounds last a tenth of a
        second; a new connection carries the next messages at once (the old one's backlog is lost, which the
        machines tolerate)."""
        if peer <= self.node_id or peer not in self._peers:
            return
        link = self._links.get(peer)
        if link is not None:
            log.info("node %d: node %d is back: replacing the connection with a fresh one", self.node_id, peer)
            link.close()
        self._kick(peer).set()

    def _kick(self, peer: int) -> asyncio.Event:
        event = self._kicks.get(peer)
        if event is None:
            event = self._kicks[peer] = asyncio.Event()
        return event

    def connected(self) -> set[int]:
        """The peers with a live authenticated link."""
        return {peer for peer, link in self._links.items() if not link.closing}

    def links(self) -> dict[int, LinkInfo]:
        """Address and direction of each live link, for the admin API."""
        return {peer: link.info() for peer, link in self._links.items() if not link.closing}

    def _check_peer(self, peer: int, address: Address) -> None:
        _check_node_id("a peer's id", peer)
        if peer == self.node_id:
            raise ConfigError(f"node {peer} is listed as its own peer: remove it from its peer list")
        _check_address(peer, address)

    def _down_event(self, peer: int) -> asyncio.Event:
        event = self._down.get(peer)
        if event is None:
            event = self._down[peer] = asyncio.Event()
            if peer not in self._links:
                event.set()
        return event

    # ---------------------------------------------------------------- sending

    def send(self, dest: int, message: Message) -> bool:
        """Queue ``message`` for ``dest`` without waiting.  False (and a log line) if dropped because the peer is
        down or too far behind.  Raises :class:`~wolfpack.errors.ProtocolError` if the message cannot be a frame
        (its payload is not JSON, or it exceeds max_frame): that is the caller's bug, not the network's."""
        body = message.to_body()
        check_body_size(len(body), self._max_frame)
        return self._send_body(dest, body, message)

    def broadcast(self, message: Message) -> set[int]:
        """Send to every known or connected peer; return those it was queued for."""
        body = message.to_body()
        check_body_size(len(body), self._max_frame)
        return {peer for peer in sorted(set(self._peers) | set(self._links)) if self._send_body(peer, body, message)}

    def _send_body(self, dest: int, body: bytes, message: Message) -> bool:
        link = self._links.get(dest)
        if link is None or link.closing:
            self._drop(dest, "peer-down", f"node {dest} is down", message)
            return False
        if link.backlog() > self._max_backlog:
            self._drop(dest, "backlog", f"node {dest} has over {self._max_backlog} bytes waiting to be sent", message)
            return False
        link.send(FrameType.MESSAGE, body)
        self.stats.frames_sent += 1
        return True

    def _drop(self, dest: int, reason: str, why: str, message: Message) -> None:
        self.stats.dropped[reason] += 1
        if dest in self._quiet_drops:
            log.debug("node %d: dropped %s.%s for node %d: %s", self.node_id, message.machine, message.name, dest, why)
            return
        self._quiet_drops.add(dest)
        log.info(
            "node %d: dropping messages for node %d (first: %s.%s): %s; further drops are logged at debug level",
            self.node_id,
            dest,
            message.machine,
            message.name,
            why,
        )

    # ---------------------------------------------------------------- tasks

    def _spawn(self, start: Callable[[], Coroutine[Any, Any, None]], name: str) -> asyncio.Task[None]:
        """Run ``start()`` in a task of the group.  The coroutine is made inside the task, so a task cancelled
        before it ran leaves no coroutine behind that was never awaited."""
        assert self._group is not None
        task = self._group.create_task(self._guard(start, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, start: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        try:
            await start()
        except Exception:
            log.exception("node %d: task %s failed unexpectedly; the transport goes on", self.node_id, name)

    def _start_dialer(self, peer: int) -> None:
        task = self._spawn(lambda: self._dial_loop(peer), f"wolfpack-transport-{self.node_id}-dial-{peer}")
        self._dialers[peer] = task
        task.add_done_callback(lambda done: self._dialers.pop(peer) if self._dialers.get(peer) is done else None)

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or self._group is None:
            writer.close()
            return
        self._writers.add(writer)
        self._spawn(lambda: self._serve_inbound(reader, writer), f"wolfpack-transport-{self.node_id}-accept")

    async def _dial_loop(self, peer: int) -> None:
        """Keep one link to ``peer`` up: dial, run it until it breaks, back off, dial again."""
        backoff = Backoff(*self._backoff)
        while True:
            await self._down_event(peer).wait()
            address = self._peers.get(peer)
            if address is None:
                return
            try:
                link = await self._dial(peer, address)
                if link is not None:
                    backoff.reset()
                    self._admit(link)
                    await self._run(link)
            except Exception:
                log.exception("node %d: dialing node %d failed unexpectedly; dialing again", self.node_id, peer)
            kick = self._kick(peer)
            if kick.is_set():
                kick.clear()
                backoff.reset()
                continue
            delay = backoff.next()
            log.debug("node %d: next attempt to reach node %d in %.3f s", self.node_id, peer, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), delay)
            if kick.is_set():
                kick.clear()
                backoff.reset()

    async def _dial(self, peer: int, address: Address) -> Link | None:
        host, port = address
        where = format_address(address)
        writer: asyncio.StreamWriter | None = None
        link: Link | None = None
        try:
            async with asyncio.timeout(self._handshake_timeout):
                reader, writer = await asyncio.open_connection(host, port)
                self._writers.add(writer)
                session = await handshake.dial(
                    reader, writer, self._identity, expect_peer=peer, max_frame=self._max_frame
                )
            link = Link(session, reader, writer, where, outbound=True)
        except HandshakeRefused as refusal:
            self._note_refusal(refusal, where)
        except TimeoutError:
            self._note_unreachable(peer, where, f"no answer within {self._handshake_timeout} s")
        except OSError as error:
            self._note_unreachable(peer, where, str(error) or type(error).__name__)
        finally:
            if link is None and writer is not None:
                self._forget(writer)
        if link is not None:
            self._quiet_unreachable.discard(peer)
        return link

    async def _serve_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        where = format_address(writer.get_extra_info("peername"))
        try:
            try:
                async with asyncio.timeout(self._handshake_timeout):
                    pending = await handshake.accept(reader, writer, self._identity, max_frame=self._max_frame)
            except HandshakeRefused as refusal:
                self._note_refusal(refusal, where)
                return
            except TimeoutError:
                self.stats.rejected["timeout"] += 1
                log.warning(
                    "node %d: dropped a connection from %s: no handshake within %s s",
                    self.node_id,
                    where,
                    self._handshake_timeout,
                )
                return
            except OSError as error:
                log.info("node %d: a connection from %s broke during the handshake: %s", self.node_id, where, error)
                return
            link = Link(pending.accept(), reader, writer, where, outbound=False)
            self._admit(link)
            await self._run(link)
        finally:
            self._forget(writer)

    def _forget(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        self._writers.discard(writer)

    # ---------------------------------------------------------------- links

    def _admit(self, link: Link) -> None:
        """Make ``link`` the peer's link (synchronously, so nothing can come between the check and the switch)."""
        peer = link.peer_id
        old = self._links.get(peer)
        self._links[peer] = link
        self._down_event(peer).clear()
        self._quiet_drops.discard(peer)
        self.stats.links_opened += 1
        if old is not None:
            old.close()
            log.info(
                "node %d: node %d connected again from %s; closed its old connection", self.node_id, peer, link.address
            )
            return
        log.info(
            "node %d: node %d is up (%s %s)",
            self.node_id,
            peer,
            "dialed" if link.outbound else "accepted from",
            link.address,
        )
        self._notify(self._on_peer_up, peer)

    async def _run(self, link: Link) -> None:
        """Read frames from ``link`` until it closes or breaks; deliver messages."""
        why, level = "the peer closed the connection", logging.INFO
        try:
            while True:
                frame = await link.receive()
                if frame is None:
                    break
                if frame.type is not FrameType.MESSAGE:
                    raise FrameError(
                        "unexpected", f"a {frame.type.name} frame after the handshake, where only MESSAGE frames belong"
                    )
                try:
                    message = Message.from_body(frame.body)
                except FrameError as error:
                    self.stats.rejected[error.reason] += 1
                    log.warning(
                        "node %d: rejected a message from node %d at %s: %s; the connection stays up",
                        self.node_id,
                        link.peer_id,
                        link.address,
                        error,
                    )
                    continue
                self._deliver(link.peer_id, message)
        except ProtocolError as error:
            self.stats.rejected[reason_of(error)] += 1
            why, level = str(error), logging.WARNING
        except OSError as error:
            why = f"the connection broke: {error}"
        finally:
            self._forget(link.writer)
            self._remove(link, why, level)

    def _remove(self, link: Link, why: str, level: int) -> None:
        peer = link.peer_id
        if self._links.get(peer) is not link:
            if level >= logging.WARNING:
                log.log(level, "node %d: dropped an old connection with node %d: %s", self.node_id, peer, why)
            else:
                log.debug("node %d: an old connection with node %d closed: %s", self.node_id, peer, why)
            return
        del self._links[peer]
        self._down_event(peer).set()
        if self._closing:
            return
        verb = "dropped" if level >= logging.WARNING else "lost"
        log.log(level, "node %d: %s the connection with node %d at %s: %s", self.node_id, verb, peer, link.address, why)
        self._notify(self._on_peer_down, peer)

    def _deliver(self, peer: int, message: Message) -> None:
        self.stats.frames_received += 1
        if self._on_message is None:
            return
        try:
            self._on_message(peer, message)
        except Exception:
            log.exception(
                "node %d: the message handler failed on %s.%s from node %d; the transport goes on",
                self.node_id,
                message.machine,
                message.name,
                peer,
            )

    def _notify(self, handler: PeerHandler | None, peer: int) -> None:
        if handler is None:
            return
        try:
            handler(peer)
        except Exception:
            log.exception("node %d: the up/down handler failed for node %d; the transport goes on", self.node_id, peer)

    # ---------------------------------------------------------------- logging

    def _note_refusal(self, refusal: HandshakeRefused, where: str) -> None:
        who = "an unidentified peer" if refusal.peer_id is None else f"node {refusal.peer_id}"
        if refusal.by_peer:
            self.stats.refused_by_peers[refusal.reason] += 1
            log.warning("node %d: %s at %s refused this node: %s", self.node_id, who, where, refusal)
        elif refusal.reason == "closed":
            self.stats.rejected["closed"] += 1
            log.info("node %d: %s at %s closed the connection during the handshake", self.node_id, who, where)
        else:
            self.stats.rejected[refusal.reason] += 1
            log.warning("node %d: refused %s at %s: %s", self.node_id, who, where, refusal)

    def _note_unreachable(self, peer: int, where: str, why: str) -> None:
        if peer in self._quiet_unreachable:
            log.debug("node %d: node %d at %s is still unreachable: %s", self.node_id, peer, where, why)
            return
        self._quiet_unreachable.add(peer)
        log.info("node %d: cannot reach node %d at %s (%s); retrying with backoff", self.node_id, peer, where, why)


async def _wait_closed(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.wait_closed()
    except Exception:  # the connection may have been reset: it is closed all the same
        return
