"""The SG_IO transport with a fake ioctl: the exact bytes of the 88-byte header, every CDB and every
parameter list the device layer sends, and how the header's answer fields become results and errors."""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

import pytest

from wolfpack.hw import scsi
from wolfpack.hw.device import Disk
from wolfpack.hw.errors import DeviceFailed, NotSupported, ReservationConflict
from wolfpack.hw.sg import SG_IO, SG_SCSI_RESET, SgIoHeader, SgTransport
from wolfpack.hw.transport import ResetLevel


class FakeSg:
    """Records every ioctl; answers SG_IO with a scripted (status, sense, data-in) per call."""

    def __init__(self, answers: list[tuple[int, bytes, bytes]] | None = None) -> None:
        self.answers = list(answers or [])
        self.calls: list[dict[str, Any]] = []

    def __call__(self, fd: int, request: int, arg: Any) -> int:
        if request == SG_SCSI_RESET:
            self.calls.append({"request": request, "value": arg.value})
            return 0
        assert request == SG_IO and isinstance(arg, SgIoHeader)
        header = bytes(arg)
        cdb = ctypes.string_at(arg.cmdp, arg.cmd_len)
        out = ctypes.string_at(arg.dxferp, arg.dxfer_len) if arg.dxfer_direction == -2 else b""
        self.calls.append({"header": header, "cdb": cdb, "out": out, "direction": arg.dxfer_direction,
                           "len": arg.dxfer_len, "timeout": arg.timeout, "mx_sb_len": arg.mx_sb_len})
        status, sense, data = self.answers.pop(0) if self.answers else (0, b"", b"")
        arg.status, arg.masked_status = status, (status & 0x3E) >> 1
        if sense:
            ctypes.memmove(arg.sbp, sense, len(sense))
            arg.sb_len_wr, arg.driver_status = len(sense), 0x08
        if data:
            ctypes.memmove(arg.dxferp, data, len(data))
        arg.resid = arg.dxfer_len - len(data) if arg.dxfer_direction == -3 else 0
        arg.info = 1 if status else 0
        return 0


def disk(fake: FakeSg) -> Disk:
    return Disk(SgTransport("/dev/sg7", ioctl=fake, opener=lambda path, flags: os.open(os.devnull, os.O_RDWR)),
                timeout_ms=3_000)


def test_the_header_is_88_bytes_laid_out_as_sg_h() -> None:
    assert ctypes.sizeof(SgIoHeader) == 88
    offsets = {name: getattr(SgIoHeader, name).offset for name, _ in SgIoHeader._fields_}
    assert offsets == {"interface_id": 0, "dxfer_direction": 4, "cmd_len": 8, "mx_sb_len": 9, "iovec_count": 10,
                       "dxfer_len": 12, "dxferp": 16, "cmdp": 24, "sbp": 32, "timeout": 40, "flags": 44,
                       "pack_id": 48, "usr_ptr": 56, "status": 64, "masked_status": 65, "msg_status": 66,
                       "sb_len_wr": 67, "host_status": 68, "driver_status": 70, "resid": 72, "duration": 76,
                       "info": 80}


def test_reserve6_and_release6_bytes_and_header() -> None:
    fake = FakeSg()
    d = disk(fake)
    d.reserve6()
    d.release6()
    first, second = fake.calls
    assert first["cdb"] == bytes.fromhex("160000000000") and second["cdb"] == bytes.fromhex("170000000000")
    header = first["header"]
    assert struct.unpack_from("<iiBBHI", header) == (ord("S"), -1, 6, 32, 0, 0)  # no data transfer
    assert struct.unpack_from("<II", header, 40) == (3_000, 0)  # timeout (ms), flags


@pytest.mark.parametrize("call, cdb, params", [
    (lambda d: d.register_ignore(0x1122334455667788), "5f060000000000001800",
     "0000000000000000" "1122334455667788" "00000000" "00" "00" "0000"),
    (lambda d: d.register(0xA, 0xB), "5f000000000000001800", "000000000000000a000000000000000b" "0000000000000000"),
    (lambda d: d.reserve(0xA), "5f010500000000001800", "000000000000000a" + "00" * 16),
    (lambda d: d.release(0xA, 3), "5f020300000000001800", "000000000000000a" + "00" * 16),
    (lambda d: d.clear(0xA), "5f030000000000001800", "000000000000000a" + "00" * 16),
    (lambda d: d.preempt(0xB, 0xA), "5f040500000000001800", "000000000000000b000000000000000a" + "00" * 8),
    (lambda d: d.preempt(0xB, 0xA, abort=True), "5f050500000000001800", "000000000000000b000000000000000a" + "00" * 8),
])
def test_prout_cdbs_and_parameter_lists(call: Any, cdb: str, params: str) -> None:
    fake = FakeSg()
    call(disk(fake))
    (sent,) = fake.calls
    assert sent["cdb"] == bytes.fromhex(cdb) and len(sent["cdb"]) == 10  # bytes 5-8: length 24
    assert sent["out"] == bytes.fromhex(params) and len(sent["out"]) == 24
    assert sent["direction"] == -2 and struct.unpack_from("<i", sent["header"], 4) == (-2,)


