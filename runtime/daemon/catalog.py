"""The cluster's objects in the hive: where groups, resources, owners and settings live, and what an update
of them means to the failover manager.

Layout (keys and their values)::

    Cluster                      name
    Cluster/Owners               "<slot>": node id of each group's owner
    Cluster/Paused               "<node>": 1 paused, 0 resumed
    Cluster/Evicted              "<node>": true
    Cluster/Parameters           "<section.key>": a cluster-wide setting (``wolfpack cluster set``)
    Cluster/FenceDevices/<name>  index (the order devices are tried in), agent, params {...}, nodes
                                 {"<node>": plug or null} (``wolfpack fence add``)
    Groups/<name>                slot, state ("online" | "offline"), preferred [ids], failback (bool),
                                 failback_start, failback_end (hours, -1: any)
    Groups/<name>/Resources/<r>  index, type, properties {...}, depends_on [names], separate_monitor,
                                 looks_alive_ms, is_alive_ms, pending_timeout_ms, restart_threshold, ...

A group has a *slot*, its index in the failover manager's tables (the
machines ``group<slot>`` and ``res<slot>.<index>``); a resource has an index
in its group.  The failover manager's own changes (``{"group", "node"}``,
``{"pause", "paused"}``) are written as values of ``Cluster/Owners`` and
``Cluster/Paused``, so every update is a list of hive operations and the
quorum log holds exactly what was applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.db.updates import Op
from wolfpack.runtime.fencing import FenceDevice
from wolfpack.runtime.fencing.errors import FenceConfigError
from wolfpack.runtime.node.app import FailoverEvent, Update
from wolfpack.runtime.node.layout import GroupConfig
from wolfpack.spec.failover import NO_GROUP, WANTED_OFFLINE, WANTED_ONLINE

CLUSTER = "Cluster"
OWNERS = "Cluster/Owners"
PAUSED = "Cluster/Paused"
EVICTED = "Cluster/Evicted"
PARAMETERS = "Cluster/Parameters"
FENCE_DEVICES = "Cluster/FenceDevices"
#: the cluster-wide setting that makes survivors fence a lost owner first (the failover manager's ``fencing``)
FENCING = "cluster.fencing"
GROUPS = "Groups"
log = logging.getLogger("wolfpack.catalog")
STATES = {"online": WANTED_ONLINE, "offline": WANTED_OFFLINE}

#: resource values that become the resource machine's record (RestartAction ... RetryPeriodOnFailure)
RESOURCE_MACHINE_VALUES = ("restart_action", "restart_threshold", "restart_period_ms", "restart_delay_ms",
                           "retry_period_ms", "pending_timeout_ms")


def group_key(name: str) -> str:
    return f"{GROUPS}/{name}"


def resource_key(group: str, resource: str) -> str:
    return f"{GROUPS}/{group}/Resources/{resource}"


@dataclass(frozen=True)
class ResourceInfo:
    name: str
    index: int
    type: str
    properties: Mapping[str, Any]
    depends_on: tuple[str, ...]
    separate_monitor: bool
    values: Mapping[str, Any]  # every value of its key


@dataclass(frozen=True)
class GroupInfo:
    name: str
    slot: int
    state: str
    preferred: tuple[int, ...]
    failback: bool
    failback_start: int
    failback_end: int
    resources: tuple[ResourceInfo, ...] = field(default_factory=tuple)

    def config(self) -> GroupConfig:
        """The layout the node's machines are built from."""
        return GroupConfig(
            self.name, [r.name for r in self.resources],
            {r.name: list(r.depends_on) for r in self.resources if r.depends_on},
            preferred=self.preferred, failback=self.failback,
            failback_window=(self.failback_start, self.failback_end),
            resource_values={r.name: {k: r.values[k] for k in RESOURCE_MACHINE_VALUES if k in r.values}
                             for r in self.resources})


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | float | str) else default


