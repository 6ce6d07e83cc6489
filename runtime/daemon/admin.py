"""The admin API: HTTP/JSON on each node (aiohttp, in the daemon's loop), and its requests to other nodes.

Every request but ``GET /v1/health`` needs ``Authorization: Bearer <token>``
(``admin.token``); without a configured token the API answers only reads of
health.  Every write is a global update (or, for what only a group's owner
can do, such as a move, a request to that node over the transport); errors
are ``{"error": "..."}`` with a status that says whose fault it is.

==========================================  ===========================================================
``GET  /v1/health``                         200 if this node is in the cluster, else 503 (load balancers)
``GET  /v1/status``                         the cluster as seen from here, groups' states from their owners
``GET  /v1/local``                          this node's own machines and monitors
``POST /v1/cluster/parameters``             ``{"values": {"timing.restart_delay_ms": 1000}}`` (cluster-wide)
``POST /v1/nodes/{id}/{action}``            join, leave, pause, resume, drain (pause and move its groups away), evict
``POST /v1/groups``                         ``{"name", "preferred", "failback", "failback_window"}``
``DELETE /v1/groups/{name}``
``POST /v1/groups/{name}/{action}``         online, offline, move ``{"node"}``, configure ``{...}``
``POST /v1/resources``                      ``{"group", "name", "type", "properties", "depends_on", "settings"}``
``DELETE /v1/resources/{name}``
``POST /v1/resources/{name}/{action}``      online (its group), offline, fail (a simulated failure)
``GET  /v1/types``                          the installed resource types and their properties
==========================================  ===========================================================
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wolfpack.errors import ConfigError, FencingError, WolfpackError
from wolfpack.runtime.daemon import catalog, operations
from wolfpack.runtime.daemon.config import check_cluster_values, parse_address
from wolfpack.runtime.daemon.operations import AdminError
from wolfpack.runtime.fencing import run_agent_async
from wolfpack.runtime.fencing.agents import masked
from wolfpack.runtime.node.app import group_machine_name, resource_machine_name
from wolfpack.runtime.resource_types.base import available_types, load_type

if TYPE_CHECKING:
    from wolfpack.runtime.daemon.service import Service

log = logging.getLogger("wolfpack.admin")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1 << 20


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, sort_keys=True))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AdminError as exc:
        return _json({"error": str(exc)}, exc.status)
    except ConfigError as exc:
        return _json({"error": str(exc)}, 400)
    except web.HTTPException:
        raise
    except WolfpackError as exc:
        return _json({"error": str(exc)}, 409)
    except Exception as exc:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return _json({"error": f"internal error ({exc}); see the daemon's log"}, 500)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdminError(f"the request body is not JSON ({exc}); send an object such as "
                         '{"name": "web"}') from None
    if not isinstance(data, dict):
        raise AdminError("the request body must be a JSON object")
    return data


class AdminServer:
    def __init__(self, service: Service) -> None:
        self.s = service
        self._runner: web.AppRunner | None = None

    async def start(self, listen: str, unix_socket: Path | None = None) -> tuple[str, int]:
        host, port = parse_address(listen, "admin.listen: ")
        app = web.Application(middlewares=[self._auth, _errors], client_max_size=MAX_BODY)
        r = app.router
        r.add_get("/v1/health", self.health)
        r.add_get("/v1/status", self.status)
        r.add_get("/v1/local", self.local)
        r.add_get("/v1/types", self.types)
        r.add_get("/v1/db", self.db_read)
        r.add_post("/v1/db", self.db_write)
        r.add_post("/v1/cluster/parameters", self.parameters)
        r.add_post("/v1/nodes/{id}/{action}", self.node_action)
        r.add_post("/v1/groups", self.group_create)
        r.add_delete("/v1/groups/{name}", self.group_delete)
        r.add_post("/v1/groups/{name}/{action}", self.group_action)
        r.add_post("/v1/resources", self.resource_create)
        r.add_delete("/v1/resources/{name}", self.resource_delete)
        r.add_post("/v1/resources/{name}/{action}", self.resource_action)
        r.add_get("/v1/fence", self.fence_list)
        r.add_post("/v1/fence", self.fence_add)
        r.add_post("/v1/fence/confirm", self.fence_confirm)
        r.add_delete("/v1/fence/{name}", self.fence_remove)
        r.add_post("/v1/fence/{name}/test", self.fence_test)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[attr-defined]
        bound = sockets[0].getsockname() if sockets else (host, port)
        if unix_socket is not None:
            unix_socket.parent.mkdir(parents=True, exist_ok=True)
            unix_socket.unlink(missing_ok=True)
            await web.UnixSite(self._runner, str(unix_socket)).start()
            unix_socket.chmod(0o600)
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/health":
            return await handler(request)
        token = self.s.config.token
        if not token:
            return _json({"error": "the admin API has no token configured (admin.token or admin.token_file); "
                                   "set one on this node to use the API"}, 403)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _json({"error": "missing or wrong token: send 'Authorization: Bearer <admin token>' "
                                   "(the CLI reads it from --token or WOLFPACK_TOKEN)"}, 401)
        return await handler(request)

    # -- reads -----------------------------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        ok = self.s.in_cluster()
        return _json({"node": self.s.me, "in_cluster": ok,
                      "membership": self.s.node.machines["membership"].state}, 200 if ok else 503)

    async def local(self, request: web.Request) -> web.Response:
        return _json(await self.s.on_node(lambda: local_status(self.s)))

    async def status(self, request: web.Request) -> web.Response:
        return _json(await cluster_status(self.s))

    async def types(self, request: web.Request) -> web.Response:
        out: dict[str, Any] = {}
        for name in available_types():
            try:
                out[name] = load_type(name).schema.describe()
            except WolfpackError as exc:
                out[name] = {"error": str(exc)}
        return _json(out)

    async def db_read(self, request: web.Request) -> web.Response:
        """A key of the cluster database: its values and subkeys (the registry-like API of D1-D3)."""
        key = request.query.get("key", "")
        return _json(await self.s.on_node(lambda: operations.read_key(self.s.hive, key)))

    # -- writes ----------------------------------------------------------------------------------
    async def db_write(self, request: web.Request) -> web.Response:
        """Set or delete values under ``Custom/`` (applications' and scripts' own data), as one global update."""
        body = await _body(request)
        ops = operations.custom_values(self.s.hive, body.get("key"), body.get("set", {}), body.get("delete", []))
        return _json({"key": body.get("key"), "seq": await self.s.submit(ops)})

    async def parameters(self, request: web.Request) -> web.Response:
        body = await _body(request)
        values = body.get("values")
        if not isinstance(values, dict) or not values:
            raise AdminError('give {"values": {"section.key": value, ...}} (see `wolfpackd --help-config`)')
        checked = check_cluster_values(self.s.config, values)
        seq = await self.s.submit(operations.set_parameters(self.s.hive, checked))
        return _json({"seq": seq, "values": checked})

    async def node_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            node = int(request.match_info["id"])
        except ValueError:
            raise AdminError(f"node id {request.match_info['id']!r} is not a number") from None
        if not 0 <= node < self.s.config.n:
            raise AdminError(f"there is no node {node} (nodes 0..{self.s.config.n - 1})", 404)
        if action in ("join", "leave"):
            if node == self.s.me:
                await self.s.on_node(self.s.rejoin if action == "join" else self.s.leave)
            else:
                await self.s.rpc.call(node, action)
            return _json({"node": node, "action": action})
        if action in ("pause", "resume"):
            paused = 1 if action == "pause" else 0

            def request_pause() -> None:
                if not self.s.in_cluster():
                    raise AdminError(f"node {self.s.me} is not in the cluster; ask a member", 503)
                self.s.node.feed("failover", "pause_requested", node=node, paused=paused)

            await self.s.on_node(request_pause)
            return _json({"node": node, "action": action})
        if action == "drain":
            if node == self.s.me:
                await self.s.on_node(lambda: request_drain(self.s))
            else:
                await self.s.rpc.call(node, "drain")
            return _json({"node": node, "action": action})
        if action == "evict":
            ops = operations.evict(self.s.hive, node, members=self.s.members(), n=self.s.config.n)
            return _json({"node": node, "action": action, "seq": await self.s.submit(ops)})
        raise AdminError(f"unknown node action {action!r}: use join, leave, pause, resume, drain or evict", 404)

    async def group_create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        ops = operations.create_group(self.s.hive, body.get("name"), n=self.s.config.n,  # type: ignore[arg-type]
                                      slots=self.s.node.slots, owner=self.s.me, preferred=body.get("preferred"),
                                      failback=body.get("failback", False),
                                      failback_window=body.get("failback_window") or (-1, -1))
        return _json({"group": body.get("name"), "seq": await self.s.submit(ops)}, 201)

    async def group_delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        seq = await self.s.submit(operations.delete_group(self.s.hive, name))
        return _json({"group": name, "seq": seq})

    async def group_action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        body = await _body(request)
        info = operations.group(self.s.hive, name)
        record = self.s.node.machines["failover"].record
        if action in ("online", "offline"):
            ops = operations.set_group_state(
                self.s.hive, name, action, members=self.s.members(),
                paused=[k for k, p in enumerate(record.paused) if p],
                owners={g: int(o) for g, o in enumerate(record.owner)}, n=self.s.config.n)
            return _json({"group": name, "state": action, "seq": await self.s.submit(ops)})
        if action == "configure":
            ops = operations.configure_group(self.s.hive, name, n=self.s.config.n, preferred=body.get("preferred"),
                                             failback=body.get("failback"),
                                             failback_window=body.get("failback_window"))
            return _json({"group": name, "seq": await self.s.submit(ops)})
        if action == "move":
            target = body.get("node")
            if isinstance(target, bool) or not isinstance(target, int):
                raise AdminError('give the target node: {"node": 2}')
            owner = int(record.owner[info.slot])
            fields = {"group": info.slot, "node": target}
            if owner == self.s.me:
                result = await self.s.on_node(lambda: request_move(self.s, info.slot, target))
            elif owner < 0:
                raise AdminError(f"group {name!r} has no owner yet; bring it online first", 409)
            else:
                result = await self.s.rpc.call(owner, "move", fields)
            return _json({"group": name, "to": target, **result})
        raise AdminError(f"unknown group action {action!r}: use online, offline, move or configure", 404)

    async def resource_create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        ops = operations.create_resource(self.s.hive, str(body.get("group")), body.get("name"),  # type: ignore[arg-type]
                                         body.get("type"), body.get("properties", {}),
                                         depends_on=body.get("depends_on", []), settings=body.get("settings"))
        return _json({"resource": body.get("name"), "seq": await self.s.submit(ops)}, 201)

    async def resource_delete(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return _json({"resource": name, "seq": await self.s.submit(operations.delete_resource(self.s.hive, name))})

    async def resource_action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        info, res = operations.find_resource(self.s.hive, name)
        if action == "online":
            record = self.s.node.machines["failover"].record
            ops = operations.set_group_state(
                self.s.hive, info.name, "online", members=self.s.members(),
                paused=[k for k, p in enumerate(record.paused) if p],
                owners={g: int(o) for g, o in enumerate(record.owner)}, n=self.s.config.n)
            return _json({"resource": name, "group": info.name, "seq": await self.s.submit(ops),
                          "note": f"a resource comes online with its group: group {info.name} is online"})
        if action == "offline":
            raise AdminError(f"a resource cannot be taken offline on its own: its group {info.name!r} keeps its "
                             f"resources online together; take the group offline (`wolfpack group offline "
                             f"{info.name}`)", 409)
        if action == "fail":
            owner = int(self.s.node.machines["failover"].record.owner[info.slot])
            fields = {"group": info.slot, "index": res.index}
            if owner == self.s.me:
                result = await self.s.on_node(lambda: request_fail(self.s, info.slot, res.index))
            elif owner < 0:
                raise AdminError(f"group {info.name!r} has no owner: it runs nowhere", 409)
            else:
                result = await self.s.rpc.call(owner, "fail", fields)
            return _json({"resource": name, **result})
        raise AdminError(f"unknown resource action {action!r}: use online, offline or fail", 404)


    # -- fencing (STONITH) -----------------------------------------------------------------------------
    async def fence_list(self, request: web.Request) -> web.Response:
        def read() -> dict[str, Any]:
            devices = [{"name": d.name, "agent": d.agent, "params": masked(d.params), "nodes": d.nodes}
                       for d in catalog.fence_devices(self.s.hive)]
            return {"fencing": self.s.node.effective_config["cluster.fencing"],
                    "action": self.s.node.effective_config["cluster.fence_action"], "devices": devices,
                    "nodes": self.s.fencer.state(),
                    "unfenced": [k for k, u in enumerate(self.s.node.machines["failover"].record.unfenced) if u]}
        return _json(await self.s.on_node(read))

    async def fence_add(self, request: web.Request) -> web.Response:
        body = await _body(request)
        device, replace = operations.fence_device(self.s.hive, body, n=self.s.config.n)
        try:  # the agent's metadata: it must be installed here, and know every parameter given
            await asyncio.to_thread(device.validate)
        except FencingError as exc:
            raise AdminError(f"{exc} (checked on node {self.s.me}; the agent must be installed on every node)") \
                from None
        seq = await self.s.submit(operations.add_fence_device(self.s.hive, device, replace))
        return _json({"device": device.name, "seq": seq, "replaced": replace}, 200 if replace else 201)

    async def fence_remove(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return _json({"device": name, "seq": await self.s.submit(operations.remove_fence_device(self.s.hive, name))})

    async def fence_test(self, request: web.Request) -> web.Response:
        """``status`` of each node the device fences (or the one given): it reaches the device and reads the power,
        and changes nothing."""
        device = operations.find_fence_device(self.s.hive, request.match_info["name"])
        body = await _body(request) if request.can_read_body else {}
        node = body.get("node")
        if node is not None and not device.covers(node):
            raise AdminError(f"fence device {device.name!r} does not fence node {node}; it fences "
                             f"{', '.join(device.nodes)}")
        timeout_s = int(self.s.node.effective_config["cluster.fence_timeout_ms"]) / 1000
        results = [await run_agent_async(device, "status", k, timeout_s=timeout_s)
                   for k in ([str(node)] if node is not None else list(device.nodes))]
        return _json({"device": device.name, "from_node": self.s.me, "ok": all(r.ok for r in results),
                      "results": [{"node": r.node, "ok": r.ok, "power": r.power, "took_ms": r.took_ms,
                                   "reason": r.reason} for r in results]})

    async def fence_confirm(self, request: web.Request) -> web.Response:
        """The administrator confirms a lost node is off (as ``stonith_admin --confirm``): its groups may move.
        Told to every member (the coordinator places the groups)."""
        body = await _body(request)
        node = body.get("node")
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < self.s.config.n:
            raise AdminError(f'give the node that is off: {{"node": N}} with N in 0..{self.s.config.n - 1}')
        members = self.s.members()
        if not self.s.in_cluster():
            raise AdminError(f"node {self.s.me} is not in the cluster; ask a member", 503)
        if node in members:
            raise AdminError(f"node {node} is a member of the cluster: it is up, there is nothing to confirm", 409)
        await self.s.on_node(lambda: self.s.fencer.confirm(node))
        others = [k for k in members if k != self.s.me]
        answers = await asyncio.gather(*(self.s.rpc.call(k, "fence_confirm", {"node": node}) for k in others),
                                       return_exceptions=True)
        missed = [f"node {k}: {a}" for k, a in zip(others, answers, strict=True) if isinstance(a, Exception)]
        return _json({"node": node, "confirmed_on": [self.s.me] + [k for k, a in zip(others, answers, strict=True)
                                                                   if not isinstance(a, Exception)],
                      "missed": missed})


# -- what only the owner of a group can do (here, or asked over the transport) ------------------------
def request_move(s: Service, slot: int, target: int) -> dict[str, Any]:
    if not s.in_cluster():
        raise AdminError(f"node {s.me} is not in the cluster", 503)
    s.node.reports.clear()
    s.node.feed("failover", "move_requested", group=slot, node=target)
    if "move_refused" in s.node.reports:
        raise AdminError(f"node {s.me} cannot move the group to node {target}: it is still moving or going offline, "
                         "or the target is not a member that may take groups (paused, or down)", 409)
    return {"from": s.me, "accepted": True}


def request_fail(s: Service, slot: int, index: int) -> dict[str, Any]:
    machine = resource_machine_name(slot, index)
    live = s.node.machines.get(machine)
    if live is None or live.state != "Online":
        raise AdminError(f"the resource is not online on node {s.me} ({live.state if live else 'no machine'}); "
                         "only an online resource can fail", 409)
    s.node.feed(machine, "is_alive_failed")
    return {"node": s.me, "failed": True}


def request_drain(s: Service) -> dict[str, Any]:
    if not s.in_cluster():
        raise AdminError(f"node {s.me} is not in the cluster; nothing to drain", 503)
    s.node.feed("failover", "drain_requested")
    return {"node": s.me, "draining": True}


def rpc_handlers(s: Service) -> dict[str, Callable[[int, Mapping[str, Any]], Awaitable[Any]]]:
    async def move(src: int, p: Mapping[str, Any]) -> Any:
        return await s.on_node(lambda: request_move(s, int(p["group"]), int(p["node"])))

    async def fail(src: int, p: Mapping[str, Any]) -> Any:
        return await s.on_node(lambda: request_fail(s, int(p["group"]), int(p["index"])))

    async def local(src: int, p: Mapping[str, Any]) -> Any:
        return await s.on_node(lambda: local_status(s))

    async def drain(src: int, p: Mapping[str, Any]) -> Any:
        return await s.on_node(lambda: request_drain(s))

    async def join(src: int, p: Mapping[str, Any]) -> Any:
        await s.on_node(s.rejoin)
        return {"node": s.me}

    async def leave(src: int, p: Mapping[str, Any]) -> Any:
        await s.on_node(s.leave)
        return {"node": s.me}

    async def fence_confirm(src: int, p: Mapping[str, Any]) -> Any:
        await s.on_node(lambda: s.fencer.confirm(int(p["node"])))
        return {"node": s.me}

    return {"move": move, "fail": fail, "local": local, "join": join, "leave": leave, "drain": drain,
            "fence_confirm": fence_confirm}


# -- status ------------------------------------------------------------------------------------------
def local_status(s: Service) -> dict[str, Any]:
    """This node's machines as they are now (run in the node task)."""
    m = s.node.machines
    membership, gum, failover = m["membership"].record, m["gum"].record, m["failover"].record
    groups = {}
    for info in catalog.groups(s.hive).values():
        live = m.get(group_machine_name(info.slot))
        groups[info.name] = {
            "machine": live.state if live else None,
            "state": _group_state(live) if live else "Offline",
            "running": bool(failover.running[info.slot]) if 0 <= info.slot < len(failover.running) else False,
            "resources": {r.name: (m[resource_machine_name(info.slot, r.index)].state
                                   if resource_machine_name(info.slot, r.index) in m else None)
                          for r in info.resources},
        }
    return {"node": s.me, "membership": {"state": m["membership"].state, "epoch": int(membership.epoch),
                                         "members": [k for k, x in enumerate(membership.members) if x]},
            "gum": {"state": m["gum"].state, "last_seq": int(gum.last_seq), "locker": int(gum.locker)},
            "groups": groups, "monitors": s.bridge.state(), "heartbeat": _heartbeat(s),
            "lease": s.lease.status() if s.lease is not None else {}, "fencing": s.fencer.state(),
            "watchdog": s.watchdog.status(),
            "reconcile": s.reconciler.status() if s.reconciler is not None else {},
            "transport": s.peers.stats.as_dict() if s.peers is not None else {}, "quorum_disk": _quorum_disk(s)}


