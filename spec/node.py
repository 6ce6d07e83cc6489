"""The node machine (REQUIREMENTS O1, O4, O5).

A node's view of its own membership: Offline (not an active member), Joining,
Online (full member), Paused (member that takes no new groups but keeps the
ones it owns), Evicted (removed from the configured set until an
administrator adds it back).

How a node *gets* the quorum, who sponsors a join and how a regroup decides
are cluster protocols (the regroup and quorum machines); this machine takes
their outcomes as events: ``form`` is sent only to a node that holds the
quorum and found no cluster, ``join_accepted`` carries the epoch the sponsor
installed, ``regroup_survived`` the new epoch, ``regroup_excluded`` tells a
node it is outside the surviving partition.

Safety choices:

* Leaving (ClusterExit), being evicted and being excluded by a regroup all
  stop every resource at once (N4, O5): a node that is not a member owns no
  group (invariant ``non_member_owns_nothing``).
* Epochs only grow: an outcome carrying an epoch not newer than the node's is
  stale and changes nothing.
"""

from __future__ import annotations

from typing import Any

from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition
from wolfpack.spec.expr import Implies, Not

OFFLINE = "Offline"
JOINING = "Joining"
ONLINE = "Online"
PAUSED = "Paused"
EVICTED = "Evicted"
STATES = (OFFLINE, JOINING, ONLINE, PAUSED, EVICTED)
MEMBER = (ONLINE, PAUSED)


def newer_epoch(r: Any, e: Any) -> Any:
    return e.epoch > r.epoch


def stale_epoch(r: Any, e: Any) -> Any:
    return Not(newer_epoch(r, e))


def owns_groups(r: Any, e: Any) -> Any:
    return r.groups > 0


def owns_no_group(r: Any, e: Any) -> Any:
    return r.groups == 0


HALT = (Effect("command", "stop_all_resources"),)
DROP_GROUPS = {"groups": 0}

TRANSITIONS = (
    Transition("form", (OFFLINE,), ONLINE, update=lambda r, e: {"epoch": r.epoch + 1},
               effects=(Effect("report", "formed", lambda r, e, r2: {"epoch": r2.epoch}),),
               doc="holding the quorum and finding no cluster, the node forms one (O2)"),
    Transition("join", (OFFLINE,), JOINING, effects=(Effect("send", "join_request"),),
               doc="ask a member to sponsor the join (O4)"),
    Transition("join_accepted", (JOINING,), ONLINE, guard=newer_epoch, update=lambda r, e: {"epoch": e.epoch},
               effects=(Effect("report", "joined", lambda r, e, r2: {"epoch": r2.epoch}),),
               doc="authenticated, database up to date, membership installed"),
    Transition("join_accepted", (JOINING,), None, guard=stale_epoch, doc="a stale acceptance"),
    Transition("join_refused", (JOINING,), OFFLINE, effects=(Effect("report", "join_refused"),),
               doc="wrong credentials or incompatible version: stay out"),
    Transition("pause", (ONLINE,), PAUSED, doc="maintenance: keep groups, accept no new ones"),
    Transition("resume", (PAUSED,), ONLINE, doc="accept groups again"),
    Transition("leave", (ONLINE, PAUSED, JOINING), OFFLINE, update=lambda r, e: DROP_GROUPS,
               effects=(Effect("send", "cluster_exit"), *HALT),
               doc="planned shutdown: tell every member (no regroup for it) and stop all resources at once"),
    Transition("evict", (OFFLINE, JOINING, ONLINE, PAUSED), EVICTED, update=lambda r, e: DROP_GROUPS,
               effects=HALT, doc="removed from the configured nodes (cannot do its cluster duties)"),
    Transition("readmit", (EVICTED,), OFFLINE, doc="an administrator added the node back"),
    Transition("regroup_survived", MEMBER, None, guard=newer_epoch, update=lambda r, e: {"epoch": e.epoch},
               doc="the regroup kept this node: install the new epoch"),
    Transition("regroup_survived", MEMBER, None, guard=stale_epoch, doc="an old regroup outcome"),
    Transition("regroup_excluded", (ONLINE, PAUSED, JOINING), OFFLINE, update=lambda r, e: DROP_GROUPS,
               effects=HALT, doc="outside the surviving partition: halt the cluster role and stop all resources (N4)"),
    Transition("accept_group", (ONLINE,), None, update=lambda r, e: {"groups": r.groups + 1},
               doc="the node becomes the owner of one more group"),
    Transition("release_group", MEMBER, None, guard=owns_groups, update=lambda r, e: {"groups": r.groups - 1},
               doc="a group moved away"),
    Transition("release_group", MEMBER, None, guard=owns_no_group, doc="nothing to release"),
)

