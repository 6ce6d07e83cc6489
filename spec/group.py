"""The group machine (REQUIREMENTS C3, C4, F1, F3, F5-F9).

A group is the unit of failover.  Its record mirrors the state of each of its
``n`` resources (as the resource machines report it), the dependency matrix
between them, the owner node, and the failover and failback policy.

The machine is a controller that converges the resources towards a *goal*:

* goal online (``OnlinePending``, ``Online``): start every Offline resource
  whose dependencies are all Online; stop a running resource whose
  dependencies are no longer all Online (one of them is restarting);
* goal offline (``OfflinePending``, ``Moving``, ``FailingOver``,
  ``Failing``): stop every resource none of whose dependents is still up.

Stops are decided before starts in one step, and a resource is stopped only
when every resource depending on it is Offline; together that gives the
dependency order of C4 (online in dependency order, offline in reverse),
stated as the invariant ``dependency_order`` and proved by ``wolfpack
verify``.  The "which resources now" lists are effects (``online_resources``
/ ``offline_resources``) for the owner node to carry out.

Group states MSCS shows to operators (CLUSTER_GROUP_STATE) are *derived*
from the resources by :data:`GROUP_STATE` with an explicit priority, because
Microsoft's published definitions overlap (all-online is also PartialOnline;
an empty group is both Online and Offline).  Wolfpack's order is
Failed > Pending > Offline > Online > PartialOnline, so an empty group is
Offline.

Choices where MSCS is silent:

* A manual move of an Online group first takes it offline here in reverse
  dependency order, then records the new owner and brings it online there
  (F4: the same path as a failover).
* A failover request counts against FailoverThreshold when it is made; past
  the threshold the group is taken offline and stays ``Failed`` (F9).
* Failback happens only from ``Online``, only when the policy allows it, the
  hour is inside the window (inclusive, wrapping past midnight; -1 = any
  hour), and fewer than the attempt limit were made this failover period.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from functools import cache
from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec.core import Arg, Derived, Effect, Event, Field, Ignore, Invariant, Spec, Transition, named
from wolfpack.spec.defaults import FailbackPolicy
from wolfpack.spec.expr import And, Count, Exists, ForAll, If, Implies, In, Not, Or, Select, Store
from wolfpack.spec.placement import failback_window_open


class ResState(IntEnum):
    """A resource's state as its group sees it (the resource machine's states;
    ONLINE_PENDING is an online the group started, RESTARTING one the
    resource's own restart policy started)."""

    OFFLINE = 0
    ONLINE_PENDING = 1
    ONLINE = 2
    OFFLINE_PENDING = 3
    FAILED = 4
    RESTARTING = 5


OFF, OP, ON, OFFP, FAILED_R, RESTART = (
    ResState.OFFLINE,
    ResState.ONLINE_PENDING,
    ResState.ONLINE,
    ResState.OFFLINE_PENDING,
    ResState.FAILED,
    ResState.RESTARTING,
)
RUNNING = (OP, ON, RESTART)  # started and not being stopped

OFFLINE = "Offline"
ONLINE_PENDING = "OnlinePending"
ONLINE = "Online"
OFFLINE_PENDING = "OfflinePending"
MOVING = "Moving"
FAILING_OVER = "FailingOver"
FAILING = "Failing"
FAILED = "Failed"
STATES = (OFFLINE, ONLINE_PENDING, ONLINE, OFFLINE_PENDING, MOVING, FAILING_OVER, FAILING, FAILED)
GOAL_ONLINE = (ONLINE_PENDING, ONLINE)
GOAL_OFFLINE = (OFFLINE_PENDING, MOVING, FAILING_OVER, FAILING)

NO_NODE = -1
HOURS_PER_DAY = 24
TWO_NODES = 2  # the smallest failover cluster: the record's default size



