"""The heartbeat engine in pure Python: the twin of the C module ``_hbtimer``.

Same API as ``_hbtimer`` (``Engine``, ``sha256``, ``hmac_sha256``, ``encode``,
``decode``, ``DATAGRAM_LEN``, ``MAX_NETWORKS``) and the same behaviour, so the
tests run unchanged against both.  The thread keeps absolute deadlines on
``time.monotonic_ns()`` and waits with ``selectors``; unlike the C thread it
needs the GIL to run, so a busy interpreter delays it by up to the switch
interval (5 ms by default).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from wolfpack.runtime.heartbeat._config import MAX_NETWORKS
from wolfpack.runtime.heartbeat._wire import (
    AGE_NEVER,
    AGE_SLOTS,
    DATAGRAM_LEN,
    HEADER,
    age_ms,
    decode,
    encode,
    hmac_sha256,
    mac_ok,
    sender,
    sha256,
    well_formed,
)

__all__ = ["DATAGRAM_LEN", "MAX_NETWORKS", "Engine", "decode", "encode", "hmac_sha256", "sha256"]

RETIRED = 8  # incarnations remembered per peer, to refuse replays of old lives
LATENESS_RING = 4096
EVENT_CAP = 1024
RECV_BURST = 64
LEASE_MAGIC = b"WPLEASE1"  # runtime/monitor/lease.py: the page the monitors enforce
LEASE_SIZE = 64
LEASE_REVOKED = 16  # offset of the int64 "revoked" field


@dataclass
class _Peer:
    id: int
    addresses: tuple[tuple[str, int], ...]
    last_seen: list[int] = field(default_factory=list)  # 0: never
    last_seq: list[int] = field(default_factory=list)
    incarnation: int | None = None
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=RETIRED))
    alive_since: int = 0
    last_valid: int = 0
    suspect: bool = False
    ahead: bool = False  # reported at a newer epoch than this node's, since this node last installed one
    epoch: int = 0  # the epoch its last valid heartbeat carried
    members: int = 0  # ... and the members of that epoch
    vouched_at: int = 0  # this node's clock: when the peer last heard this node (arrival - its age); 0: never
    revoked_for: int = 0  # the epoch this peer's heartbeats revoked the lease for (reported once)


_COUNTERS = ("ticks", "sent", "send_errors", "received", "rejected_malformed", "rejected_unknown", "rejected_mac",
             "rejected_replay", "missed_deadlines", "events_dropped", "extra_rounds")


class Engine:
    """Engine(node_id, mac_key, incarnation, fds, peers, period_ns, threshold, notify_fd)

    The heartbeat thread.  It borrows the socket and notify descriptors: the
    caller keeps them open until :meth:`stop` has returned.
    """

    def __init__(self, node_id: int, mac_key: bytes, incarnation: int, fds: Sequence[int],
                 peers: Sequence[tuple[int, Sequence[tuple[str, int]]]], period_ns: int, threshold: int,
                 notify_fd: int, lease_fd: int = -1) -> None:
        if not 0 <= node_id <= 0xFFFF or len(mac_key) != 32 or period_ns < 1 or threshold < 1 or notify_fd < 0:
            raise ValueError("node_id must be in 0..65535, mac_key 32 bytes, period_ns and threshold positive, "
                             "notify_fd an open descriptor")
        if not 1 <= len(fds) <= MAX_NETWORKS:
            raise ValueError(f"between 1 and {MAX_NETWORKS} networks are supported")
        self._node_id = node_id
        self._mac_key = bytes(mac_key)
        self._incarnation = incarnation
        self._fds = list(fds)
        self._period_ns = period_ns
        self._threshold = threshold
        self._notify_fd = notify_fd
        self._peers: dict[int, _Peer] = {}
        for peer_id, addresses in peers:
            if not 0 <= peer_id <= 0xFFFF or peer_id == node_id:
                raise ValueError(f"peer id {peer_id} must be in 0..65535 and differ from the own node id")
            if len(addresses) != len(fds):
                raise ValueError(f"peer {peer_id} needs one address per network ({len(fds)})")
            n = len(fds)
            self._peers[peer_id] = _Peer(peer_id, tuple((h, p) for h, p in addresses), [0] * n, [0] * n)
        self._seq = 0
        self._epoch = 0  # the membership epoch this node installed (guarded by the lock)
        self._members = 0  # ... and its members
        self._lease_fd = lease_fd
        self._lease: mmap.mmap | None = None
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._max_lateness_ns = self._max_gap_ns = self._cpu_ns = 0
        self._thread_errno = 0
        self._lateness_us: deque[int] = deque(maxlen=LATENESS_RING)
        self._events: deque[tuple[str, int, int]] = deque()
        self._thread: threading.Thread | None = None
        self._stop_fd = -1
        self._kick_fd = -1
        self._stopped = False

    # -- Python-facing methods ------------------------------------------------

    def start(self) -> None:
        if self._thread is not None or self._stopped:
            raise RuntimeError("this engine has already been started; create a new one")
        if self._lease_fd >= 0:
            self._lease = mmap.mmap(self._lease_fd, LEASE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            if self._lease[:8] != LEASE_MAGIC:
                self._lease.close()
                self._lease = None
                raise OSError(errno.EINVAL, "the lease descriptor is not a Wolfpack lease page")
        self._stop_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._kick_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        socks = [socket.socket(fileno=os.dup(fd)) for fd in self._fds]
        t0 = time.monotonic_ns()
        for peer in self._peers.values():
            peer.alive_since = t0
        self._thread = threading.Thread(target=self._run, args=(socks, t0), name="heartbeat-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        if self._thread is None:
            return
        os.eventfd_write(self._stop_fd, 1)
        self._thread.join()
        self._thread = None
        os.close(self._stop_fd)
        os.close(self._kick_fd)
        self._stop_fd = self._kick_fd = -1
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def set_epoch(self, epoch: int, members: int = 0) -> None:
        if not 0 <= epoch < 2**64 or not 0 <= members < 2**64:
            raise OverflowError(f"epoch {epoch} and members {members} must fit 64 bits")
        with self._lock:
            changed = epoch != self._epoch or members != self._members
            self._epoch = epoch
            self._members = members
            for peer in self._peers.values():
                peer.ahead = False
        if changed and self._thread is not None and not self._stopped:  # announce it now, out of turn
            os.eventfd_write(self._kick_fd, 1)

    def read_events(self) -> list[tuple[str, int, int]]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events

    def last_seen(self) -> dict[int, list[int | None]]:
        with self._lock:
            return {p.id: [t or None for t in p.last_seen] for p in self._peers.values()}

    def vouches(self) -> dict[int, tuple[int | None, int, int]]:
        with self._lock:
            return {p.id: (p.vouched_at or None, p.epoch, p.members) for p in self._peers.values()}

    def stats(self) -> dict[str, int]:
        with self._lock:
            figures = dict(self._counters)
            rejected = sum(figures[k] for k in _COUNTERS if k.startswith("rejected_"))
            # the same keys, in the same order, as the C engine
            return {
                **{k: figures[k] for k in _COUNTERS[:4]}, "rejected": rejected,
                **{k: figures[k] for k in _COUNTERS[4:]},
                "max_send_lateness_us": self._max_lateness_ns // 1000,
                "max_receive_gap_us": self._max_gap_ns // 1000,
                "cpu_us": self._cpu_ns // 1000,
                "thread_errno": self._thread_errno,
            }

    def recent_lateness_us(self) -> list[int]:
        with self._lock:
            return list(self._lateness_us)

    # -- the thread -----------------------------------------------------------

    def _run(self, socks: list[socket.socket], t0: int) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._stop_fd, selectors.EVENT_READ, None)
            selector.register(self._kick_fd, selectors.EVENT_READ, -1)
            for index, sock in enumerate(socks):
                selector.register(sock, selectors.EVENT_READ, index)
            self._send_round(socks, t0, 0)
            next_deadline = t0 + self._period_ns
            while True:
                now = time.monotonic_ns()
                if now >= next_deadline:
                    skipped = (now - next_deadline) // self._period_ns
                    self._send_round(socks, next_deadline, skipped)  # against the oldest deadline not yet served
                    next_deadline += (skipped + 1) * self._period_ns
                    for sock_index, sock in enumerate(socks):
                        self._receive_burst(sock, sock_index)
                    self._check_peers(time.monotonic_ns())
                    continue
                for key, _ in selector.select((next_deadline - now) / 1e9):
                    if key.data is None:
                        return
                    if key.data == -1:
                        with contextlib.suppress(BlockingIOError):
                            os.eventfd_read(self._kick_fd)
                        self._send_round(socks, -1, 0)
                        continue
                    self._receive_burst(socks[key.data], key.data)
        except OSError as exc:
            with self._lock:
                self._thread_errno = exc.errno or -1
        finally:
            selector.close()
            for sock in socks:
                sock.close()

    def _send_round(self, socks: list[socket.socket], deadline: int, skipped: int) -> None:
        """One heartbeat to every peer on every network; ``deadline`` < 0: a round out of turn (a new epoch to
        announce), not counted as a tick nor in the lateness figures."""
        now = time.monotonic_ns()
        late = max(0, now - deadline) if deadline >= 0 else 0
        sent = errors = 0
        ages = [AGE_NEVER] * AGE_SLOTS
        if self._node_id < AGE_SLOTS:
            ages[self._node_id] = 0
        with self._lock:
            epoch, members = self._epoch, self._members
            for peer in self._peers.values():
                if peer.id < AGE_SLOTS:
                    ages[peer.id] = age_ms(now, max(peer.last_seen) or None)
        for index, sock in enumerate(socks):
            self._seq += 1
            datagram = encode(self._mac_key, self._node_id, self._incarnation, self._seq, epoch, members, ages)
            for peer in self._peers.values():
                try:
                    sock.sendto(datagram, peer.addresses[index])
                    sent += 1
                except OSError:
                    errors += 1
        cpu = time.thread_time_ns()
        with self._lock:
            c = self._counters
            c["sent"] += sent
            c["send_errors"] += errors
            if deadline < 0:
                c["extra_rounds"] += 1
                return
            c["ticks"] += 1
            c["missed_deadlines"] += skipped
            self._max_lateness_ns = max(self._max_lateness_ns, late)
            self._lateness_us.append(late // 1000)
            self._cpu_ns = cpu

    def _receive_burst(self, sock: socket.socket, net: int) -> None:
        for _ in range(RECV_BURST):
            try:
                datagram = sock.recv(DATAGRAM_LEN + 1)  # one byte more: an oversized datagram is seen as malformed
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an ICMP error reported on the socket: nothing more to read now
            now = time.monotonic_ns()
            with self._lock:
                self._accept(net, datagram, now)

    def _accept(self, net: int, datagram: bytes, now: int) -> None:
        """Judge one datagram received on network ``net``.  Called with the lock held."""
        c = self._counters
        if not well_formed(datagram):
            c["rejected_malformed"] += 1
            return
        peer = self._peers.get(sender(datagram))
        if peer is None:
            c["rejected_unknown"] += 1
            return
        if not mac_ok(self._mac_key, datagram):
            c["rejected_mac"] += 1
            return
        _, _, _, incarnation, seq, epoch, members, *ages = HEADER.unpack_from(datagram)
        if incarnation == peer.incarnation:
            if seq <= peer.last_seq[net]:
                c["rejected_replay"] += 1
                return
        elif incarnation in peer.retired:
            c["rejected_replay"] += 1
            return
        else:  # a new life of that peer
            if peer.incarnation is not None:
                peer.retired.append(peer.incarnation)
            peer.incarnation = incarnation
            peer.last_seq = [0] * len(peer.last_seq)
        peer.last_seq[net] = seq
        peer.last_seen[net] = now
        peer.alive_since = now
        c["received"] += 1
        if peer.suspect:
            peer.suspect = False
            self._push_event("back", peer.id, 0)
        elif peer.last_valid:
            self._max_gap_ns = max(self._max_gap_ns, now - peer.last_valid)
        peer.last_valid = now
        peer.epoch, peer.members = epoch, members
        if self._node_id < AGE_SLOTS:
            age = ages[self._node_id]
            peer.vouched_at = 0 if age == AGE_NEVER else now - age * 1_000_000
        if epoch > self._epoch and not peer.ahead:
            peer.ahead = True
            self._push_event("ahead", peer.id, epoch)
        # a newer membership that leaves this node out: revoke the lease now (see the C engine)
        if (epoch > self._epoch and self._node_id < AGE_SLOTS and not members >> self._node_id & 1
                and peer.revoked_for < epoch):
            peer.revoked_for = epoch
            if self._lease is not None:
                field = ctypes.c_int64.from_buffer(self._lease, LEASE_REVOKED)
                if field.value < epoch:
                    field.value = epoch
                del field
            self._push_event("revoked", peer.id, epoch)

    def _check_peers(self, now: int) -> None:
        silence_limit = self._period_ns * self._threshold
        with self._lock:
            for peer in self._peers.values():
                if not peer.suspect and now - peer.alive_since > silence_limit:
                    peer.suspect = True
                    self._push_event("suspect", peer.id, 0)

    def _push_event(self, kind: str, peer_id: int, epoch: int) -> None:
        """Queue an event and wake the loop.  Called with the lock held."""
        if len(self._events) == EVENT_CAP:
            self._events.popleft()
            self._counters["events_dropped"] += 1
        self._events.append((kind, peer_id, epoch))
        with contextlib.suppress(BlockingIOError):  # the counter is full: the fd is readable anyway
            os.eventfd_write(self._notify_fd, 1)
