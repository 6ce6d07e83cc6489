"""An in-memory SCSI logical unit that follows SPC-2/SPC-3 reservations, with tgt's deviations on request.

:class:`MemoryLun` is one shared disk; every :class:`MemoryTransport` on it is
one I_T nexus (one initiator).  It interprets the CDBs of
:mod:`wolfpack.hw.scsi` byte for byte, so the device layer, the arbiter and the
quorum log run against it exactly as against tgtd or a real disk:

* SCSI-2 RESERVE(6)/RELEASE(6) per I_T nexus, broken by a LUN reset, a power
  cycle or the holder's nexus loss (``close``);
* persistent reservations: REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE,
  RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT; READ KEYS, READ RESERVATION; the
  PRgeneration; the access rules of each type; APTPL;
* a unit attention queue per I_T nexus (29/00 after a reset or power on,
  2A/03 when preempted or cleared, 2A/04 when a registrants-only reservation is
  released), reported once, before any command but REQUEST SENSE and INQUIRY;
* SPC-4 5.7.3: RESERVE(6)/RELEASE(6) while registrations exist conflict, except
  from the PR holder or from a registrant under a registrants-only reservation,
  where they do nothing and return GOOD; PRIN/PROUT conflict under another
  initiator's SCSI-2 reservation.

``tgt_compat=True`` reproduces tgt 1.0.85's five deviations
(``shared/reference/scsi-and-timing.md`` §9): 1. PREEMPT AND ABORT answers
ILLEGAL REQUEST 24/00; 2. SCSI-2 reservations and PR are independent (no 5.7.3,
PRIN/PROUT pass a SCSI-2 reservation); 3. MODE SENSE passes a SCSI-2
reservation; 4. only LUN RESET exists (target and bus resets are
:class:`~wolfpack.hw.errors.NotSupported`); 5. no APTPL (the bit is refused and
a power cycle loses every registration); and one found by the conformance
tests against tgtd: 6. when a reservation is released, a RELEASE of a
registrants-only type raises no UA 2A/04, and otherwise the UA goes, for each
other registrant, to every open nexus except that registrant's.

Faults: :meth:`MemoryLun.fail` (every command fails: the path or device is
gone), :meth:`MemoryLun.repair` (back, as after a power cycle).
"""

from __future__ import annotations

import itertools
import struct
import threading
from dataclasses import dataclass, field

from wolfpack.hw import scsi
from wolfpack.hw.errors import NotSupported
from wolfpack.hw.scsi import GOOD, RESERVATION_CONFLICT, PrIn, PrOut, ScsiResult
from wolfpack.hw.transport import ResetLevel, Transport

MODE_SENSE6 = 0x1A
INQUIRY = 0x12
REQUEST_SENSE = 0x03
DEFAULT_BLOCKS = 131_072  # 64 MiB of 512-byte blocks, like the tgtd test LUN
_REGISTRANTS_TYPES = (5, 6, 7, 8)
_CONFLICT = ScsiResult(RESERVATION_CONFLICT)
_GOOD = ScsiResult(GOOD)
_ids = itertools.count(1)


def _illegal(pair: tuple[int, int]) -> ScsiResult:
    return scsi.sense_result(scsi.ILLEGAL_REQUEST, pair)


