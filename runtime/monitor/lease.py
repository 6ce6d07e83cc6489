"""The lease a node's resource monitors enforce: one small shared page, written by the daemon, read by the monitors.

A node's resources may run only while its daemon is a member of a quorate
membership.  The daemon proves it every heartbeat period by writing a new
expiry (``CLOCK_MONOTONIC``, the same clock in every process of the machine)
into the page: the time it last heard a quorum of its membership plus
``timing.lease_ms``.  A stalled, deadlocked or isolated daemon writes
nothing, and every monitor terminates every resource it hosts when the
expiry passes, without asking the daemon (:mod:`.process`).  The heartbeat
thread (C, or its twin) may *revoke* the lease at once: it sees a peer's
heartbeat carry a newer membership epoch while this node is Stable in an
older one (``peer_is_ahead`` of ``spec/membership.py``), so the others are
about to take this node's groups over.  A revocation sticks until the daemon
installs a newer epoch (:meth:`LeasePage.clear_revoked`).

Layout, little-endian, every field 8 bytes and aligned (so one store is one
write the other processes see whole)::

    0   magic        b"WPLEASE1"
    8   expiry_ns    int64: the lease holds while CLOCK_MONOTONIC < expiry_ns; 0: no lease
    16  revoked      int64: non-zero: revoked, by a membership of this epoch that left this node out
    24  generation   int64: counts the daemon's writes (a monitor tells a renewal from an old value)
    32  daemon_pid   int64: the daemon that writes it
"""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path

from wolfpack.errors import MonitorError

MAGIC = b"WPLEASE1"
SIZE = 64
_EXPIRY, _REVOKED, _GENERATION, _PID = 8, 16, 24, 32


@dataclass(frozen=True)
class Lease:
    """One reading of the page."""

    expiry_ns: int
    revoked: int
    generation: int
    daemon_pid: int

    def fresh(self, now_ns: int | None = None) -> bool:
        """The lease holds now: not revoked and not expired."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        return not self.revoked and now < self.expiry_ns

    def left_ms(self, now_ns: int | None = None) -> float:
        now = time.monotonic_ns() if now_ns is None else now_ns
        return 0.0 if self.revoked else max(0.0, (self.expiry_ns - now) / 1e6)


class LeasePage:
    """The page, mapped into this process (the daemon creates it; monitors and the heartbeat thread attach)."""

    def __init__(self, path: Path, fd: int, writable: bool) -> None:
        self.path = path
        self._fd = fd
        self._map: mmap.mmap | None = mmap.mmap(fd, SIZE, mmap.MAP_SHARED,
                                                mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
        self._writable = writable
        if writable:
            self._fields = {off: ctypes.c_int64.from_buffer(self._map, off)
                            for off in (_EXPIRY, _REVOKED, _GENERATION, _PID)}

    @classmethod
    def create(cls, path: Path) -> LeasePage:
        """A new page (no lease, not revoked), replacing any old one at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".new")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            os.pwrite(fd, MAGIC, 0)
            os.replace(tmp, path)
        except OSError as exc:
            os.close(fd)
            raise MonitorError(f"cannot create the lease page {path}: {exc.strerror}; check the run directory") from exc
        page = cls(path, fd, writable=True)
        page._fields[_PID].value = os.getpid()
        return page

    @classmethod
    def attach(cls, path: Path, writable: bool = False) -> LeasePage:
        """Map an existing page (a monitor reads it; the heartbeat thread's twin revokes through it)."""
        try:
            fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        except OSError as exc:
            raise MonitorError(f"cannot open the lease page {path}: {exc.strerror}; the daemon creates it at "
                               "start") from exc
        try:
            if os.fstat(fd).st_size < SIZE or os.pread(fd, len(MAGIC), 0) != MAGIC:
                raise MonitorError(f"{path} is not a Wolfpack lease page; restart the daemon, which writes it")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, writable)

    def read(self) -> Lease:
        m = self._live()
        values = [int.from_bytes(m[off:off + 8], "little", signed=True) for off in (_EXPIRY, _REVOKED, _GENERATION,
                                                                                    _PID)]
        return Lease(*values)

    def renew(self, expiry_ns: int) -> None:
        """The daemon: the lease holds until ``expiry_ns`` (unless it is revoked)."""
        self._check_writable()
        self._fields[_GENERATION].value += 1
        self._fields[_EXPIRY].value = expiry_ns

    def end(self) -> None:
        """The daemon: no lease from now on (it halted or stops); the monitors stop their resources."""
        self.renew(0)

    def revoke(self, epoch: int) -> None:
        """The heartbeat thread: a membership of ``epoch`` (> 0) left this node out; the lease ends now and stays
        ended until the daemon installs that epoch or a newer one."""
        self._check_writable()
        if epoch < 1:
            raise MonitorError(f"a revocation names the epoch of the membership that left this node out, not {epoch}")
        self._fields[_REVOKED].value = max(self._fields[_REVOKED].value, epoch)

    def clear_revoked(self) -> None:
        """The daemon installed a newer epoch: a revocation about an older one no longer holds."""
        self._check_writable()
        self._fields[_REVOKED].value = 0

    def _check_writable(self) -> None:
        self._live()
        if not self._writable:
            raise MonitorError(f"the lease page {self.path} is mapped read-only here; only the daemon writes it")

    def _live(self) -> mmap.mmap:
        if self._map is None:
            raise MonitorError(f"the lease page {self.path} is closed")
        return self._map

    def close(self) -> None:
        if self._map is not None:
            if self._writable:
                self._fields.clear()  # the ctypes views must go before the map can close
            self._map.close()
            self._map = None
            os.close(self._fd)
