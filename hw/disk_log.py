"""The quorum log on the shared quorum disk: checkpoints and records in fixed-size blocks, written through
the reservation.

Under a disk quorum the quorum data lives on the quorum disk, so that a node
that wins the disk after everybody else died (a "partition in time") finds
every committed update there.  :class:`DiskLog` keeps it in a region of the
LUN, read and written only through :class:`~wolfpack.hw.device.Disk` (READ(10),
WRITE(10) with FUA).  Layout, in blocks of the disk's block size from
``start_lba``::

    header      1 block      magic "WPDLOG", version, block size, geometry; crc32
    slot 0      S blocks     a checkpoint: slot header block, then its data
    slot 1      S blocks     the other checkpoint slot
    log         L blocks     records from the slot's generation, from the first block on

**Records** are the local quorum log's frames
(:mod:`wolfpack.runtime.db.log_records`: crc32, sequence number, epoch, the
canonical JSON of the operations), each behind a 16-byte prefix (marker
"WPDB", the log's *generation*, a crc32 of the generation and the frame) and
padded to whole blocks.  Reading starts at the first log block and stops at
the first block that does not hold a whole record of the current generation
with good checksums: a torn write (a crash or a lost reservation in the middle
of a WRITE) ends the log, and the next append overwrites it.  A good record of
the current generation *after* that end would mean damage in the middle:
:class:`~wolfpack.runtime.db.log_records.CorruptLog`.  Orphans follow the
local log's rule: a later record with a sequence number <= an earlier one's
supersedes it.

**Checkpoints** (:meth:`DiskLog.checkpoint`) hold a hive snapshot
(:mod:`wolfpack.runtime.db.snapshot`) and the records after it, and alternate
between the two slots: the new one goes into the slot not in use with the next
generation, data first and its header block last (the commit), and the log
starts afresh behind it (the old generation's records are ignored from then
on).  A checkpoint torn by a crash fails its checksums, and the other slot,
with its log, stays the newest.  Opening picks the valid slot of the highest
generation; a record of a newer generation than that slot's is damage.

**Ownership.**  Only the node that owns the quorum disk writes the log.  A
WRITE from a node whose reservation was preempted or reset (and re-taken by
another) gets RESERVATION CONFLICT, raised as
:class:`~wolfpack.hw.errors.OwnershipLost`: the update is not logged, and the
node must stop its resources.  A node that (re)gains the disk must read the
log again (:meth:`DiskLog.refresh`): before each append the log checks that no
other node has written past what it read, and raises :class:`StaleLog` if one
has.  One limit stays: after a plain PREEMPT (tgt has no PREEMPT AND ABORT) a
write the old owner had in flight may still land (``late`` in
:mod:`wolfpack.spec.persistent_reservation`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from wolfpack.errors import DatabaseError
from wolfpack.hw.device import Disk
from wolfpack.hw.errors import OwnershipLost, ReservationConflict
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.log_records import (
    EMPTY_HIVE,
    FRAME,
    FRAME_MAGIC,
    CorruptLog,
    LogRecord,
    ReplayLog,
    encode_frame,
    frame_crc,
)
from wolfpack.runtime.db.snapshot import CorruptSnapshot, HiveContent, decode_snapshot, encode_snapshot
from wolfpack.runtime.db.updates import InvalidOperation, Op, decode_ops

log = logging.getLogger(__name__)

MAGIC = b"WPDLOG\x00\x01"
VERSION = 1
#: magic, version, block size, start lba, slot blocks, log blocks, log id; then a crc32
HEADER = struct.Struct(">8sIIQIIQ")
#: marker, log id, generation, checkpoint seq, data length, data crc32; then a crc32
SLOT = struct.Struct(">4sQQQII")
SLOT_MAGIC = b"WPDC"
#: marker, generation, crc32 of log id + generation + frame
PREFIX = struct.Struct(">4sQI")
RECORD_MAGIC = b"WPDB"
CHECKPOINT_BYTES = 4 << 20
LOG_BYTES = 8 << 20
IO_BLOCKS = 2048  # blocks per READ/WRITE command (1 MiB of 512-byte blocks)
_REFORMAT = "restore it from a member's local copy (or re-create the cluster's quorum log); it cannot be trusted"
T = TypeVar("T")


class LogFull(DatabaseError):
    """The log area of the quorum disk has no room for the record: a checkpoint starts it afresh."""


class StaleLog(DatabaseError):
    """Another node wrote the quorum log since this node read it: read it again before writing."""


def _crc(*parts: bytes) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc


def _sealed(layout: struct.Struct, *fields: object) -> bytes:
    body = layout.pack(*fields)
    return body + struct.pack(">I", zlib.crc32(body))


def _unsealed(layout: struct.Struct, block: bytes) -> tuple[Any, ...] | None:
    """The fields of a sealed structure, or None if its crc32 fails."""
    body = block[: layout.size]
    (crc,) = struct.unpack_from(">I", block, layout.size)
    return layout.unpack(body) if zlib.crc32(body) == crc else None


def _record_length(data: bytes, offset: int) -> int:
    """How many bytes the record starting at ``offset`` claims (0: no record starts there)."""
    if data[offset : offset + 4] != RECORD_MAGIC or offset + PREFIX.size + FRAME.size > len(data):
        return 0
    return PREFIX.size + FRAME.size + int(FRAME.unpack_from(data, offset + PREFIX.size)[1])


def _seal_record(log_id: int, generation: int, frame: bytes) -> bytes:
    return PREFIX.pack(RECORD_MAGIC, generation, _crc(struct.pack(">QQ", log_id, generation), frame)) + frame


def _frame_at(data: bytes, offset: int, log_id: int, generation: int) -> tuple[LogRecord, int] | None:
    """The record at ``offset`` of ``data`` if it is whole, of this log and ``generation``, and its checksums
    hold; with its end."""
    length = _record_length(data, offset)
    if not length or offset + length > len(data):
        return None
    _, gen, crc = PREFIX.unpack_from(data, offset)
    start, end = offset + PREFIX.size, offset + length
    magic, _, inner, seq, epoch = FRAME.unpack_from(data, start)
    payload = data[start + FRAME.size : end]
    if gen != generation or magic != FRAME_MAGIC or frame_crc(seq, epoch, payload) != inner:
        return None
    if _crc(struct.pack(">QQ", log_id, gen), data[start:end]) != crc:
        return None
    try:
        return LogRecord(seq, epoch, decode_ops(payload)), end
    except InvalidOperation as error:
        raise CorruptLog(f"a quorum log record of update {seq} passes its checksums but does not decode ({error}); "
                         f"{_REFORMAT}") from None


def _frames(data: bytes) -> list[LogRecord]:
    """The frames written back to back in a checkpoint's data (after its snapshot)."""
    out, pos = [], 0
    while pos < len(data):
        magic, length, crc, seq, epoch = FRAME.unpack_from(data, pos)
        payload = data[pos + FRAME.size : pos + FRAME.size + length]
        if magic != FRAME_MAGIC or frame_crc(seq, epoch, payload) != crc:
            raise CorruptLog(f"a checkpoint's record of update {seq} is damaged although the checkpoint's checksum "
                             f"holds; {_REFORMAT}")
        out.append(LogRecord(seq, epoch, decode_ops(payload)))
        pos += FRAME.size + length
    return out


