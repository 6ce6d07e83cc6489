"""The records of a quorum log and what reads them, wherever they are stored.

Two quorum logs share this: :class:`~wolfpack.runtime.db.quorum_log.QuorumLog`
(a node's local directory, under Majority Node Set) and
:class:`~wolfpack.hw.disk_log.DiskLog` (blocks on the shared quorum disk).  Both
store the same record, the *frame*::

    magic "WPQR" (4) | payload length (4) | crc32 (4) | seq (8) | epoch (8) | payload

big-endian, the payload being the canonical JSON of the update's operations
(:func:`wolfpack.runtime.db.updates.encode_ops`) and the crc32 covering seq,
epoch and payload; and both follow the same rules, implemented once in
:class:`ReplayLog`:

* **no gaps, nothing before the checkpoint, no older epoch** (:meth:`ReplayLog._check_append`);
* **orphans** (design decision 5): a record supersedes every earlier record
  whose sequence number is not lower than its own (:func:`effective`);
* **catch-up**: a stale hive loads the checkpoint if it is newer, then replays
  the effective records; a hive that applied an orphan is refused or rebuilt
  (:meth:`ReplayLog.catch_up`, :func:`is_stale`).
"""

from __future__ import annotations

import logging
import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.snapshot import HiveContent
from wolfpack.runtime.db.updates import InvalidOperation, Op, encode_ops, update_digest, validate_ops

log = logging.getLogger(__name__)

FRAME_MAGIC = b"WPQR"
FRAME = struct.Struct(">4sIIQQ")  # magic, payload length, crc32, seq, epoch
MAX_U64 = (1 << 64) - 1
EMPTY_HIVE = HiveContent(last_seq=0, epoch=0, last_digest="", keys=(), values=())


class CorruptLog(DatabaseError):
    """The quorum log is damaged somewhere other than a torn last record."""


class DivergedHive(DatabaseError):
    """The hive applied an update that the quorum log holds differently (an orphan the cluster discarded)."""


@dataclass(frozen=True)
class LogRecord:
    """One global update as logged: its sequence number, membership epoch and operations."""

    seq: int
    epoch: int
    ops: list[Op]

    @property
    def digest(self) -> str:
        return update_digest(self.seq, self.ops)


def frame_crc(seq: int, epoch: int, payload: bytes) -> int:
    """The checksum a frame carries: crc32 of seq and epoch (big-endian u64) then the payload."""
    return zlib.crc32(payload, zlib.crc32(struct.pack(">QQ", seq, epoch)))


def encode_frame(seq: int, epoch: int, ops: Sequence[Op]) -> bytes:
    """The bytes of one log record."""
    payload = encode_ops(ops)
    return FRAME.pack(FRAME_MAGIC, len(payload), frame_crc(seq, epoch, payload), seq, epoch) + payload


def effective(records: Iterable[LogRecord]) -> list[LogRecord]:
    """The records replay uses: each record supersedes the earlier ones with a sequence number >= its own."""
    kept: list[LogRecord] = []
    for record in records:
        while kept and kept[-1].seq >= record.seq:
            kept.pop()
        kept.append(record)
    return kept


