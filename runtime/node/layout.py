"""The machines one node runs, built from the specs: the same for the simulator and the daemon.

Per node: membership, GUM and the failover manager; the heartbeat machine
where heartbeats are simulated (the daemon's C timer thread follows the same
rule); the arbitration machine under disk quorum; one group machine per group
and one resource machine per resource of it (``group{g}``, ``res{g}.{i}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.runtime.node.app import group_machine_name, resource_machine_name
from wolfpack.spec import defaults as d
from wolfpack.spec import dependencies
from wolfpack.spec.arbitration import make_arbitration_spec
from wolfpack.spec.failover import make_failover_spec
from wolfpack.spec.group import make_group_spec
from wolfpack.spec.gum import make_gum_spec
from wolfpack.spec.heartbeat import make_heartbeat_spec
from wolfpack.spec.membership import make_membership_spec
from wolfpack.spec.quorum import QuorumKind
from wolfpack.spec.resource import SPEC as RESOURCE_SPEC

#: quorum kinds: Majority Node Set, or the shared quorum disk
QUORUMS = ("mns", "disk")

#: the fields of each machine that a node keeps on its local disk across a restart
DURABLE: Mapping[str, tuple[str, ...]] = {
    "membership": ("epoch", "round", "acked"),
    "gum": ("last_seq", "locker"),
    "failover": ("owner",),
}


@dataclass(frozen=True)
class GroupConfig:
    name: str
    resources: Sequence[str]
    depends_on: Mapping[str, Sequence[str]] = field(default_factory=dict)
    preferred: Sequence[int] = ()
    failback: bool = False
    failback_window: tuple[int, int] = (-1, -1)  # FailbackWindowStart, FailbackWindowEnd hours (-1: any)
    #: per resource name: values of its resource machine's record (restart_threshold, ...)
    resource_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def takeover_wait_ms(quorum: str) -> int:
    """How long survivors wait before they take over the groups of nodes left out (decisions 3 and 7)."""
    return d.DISK_TAKEOVER_WAIT_MS if quorum == "disk" else d.TAKEOVER_WAIT_MS


def protocol_machines(me: int, n: int, slots: int, quorum: str, *, heartbeat: bool = True,
                      failover: Mapping[str, Any] | None = None) -> dict[str, LiveMachine]:
    """Membership, GUM, the failover manager (with ``slots`` groups), and the heartbeat and arbitration
    machines where they apply; ``failover`` gives values of the failover manager's record."""
    if quorum not in QUORUMS:
        raise ValueError(f"quorum must be one of {', '.join(QUORUMS)}, got {quorum!r}")
    disk = quorum == "disk"
    membership = {"kind": QuorumKind.DISK, "max_rounds": -(-d.DISK_REGROUP_WINDOW_MS // d.REGROUP_STAGE_MS)
                  } if disk else {}
    machines: dict[str, LiveMachine] = {}
    if heartbeat:
        machines["heartbeat"] = LiveMachine(make_heartbeat_spec(n), me=me)
    machines["membership"] = LiveMachine(make_membership_spec(n), me=me, **membership)
    machines["gum"] = LiveMachine(make_gum_spec(n), me=me)
    machines["failover"] = LiveMachine(make_failover_spec(n, slots), me=me,
                                       **{"takeover_wait_ms": takeover_wait_ms(quorum), **(failover or {})})
    if disk:
        machines["arbitration"] = LiveMachine(make_arbitration_spec(n), me=me)
    return machines


def failover_values(n: int, groups: Sequence[GroupConfig]) -> dict[str, Any]:
    """The failover manager's per-group values (preferred owners, failback policy) for ``groups``."""
    preferred: list[int] = []
    for g in groups:
        row = list(g.preferred)[:n]
        preferred += row + [-1] * (n - len(row))
    return {"preferred": tuple(preferred),
            "failback": tuple(g.failback for g in groups),
            "failback_start": tuple(g.failback_window[0] for g in groups),
            "failback_end": tuple(g.failback_window[1] for g in groups)}


def group_machines(gi: int, group: GroupConfig, n: int, **resource_values: Any) -> dict[str, LiveMachine]:
    """The group machine of group ``gi`` and one resource machine per resource of it."""
    machines = {group_machine_name(gi): LiveMachine(
        make_group_spec(len(group.resources)), dep=dependencies.matrix(group.resources, group.depends_on),
        nodes=n, failover_threshold=max(n - 1, 0))}
    for ri, name in enumerate(group.resources):
        values = {**resource_values, **group.resource_values.get(name, {})}
        machines[resource_machine_name(gi, ri)] = LiveMachine(RESOURCE_SPEC, **values)
    return machines


def node_machines(me: int, n: int, groups: Sequence[GroupConfig], quorum: str, *, heartbeat: bool = True,
                  **resource_values: Any) -> dict[str, LiveMachine]:
    """Every machine of node ``me`` for a fixed list of groups (the simulator's world)."""
    machines = protocol_machines(me, n, len(groups), quorum, heartbeat=heartbeat,
                                 failover=failover_values(n, groups))
    for gi, g in enumerate(groups):
        machines.update(group_machines(gi, g, n, **resource_values))
    return machines