def _quorum_disk(s: Service) -> dict[str, Any]:
    """The arbitration machine and the quorum log on the disk (empty under Majority Node Set)."""
    live, disk = s.node.machines.get("arbitration"), s.quorum_disk
    if live is None or disk is None:
        return {}
    return {"disk": str(s.config["cluster.quorum_disk"]), "arbitration": live.state, "owner": disk.owner,
            "log_last_seq": disk.log.last_seq if disk.log is not None and disk.owner else None}


def _group_state(live: Any) -> str:
    """CLUSTER_GROUP_STATE, derived from the resources by the group spec's own function."""
    derived = next((d for d in live.spec.derived if d.name == "group_state"), None)
    return derived.evaluate(live.record) if derived is not None else str(live.state)


def _heartbeat(s: Service) -> dict[str, Any]:
    if s.heartbeat is None:
        return {}
    return {"implementation": type(s.heartbeat).__name__, **s.heartbeat.stats()}


async def cluster_status(s: Service) -> dict[str, Any]:
    """The cluster from this node's view, each group's state as its owner reports it."""
    mine = await s.on_node(lambda: local_status(s))
    record = s.node.machines["failover"].record
    members = mine["membership"]["members"]
    others = [k for k in members if k != s.me]
    answers = await asyncio.gather(*(s.rpc.call(k, "local", timeout_s=1.0) for k in others), return_exceptions=True)
    views: dict[int, Any] = {s.me: mine}
    views.update({k: a for k, a in zip(others, answers, strict=True) if isinstance(a, dict)})
    evicted = catalog.evicted(s.hive)
    nodes = []
    for e in s.config.nodes:
        state = ("evicted" if e.id in evicted else "paused" if record.paused[e.id] and e.id in members
                 else "up" if e.id in members else "down")
        nodes.append({"id": e.id, "state": state, "member": e.id in members, "address": f"{e.address[0]}:"
                      f"{e.address[1]}", "answered": e.id in views})
    groups = []
    for info in sorted(catalog.groups(s.hive).values(), key=lambda g: g.name):
        owner = int(record.owner[info.slot]) if 0 <= info.slot < len(record.owner) else -1
        view = views.get(owner, {}).get("groups", {}).get(info.name) if owner in views else None
        groups.append({"name": info.name, "wanted": info.state, "owner": owner,
                       "state": view["state"] if view else ("unknown" if owner in members else "Offline"),
                       "preferred": list(info.preferred),
                       "resources": [{"name": r.name, "type": r.type,
                                      "state": (view or {}).get("resources", {}).get(r.name) or "Offline"}
                                     for r in info.resources]})
    return {"cluster": s.config["cluster.name"], "node": s.me, "quorum": s.config["cluster.quorum"],
            "membership": mine["membership"], "updates": mine["gum"], "nodes": nodes, "groups": groups,
            "parameters": catalog.parameters(s.hive)}
