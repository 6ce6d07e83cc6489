"""The daemon's handle on one resource monitor process: spawn, talk, watch, restart (REQUIREMENTS R1, R5).

The daemon owns the resource machines; a :class:`MonitorClient` carries the
machines' ``call`` effects to the monitor (:meth:`MonitorClient.call`) and
puts what comes back on :attr:`MonitorClient.events`, one dict per message:

* the resource machine's events (``online_succeeded``, ``is_alive_failed``
  ...; see :data:`~wolfpack.runtime.monitor.protocol.MACHINE_EVENTS`), with
  ``resource`` and, for the results of an Online/Offline, the ``op_id``
  given to it, so the daemon can drop results of operations that ended;
* ``terminated``, ``log``, and ``open_failed`` for a re-open that failed;
* ``monitor_crashed``: the monitor died; ``resource`` and ``entry_point``
  name the call that crashed it, ``in_flight`` lists every call that was in
  flight in the shared call record; ``attribution`` says how the culprit was
  found: ``"faulting thread"`` when a fatal signal hit (the monitor's
  faulthandler names the thread, the record names its call), else
  ``"newest call in flight"``;
* ``monitor_restarted``: a new monitor runs; ``reopened`` lists the resources
  opened again, ``watching`` those among them polled again at once (they
  were online), ``not_reopened`` those whose Open crashed the monitor;
* ``monitor_failed``: the monitor crashed more than ``max_restarts`` times
  within ``restart_window_s``; the client gave up.

After a crash, each call that was interrupted is reported as the failure
event of its entry point (``online_failed`` for Online, ``offline_failed``,
``looks_alive_failed``, ``is_alive_failed``), with ``"synthesized": true``:
the call did not succeed, and the machine decides what follows.

Monitors run in a session of their own (a Ctrl-C of the daemon does not
reach them) and talk over a socket pair: when the daemon dies, the monitor
sees end-of-file and terminates its resources (R4).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wolfpack.errors import MonitorError
from wolfpack.runtime.monitor.protocol import (
    ENTRY_POINT_COMMANDS,
    MACHINE_EVENTS,
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    decode_message,
    encode,
    iter_lines,
)
from wolfpack.runtime.monitor.shared_state import CallRecord, CallRecordTable
from wolfpack.runtime.resource_types.base import EntryPointFailed, Severity
from wolfpack.spec import defaults

log = logging.getLogger("wolfpack.monitor.client")

#: The failure event that reports an entry-point call interrupted by a monitor crash.
INTERRUPTED_CALL_EVENTS = {
    "Online": "online_failed",
    "Offline": "offline_failed",
    "LooksAlive": "looks_alive_failed",
    "IsAlive": "is_alive_failed",
}


DEFAULT_MONITOR = "default"


def monitor_name(resource: str, separate: bool) -> str:
    """The monitor a resource runs in: the default one, or its own (the "separate monitor" option, R1)."""
    return f"separate-{urllib.parse.quote(resource, safe='')}" if separate else DEFAULT_MONITOR


def _signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class MonitorClient:
    """One monitor process: the default monitor, or the separate monitor of one resource."""

    def __init__(self, name: str, run_dir: Path, *, python: str = sys.executable,
                 env: Mapping[str, str] | None = None, max_restarts: int = 5, restart_window_s: float = 60.0,
                 start_timeout_s: float = 10.0, lease: Path | None = None, lease_kill_ms: int = 0) -> None:
        if not name or "/" in name or name.startswith("."):
            raise MonitorError(f"monitor name {name!r} cannot name files in the run directory; "
                               "use monitor_name() to make one")
        self.name = name
        self.run_dir = Path(run_dir)
        self.python = python
        self.env = dict(env or {})
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.start_timeout_s = start_timeout_s
        #: the node's lease page, which the monitor enforces (None: no lease, for tests of the monitor alone)
        self.lease = lease
        self.lease_kill_ms = lease_kill_ms
        #: the ``lease_lapsed`` reports so far
        self.lapses: list[dict[str, Any]] = []
        self.log_path = self.run_dir / f"monitor-{name}.log"
        self.record_path = self.run_dir / f"monitor-{name}.calls"
        #: Every message for the daemon, in order (see the module docstring).
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        #: The ``monitor_crashed`` reports so far.
        self.crashes: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._record: CallRecordTable | None = None
        self._hello: asyncio.Future[int] | None = None
        self._ready = False
        self._stopping = False
        self._failed: MonitorError | None = None
        self._outbox: list[bytes] = []
        self._waiters: dict[tuple[str, str], list[asyncio.Future[dict[str, Any]]]] = collections.defaultdict(list)
        self._opened: dict[str, dict[str, Any]] = {}
        self._polling: set[str] = set()
        self._pending: dict[str, tuple[str, int | str | None]] = {}
        self._crash_times: collections.deque[float] = collections.deque()
        self._ping_count = 0
        self._log_offset = 0

    # --- life cycle --------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The monitor process's pid (None before start)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def resources(self) -> list[str]:
        """The resources open in this monitor."""
        return list(self._opened)

    async def start(self) -> None:
        """Start the monitor process and wait for its hello."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await self._spawn()
        self._ready = True

    async def _spawn(self) -> None:
        self._record = CallRecordTable.create(self.record_path)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [self.python, "-m", "wolfpack.runtime.monitor", "--fd", str(child.fileno()),
                "--record", str(self.record_path), "--run-dir", str(self.run_dir), "--name", self.name,
                "--daemon-pid", str(os.getpid())]
        if self.lease is not None:
            argv += ["--lease", str(self.lease), "--lease-kill-ms", str(self.lease_kill_ms)]
        try:
            with open(self.log_path, "ab") as log_file:
                self._proc = await asyncio.create_subprocess_exec(
                    *argv, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=log_file,
                    stderr=log_file, env={**os.environ, **self.env}, start_new_session=True,
                )
        except OSError as exc:
            parent.close()
            raise MonitorError(f"cannot start monitor {self.name!r} with {self.python}: {exc}; "
                               "check the Python interpreter and the run directory") from exc
        finally:
            child.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=parent, limit=MAX_LINE_BYTES)
        self._hello = asyncio.get_running_loop().create_future()
        self._reader_task = asyncio.create_task(self._read(reader))
        proc = self._proc
        try:
            await asyncio.wait_for(asyncio.shield(self._hello), self.start_timeout_s)
        except (TimeoutError, MonitorError) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise MonitorError(
                f"monitor {self.name!r} did not start within {self.start_timeout_s:g} s; see {self.log_path}"
            ) from exc
        self._watch_task = asyncio.create_task(self._watch(proc))

    async def shutdown(self, timeout_s: float = 10.0) -> None:
        """Close every resource and stop the monitor (no restart); kill it if it does not exit in time."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._write(encode("shutdown"))
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("monitor %s did not exit within %g s of shutdown; killing it", self.name, timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._dispose()

    async def kill(self) -> None:
        """Kill the monitor process without restarting it (its resources are left as they are)."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._dispose()

    async def _dispose(self) -> None:
        for task in (self._watch_task, self._reader_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._writer is not None:
            self._writer.close()
        if self._record is not None:
            self._record.close()
            self._record = None
        self._fail_waiters(MonitorError(f"monitor {self.name!r} was stopped"))

    # --- commands --------------------------------------------------------------------------

    def _write(self, line: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(line)

    def _send(self, op: str, **fields: Any) -> None:
        if self._failed is not None:
            raise self._failed
        if self._stopping:
            raise MonitorError(f"monitor {self.name!r} is stopping; {op!r} cannot be sent")
        line = encode(op, **fields)
        if self._ready:
            self._write(line)
        else:
            self._outbox.append(line)  # sent once the restarted monitor has re-opened its resources

    def send_raw(self, line: bytes) -> None:
        """Write one raw protocol line (for diagnostics and protocol tests)."""
        self._write(line)

    def _waiter(self, op: str, key: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[(op, key)].append(future)
        return future

    async def open(self, resource: str, type_name: str, properties: Mapping[str, Any], *,
                   looks_alive_ms: int = defaults.LOOKS_ALIVE_INTERVAL_MS,
                   is_alive_ms: int = defaults.IS_ALIVE_INTERVAL_MS,
                   pending_timeout_ms: int = defaults.PENDING_TIMEOUT_MS) -> None:
        """Open a resource in this monitor; :class:`EntryPointFailed` (a ResourceTypeError) if Open fails."""
        command = {"resource": resource, "type": type_name, "properties": dict(properties),
                   "looks_alive_ms": looks_alive_ms, "is_alive_ms": is_alive_ms,
                   "pending_timeout_ms": pending_timeout_ms}
        reply = self._waiter("opened", resource)
        self._send("open", **command)
        message = await reply
        if message["op"] == "open_failed":
            raise EntryPointFailed(message.get("error", "Open failed"),
                                   Severity(message.get("severity", Severity.SOFT.value)))
        self._opened[resource] = command

    def online(self, resource: str, op_id: int | str | None = None) -> None:
        self._pending[resource] = ("Online", op_id)
        self._send("online", resource=resource, **({} if op_id is None else {"op_id": op_id}))

    def offline(self, resource: str, op_id: int | str | None = None) -> None:
        self._polling.discard(resource)
        self._pending[resource] = ("Offline", op_id)
        self._send("offline", resource=resource, **({} if op_id is None else {"op_id": op_id}))

    def terminate(self, resource: str) -> None:
        self._polling.discard(resource)
        self._pending.pop(resource, None)
        self._send("terminate", resource=resource)

    def is_alive(self, resource: str) -> None:
        """Run IsAlive now: ``is_alive_failed`` if it fails; LooksAlive polling resumes if it passes."""
        self._send("is_alive", resource=resource)

    def call(self, entry_point: str, resource: str, op_id: int | str | None = None) -> None:
        """Carry out a resource machine's ``call`` effect (Online, Offline, Terminate, IsAlive)."""
        command = ENTRY_POINT_COMMANDS.get(entry_point)
        if command is None:
            raise MonitorError(f"the monitor has no command for entry point {entry_point!r}; "
                               f"it carries out {', '.join(ENTRY_POINT_COMMANDS)}")
        if command in ("online", "offline"):
            getattr(self, command)(resource, op_id)
        else:
            getattr(self, command)(resource)

    async def probe(self, resource: str) -> dict[str, Any]:
        """Run the resource's Probe (it starts nothing): the ``probed`` answer (``active``, ``pids`` ... or
        ``error``)."""
        reply = self._waiter("probed", resource)
        self._send("probe", resource=resource)
        return await reply

    async def terminate_now(self, resource: str) -> bool:
        """Terminate the resource and wait for the answer: whether Terminate returned in time without failing."""
        reply = self._waiter("terminated", resource)
        self.terminate(resource)
        return bool((await reply).get("ok"))

    async def close(self, resource: str) -> None:
        """Close a resource (it is not stopped) and forget it."""
        reply = self._waiter("closed", resource)
        self._send("close", resource=resource)
        self._opened.pop(resource, None)
        self._polling.discard(resource)
        self._pending.pop(resource, None)
        await reply

    async def ping(self) -> None:
        """Round trip to the monitor."""
        self._ping_count += 1
        token = f"{self.name}-{self._ping_count}"
        reply = self._waiter("pong", token)
        self._send("ping", token=token)
        await reply

    # --- what the monitor says ------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            await self._read_lines(reader)
        finally:
            if self._hello is not None and not self._hello.done():
                self._hello.set_exception(MonitorError(f"monitor {self.name!r} closed its socket before its hello"))

    async def _read_lines(self, reader: asyncio.StreamReader) -> None:
        async for line in iter_lines(reader):
            if line is None:
                log.error("monitor %s sent a line over %d bytes; dropped", self.name, MAX_LINE_BYTES)
                continue
            try:
                message = decode_message(line)
            except MonitorError as exc:
                log.error("monitor %s: %s", self.name, exc)
                continue
            self._receive(message)

    def _resolve(self, op: str, key: str, message: dict[str, Any]) -> bool:
        waiters = self._waiters.pop((op, key), [])
        for future in waiters:
            if not future.done():
                future.set_result(message)
        return bool(waiters)

    def _receive(self, message: dict[str, Any]) -> None:
        op = message["op"]
        resource = message.get("resource")
        if op == "hello":
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(int(message.get("pid", 0)))
            return
        if op == "pong":
            self._resolve("pong", str(message.get("token")), message)
            return
        if op in ("opened", "open_failed") and self._resolve("opened", str(resource), message):
            return
        if op == "closed":
            self._resolve("closed", str(resource), message)
            return
        if op in ("probed", "terminated") and self._resolve(op, str(resource), message):
            return
        if op == "lease_lapsed":
            self.lapses.append(message)
            del self.lapses[:-16]
        if op == "log":
            log.log(logging.ERROR if message.get("level") == "error" else logging.INFO, "monitor %s: %s%s",
                    self.name, f"[{resource}] " if resource else "", message.get("message"))
        if op in MACHINE_EVENTS and isinstance(resource, str):
            self._track(op, resource)
        self.events.put_nowait(message)

    def _track(self, event: str, resource: str) -> None:
        """Keep what a restarted monitor needs: which resources are polled, which calls are pending."""
        if event == "online_succeeded":
            self._polling.add(resource)
        if event == "is_alive_failed":
            self._polling.discard(resource)
        if event in ("online_succeeded", "online_failed", "offline_succeeded", "offline_failed", "pending_timeout"):
            self._pending.pop(resource, None)

    # --- crash, attribution, restart (R5) ------------------------------------------------------

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        returncode = await proc.wait()
        if self._reader_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader_task), 2.0)
        if self._stopping:
            return
        self._ready = False
        await self._crashed(proc.pid, returncode)

    def _fail_waiters(self, error: MonitorError) -> None:
        waiters, self._waiters = self._waiters, collections.defaultdict(list)
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
                    future.exception()  # retrieved: nobody may be waiting any more

    async def _crashed(self, pid: int, returncode: int) -> None:
        calls = self._record.in_flight() if self._record is not None else []
        if self._record is not None:
            self._record.close()
            self._record = None
        culprit, attribution = self._culprit(calls)
        how = _signal_name(returncode) or f"exit code {returncode}"
        report = {
            "v": PROTOCOL_VERSION, "op": "monitor_crashed", "monitor": self.name, "pid": pid,
            "returncode": returncode, "signal": _signal_name(returncode),
            "resource": culprit.resource if culprit else None,
            "entry_point": culprit.entry_point if culprit else None, "attribution": attribution,
            "in_flight": [c.as_dict() for c in calls], "log": str(self.log_path),
        }
        self.crashes.append(report)
        log.error("monitor %s (pid %d) died (%s)%s; see %s", self.name, pid, how,
                  f" in {culprit.entry_point} of {culprit.resource!r}" if culprit else "", self.log_path)
        self.events.put_nowait(report)
        self._report_interrupted(calls, how)
        self._fail_waiters(MonitorError(f"monitor {self.name!r} died ({how}) before answering; it is restarted"))

        now = time.monotonic()
        self._crash_times.append(now)
        while self._crash_times and now - self._crash_times[0] > self.restart_window_s:
            self._crash_times.popleft()
        if len(self._crash_times) > self.max_restarts:
            self._give_up(f"it crashed {len(self._crash_times)} times within {self.restart_window_s:g} s")
            return
        try:
            await self._spawn()
        except MonitorError as exc:
            self._give_up(str(exc))
            return
        await self._reopen(calls, culprit)

    def _culprit(self, calls: list[CallRecord]) -> tuple[CallRecord | None, str | None]:
        """The call that crashed the monitor: the faulting thread's, else the newest in flight."""
        if not calls:
            return None, None
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                tail = f.read().decode(errors="replace")
        except OSError:
            tail = ""
        faulting = re.findall(r"^Current thread (0x[0-9a-fA-F]+)", tail, re.MULTILINE)
        if faulting:
            ident = int(faulting[-1], 16)
            for c in calls:
                if c.thread == ident:
                    return c, "faulting thread"
        return calls[-1], "newest call in flight"

    def _report_interrupted(self, calls: list[CallRecord], how: str) -> None:
        for c in calls:
            event = INTERRUPTED_CALL_EVENTS.get(c.entry_point)
            if event is None or c.resource not in self._opened:
                continue
            fields: dict[str, Any] = {"resource": c.resource}
            if c.entry_point in ("Online", "Offline"):
                pending = self._pending.get(c.resource)
                if pending is None or pending[0] != c.entry_point:
                    continue  # that operation had already ended (timed out or superseded)
                if pending[1] is not None:
                    fields["op_id"] = pending[1]
            self._track(event, c.resource)
            if c.entry_point == "IsAlive":
                self._polling.discard(c.resource)
            self.events.put_nowait({"v": PROTOCOL_VERSION, "op": event, **fields, "severity": Severity.SOFT.value,
                                    "detail": f"the monitor crashed ({how}) during {c.entry_point}",
                                    "synthesized": True})

    async def _reopen(self, calls: list[CallRecord], culprit: CallRecord | None) -> None:
        crashed_opening = {c.resource for c in calls if c.entry_point == "Open"}
        reopened, watching, not_reopened = [], [], []
        replies = []
        for resource, command in list(self._opened.items()):
            if resource in crashed_opening:
                not_reopened.append(resource)
                del self._opened[resource]
                continue
            watch = resource in self._polling
            replies.append((resource, self._waiter("opened", resource)))
            self._write(encode("open", **command, **({"online": True} if watch else {})))
        for resource, reply in replies:
            try:
                message = await reply
            except MonitorError:
                return  # it crashed again; that crash is handled by the next watcher
            if message["op"] == "opened":
                reopened.append(resource)
                if resource in self._polling:
                    watching.append(resource)
            else:
                not_reopened.append(resource)
                self._opened.pop(resource, None)
                self._polling.discard(resource)
                self.events.put_nowait(message)
        self.events.put_nowait({
            "v": PROTOCOL_VERSION, "op": "monitor_restarted", "monitor": self.name, "pid": self.pid,
            "reopened": reopened, "watching": watching, "not_reopened": not_reopened,
            "crashed_in": {"resource": culprit.resource, "entry_point": culprit.entry_point} if culprit else None,
        })
        self._ready = True
        outbox, self._outbox = self._outbox, []
        for line in outbox:
            self._write(line)

    def _give_up(self, why: str) -> None:
        self._failed = MonitorError(f"monitor {self.name!r} is not restarted: {why}; see {self.log_path}, "
                                    "fix or remove the resource that crashes it, then restart the daemon")
        log.error("%s", self._failed)
        self._outbox.clear()
        self.events.put_nowait({"v": PROTOCOL_VERSION, "op": "monitor_failed", "monitor": self.name,
                                "error": str(self._failed)})
