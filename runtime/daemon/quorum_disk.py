"""The daemon's quorum disk (``quorum = "disk"``): arbitration commands and the quorum log on the shared disk.

The node runs the arbitration machine (SCSI-2 challenge/defense or SCSI-3
persistent reservations, ``cluster.arbitration``) like any other machine;
this shell only carries out what it asks of the disk:

* its ``command`` effects run on the disk through
  :class:`~wolfpack.hw.arbiter.DiskCommands`, in one worker thread, one at a
  time; each outcome comes back to the node's queue as the machine's event;
* when the machine reports ``won``, the node *suspends* (as for a database
  transfer), reads the quorum log on the disk (:class:`~wolfpack.hw.disk_log.DiskLog`,
  formatted on first use of a blank disk) and brings the two databases
  together before anything else happens: a hive behind the log catches up
  (the "partition in time": a node that was down while others changed the
  configuration never forms with its stale database), and a log behind the
  hive (the previous owner died before it logged updates this node has)
  gets a checkpoint of the hive.  Then the membership machine hears the
  newest membership epoch recorded on the disk (``disk_epoch``: its rounds
  go above it) and ``disk_won``, and forms or regroups with the disk;
* while this node owns the disk, the membership machine records the epoch of
  every round it acknowledges or proposes there (:meth:`record_epoch`, a
  checkpoint carrying the epoch) before that round can be committed: epochs
  never repeat although the disk's holders change;
* while this node owns the disk, every global update it persists is appended
  to the disk's log first, through the reservation (:meth:`append`): a node
  that lost the disk cannot write (RESERVATION CONFLICT), logs nothing, and
  halts (it stops every resource).  A full log gets a checkpoint.

Self-fencing is the machines': the arbitration machine reports
``lost_quorum`` when a renewal fails or comes too late (at most
T + jitter + 3 D after the reservation was last confirmed), the wiring turns
it into the membership machine's ``disk_lost``, and the node halts.

Every disk access goes through one :class:`SerialTransport`, which holds a
lock per command (the worker's arbitration commands and the node task's log
writes share the one I_T nexus: a second session would be another initiator
to the target) and logs in again after the session broke.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from wolfpack.errors import DatabaseError, WolfpackError
from wolfpack.hw.arbiter import AsyncioScheduler, DiskCommands
from wolfpack.hw.device import Disk, open_transport
from wolfpack.hw.disk_log import DiskLog, LogFull
from wolfpack.hw.scsi import ScsiResult
from wolfpack.hw.transport import ResetLevel, Transport
from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.daemon.config import NodeConfig
from wolfpack.runtime.daemon.node import DaemonNode
from wolfpack.runtime.db.log_records import is_stale
from wolfpack.runtime.db.quorum_log import QuorumLog
from wolfpack.runtime.db.updates import Op
from wolfpack.runtime.node.host import ApplyFailed
from wolfpack.spec.core import Emitted

log = logging.getLogger("wolfpack.quorum_disk")


class SerialTransport(Transport):
    """One node's I_T nexus to the quorum disk, shared by threads (a lock per command), opened at first use
    and opened again after its session broke (the target restarted, the path failed)."""

    def __init__(self, opener: Callable[[], Transport], name: str) -> None:
        self._opener = opener
        self._transport: Transport | None = None
        self._lock = threading.Lock()
        self.name = name

    def _current(self) -> Transport:
        broken: object = getattr(self._transport, "broken", None)
        if self._transport is not None and broken:
            log.warning("quorum disk %s: the session broke (%s); logging in again", self.name, broken)
            self._transport.close()
            self._transport = None
        if self._transport is None:
            self._transport = self._opener()  # DeviceFailed if the target cannot be reached: a failed command
            log.info("quorum disk: logged in to %s", self._transport.name)
        return self._transport

    def execute(self, cdb: bytes, data_out: bytes = b"", data_in_len: int = 0, *,
                timeout_ms: int = 5_000) -> ScsiResult:
        with self._lock:
            return self._current().execute(cdb, data_out, data_in_len, timeout_ms=timeout_ms)

    def reset(self, level: ResetLevel = ResetLevel.LUN) -> None:
        with self._lock:
            self._current().reset(level)

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None


class QuorumDisk:
    def __init__(self, config: NodeConfig, node: DaemonNode, local_log: QuorumLog,
                 on_loaded: Callable[[], None]) -> None:
        url = str(config["cluster.quorum_disk"])
        timeout_ms = config.timing["reserve_timeout_ms"]
        self.node = node
        self.hive = node.database.hive
        self.local_log = local_log
        self._on_loaded = on_loaded
        self.transport = SerialTransport(
            lambda: open_transport(url, initiator=config.initiator, timeout_ms=timeout_ms), f"{url} as "
            f"{config.initiator}")
        self.disk = Disk(self.transport, timeout_ms=timeout_ms)
        self.scheduler = AsyncioScheduler(asyncio.get_running_loop())
        self.commands = DiskCommands(self.disk, self.scheduler, self._answer, me=node.node_id,
                                     scsi3=config["cluster.arbitration"] == "scsi3",
                                     cluster=str(config["cluster.name"]))
        self.log: DiskLog | None = None
        #: this node owns the disk and its copy of the quorum log is in step with the hive
        self.owner = False

    # -- arbitration ----------------------------------------------------------------------------
    def command(self, effect: Emitted) -> None:
        """The arbitration machine's ``command``: run it on the disk; the outcome comes back as its event."""
        self.commands.send(effect.name, dict(effect.args))

    def _answer(self, event: str, args: dict[str, Any]) -> None:
        self.node.post(lambda: self.node.feed("arbitration", event, **args))

    def forget(self) -> None:
        """The node's machines were rebuilt (a rejoin) or halted: answers in flight belong to the old ones."""
        self.commands.forget()
        self.owner = False

    # -- winning the disk: read its quorum log, bring the hive and the log together ---------------
    def won(self) -> None:
        """The arbitration machine won the disk: suspend the node until the quorum log is read and merged."""
        self.owner = False
        self.node.suspend()
        self.scheduler.run(self._read_log, self._log_read)

    def _read_log(self) -> DiskLog:
        """In the disk worker: open the quorum log (format a blank disk), or read it again."""
        if self.log is not None:
            self.log.refresh()
            return self.log
        if not any(self.disk.read_blocks(0, 1)):
            log.warning("quorum disk %s: block 0 is blank; formatting the quorum log on it", self.disk.name)
            return DiskLog.format(self.disk)
        return DiskLog.open(self.disk)

    def _log_read(self, disk_log: DiskLog | None, error: BaseException | None) -> None:
        node = self.node
        if error is not None or disk_log is None:
            log.error("quorum disk: the quorum log cannot be read (%s); this node gives the disk up and halts "
                      "(another node may win it)", error)
            node.resume_failed(ApplyFailed("disk_lost", {}, f"the quorum log cannot be read: {error}", "membership"))
            return
        self.log = disk_log
        try:
            first = self._merge(disk_log)
        except WolfpackError as exc:
            log.error("quorum disk: the quorum log on the disk and this node's database cannot be brought "
                      "together (%s); this node gives the disk up and halts", exc)
            node.resume_failed(ApplyFailed("disk_lost", {}, f"the quorum log cannot be merged: {exc}", "membership"))
            return
        self.owner = True
        floor = disk_log.epoch

        def start() -> None:  # before the membership machine hears disk_won (queued while suspended)
            if first is not None:
                first()
            node.feed("membership", "disk_epoch", epoch=floor)

        node.resume(first=start)

    def _merge(self, disk_log: DiskLog) -> Callable[[], None] | None:
        hive = self.hive
        if is_stale(hive, disk_log):
            before = hive.last_seq
            disk_log.catch_up(hive, rebuild_diverged=True)
            self.local_log.reset(hive)
            log.info("quorum disk: this node's database was at update %d; the quorum log on the disk brought it to "
                     "update %d", before, hive.last_seq)
            self._on_loaded()
            gum = self.node.machines["gum"].record
            seq, locker, members = hive.last_seq, int(gum.locker), [bool(m) for m in gum.members]
            self.node.app.store = {**self.node.app.store, **{r.seq: [dict(op) for op in r.ops]
                                                             for r in disk_log.records()}}
            events = catalog.state_events(hive, self.node.n)
            return lambda: self.node.app.adopt(seq, locker, members, events)
        if hive.last_seq > disk_log.last_seq:
            disk_log.checkpoint(hive)
            log.info("quorum disk: the quorum log on the disk ended at update %d, this node's database at %d: "
                     "logged a checkpoint of the database", disk_log.last_seq, hive.last_seq)
        return None

    # -- logging updates through the reservation -------------------------------------------------
    def append(self, seq: int, epoch: int, ops: list[Op]) -> None:
        """Log update ``seq`` on the disk if this node owns it (before the local log and the hive)."""
        disk_log = self.log
        if not self.owner or disk_log is None:
            return
        epoch = max(epoch, disk_log.epoch)
        try:
            try:
                disk_log.append(seq, epoch, ops)
            except LogFull:
                disk_log.checkpoint(self.hive)
                disk_log.append(seq, epoch, ops)
        except WolfpackError as exc:
            self.owner = False
            log.error("quorum disk: update %d could not be logged on the disk (%s); this node halts and stops its "
                      "resources", seq, exc)
            self.node.post(lambda: self.node.feed("membership", "disk_lost"))
            raise DatabaseError(f"update {seq} was not logged on the quorum disk: {exc}") from exc

    def record_epoch(self, epoch: int) -> None:
        """Record a membership epoch on the disk this node owns (the membership machine asks before it
        acknowledges or proposes a round): a node that wins the disk later starts its rounds above it."""
        disk_log = self.log
        if not self.owner or disk_log is None or epoch <= disk_log.epoch:
            return
        try:
            disk_log.checkpoint(self.hive, epoch=epoch)
        except WolfpackError as exc:
            self.owner = False
            log.error("quorum disk: epoch %d could not be recorded on the disk (%s); this node halts and stops its "
                      "resources", epoch, exc)
            self.node.post(lambda: self.node.feed("membership", "disk_lost"))

    def close(self) -> None:
        """After the machines stopped: the worker finishes its commands (a release), then the session ends."""
        self.scheduler.executor.shutdown(wait=True, cancel_futures=False)
        self.transport.close()
