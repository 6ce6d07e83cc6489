"""SCSI commands as bytes: CDB builders, parameter lists, PRIN parsers, sense decoding.

Pure functions shared by every transport (SG_IO, libiscsi, the in-memory
device): each builds or reads exactly the bytes of SPC-2/SPC-3 as laid out in
``shared/reference/scsi-and-timing.md`` §3.  Nothing here does I/O.

Errors (:mod:`wolfpack.hw.errors`) come from :func:`check`: a result with
status RESERVATION CONFLICT means ownership is lost, a UNIT ATTENTION is to be
retried (the device layer does), ILLEGAL REQUEST names what the target does not
support.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from wolfpack.hw.errors import (
    CheckCondition,
    DeviceFailed,
    DeviceTimeout,
    IllegalRequest,
    ReservationConflict,
    UnitAttention,
)

# --- status, sense keys, opcodes -------------------------------------------------------------

GOOD = 0x00
CHECK_CONDITION = 0x02
BUSY = 0x08
RESERVATION_CONFLICT = 0x18
TASK_SET_FULL = 0x28

NO_SENSE = 0x0
NOT_READY = 0x2
MEDIUM_ERROR = 0x3
HARDWARE_ERROR = 0x4
ILLEGAL_REQUEST = 0x5
UNIT_ATTENTION = 0x6

TEST_UNIT_READY = 0x00
RESERVE6 = 0x16
RELEASE6 = 0x17
READ_CAPACITY10 = 0x25
READ10 = 0x28
WRITE10 = 0x2A
PRIN = 0x5E
PROUT = 0x5F

#: (ASC, ASCQ) pairs this layer names.
INVALID_OPCODE = (0x20, 0x00)
LBA_OUT_OF_RANGE = (0x21, 0x00)
INVALID_FIELD_IN_CDB = (0x24, 0x00)
INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
INVALID_RELEASE_OF_PR = (0x26, 0x04)
POWER_ON_OR_RESET = (0x29, 0x00)
RESERVATIONS_PREEMPTED = (0x2A, 0x03)
RESERVATIONS_RELEASED = (0x2A, 0x04)
REGISTRATIONS_PREEMPTED = (0x2A, 0x05)

PARAMETER_LIST_LENGTH = 24
DEFAULT_BLOCK_SIZE = 512


class PrIn(IntEnum):
    """PERSISTENT RESERVE IN service actions."""

    READ_KEYS = 0x00
    READ_RESERVATION = 0x01
    REPORT_CAPABILITIES = 0x02


class PrOut(IntEnum):
    """PERSISTENT RESERVE OUT service actions."""

    REGISTER = 0x00
    RESERVE = 0x01
    RELEASE = 0x02
    CLEAR = 0x03
    PREEMPT = 0x04
    PREEMPT_AND_ABORT = 0x05
    REGISTER_AND_IGNORE = 0x06


class PrType(IntEnum):
    """Persistent reservation types (SPC numbering, not Linux ``<linux/pr.h>``)."""

    WRITE_EXCLUSIVE = 1
    EXCLUSIVE_ACCESS = 3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 8


#: The type Wolfpack reserves with (as fence_scsi does): anyone reads, registrants write.
WERO = PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY

# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScsiResult:
    """What one command returned.

    ``status`` is the SAM status byte (``None`` when the command never completed:
    ``transport_error`` says why, and ``timed_out`` tells a timeout apart);
    ``sense_key``/``asc``/``ascq`` come from the sense data of a CHECK CONDITION;
    ``data`` is what a data-in command read.
    """

    status: int | None
    sense_key: int = NO_SENSE
    asc: int = 0
    ascq: int = 0
    data: bytes = b""
    transport_error: str = ""
    timed_out: bool = False

    @property
    def good(self) -> bool:
        return self.status == GOOD

    @property
    def additional(self) -> tuple[int, int]:
        return (self.asc, self.ascq)

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.transport_error or 'transport error'})"
        if self.status == CHECK_CONDITION:
            return f"CHECK CONDITION, sense key {self.sense_key:#x}, ASC/ASCQ {self.asc:02x}/{self.ascq:02x}"
        names = {GOOD: "GOOD", RESERVATION_CONFLICT: "RESERVATION CONFLICT", BUSY: "BUSY",
                 TASK_SET_FULL: "TASK SET FULL"}
        return names.get(self.status, f"status {self.status:#x}")


def sense_result(key: int, asc_ascq: tuple[int, int]) -> ScsiResult:
    return ScsiResult(CHECK_CONDITION, key, asc_ascq[0], asc_ascq[1])


def decode_sense(sense: bytes) -> tuple[int, int, int]:
    """(sense key, ASC, ASCQ) of fixed (0x70/0x71) or descriptor (0x72/0x73) sense data."""
    if not sense:
        return (NO_SENSE, 0, 0)
    code = sense[0] & 0x7F
    if code in (0x72, 0x73):
        padded = sense.ljust(4, b"\0")
        return (padded[1] & 0x0F, padded[2], padded[3])
    padded = sense.ljust(14, b"\0")
    return (padded[2] & 0x0F, padded[12], padded[13])


def fixed_sense(key: int, asc_ascq: tuple[int, int]) -> bytes:
    """18 bytes of fixed-format sense data (what a target sends with CHECK CONDITION)."""
    data = bytearray(18)
    data[0], data[2], data[7], data[12], data[13] = 0x70, key, 10, asc_ascq[0], asc_ascq[1]
    return bytes(data)


def check(result: ScsiResult, what: str) -> ScsiResult:
    """``result`` if GOOD, else the matching :class:`~wolfpack.hw.errors.DeviceError` for ``what``."""
    if result.status == GOOD:
        return result
    if result.status is None:
        if result.timed_out:
            raise DeviceTimeout(f"{what}: no answer in time ({result.transport_error}); the device or its path "
                                "stalls: treat the reservation as lost until a command succeeds again")
        raise DeviceFailed(f"{what}: the command did not complete ({result.transport_error}); check the path "
                           "to the disk (target running, network, cabling)")
    if result.status == RESERVATION_CONFLICT:
        raise ReservationConflict(f"{what}: RESERVATION CONFLICT: another initiator holds the reservation, or this "
                                  "node's key is not registered; this node does not own the disk: stop using it")
    if result.status == CHECK_CONDITION:
        pair = f"{result.asc:02x}/{result.ascq:02x}"
        if result.sense_key == UNIT_ATTENTION:
            raise UnitAttention(f"{what}: UNIT ATTENTION {pair} (reset, preempt or release by another initiator); "
                                "the command did not run: send it again", result.additional)
        if result.sense_key == ILLEGAL_REQUEST:
            raise IllegalRequest(f"{what}: ILLEGAL REQUEST {pair}: the target does not support this command or "
                                 "field; use a supported variant", result.additional)
        raise CheckCondition(f"{what}: CHECK CONDITION, sense key {result.sense_key:#x}, ASC/ASCQ {pair}; "
                             "the device reports an error: check its health", result.additional)
    raise DeviceFailed(f"{what}: {result.describe()}; the target is busy or failing: retry later")


# --- CDBs ------------------------------------------------------------------------------------------


def test_unit_ready() -> bytes:
    return bytes(6)


def reserve6() -> bytes:
    """RESERVE(6): byte 1's third-party and extent bits are obsolete and sent as 0."""
    return bytes([RESERVE6, 0, 0, 0, 0, 0])