_NOT_MEMBER = "the node is not a cluster member; join the cluster first"
IGNORED = (
    Ignore("form", (JOINING, ONLINE, PAUSED), "already in a cluster"),
    Ignore("form", (EVICTED,), "an evicted node must be added back before it can form a cluster", reject=True),
    Ignore("join", (JOINING, ONLINE, PAUSED), "already joining or a member"),
    Ignore("join", (EVICTED,), "an evicted node must be added back before it can join", reject=True),
    Ignore("join_accepted", (OFFLINE, ONLINE, PAUSED, EVICTED), "not waiting for a join"),
    Ignore("join_refused", (OFFLINE, ONLINE, PAUSED, EVICTED), "not waiting for a join"),
    Ignore("pause", (PAUSED,), "already paused"),
    Ignore("pause", (OFFLINE, JOINING, EVICTED), _NOT_MEMBER, reject=True),
    Ignore("resume", (ONLINE,), "not paused"),
    Ignore("resume", (OFFLINE, JOINING, EVICTED), _NOT_MEMBER, reject=True),
    Ignore("leave", (OFFLINE, EVICTED), "not in a cluster"),
    Ignore("evict", (EVICTED,), "already evicted"),
    Ignore("readmit", (OFFLINE, JOINING, ONLINE, PAUSED), "not evicted"),
    Ignore("regroup_survived", (OFFLINE, JOINING, EVICTED), "not a member: the outcome is for others"),
    Ignore("regroup_excluded", (OFFLINE, EVICTED), "already out"),
    Ignore("accept_group", (PAUSED,), "the node is paused for maintenance and accepts no new groups; resume it "
           "or choose another node", reject=True),
    Ignore("accept_group", (OFFLINE, JOINING, EVICTED), _NOT_MEMBER, reject=True),
    Ignore("release_group", (OFFLINE, JOINING, EVICTED), "owns nothing"),
)

_EPOCH = Arg("epoch", 0, None, "membership epoch", hi_max=16)
EVENTS = (
    Event("form", "this node holds the quorum and found no cluster: form one"),
    Event("join", "start joining an existing cluster"),
    Event("join_accepted", "the sponsor admitted this node at an epoch", (_EPOCH,)),
    Event("join_refused", "the sponsor refused this node (credentials, version)"),
    Event("pause", "administrator: pause for maintenance"),
    Event("resume", "administrator: resume after maintenance"),
    Event("leave", "planned shutdown (ClusterExit)"),
    Event("evict", "remove this node from the cluster"),
    Event("readmit", "administrator: add an evicted node back"),
    Event("regroup_survived", "a regroup ended with this node in the membership", (_EPOCH,)),
    Event("regroup_excluded", "a regroup ended without this node (or its partition lost quorum)"),
    Event("accept_group", "take ownership of a group"),
    Event("release_group", "give up ownership of a group"),
)

SPEC = Spec(
    name="node",
    doc=__doc__ or "",
    states=STATES,
    initial=OFFLINE,
    fields=(
        Field("epoch", int, 0, "membership epoch last installed", lo=0),
        Field("groups", int, 0, "groups this node owns", lo=0),
    ),
    events=EVENTS,
    transitions=TRANSITIONS,
    ignored=IGNORED,
    invariants=(
        Invariant("non_member_owns_nothing", lambda r: Implies(r.is_(OFFLINE, JOINING, EVICTED), r.groups == 0),
                  "a node that is not a member owns no group, so none of its resources runs (N4, O5)"),
    ),
    state_docs={
        OFFLINE: "not an active member",
        JOINING: "asking a sponsor to join",
        ONLINE: "full member: owns and runs groups",
        PAUSED: "member for maintenance: keeps its groups, takes no new ones",
        EVICTED: "removed from the configured nodes",
    },
)
