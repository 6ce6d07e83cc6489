"""Resource machines on this node, carried out by resource monitor processes (R1-R5).

Each resource machine ``res<slot>.<i>`` is bound to one resource in a monitor
(the default monitor, or its own with ``separate_monitor``).  The machine's
``call`` effects go to the monitor; what the monitor reports comes back as the
machine's events, on the node's queue.  An Online or Offline carries an
operation number, and a late answer to an operation that was superseded is
dropped.  A monitor that crashes is restarted by its client, which reports the
interrupted calls as failures (the machine decides what follows) and re-opens
the resources, polling again those that were online.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wolfpack.errors import MonitorError, ResourceTypeError
from wolfpack.runtime.monitor.client import MonitorClient, monitor_name
from wolfpack.runtime.monitor.protocol import MACHINE_EVENTS

log = logging.getLogger("wolfpack.resources")

#: a machine's failure event when its entry point cannot even be called (the resource could not be opened)
FAILURE_OF = {"Online": "online_failed", "Offline": "offline_failed", "IsAlive": "is_alive_failed"}

Post = Callable[[Callable[[], None]], None]
Feed = Callable[[str, str], None]


@dataclass
class Binding:
    machine: str
    resource: str  # "<group>/<resource>", the monitor's name for it
    monitor: MonitorClient
    opened: bool = False
    error: str | None = None
    backlog: list[tuple[str, int]] = field(default_factory=list)
    op_id: int = 0
    #: set once the open has ended (opened, or failed with ``error``)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class ResourceBridge:
    def __init__(self, run_dir: Path, post: Post, feed: Feed, *, spawn: Callable[[Any], None],
                 env: Mapping[str, str] | None = None, lease: Path | None = None, lease_kill_ms: int = 0) -> None:
        self.run_dir = run_dir
        self._post = post
        self._feed = feed
        self._spawn = spawn  # starts a coroutine in the daemon's task group
        self._env = dict(env or {})
        self._lease = lease
        self._lease_kill_ms = lease_kill_ms
        self.monitors: dict[str, MonitorClient] = {}
        self.bindings: dict[str, Binding] = {}  # by machine name
        self._by_resource: dict[str, str] = {}  # resource id -> machine name
        self._ops = itertools.count(1)
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self._monitor(monitor_name("", separate=False))

    async def _monitor(self, name: str) -> MonitorClient:
        client = self.monitors.get(name)
        if client is None:
            client = MonitorClient(name, self.run_dir, env=self._env, lease=self._lease,
                                   lease_kill_ms=self._lease_kill_ms)
            self.monitors[name] = client
            await client.start()
            self._spawn(self._pump(client))
        return client

    # -- binding machines to resources ------------------------------------------------------
    def bind(self, machine: str, resource: str, type_name: str, properties: Mapping[str, Any], *,
             separate: bool, intervals: Mapping[str, int]) -> None:
        """Open ``resource`` in its monitor for ``machine`` (in the background; calls wait for it)."""
        self.unbind(machine)
        placeholder = Binding(machine, resource, None)  # type: ignore[arg-type]  # set once the monitor runs
        self.bindings[machine] = placeholder
        self._by_resource[resource] = machine
        self._spawn(self._open(placeholder, type_name, dict(properties), separate, dict(intervals)))

    def _lock(self, resource: str) -> asyncio.Lock:
        """Opens and closes of one resource happen one after the other, in the order asked (a group rebuilt while
        its resource is still being opened closes it before opening it again)."""
        lock = self._locks.get(resource)
        if lock is None:
            lock = self._locks[resource] = asyncio.Lock()
        return lock

    async def _open(self, binding: Binding, type_name: str, properties: dict[str, Any], separate: bool,
                    intervals: dict[str, int]) -> None:
        async with self._lock(binding.resource):
            try:
                binding.monitor = await self._monitor(monitor_name(binding.resource, separate))
                await binding.monitor.open(binding.resource, type_name, properties, **intervals)
            except (MonitorError, ResourceTypeError) as exc:
                binding.error = str(exc)
                log.error("resource %s cannot be opened: %s", binding.resource, exc)
            binding.opened = True
            binding.ready.set()
        backlog, binding.backlog = binding.backlog, []
        for entry, op_id in backlog:
            self._call(binding, entry, op_id)

    def unbind(self, machine: str) -> None:
        binding = self.bindings.pop(machine, None)
        if binding is None:
            return
        if self._by_resource.get(binding.resource) == machine:
            del self._by_resource[binding.resource]
        self._spawn(self._close(binding))

    async def _close(self, binding: Binding) -> None:
        async with self._lock(binding.resource):
            if binding.opened and binding.error is None:
                with contextlib.suppress(MonitorError):
                    await binding.monitor.close(binding.resource)

    # -- the machines' calls ------------------------------------------------------------------
    def drive(self, machine: str, entry: str) -> None:
        """A resource machine's ``call`` effect."""
        binding = self.bindings.get(machine)
        if binding is None:
            log.error("%s called %s but is bound to no resource", machine, entry)
            return
        op_id = next(self._ops)
        if entry in ("Online", "Offline"):
            binding.op_id = op_id
        if not binding.opened:
            binding.backlog.append((entry, op_id))
            return
        self._call(binding, entry, op_id)

    def _call(self, binding: Binding, entry: str, op_id: int) -> None:
        if binding.error is not None:
            self._fail(binding, entry, binding.error)
            return
        try:
            binding.monitor.call(entry, binding.resource, op_id if entry in ("Online", "Offline") else None)
        except MonitorError as exc:
            self._fail(binding, entry, str(exc))

    def _fail(self, binding: Binding, entry: str, why: str) -> None:
        event = FAILURE_OF.get(entry)
        if event is not None:
            log.error("resource %s: %s cannot run (%s)", binding.resource, entry, why)
            machine = binding.machine
            self._post(lambda: self._feed(machine, event))

    # -- reconciliation: probe a resource no machine runs, stop a copy found -------------------------
    async def probe(self, machine: str) -> dict[str, Any]:
        """The Probe of the resource bound to ``machine``, once it is open (``{"error": ...}`` if it cannot run)."""
        binding = self.bindings.get(machine)
        if binding is None:
            return {"error": f"{machine} is bound to no resource"}
        await binding.ready.wait()
        if binding.error is not None:
            return {"error": f"it cannot be opened: {binding.error}"}
        try:
            return await binding.monitor.probe(binding.resource)
        except MonitorError as exc:
            return {"error": str(exc)}

    async def terminate_now(self, machine: str) -> bool:
        """Terminate the resource bound to ``machine`` and wait: whether Terminate succeeded."""
        binding = self.bindings.get(machine)
        if binding is None:
            return False
        await binding.ready.wait()
        if binding.error is not None:
            return False
        try:
            return await binding.monitor.terminate_now(binding.resource)
        except MonitorError:
            return False

    # -- what the monitors say ------------------------------------------------------------------
    async def _pump(self, client: MonitorClient) -> None:
        while True:
            message = await client.events.get()
            op = message.get("op")
            if op in MACHINE_EVENTS:
                machine = self._by_resource.get(str(message.get("resource")))
                binding = self.bindings.get(machine) if machine else None
                if machine is None or binding is None:
                    continue
                if "op_id" in message and message["op_id"] != binding.op_id:
                    log.debug("resource %s: dropped %s of superseded operation %s", binding.resource, op,
                              message["op_id"])
                    continue
                if op.endswith("failed") or op == "pending_timeout":
                    log.warning("resource %s: %s (%s)", binding.resource, op, message.get("detail", ""))
                self._post(_feeding(self._feed, machine, str(op)))
            elif op == "lease_lapsed":
                log.warning("lease %s: monitor %s terminated %s in %s ms from the end of the lease (bound %s ms%s)",
                            message.get("why"), client.name, ", ".join(message.get("resources", [])),
                            message.get("took_ms"), message.get("bound_ms"),
                            "" if message.get("within_bound") else ", EXCEEDED: raise timing.lease_kill_ms or make "
                            "these resources stop faster")
            elif op == "monitor_restarted":
                log.warning("monitor %s restarted; re-opened %s, polling again %s", message.get("monitor"),
                            message.get("reopened"), message.get("watching"))
            elif op == "monitor_failed":
                log.error("%s", message.get("error"))

    async def shutdown(self) -> None:
        for client in self.monitors.values():
            with contextlib.suppress(MonitorError):
                await client.shutdown()

    def state(self) -> dict[str, Any]:
        """What the admin API shows of the monitors."""
        return {name: {"pid": c.pid, "resources": c.resources, "crashes": len(c.crashes),
                       "lease_lapses": c.lapses[-4:]}
                for name, c in self.monitors.items()}



def _feeding(feed: Feed, machine: str, event: str) -> Callable[[], None]:
    return lambda: feed(machine, event)
