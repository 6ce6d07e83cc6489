"""The record of entry-point calls in flight, in memory shared by a monitor and its daemon (REQUIREMENTS R5).

Before each entry-point call the monitor writes (entry point, resource,
sequence number) into a free slot of a small memory-mapped file in the run
directory, and frees the slot when the call returns.  Writes to a shared
mapping survive the death of the writer, so when a monitor dies the daemon
reads the slots still in use: those are the calls that were running when it
crashed, and the newest of them is the likely culprit.

MSCS keeps one such record per monitor because it calls one entry point at a
time per monitor; Wolfpack's monitor runs one thread per call in flight, so
the record has a slot per concurrent call.

Layout (little endian): a 32-byte header (magic, version, slot count, owner
pid, calls that found no free slot) and fixed 256-byte slots (state, sequence,
start time in ns since the epoch, thread ident, entry point, resource id).
The thread ident is the one :mod:`faulthandler` prints as "Current thread"
when a fatal signal hits, which names the faulting call exactly.  A
slot's state is written last when it is taken and first when it is freed.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wolfpack.errors import MonitorError

MAGIC = b"WPMONREC"
VERSION = 1
DEFAULT_SLOTS = 64

_HEADER = struct.Struct("<8sIIIIQ")  # magic, version, slots, owner pid, pad, unrecorded calls
_SLOT = struct.Struct("<IIQQQ16sH200s")  # state, pad, seq, started_ns, thread, entry point, resource length, resource
SLOT_BYTES = 256
_FREE, _IN_CALL = 0, 1
assert _HEADER.size <= 32 and _SLOT.size <= SLOT_BYTES


@dataclass(frozen=True)
class CallRecord:
    """One entry-point call that was in flight."""

    seq: int
    entry_point: str
    resource: str
    started_ns: int
    #: ``threading.get_ident()`` of the calling thread.
    thread: int

    def as_dict(self) -> dict[str, object]:
        return {"seq": self.seq, "entry_point": self.entry_point, "resource": self.resource,
                "started_ns": self.started_ns, "thread": self.thread}


class CallRecordTable:
    """The shared record.  :meth:`create` on the daemon side, :meth:`attach` in the monitor."""

    def __init__(self, path: Path, mapping: mmap.mmap, slots: int) -> None:
        self.path = path
        self._map = mapping
        self.slots = slots
        self._lock = threading.Lock()
        self._seq = 0
        self._free = list(range(slots - 1, -1, -1))

    @classmethod
    def create(cls, path: Path, slots: int = DEFAULT_SLOTS) -> CallRecordTable:
        """A fresh, empty record file (replacing any old one)."""
        size = 32 + slots * SLOT_BYTES
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(bytes(size))
        table = cls._open(path)
        _HEADER.pack_into(table._map, 0, MAGIC, VERSION, slots, 0, 0, 0)
        table.slots = slots
        table._free = list(range(slots - 1, -1, -1))
        return table

    @classmethod
    def attach(cls, path: Path) -> CallRecordTable:
        """Map an existing record file."""
        table = cls._open(path)
        magic, version, slots, _, _, _ = _HEADER.unpack_from(table._map, 0)
        if magic != MAGIC or version != VERSION:
            raise MonitorError(f"{path} is not a version-{VERSION} monitor call record; the daemon creates it, "
                               "start the monitor through the daemon")
        table.slots = slots
        table._free = list(range(slots - 1, -1, -1))
        return table

    @classmethod
    def _open(cls, path: Path) -> CallRecordTable:
        fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < 32:
                raise MonitorError(f"monitor call record {path} is truncated ({size} bytes); delete it and restart")
            mapping = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(path, mapping, 0)

    def set_owner(self, pid: int) -> None:
        struct.pack_into("<I", self._map, 16, pid)

    @property
    def owner(self) -> int:
        return int(struct.unpack_from("<I", self._map, 16)[0])

    @property
    def unrecorded(self) -> int:
        """Calls that found every slot taken (and so are not in the record)."""
        return int(struct.unpack_from("<Q", self._map, 24)[0])

    def enter(self, entry_point: str, resource: str) -> int:
        """Record a call about to start; the slot to pass to :meth:`leave` (-1 if none was free)."""
        with self._lock:
            if not self._free:
                struct.pack_into("<Q", self._map, 24, self.unrecorded + 1)
                return -1
            slot = self._free.pop()
            self._seq += 1
            seq = self._seq
        name = resource.encode()[:200]
        offset = 32 + slot * SLOT_BYTES
        _SLOT.pack_into(self._map, offset, _FREE, 0, seq, time.time_ns(), threading.get_ident(),
                        entry_point.encode()[:16], len(name), name)
        struct.pack_into("<I", self._map, offset, _IN_CALL)
        return slot

    def leave(self, slot: int) -> None:
        """The call recorded in ``slot`` returned."""
        if slot < 0:
            return
        struct.pack_into("<I", self._map, 32 + slot * SLOT_BYTES, _FREE)
        with self._lock:
            self._free.append(slot)

    def in_flight(self) -> list[CallRecord]:
        """The calls recorded and not yet returned, oldest first."""
        calls = []
        for slot in range(self.slots):
            state, _, seq, started, thread, entry, length, name = _SLOT.unpack_from(self._map, 32 + slot * SLOT_BYTES)
            if state == _IN_CALL:
                calls.append(CallRecord(seq, entry.rstrip(b"\0").decode(errors="replace"),
                                        name[:length].decode(errors="replace"), started, thread))
        return sorted(calls, key=lambda c: c.seq)

    def close(self) -> None:
        self._map.close()
