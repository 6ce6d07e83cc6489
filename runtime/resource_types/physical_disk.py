"""Physical Disk: a shared disk that is online on one node only, held with a SCSI-3 persistent reservation.

As Windows Server 2008+ clustering and Pacemaker's ``fence_scsi`` do, a node
brings the disk online by registering its key (8 bytes: the cluster name's
MD5 prefix and the node id, :func:`wolfpack.hw.arbiter.pr_key`) and holding
a Write Exclusive Registrants Only reservation; before that it *preempts*
every other node of the cluster still registered (storage fencing: a node the
cluster left out, or that did not stop in time, can no longer write: its
WRITEs get RESERVATION CONFLICT).  The failover manager brings a group online
on one node only, so the preempt never takes the disk from a legitimate
owner.  The disk quorum itself is the daemon's (``quorum = "disk"``,
:mod:`wolfpack.runtime.daemon.quorum_disk`), where the quorum log is kept;
this type is for the groups' data disks, and may name the quorum disk's
other LUNs.

Properties:

``disk``
    ``iscsi://HOST:PORT/TARGET-IQN/LUN`` or ``sg:///dev/sgN``.  Required.
``initiator``
    the iSCSI initiator name of this resource's session (default: the node's,
    ``node.initiator``, which the daemon gives its monitors, with the resource's
    name appended: every session is its own I_T nexus).
``check_block``
    a block IsAlive writes (its own content back) to prove this node can
    still write; default the disk's last block; -1: IsAlive only reads.

Online: register, preempt the other keys (PREEMPT AND ABORT, PREEMPT where
the target refuses it), reserve.  Offline: release, unregister.
Terminate: end the session (the registration stays; the next owner
preempts it).  LooksAlive: the reservation is still this node's.  IsAlive:
that, and a read and a rewrite of ``check_block``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from wolfpack.errors import DeviceError
from wolfpack.hw.arbiter import node_of_key, pr_key
from wolfpack.hw.device import Disk, open_device, shared_disk_problem
from wolfpack.hw.errors import ReservationConflict
from wolfpack.runtime.resource_types.base import (
    EntryPointFailed,
    Operation,
    Property,
    PropertySchema,
    ResourceType,
    Severity,
)

#: what the daemon tells its monitors (and so every resource type) about the node
NODE_ENV = ("WOLFPACK_NODE_ID", "WOLFPACK_CLUSTER_NAME", "WOLFPACK_INITIATOR")

SCHEMA = PropertySchema((
    Property("disk", (str,), "the shared disk: iscsi://HOST:PORT/TARGET-IQN/LUN or sg:///dev/sgN", required=True,
             check=shared_disk_problem),
    Property("initiator", (str,), "this node's iSCSI initiator name (default: the node's)"),
    Property("check_block", (int,), "the block IsAlive rewrites (default: the last; -1: read only)", default=None,
             check=lambda v: None if v >= -1 else "must be a block number, or -1"),
))


class PhysicalDisk(ResourceType):
    type_name = "Physical Disk"
    schema = SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()
        self._disk: Disk | None = None
        self.node = -1
        self.cluster = ""

    def open(self) -> None:
        missing = [name for name in NODE_ENV[:2] if not os.environ.get(name)]
        if missing:
            raise EntryPointFailed(f"{self.resource_id}: the monitor does not know this node ({', '.join(missing)} "
                                   "unset); Physical Disk runs under wolfpackd's resource monitors", Severity.HARD)
        self.node = int(os.environ["WOLFPACK_NODE_ID"])
        self.cluster = os.environ["WOLFPACK_CLUSTER_NAME"]

    @property
    def key(self) -> int:
        return pr_key(self.cluster, self.node)

    def _session(self) -> Disk:
        if self._disk is None:
            # a session of its own per resource (another initiator name: never the daemon's quorum-disk session)
            node = os.environ.get("WOLFPACK_INITIATOR") or f"iqn.2026-01.org.wolfpack:node{self.node}"
            suffix = "".join(c if c.isalnum() else "-" for c in self.resource_id.lower())
            initiator = self.properties["initiator"] or f"{node}.{suffix}"
            self._disk = open_device(self.properties["disk"], initiator=initiator)
        return self._disk

    def _end_session(self) -> None:
        if self._disk is not None:
            disk, self._disk = self._disk, None
            try:
                disk.close()
            except DeviceError as exc:
                self.log(f"closing the session to {disk.name}: {exc}", "warning")

    def online(self, op: Operation) -> None:
        with self._lock:
            try:
                disk = self._session()
                disk.register_ignore(self.key)
                others = [k for k in disk.read_keys().keys if k != self.key]
                foreign = [k for k in others if node_of_key(self.cluster, k) is None]
                if foreign:
                    raise EntryPointFailed(
                        f"{disk.name} holds registrations that are not cluster {self.cluster!r}'s "
                        f"({', '.join(hex(k) for k in foreign)}): another cluster or host uses this disk; give the "
                        "cluster a disk of its own", Severity.FATAL)
                for victim in others:
                    who = node_of_key(self.cluster, victim)
                    if not disk.fence(self.key, victim):
                        self.log(f"{disk.name}: the target refuses PREEMPT AND ABORT; fenced with PREEMPT (writes "
                                 f"node {who} had queued are not aborted)", "warning")
                    self.log(f"{disk.name}: fenced node {who}: its registration is preempted, its writes now get "
                             "RESERVATION CONFLICT", "warning")
                if disk.read_reservation().key != self.key:
                    disk.reserve(self.key)
            except DeviceError as exc:
                self._end_session()
                raise EntryPointFailed(f"{self.properties['disk']}: cannot take the disk ({exc}); check that this "
                                       "node reaches the target and the LUN supports persistent reservations",
                                       Severity.SOFT) from exc

    def offline(self, op: Operation) -> None:
        with self._lock:
            try:
                disk = self._session()
                if disk.read_reservation().key == self.key:
                    disk.release(self.key)
                disk.register_ignore(0)
            except DeviceError as exc:
                self.log(f"{self.properties['disk']}: releasing failed ({exc}); the next owner preempts this "
                         "node's key", "warning")
            finally:
                self._end_session()

    def terminate(self) -> None:
        with self._lock:
            self._end_session()

    def looks_alive(self) -> bool:
        with self._lock:
            if self._disk is None:
                return False
            try:
                if self._disk.read_reservation().key == self.key:
                    return True
            except DeviceError as exc:
                self.log(f"{self.properties['disk']}: reading the reservation failed: {exc}", "warning")
                return False
            self._can_write()  # says why: a fenced node's write is refused
            return False

    def is_alive(self) -> bool:
        with self._lock:
            return self.looks_alive() and self._can_write()

    def _can_write(self) -> bool:
        """Read ``check_block`` and write it back (read only with -1)."""
        disk = self._disk
        if disk is None:
            return False
        try:
            blocks, _ = disk.capacity()
            block = self.properties["check_block"]
            block = blocks - 1 if block is None else block
            if block < 0:
                disk.read_blocks(0, 1)
                return True
            disk.write_blocks(block, disk.read_blocks(block, 1))
            return True
        except ReservationConflict as exc:
            self.log(f"{disk.name}: a write got RESERVATION CONFLICT ({exc}): this node was fenced; it no longer "
                     "owns the disk", "error")
            return False
        except DeviceError as exc:
            self.log(f"{disk.name}: the check failed: {exc}", "warning")
            return False
