"""The quorum log on a node's local disk, its checkpoints, and catch-up (REQUIREMENTS L1, L2, Q4).

Under Majority Node Set every node keeps the quorum data on its own disk: this
module is one node's copy.  That an update is *committed* once a majority of
the configured nodes have logged it (Q4) is the business of the global-update
layer above; here each node logs what it is given, durably, in order.

Layout of the directory::

    checkpoint-<C>.hive   a hive snapshot taken at update C (the newest only, once compacted)
    log-<B>.wal           a log segment holding records of updates after B

A segment starts with a 16-byte header (magic, B) followed by records, each
framed as ``magic(4) | payload length(4) | crc32(4) | seq(8) | epoch(8) |
payload`` (big-endian), the payload being the canonical JSON of the update's
operations and the crc32 covering seq, epoch and payload.

Rules:

* **One writer.**  The directory is locked (``flock`` on ``lock``) while a
  :class:`QuorumLog` has it open; a second opener gets :class:`DatabaseError`.
* **Append only, no gaps.**  :meth:`QuorumLog.append` accepts ``seq`` up to
  ``last_seq + 1`` and above the checkpoint.  It refuses an epoch older than the
  newest one in the log.
* **Orphans (design decision 5, patent 6,449,734).**  When two records carry
  the same sequence number the earlier one is an orphan (its sender died, or the
  locker took it back, before anybody else had it) and replay uses the later
  one.  Generally, a record supersedes every earlier record whose sequence
  number is not lower than its own, so the replayed ("effective") records are
  always ``C+1, C+2, ...`` without gaps.
* **Torn tail.**  A crash during an append can leave a partial last record (a
  short header, a record cut short, zero bytes, or a last record whose checksum
  fails).  It was never acknowledged, so opening the log truncates it, with a
  warning.  Damage anywhere else (a bad record followed by more data, a bad
  segment header, a gap) raises :class:`CorruptLog`: the log cannot be trusted.
* **Checkpoints** (:meth:`QuorumLog.checkpoint`): the hive's snapshot is saved
  as ``checkpoint-<seq>.hive``, the records after it are copied into a new
  segment ``log-<seq>.wal``, then older segments and checkpoints are deleted
  (MSCS resets its log the same way).
* **Catch-up** (:meth:`QuorumLog.catch_up`): a stale hive loads the checkpoint
  if it is newer than the hive, then replays the effective records after it.
  The last record may be an update its locker refused (its operations did not
  fit; it is an orphan until the next update supersedes it): if it does not
  apply, replay skips it with a warning.  Any other record that does not apply
  means the hive and the log disagree, and raises.

Durability (what is fsync'd when):

* ``append``: the frame is written with one ``write`` to the segment opened
  with ``O_APPEND`` and ``fdatasync``'d before ``append`` returns; a failed
  write is cut off again (``ftruncate``) so no partial record stays in the middle.
* a new segment and a checkpoint are written whole to a temporary file,
  fsync'd, renamed into place, and the directory fsync'd; old files are
  deleted only after that, and the directory fsync'd again.
* truncating a torn tail is fsync'd.  A crash at any point of a checkpoint
  leaves a directory that opens: old segments still present are read too (the
  copies in the new segment supersede their records).

``durable=False`` skips every fsync (tests and the simulator only).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db.checkpoint import (
    fsync_dir,
    list_checkpoints,
    read_checkpoint,
    remove_stale_temporaries,
    write_atomic,
    write_checkpoint,
)
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.log_records import (
    EMPTY_HIVE,
    FRAME,
    FRAME_MAGIC,
    CorruptLog,
    DivergedHive,
    LogRecord,
    ReplayLog,
    effective,
    encode_frame,
    frame_crc,
    is_stale,
)
from wolfpack.runtime.db.snapshot import HiveContent, encode_snapshot
from wolfpack.runtime.db.updates import InvalidOperation, Op, decode_ops

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"WPQLOG\x00\x01"
SEGMENT_HEADER = struct.Struct(">8sQ")
SEGMENT_PATTERN = re.compile(r"log-(\d{20})\.wal")
_RESTORE = "restore the quorum log directory from a healthy member or a backup (the hive itself is intact)"


@dataclass
class _Segment:
    base: int
    path: Path
    records: list[LogRecord]
    end: int  # offset just after the last valid record
    torn: str  # why the bytes after ``end`` are a torn tail ("" when there are none)


def segment_path(directory: Path, base: int) -> Path:
    return directory / f"log-{base:020d}.wal"


def _read_segment(path: Path, base: int, *, last: bool) -> _Segment:
    """Parse a segment; a torn tail is tolerated only in the last one (``last``)."""
    data = path.read_bytes()

    def corrupt(offset: int, why: str) -> CorruptLog:
        return CorruptLog(f"the quorum log segment {path} is corrupt at byte {offset}: {why}; {_RESTORE}")

    if len(data) < SEGMENT_HEADER.size or SEGMENT_HEADER.unpack_from(data) != (SEGMENT_MAGIC, base):
        raise corrupt(0, f"its header is not that of a Wolfpack log segment after update {base}")
    records: list[LogRecord] = []
    pos = SEGMENT_HEADER.size
    while pos < len(data):
        rest, torn = len(data) - pos, ""
        if rest < FRAME.size:
            torn = "a partial record header"
        else:
            magic, length, crc, seq, epoch = FRAME.unpack_from(data, pos)
            end = pos + FRAME.size + length
            if magic != FRAME_MAGIC:
                if data[pos:].count(0) != rest:
                    raise corrupt(pos, "a record does not start with the record marker")
                torn = "zero bytes where a record should start"
            elif end > len(data):
                torn = "a record cut short"
            elif frame_crc(seq, epoch, data[pos + FRAME.size : end]) != crc:
                if end != len(data):
                    raise corrupt(pos, f"the record of update {seq} fails its checksum and more records follow it")
                torn = "a last record that fails its checksum"
            else:
                if seq <= base:
                    raise corrupt(pos, f"it holds update {seq}, not after its base update {base}")
                try:
                    ops = decode_ops(data[pos + FRAME.size : end])
                except InvalidOperation as error:
                    raise corrupt(pos, f"the record of update {seq} is unreadable ({error})") from None
                records.append(LogRecord(seq, epoch, ops))
                pos = end
                continue
        if not last:
            raise corrupt(pos, f"{torn}, in a segment that is not the newest")
        return _Segment(base, path, records, pos, torn)
    return _Segment(base, path, records, pos, "")


class QuorumLog(ReplayLog):
    """One node's quorum log directory; see the module docstring."""

    def __init__(self, directory: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.directory = Path(directory)
        self.durable = durable
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise DatabaseError(
                f"the quorum log in {self.directory} is open in another process (or another QuorumLog object): "
                "one node, one writer; stop the other one first"
            ) from None
        try:
            self._open()
        except BaseException:
            os.close(self._lock)
            raise

    def _open(self) -> None:
        durable = self.durable
        for leftover in remove_stale_temporaries(self.directory):
            log.warning("quorum log: removed %s, left by a crash while a file was being replaced", leftover.name)
        checkpoints = list_checkpoints(self.directory)
        self._checkpoint_seq = checkpoints[-1] if checkpoints else 0
        self._checkpoint = read_checkpoint(self.directory, checkpoints[-1])[1] if checkpoints else EMPTY_HIVE
        if not self._segment_bases():
            self._write_segment(self._checkpoint_seq, [])
        segments = self._read_segments(last_may_be_torn=True)
        newest = segments[-1]
        if newest.torn:
            cut = newest.path.stat().st_size - newest.end
            with open(newest.path, "r+b") as handle:
                handle.truncate(newest.end)
                if durable:
                    os.fsync(handle.fileno())
            log.warning(
                "quorum log %s: %s at byte %d (a write cut short by a crash, never acknowledged); truncated %d bytes",
                newest.path.name, newest.torn, newest.end, cut,
            )
        records = self._check(segments)
        self._last_seq = records[-1].seq if records else self._checkpoint_seq
        self._epoch = max([self._checkpoint.epoch, *(r.epoch for s in segments for r in s.records)])
        self._open_for_append(newest.path)

    # ------------------------------------------------------------------ files
    def _segment_bases(self) -> list[int]:
        found = (SEGMENT_PATTERN.fullmatch(entry.name) for entry in self.directory.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def _read_segments(self, *, last_may_be_torn: bool) -> list[_Segment]:
        bases = self._segment_bases()
        return [
            _read_segment(segment_path(self.directory, base), base, last=last_may_be_torn and i == len(bases) - 1)
            for i, base in enumerate(bases)
        ]

    def _check(self, segments: list[_Segment]) -> list[LogRecord]:
        """The effective records after the checkpoint, checked to be ``C+1, C+2, ...``."""
        for segment in segments:
            if segment.base > self._checkpoint_seq:
                raise CorruptLog(
                    f"the quorum log segment {segment.path} continues from update {segment.base}, but the newest "
                    f"checkpoint is at update {self._checkpoint_seq}: checkpoint {segment.base} is missing; {_RESTORE}"
                )
        return self._consecutive((r for s in segments for r in s.records), _RESTORE)

    def _where(self) -> str:
        return f"the quorum log in {self.directory}"

    def _effective_records(self) -> list[LogRecord]:
        return self._check(self._read_segments(last_may_be_torn=True))

    def _write_segment(self, base: int, records: Sequence[LogRecord]) -> Path:
        path = segment_path(self.directory, base)
        body = b"".join(encode_frame(r.seq, r.epoch, r.ops) for r in records)
        write_atomic(path, SEGMENT_HEADER.pack(SEGMENT_MAGIC, base) + body, durable=self.durable)
        return path

    def _open_for_append(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size

    # ------------------------------------------------------------------ writes
    def append(self, seq: int, epoch: int, ops: Sequence[Op]) -> None:
        """Log update ``seq`` of ``epoch`` durably (fdatasync'd before returning).

        ``seq`` may repeat or go below ``last_seq + 1``: the new record then
        supersedes the orphans with that number and above (design decision 5).
        """
        body = self._check_append(seq, epoch, ops)
        frame = encode_frame(seq, epoch, body)
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):
                raise OSError(f"short write: {written} of {len(frame)} bytes")
            if self.durable:
                os.fdatasync(self._fd)
        except OSError as error:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                log.exception("quorum log: could not cut off a failed append; the next open truncates it")
            raise DatabaseError(
                f"update {seq} could not be written to the quorum log in {self.directory} ({error}); "
                "it is not logged: check the disk (space, errors) before retrying"
            ) from error
        self._size += len(frame)
        self._last_seq, self._epoch = seq, epoch

    def checkpoint(self, hive: Hive) -> int:
        """Save the hive as the new checkpoint and compact the log behind it; return its sequence number."""
        content = self._check_checkpoint(hive)
        seq = content.last_seq
        tail = [r for r in self._effective_records() if r.seq > seq]
        self._restart_at(content, tail)
        log.info("quorum log: checkpoint at update %d written, %d later record(s) kept", seq, len(tail))
        return seq

    def _restart_at(self, content: HiveContent, tail: Sequence[LogRecord]) -> None:
        """Write ``content`` as the only checkpoint and ``tail`` as the only segment after it."""
        seq = content.last_seq
        write_checkpoint(self.directory, seq, encode_snapshot(content), durable=self.durable)
        new_segment = self._write_segment(seq, tail)  # replaces log-<seq> if it exists: our fd keeps the old file
        os.close(self._fd)
        for base in self._segment_bases():
            if base != seq:
                segment_path(self.directory, base).unlink()
        for old in list_checkpoints(self.directory):
            if old != seq:
                (self.directory / f"checkpoint-{old:020d}.hive").unlink()
        if self.durable:
            fsync_dir(self.directory)
        self._checkpoint_seq, self._checkpoint = seq, content
        self._last_seq = tail[-1].seq if tail else seq
        self._open_for_append(new_segment)

    def reset(self, hive: Hive) -> int:
        """Make the hive (just loaded from a sponsor's snapshot) the log's new start: a checkpoint at its
        update, and no record after it.  Records this node had beyond it are orphans the cluster discarded
        (design decision 9: a member behind its sponsor takes the sponsor's database)."""
        content = hive.content()
        seq = content.last_seq
        dropped = max(self._last_seq - seq, 0)
        self._restart_at(content, [])
        self._epoch = content.epoch
        log.info("quorum log: restarted at update %d from a loaded database (%d later record(s) dropped)", seq, dropped)
        return seq

    def _checkpoint_bytes(self) -> bytes:
        if self._checkpoint_seq == 0:
            return encode_snapshot(EMPTY_HIVE)
        return read_checkpoint(self.directory, self._checkpoint_seq)[0]

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        os.close(self._fd)
        os.close(self._lock)  # releases the lock

    def __enter__(self) -> QuorumLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"QuorumLog({str(self.directory)!r}, checkpoint={self._checkpoint_seq}, last_seq={self._last_seq})"


__all__ = ["FRAME", "CorruptLog", "DivergedHive", "LogRecord", "QuorumLog", "effective", "encode_frame",
           "is_stale"]