def _int_list(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, list) else ()


def groups(hive: Hive) -> dict[str, GroupInfo]:
    """Every group in the hive, by name."""
    out = {}
    for name in hive.subkeys(GROUPS) if hive.exists(GROUPS) else []:
        values = hive.values(group_key(name))
        resources = []
        rkey = f"{group_key(name)}/Resources"
        for rname in hive.subkeys(rkey) if hive.exists(rkey) else []:
            rv = hive.values(resource_key(name, rname))
            resources.append(ResourceInfo(rname, _int(rv.get("index"), 0), str(rv.get("type", "")),
                                          dict(rv.get("properties") or {}),  # type: ignore[arg-type]
                                          tuple(str(d) for d in rv.get("depends_on") or []),  # type: ignore[union-attr]
                                          bool(rv.get("separate_monitor", False)), dict(rv)))
        out[name] = GroupInfo(name, _int(values.get("slot"), -1), str(values.get("state", "offline")),
                              _int_list(values.get("preferred")), bool(values.get("failback", False)),
                              _int(values.get("failback_start"), -1), _int(values.get("failback_end"), -1),
                              tuple(sorted(resources, key=lambda r: r.index)))
    return out


def by_slot(hive: Hive) -> dict[int, GroupInfo]:
    return {g.slot: g for g in groups(hive).values()}


def owners(hive: Hive) -> dict[int, int]:
    return {int(k): int(v) for k, v in hive.values(OWNERS).items()} if hive.exists(OWNERS) else {}  # type: ignore[arg-type]


def paused(hive: Hive) -> dict[int, int]:
    return {int(k): int(v) for k, v in hive.values(PAUSED).items()} if hive.exists(PAUSED) else {}  # type: ignore[arg-type]


def evicted(hive: Hive) -> set[int]:
    return {int(k) for k, v in hive.values(EVICTED).items() if v} if hive.exists(EVICTED) else set()


def parameters(hive: Hive) -> dict[str, Any]:
    return dict(hive.values(PARAMETERS)) if hive.exists(PARAMETERS) else {}


def fence_device_key(name: str) -> str:
    return f"{FENCE_DEVICES}/{name}"


def fence_devices(hive: Hive) -> list[FenceDevice]:
    """The cluster's fence devices, in the order they are tried (each checked as it is read: a bad one is left out
    with an error in the log, the others still fence)."""
    if not hive.exists(FENCE_DEVICES):
        return []
    found: list[tuple[int, FenceDevice]] = []
    for name in hive.subkeys(FENCE_DEVICES):
        values = hive.values(fence_device_key(name))
        try:
            device = FenceDevice.from_config({"name": name, "agent": values.get("agent", ""),
                                              "params": values.get("params") or {}, "nodes": values.get("nodes") or {}})
        except FenceConfigError as exc:
            log.error("fence device %s in the cluster database is unusable (%s): fix it with `wolfpack fence add` "
                      "or remove it", name, exc)
            continue
        found.append((_int(values.get("index"), 0), device))
    return [d for _, d in sorted(found, key=lambda pair: (pair[0], pair[1].name))]


def fencing_event(required: bool) -> FailoverEvent:
    return ("fencing_configured", {"required": int(required)})


def fencing_required(value: Any) -> bool:
    return bool(value == "required")


def free_slot(hive: Hive, slots: int) -> int | None:
    used = {g.slot for g in groups(hive).values()}
    return next((s for s in range(slots) if s not in used), None)


