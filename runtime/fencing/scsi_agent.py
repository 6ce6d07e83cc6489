"""``fence_wolfpack_scsi``: SCSI-3 persistent-reservation fencing with ``fence_scsi``'s semantics, over libiscsi.

``fence_scsi`` drives a kernel SCSI disk through sg3_utils; Wolfpack's test
machines (and some lab nodes) have no kernel SCSI, so this agent sends the same
commands through the user-space initiator of :mod:`wolfpack.hw.iscsi` and the
reservation device of :mod:`wolfpack.hw.device`:

* ``on`` (unfence) ``plug=<node>``: REGISTER AND IGNORE EXISTING KEY with the
  node's key; if the disk has no reservation yet, RESERVE it Write Exclusive,
  Registrants Only (type 5: anyone reads, only registrants write);
* ``off`` ``plug=<victim> nodename=<fencer>``: the fencer's key must be
  registered (it was unfenced); the agent joins with it on its own I_T nexus,
  then PREEMPT AND ABORT removes every registration of the victim's key (tgt
  lacks PREEMPT AND ABORT: :meth:`~wolfpack.hw.device.Disk.fence` falls back to
  PREEMPT and says so), and checks the key is gone and a reservation remains.
  From then on the victim's writes get RESERVATION CONFLICT;
* ``status`` ``plug=<node>``: 0 (on) while the node's key is registered, 2 (off)
  once it is gone; ``monitor``: the disk answers PERSISTENT RESERVE IN;
  ``list``: the registered keys and the nodes they belong to.

**Keys.** A node's key is :func:`wolfpack.hw.arbiter.pr_key`, the rule of the
daemon's own SCSI-3 arbitration and of ``fence_scsi``: the first 4 bytes of the
MD5 of the cluster name (parameter ``cluster``, default ``wolfpack``), then the
node id + 1 in the low 4 bytes (so no key is 0).  Node 2 of cluster
``wolfpack`` has key ``0x<md5("wolfpack")[:4]>00000003``.  ``key=0x...``
overrides the fencer's key; a plug of the form ``0x...`` is a key, not a node.

The disk: ``url=iscsi://HOST:PORT/TARGET-IQN/LUN``, or ``portal`` (which may be
that URL), ``target`` and ``lun``.  Each node uses its own initiator name,
``<initiator>:node<id>`` (default prefix ``iqn.2026-01.org.wolfpack:fence``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from wolfpack.errors import ConfigError, DeviceError
from wolfpack.hw import scsi
from wolfpack.hw.arbiter import node_of_key, pr_key
from wolfpack.hw.device import Disk, open_device
from wolfpack.hw.errors import ReservationConflict
from wolfpack.runtime.fencing import protocol
from wolfpack.runtime.fencing.protocol import EXIT_OFF, EXIT_OK, AgentError, Param

NAME = "fence_wolfpack_scsi"
CLUSTER = "wolfpack"
INITIATOR = "iqn.2026-01.org.wolfpack:fence"
TIMEOUT_MS = 5_000
LONGDESC = ("fence_wolfpack_scsi fences a node from a shared disk with SCSI-3 persistent reservations, like "
            "fence_scsi, through the user-space iSCSI initiator libiscsi: on registers the node's key, off preempts "
            "it, status tells whether it is registered.")
ACTIONS = ("on", "off", "status", "monitor", "list", "metadata")
PARAMS = (
    *protocol.COMMON,
    Param("url", "The disk: iscsi://HOST:PORT/TARGET-IQN/LUN"),
    Param("portal", "iSCSI portal HOST:PORT (or the whole iscsi:// URL)"),
    Param("target", "iSCSI target IQN"),
    Param("lun", "Logical unit number", type="integer", default="1"),
    Param("cluster", "Cluster name: the high 4 bytes of every key are its MD5's", default=CLUSTER),
    Param("key", "This node's registration key in hex (default: derived from nodename)"),
    Param("initiator", "Prefix of the initiator names (one per node: <prefix>:node<id>)", default=INITIATOR),
    Param("timeout_ms", "Timeout of each SCSI command", type="integer", default=str(TIMEOUT_MS)),
)


def disk_url(params: dict[str, str]) -> str:
    """The ``iscsi://`` URL the parameters name."""
    if params.get("url"):
        return params["url"]
    portal = params.get("portal", "")
    if portal.startswith("iscsi://"):
        return portal
    if not portal or not params.get("target"):
        raise AgentError("no disk given: pass url=iscsi://HOST:PORT/TARGET-IQN/LUN, or portal=, target= and lun=")
    return f"iscsi://{portal}/{params['target']}/{params.get('lun', '1')}"


