"""The heartbeat timer a daemon uses: configuration, sockets and the event fd
around one of two interchangeable engines (C ``_hbtimer`` or Python ``_pytimer``).

The engine is the part that must keep time: a thread that sends at absolute
deadlines, receives, authenticates and decides suspicions.  Everything else
(checking the configuration, binding the sockets, the event fd, the
lifecycle) is written once, here, for both.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import ClassVar, Protocol

from wolfpack.runtime.heartbeat import _pytimer
from wolfpack.runtime.heartbeat._config import Address, bind_sockets, check_peers, check_timer
from wolfpack.runtime.heartbeat._wire import derive_mac_key


def _c_engines() -> ModuleType | None:
    """The C extension, or None if it did not build (then only the Python twin is available)."""
    try:
        return importlib.import_module("wolfpack.runtime.heartbeat._hbtimer")
    except ImportError:
        return None


DEFAULT_PERIOD_MS = 100
DEFAULT_MISSED_THRESHOLD = 5

STATS_KEYS = ("ticks", "sent", "send_errors", "received", "rejected", "rejected_malformed", "rejected_unknown",
              "rejected_mac", "rejected_replay", "missed_deadlines", "events_dropped", "extra_rounds",
              "max_send_lateness_us",
              "max_receive_gap_us", "cpu_us", "thread_errno")


class _Engine(Protocol):
    """What ``_hbtimer.Engine`` and ``_pytimer.Engine`` both are."""

    def __init__(self, node_id: int, mac_key: bytes, incarnation: int, fds: Sequence[int],
                 peers: Sequence[tuple[int, Sequence[Address]]], period_ns: int, threshold: int,
                 notify_fd: int, lease_fd: int = -1) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def set_epoch(self, epoch: int, members: int = 0, /) -> None: ...
    def read_events(self) -> list[tuple[str, int, int]]: ...
    def last_seen(self) -> dict[int, list[int | None]]: ...
    def vouches(self) -> dict[int, tuple[int | None, int, int]]: ...
    def stats(self) -> dict[str, int]: ...
    def recent_lateness_us(self) -> list[int]: ...


class BaseHeartbeatTimer:
    """Sends and watches authenticated UDP heartbeats on every network, in its own thread.

    ``networks[i]`` is this node's (bind address, port) on network ``i``;
    ``peers[p][i]`` is peer ``p``'s address on network ``i``.  The sockets are
    bound in the constructor (port 0 picks a free port; :meth:`addresses`
    tells which), so peers may be given then or later with :meth:`set_peers`,
    up to :meth:`start`.

    A peer becomes *suspect* when no valid heartbeat from it arrived on any
    network for more than ``missed_threshold`` periods (checked at each of
    this node's periods, so the event comes within one more period), and is
    *back* at its next valid heartbeat.  Every peer counts as alive at
    :meth:`start`.  Each transition is reported once, as ``("suspect", p)`` or
    ``("back", p)`` from :meth:`read_events`; :meth:`fileno` is readable
    while events are pending, for ``loop.add_reader``.

    Every heartbeat carries the membership epoch this node installed
    (:meth:`set_epoch`, 0 until then).  A valid heartbeat from a peer at a
    newer epoch is reported as ``("ahead", p, epoch)``, once per peer until the
    next :meth:`set_epoch` (the rule of ``spec/heartbeat.py``: a membership was
    committed without this node).  A new epoch is sent at once, in a round out
    of turn (``extra_rounds`` in :meth:`stats`).

    :meth:`stop` joins the thread and closes the sockets; the event fd stays
    open so pending events can still be read, until :meth:`close` (or the
    end of a ``with`` block).  A stopped timer cannot be started again: make
    a new one (it gets a new incarnation, which its peers accept).
    """

    implementation: ClassVar[str]
    _engine_type: ClassVar[type[_Engine]]

    def __init__(self, node_id: int, key: bytes, networks: Sequence[Address],
                 peers: Mapping[int, Sequence[Address]] | None = None, period_ms: int = DEFAULT_PERIOD_MS,
                 missed_threshold: int = DEFAULT_MISSED_THRESHOLD, lease: Path | None = None) -> None:
        self._state = "closed"  # until the sockets and the event fd exist
        self._lifecycle = threading.Lock()  # start, stop and close, from whichever thread
        self._sockets: list[socket.socket] = []
        self._notify_fd = -1
        self._config = check_timer(node_id, key, networks, period_ms, missed_threshold)
        self._mac_key = derive_mac_key(self._config.key)
        self._peers: dict[int, tuple[Address, ...]] = {}
        self._engine: _Engine | None = None
        self._incarnation = 0
        self._epoch = 0
        self._members = 0
        self._lease_path = lease
        self._lease_fd = -1
        self._sockets = bind_sockets(self._config)
        self._addresses = [(name[0], name[1]) for name in (s.getsockname() for s in self._sockets)]
        self._notify_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._state = "new"
        try:
            if peers:
                self.set_peers(peers)
        except BaseException:
            self.close()
            raise

    # -- configuration ----------------------------------------------------

    @property
    def node_id(self) -> int:
        return self._config.node_id

    @property
    def period_ms(self) -> int:
        return self._config.period_ms

    @property
    def missed_threshold(self) -> int:
        return self._config.missed_threshold

    @property
    def incarnation(self) -> int:
        """Random for each start (0 before the first); peers tell a restart from a replay by it."""
        return self._incarnation

    def addresses(self) -> list[Address]:
        """The bound (address, port) of each network, in order (known even after stop)."""
        return list(self._addresses)

    @property
    def epoch(self) -> int:
        """The membership epoch this node's heartbeats carry."""
        return self._epoch

    @property
    def members(self) -> frozenset[int]:
        """The members of the membership this node's heartbeats carry."""
        return frozenset(k for k in range(64) if self._members >> k & 1)

    def set_epoch(self, epoch: int, members: Iterable[int] = ()) -> None:
        """This node installed membership ``epoch`` with ``members``: its heartbeats carry them from now on, and
        a peer is reported ``("ahead", p, e)`` again if it is at a newer one.  Any time, from any thread."""
        if not 0 <= epoch < 2**64:
            raise ValueError(f"epoch must be in 0..2**64-1, got {epoch}")
        mask = 0
        for k in members:
            if not 0 <= k < 64:
                raise ValueError(f"member ids must be in 0..63, got {k}")
            mask |= 1 << k
        with self._lifecycle:
            self._epoch, self._members = epoch, mask
            if self._engine is not None and self._state == "running":
                self._engine.set_epoch(epoch, mask)

    def set_peers(self, peers: Mapping[int, Sequence[Address]]) -> None:
        """Replace the peers; only before :meth:`start`."""
        checked = check_peers(self._config, peers)
        with self._lifecycle:
            if self._state != "new":
                raise RuntimeError(f"set_peers() on a {self._state} heartbeat timer; peers are fixed once started")
            self._peers = checked

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        with self._lifecycle:
            self._start()

    def _start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"start() on a {self._state} heartbeat timer; create a new HeartbeatTimer instead")
        self._incarnation = secrets.randbits(64)
        if self._lease_path is not None and self._lease_fd < 0:
            self._lease_fd = os.open(self._lease_path, os.O_RDWR | os.O_CLOEXEC)
        engine = self._engine_type(
            self._config.node_id, self._mac_key, self._incarnation, [s.fileno() for s in self._sockets],
            list(self._peers.items()), self._config.period_ms * 1_000_000, self._config.missed_threshold,
            self._notify_fd, self._lease_fd,
        )
        engine.set_epoch(self._epoch, self._members)
        engine.start()
        self._engine = engine
        self._state = "running"

    def stop(self) -> None:
        """Stop the thread (waiting for it) and close the sockets; idempotent."""
        with self._lifecycle:
            self._stop()

    def _stop(self) -> None:
        if self._state == "running" and self._engine is not None:
            self._engine.stop()
        if self._state in ("new", "running"):
            self._state = "stopped"
        for sock in self._sockets:
            sock.close()
        if self._lease_fd >= 0:
            os.close(self._lease_fd)
            self._lease_fd = -1

    def close(self) -> None:
        """:meth:`stop`, and release the event fd too; idempotent."""
        with self._lifecycle:
            self._stop()
            if self._notify_fd >= 0:
                os.close(self._notify_fd)
                self._notify_fd = -1
            self._state = "closed"

    def __enter__(self) -> BaseHeartbeatTimer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_state", "closed") != "closed":
            self.close()

    # -- what the loop reads ----------------------------------------------

    def fileno(self) -> int:
        """An eventfd, readable while :meth:`read_events` has something to return."""
        if self._notify_fd < 0:
            raise ValueError("the heartbeat timer is closed")
        return self._notify_fd

    def read_events(self) -> list[tuple[str, int, int]]:
        """Drain the pending ``("suspect" | "back" | "ahead", peer, epoch)`` events, oldest first; never blocks.
        ``epoch`` is the peer's epoch for ``"ahead"`` (the loop compares it with what it installed since), else 0."""
        if self._notify_fd >= 0:
            with contextlib.suppress(BlockingIOError):  # first reset the fd, then drain: no wake-up is lost
                os.eventfd_read(self._notify_fd)
        return self._engine.read_events() if self._engine is not None else []

    def last_seen(self) -> dict[int, list[int | None]]:
        """Per peer, per network: ``time.monotonic_ns()`` of its last valid heartbeat, or None."""
        if self._engine is None:
            return {peer: [None] * len(self._config.networks) for peer in self._peers}
        return self._engine.last_seen()

    def vouches(self) -> dict[int, tuple[int | None, int, frozenset[int]]]:
        """Per peer, from its last valid heartbeat: when it had last heard this node (``time.monotonic_ns()`` of
        this node: the heartbeat's arrival minus the age it gave; None: it had not), its installed epoch and that
        membership's members.  What the lease rests on: a quorum that says it hears this node."""
        if self._engine is None:
            return {peer: (None, 0, frozenset()) for peer in self._peers}
        return {peer: (at, epoch, frozenset(k for k in range(64) if members >> k & 1))
                for peer, (at, epoch, members) in self._engine.vouches().items()}

    def epochs(self) -> dict[int, int]:
        """Per peer: the membership epoch its last valid heartbeat carried (0 before any)."""
        return {peer: epoch for peer, (_, epoch, _members) in self.vouches().items()}

    def stats(self) -> dict[str, int]:
        """Counters and figures: ``sent``, ``received``, ``rejected`` (= malformed + unknown sender + bad MAC +
        replay, each also given), ``send_errors``, ``ticks``, ``missed_deadlines`` (periods skipped because the
        thread was more than a period late), ``max_send_lateness_us`` (against the absolute deadlines),
        ``max_receive_gap_us`` (longest silence of a peer between two valid heartbeats, while not suspect),
        ``cpu_us`` (the thread's CPU time), ``events_dropped``, ``extra_rounds`` (rounds out of turn: new
        epochs), ``thread_errno`` (non-zero if the thread died)."""
        if self._engine is None:
            return dict.fromkeys(STATS_KEYS, 0)
        return self._engine.stats()

    def recent_lateness_us(self) -> list[int]:
        """How late each of the most recent sends (up to 4096) left against its deadline, oldest first."""
        return self._engine.recent_lateness_us() if self._engine is not None else []

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} node={self.node_id} {self._state} period={self.period_ms}ms "
                f"threshold={self.missed_threshold} networks={self._addresses}>")


class PyHeartbeatTimer(BaseHeartbeatTimer):
    """The heartbeat timer with the pure-Python engine (a ``threading.Thread``; needs the GIL to keep time)."""

    implementation = "python"
    _engine_type = _pytimer.Engine


def _c_timer_class() -> type[BaseHeartbeatTimer] | None:
    engines = _c_engines()
    if engines is None:
        return None
    engine_type: type[_Engine] = engines.Engine

    class CHeartbeatTimer(BaseHeartbeatTimer):
        """The heartbeat timer with the C engine (a POSIX thread that runs without the GIL)."""

        implementation = "c"
        _engine_type = engine_type

    CHeartbeatTimer.__qualname__ = "CHeartbeatTimer"
    return CHeartbeatTimer


CHeartbeatTimer = _c_timer_class()