# -- the failover manager's changes as hive operations -------------------------------------------
def encode(changes: Update) -> Update:
    """An update of the failover manager (owners, paused nodes) or of the administrator (hive operations)."""
    ops: list[dict[str, Any]] = []
    for change in changes:
        if "op" in change:
            ops.append(dict(change))
        elif "pause" in change:
            ops += [{"op": "create_key", "key": PAUSED},
                    {"op": "set_value", "key": PAUSED, "name": str(int(change["pause"])),
                     "value": int(change["paused"])}]
        elif "group" in change and "node" in change:
            ops += [{"op": "create_key", "key": OWNERS},
                    {"op": "set_value", "key": OWNERS, "name": str(int(change["group"])),
                     "value": int(change["node"])}]
        else:
            raise ValueError(f"not an update of the cluster database: {change!r}")
    return ops


def _group_of(key: str) -> str | None:
    """The group a key of a group's own values belongs to (``Groups/<name>``), else None."""
    parts = key.split("/")
    return parts[1] if len(parts) == 2 and parts[0] == GROUPS else None


def _layout_touched(op: Op) -> str | None:
    """The group whose machines an operation changes: its resources, or the group itself created or deleted
    (its own values, such as its state or preferred owners, reach the failover manager as events)."""
    parts = str(op.get("key", "")).split("/")
    if len(parts) < 2 or parts[0] != GROUPS:
        return None
    if len(parts) == 2 and op.get("op") not in ("create_key", "delete_key"):
        return None
    return parts[1]


def touched_groups(ops: Iterable[Op]) -> set[str]:
    """Groups whose machines (their resources) the operations change."""
    return {g for op in ops if (g := _layout_touched(op)) is not None}


def configured_event(info: GroupInfo | None, slot: int, n: int) -> FailoverEvent:
    """The failover manager's ``group_configured`` for a group (None: the slot is free)."""
    if info is None:
        return ("group_configured", {"group": slot, "wanted": NO_GROUP, "failback": 0, "failback_start": -1,
                                     "failback_end": -1, **{f"p{k}": -1 for k in range(n)}})
    preferred = [p for p in info.preferred if 0 <= p < n][:n]
    preferred += [-1] * (n - len(preferred))
    return ("group_configured", {"group": slot, "wanted": STATES.get(info.state, WANTED_OFFLINE),
                                 "failback": int(info.failback), "failback_start": info.failback_start,
                                 "failback_end": info.failback_end,
                                 **{f"p{k}": p for k, p in enumerate(preferred)}})


def events_of(before: Mapping[int, GroupInfo], hive: Hive, ops: Sequence[Op], n: int) -> list[FailoverEvent]:
    """The failover-manager events of an update just applied to ``hive`` (``before``: its groups by slot)."""
    events: list[FailoverEvent] = []
    after = by_slot(hive)
    configured: list[int] = []
    for op in ops:
        key = str(op.get("key", ""))
        if key == OWNERS and op["op"] == "set_value":
            events.append(("owner_applied", {"group": int(op["name"]), "node": int(op["value"])}))
        elif key == PAUSED and op["op"] == "set_value":
            events.append(("paused_applied", {"node": int(op["name"]), "paused": int(op["value"])}))
        elif key == PARAMETERS and op["op"] == "set_value" and op.get("name") == FENCING:
            events.append(fencing_event(fencing_required(op["value"])))
        elif (name := _group_of(key)) is not None:
            for slot in [s for s, g in {**before, **after}.items() if g.name == name]:
                if slot not in configured:
                    configured.append(slot)
    events += [configured_event(after.get(slot), slot, n) for slot in configured]
    return events


def state_events(hive: Hive, n: int) -> list[FailoverEvent]:
    """The failover-manager events that give a fresh machine the hive's content (start-up, a loaded database)."""
    events = [configured_event(g, g.slot, n) for g in sorted(by_slot(hive).values(), key=lambda g: g.slot)]
    events += [("owner_applied", {"group": s, "node": k}) for s, k in sorted(owners(hive).items())]
    events += [("paused_applied", {"node": k, "paused": p}) for k, p in sorted(paused(hive).items()) if 0 <= k < n]
    if FENCING in parameters(hive):
        events.append(fencing_event(fencing_required(parameters(hive)[FENCING])))
    return events
