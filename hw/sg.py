"""Linux SG_IO: SCSI commands on ``/dev/sg*`` or ``/dev/sd*`` through ``ioctl``, for lab nodes with real shared disks.

``ioctl(fd, SG_IO, sg_io_hdr_t *)`` with the 88-byte x86_64 header of
``<scsi/sg.h>`` (a ctypes structure: ``struct.calcsize`` would give 84, no
trailing padding), and ``ioctl(fd, SG_SCSI_RESET, int *)`` for the resets, with
``SG_SCSI_RESET_NO_ESCALATE`` so a LUN reset never grows into a bus or host
reset (``shared/reference/scsi-and-timing.md`` §3.5).  Needs CAP_SYS_RAWIO.

This cannot run on the project's machines or in CI (no SCSI midlayer, no
``/dev/sg*``); its tests replace :func:`fcntl.ioctl` and ``os.open`` and check
the exact bytes of every header, CDB and parameter list.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable
from typing import Any

from wolfpack.hw import scsi
from wolfpack.hw.errors import DeviceFailed, NotSupported
from wolfpack.hw.scsi import ScsiResult
from wolfpack.hw.transport import ResetLevel, Transport

SG_IO = 0x2285
SG_SCSI_RESET = 0x2284
SG_INTERFACE_ID = ord("S")
SG_DXFER_NONE, SG_DXFER_TO_DEV, SG_DXFER_FROM_DEV = -1, -2, -3
SG_INFO_OK_MASK = 0x1
SG_SCSI_RESET_DEVICE, SG_SCSI_RESET_BUS, SG_SCSI_RESET_TARGET = 1, 2, 4
SG_SCSI_RESET_NO_ESCALATE = 0x100
DID_TIME_OUT = 0x03
DRIVER_TIMEOUT = 0x06
SENSE_LENGTH = 32

RESET_CODES = {ResetLevel.LUN: SG_SCSI_RESET_DEVICE, ResetLevel.TARGET: SG_SCSI_RESET_TARGET,
               ResetLevel.BUS: SG_SCSI_RESET_BUS}


class SgIoHeader(ctypes.Structure):
    """``sg_io_hdr_t`` (x86_64: 88 bytes)."""

    _fields_ = [
        ("interface_id", ctypes.c_int), ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte), ("mx_sb_len", ctypes.c_ubyte), ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint), ("dxferp", ctypes.c_void_p), ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p), ("timeout", ctypes.c_uint), ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int), ("usr_ptr", ctypes.c_void_p),
        ("status", ctypes.c_ubyte), ("masked_status", ctypes.c_ubyte), ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte), ("host_status", ctypes.c_ushort), ("driver_status", ctypes.c_ushort),
        ("resid", ctypes.c_int), ("duration", ctypes.c_uint), ("info", ctypes.c_uint),
    ]


Ioctl = Callable[[int, int, Any], Any]


class SgTransport(Transport):
    """One open ``/dev/sgN`` (or ``/dev/sdX``): this host's I_T nexus to that logical unit."""

    def __init__(self, path: str, *, ioctl: Ioctl = fcntl.ioctl,
                 opener: Callable[[str, int], int] = os.open) -> None:
        self.path = path
        self.name = f"sg://{path}"
        self._ioctl = ioctl
        try:
            self.fd: int | None = opener(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as error:
            raise DeviceFailed(f"cannot open {path} ({error.strerror}); it must be an sg or sd device node and "
                               "the daemon needs root (CAP_SYS_RAWIO)") from None

    def execute(self, cdb: bytes, data_out: bytes = b"", data_in_len: int = 0, *,
                timeout_ms: int = 5_000) -> ScsiResult:
        if self.fd is None:
            raise ValueError(f"{self.name}: the transport is closed")
        command = ctypes.create_string_buffer(cdb, len(cdb))
        sense = ctypes.create_string_buffer(SENSE_LENGTH)
        if data_out:
            data = ctypes.create_string_buffer(data_out, len(data_out))
            direction, length = SG_DXFER_TO_DEV, len(data_out)
        elif data_in_len:
            data = ctypes.create_string_buffer(data_in_len)
            direction, length = SG_DXFER_FROM_DEV, data_in_len
        else:
            data, direction, length = None, SG_DXFER_NONE, 0
        header = SgIoHeader(interface_id=SG_INTERFACE_ID, dxfer_direction=direction, cmd_len=len(cdb),
                            mx_sb_len=SENSE_LENGTH, dxfer_len=length,
                            dxferp=ctypes.cast(data, ctypes.c_void_p) if data is not None else None,
                            cmdp=ctypes.cast(command, ctypes.c_void_p), sbp=ctypes.cast(sense, ctypes.c_void_p),
                            timeout=timeout_ms)
        try:
            self._ioctl(self.fd, SG_IO, header)
        except OSError as error:
            return ScsiResult(None, transport_error=f"SG_IO failed: {error.strerror or error}")
        received = data.raw[: max(0, length - header.resid)] if direction == SG_DXFER_FROM_DEV and data else b""
        if not header.info & SG_INFO_OK_MASK:
            return ScsiResult(scsi.GOOD, data=received)
        if header.status:
            key, asc, ascq = scsi.decode_sense(sense.raw[: header.sb_len_wr])
            return ScsiResult(header.status, key, asc, ascq, received)
        timed_out = header.host_status == DID_TIME_OUT or header.driver_status & 0x0F == DRIVER_TIMEOUT
        return ScsiResult(None, transport_error=f"host status {header.host_status:#x}, driver status "
                          f"{header.driver_status:#x}", timed_out=timed_out)

    def reset(self, level: ResetLevel = ResetLevel.LUN) -> None:
        if self.fd is None:
            raise ValueError(f"{self.name}: the transport is closed")
        value = ctypes.c_int(RESET_CODES[level] | SG_SCSI_RESET_NO_ESCALATE)
        try:
            self._ioctl(self.fd, SG_SCSI_RESET, value)
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                raise NotSupported(f"{self.name}: the driver refuses a {level.value} reset ({error.strerror}); "
                                   "try another level") from None
            raise DeviceFailed(f"{self.name}: the {level.value} reset failed ({error.strerror})") from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