def key_of(value: str, cluster: str, what: str) -> int:
    """The key a node id (or an ``0x`` key) names."""
    value = value.strip()
    try:
        key = int(value, 16) if value.lower().startswith("0x") else pr_key(cluster, int(value))
    except ValueError:
        raise AgentError(f"{what} {value!r} is neither a node id (an integer) nor a key (0x...)") from None
    if key <= 0 or key >= 1 << 64:
        raise AgentError(f"{what} {value!r} gives key {key:#x}, which is not a non-zero 8-byte key")
    return key


def _node_label(key: int, cluster: str) -> str:
    node = node_of_key(cluster, key)
    return f"node {node}" if node is not None else "a foreign key"


@contextmanager
def _disk(params: dict[str, str], who: str) -> Iterator[Disk]:
    url = disk_url(params)
    initiator = f"{params.get('initiator', INITIATOR)}:{who}"
    try:
        timeout_ms = int(params.get("timeout_ms", TIMEOUT_MS))
    except ValueError:
        raise AgentError(f"timeout_ms {params['timeout_ms']!r} is not an integer") from None
    try:
        disk = open_device(url, initiator=initiator, timeout_ms=timeout_ms)
    except (ConfigError, DeviceError) as error:
        raise AgentError(str(error)) from None
    try:
        yield disk
    except DeviceError as error:
        raise AgentError(f"{url}: {error}") from None
    finally:
        disk.close()


def unfence(disk: Disk, key: int) -> str:
    """Register ``key`` on this nexus; reserve WERO if nobody holds a reservation.  What was done."""
    disk.register_ignore(key)
    if disk.read_reservation().key is not None:
        return f"registered key {key:#x}"
    try:
        disk.reserve(key, scsi.WERO)
    except ReservationConflict:  # another node reserved in the meantime: that is all we wanted
        if disk.read_reservation().key is None:
            raise
    return f"registered key {key:#x} and reserved the disk (Write Exclusive, Registrants Only)"


def fence(disk: Disk, own: int, victim: int) -> str:
    """Preempt ``victim``'s registrations with ``own`` (which must be registered); what was done."""
    if own == victim:
        raise AgentError(f"refusing to fence this node's own key {own:#x}: the plug names the fencer itself")
    keys = disk.read_keys().keys
    if own not in keys:
        raise AgentError(f"this node's key {own:#x} is not registered on {disk.name}: a node that was not unfenced "
                         "cannot fence others (run action=on for it first)")
    if victim not in keys:
        return "Already OFF"
    disk.register_ignore(own)  # this agent's own I_T nexus joins with the node's key
    aborted = disk.fence(own, victim, scsi.WERO)
    after = disk.read_keys().keys
    if victim in after:
        raise AgentError(f"key {victim:#x} is still registered after the preempt: the disk did not fence")
    if disk.read_reservation().key is None:
        disk.reserve(own, scsi.WERO)
    how = "PREEMPT AND ABORT" if aborted else "PREEMPT (degraded: the target lacks PREEMPT AND ABORT)"
    return f"Success: Powered OFF (key {victim:#x} preempted by {own:#x} with {how})"


def handle(action: str, params: dict[str, str], out: TextIO) -> int:
    if action == "metadata":
        out.write(protocol.metadata_xml(NAME, "Fence agent for SCSI-3 persistent reservations over iSCSI",
                                        LONGDESC,
                                        PARAMS, ACTIONS))
        return EXIT_OK
    cluster = params.get("cluster", CLUSTER)
    plug = params.get("plug", "")
    if action in ("monitor", "list"):
        with _disk(params, "query") as disk:
            keys = disk.read_keys().keys
        if action == "list":
            for key in keys:
                out.write(f"{key:#x},{_node_label(key, cluster)}\n")
        return EXIT_OK
    if action == "on":
        node = plug or params.get("nodename", "")
        if not node:
            raise AgentError("on needs the node to unfence: plug=<node id> (or nodename=)")
        with _disk(params, f"node{node}") as disk:
            out.write(f"Success: Powered ON ({unfence(disk, key_of(node, cluster, 'plug'))})\n")
        return EXIT_OK
    if not plug:
        raise AgentError(f"{action} needs the node: plug=<node id>")
    victim = key_of(plug, cluster, "plug")
    if action == "status":
        with _disk(params, "query") as disk:
            on = victim in disk.read_keys().keys
        out.write(f"Status: {'ON' if on else 'OFF'}\n")
        return EXIT_OK if on else EXIT_OFF
    if params.get("key"):
        own = key_of("0x" + params["key"].lower().removeprefix("0x"), cluster, "key")
    elif params.get("nodename"):
        own = key_of(params["nodename"], cluster, "nodename")
    else:
        raise AgentError("off needs the fencing node: nodename=<node id> (or key=<hex key>)")
    with _disk(params, f"node{params.get('nodename') or 'fencer'}") as disk:
        out.write(fence(disk, own, victim) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return protocol.main(handle, PARAMS, ACTIONS, argv)


if __name__ == "__main__":
    sys.exit(main())
