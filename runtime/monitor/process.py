"""The resource monitor process (REQUIREMENTS R1-R5): ``python -m wolfpack.runtime.monitor``.

A monitor holds resources for its daemon and carries out their entry-point
calls.  It decides nothing: it reports what the calls returned as the
resource machine's events, and the daemon's machines decide.

* Every entry-point call runs in a thread of its own, so a hung Online of one
  resource never blocks another resource's polls; the call is recorded in
  the shared call record (:mod:`.shared_state`) while it runs (R5).
* Online and Offline are supervised against the resource's PendingTimeout
  (R3): a call that does not finish, or report progress, in time is reported
  as ``pending_timeout``, marked cancelled, and its late result is dropped.
* While a resource is online, LooksAlive and IsAlive are polled at its
  intervals (R2).  A failed LooksAlive is reported as ``looks_alive_failed``
  and LooksAlive polling pauses until an IsAlive passes (the machine answers
  with an ``is_alive`` command); a failed IsAlive is reported as
  ``is_alive_failed`` and polling stops.  A poll that does not return within
  PendingTimeout counts as failed.
* When its daemon goes away (socket closed, parent process gone) or on
  SIGTERM, the monitor Terminates every resource it holds and exits (R4).

The daemon side is :class:`wolfpack.runtime.monitor.client.MonitorClient`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wolfpack.errors import MonitorError, ResourceTypeError
from wolfpack.runtime.monitor.protocol import MAX_LINE_BYTES, decode_command, encode, iter_lines
from wolfpack.runtime.monitor.shared_state import CallRecordTable
from wolfpack.runtime.resource_types.base import (
    EntryPointFailed,
    Operation,
    ResourceContext,
    ResourceType,
    Severity,
    load_type,
)

log = logging.getLogger("wolfpack.monitor")

#: How often the monitor checks that its daemon (its parent process) still lives.
PARENT_CHECK_S = 0.5
#: Longest wait for the Terminate calls when the daemon is gone.
ORPHAN_TERMINATE_S = 30.0


@dataclass
class Outcome:
    """What an entry-point call returned, or raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass
class PendingCall:
    """An Online or Offline in flight, under PendingTimeout."""

    entry_point: str
    op_id: int | str | None
    operation: Operation
    timer: asyncio.TimerHandle | None = None
    over: bool = False


@dataclass
class Held:
    """A resource the monitor holds."""

    resource: str
    instance: ResourceType
    looks_alive_ms: int
    is_alive_ms: int
    pending_timeout_ms: int
    call: PendingCall | None = None
    poller: asyncio.Task[None] | None = None
    looks_suspended: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pending_s(self) -> float:
        return self.pending_timeout_ms / 1000


def work_dir_for(run_dir: Path, resource: str) -> Path:
    """The directory of a resource's own files (the same in every monitor that holds it)."""
    return run_dir / "resources" / urllib.parse.quote(resource, safe="")


def _failure(error: BaseException) -> tuple[str, str]:
    """(severity, detail) of an entry point's exception."""
    if isinstance(error, EntryPointFailed):
        return error.severity.value, str(error)
    if isinstance(error, ResourceTypeError):
        return Severity.FATAL.value, str(error)
    return Severity.SOFT.value, f"{type(error).__name__}: {error}"


