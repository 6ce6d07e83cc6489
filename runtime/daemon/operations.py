"""Administrator operations as global updates: checked against the node's hive, then written as hive ops.

Each function takes the hive (and what it needs of the node's view) and
returns the operations of one global update, or raises :class:`AdminError`
with what is wrong and what to do.  Nothing here submits anything: the
service does, through GUM, so every write reaches every node in one order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from wolfpack.errors import ResourceTypeError, WolfpackError
from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.daemon.reconcile import policy_problem
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.updates import InvalidOperation, check_key
from wolfpack.runtime.fencing import FenceDevice
from wolfpack.runtime.fencing.errors import FenceConfigError
from wolfpack.runtime.resource_types.base import load_type
from wolfpack.spec import dependencies
from wolfpack.spec.placement import ClusterView, GroupPlacement, place

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")
Ops = list[dict[str, Any]]

#: resource settings an administrator may give (besides type, properties, dependencies)
RESOURCE_SETTINGS = {"separate_monitor": bool, "looks_alive_ms": int, "is_alive_ms": int, "pending_timeout_ms": int,
                     "restart_threshold": int, "restart_period_ms": int, "restart_delay_ms": int,
                     "retry_period_ms": int, "multiple_active": str}
#: settings with a fixed set of values: what is wrong with a value, or None
SETTING_CHECKS = {"multiple_active": policy_problem}


class AdminError(WolfpackError):
    """An administrator's request that cannot be carried out; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise AdminError(f"{kind} name {name!r} is not valid: use 1-63 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit")
    return name


def _set(key: str, values: Mapping[str, Any]) -> Ops:
    return [{"op": "set_value", "key": key, "name": k, "value": v} for k, v in values.items()]


def group(hive: Hive, name: str) -> catalog.GroupInfo:
    found = catalog.groups(hive).get(name)
    if found is None:
        known = ", ".join(sorted(catalog.groups(hive))) or "none yet"
        raise AdminError(f"there is no group {name!r} (groups: {known}); create it with "
                         f"`wolfpack group create {name}`", 404)
    return found


def _preferred(value: object, n: int) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise AdminError(f"preferred owners must be a list of node ids, got {value!r}")
    bad = [v for v in value if not 0 <= v < n]
    if bad or len(set(value)) != len(value):
        raise AdminError(f"preferred owners {value} must be distinct node ids in 0..{n - 1}")
    return list(value)


