"""``wolfpackd``: one node's cluster service, assembled.

One :class:`asyncio.TaskGroup` holds the node task (the machines), the
transport's listener and peer links, the heartbeat timer's file descriptor,
the resource monitors' pumps, and the admin API.  The service decides
nothing: messages, heartbeat signals, timers, monitor reports and
administrator requests all become events on the node's queue.

Start-up: the hive catches up from its quorum log's checkpoint and records
(L2), the machines are built with what the node kept on disk, every group's
resources are opened in their monitors, and (unless ``node.join = false``)
the membership machine boots: the node forms a cluster with the others or
joins the one that runs, loading the sponsor's database if it is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from wolfpack.runtime.daemon import catalog, operations
from wolfpack.runtime.daemon.config import NodeConfig
from wolfpack.runtime.daemon.fencer import Fencer
from wolfpack.runtime.daemon.lease import LeaseKeeper
from wolfpack.runtime.daemon.node import DaemonNode
from wolfpack.runtime.daemon.operations import AdminError
from wolfpack.runtime.daemon.quorum_disk import QuorumDisk
from wolfpack.runtime.daemon.reconcile import Reconciler
from wolfpack.runtime.daemon.resources import ResourceBridge
from wolfpack.runtime.daemon.rpc import Rpc
from wolfpack.runtime.daemon.store import HiveDatabase, NodeState
from wolfpack.runtime.daemon.trace import TraceWriter
from wolfpack.runtime.daemon.transfer import Transfer
from wolfpack.runtime.daemon.watchdog import WatchdogKeeper
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.quorum_log import QuorumLog
from wolfpack.runtime.heartbeat import HeartbeatTimer
from wolfpack.runtime.node.app import Hooks, Update, group_machine_name, resource_machine_name
from wolfpack.runtime.transport.messages import Message
from wolfpack.runtime.transport.peers import PeerManager
from wolfpack.spec.core import Emitted
from wolfpack.spec.quorum import majority

log = logging.getLogger("wolfpack.service")

#: how long an administrator's update may wait for GUM (a regroup blocks updates)
SUBMIT_TIMEOUT_S = 15.0
#: a halted node that hears a regroup joins it, but not sooner than this after it halted
REJOIN_MIN_S = 0.5
#: a booting node that hears too few heartbeats says so after this long
BOOT_NOTICE_S = 10.0


class Service:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.me = config.node_id
        self.peers: PeerManager | None = None
        self.heartbeat: Any = None
        self.admin_address: tuple[str, int] | None = None
        self._stop = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._halted_at: float | None = None
        self._booting: int | None = None  # the boot waiting to hear a majority's heartbeats
        self._told_waiting = False
        self.quorum_disk: QuorumDisk | None = None
        self.lease: LeaseKeeper | None = None
        self.watchdog = WatchdogKeeper(str(config["node.watchdog"]), int(config["node.watchdog_timeout_s"]))
        self.reconciler: Reconciler | None = None
        self._reconciling = False  # a start-up or rejoin reconciliation runs: the node boots once it is done

    # -- assembly -----------------------------------------------------------------------------
    def _open_store(self) -> None:
        data = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.hive = Hive(data / "hive.sqlite")
        self.quorum_log = QuorumLog(data / "quorum-log")
        if self.quorum_log.diverged(self.hive) or self.hive.last_seq < self.quorum_log.last_seq:
            self.quorum_log.catch_up(self.hive, rebuild_diverged=True)
        self.state = NodeState.load(data / "state.json")
        self.trace = TraceWriter(data / "transitions.ndjson")

    def _build_node(self) -> None:
        hooks = Hooks(drive=lambda machine, entry: self.bridge.drive(machine, entry),
                      device=self._disk_command,
                      disk_won=lambda: self.quorum_disk.won() if self.quorum_disk else None,
                      record_epoch=lambda epoch: self.quorum_disk.record_epoch(epoch) if self.quorum_disk else None,
                      load_database=lambda sponsor: self.transfer.load(sponsor),
                      ended=self._update_ended,
                      fence=lambda nodes: self.fencer.fence(nodes),
                      defer=lambda fn, what: self.node.post(fn))
        database = HiveDatabase(self.hive, self.quorum_log, self.config.n,
                                lambda: int(self.node.machines["membership"].record.epoch),
                                on_groups_changed=lambda names: self.node.post(lambda: self._relayout(names)),
                                log_first=lambda seq, epoch, ops: self.quorum_disk.append(seq, epoch, ops)
                                if self.quorum_disk else None)
        self.node = DaemonNode(self.config, database, self.state, self.trace, self._send, hooks)
        self.transfer = Transfer(self.node, self._send, on_loaded=self._relayout_all,
                                 before_resume=self._reconcile_loaded)
        self.fencer = Fencer(self.hive, lambda: self.node.effective_config, self.node.post, self.node.feed,
                             self._spawn)

    def _disk_command(self, effect: Emitted) -> None:
        if self.quorum_disk is None:
            log.error("no quorum disk is configured; the arbitration machine's %s is ignored", effect.name)
            return
        self.quorum_disk.command(effect)

    def _spawn(self, coro: Any) -> None:
        assert self._tasks is not None
        self._tasks.create_task(coro)

    def _send(self, peer: int, message: Message) -> bool:
        if self.peers is None or peer in catalog.evicted(self.hive):
            return False
        return self.peers.send(peer, message)

    def _on_message(self, src: int, message: Message) -> None:
        if src in catalog.evicted(self.hive):
            log.warning("node %d is evicted; its %s.%s is ignored", src, message.machine, message.name)
            return
        if message.machine == "db":
            self.transfer.receive(src, message)
        elif message.machine == "admin":
            self.rpc.receive(src, message)
        elif message.machine == "membership" and self._halted_at is not None:
            self._heard_regroup()
        else:
            self.node.post(lambda: self.node.receive(src, message))

    def _on_heartbeat(self) -> None:
        for kind, peer, epoch in self.heartbeat.read_events():
            if kind == "ahead":  # the heartbeat spec's peer_ahead report, with the peer's epoch: the membership
                # machine compares it with what it has installed when the report is handled (it may have
                # installed that epoch itself since the timer thread saw it)
                log.info("heartbeat: node %d sends membership epoch %d (this node's heartbeats carried %d when it "
                         "arrived)", peer, epoch, self.heartbeat.epoch)
                self.node.post(functools.partial(self._feed_membership, "peer_ahead", peer, epoch=epoch))
                continue
            if kind == "revoked":  # the timer thread revoked the lease itself: the monitors stop the resources
                log.warning("heartbeat: node %d installed membership epoch %d without this node: this node's lease "
                            "is revoked, its monitors stop its resources", peer, epoch)
                continue
            event = "suspect" if kind == "suspect" else "peer_back"
            log.info("heartbeat: node %d %s", peer, "missed its beats on every network" if kind == "suspect"
                     else "is back")
            if kind != "suspect" and self.peers is not None:
                self.peers.redial(peer)
            self.node.post(functools.partial(self._feed_membership, event, peer))

    def _epoch_installed(self, epoch: int, members: list[int]) -> None:
        """The membership machine installed ``epoch``: the heartbeats carry it and its members (a peer that is left
        behind halts on hearing it, N4, and its timer thread revokes its lease); a timer started later begins at 0,
        as the heartbeat machine of a restarted node.  The lease is renewed at once (Online needs it)."""
        if self.heartbeat is not None:
            self.heartbeat.set_epoch(epoch, members)
        if self.lease is not None:
            self.lease.installed(epoch)
            self._renew_lease()

    def _renew_lease(self) -> None:
        """Renew the lease if this node is a member of a quorate membership (see ``runtime/daemon/lease.py``)."""
        if self.lease is None:
            return
        membership = self.node.machines["membership"]
        vouches = self.heartbeat.vouches() if self.heartbeat is not None else {}
        self.lease.renew(membership.state, self.node.machines["gum"].state == "Halted", int(membership.record.epoch),
                         bool(getattr(membership.record, "holds_disk", False)), vouches)

    def _lease_ended(self, state: str) -> None:
        """The node halted or left: no lease from now on (the monitors stop the resources), no watchdog."""
        why = "this node halted" if state == "Halted" else "this node left the cluster"
        if self.lease is not None:
            self.lease.end(why)
        self.watchdog.release(why)

    def _lease_ticks(self) -> None:
        """Every heartbeat period, in the loop: the lease is renewed only while the loop runs."""
        try:
            self._renew_lease()
            if self.lease is not None:
                self.watchdog.tick(self.lease.page.read().fresh())
        except Exception:
            log.exception("the lease could not be renewed; it lapses and the monitors stop the resources")
        if not self._stop.is_set():
            asyncio.get_running_loop().call_later(self.config.timing["heartbeat_period_ms"] / 1000,
                                                  self._lease_ticks)

    def _feed_membership(self, event: str, peer: int, **args: int) -> None:
        if self.node.machines["membership"].state != "Down":
            self.node.feed("membership", event, node=peer, **args)

    # -- groups and their resources ---------------------------------------------------------------
    def _bind_group(self, info: catalog.GroupInfo) -> None:
        cfg = self.node.effective_config
        intervals = {"looks_alive_ms": int(cfg["monitor.looks_alive_ms"]),
                     "is_alive_ms": int(cfg["monitor.is_alive_ms"]),
                     "pending_timeout_ms": int(cfg["timing.pending_timeout_ms"])}
        for r in info.resources:
            mine = {k: int(r.values[k]) for k in intervals if isinstance(r.values.get(k), int)}
            self.bridge.bind(resource_machine_name(info.slot, r.index), f"{info.name}/{r.name}", r.type,
                             r.properties, separate=r.separate_monitor, intervals={**intervals, **mine})

    def _relayout(self, names: set[str]) -> None:
        """Groups whose configuration or resources changed: rebuild their machines where they are at rest."""
        groups = catalog.groups(self.hive)
        for name in names:
            info = groups.get(name)
            slots = [info.slot] if info else [int(m[5:]) for m in self.node.machines if m.startswith("group")
                                                 and not any(g.slot == int(m[5:]) for g in groups.values())]
            for slot in slots:
                if not self.node.group_idle(slot):
                    log.info("group %s changed while running here; its machines are rebuilt once it is offline", name)
                    self.node.pending_layout.add(name)
                    continue
                self._rebuild(slot, info)

    def _rebuild(self, slot: int, info: catalog.GroupInfo | None) -> None:
        for machine in [m for m in self.node.machines if m.startswith(f"res{slot}.")]:
            self.bridge.unbind(machine)
        if info is None:
            for machine in [m for m in self.node.machines if m == group_machine_name(slot)
                            or m.startswith(f"res{slot}.")]:
                del self.node.machines[machine]
            return
        self.node.build_group(info)
        self._bind_group(info)

    def _relayout_all(self) -> None:
        groups = catalog.groups(self.hive)
        for slot in [int(m[5:]) for m in self.node.machines if m.startswith("group")]:
            if not any(g.slot == slot for g in groups.values()):
                self._rebuild(slot, None)
        for info in groups.values():
            self._rebuild(info.slot, info)

    def _after_offline(self, machine: str) -> None:
        slot = int(machine[5:])
        for name in list(self.node.pending_layout):
            info = catalog.groups(self.hive).get(name)
            if info is None or info.slot == slot:
                self.node.pending_layout.discard(name)
                self.node.post(functools.partial(self._relayout, {name}))

    # -- administrators' updates ------------------------------------------------------------------
    async def submit(self, ops: Update) -> int:
        """Submit one global update from this node; its sequence number once committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def start() -> None:
            if not self.in_cluster():
                future.set_exception(AdminError(
                    f"node {self.me} is not a member of the cluster ({self.node.machines['membership'].state}); "
                    "ask a member, or join this node first (`wolfpack node join`)", 503))
                return
            try:
                operations.check(self.hive, ops)
            except AdminError as exc:
                future.set_exception(exc)
                return
            payload = self.node.app.submit(ops)
            self._waiting[id(payload)] = future

        self.node.post(start)
        try:
            return await asyncio.wait_for(future, SUBMIT_TIMEOUT_S)
        except TimeoutError:
            raise AdminError(f"the update was not committed within {SUBMIT_TIMEOUT_S:g} s (a regroup may be in "
                             "progress); check `wolfpack status` and retry", 504) from None

    def _update_ended(self, outcome: str, payload: Update) -> None:
        future = self._waiting.pop(id(payload), None)
        if future is None or future.done():
            return
        if outcome == "committed":
            future.set_result(self.hive.last_seq)
        elif outcome == "aborted":
            future.set_exception(AdminError("the update was not applied: the locker node was lost before any "
                                            "other node had it, or a regroup replaced it; submit it again", 503))
        elif outcome == "interrupted":
            future.set_exception(AdminError("the update was interrupted (this node left or rejoined the cluster "
                                            "while it was in flight) and may or may not have been applied: check "
                                            "the configuration (`wolfpack status`), then submit it again if it is "
                                            "not there", 503))
        else:
            future.set_exception(AdminError("the cluster refused the update: it no longer fits the database "
                                            "(another change came first); check and retry", 409))

    def in_cluster(self) -> bool:
        return (self.node.machines["membership"].state == "Stable"
                and self.node.machines["gum"].state not in ("Halted",))

    def members(self) -> list[int]:
        return [k for k, m in enumerate(self.node.machines["failover"].record.members) if m]

    # -- life cycle ---------------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        """A new heartbeat timer (its sockets bound, its thread started); a stopped one cannot start again."""
        self._stop_heartbeat()
        cfg, timing = self.config, self.config.timing
        self.heartbeat = HeartbeatTimer(self.me, cfg.key, list(cfg.me.heartbeat),
                                        peers={e.id: list(e.heartbeat) for e in cfg.nodes if e.id != self.me},
                                        period_ms=timing["heartbeat_period_ms"],
                                        missed_threshold=timing["missed_heartbeats"],
                                        lease=self.lease.path if self.lease is not None else None)
        asyncio.get_running_loop().add_reader(self.heartbeat.fileno(), self._on_heartbeat)
        self.heartbeat.start()

    def _stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            asyncio.get_running_loop().remove_reader(self.heartbeat.fileno())
            self.heartbeat.close()
            self.heartbeat = None

    def boot(self) -> None:
        """Heartbeats start; the membership machine boots (form a cluster or join the one that runs) once this
        node hears a majority of the configured nodes (itself included: heartbeats, and a transport link), or under
        disk quorum after the detection time.  A node that hears too few would start regroup rounds it cannot
        finish, and its statuses (which say it hears nobody) would make the members' rounds fail too: under Majority
        Node Set it could not form anyway."""
        self._start_heartbeat()
        self._booting = (self._booting or 0) + 1
        self._boot_when_heard(self._booting, asyncio.get_running_loop().time())

    def _boot_when_heard(self, attempt: int, since: float) -> None:
        if attempt != self._booting or self.heartbeat is None:
            return  # a later boot or a halt superseded this one
        timing = self.config.timing
        window_ns = timing["heartbeat_period_ms"] * timing["missed_heartbeats"] * 1_000_000
        now_ns = time.monotonic_ns()
        heard = sum(1 for peer, seen in self.heartbeat.last_seen().items()
                    if any(t is not None and now_ns - t < window_ns for t in seen)
                    and self.peers is not None and peer in self.peers.connected())
        loop = asyncio.get_running_loop()
        waited = loop.time() - since
        if heard + 1 >= majority(len(self.config.nodes)) or (
                self.config["cluster.quorum"] == "disk" and waited * 1000 >= window_ns / 1e6):
            self._booting = None
            self.node.post(lambda: self.node.feed("membership", "boot"))
            return
        if waited > BOOT_NOTICE_S and not self._told_waiting:
            self._told_waiting = True
            log.warning("node %d hears %d of the other %d nodes' heartbeats; it joins once it hears a majority "
                        "(check the heartbeat networks and the other nodes)", self.me, heard,
                        len(self.config.nodes) - 1)
        loop.call_later(timing["heartbeat_period_ms"] / 1000, self._boot_when_heard, attempt, since)

    def rejoin(self) -> None:
        """After a halt or a planned leave: fresh machines with what the node keeps on disk, then boot."""
        if self.node.machines["membership"].state not in ("Down", "Halted"):
            raise AdminError(f"node {self.me} is in the cluster already", 409)
        if self._reconciling:
            raise AdminError(f"node {self.me} is checking for copies of other nodes' groups before it joins; it joins "
                             "by itself once none runs here (see `reconcile` in its /v1/local)", 409)
        for timer in list(self.node.timers):
            self.node.cancel_timer(timer)
        if self.quorum_disk is not None:
            self.quorum_disk.forget()
        self.node.build()
        for info in catalog.groups(self.hive).values():
            self._bind_group(info)
        self._spawn(self._reconcile_then_boot("rejoin"))

    async def _reconcile_then_boot(self, why: str) -> None:
        """Before it joins, the node stops the copies of groups it does not own (``runtime/daemon/reconcile.py``);
        only then does it boot: the boot is posted from here and from nowhere else."""
        assert self.reconciler is not None
        self._reconciling = True
        try:
            await self.reconciler.before_join(why)
        finally:
            self._reconciling = False
        self.node.post(self.boot)

    def _after_step(self, machine: str, record: Mapping[str, Any]) -> None:
        if self.reconciler is not None:
            self.reconciler.after_step(machine, record,
                                       lambda slot: bool(self.node.machines["failover"].record.running[slot]))

    def _reconcile_loaded(self, go: Callable[[], None], halt: Callable[[str], None]) -> None:
        """The join loaded a newer database: reconcile against its owners before the machines go on."""
        if self.reconciler is None:
            go()
            return
        self._spawn(self.reconciler.after_load(go, halt))

    def _halted(self) -> None:
        """The membership machine halted: heartbeats stop (the others see this node gone), and the cluster role
        starts again after ``node.rejoin_after_ms`` (a node left out when it started, or cut off, comes back)."""
        self._stop_heartbeat()
        self._booting = None
        if self.quorum_disk is not None:
            self.quorum_disk.owner = False  # it logs nothing more (the arbitration machine releases the disk)
        delay = int(self.config["node.rejoin_after_ms"])
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._halted_at = loop.time()
            log.info("node %d halted; it starts its cluster role again in %d ms, or when it hears a regroup",
                     self.me, delay)
            loop.call_later(delay / 1000, lambda: self.node.post(self._rejoin_if_halted))

    def _heard_regroup(self) -> None:
        """A halted node hears another node's regroup: it joins it (not before ``REJOIN_MIN_S`` after its halt,
        so that a node left out again does not spin).  Without this, nodes that started a little apart would
        each halt alone and start again, out of step, forever."""
        assert self._halted_at is not None
        gap = min(int(self.config["node.rejoin_after_ms"]) / 1000, REJOIN_MIN_S)
        if asyncio.get_running_loop().time() - self._halted_at >= gap:
            self._halted_at = None
            self.node.post(self._rejoin_if_halted)

    def _rejoin_if_halted(self) -> None:
        if self.node.machines["membership"].state == "Halted":
            self._halted_at = None
            self.rejoin()

    def leave(self) -> None:
        """Planned leave (ClusterExit, O5): the others are told, this node stops its resources at once."""
        if self.node.machines["membership"].state in ("Down",):
            raise AdminError(f"node {self.me} is not in the cluster", 409)
        self.node.feed("membership", "shutdown")
        self._stop_heartbeat()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, on_ready: Callable[[Service], None] | None = None) -> None:
        from wolfpack.runtime.daemon.admin import AdminServer

        self._open_store()
        self._build_node()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        async with AsyncExitStack() as stack:
            self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
            node_env = {"WOLFPACK_NODE_ID": str(self.me), "WOLFPACK_CLUSTER_NAME": str(self.config["cluster.name"]),
                        "WOLFPACK_INITIATOR": self.config.initiator}
            timing = self.config.timing
            self.lease = LeaseKeeper(self.config.run_dir / "lease", self.me, len(self.config.nodes),
                                     str(self.config["cluster.quorum"]), timing["lease_ms"])
            stack.callback(self.lease.close)
            stack.callback(lambda: self.watchdog.release("the daemon stops"))
            self.bridge = ResourceBridge(self.config.run_dir, self.node.post, self.node.feed, spawn=self._spawn,
                                         env=node_env, lease=self.lease.path, lease_kill_ms=timing["lease_kill_ms"])
            self.rpc = Rpc(self._send, self._rpc_handlers(), self._spawn)
            cfg = self.config
            self.peers = await stack.enter_async_context(PeerManager(
                self.me, str(cfg["cluster.name"]), cfg.key, listen=cfg.me.address,
                peers={e.id: e.address for e in cfg.nodes if e.id != self.me}, on_message=self._on_message))
            stack.callback(self._stop_heartbeat)
            if cfg["cluster.quorum"] == "disk":
                self.quorum_disk = QuorumDisk(cfg, self.node, self.quorum_log, self._relayout_all)
                stack.callback(self.quorum_disk.close)
            await self.bridge.start()
            stack.push_async_callback(self.bridge.shutdown)
            self.node.on_group_offline = self._after_offline
            self.node.on_halted = self._halted
            self.node.on_left = self._lease_ended
            self.node.on_installed = self._epoch_installed
            self.reconciler = Reconciler(self.me, self.bridge, lambda: self.hive, self._spawn)
            self.node.on_step = self._after_step
            for info in catalog.groups(self.hive).values():
                self._bind_group(info)
            admin = AdminServer(self)
            self.admin_address = await admin.start(str(cfg["admin.listen"]), cfg.admin_socket)
            stack.push_async_callback(admin.stop)
            url_file = cfg.run_dir / "admin.url"
            url_file.parent.mkdir(parents=True, exist_ok=True)
            url_file.write_text(f"http://{_host(self.admin_address[0])}:{self.admin_address[1]}\n")
            node_task = self._tasks.create_task(self.node.run())
            self._lease_ticks()
            if cfg["node.join"]:
                self._spawn(self._reconcile_then_boot("start"))
            log.info("node %d of cluster %r: transport %s, admin API http://%s:%d, data %s", self.me,
                     cfg["cluster.name"], self.peers.listen_address, *self.admin_address, cfg.data_dir)
            if on_ready is not None:
                on_ready(self)
            await self._stop.wait()
            log.info("node %d: stopping (planned leave)", self.me)
            self.node.post(self._leave_quietly)
            await self._drained()
            self.node.stop()
            node_task.cancel()
            raise _Stopped
        self.trace.close()

    def _leave_quietly(self) -> None:
        with contextlib.suppress(AdminError):
            self.leave()

    async def _drained(self) -> None:
        while not self.node.queue.empty():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the ClusterExit messages leave

    def _rpc_handlers(self) -> dict[str, Any]:
        from wolfpack.runtime.daemon.admin import rpc_handlers

        return rpc_handlers(self)

    async def on_node(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` in the node's task (where the machines are consistent); its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def run() -> None:
            try:
                future.set_result(action())
            except Exception as exc:  # AdminError, or a bug: the caller reports it
                future.set_exception(exc)

        self.node.post(run)
        return await future


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Stopped(Exception):
    """Leaves the task group when the service stops."""


async def serve(config: NodeConfig, on_ready: Callable[[Service], None] | None = None) -> None:
    service = Service(config)
    try:
        await service.run(on_ready)
    except* _Stopped:
        pass
    log.info("node %d stopped", config.node_id)

