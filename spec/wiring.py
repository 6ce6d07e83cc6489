"""How the machines of one node talk to each other: data, read by the
simulator, the daemon and the composed proofs alike.

Each entry maps a report of one machine to an event of another machine on
the same node, with the report's arguments passed on (renamed where the
table says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the largest cluster the wiring's per-node arguments are spelled out for
MAX_NODES = 64


@dataclass(frozen=True)
class Wire:
    source: str  # machine that reports
    report: str  # report name
    target: str  # machine that receives
    event: str  # its event
    args: Mapping[str, str] = field(default_factory=dict)  # event arg <- report arg ({} = none)


WIRES: tuple[Wire, ...] = (
    Wire("heartbeat", "suspect", "membership", "suspect", {"node": "node"}),
    Wire("heartbeat", "peer_back", "membership", "peer_back", {"node": "node"}),
    Wire("heartbeat", "peer_ahead", "membership", "peer_ahead", {"node": "node", "epoch": "epoch"}),
    Wire("membership", "installed", "heartbeat", "epoch_installed", {"epoch": "epoch"}),
    Wire("membership", "halted", "heartbeat", "stop"),
    Wire("membership", "halted", "arbitration", "release"),
    Wire("membership", "arbitrate", "arbitration", "arbitrate"),
    Wire("membership", "disk_not_needed", "arbitration", "release"),
    Wire("arbitration", "won", "membership", "disk_won"),
    Wire("arbitration", "lost_quorum", "membership", "disk_lost"),
    Wire("arbitration", "released", "membership", "disk_lost"),
    Wire("membership", "installed", "failover", "installed",
         {"epoch": "epoch", **{f"m{k}": f"m{k}" for k in range(MAX_NODES)}}),
    Wire("membership", "halted", "failover", "halted"),
    Wire("membership", "regroup_started", "gum", "regroup_started"),
    Wire("membership", "installed", "gum", "membership_changed", {f"alive{k}": f"m{k}" for k in range(MAX_NODES)}),
    Wire("membership", "halted", "gum", "halt"),
)

#: A resource machine's reports, as events of its group machine (argument ``i``: the resource's index).
RESOURCE_TO_GROUP: Mapping[str, str] = {
    "online": "resource_online",
    "offline": "resource_offline",
    "failed": "resource_failed",
    "restarting": "resource_restarting",
    "group_failover_requested": "failover_requested",
}

#: A group machine's reports, as events of the node's failover manager (argument ``group``).
GROUP_TO_FAILOVER: Mapping[str, str] = {
    "failover_needed": "failover_needed",
    "offline": "group_stopped",
}


Routed = list[tuple[str, str, dict[str, Any]]]


def route(source: str, report: str, args: Mapping[str, Any], present: set[str]) -> Routed:
    """The (machine, event, args) a report turns into, among the machines ``present``."""
    out: Routed = []
    for w in WIRES:
        if w.source == source and w.report == report and w.target in present:
            out.append((w.target, w.event, {k: args[v] for k, v in w.args.items() if v in args}))
    return out
