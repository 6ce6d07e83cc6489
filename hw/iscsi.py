"""iSCSI through the user-space initiator library libiscsi (``libiscsi.so.7``), by ctypes.

One :class:`IscsiTransport` is one libiscsi context: its own initiator IQN, so
its own I_T nexus (each simulated node of a test opens its own).  Every
context gets ``iscsi_set_timeout`` (whole seconds, at least 1) and
``iscsi_set_noautoreconnect(ctx, 1)``: a silent reconnect would be a new I_T
nexus that drops a SCSI-2 reservation behind the arbiter's back
(``shared/reference/scsi-and-timing.md`` §10).

Commands use libiscsi's asynchronous API driven by our own ``poll`` loop, not
the ``*_sync`` calls: those keep their completion state on the C stack, and a
command still queued when the connection breaks would later be completed into
a dead stack frame.  Here a completion lands in a Python object that lives until
libiscsi calls back (or the context is destroyed), together with the data-in
buffer libiscsi writes into.  Only three fields of libiscsi's structures are
read, all through accessor functions: the status (``scsi_task_get_status``), and
the sense key and ASC/ASCQ (offsets 4 and 8 of ``struct scsi_sense``).
"""

from __future__ import annotations

import ctypes
import itertools
import select
import threading
import time
from typing import Any

from wolfpack.hw import scsi
from wolfpack.hw.errors import DeviceFailed, NotSupported
from wolfpack.hw.scsi import ScsiResult
from wolfpack.hw.transport import ResetLevel, Transport

LIBRARY = "libiscsi.so.7"
SESSION_NORMAL = 2
HEADER_DIGEST_NONE = 0
XFER_NONE, XFER_READ, XFER_WRITE = 0, 1, 2
STATUS_CANCELLED, STATUS_ERROR, STATUS_TIMEOUT = 0x0F000000, 0x0F000001, 0x0F000002
TMF_COMPLETE, TMF_NOT_SUPPORTED = 0, 5
SENSE_BUFFER = 64  # struct scsi_sense is 16 bytes in libiscsi 1.19; room to spare

_Callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class _IscsiData(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.c_void_p)]


_lib: Any = None
_lib_lock = threading.Lock()


