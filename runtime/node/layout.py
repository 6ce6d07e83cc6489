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
from wolfpack.spec.core import Spec
from wolfpack.spec.failover import make_failover_spec
from wolfpack.spec.group import make_group_spec
from wolfpack.spec.gum import make_gum_spec
from wolfpack.spec.heartbeat import make_heartbeat_spec
from wolfpack.spec.membership import make_membership_spec
from wolfpack.spec.pr_arbitration import make_pr_arbitration_spec
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


#: the timing keys of ``wolfpack verify --config`` (``proofs/timing.py``) that the machines' records take
TIMING_DEFAULTS: Mapping[str, int] = {
    "heartbeat_period_ms": d.HEARTBEAT_PERIOD_MS, "missed_heartbeats": d.HEARTBEAT_MISSED_THRESHOLD,
    "regroup_stage_ms": d.REGROUP_STAGE_MS, "regroup_max_rounds": d.REGROUP_MAX_ROUNDS,
    "takeover_wait_ms": d.TAKEOVER_WAIT_MS, "disk_regroup_window_ms": d.DISK_REGROUP_WINDOW_MS,
    "disk_takeover_wait_ms": d.DISK_TAKEOVER_WAIT_MS, "pending_timeout_ms": d.PENDING_TIMEOUT_MS,
    "restart_delay_ms": d.RESTART_DELAY_MS, "restart_threshold": d.RESTART_THRESHOLD,
    "restart_period_ms": d.RESTART_PERIOD_MS, "renew_period_ms": d.RENEW_PERIOD_MS,
    "challenge_wait_ms": d.CHALLENGE_WAIT_MS, "reserve_timeout_ms": d.RESERVE_TIMEOUT_MS,
}

#: how nodes arbitrate for the quorum disk: MSCS's SCSI-2 challenge/defense, or SCSI-3 persistent reservations
ARBITRATIONS = ("scsi2", "scsi3")


def takeover_wait_ms(quorum: str, timing: Mapping[str, int] = TIMING_DEFAULTS) -> int:
    """How long survivors wait before they take over the groups of nodes left out (decisions 3 and 7)."""
    return timing["disk_takeover_wait_ms"] if quorum == "disk" else timing["takeover_wait_ms"]


def membership_values(quorum: str, timing: Mapping[str, int] = TIMING_DEFAULTS) -> dict[str, Any]:
    stage = timing["regroup_stage_ms"]
    if quorum == "disk":  # rounds that outlast a challenge for the disk
        return {"kind": QuorumKind.DISK, "stage_ms": stage, "max_rounds": -(-timing["disk_regroup_window_ms"] // stage)}
    return {"stage_ms": stage, "max_rounds": timing["regroup_max_rounds"]}


def protocol_machines(me: int, n: int, slots: int, quorum: str, *, heartbeat: bool = True,
                      failover: Mapping[str, Any] | None = None,
                      timing: Mapping[str, int] = TIMING_DEFAULTS,
                      arbitration: str = "scsi2") -> dict[str, LiveMachine]:
    """Membership, GUM, the failover manager (with ``slots`` groups), and the heartbeat and arbitration
    machines where they apply; ``failover`` gives values of the failover manager's record."""
    if quorum not in QUORUMS:
        raise ValueError(f"quorum must be one of {', '.join(QUORUMS)}, got {quorum!r}")
    if arbitration not in ARBITRATIONS:
        raise ValueError(f"arbitration must be one of {', '.join(ARBITRATIONS)}, got {arbitration!r}")
    machines: dict[str, LiveMachine] = {}
    if heartbeat:
        machines["heartbeat"] = LiveMachine(make_heartbeat_spec(n), me=me, period_ms=timing["heartbeat_period_ms"],
                                            threshold=timing["missed_heartbeats"])
    machines["membership"] = LiveMachine(make_membership_spec(n), me=me, **membership_values(quorum, timing))
    machines["gum"] = LiveMachine(make_gum_spec(n), me=me)
    machines["failover"] = LiveMachine(make_failover_spec(n, slots), me=me,
                                       **{"takeover_wait_ms": takeover_wait_ms(quorum, timing), **(failover or {})})
    if quorum == "disk":
        make = make_pr_arbitration_spec if arbitration == "scsi3" else make_arbitration_spec
        machines["arbitration"] = LiveMachine(make(n), me=me, renew_period_ms=timing["renew_period_ms"],
                                              challenge_wait_ms=timing["challenge_wait_ms"],
                                              reserve_timeout_ms=timing["reserve_timeout_ms"])
    return machines


def resource_defaults(timing: Mapping[str, int] = TIMING_DEFAULTS) -> dict[str, Any]:
    """The resource machine's values that come from the cluster's timing settings."""
    return {k: timing[k] for k in ("pending_timeout_ms", "restart_delay_ms", "restart_threshold",
                                   "restart_period_ms")}


def spec_for(machine: str, n: int, slots: int, resources: int = 0) -> Spec:
    """The spec of a node's machine by its name (``group<g>`` needs its number of resources)."""
    if machine.startswith("group"):
        return make_group_spec(resources)
    if machine.startswith("res"):
        return RESOURCE_SPEC
    factories = {"heartbeat": lambda: make_heartbeat_spec(n), "membership": lambda: make_membership_spec(n),
                 "gum": lambda: make_gum_spec(n), "failover": lambda: make_failover_spec(n, slots),
                 "arbitration": lambda: make_arbitration_spec(n)}
    if machine not in factories:
        raise ValueError(f"no machine is called {machine!r}")
    return factories[machine]()


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