def release6() -> bytes:
    return bytes([RELEASE6, 0, 0, 0, 0, 0])


def read_capacity10() -> bytes:
    return bytes([READ_CAPACITY10]) + bytes(9)


def read10(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBIBHB", READ10, 0, lba, 0, blocks, 0)


def write10(lba: int, blocks: int) -> bytes:
    """WRITE(10) with FUA set (bit 3 of byte 1): the target writes through its cache before GOOD."""
    return struct.pack(">BBIBHB", WRITE10, 0x08, lba, 0, blocks, 0)


def prin(action: PrIn, allocation_length: int) -> bytes:
    return struct.pack(">BB5xHB", PRIN, int(action) & 0x1F, allocation_length, 0)


def prout(action: PrOut, pr_type: int = 0) -> bytes:
    """PROUT CDB: scope 0 (logical unit) and TYPE in byte 2; parameter list length 24 in bytes 5-8."""
    return struct.pack(">BBBxxIB", PROUT, int(action) & 0x1F, pr_type & 0x0F, PARAMETER_LIST_LENGTH, 0)


def prout_parameters(key: int, service_action_key: int = 0, *, aptpl: bool = False) -> bytes:
    """The 24-byte basic parameter list: reservation key, service action key, flags (APTPL only)."""
    return struct.pack(">QQIBBH", key, service_action_key, 0, 1 if aptpl else 0, 0, 0)


# --- parsers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    generation: int
    keys: tuple[int, ...]


@dataclass(frozen=True)
class Reservation:
    generation: int
    key: int | None  # None: no persistent reservation
    pr_type: int = 0


def parse_read_keys(data: bytes) -> Keys:
    if len(data) < 8:
        raise CheckCondition(f"READ KEYS returned {len(data)} bytes, fewer than its 8-byte header; "
                             "the target is not SPC-3 compliant")
    generation, length = struct.unpack_from(">II", data)
    body = data[8 : 8 + length]
    return Keys(generation, tuple(struct.unpack_from(">Q", body, i)[0] for i in range(0, len(body) - 7, 8)))


def parse_read_reservation(data: bytes) -> Reservation:
    if len(data) < 8:
        raise CheckCondition(f"READ RESERVATION returned {len(data)} bytes, fewer than its 8-byte header; "
                             "the target is not SPC-3 compliant")
    generation, length = struct.unpack_from(">II", data)
    if length < 16 or len(data) < 24:
        return Reservation(generation, None)
    (key,) = struct.unpack_from(">Q", data, 8)
    return Reservation(generation, key, data[21] & 0x0F)


def parse_read_capacity10(data: bytes) -> tuple[int, int]:
    """(number of blocks, block size)."""
    last, size = struct.unpack_from(">II", data.ljust(8, b"\0"))
    return last + 1, size