def library() -> Any:
    """The loaded libiscsi with the prototypes this module uses (raises :class:`DeviceFailed` if missing)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL(LIBRARY)
            except OSError as error:
                raise DeviceFailed(f"cannot load {LIBRARY} ({error}); install Debian's libiscsi7 "
                                   "(scripts/install does)") from None
            p, i, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
            for name, res, args in (
                ("iscsi_create_context", p, [ctypes.c_char_p]), ("iscsi_destroy_context", i, [p]),
                ("iscsi_set_targetname", i, [p, ctypes.c_char_p]), ("iscsi_set_session_type", i, [p, i]),
                ("iscsi_set_header_digest", i, [p, i]), ("iscsi_set_timeout", i, [p, i]),
                ("iscsi_set_noautoreconnect", None, [p, i]),
                ("iscsi_full_connect_sync", i, [p, ctypes.c_char_p, i]), ("iscsi_get_error", ctypes.c_char_p, [p]),
                ("iscsi_get_fd", i, [p]), ("iscsi_which_events", i, [p]), ("iscsi_service", i, [p, i]),
                ("iscsi_scsi_command_async", i, [p, i, p, _Callback, p, p]),
                ("iscsi_task_mgmt_lun_reset_async", i, [p, u32, _Callback, p]),
                ("iscsi_task_mgmt_target_warm_reset_async", i, [p, _Callback, p]),
                ("iscsi_task_mgmt_target_cold_reset_async", i, [p, _Callback, p]),
                ("iscsi_logout_async", i, [p, _Callback, p]),
                ("scsi_create_task", p, [i, ctypes.c_char_p, i, i]),
                ("scsi_task_add_data_in_buffer", i, [p, i, p]),
                ("scsi_task_get_status", i, [p, p]), ("scsi_free_scsi_task", None, [p]),
            ):
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = res, args
            _lib = lib
        return _lib


class _Pending:
    """One command or task-management call in flight: libiscsi reports into it (and frees its task later)."""

    def __init__(self, task: int | None = None, buffer: Any = None, data_out: Any = None) -> None:
        self.task, self.buffer, self.data_out = task, buffer, data_out
        self.done = False
        self.abandoned = False
        self.status = 0
        self.response = 0


_pending: dict[int, _Pending] = {}
_pending_ids = itertools.count(1)
_pending_lock = threading.Lock()


def _on_completion(ctx: int, status: int, command_data: int, private: int) -> None:
    with _pending_lock:
        entry = _pending.pop(private or 0, None)
    if entry is None:
        return
    entry.status, entry.done = status, True
    if entry.task is None and command_data and status == 0:  # task management: the response code
        entry.response = ctypes.c_uint32.from_address(command_data).value
    if entry.abandoned and entry.task is not None:
        library().scsi_free_scsi_task(entry.task)


_completed = _Callback(_on_completion)  # kept alive for the process: libiscsi may call it at any time


def _register(entry: _Pending) -> int:
    with _pending_lock:
        key = next(_pending_ids)
        _pending[key] = entry
        return key


class IscsiTransport(Transport):
    """One libiscsi session (I_T nexus) to LUN ``lun`` of ``target`` at ``portal`` (``host:port``)."""

    def __init__(self, portal: str, target: str, lun: int, initiator: str, *, timeout_ms: int = 5_000) -> None:
        self.lib = library()
        self.portal, self.target, self.lun, self.initiator = portal, target, lun, initiator
        self.name = f"iscsi://{portal}/{target}/{lun} as {initiator}"
        self.timeout_ms = timeout_ms
        self.ctx = self.lib.iscsi_create_context(initiator.encode())
        if not self.ctx:
            raise DeviceFailed(f"{self.name}: libiscsi could not create a context (out of memory?)")
        self.broken = ""
        lib, ctx = self.lib, self.ctx
        lib.iscsi_set_targetname(ctx, target.encode())
        lib.iscsi_set_session_type(ctx, SESSION_NORMAL)
        lib.iscsi_set_header_digest(ctx, HEADER_DIGEST_NONE)
        lib.iscsi_set_timeout(ctx, max(1, -(-timeout_ms // 1000)))
        lib.iscsi_set_noautoreconnect(ctx, 1)
        if lib.iscsi_full_connect_sync(ctx, portal.encode(), lun) != 0:
            why = self._error()
            lib.iscsi_destroy_context(ctx)
            self.ctx = None
            raise DeviceFailed(f"{self.name}: cannot log in ({why}); check that the target runs and exports "
                               "this LUN to this initiator")

    def _error(self) -> str:
        text = self.lib.iscsi_get_error(self.ctx)
        return text.decode(errors="replace").strip() if text else "no detail"

    def _wait(self, entry: _Pending, timeout_ms: int) -> bool:
        """Drive the connection until ``entry`` completes or the deadline passes; False on timeout or break."""
        deadline = time.monotonic() + timeout_ms / 1000
        lib, ctx = self.lib, self.ctx
        while not entry.done:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            events = lib.iscsi_which_events(ctx)
            poller = select.poll()
            poller.register(lib.iscsi_get_fd(ctx), events)
            ready = poller.poll(min(left, 0.1) * 1000)
            if lib.iscsi_service(ctx, ready[0][1] if ready else 0) < 0:
                self.broken = self._error()
                return entry.done
        return True

    def execute(self, cdb: bytes, data_out: bytes = b"", data_in_len: int = 0, *,
                timeout_ms: int = 5_000) -> ScsiResult:
        if self.ctx is None:
            raise ValueError(f"{self.name}: the transport is closed")
        if self.broken:
            return ScsiResult(None, transport_error=f"connection lost: {self.broken}")
        lib = self.lib
        direction = XFER_WRITE if data_out else XFER_READ if data_in_len else XFER_NONE
        task = lib.scsi_create_task(len(cdb), cdb, direction, len(data_out) or data_in_len)
        if not task:
            return ScsiResult(None, transport_error="libiscsi could not create a task")
        buffer = ctypes.create_string_buffer(data_in_len) if data_in_len else None
        if buffer is not None:
            lib.scsi_task_add_data_in_buffer(task, data_in_len, buffer)
        out = ctypes.create_string_buffer(data_out, len(data_out)) if data_out else None
        payload = _IscsiData(len(data_out), ctypes.cast(out, ctypes.c_void_p)) if out is not None else None
        entry = _Pending(task, buffer, (out, payload))
        key = _register(entry)
        if lib.iscsi_scsi_command_async(self.ctx, self.lun, task, _completed,
                                        ctypes.byref(payload) if payload is not None else None, key) != 0:
            with _pending_lock:
                _pending.pop(key, None)
            lib.scsi_free_scsi_task(task)
            return ScsiResult(None, transport_error=f"cannot send: {self._error()}")
        if not self._wait(entry, timeout_ms):
            entry.abandoned = True  # libiscsi completes (and we free) it later, or the context's destruction does
            if self.broken:
                return ScsiResult(None, transport_error=f"connection lost: {self.broken}")
            return ScsiResult(None, transport_error=f"no answer within {timeout_ms} ms", timed_out=True)
        return self._result(entry, data_in_len)

    def _result(self, entry: _Pending, data_in_len: int) -> ScsiResult:
        lib, task = self.lib, entry.task
        sense = ctypes.create_string_buffer(SENSE_BUFFER)
        status = lib.scsi_task_get_status(task, sense)
        key = ctypes.c_int.from_buffer(sense, 4).value
        ascq = ctypes.c_int.from_buffer(sense, 8).value
        data = entry.buffer.raw[:data_in_len] if entry.buffer is not None else b""
        lib.scsi_free_scsi_task(task)
        if status == STATUS_TIMEOUT:
            return ScsiResult(None, transport_error="libiscsi timed the command out", timed_out=True)
        if status in (STATUS_CANCELLED, STATUS_ERROR):
            return ScsiResult(None, transport_error=f"libiscsi status {status:#x}: {self._error()}")
        if status != scsi.CHECK_CONDITION:
            return ScsiResult(status, data=data)
        return ScsiResult(status, key & 0x0F, (ascq >> 8) & 0xFF, ascq & 0xFF, data)

    def reset(self, level: ResetLevel = ResetLevel.LUN) -> None:
        if self.ctx is None:
            raise ValueError(f"{self.name}: the transport is closed")
        entry = _Pending()
        key = _register(entry)
        lib = self.lib
        if level is ResetLevel.LUN:
            sent = lib.iscsi_task_mgmt_lun_reset_async(self.ctx, self.lun, _completed, key)
        elif level is ResetLevel.TARGET:
            sent = lib.iscsi_task_mgmt_target_warm_reset_async(self.ctx, _completed, key)
        else:  # iSCSI has no bus: a cold target reset is the nearest thing
            sent = lib.iscsi_task_mgmt_target_cold_reset_async(self.ctx, _completed, key)
        if sent != 0 or not self._wait(entry, self.timeout_ms):
            raise DeviceFailed(f"{self.name}: the {level.value} reset got no answer ({self._error()}); "
                               "the reservation may still be held")
        if entry.status != 0:
            raise DeviceFailed(f"{self.name}: the {level.value} reset failed (status {entry.status:#x})")
        if entry.response == TMF_NOT_SUPPORTED:
            raise NotSupported(f"{self.name}: the target does not support a {level.value} reset "
                               "(tgt implements only LUN RESET); challenge with a LUN reset")
        if entry.response != TMF_COMPLETE:
            raise DeviceFailed(f"{self.name}: the {level.value} reset was refused (response {entry.response})")

    def close(self) -> None:
        """Log out (ends the I_T nexus, releasing a SCSI-2 reservation) and free the context."""
        if self.ctx is None:
            return
        if not self.broken:
            entry = _Pending()
            key = _register(entry)
            if self.lib.iscsi_logout_async(self.ctx, _completed, key) == 0:
                self._wait(entry, min(self.timeout_ms, 2_000))
        self.lib.iscsi_destroy_context(self.ctx)
        self.ctx = None
