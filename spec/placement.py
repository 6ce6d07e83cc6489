"""The failover manager's placement policy (REQUIREMENTS F2, F5-F7, N2).

When a node is lost or a group must fail over, every surviving node runs this
same pure function over the same replicated inputs, so they all compute the
same new owners without talking ("pull" failover); the result is then
recorded by a global update.

The rules, in order:

1. Candidates are the nodes that are up and not paused (a paused node takes
   no new group), that are possible owners of every resource of the group
   (R7), and that are not the node the group is leaving.
2. Cascading (F6): walk the group's preferred-owners list starting *after*
   the node the group is leaving (wrapping round), and take the first
   candidate.  A group listed on standby nodes first gets N+1 (F7).
3. Otherwise spread the load (N2): the candidate with the fewest groups,
   ties broken by the lowest node id.  When several groups move at once they
   are placed in name order and each placement counts towards the load of
   the next.

No candidate means the group stays offline (the caller reports it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wolfpack.spec.defaults import FAILBACK_WINDOW_NONE
from wolfpack.spec.expr import And, Or


@dataclass(frozen=True)
class GroupPlacement:
    """What placement needs to know of one group."""

    name: str
    preferred: Sequence[int] = ()
    possible: Collection[int] | None = None  # None: every node
    leaving: int | None = None  # the node it fails over from, if any


@dataclass(frozen=True)
class ClusterView:
    """What placement needs to know of the nodes (replicated, identical everywhere)."""

    up: frozenset[int]
    paused: frozenset[int] = frozenset()
    load: Mapping[int, int] = field(default_factory=dict)

    def candidates(self, group: GroupPlacement) -> list[int]:
        allowed = self.up - self.paused
        if group.possible is not None:
            allowed &= frozenset(group.possible)
        if group.leaving is not None:
            allowed -= {group.leaving}
        return sorted(allowed)


def place(group: GroupPlacement, view: ClusterView) -> int | None:
    """The node ``group`` should run on next, or None if there is none."""
    candidates = view.candidates(group)
    if not candidates:
        return None
    preferred = list(dict.fromkeys(group.preferred))  # drop repeats, keep order
    if preferred:
        start = preferred.index(group.leaving) + 1 if group.leaving in preferred else 0
        for node in preferred[start:] + preferred[:start]:
            if node in candidates:
                return node
    return min(candidates, key=lambda n: (view.load.get(n, 0), n))


def place_all(groups: Iterable[GroupPlacement], view: ClusterView) -> dict[str, int | None]:
    """Place several groups at once, in name order, spreading the load."""
    load = dict(view.load)
    out: dict[str, int | None] = {}
    for group in sorted(groups, key=lambda g: g.name):
        node = place(group, ClusterView(view.up, view.paused, load))
        out[group.name] = node
        if node is not None:
            load[node] = load.get(node, 0) + 1
    return out


def failback_window_open(start: Any, end: Any, hour: Any) -> Any:
    """MSCS FailbackWindowStart/End (F8): may a group fail back at ``hour`` (0-23)?  Either end -1: at
    any hour; start <= end: from start to end inclusive; start > end: the window wraps past midnight.
    Concrete or symbolic (the group and failover machines both use it)."""
    return Or(start == FAILBACK_WINDOW_NONE, end == FAILBACK_WINDOW_NONE,
              And(start <= end, hour >= start, hour <= end),
              And(start > end, Or(hour >= start, hour <= end)))
