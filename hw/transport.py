"""The transport interface: one I_T nexus to one logical unit.

A :class:`Transport` carries CDBs (built by :mod:`wolfpack.hw.scsi`) and
resets; three implementations follow it, like patroni's watchdog drivers:

* :class:`~wolfpack.hw.sg.SgTransport`: Linux ``SG_IO`` on ``/dev/sg*`` or ``/dev/sd*``
  (lab nodes with real shared disks);
* :class:`~wolfpack.hw.iscsi.IscsiTransport`: libiscsi over TCP (tgtd in tests);
* :class:`~wolfpack.hw.memory.MemoryTransport`: the in-memory SPC device.

A transport reports what happened (:class:`~wolfpack.hw.scsi.ScsiResult`); it
raises only for programming errors and a closed transport.  Retrying and
mapping to errors is the device layer's job (:mod:`wolfpack.hw.device`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum

from wolfpack.hw.scsi import ScsiResult


class ResetLevel(Enum):
    """What a reset reaches: the logical unit (LUN RESET), the target, or the bus (SCSI-2's bus reset)."""

    LUN = "lun"
    TARGET = "target"
    BUS = "bus"


class Transport(ABC):
    """One initiator's path (an I_T nexus) to one logical unit."""

    #: A short name for logs: the device path or URL and the initiator.
    name: str = ""

    @abstractmethod
    def execute(self, cdb: bytes, data_out: bytes = b"", data_in_len: int = 0, *,
                timeout_ms: int = 5_000) -> ScsiResult:
        """Send one command; ``data_out`` for writes and PROUT, ``data_in_len`` bytes expected back."""

    @abstractmethod
    def reset(self, level: ResetLevel = ResetLevel.LUN) -> None:
        """Break the reservations the way MSCS challenges: a LUN, target or bus reset.

        Raises :class:`~wolfpack.hw.errors.NotSupported` if the target lacks that
        level, :class:`~wolfpack.hw.errors.DeviceFailed` if the reset failed."""

    @abstractmethod
    def close(self) -> None:
        """End the I_T nexus (a SCSI-2 reservation held through it is released; PR registrations stay)."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