@dataclass
class MemoryLun:
    """One shared logical unit; see the module docstring."""

    name: str = "memory"
    tgt_compat: bool = False
    blocks: int = DEFAULT_BLOCKS
    block_size: int = scsi.DEFAULT_BLOCK_SIZE
    data: dict[int, bytes] = field(default_factory=dict)
    scsi2_holder: int | None = None
    registrations: dict[int, int] = field(default_factory=dict)  # nexus -> key, in registration order
    pr_holder: int | None = None
    pr_type: int = 0
    generation: int = 0
    aptpl: bool = False
    failed: bool = False
    unit_attention: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    nexuses: dict[int, str] = field(default_factory=dict)  # open nexus -> initiator name
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- nexuses and faults ---------------------------------------------------------------------
    def connect(self, initiator: str) -> int:
        with self.lock:
            nexus = next(_ids)
            self.nexuses[nexus] = initiator
            self.unit_attention[nexus] = []
            return nexus

    def disconnect(self, nexus: int) -> None:
        """I_T nexus loss: a SCSI-2 reservation through it is released; registrations stay."""
        with self.lock:
            self.nexuses.pop(nexus, None)
            if self.scsi2_holder == nexus:
                self.scsi2_holder = None

    def fail(self) -> None:
        """The device (or every path to it) is gone: commands get no answer."""
        with self.lock:
            self.failed = True

    def repair(self) -> None:
        """Back as after a power cycle: no SCSI-2 reservation, PR state kept only with APTPL, UA 29/00 for all."""
        with self.lock:
            self.failed = False
            self.scsi2_holder = None
            if not self.aptpl:
                self.registrations.clear()
                self.pr_holder, self.pr_type = None, 0
            self._attention(set(self.unit_attention), scsi.POWER_ON_OR_RESET)

    def reset(self, nexus: int, level: ResetLevel) -> None:
        if level is not ResetLevel.LUN and self.tgt_compat:
            raise NotSupported(f"{self.name}: the target has no {level.value} reset (tgt implements only LOGICAL "
                               "UNIT RESET); challenge with a LUN reset")
        with self.lock:
            if self.failed:
                raise NotSupported(f"{self.name}: the device is gone, the reset reached nothing")
            self.scsi2_holder = None
            self._attention(set(self.unit_attention), scsi.POWER_ON_OR_RESET)  # the resetter too (SAM; tgt)

    def _attention(self, nexuses: set[int], pair: tuple[int, int]) -> None:
        for nexus in nexuses:
            self.unit_attention.setdefault(nexus, []).append(pair)

    # -- commands ----------------------------------------------------------------------------------
    def execute(self, nexus: int, cdb: bytes, data_out: bytes, data_in_len: int) -> ScsiResult:
        with self.lock:
            if self.failed:
                return ScsiResult(None, transport_error=f"{self.name}: device failed")
            op = cdb[0]
            queue = self.unit_attention.setdefault(nexus, [])
            if queue and op not in (INQUIRY, REQUEST_SENSE):
                return scsi.sense_result(scsi.UNIT_ATTENTION, queue.pop(0))
            if self._scsi2_conflict(nexus, op):
                return _CONFLICT
            if self._pr_conflict(nexus, op):
                return _CONFLICT
            result = self._run(nexus, op, cdb, data_out)
            return ScsiResult(result.status, result.sense_key, result.asc, result.ascq, result.data[:data_in_len])

    def _scsi2_conflict(self, nexus: int, op: int) -> bool:
        if self.scsi2_holder in (None, nexus) or op in (INQUIRY, REQUEST_SENSE, scsi.RELEASE6, scsi.READ_CAPACITY10):
            return False
        return not (self.tgt_compat and op in (scsi.PRIN, scsi.PROUT, MODE_SENSE6))

    def _pr_conflict(self, nexus: int, op: int) -> bool:
        """The access rules of the persistent reservation's type (SPC-3 table 31, for the commands modelled)."""
        if self.pr_holder is None or self.pr_holder == nexus or op not in (scsi.READ10, scsi.WRITE10):
            return False
        if self.pr_type in _REGISTRANTS_TYPES and nexus in self.registrations:
            return False
        exclusive_access = self.pr_type in (3, 6, 8)
        return op == scsi.WRITE10 or exclusive_access

    def _run(self, nexus: int, op: int, cdb: bytes, data_out: bytes) -> ScsiResult:
        if op in (scsi.TEST_UNIT_READY, INQUIRY, REQUEST_SENSE):
            return _GOOD
        if op == MODE_SENSE6:
            return ScsiResult(GOOD, data=bytes([3, 0, 0, 0]))
        if op in (scsi.RESERVE6, scsi.RELEASE6):
            return self._scsi2(nexus, op)
        if op == scsi.READ_CAPACITY10:
            return ScsiResult(GOOD, data=struct.pack(">II", self.blocks - 1, self.block_size))
        if op in (scsi.READ10, scsi.WRITE10):
            return self._io(op, cdb, data_out)
        if op == scsi.PRIN:
            return self._prin(cdb)
        if op == scsi.PROUT:
            return self._prout(nexus, cdb, data_out)
        return _illegal(scsi.INVALID_OPCODE)

    def _scsi2(self, nexus: int, op: int) -> ScsiResult:
        if self.registrations and not self.tgt_compat:  # SPC-4 5.7.3
            reserved_for_registrants = self.pr_holder is not None and self.pr_type in _REGISTRANTS_TYPES
            if nexus in self.registrations and (self.pr_holder == nexus or reserved_for_registrants):
                return _GOOD
            return _CONFLICT
        if op == scsi.RESERVE6:
            if self.scsi2_holder not in (None, nexus):
                return _CONFLICT
            self.scsi2_holder = nexus
        elif self.scsi2_holder == nexus:
            self.scsi2_holder = None
        return _GOOD

    def _io(self, op: int, cdb: bytes, data_out: bytes) -> ScsiResult:
        _, _, lba, _, count, _ = struct.unpack(">BBIBHB", cdb[:10])
        if lba + count > self.blocks:
            return _illegal(scsi.LBA_OUT_OF_RANGE)
        size = self.block_size
        if op == scsi.READ10:
            zero = bytes(size)
            return ScsiResult(GOOD, data=b"".join(self.data.get(lba + i, zero) for i in range(count)))
        if len(data_out) != count * size:
            return _illegal(scsi.INVALID_FIELD_IN_CDB)
        for i in range(count):
            self.data[lba + i] = bytes(data_out[i * size : (i + 1) * size])
        return _GOOD

    def _prin(self, cdb: bytes) -> ScsiResult:
        action = cdb[1] & 0x1F
        head = struct.pack(">I", self.generation)
        if action == PrIn.READ_KEYS:
            keys = b"".join(struct.pack(">Q", k) for k in self.registrations.values())
            return ScsiResult(GOOD, data=head + struct.pack(">I", len(keys)) + keys)
        if action == PrIn.READ_RESERVATION:
            if self.pr_holder is None:
                return ScsiResult(GOOD, data=head + bytes(4))
            key = 0 if self.pr_type in (7, 8) else self.registrations.get(self.pr_holder, 0)
            body = struct.pack(">QIBBH", key, 0, 0, self.pr_type & 0x0F, 0)
            return ScsiResult(GOOD, data=head + struct.pack(">I", 16) + body)
        if action == PrIn.REPORT_CAPABILITIES:
            ptpl_c = 0 if self.tgt_compat else 1
            return ScsiResult(GOOD, data=struct.pack(">HBBHH", 8, ptpl_c, 0x80, 0xEA01, 0))
        return _illegal(scsi.INVALID_FIELD_IN_CDB)

    def _prout(self, nexus: int, cdb: bytes, data_out: bytes) -> ScsiResult:
        action, pr_type = cdb[1] & 0x1F, cdb[2] & 0x0F
        (length,) = struct.unpack_from(">I", cdb, 5)
        if length != scsi.PARAMETER_LIST_LENGTH or len(data_out) < scsi.PARAMETER_LIST_LENGTH:
            return _illegal(scsi.INVALID_FIELD_IN_CDB)
        key, sa_key, _, flags = struct.unpack_from(">QQIB", data_out)
        if flags & 0x0C or (flags & 0x01 and self.tgt_compat):  # SPEC_I_PT, ALL_TG_PT; APTPL on tgt
            return _illegal(scsi.INVALID_FIELD_IN_CDB if self.tgt_compat else scsi.INVALID_FIELD_IN_PARAMETER_LIST)
        if action == PrOut.PREEMPT_AND_ABORT and self.tgt_compat:
            return _illegal(scsi.INVALID_FIELD_IN_CDB)
        if action in (PrOut.REGISTER, PrOut.REGISTER_AND_IGNORE):
            return self._register(nexus, key, sa_key, action == PrOut.REGISTER_AND_IGNORE, bool(flags & 1))
        if nexus not in self.registrations or self.registrations[nexus] != key:
            return _CONFLICT
        if action == PrOut.RESERVE:
            return self._reserve(nexus, pr_type)
        if action == PrOut.RELEASE:
            return self._release(nexus, pr_type)
        if action == PrOut.CLEAR:
            self._attention(set(self.registrations) - {nexus}, scsi.RESERVATIONS_PREEMPTED)
            self.registrations.clear()
            self.pr_holder, self.pr_type = None, 0
            self.generation += 1
            return _GOOD
        if action in (PrOut.PREEMPT, PrOut.PREEMPT_AND_ABORT):
            return self._preempt(nexus, sa_key, pr_type)
        return _illegal(scsi.INVALID_FIELD_IN_CDB)

    def _register(self, nexus: int, key: int, sa_key: int, ignore: bool, aptpl: bool) -> ScsiResult:
        current = self.registrations.get(nexus)
        if not ignore and key != (current or 0):
            return _CONFLICT
        if sa_key:
            self.registrations[nexus] = sa_key
            self.aptpl = aptpl
        elif current is not None:
            del self.registrations[nexus]
            if self.pr_holder == nexus and (self.pr_type not in (7, 8) or not self.registrations):
                self._drop_reservation(nexus)
            elif self.pr_holder == nexus:  # all registrants: another registrant holds it now
                self.pr_holder = next(iter(self.registrations))
        self.generation += 1
        return _GOOD

    def _reserve(self, nexus: int, pr_type: int) -> ScsiResult:
        if pr_type not in (1, 3, 5, 6, 7, 8):
            return _illegal(scsi.INVALID_FIELD_IN_CDB)
        if self.pr_holder is not None:
            return _GOOD if self.pr_holder == nexus and self.pr_type == pr_type else _CONFLICT
        self.pr_holder, self.pr_type = nexus, pr_type
        return _GOOD

    def _release(self, nexus: int, pr_type: int) -> ScsiResult:
        if self.pr_holder != nexus:
            return _GOOD
        if pr_type != self.pr_type:
            return _illegal(scsi.INVALID_RELEASE_OF_PR)
        self._drop_reservation(nexus, released=True)
        return _GOOD

    def _drop_reservation(self, nexus: int, *, released: bool = False) -> None:
        """The reservation goes; SPC: the other registrants get UA 2A/04 if it was a registrants-only or
        all-registrants one.  tgt (deviation 6): a RELEASE of such a type tells nobody; otherwise, for each
        other registrant, every open nexus but that registrant's gets the UA (the releaser included)."""
        others = set(self.registrations) - {nexus}
        if not self.tgt_compat:
            if self.pr_type in _REGISTRANTS_TYPES:
                self._attention(others, scsi.RESERVATIONS_RELEASED)
        elif not (released and self.pr_type in _REGISTRANTS_TYPES):
            for sibling in others:
                self._attention(set(self.nexuses) - {sibling}, scsi.RESERVATIONS_RELEASED)
        self.pr_holder, self.pr_type = None, 0

    def _preempt(self, nexus: int, victim: int, pr_type: int) -> ScsiResult:
        if not victim:
            return _illegal(scsi.INVALID_FIELD_IN_PARAMETER_LIST)
        if victim not in self.registrations.values():
            return _CONFLICT
        victims = {n for n, k in self.registrations.items() if k == victim and n != nexus}
        holder_key = self.registrations.get(self.pr_holder) if self.pr_holder is not None else None
        if self.pr_holder is not None and holder_key == victim:
            self.pr_holder, self.pr_type = nexus, pr_type
        for n in victims:
            del self.registrations[n]
        self._attention(victims, scsi.RESERVATIONS_PREEMPTED)
        self.generation += 1
        return _GOOD


