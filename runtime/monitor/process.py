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
* It enforces the node's lease (:mod:`.lease`) by itself, in a thread of its
  own: when the lease lapses, is revoked or is ended, it Terminates every
  resource that may run (Online asked for, or online), measures how long that
  took from the end of the lease, and reports it (``lease_lapsed``) with each
  resource's failure event; it refuses Online until the daemon renews the
  lease.  A stalled or deadlocked daemon thus loses its resources on a clock.

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
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wolfpack.errors import MonitorError, ResourceTypeError
from wolfpack.runtime.monitor.lease import Lease, LeasePage
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
from wolfpack.spec import defaults

log = logging.getLogger("wolfpack.monitor")

#: How often the monitor checks that its daemon (its parent process) still lives.
PARENT_CHECK_S = 0.5
#: Longest wait for the Terminate calls when the daemon is gone.
ORPHAN_TERMINATE_S = 30.0
#: How often the lease enforcer looks at the lease (it also wakes at the expiry).
LEASE_POLL_S = defaults.LEASE_POLL_MS / 1000


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
    #: may have processes: Online was asked for (or it was re-opened online), and no Offline or Terminate ended it
    live: bool = False

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
                 daemon_pid: int | None = None, lease: LeasePage | None = None, lease_kill_ms: int = 0) -> None:
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
        self.lease = lease
        self.lease_kill_ms = lease_kill_ms
        #: the generation of the lease that lapsed last (Online is refused until a newer one holds)
        self.lapsed_generation: int | None = None
        self.lapses = 0
        self._enforcer_stop = threading.Event()

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
        enforcer = None
        if self.lease is not None:
            enforcer = threading.Thread(target=self._enforce_lease, name="lease enforcer", daemon=True)
            enforcer.start()
        code = await self._done
        self._enforcer_stop.set()
        if enforcer is not None:
            enforcer.join(timeout=5)
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
        elif op == "probe":
            self._spawn(self._probe(held))
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
        held.live = bool(command.get("online"))
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
        if entry_point == "Online" and (why := self.no_lease()) is not None:
            fields: dict[str, Any] = {"resource": held.resource, **({} if op_id is None else {"op_id": op_id})}
            self.send("online_failed", **fields, severity=Severity.SOFT.value, detail=f"Online refused: {why}")
            return
        if entry_point == "Online":
            held.live = True
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
        if call.entry_point == "Offline":
            held.live = False
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
                if not alive and not held.live:
                    return  # the lease enforcer terminated it and reports that
                if not alive:
                    held.poller = None
                    self.send("is_alive_failed", resource=held.resource, severity=severity, detail=detail)
                    return
                held.looks_suspended = False
            else:
                alive, severity, detail = await self.check(held, "LooksAlive")
                next_looks = now() + looks_s
                if not alive and not held.live:
                    return  # the lease enforcer terminated it and reports that
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

    async def _probe(self, held: Held) -> None:
        """The type's probe, bounded by PendingTimeout; a probe that fails or hangs is reported as such."""
        outcome = await self.bounded(self.call("Probe", held.resource, held.instance.probe), held.pending_s)
        if outcome is None:
            self.send("probed", resource=held.resource,
                      error=f"Probe did not return within {held.pending_timeout_ms} ms")
        elif outcome.error is not None:
            self.send("probed", resource=held.resource, error=f"Probe failed: {_failure(outcome.error)[1]}")
        else:
            self.send("probed", resource=held.resource, **outcome.value.as_dict())

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
            held.live = False
            self.send("terminated", resource=held.resource, ok=True)

    # --- the lease ----------------------------------------------------------------------------

    def no_lease(self) -> str | None:
        """Why this monitor holds no fresh lease now (None: it holds one, or the node has no lease page)."""
        if self.lease is None:
            return None
        lease = self.lease.read()
        if lease.revoked:
            return ("the lease was revoked (a peer's heartbeats carry a newer membership: this node was left out); "
                    "the daemon renews it once it is in a quorate membership again")
        if not lease.fresh():
            return "this node holds no fresh lease: it is not a member of a quorate membership"
        if self.lapsed_generation is not None and lease.generation <= self.lapsed_generation:
            return "the lease lapsed and the daemon has not renewed it since"
        return None

    def _enforce_lease(self) -> None:
        """The enforcer thread: watch the lease; when it ends while a resource may run, terminate them all."""
        assert self.lease is not None
        armed_for: int | None = None  # the generation whose end was already enforced
        while not self._enforcer_stop.is_set():
            try:
                lease = self.lease.read()
            except MonitorError as exc:
                log.error("the lease page cannot be read (%s): the lease counts as ended", exc)
                lease = Lease(0, 1, -1, 0)
            now = time.monotonic_ns()
            if lease.fresh(now):
                armed_for = None
                self._enforcer_stop.wait(min(LEASE_POLL_S, (lease.expiry_ns - now) / 1e9))
                continue
            live = [h for h in list(self.held.values()) if h.live]
            if live and armed_for != lease.generation:
                ended_ns = lease.expiry_ns if not lease.revoked and 0 < lease.expiry_ns <= now else now
                self._lapse(lease, live, ended_ns)
                armed_for = lease.generation
            self._enforcer_stop.wait(LEASE_POLL_S)

    def _lapse(self, lease: Lease, live: list[Held], ended_ns: int) -> None:
        """Terminate every live resource now (each in a thread of its own), from this thread: the event loop may
        be busy, the kills must not wait for it.  Then report, through the loop."""
        noticed_ns = time.monotonic_ns()
        why = ("revoked (a newer membership left this node out)" if lease.revoked else
               "ended by the daemon (it halted or stops)" if lease.expiry_ns == 0 else
               "lapsed (the daemon did not renew it: stalled, deadlocked, or not hearing a quorum)")
        self.lapsed_generation = lease.generation
        self.lapses += 1
        log.warning("the lease %s: terminating %d resource(s): %s", why, len(live), ", ".join(h.resource for h in live))
        for held in live:
            held.live = False  # its poller must not report the kill as a failure of its own: _lapsed reports it
            call = held.call
            if call is not None:
                call.operation.cancel()  # an Online still in flight must not start anything more
        finished: dict[str, int] = {}

        def kill(held: Held) -> None:
            slot = self.record.enter("Terminate", held.resource)
            try:
                held.instance.terminate()
            except BaseException as exc:
                log.error("[%s] Terminate after the lease %s failed: %s", held.resource, why, exc)
            finally:
                self.record.leave(slot)
                finished[held.resource] = time.monotonic_ns()

        threads = [threading.Thread(target=kill, args=(h,), name=f"lease Terminate {h.resource}", daemon=True)
                   for h in live]
        for t in threads:
            t.start()
        for t, held in zip(threads, live, strict=True):
            t.join(timeout=max(held.pending_s, 1.0))
        took_ms = (max(finished.values(), default=time.monotonic_ns()) - ended_ns) / 1e6
        figures = {"why": why, "resources": [h.resource for h in live], "took_ms": round(took_ms, 1),
                   "noticed_ms": round((noticed_ns - ended_ns) / 1e6, 1), "bound_ms": self.lease_kill_ms,
                   "within_bound": self.lease_kill_ms <= 0 or took_ms <= self.lease_kill_ms,
                   "unfinished": [h.resource for h in live if h.resource not in finished]}
        if not figures["within_bound"]:
            log.error("terminating after the lease ended took %.1f ms, over the bound of %d ms "
                      "(timing.lease_kill_ms): raise it, or make the resources stop faster", took_ms,
                      self.lease_kill_ms)
        self._threadsafe(self._lapsed, live, figures)

    def _lapsed(self, live: list[Held], figures: dict[str, Any]) -> None:
        """In the loop: the terminated resources' machines hear of it as failures, the daemon gets the figures."""
        for held in live:
            if self.held.get(held.resource) is not held:
                continue
            call = held.call
            self._stop_polling(held)
            held.live = False
            detail = f"the lease {figures['why']}: the monitor terminated it"
            if call is not None:
                self._end(held, call)
                if call.entry_point == "Online":
                    self.send("online_failed", **self._event_fields(held, call), severity=Severity.SOFT.value,
                              detail=detail)
                continue  # an Offline in flight reports itself
            self.send("is_alive_failed", resource=held.resource, severity=Severity.SOFT.value, detail=detail)
        self.send("lease_lapsed", **figures)
        self.say("warning", f"the lease {figures['why']}: terminated {', '.join(figures['resources'])} in "
                 f"{figures['took_ms']} ms (bound {figures['bound_ms']} ms)")

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
    parser.add_argument("--lease", type=Path, help="the node's lease page: terminate every resource when it lapses")
    parser.add_argument("--lease-kill-ms", type=int, default=0, help="the bound the lapse's termination is held to")
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
    lease = LeasePage.attach(args.lease) if args.lease is not None else None
    return asyncio.run(Monitor(sock, record, args.run_dir, args.name, args.daemon_pid, lease=lease,
                               lease_kill_ms=args.lease_kill_ms).run())