@cache
def make_group_spec(n: int) -> Spec:
    """The group machine for a group of ``n`` >= 1 resources."""
    if n < 1:
        raise ValueError("a group machine needs at least one resource (an empty group has nothing to move)")
    ks = range(n)

    def dep(r: Any, i: int, j: int) -> Any:
        return r.dep[i * n + j]

    # --- predicates over the mirrored resource states ------------------------
    def deps_online(r: Any, k: int) -> Any:
        return ForAll(ks, lambda j: Implies(dep(r, k, j), r.res[j] == ON))

    def dependents_offline(r: Any, k: int) -> Any:
        return ForAll(ks, lambda i: Implies(dep(r, i, k), r.res[i] == OFF))

    def support_lost(r: Any) -> list[Any]:
        """Per resource: something it depends on, directly or through others,
        is not Online (unrolled over the longest possible chain)."""
        lost: list[Any] = [False] * n
        for _ in range(n):
            prev = lost
            lost = [Exists(ks, lambda j, k=k, prev=prev: And(dep(r, k, j), Or(r.res[j] != ON, prev[j])))  # type: ignore[misc]
                    for k in ks]
        return lost

    def all_are(r: Any, value: ResState) -> Any:
        return ForAll(ks, lambda k: r.res[k] == value)

    def converge(r: Any, goal_online: bool) -> dict[str, Any]:
        """One controller step: stops first, then starts on the result."""
        if goal_online:
            lost = support_lost(r)
            stop = [And(In(r.res[k], RUNNING), lost[k], dependents_offline(r, k)) for k in ks]
        else:
            stop = [And(In(r.res[k], (*RUNNING, FAILED_R)), dependents_offline(r, k)) for k in ks]
        stopped = r.replace(res=tuple(If(stop[k], OFFP, r.res[k]) for k in ks))
        if not goal_online:
            return {"res": stopped.res}
        start = [And(stopped.res[k] == OFF, deps_online(stopped, k)) for k in ks]
        return {"res": tuple(If(start[k], OP, stopped.res[k]) for k in ks)}

    def then(first: Callable[[Any, Any], Mapping[str, Any]], goal_online: bool,
             extra: Callable[[Any], Mapping[str, Any]] | None = None) -> Callable[[Any, Any], dict[str, Any]]:
        """Apply ``first``, then ``extra`` (on the result), then converge."""

        def update(r: Any, e: Any) -> dict[str, Any]:
            changes = dict(first(r, e))
            r1 = r.replace(**changes)
            if extra is not None:
                more = extra(r1)
                changes.update(more)
                r1 = r1.replace(**more)
            changes.update(converge(r1, goal_online))
            return changes

        return update

    def nothing(r: Any, e: Any) -> dict[str, Any]:
        return {}

    # --- effects ---------------------------------------------------------------
    def waves(report: Callable[[Any, Any], Any] | None = None) -> tuple[Effect, ...]:
        """The commands of one controller step: what it stopped, then what it
        started (compared with the record after the report, if any)."""

        def reported(r: Any, e: Any) -> Any:
            return r if report is None else report(r, e)

        def started(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
            r1 = reported(r, e)
            idx = [k for k in ks if r2.res[k] == OP and r1.res[k] != OP]
            return {"node": r2.owner, "resources": idx} if idx else None

        def stopped(r: Any, e: Any, r2: Any) -> dict[str, Any] | None:
            r1 = reported(r, e)
            idx = [k for k in ks if r2.res[k] == OFFP and r1.res[k] != OFFP]
            return {"node": r.owner, "resources": idx} if idx else None

        return (Effect("command", "offline_resources", stopped), Effect("command", "online_resources", started))

    WAVES = waves()

    # --- resource reports --------------------------------------------------------
    reports: dict[str, tuple[tuple[ResState, ...], ResState, str]] = {
        "resource_online": ((OP, RESTART), ON, "the resource reached Online"),
        "resource_offline": ((OFFP,), OFF, "the resource reached Offline"),
        "resource_failed": (RUNNING, FAILED_R, "the resource failed and will not restart locally"),
        "resource_restarting": ((*RUNNING, FAILED_R), RESTART, "the resource restarts locally (RestartDelay or retry)"),
    }
    def all_on(r: Any) -> Any:
        return all_are(r, ON)

    def not_all_on(r: Any) -> Any:
        return Not(all_are(r, ON))

    def all_off(r: Any) -> Any:
        return all_are(r, OFF)

    def not_all_off(r: Any) -> Any:
        return Not(all_are(r, OFF))

    def reported(name: str, expected: Callable[..., Any], after: Callable[..., Any],
                 cond: Callable[[Any], Any]) -> Callable[..., Any]:
        """Guard: the report is expected, and ``cond`` holds once it is applied."""
        return named(name, lambda r, e: And(expected(r, e), cond(after(r, e))))

    #: where a goal-offline state goes once every resource is Offline
    completions: tuple[tuple[str, str, Callable[..., Any] | None, tuple[Effect, ...]], ...] = (
        (OFFLINE_PENDING, OFFLINE, None, (Effect("report", "offline"),)),
        (MOVING, ONLINE_PENDING, lambda r1: {"owner": r1.target, "target": NO_NODE},
         (Effect("report", "moved", lambda r, e, r2: {"node": r2.owner}),)),
        (FAILING_OVER, OFFLINE, None,
         (Effect("report", "failover_needed", lambda r, e, r2: {"from_node": r.owner}),)),
        (FAILING, FAILED, None, (Effect("report", "failed"),)),
    )
    rows: list[Transition] = []
    for trig, (accepted_from, to, why) in reports.items():

        def accepted(r: Any, e: Any, _from: tuple[ResState, ...] = accepted_from) -> Any:
            return In(Select(r.res, e.i), _from)

        def apply(r: Any, e: Any, _to: ResState = to) -> dict[str, Any]:
            return {"res": Store(r.res, e.i, _to)}

        def after(r: Any, e: Any, _apply: Callable[..., Any] = apply) -> Any:
            return r.replace(**_apply(r, e))

        acc = named(f"{trig}_expected", accepted)
        report_waves = waves(after)
        # Only rows that can fire: a report that leaves resource i Online can
        # complete an online but never an offline, and the other way round.
        if to == ON:
            rows += [
                Transition(trig, GOAL_ONLINE, ONLINE, guard=reported(f"{trig}_completes", acc, after, all_on),
                           update=then(apply, True), effects=report_waves, doc=f"{why}; every resource is Online"),
                Transition(trig, GOAL_ONLINE, ONLINE_PENDING,
                           guard=reported(f"{trig}_more_to_do", acc, after, not_all_on),
                           update=then(apply, True), effects=report_waves, doc=f"{why}; start what is ready"),
            ]
        else:
            rows.append(Transition(trig, GOAL_ONLINE, ONLINE_PENDING, guard=acc, update=then(apply, True),
                                   effects=report_waves, doc=f"{why}; stop what lost its support, start what is ready"))
        if to == OFF:
            rows.append(Transition(trig, GOAL_OFFLINE, None,
                                   guard=reported(f"{trig}_more_to_stop", acc, after, not_all_off),
                                   update=then(apply, False), effects=report_waves,
                                   doc=f"{why}; stop what no longer has dependents"))
            rows += [
                Transition(trig, (source,), dest, guard=reported(f"{trig}_last_to_stop", acc, after, all_off),
                           update=then(apply, dest == ONLINE_PENDING, extra), effects=(*effects, *report_waves),
                           doc=f"{why}; all resources are Offline")
                for source, dest, extra, effects in completions
            ]
        else:
            rows.append(Transition(trig, GOAL_OFFLINE, None, guard=acc, update=then(apply, False),
                                   effects=report_waves, doc=f"{why}; stop what no longer has dependents"))
        rows.append(Transition(trig, GOAL_ONLINE + GOAL_OFFLINE, None,
                               guard=named(f"{trig}_stale", lambda r, e, a=acc: Not(a(r, e))),
                               doc="a report that does not match the mirrored state (late or duplicated): no change"))

    # --- commands --------------------------------------------------------------------
    def nothing_to_stop(r: Any, e: Any) -> Any:
        return all_are(r, OFF)

    def something_to_stop(r: Any, e: Any) -> Any:
        return Not(all_are(r, OFF))

    def other_node(r: Any, e: Any) -> Any:
        return e.node != r.owner

    def same_node(r: Any, e: Any) -> Any:
        return e.node == r.owner

    def failover_allowed(r: Any, e: Any) -> Any:
        return r.failover_count < r.failover_threshold

    def failover_exhausted(r: Any, e: Any) -> Any:
        return Not(failover_allowed(r, e))

    def in_window(r: Any, hour: Any) -> Any:
        return failback_window_open(r.failback_window_start, r.failback_window_end, hour)

    def failback_allowed(r: Any, e: Any) -> Any:
        return And(
            r.failback_policy == FailbackPolicy.ALLOW,
            r.failback_count < r.failback_limit,
            in_window(r, e.hour),
            e.node != r.owner,
        )

    def failback_refused(r: Any, e: Any) -> Any:
        return Not(failback_allowed(r, e))

    cancel_move = {"target": NO_NODE}

    def first_failover_in_period(r: Any, e: Any) -> Any:
        return r.failover_count == 0

    FAILOVER_NEEDED = Effect("report", "failover_needed", lambda r, e, r2: {"from_node": r.owner})
    START_FAILOVER_PERIOD = Effect("start_timer", "failover_period_elapsed",
                                   lambda r, e, r2: {"ms": r.failover_period_ms}, when=first_failover_in_period)

    def all_stopped(r: Any, e: Any) -> dict[str, Any]:
        return {"res": (OFF,) * n, "target": NO_NODE}
    rows += [
        Transition("online", (OFFLINE, FAILED), ONLINE_PENDING,
                   update=then(lambda r, e: {"owner": e.node}, True), effects=WAVES,
                   doc="bring the group online on the given node, in dependency order"),
        Transition("offline", GOAL_ONLINE + GOAL_OFFLINE, OFFLINE, guard=nothing_to_stop,
                   update=lambda r, e: cancel_move, effects=(Effect("report", "offline"),),
                   doc="nothing is running: the group is offline at once"),
        Transition("offline", GOAL_ONLINE + GOAL_OFFLINE, OFFLINE_PENDING, guard=something_to_stop,
                   update=then(lambda r, e: cancel_move, False), effects=WAVES,
                   doc="take the group offline in reverse dependency order (cancels a move)"),
        Transition("offline", (FAILED,), OFFLINE, doc="acknowledge a failed group"),
        Transition("move", GOAL_ONLINE, MOVING, guard=other_node,
                   update=then(lambda r, e: {"target": e.node}, False), effects=WAVES,
                   doc="manual move: offline here in reverse order, then online on the target"),
        Transition("move", GOAL_ONLINE, None, guard=same_node, doc="the group is already there"),
        Transition("move", (OFFLINE, FAILED), None, update=lambda r, e: {"owner": e.node},
                   doc="an offline group just changes owner"),
        Transition("failover_requested", GOAL_ONLINE, FAILING_OVER, guard=failover_allowed,
                   update=then(lambda r, e: {"failover_count": r.failover_count + 1}, False),
                   effects=(*WAVES, START_FAILOVER_PERIOD),
                   doc="a resource asked for failover: take the group offline, then the failover manager places it"),
        Transition("failover_requested", GOAL_ONLINE, FAILING, guard=failover_exhausted,
                   update=then(nothing, False), effects=WAVES,
                   doc="FailoverThreshold reached within FailoverPeriod: take the group offline and leave it Failed"),
        Transition("preferred_node_returned", (ONLINE,), MOVING, guard=failback_allowed,
                   update=then(lambda r, e: {"target": e.node, "failback_count": r.failback_count + 1}, False),
                   effects=WAVES, doc="fail back to the preferred node inside the failback window"),
        Transition("preferred_node_returned", (ONLINE,), None, guard=failback_refused,
                   doc="failback prevented, outside the window, or attempts used up"),
        Transition("owner_halted", (*GOAL_ONLINE, MOVING), OFFLINE, guard=failover_allowed,
                   update=lambda r, e: {**all_stopped(r, e), "failover_count": r.failover_count + 1},
                   effects=(FAILOVER_NEEDED, START_FAILOVER_PERIOD),
                   doc="the owner node halted (failed, left or lost quorum): its resources are gone; "
                       "the failover manager places the group (one failover counted)"),
        Transition("owner_halted", (*GOAL_ONLINE, MOVING), FAILED, guard=failover_exhausted, update=all_stopped,
                   effects=(Effect("report", "failed"),),
                   doc="the owner halted and FailoverThreshold is reached: the group stays Failed"),
        Transition("owner_halted", (FAILING_OVER,), OFFLINE, update=all_stopped, effects=(FAILOVER_NEEDED,),
                   doc="the owner halted during a failover already counted: the failover manager places the group"),
        Transition("owner_halted", (OFFLINE_PENDING,), OFFLINE, update=all_stopped,
                   effects=(Effect("report", "offline"),), doc="the owner halted while the group was going offline"),
        Transition("owner_halted", (FAILING,), FAILED, update=all_stopped, effects=(Effect("report", "failed"),),
                   doc="the owner halted while the group was giving up"),
        Transition("failover_period_elapsed", STATES, None,
                   update=lambda r, e: {"failover_count": 0, "failback_count": 0},
                   doc="FailoverPeriod is over: the counts start again"),
    ]

    busy = "the group is changing state; wait until it is Online or Offline, then retry"
    ignored = (
        Ignore("online", GOAL_ONLINE, "already online or coming online (use move to change node)"),
        Ignore("online", GOAL_OFFLINE, busy, reject=True),
        Ignore("offline", (OFFLINE,), "already offline"),
        Ignore("move", GOAL_OFFLINE, busy, reject=True),
        Ignore("failover_requested", GOAL_OFFLINE + (OFFLINE, FAILED), "the group is not running here any more"),
        Ignore("owner_halted", (OFFLINE, FAILED), "nothing runs on any node"),
        Ignore("preferred_node_returned", tuple(s for s in STATES if s != ONLINE),
               "failback applies only to an Online group"),
        *(Ignore(t, (OFFLINE, FAILED), "every resource is Offline: a late report") for t in reports),
    )

    def dependency_order(r: Any) -> Any:
        return ForAll(ks, lambda i: ForAll(ks, lambda j: Implies(
            And(dep(r, i, j), r.res[i] != OFF), Not(In(r.res[j], (OFF, OFFP))))))

    def started_after_dependencies(r: Any) -> Any:
        return ForAll(ks, lambda i: ForAll(ks, lambda j: Implies(
            And(dep(r, i, j), r.res[i] == OP), In(r.res[j], (ON, RESTART, FAILED_R)))))

    invariants = (
        Invariant("started_after_dependencies", started_after_dependencies,
                  "the group starts a resource only once everything it depends on is Online (C4); a dependency "
                  "may fail or restart on its own afterwards"),
        Invariant("dependency_order", dependency_order,
                  "a resource is up only while everything it depends on is up (C4): never started before, "
                  "never stopped before its dependents"),
        Invariant("up_only_with_owner",
                  lambda r: Implies(Exists(ks, lambda k: r.res[k] != OFF), r.owner != NO_NODE),
                  "resources run only for a group that has an owner node"),
        Invariant("offline_means_all_offline",
                  lambda r: Implies(r.is_(OFFLINE, FAILED), all_are(r, OFF)),
                  "an Offline or Failed group has no resource left running"),
        Invariant("online_means_all_online", lambda r: Implies(r.is_(ONLINE), all_are(r, ON)),
                  "an Online group has every resource Online"),
        Invariant("move_has_target",
                  lambda r: If(r.is_(MOVING), And(r.target != NO_NODE, r.target != r.owner), r.target == NO_NODE),
                  "a moving group has a target other than its owner; no other state has a target"),
        Invariant("failovers_within_threshold", lambda r: r.failover_count <= r.failover_threshold,
                  "at most FailoverThreshold failovers per FailoverPeriod (F9)"),
        Invariant("failbacks_within_limit", lambda r: r.failback_count <= r.failback_limit,
                  "at most the allowed failback attempts per FailoverPeriod (F8)"),
    )

    def counts(r: Any) -> tuple[Any, Any, Any]:
        online = Count(r.res[k] == ON for k in ks)
        pending = Count(In(r.res[k], (OP, OFFP, RESTART)) for k in ks)
        failed = Count(r.res[k] == FAILED_R for k in ks)
        return online, pending, failed

    def case(fn: Callable[[Any, Any, Any], Any]) -> Callable[[Any], Any]:
        return lambda r: fn(*counts(r))

    group_state = Derived(
        "group_state",
        cases=(
            ("Failed", case(lambda on, pend, fail: fail >= 1)),
            ("Pending", case(lambda on, pend, fail: And(fail == 0, pend >= 1))),
            ("Offline", case(lambda on, pend, fail: And(fail == 0, pend == 0, on == 0))),
            ("Online", case(lambda on, pend, fail: And(fail == 0, pend == 0, on == n))),
            ("PartialOnline", case(lambda on, pend, fail: And(fail == 0, pend == 0, on >= 1, on < n))),
        ),
        doc="CLUSTER_GROUP_STATE derived from the resources",
        priority=("Failed", "Pending", "Offline", "Online", "PartialOnline"),
    )

    fields = (
        Field("res", ResState, (OFF,) * n, "each resource's state as last reported", length=n),
        Field("dep", bool, (False,) * (n * n), "dependency matrix: dep[i*n+j] = resource i depends on j",
              param=True, length=n * n),
        Field("nodes", int, TWO_NODES, "configured nodes (node ids 0..nodes-1)", lo=1, param=True),
        Field("owner", int, NO_NODE, "node that owns the group (-1: none yet)", lo=NO_NODE),
        Field("target", int, NO_NODE, "node a move goes to (-1: no move)", lo=NO_NODE),
        Field("failover_threshold", int, d.failover_threshold(d.FAILOVER_THRESHOLD_NODES_MINUS_ONE, TWO_NODES),
              "failovers allowed per FailoverPeriod (MSCS default: nodes - 1)",
              lo=0, param=True),
        Field("failover_count", int, 0, "failovers in the current FailoverPeriod", lo=0),
        Field("failover_period_ms", int, d.FAILOVER_PERIOD_MS, "FailoverPeriod", lo=1, param=True),
        Field("failback_policy", FailbackPolicy, d.FAILBACK_POLICY, "AutoFailbackType", param=True),
        Field("failback_window_start", int, d.FAILBACK_WINDOW_NONE, "FailbackWindowStart hour (-1: none)",
              lo=-1, hi=23, param=True),
        Field("failback_window_end", int, d.FAILBACK_WINDOW_NONE, "FailbackWindowEnd hour (-1: none)",
              lo=-1, hi=23, param=True),
        Field("failback_limit", int, d.FAILBACK_ATTEMPT_LIMIT, "failback attempts per FailoverPeriod",
              lo=0, param=True),
        Field("failback_count", int, 0, "failback attempts in the current FailoverPeriod", lo=0),
    )
    domain = (
        Invariant("owner_is_a_node", lambda r: r.owner < r.nodes, "owner must be -1 or a configured node id"),
        Invariant("target_is_a_node", lambda r: r.target < r.nodes, "target must be -1 or a configured node id"),
        Invariant("no_self_dependency", lambda r: ForAll(ks, lambda k: Not(dep(r, k, k))),
                  "a resource cannot depend on itself"),
    )
    res_arg = Arg("i", 0, n, "index of the resource in the group", hi_max=n)
    node_arg = Arg("node", 0, lambda r: r.nodes, "node id", hi_max=8)
    events = (
        Event("online", "bring the group online on a node (administrator or failover manager)", (node_arg,)),
        Event("offline", "take the group offline"),
        Event("move", "manual move to another node", (node_arg,)),
        Event("failover_requested", "a resource exhausted its restarts with RestartAction=RestartNotify"),
        Event("preferred_node_returned", "a node earlier in the preferred list is up again",
              (node_arg, Arg("hour", 0, HOURS_PER_DAY, "local hour of day", hi_max=HOURS_PER_DAY))),
        Event("failover_period_elapsed", "the FailoverPeriod timer fired"),
        Event("owner_halted", "the owner node stopped all its resources (node failure, leave, eviction, "
              "lost quorum)"),
        *(Event(t, f"report from resource i: {why}", (res_arg,)) for t, (_, _, why) in reports.items()),
    )
    return Spec(
        name="group",
        doc=__doc__ or "",
        states=STATES,
        initial=OFFLINE,
        fields=fields,
        events=events,
        transitions=tuple(rows),
        ignored=ignored,
        invariants=invariants,
        domain=domain,
        derived=(group_state,),
        state_docs={
            OFFLINE: "every resource Offline",
            ONLINE_PENDING: "goal online: starting resources in dependency order",
            ONLINE: "every resource Online",
            OFFLINE_PENDING: "goal offline: stopping resources in reverse dependency order",
            MOVING: "manual move or failback: offline here, then online on the target",
            FAILING_OVER: "a resource failed: offline here, then the failover manager places the group",
            FAILING: "failover threshold reached: going offline to stay Failed",
            FAILED: "offline after too many failovers; an administrator must bring it online",
        },
    )


#: The group machine drawn in diagrams and checked by default (3 resources).
SPEC = make_group_spec(3)
