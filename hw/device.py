"""The reservation device: SCSI-2 and SCSI-3 reservations and block I/O over any transport.

:class:`Disk` is what the arbiter and the quorum log use.  Every method sends
the commands of :mod:`wolfpack.hw.scsi` through a
:class:`~wolfpack.hw.transport.Transport`, retries a UNIT ATTENTION (at most
``ua_retries`` times: it is reported once per I_T nexus), and raises the
errors of :mod:`wolfpack.hw.errors` otherwise: a RESERVATION CONFLICT is never
retried (ownership is lost).

:func:`open_device` opens one by URL, the way the daemon's configuration names
a disk::

    memory://quorum                                   in-memory device "quorum" (tests, simulator)
    iscsi://127.0.0.1:3260/iqn.2026-01.test:quorum/1  LUN 1 of an iSCSI target, through libiscsi
    sg:///dev/sg0                                     a local SCSI disk through Linux SG_IO

Each call opens a new I_T nexus; ``initiator`` names it (an iSCSI IQN, or any
name for the memory device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import ParseResult, urlparse

from wolfpack.errors import ConfigError
from wolfpack.hw import scsi
from wolfpack.hw.errors import IllegalRequest, UnitAttention
from wolfpack.hw.scsi import Keys, PrIn, PrOut, Reservation, ScsiResult
from wolfpack.hw.transport import ResetLevel, Transport

log = logging.getLogger(__name__)

UA_RETRIES = 3
PRIN_ALLOCATION = 8 + 8 * 64


class Disk:
    """One node's view of a shared disk (one I_T nexus)."""

    def __init__(self, transport: Transport, *, timeout_ms: int = 5_000, ua_retries: int = UA_RETRIES) -> None:
        self.transport = transport
        self.timeout_ms = timeout_ms
        self.ua_retries = ua_retries
        self._block_size = 0
        self._blocks = 0

    @property
    def name(self) -> str:
        return self.transport.name

    def command(self, what: str, cdb: bytes, data_out: bytes = b"", data_in_len: int = 0) -> ScsiResult:
        """Send one command, retrying past unit attentions; raise on anything but GOOD."""
        for attempt in range(self.ua_retries + 1):
            result = self.transport.execute(cdb, data_out, data_in_len, timeout_ms=self.timeout_ms)
            try:
                return scsi.check(result, f"{what} on {self.name}")
            except UnitAttention as error:
                if attempt == self.ua_retries:
                    raise
                log.info("%s: %s (retrying)", self.name, error)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- SCSI-2 -----------------------------------------------------------------------------------
    def test_unit_ready(self) -> None:
        self.command("TEST UNIT READY", scsi.test_unit_ready())

    def reserve6(self) -> None:
        """RESERVE(6); the holder's repeat is its renewal."""
        self.command("RESERVE(6)", scsi.reserve6())

    def release6(self) -> None:
        self.command("RELEASE(6)", scsi.release6())

    def reset(self, level: ResetLevel = ResetLevel.LUN) -> None:
        self.transport.reset(level)

    # -- SCSI-3 persistent reservations ------------------------------------------------------
    def _prout(self, what: str, action: PrOut, key: int, sa_key: int = 0, pr_type: int = 0) -> None:
        self.command(what, scsi.prout(action, pr_type), scsi.prout_parameters(key, sa_key))

    def register(self, key: int, new_key: int) -> None:
        """REGISTER: ``key`` must be this nexus's current key (0 if none); ``new_key`` 0 unregisters."""
        self._prout("PROUT REGISTER", PrOut.REGISTER, key, new_key)

    def register_ignore(self, new_key: int) -> None:
        """REGISTER AND IGNORE EXISTING KEY: always succeeds; ``new_key`` 0 unregisters (and releases)."""
        self._prout("PROUT REGISTER AND IGNORE EXISTING KEY", PrOut.REGISTER_AND_IGNORE, 0, new_key)

    def reserve(self, key: int, pr_type: int = scsi.WERO) -> None:
        self._prout("PROUT RESERVE", PrOut.RESERVE, key, 0, pr_type)

    def release(self, key: int, pr_type: int = scsi.WERO) -> None:
        self._prout("PROUT RELEASE", PrOut.RELEASE, key, 0, pr_type)

    def clear(self, key: int) -> None:
        self._prout("PROUT CLEAR", PrOut.CLEAR, key)

    def preempt(self, key: int, victim: int, pr_type: int = scsi.WERO, *, abort: bool = False) -> None:
        """PREEMPT (AND ABORT): remove ``victim``'s registrations; take its reservation if it held one."""
        action = PrOut.PREEMPT_AND_ABORT if abort else PrOut.PREEMPT
        self._prout("PROUT PREEMPT AND ABORT" if abort else "PROUT PREEMPT", action, key, victim, pr_type)

    def fence(self, key: int, victim: int, pr_type: int = scsi.WERO) -> bool:
        """Storage fencing: PREEMPT AND ABORT, or PREEMPT where the target does not support it
        (ILLEGAL REQUEST 24/00, as tgt); returns False when it had to fall back (degraded)."""
        try:
            self.preempt(key, victim, pr_type, abort=True)
            return True
        except IllegalRequest as error:
            if error.additional != scsi.INVALID_FIELD_IN_CDB:
                raise
            log.warning("%s: PREEMPT AND ABORT not supported (%s); fencing with PREEMPT (degraded: writes already "
                        "queued by the victim are not aborted)", self.name, error)
        self.preempt(key, victim, pr_type, abort=False)
        return False

    def read_keys(self) -> Keys:
        result = self.command("PRIN READ KEYS", scsi.prin(PrIn.READ_KEYS, PRIN_ALLOCATION), b"", PRIN_ALLOCATION)
        return scsi.parse_read_keys(result.data)

    def read_reservation(self) -> Reservation:
        result = self.command("PRIN READ RESERVATION", scsi.prin(PrIn.READ_RESERVATION, 24), b"", 24)
        return scsi.parse_read_reservation(result.data)

    # -- blocks ---------------------------------------------------------------------------------
    def capacity(self) -> tuple[int, int]:
        """(number of blocks, block size), read once."""
        if not self._block_size:
            result = self.command("READ CAPACITY(10)", scsi.read_capacity10(), b"", 8)
            self._blocks, self._block_size = scsi.parse_read_capacity10(result.data)
        return self._blocks, self._block_size

    @property
    def block_size(self) -> int:
        return self.capacity()[1]

    def read_blocks(self, lba: int, count: int) -> bytes:
        size = self.block_size
        result = self.command(f"READ(10) lba {lba}", scsi.read10(lba, count), b"", count * size)
        return result.data[: count * size].ljust(count * size, b"\0")

    def write_blocks(self, lba: int, data: bytes) -> None:
        size = self.block_size
        if not data or len(data) % size:
            raise ValueError(f"a write is whole blocks of {size} bytes, got {len(data)} bytes")
        self.command(f"WRITE(10) lba {lba}", scsi.write10(lba, len(data) // size), data)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Disk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Opener = Callable[..., Transport]


NOT_ISCSI = ("is not an iSCSI disk URL; write iscsi://HOST:PORT/TARGET-IQN/LUN, e.g. "
             "iscsi://10.0.0.9:3260/iqn.2026-01.lab:quorum/1")


def _iscsi_lun(parsed: ParseResult) -> tuple[str, str, int] | None:
    """(portal, target IQN, LUN) of an ``iscsi://`` URL, or None if it is not one."""
    target, _, number = parsed.path.strip("/").rpartition("/")
    if not parsed.hostname or not target or not number.isdigit():
        return None
    return f"{parsed.hostname}:{parsed.port or 3260}", target, int(number)


def open_transport(url: str, *, initiator: str = "iqn.2026-01.org.wolfpack:node", timeout_ms: int = 5_000) -> Transport:
    """The transport a URL names (see the module docstring)."""
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        from wolfpack.hw.memory import MemoryTransport, lun

        return MemoryTransport(lun(parsed.netloc or parsed.path.strip("/")), initiator)
    if parsed.scheme == "iscsi":
        from wolfpack.hw.iscsi import IscsiTransport

        found = _iscsi_lun(parsed)
        if found is None:
            raise ConfigError(f"{url!r} {NOT_ISCSI}")
        portal, target, number = found
        return IscsiTransport(portal, target, number, initiator, timeout_ms=timeout_ms)
    if parsed.scheme == "sg":
        from wolfpack.hw.sg import SgTransport

        return SgTransport(parsed.path)
    raise ConfigError(f"unknown disk URL {url!r}: use memory://NAME, iscsi://HOST:PORT/IQN/LUN or sg:///dev/sgN")


def shared_disk_problem(url: str) -> str | None:
    """What is wrong with ``url`` as the name of a disk that several nodes (processes, machines) share."""
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        return ("names an in-memory disk, which exists inside one process only; the nodes need a disk they all "
                "reach: use iscsi://HOST:PORT/TARGET-IQN/LUN or sg:///dev/sgN")
    if parsed.scheme == "iscsi":
        return None if _iscsi_lun(parsed) is not None else NOT_ISCSI
    if parsed.scheme == "sg":
        return None if parsed.path.startswith("/dev/") else "is not a device path; write sg:///dev/sgN"
    return "is not a disk URL: use iscsi://HOST:PORT/TARGET-IQN/LUN or sg:///dev/sgN"


def open_device(url: str, *, initiator: str = "iqn.2026-01.org.wolfpack:node", timeout_ms: int = 5_000) -> Disk:
    """A :class:`Disk` on a new I_T nexus to the disk ``url`` names."""
    return Disk(open_transport(url, initiator=initiator, timeout_ms=timeout_ms), timeout_ms=timeout_ms)