def test_prin_read_keys_and_reservation() -> None:
    keys = struct.pack(">II", 77, 16) + struct.pack(">QQ", 0xB, 0xA)
    reservation = struct.pack(">II", 78, 16) + struct.pack(">QIBBH", 0xB, 0, 0, 5, 0)
    fake = FakeSg([(0, b"", keys), (0, b"", reservation)])
    d = disk(fake)
    assert d.read_keys() == scsi.Keys(77, (0xB, 0xA))
    assert d.read_reservation() == scsi.Reservation(78, 0xB, 5)
    read_keys, read_res = fake.calls
    assert read_keys["cdb"] == bytes.fromhex("5e000000000000020800") and read_keys["len"] == 520
    assert read_res["cdb"] == bytes.fromhex("5e010000000000001800") and read_res["direction"] == -3


def test_blocks_and_capacity() -> None:
    fake = FakeSg([(0, b"", struct.pack(">II", 2047, 512)), (0, b"", b"\x01" * 1024), (0, b"", b"")])
    d = disk(fake)
    assert d.capacity() == (2048, 512)
    assert d.read_blocks(9, 2) == b"\x01" * 1024
    d.write_blocks(3, b"\x02" * 512)
    rcap, read, write = fake.calls
    assert rcap["cdb"] == bytes.fromhex("25000000000000000000")
    assert read["cdb"] == bytes.fromhex("28000000000900000200")
    assert write["cdb"] == bytes.fromhex("2a080000000300000100") and write["out"] == b"\x02" * 512  # FUA


def test_sense_becomes_errors_and_unit_attention_is_retried() -> None:
    ua = scsi.fixed_sense(scsi.UNIT_ATTENTION, scsi.POWER_ON_OR_RESET)
    descriptor_ua = bytes([0x72, scsi.UNIT_ATTENTION, 0x2A, 0x03, 0, 0, 0, 0])
    fake = FakeSg([(2, ua, b""), (2, descriptor_ua, b""), (0, b"", b""), (0x18, b"", b"")])
    d = disk(fake)
    d.test_unit_ready()  # two unit attentions (fixed and descriptor sense), then GOOD
    assert len(fake.calls) == 3
    with pytest.raises(ReservationConflict, match="does not own the disk"):
        d.reserve6()


def test_transport_failures() -> None:
    def broken(fd: int, request: int, arg: Any) -> int:
        arg.info, arg.host_status = 1, 0x03  # DID_TIME_OUT
        return 0

    result = SgTransport("/dev/sg7", ioctl=broken, opener=lambda p, f: os.open(os.devnull, os.O_RDWR)).execute(
        scsi.test_unit_ready())
    assert result.status is None and result.timed_out

    def failing(fd: int, request: int, arg: Any) -> int:
        raise OSError(5, "Input/output error")

    with pytest.raises(DeviceFailed, match="Input/output error"):
        Disk(SgTransport("/dev/sg7", ioctl=failing, opener=lambda p, f: os.open(os.devnull, os.O_RDWR))).reserve6()
    with pytest.raises(DeviceFailed, match="cannot open /dev/sg-missing"):
        SgTransport("/dev/sg-missing")


def test_resets_never_escalate() -> None:
    fake = FakeSg()
    d = disk(fake)
    for level in ResetLevel:
        d.reset(level)
    assert [c["value"] for c in fake.calls] == [0x101, 0x104, 0x102]

    def refuses(fd: int, request: int, arg: Any) -> int:
        raise OSError(22, "Invalid argument")

    with pytest.raises(NotSupported):
        SgTransport("/dev/sg7", ioctl=refuses, opener=lambda p, f: os.open(os.devnull, os.O_RDWR)).reset()