def _hour(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 23:
        raise AdminError(f"{what} must be an hour 0-23 (or -1: any hour), got {value!r}")
    return value


def create_group(hive: Hive, name: str, *, n: int, slots: int, owner: int, preferred: object = None,
                 failback: object = False, failback_window: Sequence[object] = (-1, -1)) -> Ops:
    """A new group, offline, owned by ``owner`` (MSCS creates a group on the node that runs the command)."""
    check_name("group", name)
    if name in catalog.groups(hive):
        raise AdminError(f"group {name!r} exists already; choose another name, or delete it first", 409)
    slot = catalog.free_slot(hive, slots)
    if slot is None:
        raise AdminError(f"all {slots} group slots are used; delete a group, or raise cluster.max_groups on every "
                         "node (a restart of every node)", 409)
    pref = _preferred(preferred, n)
    if not isinstance(failback, bool):
        raise AdminError(f"failback must be true or false, got {failback!r}")
    start, end = (_hour(failback_window[0], "failback window start"), _hour(failback_window[1], "failback window end"))
    values = {"slot": slot, "state": "offline", "preferred": pref, "failback": failback, "failback_start": start,
              "failback_end": end}
    return ([{"op": "create_key", "key": catalog.group_key(name)}] + _set(catalog.group_key(name), values)
            + catalog.encode([{"group": slot, "node": owner}]))


def delete_group(hive: Hive, name: str) -> Ops:
    info = group(hive, name)
    if info.state == "online":
        raise AdminError(f"group {name!r} is online; take it offline first (`wolfpack group offline {name}`)", 409)
    return [{"op": "delete_key", "key": catalog.group_key(name)}] + catalog.encode([{"group": info.slot, "node": -1}])


def set_group_state(hive: Hive, name: str, state: str, *, members: Sequence[int], paused: Sequence[int],
                    owners: Mapping[int, int], n: int) -> Ops:
    """Online or offline (the group's PersistentState); online on a usable owner (a placement if it has none)."""
    info = group(hive, name)
    if state == "online" and not info.resources:
        raise AdminError(f"group {name!r} has no resources; add one first (`wolfpack resource create {name} ...`)",
                         409)
    ops = _set(catalog.group_key(name), {"state": state})
    owner = owners.get(info.slot, -1)
    if state == "online" and (owner not in members or owner in paused):
        view = ClusterView(up=frozenset(members), paused=frozenset(paused),
                           load={k: sum(1 for o in owners.values() if o == k) for k in members})
        chosen = place(GroupPlacement(name, preferred=list(info.preferred)), view)
        if chosen is None:
            raise AdminError(f"no node may run group {name!r} now (its preferred owners are down or paused); "
                             "resume or start one of them", 409)
        ops += catalog.encode([{"group": info.slot, "node": chosen}])
    return ops


def configure_group(hive: Hive, name: str, *, n: int, preferred: object = None, failback: object = None,
                    failback_window: Sequence[object] | None = None) -> Ops:
    info = group(hive, name)
    values: dict[str, Any] = {}
    if preferred is not None:
        values["preferred"] = _preferred(preferred, n)
    if failback is not None:
        if not isinstance(failback, bool):
            raise AdminError(f"failback must be true or false, got {failback!r}")
        values["failback"] = failback
    if failback_window is not None:
        values["failback_start"] = _hour(failback_window[0], "failback window start")
        values["failback_end"] = _hour(failback_window[1], "failback window end")
    if not values:
        raise AdminError("nothing to change: give preferred owners, failback or a failback window")
    return _set(catalog.group_key(info.name), values)


def create_resource(hive: Hive, group_name: str, name: str, type_name: object, properties: object, *,
                    depends_on: object = (), settings: Mapping[str, Any] | None = None) -> Ops:
    info = group(hive, group_name)
    check_name("resource", name)
    if info.state == "online":
        raise AdminError(f"group {group_name!r} is online; take it offline to add a resource "
                         f"(`wolfpack group offline {group_name}`), then bring it online again", 409)
    if any(r.name == name for g in catalog.groups(hive).values() for r in g.resources):
        raise AdminError(f"a resource {name!r} exists already; resource names are unique in the cluster", 409)
    if not isinstance(type_name, str):
        raise AdminError("the resource type is missing: give --type (see `wolfpack resource types`)")
    if not isinstance(properties, dict):
        raise AdminError(f"resource properties must be an object of NAME: VALUE, got {properties!r}")
    try:
        kind = load_type(type_name)
        checked = kind.schema.validate(properties, type_name=type_name, resource=name)
    except ResourceTypeError as exc:
        raise AdminError(str(exc)) from None
    deps = list(depends_on) if isinstance(depends_on, list | tuple) else None
    if deps is None or not all(isinstance(d, str) for d in deps):
        raise AdminError(f"depends_on must be a list of resource names, got {depends_on!r}")
    names = [r.name for r in info.resources] + [name]
    graph = {r.name: list(r.depends_on) for r in info.resources}
    graph[name] = deps
    try:
        dependencies.matrix(names, graph)
    except WolfpackError as exc:
        raise AdminError(str(exc)) from None
    extra = dict(settings or {})
    for key, value in extra.items():
        want = RESOURCE_SETTINGS.get(key)
        if want is None:
            raise AdminError(f"unknown resource setting {key!r} (known: {', '.join(RESOURCE_SETTINGS)})")
        if key in SETTING_CHECKS:
            problem = SETTING_CHECKS[key](value)
            if problem:
                raise AdminError(f"resource setting {problem}")
            continue
        if not isinstance(value, want) or (isinstance(value, int) and (isinstance(value, bool) != (want is bool)
                                                                       or value < 0)):
            raise AdminError(f"resource setting {key} must be a {want.__name__} (>= 0), got {value!r}")
    index = max((r.index for r in info.resources), default=-1) + 1
    key = catalog.resource_key(group_name, name)
    values = {"index": index, "type": type_name, "properties": checked, "depends_on": deps, **extra}
    return [{"op": "create_key", "key": key}] + _set(key, values)


def find_resource(hive: Hive, name: str) -> tuple[catalog.GroupInfo, catalog.ResourceInfo]:
    for info in catalog.groups(hive).values():
        for r in info.resources:
            if r.name == name:
                return info, r
    raise AdminError(f"there is no resource {name!r}; `wolfpack resource list` shows them", 404)


def delete_resource(hive: Hive, name: str) -> Ops:
    info, _ = find_resource(hive, name)
    if info.state == "online":
        raise AdminError(f"group {info.name!r} is online; take it offline to delete a resource "
                         f"(`wolfpack group offline {info.name}`)", 409)
    dependents = [r.name for r in info.resources if name in r.depends_on]
    if dependents:
        raise AdminError(f"resources {', '.join(dependents)} depend on {name!r}; delete them first", 409)
    return [{"op": "delete_key", "key": catalog.resource_key(info.name, name)}]


def set_parameters(hive: Hive, values: Mapping[str, Any]) -> Ops:
    return [{"op": "create_key", "key": catalog.PARAMETERS}] + _set(catalog.PARAMETERS, values)


def fence_device(hive: Hive, body: Mapping[str, Any], *, n: int) -> tuple[FenceDevice, bool]:
    """The fence device an administrator gives (``{name, agent, params, nodes, replace}``), checked in form (the
    agent's own metadata is checked by the caller, which may block); whether it replaces one of that name."""
    name = check_name("fence device", body.get("name"))
    nodes = body.get("nodes")
    if isinstance(nodes, list):
        nodes = {str(k): None for k in nodes}
    if not isinstance(nodes, dict) or not nodes:
        raise AdminError(f"fence device {name!r}: give the nodes it fences, each with its plug if the agent needs "
                         'one: {"nodes": {"1": "outlet-1"}} or {"nodes": [1]} (the CLI: --node 1[=PLUG])')
    bad = [k for k in nodes if not (str(k).isdigit() and 0 <= int(k) < n)]
    if bad:
        raise AdminError(f"fence device {name!r}: nodes {', '.join(map(str, bad))} are not node ids in 0..{n - 1}")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise AdminError(f"fence device {name!r}: params must be an object of agent parameters, e.g. "
                         '{"ip": "10.0.0.21", "username": "admin"}')
    try:
        device = FenceDevice.from_config({"name": name, "agent": body.get("agent") or "", "params": params,
                                          "nodes": nodes})
    except FenceConfigError as exc:
        raise AdminError(str(exc)) from None
    exists = hive.exists(catalog.fence_device_key(name))
    if exists and not body.get("replace"):
        raise AdminError(f"fence device {name!r} exists; remove it first (`wolfpack fence remove {name}`) or "
                         "replace it (--replace)", 409)
    return device, exists


def add_fence_device(hive: Hive, device: FenceDevice, replace: bool) -> Ops:
    key = catalog.fence_device_key(device.name)
    if replace:
        index = _int_value(hive.values(key).get("index"))
    else:
        indices = [_int_value(hive.values(catalog.fence_device_key(d)).get("index"))
                   for d in (hive.subkeys(catalog.FENCE_DEVICES) if hive.exists(catalog.FENCE_DEVICES) else [])]
        index = max(indices, default=-1) + 1
    ops: Ops = [{"op": "create_key", "key": catalog.FENCE_DEVICES}, {"op": "create_key", "key": key}]
    return ops + _set(key, {"index": index, "agent": device.agent, "params": device.params, "nodes": device.nodes})


def _int_value(value: object) -> int:
    return int(value) if isinstance(value, int) else 0


def find_fence_device(hive: Hive, name: str) -> FenceDevice:
    found = next((d for d in catalog.fence_devices(hive) if d.name == name), None)
    if found is None:
        known = ", ".join(d.name for d in catalog.fence_devices(hive)) or "none yet"
        raise AdminError(f"there is no fence device {name!r} (devices: {known}); add one with `wolfpack fence add`",
                         404)
    return found


def remove_fence_device(hive: Hive, name: str) -> Ops:
    if not hive.exists(catalog.fence_device_key(name)):
        find_fence_device(hive, name)  # the error that lists the devices
    return [{"op": "delete_key", "key": catalog.fence_device_key(name)}]


def evict(hive: Hive, node: int, *, members: Sequence[int], n: int) -> Ops:
    if not 0 <= node < n:
        raise AdminError(f"there is no node {node} (nodes 0..{n - 1})", 404)
    if node in members:
        raise AdminError(f"node {node} is a member of the cluster; stop it first (`wolfpack node leave {node}`), "
                         "then evict it", 409)
    return [{"op": "create_key", "key": catalog.EVICTED},
            {"op": "set_value", "key": catalog.EVICTED, "name": str(node), "value": True}]


def check(hive: Hive, ops: Ops) -> None:
    """The update fits the hive as it is now (it is checked again where it is applied)."""
    try:
        hive.check(ops)
    except InvalidOperation as exc:
        raise AdminError(f"the change does not fit the cluster database: {exc}") from None


#: where clients and scripts keep their own data in the cluster database (the cluster's own keys are written only
#: by the operations above)
CUSTOM = "Custom"


def read_key(hive: Hive, key: str) -> dict[str, Any]:
    try:
        check_key(key, root_ok=True)
    except InvalidOperation as exc:
        raise AdminError(str(exc)) from None
    if key and not hive.exists(key):
        raise AdminError(f"the cluster database has no key {key!r}; `wolfpack db get` lists the root's subkeys", 404)
    return {"key": key, "values": hive.values(key) if key else {}, "subkeys": hive.subkeys(key)}


def custom_values(hive: Hive, key: object, values: object, deleted: object) -> Ops:
    if not isinstance(key, str) or not (key == CUSTOM or key.startswith(CUSTOM + "/")):
        raise AdminError(f"clients write only under {CUSTOM}/ (e.g. {CUSTOM}/myapp); the cluster's own keys change "
                         "through the group, resource, node and cluster commands")
    if not isinstance(values, dict) or not isinstance(deleted, list) or not (values or deleted):
        raise AdminError('give {"key": "Custom/...", "set": {"name": value}, "delete": ["name"]}')
    ops: Ops = [{"op": "create_key", "key": key}] + _set(key, values)
    ops += [{"op": "delete_value", "key": key, "name": name} for name in deleted]
    check(hive, ops)
    return ops