class Monitor:
    def __init__(self, sock: socket.socket, record: CallRecordTable, run_dir: Path, name: str,
                 daemon_pid: int | None = None) -> None:
        self.sock = sock
        self.record = record
        self.run_dir = run_dir
        self.name = name
        self.daemon_pid = daemon_pid
        self.held: dict[str, Held] = {}
        self.opening: set[str] = set()
        self.orphaned = False
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._done: asyncio.Future[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- plumbing -------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def send(self, op: str, **fields: Any) -> None:
        if self._writer is None or self._writer.is_closing() or self.orphaned:
            return
        try:
            self._writer.write(encode(op, **fields))
        except (ConnectionError, RuntimeError, MonitorError) as exc:
            log.warning("cannot send %s to the daemon: %s", op, exc)

    def say(self, level: str, message: str, resource: str | None = None) -> None:
        """A log line, to the daemon and to the monitor's own log."""
        log.log(logging.getLevelName(level.upper()) if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR")
                else logging.INFO, "%s%s", f"[{resource}] " if resource else "", message)
        fields: dict[str, Any] = {"level": level, "message": message}
        if resource is not None:
            fields["resource"] = resource
        self.send("log", **fields)

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _threadsafe(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the monitor is exiting
            self.loop.call_soon_threadsafe(fn, *args)

    def call(self, entry_point: str, resource: str, fn: Callable[[], Any]) -> asyncio.Future[Outcome]:
        """Run one entry point in a thread of its own, recorded in the shared record while it runs."""
        future: asyncio.Future[Outcome] = self.loop.create_future()

        def settle(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        def work() -> None:
            slot = self.record.enter(entry_point, resource)
            try:
                outcome = Outcome(value=fn())
            except BaseException as exc:
                outcome = Outcome(error=exc)
                if not isinstance(exc, ResourceTypeError):
                    log.error("%s of %s raised:\n%s", entry_point, resource, traceback.format_exc())
            finally:
                self.record.leave(slot)
            self._threadsafe(settle, outcome)

        threading.Thread(target=work, name=f"{entry_point} {resource}", daemon=True).start()
        return future

    async def bounded(self, future: asyncio.Future[Outcome], seconds: float) -> Outcome | None:
        """The call's outcome, or None if it did not return within ``seconds`` (it runs on, ignored)."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            return None

    # --- main loop -----------------------------------------------------------------------

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._done = self.loop.create_future()
        reader, self._writer = await asyncio.open_unix_connection(sock=self.sock, limit=MAX_LINE_BYTES)
        self.loop.add_signal_handler(signal.SIGTERM, self._orphan, "SIGTERM")
        self.send("hello", pid=os.getpid(), name=self.name)
        self._spawn(self._read(reader))
        if self.daemon_pid is not None:
            self._spawn(self._watch_parent())
        code = await self._done
        if self._writer is not None:
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()
            self._writer.close()
        return code

    def _finish(self, code: int) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(code)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        async for line in iter_lines(reader):
            if line is None:
                self.say("error", f"monitor protocol: a line longer than {MAX_LINE_BYTES} bytes was dropped")
                continue
            if not line.strip():
                continue
            try:
                command = decode_command(line)
            except MonitorError as exc:
                self.say("error", str(exc))
                continue
            try:
                self._dispatch(command)
            except Exception:
                self.say("error", f"the monitor failed on {command['op']!r}: {traceback.format_exc()}")
        self._orphan("the daemon closed the monitor socket")

    async def _watch_parent(self) -> None:
        while not self.orphaned:
            await asyncio.sleep(PARENT_CHECK_S)
            if os.getppid() != self.daemon_pid:
                self._orphan(f"the daemon (pid {self.daemon_pid}) died")

    def _dispatch(self, command: dict[str, Any]) -> None:
        op = command["op"]
        if op == "ping":
            self.send("pong", token=command.get("token"))
            return
        if op == "shutdown":
            self._spawn(self._shutdown())
            return
        if op == "open":
            self._spawn(self._open(command))
            return
        resource = command["resource"]
        held = self.held.get(resource)
        if held is None:
            state = "is still opening" if resource in self.opening else "is not open in this monitor"
            self.say("error", f"{op!r} refused: resource {resource!r} {state}; open it first", resource)
            return
        if op in ("online", "offline"):
            self._start_call(held, "Online" if op == "online" else "Offline", command.get("op_id"))
        elif op == "terminate":
            self._spawn(self._terminate(held))
        elif op == "is_alive":
            self._spawn(self._is_alive_now(held))
        elif op == "close":
            self._spawn(self._close(held))

    # --- Open / Close ------------------------------------------------------------------

    async def _open(self, command: dict[str, Any]) -> None:
        resource, type_name = command["resource"], command["type"]
        if resource in self.held or resource in self.opening:
            self.send("open_failed", resource=resource, severity=Severity.SOFT.value,
                      error=f"resource {resource!r} is already open in monitor {self.name!r}; close it first")
            return
        self.opening.add(resource)
        work_dir = work_dir_for(self.run_dir, resource)
        context = ResourceContext(
            resource_id=resource, work_dir=work_dir, looks_alive_ms=command["looks_alive_ms"],
            is_alive_ms=command["is_alive_ms"], pending_timeout_ms=command["pending_timeout_ms"],
            log=lambda message, level: self._threadsafe(self.say, level, message, resource),
        )

        def open_it() -> ResourceType:
            try:
                kind = load_type(type_name)
            except ResourceTypeError as exc:
                raise EntryPointFailed(str(exc), Severity.HARD) from exc
            work_dir.mkdir(parents=True, exist_ok=True)
            instance = kind(resource, command["properties"], context)
            instance.open()
            return instance

        try:
            outcome = await self.bounded(self.call("Open", resource, open_it), context.pending_timeout_ms / 1000)
        finally:
            self.opening.discard(resource)
        if outcome is None:
            self.send("open_failed", resource=resource, severity=Severity.SOFT.value,
                      error=f"Open of {resource!r} did not return within {context.pending_timeout_ms} ms")
            return
        if outcome.error is not None:
            severity, detail = _failure(outcome.error)
            self.send("open_failed", resource=resource, severity=severity, error=detail)
            return
        held = Held(resource, outcome.value, context.looks_alive_ms, context.is_alive_ms, context.pending_timeout_ms)
        self.held[resource] = held
        self.send("opened", resource=resource, type=type_name)
        if command.get("online"):
            self._start_polling(held)

    async def _close(self, held: Held) -> None:
        self._stop_polling(held)
        self._abandon(held, "the resource is being closed")
        self.held.pop(held.resource, None)
        outcome = await self.bounded(self.call("Close", held.resource, held.instance.close), held.pending_s)
        if outcome is None:
            self.say("warning", f"Close did not return within {held.pending_timeout_ms} ms", held.resource)
        elif outcome.error is not None:
            self.say("warning", f"Close failed: {_failure(outcome.error)[1]}", held.resource)
        self.send("closed", resource=held.resource)

    # --- Online / Offline under PendingTimeout ------------------------------------------

    def _start_call(self, held: Held, entry_point: str, op_id: int | str | None) -> None:
        if held.call is not None and entry_point == "Online":
            self.say("error", f"Online refused: {held.call.entry_point} is still in flight", held.resource)
            return
        self._stop_polling(held)
        self._abandon(held, f"{entry_point} was asked for")
        call: PendingCall

        def progress(detail: str) -> None:
            self._threadsafe(self._progress, held, call, detail)

        call = PendingCall(entry_point, op_id, Operation(entry_point, progress))
        held.call = call
        self._arm(held, call)
        method = held.instance.online if entry_point == "Online" else held.instance.offline
        future = self.call(entry_point, held.resource, lambda: method(call.operation))
        future.add_done_callback(lambda f: self._call_done(held, call, f.result()))

    def _event_fields(self, held: Held, call: PendingCall) -> dict[str, Any]:
        fields: dict[str, Any] = {"resource": held.resource}
        if call.op_id is not None:
            fields["op_id"] = call.op_id
        return fields

    def _arm(self, held: Held, call: PendingCall) -> None:
        if call.timer is not None:
            call.timer.cancel()
        call.timer = self.loop.call_later(held.pending_s, self._timed_out, held, call)

    def _progress(self, held: Held, call: PendingCall, detail: str) -> None:
        if call.over:
            return
        self._arm(held, call)
        event = "online_pending" if call.entry_point == "Online" else "offline_pending"
        self.send(event, **self._event_fields(held, call), detail=detail)

    def _timed_out(self, held: Held, call: PendingCall) -> None:
        if call.over:
            return
        self._end(held, call)
        call.operation.cancel()
        self.send("pending_timeout", **self._event_fields(held, call), entry_point=call.entry_point,
                  detail=f"{call.entry_point} did not finish within PendingTimeout ({held.pending_timeout_ms} ms)")

    def _end(self, held: Held, call: PendingCall) -> None:
        call.over = True
        if call.timer is not None:
            call.timer.cancel()
        if held.call is call:
            held.call = None

    def _abandon(self, held: Held, why: str) -> None:
        call = held.call
        if call is None:
            return
        self._end(held, call)
        call.operation.cancel()
        self.say("info", f"{call.entry_point} in flight abandoned: {why}", held.resource)

    def _call_done(self, held: Held, call: PendingCall, outcome: Outcome) -> None:
        if call.over:
            if not self.orphaned:
                log.info("[%s] late result of %s dropped", held.resource, call.entry_point)
            return
        self._end(held, call)
        stem = "online" if call.entry_point == "Online" else "offline"
        if outcome.error is not None:
            severity, detail = _failure(outcome.error)
            self.send(f"{stem}_failed", **self._event_fields(held, call), severity=severity, detail=detail)
            return
        self.send(f"{stem}_succeeded", **self._event_fields(held, call))
        if call.entry_point == "Online" and self.held.get(held.resource) is held:
            self._start_polling(held)

    # --- polling -------------------------------------------------------------------------

    def _start_polling(self, held: Held) -> None:
        if held.poller is None or held.poller.done():
            held.looks_suspended = False
            held.poller = self.loop.create_task(self._poll(held))

    def _stop_polling(self, held: Held) -> None:
        if held.poller is not None:
            held.poller.cancel()
            held.poller = None

    async def check(self, held: Held, entry_point: str) -> tuple[bool, str, str]:
        """(alive, severity, detail) of one LooksAlive or IsAlive call."""
        method = held.instance.looks_alive if entry_point == "LooksAlive" else held.instance.is_alive
        outcome = await self.bounded(self.call(entry_point, held.resource, method), held.pending_s)
        if outcome is None:
            return False, Severity.SOFT.value, f"{entry_point} did not return within {held.pending_timeout_ms} ms"
        if outcome.error is not None:
            return (False, *_failure(outcome.error))
        if not outcome.value:
            return False, Severity.SOFT.value, f"{entry_point} returned false"
        return True, "", ""

    async def _poll(self, held: Held) -> None:
        now = self.loop.time
        looks_s, is_s = held.looks_alive_ms / 1000, held.is_alive_ms / 1000
        next_looks, next_is = now() + looks_s, now() + is_s
        while True:
            due = next_is if held.looks_suspended else min(next_looks, next_is)
            held.wake.clear()
            if due > now():
                try:
                    await asyncio.wait_for(held.wake.wait(), due - now())
                    continue  # woken (an IsAlive passed): schedule again
                except TimeoutError:
                    pass
            if now() >= next_is:
                alive, severity, detail = await self.check(held, "IsAlive")
                next_is, next_looks = now() + is_s, now() + looks_s
                if not alive:
                    held.poller = None
                    self.send("is_alive_failed", resource=held.resource, severity=severity, detail=detail)
                    return
                held.looks_suspended = False
            else:
                alive, severity, detail = await self.check(held, "LooksAlive")
                next_looks = now() + looks_s
                if not alive:
                    held.looks_suspended = True
                    self.send("looks_alive_failed", resource=held.resource, severity=severity, detail=detail)

    async def _is_alive_now(self, held: Held) -> None:
        alive, severity, detail = await self.check(held, "IsAlive")
        if self.held.get(held.resource) is not held:
            return
        if alive:
            held.looks_suspended = False
            held.wake.set()
        else:
            self._stop_polling(held)
            self.send("is_alive_failed", resource=held.resource, severity=severity, detail=detail)

    # --- Terminate, shutdown, orphaned --------------------------------------------------------

    async def _terminate(self, held: Held) -> None:
        self._stop_polling(held)
        self._abandon(held, "Terminate")
        outcome = await self.bounded(self.call("Terminate", held.resource, held.instance.terminate), held.pending_s)
        if outcome is None:
            self.say("error", f"Terminate did not return within {held.pending_timeout_ms} ms", held.resource)
            self.send("terminated", resource=held.resource, ok=False)
        elif outcome.error is not None:
            self.say("error", f"Terminate failed: {_failure(outcome.error)[1]}", held.resource)
            self.send("terminated", resource=held.resource, ok=False)
        else:
            self.send("terminated", resource=held.resource, ok=True)

    async def _shutdown(self) -> None:
        await asyncio.gather(*(self._close(h) for h in list(self.held.values())))
        self._finish(0)

    def _orphan(self, reason: str) -> None:
        """The daemon is gone (R4): Terminate every resource, then exit."""
        if self.orphaned:
            return
        log.warning("%s: terminating %d resource(s) and exiting", reason, len(self.held))
        self.orphaned = True
        self._spawn(self._terminate_all())

    async def _terminate_all(self) -> None:
        held = list(self.held.values())
        for h in held:
            self._stop_polling(h)
            self._abandon(h, "the daemon is gone")
        futures = [self.call("Terminate", h.resource, h.instance.terminate) for h in held]
        if futures:
            await asyncio.wait(futures, timeout=ORPHAN_TERMINATE_S)
        self._finish(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wolfpack.runtime.monitor",
                                     description="A Wolfpack resource monitor (started by the daemon).")
    parser.add_argument("--fd", type=int, required=True, help="the inherited Unix socket to the daemon")
    parser.add_argument("--record", type=Path, required=True, help="the shared call record file")
    parser.add_argument("--run-dir", type=Path, required=True, help="directory for the resources' files")
    parser.add_argument("--name", default="default", help="the monitor's name")
    parser.add_argument("--daemon-pid", type=int, help="exit (terminating resources) when this parent dies")
    args = parser.parse_args(argv)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s monitor {args.name}[%(process)d] %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides about Ctrl-C
    sock = socket.socket(fileno=args.fd)
    sock.set_inheritable(False)  # resources' processes must not hold the daemon's socket open
    record = CallRecordTable.attach(args.record)
    record.set_owner(os.getpid())
    if args.daemon_pid is not None and os.getppid() != args.daemon_pid:
        log.error("the daemon (pid %d) is already gone; exiting", args.daemon_pid)
        return 0
    return asyncio.run(Monitor(sock, record, args.run_dir, args.name, args.daemon_pid).run())