_luns: dict[str, MemoryLun] = {}
_luns_lock = threading.Lock()


def lun(name: str, *, tgt_compat: bool = False) -> MemoryLun:
    """The process-wide in-memory disk called ``name`` (created on first use)."""
    with _luns_lock:
        if name not in _luns:
            _luns[name] = MemoryLun(name, tgt_compat=tgt_compat)
        return _luns[name]


def forget(name: str) -> None:
    """Drop the named disk (tests)."""
    with _luns_lock:
        _luns.pop(name, None)


class MemoryTransport(Transport):
    """One I_T nexus to a :class:`MemoryLun`."""

    def __init__(self, unit: MemoryLun, initiator: str = "initiator") -> None:
        self.lun = unit
        self.initiator = initiator
        self.nexus = unit.connect(initiator)
        self.name = f"memory://{unit.name} as {initiator}"
        self.closed = False

    def execute(self, cdb: bytes, data_out: bytes = b"", data_in_len: int = 0, *,
                timeout_ms: int = 5_000) -> ScsiResult:
        if self.closed:
            raise ValueError(f"{self.name}: the transport is closed")
        return self.lun.execute(self.nexus, cdb, data_out, data_in_len)

    def reset(self, level: ResetLevel = ResetLevel.LUN) -> None:
        self.lun.reset(self.nexus, level)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.lun.disconnect(self.nexus)