class DiskLog(ReplayLog):
    """The quorum log in a region of a shared disk; see the module docstring.  Open one with :meth:`open`
    (or :meth:`format` to create it) after this node won the disk."""

    def __init__(self, disk: Disk, start_lba: int, slot_blocks: int, log_blocks: int, log_id: int) -> None:
        self.disk, self.start, self.log_id = disk, start_lba, log_id
        self.slot_blocks, self.log_blocks = slot_blocks, log_blocks
        self.block_size = disk.block_size
        self.refresh()

    # ------------------------------------------------------------------ creating and opening
    @classmethod
    def format(cls, disk: Disk, *, start_lba: int = 0, checkpoint_bytes: int = CHECKPOINT_BYTES,
               log_bytes: int = LOG_BYTES) -> DiskLog:
        """Create an empty quorum log at ``start_lba`` (overwriting whatever was there) and open it."""
        blocks, size = disk.capacity()
        slot_blocks, log_blocks = 1 + -(-checkpoint_bytes // size), -(-log_bytes // size)
        if start_lba + 1 + 2 * slot_blocks + log_blocks > blocks:
            raise DatabaseError(f"a quorum log of {checkpoint_bytes} + {log_bytes} bytes does not fit {disk.name} "
                                f"from block {start_lba} ({blocks} blocks of {size} bytes): choose smaller sizes or "
                                "a larger disk")
        empty = encode_snapshot(EMPTY_HIVE)
        log_id = int.from_bytes(os.urandom(8), "big")  # records of an earlier log in this region fail its checksums
        header = _sealed(HEADER, MAGIC, VERSION, size, start_lba, slot_blocks, log_blocks, log_id)
        _io(disk, lambda: disk.write_blocks(start_lba + 1 + slot_blocks, bytes(size)), "the formatting")  # slot 1
        cls._write_slot(disk, start_lba + 1, size, log_id, 1, 0, struct.pack(">I", len(empty)) + empty)
        _io(disk, lambda: disk.write_blocks(start_lba, header.ljust(size, b"\0")), "the formatting")
        log.info("quorum log formatted on %s: %d checkpoint blocks x 2, %d log blocks from block %d", disk.name,
                 slot_blocks, log_blocks, start_lba)
        return cls(disk, start_lba, slot_blocks, log_blocks, log_id)

    @classmethod
    def open(cls, disk: Disk, *, start_lba: int = 0) -> DiskLog:
        """Open the quorum log at ``start_lba`` of ``disk`` (read its header, newest checkpoint and records)."""
        size = disk.block_size
        fields = _unsealed(HEADER, _io(disk, lambda: disk.read_blocks(start_lba, 1), "a read"))
        if fields is None or fields[0] != MAGIC:
            raise CorruptLog(f"{disk.name} holds no Wolfpack quorum log at block {start_lba} (no valid header): "
                             "format one (DiskLog.format) when the cluster is created, or check the disk and offset")
        _, version, block_size, start, slot_blocks, log_blocks, log_id = fields
        if version != VERSION or block_size != size or start != start_lba:
            raise CorruptLog(f"the quorum log on {disk.name} is version {version} with {block_size}-byte blocks from "
                             f"block {start}; this Wolfpack reads version {VERSION} on this disk's {size}-byte blocks "
                             f"from block {start_lba}: use the Wolfpack and the disk it was made with")
        return cls(disk, start_lba, slot_blocks, log_blocks, log_id)

    def refresh(self) -> None:
        """Read the newest checkpoint and the log from the disk again (after winning it)."""
        slot, generation, content, blob, tail = self._newest_slot()
        self.slot, self.generation = slot, generation
        self._checkpoint, self._checkpoint_blob, self._checkpoint_seq = content, blob, content.last_seq
        area = self._read(self.log_lba, self.log_blocks)
        self._log: list[LogRecord] = []
        offset = 0
        while (found := _frame_at(area, offset, self.log_id, generation)) is not None:
            self._log.append(found[0])
            offset = -(-found[1] // self.block_size) * self.block_size
        self._end = offset // self.block_size
        self._check_nothing_after(area, generation)
        records = self._consecutive([*tail, *self._log], _REFORMAT)
        self._records = records
        self._last_seq = records[-1].seq if records else self._checkpoint_seq
        self._epoch = max([content.epoch, *(r.epoch for r in (*tail, *self._log))])

    def _newest_slot(self) -> tuple[int, int, HiveContent, bytes, list[LogRecord]]:
        found = []
        for slot in (0, 1):
            lba = self.slot_lba(slot)
            fields = _unsealed(SLOT, self._read(lba, 1))
            if fields is None or fields[0] != SLOT_MAGIC or fields[1] != self.log_id:
                continue
            _, _, generation, seq, length, crc = fields
            data = self._read(lba + 1, -(-length // self.block_size))[:length] if length else b""
            if zlib.crc32(data) != crc or len(data) < 4:
                log.warning("quorum log on %s: checkpoint slot %d (generation %d) fails its checksum (a checkpoint "
                            "torn by a crash); using the other slot", self.disk.name, slot, generation)
                continue
            found.append((generation, slot, seq, data))
        if not found:
            raise CorruptLog(f"the quorum log on {self.disk.name} has no valid checkpoint slot; {_REFORMAT}")
        generation, slot, seq, data = max(found)
        (snapshot_length,) = struct.unpack_from(">I", data)
        blob = data[4 : 4 + snapshot_length]
        try:
            content = decode_snapshot(blob)
        except CorruptSnapshot as error:
            raise CorruptLog(f"the checkpoint on {self.disk.name} is unreadable ({error}); {_REFORMAT}") from None
        if content.last_seq != seq:
            raise CorruptLog(f"the checkpoint on {self.disk.name} says update {seq} but holds {content.last_seq}; "
                             f"{_REFORMAT}")
        return slot, generation, content, blob, _frames(data[4 + snapshot_length :])

    def _check_nothing_after(self, area: bytes, generation: int) -> None:
        """Damage: a good record of a newer generation anywhere (its checkpoint is damaged), or of this generation
        after the end (a record in the middle is damaged)."""
        size = self.block_size
        for block in range(self._end, self.log_blocks):
            offset = block * size
            if area[offset : offset + 4] != RECORD_MAGIC:
                continue
            gen = PREFIX.unpack_from(area, offset)[1]
            if gen > generation and _frame_at(area, offset, self.log_id, gen):
                raise CorruptLog(f"block {block} of the quorum log on {self.disk.name} holds a record of generation "
                                 f"{gen}, newer than the newest valid checkpoint's ({generation}): that checkpoint "
                                 f"is damaged; {_REFORMAT}")
            if gen == generation and block > self._end and _frame_at(area, offset, self.log_id, gen):
                raise CorruptLog(f"the quorum log on {self.disk.name} ends at log block {self._end} (a record there "
                                 f"is damaged) but block {block} holds a good record; {_REFORMAT}")

    # ------------------------------------------------------------------ the ReplayLog hooks
    def _effective_records(self) -> list[LogRecord]:
        return self._records

    def _checkpoint_bytes(self) -> bytes:
        return self._checkpoint_blob

    def _where(self) -> str:
        return f"the quorum log on {self.disk.name}"

    def read_all(self) -> tuple[bytes, list[LogRecord]]:
        """Read the disk again; the newest checkpoint (snapshot bytes) and the effective records after it.

        ``Hive.restore(path, snapshot)`` then ``hive.apply`` of each record
        rebuilds the database (``catch_up`` does it for an existing hive)."""
        self.refresh()
        return self._checkpoint_blob, list(self._records)

    # ------------------------------------------------------------------ writes
    def append(self, seq: int, epoch: int, ops: Sequence[Op]) -> None:
        """Log update ``seq`` of ``epoch`` on the disk (FUA: on the medium before this returns).

        Raises :class:`OwnershipLost` if the disk refuses the write (another node
        owns it), :class:`LogFull`, :class:`StaleLog`, and the rules' errors
        (:meth:`~wolfpack.runtime.db.log_records.ReplayLog._check_append`)."""
        body = self._check_append(seq, epoch, ops)
        data = _seal_record(self.log_id, self.generation, encode_frame(seq, epoch, body))
        blocks = -(-len(data) // self.block_size)
        if self._end + blocks > self.log_blocks:
            raise LogFull(f"update {seq} ({len(data)} bytes) does not fit the quorum log on {self.disk.name}: "
                          f"{self._end} of {self.log_blocks} blocks are used; take a checkpoint (checkpoint(hive)), "
                          "which starts the log afresh, then log it")
        self._check_not_stale()
        padded = data.ljust(blocks * self.block_size, b"\0")
        self._write(self.log_lba + self._end, padded, f"the write of update {seq}")
        self._end += blocks
        self._log.append(LogRecord(seq, epoch, body))
        self._records = self._consecutive([*self._records, self._log[-1]], _REFORMAT)
        self._last_seq, self._epoch = seq, epoch

    def _check_not_stale(self) -> None:
        """Has another node checkpointed (the next slot's generation) or appended (our end) since we read?"""
        fields = _unsealed(SLOT, self._read(self.slot_lba(1 - self.slot), 1))
        newer = fields is not None and fields[:2] == (SLOT_MAGIC, self.log_id) and fields[2] > self.generation
        appended = False
        if self._end < self.log_blocks:
            first = self._read(self.log_lba + self._end, 1)
            blocks = -(-_record_length(first, 0) // self.block_size)
            if 0 < blocks <= self.log_blocks - self._end:
                whole = first + self._read(self.log_lba + self._end + 1, blocks - 1) if blocks > 1 else first
                appended = _frame_at(whole, 0, self.log_id, self.generation) is not None
        if newer or appended:
            raise StaleLog(f"the quorum log on {self.disk.name} was written by another node since this node read "
                           "it (it lost and regained the disk?): read it again (refresh) and catch up before writing")

    def checkpoint(self, hive: Hive, *, epoch: int = 0) -> int:
        """Save the hive as the new checkpoint, with the records after it, and start the log afresh; return its
        sequence number.  ``epoch``: a membership epoch to record with it (the checkpoint carries the newer of
        it and the hive's), so that :attr:`epoch` is at least that afterwards."""
        content = self._check_checkpoint(hive)
        if epoch > content.epoch:
            content = dataclasses.replace(content, epoch=epoch)
        seq = content.last_seq
        tail = [r for r in self._records if r.seq > seq]
        snapshot = encode_snapshot(content)
        data = struct.pack(">I", len(snapshot)) + snapshot + b"".join(encode_frame(r.seq, r.epoch, r.ops) for r in tail)
        if len(data) > (self.slot_blocks - 1) * self.block_size:
            raise DatabaseError(f"the checkpoint at update {seq} ({len(data)} bytes) does not fit a checkpoint slot "
                                f"of {(self.slot_blocks - 1) * self.block_size} bytes on {self.disk.name}: format the "
                                "quorum log with a larger checkpoint_bytes")
        self._check_not_stale()
        slot = 1 - self.slot
        self._write_slot(self.disk, self.slot_lba(slot), self.block_size, self.log_id, self.generation + 1, seq, data)
        self.slot, self.generation = slot, self.generation + 1
        self._checkpoint, self._checkpoint_blob, self._checkpoint_seq = content, snapshot, seq
        self._epoch = max(self._epoch, content.epoch)
        self._log, self._end, self._records = [], 0, tail
        self._last_seq = tail[-1].seq if tail else seq
        log.info("quorum log on %s: checkpoint at update %d (generation %d), %d later record(s) kept",
                 self.disk.name, seq, self.generation, len(tail))
        return seq

    @staticmethod
    def _write_slot(disk: Disk, lba: int, size: int, log_id: int, generation: int, seq: int, data: bytes) -> None:
        """The data blocks first, then the slot header block (the commit)."""
        what = f"the checkpoint at update {seq}"
        _io(disk, lambda: _write_chunked(disk, lba + 1, data.ljust(-(-len(data) // size) * size, b"\0")), what)
        header = _sealed(SLOT, SLOT_MAGIC, log_id, generation, seq, len(data), zlib.crc32(data)).ljust(size, b"\0")
        _io(disk, lambda: disk.write_blocks(lba, header), what)

    # ------------------------------------------------------------------ blocks
    @property
    def log_lba(self) -> int:
        """The first block of the log area."""
        return self.start + 1 + 2 * self.slot_blocks

    @property
    def used_blocks(self) -> int:
        """How many blocks of the log area the current generation's records take."""
        return self._end

    def slot_lba(self, slot: int) -> int:
        """The header block of checkpoint slot 0 or 1."""
        return self.start + 1 + slot * self.slot_blocks

    def _read(self, lba: int, count: int) -> bytes:
        disk = self.disk
        return _io(disk, lambda: b"".join(disk.read_blocks(lba + i, min(IO_BLOCKS, count - i))
                                          for i in range(0, count, IO_BLOCKS)), "a read")

    def _write(self, lba: int, data: bytes, what: str) -> None:
        _io(self.disk, lambda: _write_chunked(self.disk, lba, data), what)

    def __repr__(self) -> str:
        return (f"DiskLog({self.disk.name!r}, generation={self.generation}, checkpoint={self._checkpoint_seq}, "
                f"last_seq={self._last_seq}, {self._end}/{self.log_blocks} log blocks)")


def _write_chunked(disk: Disk, lba: int, data: bytes) -> None:
    step = IO_BLOCKS * disk.block_size
    for i in range(0, len(data), step):
        disk.write_blocks(lba + i // disk.block_size, data[i : i + step])


def _io(disk: Disk, call: Callable[[], T], what: str) -> T:
    """Run one access to the log's blocks; a RESERVATION CONFLICT is ownership lost."""
    try:
        return call()
    except ReservationConflict as error:
        raise OwnershipLost(f"the quorum log on {disk.name} refused {what}: RESERVATION CONFLICT, so this node no "
                            "longer owns the quorum disk (its reservation was preempted or reset, and another node "
                            "holds it); nothing was logged: stop every resource and do not retry") from error
