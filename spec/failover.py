"""The failover manager's view of group ownership (REQUIREMENTS F1, F2, F4-F7, N2).

One instance per node.  It keeps the replicated owner of every group (as
applied by global updates, so every node has the same table) and which groups
this node runs.  It decides nothing by itself that other nodes could decide
differently:

* after a new membership is installed, the *lowest* member waits
  ``takeover_wait_ms`` (long enough for every node left out to have halted:
  a timing obligation of ``wolfpack verify``), then computes, with the pure
  placement policy of :mod:`wolfpack.spec.placement`, new owners for the
  groups whose owner left, and submits them as global updates;
* when a group on this node must fail over (its resources exhausted their
  restarts), this node submits a placement that excludes itself;
* with fencing required (``cluster.fencing``), a node left out that owns a
  group wanted online is *unfenced* until a fence device reports it off (or
  the administrator confirms it is): the coordinator fences it at once, and
  places its groups only after both the take-over wait and the fence; a
  failed fence leaves them offline and is tried again later (STONITH);
* a node brings a group online only when the applied owner update names it
  and it is a member; it takes a group offline when an update moves it away,
  and halts every group when it leaves the membership.

The rule that makes "a group runs on at most one node" hold is the invariant
``runs_only_what_it_owns``: a node runs a group only while the replicated
owner is this node and this node is a member.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition, all_of, named, negation
from wolfpack.spec.expr import And, Exists, ForAll, If, Implies, Not, Or, Select, Store
from wolfpack.spec.placement import ClusterView, GroupPlacement, failback_window_open, place_all

OUT = "Out"
MEMBER = "Member"
NO_NODE = -1
#: ``moving``: hand the group over to the best node but this one (a drain)
ANYWHERE = -2
#: ``moving``: take the group offline and keep it here (the administrator wants it offline)
STOPPING = -3

#: ``wanted``, the replicated PersistentState of a group: no such group (a free slot), offline, online
NO_GROUP, WANTED_OFFLINE, WANTED_ONLINE = 0, 1, 2


@cache
def make_failover_spec(n: int, groups: int) -> Spec:
    """The failover manager of one node, in a cluster of ``n`` nodes with ``groups`` groups."""
    ks, gs = range(n), range(groups)

    def is_me_member(r: Any) -> Any:
        return Exists(ks, lambda k: And(k == r.me, r.members[k]))

    def lowest_member_is_me(r: Any) -> Any:
        return ForAll(ks, lambda k: Implies(r.members[k], k >= r.me))

    def members_of(e: Any) -> tuple[Any, ...]:
        return tuple(getattr(e, f"m{k}") == 1 for k in ks)

    def usable(r: Any, k: Any) -> Any:
        """Node k may take a group: a member, not paused."""
        return And(k >= 0, k < n, Select(r.members, k), Not(Select(r.paused, k)))

    def best_preferred(r: Any, g: int) -> Any:
        """The first usable node of group g's preferred owners (-1: none)."""
        best: Any = NO_NODE
        for slot in reversed(ks):
            p = r.preferred[g * n + slot]
            best = If(usable(r, p), p, best)
        return best

    def failback_due(r: Any, g: int) -> Any:
        """Group g runs here, may fail back now (F8: AutoFailbackType, FailbackWindowStart/End) and its most
        preferred usable node is another one."""
        best = best_preferred(r, g)
        return And(r.failback[g], failback_window_open(r.failback_start[g], r.failback_end[g], r.hour),
                   r.wanted[g] == WANTED_ONLINE, r.running[g], r.owner[g] == r.me, r.moving[g] == NO_NODE,
                   best != NO_NODE, best != r.me)

    def resumable(r: Any, g: int) -> Any:
        """After a rejoin, or a hand-over nobody applied: a group the database names this node the owner of,
        wanted online, not running here."""
        return And(Or(r.rejoining, r.lost[g]), r.owner[g] == r.me, r.wanted[g] == WANTED_ONLINE, Not(r.running[g]))

    def draining(r: Any, g: int) -> Any:
        return And(r.running[g], r.moving[g] == NO_NODE)

    # --- placement (concrete only: it runs in effect arguments) -------------------
    def placements(r: Any, leaving: dict[int, int]) -> list[dict[str, int]]:
        up = frozenset(k for k in ks if r.members[k])
        load: dict[int, int] = {}
        for g in gs:
            if r.owner[g] in up and g not in leaving:
                load[r.owner[g]] = load.get(r.owner[g], 0) + 1
        view = ClusterView(up=up, paused=frozenset(k for k in ks if r.paused[k]), load=load)
        wanted = [GroupPlacement(f"{g:04d}", preferred=[p for p in r.preferred[g * n:(g + 1) * n] if p >= 0],
                                 leaving=node) for g, node in leaving.items()]
        chosen = place_all(wanted, view)
        return [{"group": int(name), "node": node if node is not None else NO_NODE}
                for name, node in sorted(chosen.items())]

    def orphaned(r2: Any) -> dict[int, int]:
        """Groups (online or offline) whose owner is not a member (or that have none yet)."""
        return {g: r2.owner[g] for g in gs
                if r2.wanted[g] != NO_GROUP and (r2.owner[g] == NO_NODE or not r2.members[r2.owner[g]])}

    def place_orphans(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
        """The orphaned groups, but those of a node not fenced yet (fencing required)."""
        waiting = {g: k for g, k in orphaned(r2).items() if not (k != NO_NODE and r2.unfenced[k])}
        updates = [u for u in placements(r2, waiting) if u["node"] != NO_NODE]
        return {"updates": updates} if updates else None

    def place_fenced(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
        """The groups of the node just fenced (the others were placed at the take-over, or wait for theirs)."""
        updates = [u for u in placements(r2, {g: k for g, k in orphaned(r2).items() if k == e.node})
                   if u["node"] != NO_NODE]
        return {"updates": updates} if updates else None

    def owned_online(r: Any, k: Any) -> Any:
        return Exists(gs, lambda g: And(r.owner[g] == k, r.wanted[g] == WANTED_ONLINE))

    def unfenced_after(r: Any, e: Any) -> tuple[Any, ...]:
        """At an install: the nodes left out that must be fenced before their groups move (fencing required):
        those still unfenced, and those that own a group wanted online."""
        return tuple(And(r.fencing, getattr(e, f"m{k}") != 1, Or(r.unfenced[k], owned_online(r, k))) for k in ks)

    def to_fence(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
        nodes = [k for k in ks if r2.unfenced[k]]
        return {"nodes": nodes} if nodes else None

    def place_away(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
        return {"updates": placements(r2, {e.group: r2.me})}

    def hand_over(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
        """The group is offline here: give it to the chosen node, or (drain, or the target left) the best
        other node by the placement policy."""
        target = r.moving[e.group]
        if target >= 0 and usable(r2, target):
            return {"updates": [{"group": e.group, "node": target}]}
        return {"updates": placements(r2, {e.group: r2.me})}

    # --- guards --------------------------------------------------------------------------
    def lowest_member(r: Any, e: Any) -> Any:
        return lowest_member_is_me(r)

    def coordinator(r: Any, e: Any) -> Any:
        return ForAll(ks, lambda k: Implies(getattr(e, f"m{k}") == 1, k >= r.me))

    def included(r: Any, e: Any) -> Any:
        return Exists(ks, lambda k: And(k == r.me, getattr(e, f"m{k}") == 1))

    def excluded(r: Any, e: Any) -> Any:
        return Not(included(r, e))

    def newer(r: Any, e: Any) -> Any:
        return e.epoch > r.epoch

    def newer_and_included(r: Any, e: Any) -> Any:
        return And(newer(r, e), included(r, e))

    def newer_and_excluded(r: Any, e: Any) -> Any:
        return And(newer(r, e), excluded(r, e))

    def stale(r: Any, e: Any) -> Any:
        return Not(newer(r, e))

    def to_me(r: Any, e: Any) -> Any:
        return e.node == r.me

    def wanted_online(r: Any, e: Any) -> Any:
        return Select(r.wanted, e.group) == WANTED_ONLINE

    def away_from_me(r: Any, e: Any) -> Any:
        return e.node != r.me

    def runs_it(r: Any, e: Any) -> Any:
        return Select(r.running, e.group)

    def owns_it(r: Any, e: Any) -> Any:
        return And(Select(r.owner, e.group) == r.me, Select(r.running, e.group))

    def not_owned_here(r: Any, e: Any) -> Any:
        return Not(owns_it(r, e))

    def lost_here(r: Any, e: Any) -> Any:
        """This node owns the group, wanted online, and does not run it (it stopped it to hand it over)."""
        return And(Select(r.owner, e.group) == r.me, Select(r.wanted, e.group) == WANTED_ONLINE,
                   Not(Select(r.running, e.group)))

    # --- updates ----------------------------------------------------------------------
    def install(r: Any, e: Any) -> dict[str, Any]:
        members = members_of(e)
        # a group whose owner left is no longer run by anyone we know of
        running = tuple(And(r.running[g], r.owner[g] == r.me) for g in gs)
        return {"members": members, "epoch": e.epoch, "running": running,
                "moving": tuple(If(running[g], r.moving[g], NO_NODE) for g in gs),
                "unfenced": unfenced_after(r, e), "takeover_due": False}

    def leave(r: Any, e: Any) -> dict[str, Any]:
        return {"members": (False,) * n, "running": (False,) * groups, "moving": (NO_NODE,) * groups,
                "rejoining": False, "lost": (False,) * groups}

    def set_owner(r: Any, e: Any) -> dict[str, Any]:
        return {"owner": Store(r.owner, e.group, e.node), "lost": Store(r.lost, e.group, False)}

    def start_here(r: Any, e: Any) -> dict[str, Any]:
        return {**set_owner(r, e), "running": Store(r.running, e.group, True)}

    def stop_here(r: Any, e: Any) -> dict[str, Any]:
        return {**set_owner(r, e), "running": Store(r.running, e.group, False),
                "moving": Store(r.moving, e.group, NO_NODE)}

    submit = Effect("command", "submit_owners", place_orphans, when=lowest_member)
    #: the coordinator of a new membership fences the nodes left out that must be (fencing required)
    fence_left_out = Effect("command", "fence_nodes", to_fence, when=coordinator)
    wait_for_halts = Effect("start_timer", "takeover_elapsed", lambda r, e, r2: {"ms": r.takeover_wait_ms},
                            when=coordinator)
    check_failback_later = Effect("start_timer", "failback_check_elapsed", lambda r, e, r2: {"ms": r.takeover_wait_ms})
    check_failback_now = Effect("start_timer", "failback_check_elapsed", lambda r, e, r2: {"ms": 0},
                                when=lambda r, e: r.is_(MEMBER))

    def move_ok(r: Any, e: Any) -> Any:
        return And(owns_it(r, e), usable(r, e.node), e.node != r.me, Select(r.moving, e.group) == NO_NODE)

    def move_offline_ok(r: Any, e: Any) -> Any:
        """An offline group (fully stopped here: ``running`` lasts until the group machine reports it
        offline) may be handed to another usable node at once."""
        return And(Select(r.owner, e.group) == r.me, Not(Select(r.running, e.group)),
                   Select(r.wanted, e.group) != NO_GROUP, usable(r, e.node), e.node != r.me)

    def moving_it(r: Any, e: Any) -> Any:
        return And(Select(r.moving, e.group) != NO_NODE, Select(r.moving, e.group) != STOPPING)

    def stopping_it(r: Any, e: Any) -> Any:
        return Select(r.moving, e.group) == STOPPING

    # --- a group's replicated configuration (an administrator's global update) --------------------
    def configure(r: Any, e: Any) -> dict[str, Any]:
        return {"wanted": Store(r.wanted, e.group, e.wanted),
                "failback": Store(r.failback, e.group, e.failback == 1),
                "failback_start": Store(r.failback_start, e.group, e.failback_start),
                "failback_end": Store(r.failback_end, e.group, e.failback_end),
                "preferred": tuple(If(e.group == g, getattr(e, f"p{k}"), r.preferred[g * n + k])
                                   for g in gs for k in ks)}

    def start_configured(r: Any, e: Any) -> Any:
        return And(e.wanted == WANTED_ONLINE, Select(r.owner, e.group) == r.me, Not(Select(r.running, e.group)),
                   Not(r.rejoining))

    def stop_configured(r: Any, e: Any) -> Any:
        return And(e.wanted != WANTED_ONLINE, Select(r.running, e.group), Select(r.moving, e.group) == NO_NODE)
    RESUME_LATER = Effect("start_timer", "resume_owned_elapsed", lambda r, e, r2: {"ms": r.takeover_wait_ms})
    halt_all = Effect("command", "halt_groups", lambda r, e, r2: {"groups": [g for g in gs if r.running[g]]})
    rows = (
        Transition("installed", (OUT,), MEMBER, guard=newer_and_included,
                   update=lambda r, e: {**install(r, e), "rejoining": True},
                   effects=(wait_for_halts, fence_left_out, check_failback_later,
                            RESUME_LATER),
                   doc="this node (re)joins with a current database (loaded from the sponsor if it was behind); "
                       "after the take-over wait, when owner updates in flight at the regroup are settled, it "
                       "brings back the groups the database still names it the owner of"),
        Transition("resume_owned_elapsed", (MEMBER,), None,
                   update=lambda r, e: {"rejoining": False, "lost": (False,) * groups,
                                        "running": tuple(Or(r.running[g], resumable(r, g)) for g in gs)},
                   effects=(Effect("command", "groups_online",
                                   lambda r, e, r2: {"groups": [g for g in gs if resumable(r, g)]},
                                   when=lambda r, e: Exists(gs, lambda g: resumable(r, g))),),
                   doc="groups this rejoined node owns, and groups whose hand-over nobody applied, run nowhere "
                       "else (others run only what they own): bring them online here"),
        Transition("installed", (MEMBER,), MEMBER, guard=newer_and_included, update=install,
                   effects=(wait_for_halts, fence_left_out, check_failback_later),
                   doc="a new membership with this node: the lowest member waits until every node left out "
                       "has halted (takeover_wait), then places the orphaned groups; with fencing required it "
                       "fences at once the nodes left out that own a group wanted online"),
        Transition("takeover_elapsed", (MEMBER,), None, update=lambda r, e: {"takeover_due": True},
                   effects=(submit,),
                   doc="nodes left out have stopped their groups by now: place the orphaned groups, but those of "
                       "a node not fenced yet (fencing required)"),
        Transition("fence_succeeded", (MEMBER,), None,
                   update=lambda r, e: {"unfenced": Store(r.unfenced, e.node, False)},
                   effects=(Effect("command", "submit_owners", place_fenced,
                                   when=lambda r, e: And(lowest_member_is_me(r), r.takeover_due)),),
                   doc="a fence device reported the node off, or the administrator confirmed it is: its groups "
                       "may move; after the take-over wait the coordinator places them now"),
        Transition("fence_failed", (MEMBER,), None,
                   effects=(Effect("report", "fence_failed", lambda r, e, r2: {
                       "node": e.node, "groups": [g for g in gs if r.owner[g] == e.node
                                                  and r.wanted[g] == WANTED_ONLINE]}),
                            Effect("start_timer", "fence_retry_elapsed", lambda r, e, r2: {"ms": r.fence_retry_ms})),
                   doc="every fence device failed: the node may still run its groups, so they stay offline; "
                       "the coordinator tries again after fence_retry_ms (the administrator may confirm the node "
                       "is off instead)"),
        Transition("fence_retry_elapsed", (MEMBER,), None,
                   effects=(Effect("command", "fence_nodes", to_fence, when=lowest_member),),
                   doc="fence again the nodes left out whose fence failed"),
        Transition("fencing_configured", (OUT, MEMBER), None, update=lambda r, e: {"fencing": e.required == 1},
                   doc="the cluster's fencing setting (cluster.fencing: required or off)"),
        Transition("installed", (OUT, MEMBER), OUT, guard=newer_and_excluded, update=leave, effects=(halt_all,),
                   doc="a membership without this node: stop every group here"),
        Transition("installed", (OUT, MEMBER), None, guard=stale, doc="an old membership"),
        Transition("halted", (MEMBER,), OUT, update=leave, effects=(halt_all,),
                   doc="the membership machine halted: stop every group here (N4)"),
        Transition("owner_applied", (MEMBER,), None, guard=all_of("owner_is_me", to_me, wanted_online),
                   update=start_here,
                   effects=(Effect("command", "group_online", lambda r, e, r2: {"group": e.group, "node": r.me}),),
                   doc="the global update names this node: bring the group online here"),
        Transition("owner_applied", (MEMBER,), None,
                   guard=all_of("owner_is_me_offline", to_me, negation("not_wanted_online", wanted_online)),
                   update=set_owner, doc="this node owns the group, which is to stay offline: record it"),
        Transition("owner_applied", (MEMBER,), None, guard=all_of("moved_away_from_me", away_from_me, runs_it),
                   update=stop_here,
                   effects=(Effect("command", "group_offline", lambda r, e, r2: {"group": e.group}),),
                   doc="the group moved away: take it offline here"),
        Transition("owner_applied", (MEMBER,), None,
                   guard=all_of("owner_elsewhere", away_from_me, negation("not_running_here", runs_it)),
                   update=set_owner, doc="record the new owner"),
        Transition("owner_applied", (OUT,), None, update=set_owner,
                   doc="record it (a node out of the cluster runs nothing)"),
        Transition("failover_needed", (MEMBER,), None, guard=owns_it,
                   update=lambda r, e: {"running": Store(r.running, e.group, False),
                                        "moving": Store(r.moving, e.group, NO_NODE)},
                   effects=(Effect("command", "submit_owners", place_away),),
                   doc="the group failed here: place it elsewhere (F3, F6)"),
        Transition("failover_needed", (MEMBER,), None, guard=not_owned_here, doc="not ours to move"),
        Transition("paused_applied", (OUT, MEMBER), None,
                   update=lambda r, e: {"paused": Store(r.paused, e.node, e.paused == 1)},
                   doc="a node was paused or resumed (global update)"),
        # moves, drains and failback: the owner takes the group offline, then hands it over by a global update
        Transition("move_requested", (MEMBER,), None, guard=named("move_ok", move_ok),
                   update=lambda r, e: {"moving": Store(r.moving, e.group, e.node)},
                   effects=(Effect("command", "groups_offline", lambda r, e, r2: {"groups": [e.group]}),),
                   doc="manual move (F5): the owner takes the group offline here, then hands it over"),
        Transition("move_requested", (MEMBER,), None, guard=named("move_offline_ok", move_offline_ok),
                   effects=(Effect("command", "submit_owners",
                                   lambda r, e, r2: {"updates": [{"group": e.group, "node": e.node}]}),),
                   doc="manual move of an offline group this node owns: hand it over at once"),
        Transition("move_requested", (MEMBER,), None,
                   guard=all_of("move_refused", negation("not_move_ok", move_ok),
                                negation("not_move_offline_ok", move_offline_ok)),
                   effects=(Effect("report", "move_refused", lambda r, e, r2: {"group": e.group, "node": e.node}),),
                   doc="refused: this node does not own the group, it is still moving or going offline, or the "
                       "target is not a member that may take groups (paused, or not in the cluster)"),
        Transition("drain_requested", (MEMBER,), None,
                   update=lambda r, e: {"moving": tuple(If(draining(r, g), ANYWHERE, r.moving[g]) for g in gs)},
                   effects=(Effect("command", "submit_owners",
                                   lambda r, e, r2: {"updates": [{"pause": r.me, "paused": 1}]}),
                            Effect("command", "groups_offline",
                                   lambda r, e, r2: {"groups": [g for g in gs if draining(r, g)]})),
                   doc="pause this node for maintenance and move its groups away (drain): pause by a global "
                       "update, take each group offline, hand each over by the placement policy"),
        Transition("decision_lost", (MEMBER,), None, guard=named("lost_here", lost_here),
                   update=lambda r, e: {"lost": Store(r.lost, e.group, True)},
                   effects=(RESUME_LATER,),
                   doc="the global update that was to hand this node's group over (a move, a drain, a failback, a "
                       "failure) was dropped at a regroup, refused, or lost with the locker: no member applied it "
                       "and the database still names this node; after the take-over wait (a locker left out that "
                       "applied it alone has halted by then) bring it online here again"),
        Transition("decision_lost", (MEMBER,), None, guard=negation("not_lost_here", lost_here),
                   doc="the group runs, is not this node's, or is not wanted online: nothing to bring back"),
        Transition("pause_requested", (MEMBER,), None,
                   effects=(Effect("command", "submit_owners",
                                   lambda r, e, r2: {"updates": [{"pause": e.node, "paused": e.paused}]}),),
                   doc="pause or resume a node (a global update); a paused node takes no new group"),
        Transition("group_stopped", (MEMBER,), None, guard=named("handing_over", moving_it),
                   update=lambda r, e: {"running": Store(r.running, e.group, False),
                                        "moving": Store(r.moving, e.group, NO_NODE)},
                   effects=(Effect("command", "submit_owners", hand_over),),
                   doc="the group is offline here: hand it over by a global update"),
        Transition("group_stopped", (MEMBER,), None, guard=named("stopped_as_wanted", stopping_it),
                   update=lambda r, e: {"running": Store(r.running, e.group, False),
                                        "moving": Store(r.moving, e.group, NO_NODE)},
                   doc="the group the administrator wants offline is offline here: it stays with this node"),
        Transition("group_stopped", (MEMBER,), None,
                   guard=all_of("not_handing_over", negation("not_moving", moving_it),
                                negation("not_stopping", stopping_it)),
                   doc="offline for another reason (failure): nothing to hand over"),
        Transition("group_configured", (MEMBER,), None, guard=named("configured_online", start_configured),
                   update=lambda r, e: {**configure(r, e), "running": Store(r.running, e.group, True)},
                   effects=(Effect("command", "group_online", lambda r, e, r2: {"group": e.group, "node": r.me}),),
                   doc="the administrator wants a group this node owns online: bring it online here"),
        Transition("group_configured", (MEMBER,), None, guard=named("configured_offline", stop_configured),
                   update=lambda r, e: {**configure(r, e), "moving": Store(r.moving, e.group, STOPPING)},
                   effects=(Effect("command", "groups_offline", lambda r, e, r2: {"groups": [e.group]}),),
                   doc="the administrator wants a group this node runs offline: take it offline (it stays "
                       "owned here)"),
        Transition("group_configured", (MEMBER,), None,
                   guard=all_of("configured_elsewhere", negation("not_started", start_configured),
                                negation("not_stopped", stop_configured)),
                   update=configure, doc="record a group's configuration (nothing to start or stop here)"),
        Transition("group_configured", (OUT,), None, update=configure,
                   doc="record it (a node out of the cluster runs nothing)"),
        Transition("hour_changed", (OUT, MEMBER), None, update=lambda r, e: {"hour": e.hour},
                   effects=(check_failback_now,), doc="the local hour of day changed: a failback window may open"),
        Transition("failback_check_elapsed", (MEMBER,), None,
                   update=lambda r, e: {"moving": tuple(If(failback_due(r, g), best_preferred(r, g), r.moving[g])
                                                        for g in gs)},
                   effects=(Effect("command", "groups_offline",
                                   lambda r, e, r2: {"groups": [g for g in gs if failback_due(r, g)]},
                                   when=lambda r, e: Exists(gs, lambda g: failback_due(r, g))),),
                   doc="fail back (F8) each group that allows it, inside its window, whose most preferred "
                       "usable node is another one: take it offline here, then hand it over"),
    )
    ignored = (
        Ignore("halted", (OUT,), "already out"),
        Ignore("failover_needed", (OUT,), "everything here is stopped"),
        Ignore("takeover_elapsed", (OUT,), "a late timer"),
        Ignore("failback_check_elapsed", (OUT,), "a late timer"),
        Ignore("resume_owned_elapsed", (OUT,), "a late timer"),
        Ignore("fence_succeeded", (OUT,), "this node places nothing: the next membership's coordinator decides"),
        Ignore("fence_failed", (OUT,), "this node places nothing: the next membership's coordinator fences again"),
        Ignore("fence_retry_elapsed", (OUT,), "a late timer"),
        Ignore("group_stopped", (OUT,), "everything here is stopped"),
        Ignore("decision_lost", (OUT,), "this node runs nothing: the next membership places its groups"),
        Ignore("move_requested", (OUT,), "this node is not in the cluster: ask a member", reject=True),
        Ignore("drain_requested", (OUT,), "this node is not in the cluster: nothing to drain", reject=True),
        Ignore("pause_requested", (OUT,), "this node is not in the cluster: ask a member", reject=True),
    )
    src_epoch = Arg("epoch", 0, None, "membership epoch", hi_max=8)
    group_arg = Arg("group", 0, groups, "group index", hi_max=groups)
    node_arg = Arg("node", -1, n, "node id (-1: none)", hi_max=n)
    events = (
        Event("installed", "the membership machine installed a membership",
              (src_epoch, *(Arg(f"m{k}", 0, 2, f"1 if node {k} is a member", hi_max=2) for k in ks))),
        Event("halted", "the membership machine halted"),
        Event("takeover_elapsed", "timer: the nodes left out of the membership have halted by now"),
        Event("owner_applied", "a global update set a group's owner", (group_arg, node_arg)),
        Event("failover_needed", "this node's group machine asks for a failover", (group_arg,)),
        Event("paused_applied", "a global update paused or resumed a node",
              (Arg("node", 0, n, "node id", hi_max=n), Arg("paused", 0, 2, "1 paused, 0 resumed", hi_max=2))),
        Event("move_requested", "administrator: move a group this node runs to another node",
              (group_arg, Arg("node", 0, n, "target node id", hi_max=n))),
        Event("drain_requested", "administrator: pause this node and move its groups away"),
        Event("pause_requested", "administrator: pause or resume a node",
              (Arg("node", 0, n, "node id", hi_max=n), Arg("paused", 0, 2, "1 pause, 0 resume", hi_max=2))),
        Event("group_stopped", "this node's group machine reports the group offline", (group_arg,)),
        Event("decision_lost", "this node's global update that set the group's owner was dropped at a regroup or "
              "refused (nobody applied it)", (group_arg,)),
        Event("hour_changed", "clock: the local hour of day changed", (Arg("hour", 0, 24, "hour 0-23", hi_max=24),)),
        Event("failback_check_elapsed", "timer: look for groups that should fail back"),
        Event("resume_owned_elapsed", "timer: a rejoined node brings back the groups it still owns"),
        Event("fence_succeeded", "a fence device reported the node off (or the administrator confirmed it is)",
              (Arg("node", 0, n, "node id", hi_max=n),)),
        Event("fence_failed", "every fence device that covers the node failed to fence it",
              (Arg("node", 0, n, "node id", hi_max=n),)),
        Event("fence_retry_elapsed", "timer: fence again the nodes whose fence failed"),
        Event("fencing_configured", "the cluster's fencing setting (a global update, or the node's configuration)",
              (Arg("required", 0, 2, "1: fencing required, 0: off", hi_max=2),)),
        Event("group_configured", "a global update set a group's configuration",
              (group_arg, Arg("wanted", 0, 3, "0 no such group, 1 offline, 2 online", hi_max=3),
               Arg("failback", 0, 2, "1: AutoFailbackType allows failback", hi_max=2),
               Arg("failback_start", d.FAILBACK_WINDOW_NONE, 24, "FailbackWindowStart hour (-1: any)", hi_max=24),
               Arg("failback_end", d.FAILBACK_WINDOW_NONE, 24, "FailbackWindowEnd hour (-1: any)", hi_max=24),
               *(Arg(f"p{k}", NO_NODE, n, f"preferred owner number {k + 1} (-1: none)", hi_max=n) for k in ks))),
    )
    fields = (
        Field("me", int, 0, "this node's id", lo=0, hi=n - 1, param=True),
        Field("wanted", int, (WANTED_ONLINE,) * groups, "replicated PersistentState per group: 0 no such group "
              "(a free slot), 1 offline, 2 online", lo=NO_GROUP, hi=WANTED_ONLINE, length=groups),
        Field("preferred", int, (NO_NODE,) * (groups * n), "preferred owners per group (-1 = unused slot)",
              lo=NO_NODE, hi=n - 1, length=groups * n),
        Field("failback", bool, (d.FAILBACK_POLICY == d.FailbackPolicy.ALLOW,) * groups,
              "AutoFailbackType per group (true: ClusterGroupAllowFailback)", length=groups),
        Field("failback_start", int, (d.FAILBACK_WINDOW_NONE,) * groups, "FailbackWindowStart hour per group "
              "(-1: any hour)", lo=d.FAILBACK_WINDOW_NONE, hi=23, length=groups),
        Field("failback_end", int, (d.FAILBACK_WINDOW_NONE,) * groups, "FailbackWindowEnd hour per group "
              "(-1: any hour)", lo=d.FAILBACK_WINDOW_NONE, hi=23, length=groups),
        Field("hour", int, 0, "local hour of day, from clock events", lo=0, hi=23),
        Field("lost", bool, (False,) * groups, "a hand-over of this node's group that nobody applied: it comes back "
              "here after the take-over wait", length=groups),
        Field("rejoining", bool, False, "joined from outside the cluster; its owned groups come back after the "
              "take-over wait"),
        Field("moving", int, (NO_NODE,) * groups, "groups being handed over: target node (-2: the best node but "
              "this one, -3: nobody, it is going offline for good, -1: none)", lo=STOPPING, hi=n - 1,
              length=groups),
        Field("takeover_wait_ms", int, d.TAKEOVER_WAIT_MS, "wait before taking over the groups of nodes "
              "left out (they halt within it)", lo=0, param=True),
        Field("fence_retry_ms", int, d.FENCE_RETRY_MS, "wait before fencing again after a failed fence", lo=0,
              param=True),
        Field("fencing", bool, d.FENCING_REQUIRED, "fencing required: a lost owner's groups move only once it "
              "is fenced (cluster.fencing)"),
        Field("unfenced", bool, (False,) * n, "nodes left out whose groups wait for a fence (fencing required)",
              length=n),
        Field("takeover_due", bool, False, "the take-over wait of the installed membership has elapsed"),
        Field("epoch", int, 0, "membership epoch last installed", lo=0),
        Field("members", bool, (False,) * n, "installed membership", length=n),
        Field("paused", bool, (False,) * n, "paused nodes (replicated)", length=n),
        Field("owner", int, (NO_NODE,) * groups, "replicated owner of each group", lo=NO_NODE, hi=n - 1,
              length=groups),
        Field("running", bool, (False,) * groups, "groups this node runs", length=groups),
    )

    def runs_only_what_it_owns(r: Any) -> Any:
        return ForAll(gs, lambda g: Implies(r.running[g], And(r.owner[g] == r.me, is_me_member(r))))

    return Spec(
        name="failover",
        doc=__doc__ or "",
        states=(OUT, MEMBER),
        initial=OUT,
        fields=fields,
        events=events,
        transitions=rows,
        ignored=ignored,
        invariants=(
            Invariant("runs_only_what_it_owns", runs_only_what_it_owns,
                      "a node runs a group only while the replicated owner is this node and it is a member"),
            Invariant("out_runs_nothing", lambda r: Implies(r.is_(OUT), ForAll(gs, lambda g: Not(r.running[g]))),
                      "a node out of the cluster runs no group"),
            Invariant("fences_only_nodes_left_out",
                      lambda r: ForAll(ks, lambda k: Implies(r.unfenced[k], Not(r.members[k]))),
                      "a node waits for the fence only of nodes outside its installed membership"),
            Invariant("hands_over_only_what_it_runs",
                      lambda r: ForAll(gs, lambda g: Implies(r.moving[g] != NO_NODE, r.running[g])),
                      "a node hands over (move, drain, failback) only groups it runs"),
        ),
        state_docs={OUT: "not a member: runs nothing", MEMBER: "member: runs the groups it owns"},
    )


SPEC = make_failover_spec(3, 2)