class ReplayLog(ABC):
    """A quorum log as catch-up sees it: a checkpoint, then the effective records after it.

    Subclasses keep ``_checkpoint_seq``, ``_checkpoint`` (its content),
    ``_last_seq`` and ``_epoch`` up to date and say where the records and the
    checkpoint's bytes come from.
    """

    _checkpoint_seq: int
    _checkpoint: HiveContent
    _last_seq: int
    _epoch: int

    @abstractmethod
    def _effective_records(self) -> list[LogRecord]:
        """The effective records after the checkpoint, oldest first (``C+1, C+2, ...``)."""

    @abstractmethod
    def _checkpoint_bytes(self) -> bytes:
        """The snapshot bytes of the newest checkpoint (the empty hive's when there is none)."""

    @abstractmethod
    def _where(self) -> str:
        """Where the log is, for messages: "the quorum log in <directory>", "... on <disk>"."""

    # ------------------------------------------------------------------ state
    @property
    def last_seq(self) -> int:
        """The newest update the log (or its checkpoint) holds."""
        return self._last_seq

    @property
    def checkpoint_seq(self) -> int:
        """The update the newest checkpoint was taken at (0: no checkpoint)."""
        return self._checkpoint_seq

    @property
    def epoch(self) -> int:
        """The newest membership epoch in the log or its checkpoint."""
        return self._epoch

    def records(self, since_seq: int | None = None) -> Iterator[LogRecord]:
        """The effective records after ``since_seq`` (default: after the checkpoint), oldest first.

        Raises :class:`DatabaseError` if ``since_seq`` is older than the
        checkpoint: those records were compacted into it.
        """
        since = self._checkpoint_seq if since_seq is None else since_seq
        if since < self._checkpoint_seq:
            raise DatabaseError(
                f"{self._where()} no longer holds updates {since + 1}..{self._checkpoint_seq}: they were compacted "
                f"into checkpoint {self._checkpoint_seq}; load that checkpoint first (catch_up does)"
            )
        return iter([r for r in self._effective_records() if r.seq > since])

    def record(self, seq: int) -> LogRecord | None:
        """The effective record of update ``seq``, if the log holds it."""
        if seq <= self._checkpoint_seq or seq > self._last_seq:
            return None
        return next((r for r in self._effective_records() if r.seq == seq), None)

    def _consecutive(self, records: Iterable[LogRecord], advice: str) -> list[LogRecord]:
        """The effective ones of ``records`` after the checkpoint, checked to be ``C+1, C+2, ...``."""
        kept = [r for r in effective(records) if r.seq > self._checkpoint_seq]
        for expected, record in enumerate(kept, start=self._checkpoint_seq + 1):
            if record.seq != expected:
                raise CorruptLog(f"{self._where()} jumps to update {record.seq} where update {expected} should be; "
                                 f"{advice}")
        return kept

    # ------------------------------------------------------------------ writes
    def _check_append(self, seq: int, epoch: int, ops: Sequence[Op]) -> list[Op]:
        """The rules an append must follow (the body validated, returned); raise if it breaks one.

        ``seq`` may repeat or go below ``last_seq + 1``: the new record then
        supersedes the orphans with that number and above (design decision 5).
        """
        body = validate_ops(ops)
        for name, number in (("sequence number", seq), ("epoch", epoch)):
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= MAX_U64:
                raise InvalidOperation(f"{name} {number!r} is not an integer in 0..2**64-1")
        if seq <= self._checkpoint_seq:
            raise DatabaseError(
                f"update {seq} cannot be logged: the log is checkpointed at update {self._checkpoint_seq}, "
                "and history before a checkpoint cannot change; this node is confused about the sequence: catch up"
            )
        if seq > self._last_seq + 1:
            raise DatabaseError(
                f"update {seq} cannot be logged: the log ends at update {self._last_seq}, and a gap would make it "
                "impossible to replay; log the missing updates first (this node is stale: catch up)"
            )
        if epoch < self._epoch:
            raise DatabaseError(
                f"update {seq} comes from epoch {epoch}, older than the log's epoch {self._epoch}: "
                "it was issued by a member of an earlier membership and is refused"
            )
        if seq <= self._last_seq:
            log.info("quorum log: update %d supersedes orphaned record(s) %d..%d", seq, seq, self._last_seq)
        return body

    def _check_checkpoint(self, hive: Hive) -> HiveContent:
        """The hive's content, if a checkpoint may be taken of it now."""
        content = hive.content()
        if content.last_seq < self._checkpoint_seq:
            raise DatabaseError(
                f"the hive is at update {content.last_seq}, older than the newest checkpoint "
                f"({self._checkpoint_seq}): catch it up (catch_up) before taking a checkpoint"
            )
        self._refuse_diverged(hive)
        return content

    # ------------------------------------------------------------------ catch-up
    def diverged(self, hive: Hive) -> bool:
        """True if the hive's last update is not the one this log holds under that number (it applied an orphan)."""
        seq = hive.last_seq
        if seq < self._checkpoint_seq or seq > self._last_seq:
            return False
        if seq == self._checkpoint_seq:
            return hive.last_digest != self._checkpoint.last_digest
        record = self.record(seq)
        return record is None or record.digest != hive.last_digest

    def _refuse_diverged(self, hive: Hive) -> None:
        if self.diverged(hive):
            raise DivergedHive(
                f"the hive's update {hive.last_seq} is not the update {hive.last_seq} of the quorum log: this node "
                "applied an update that the cluster discarded as an orphan (its sender died before anybody else "
                "had it), so replay cannot repair it; catch up with rebuild_diverged=True (checkpoint + replay) "
                "or receive the database from a sponsor"
            )

    def catch_up(self, hive: Hive, *, rebuild_diverged: bool = False) -> int:
        """Bring a stale hive up to date: newest checkpoint if newer, then replay; return its ``last_seq``.

        A hive that applied an orphan raises :class:`DivergedHive`, unless
        ``rebuild_diverged``: it is then rebuilt from the checkpoint and the log.
        """
        if self.diverged(hive):
            if not rebuild_diverged:
                self._refuse_diverged(hive)
            log.warning(
                "catch-up: the hive's update %d is an orphan; rebuilding it from checkpoint %d and the log",
                hive.last_seq, self._checkpoint_seq,
            )
            hive.load_snapshot(self._checkpoint_bytes())
        elif hive.last_seq < self._checkpoint_seq:
            log.info("catch-up: loading checkpoint %d into the hive at update %d", self._checkpoint_seq, hive.last_seq)
            hive.load_snapshot(self._checkpoint_bytes())
        if hive.last_seq > self._last_seq:
            log.warning("catch-up: the hive (update %d) is ahead of the quorum log (%d)", hive.last_seq, self._last_seq)
            return hive.last_seq
        pending = list(self.records(hive.last_seq))
        for index, record in enumerate(pending):
            try:
                hive.apply(record.seq, record.ops, epoch=record.epoch)
            except InvalidOperation as error:
                if index < len(pending) - 1:
                    raise DivergedHive(
                        f"update {record.seq} of the quorum log does not apply to the hive ({error}) although later "
                        "updates follow it: the hive and the log disagree; receive the database from a sponsor"
                    ) from error
                log.warning("catch-up: skipping update %d, the last in the log: its locker refused it (%s)",
                            record.seq, error)
        if pending:
            log.info("catch-up: replayed %d update(s); the hive is at update %d", len(pending), hive.last_seq)
        return hive.last_seq


def is_stale(hive: Hive, quorum_log: ReplayLog) -> bool:
    """The "partition in time" test: must this node catch up before it serves (forms or answers)?

    True when the log or its checkpoint holds an update the hive has not
    applied (or the hive applied an orphan).  A last record that the hive
    would refuse (an update its locker refused) does not make the hive stale.
    """
    if hive.last_seq < quorum_log.checkpoint_seq or quorum_log.diverged(hive):
        return True
    pending = list(quorum_log.records(hive.last_seq)) if hive.last_seq <= quorum_log.last_seq else []
    if len(pending) != 1:
        return bool(pending)
    try:
        hive.check(pending[0].ops)
    except InvalidOperation:
        return False
    return True
