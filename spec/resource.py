"""The resource machine (REQUIREMENTS C2, R2, R3, F3).

One instance per resource on the node that owns its group.  It follows the
MSCS resource states (CLUSTER_RESOURCE_STATE) and the resource monitor's
rules: entry-point results, pending operations supervised by PendingTimeout,
LooksAlive failure triggering an immediate IsAlive, IsAlive failure, and the
restart policy (RestartAction, RestartThreshold within RestartPeriod,
RestartDelay, RetryPeriodOnFailure).

One state is Wolfpack's own: ``Restarting`` is the RestartDelay pause after a
failure that the policy will restart locally (MSCS shows it as Failed; a
separate state makes the policy visible in diagrams and proofs).

Choices where MSCS is silent (documented here, proved in ``wolfpack verify``):

* Every failure path calls Terminate first, so nothing half-started lingers.
* A failed or timed-out *Offline* calls Terminate and ends in Offline: the
  administrator asked for Offline and Terminate is ungraceful but final.
* A manual online of a Failed resource resets its restart count.
* The restart window is tumbling: the first restart of a window arms the
  RestartPeriod timer; when it fires the count starts again from zero.
"""

from __future__ import annotations

from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec.core import Effect, Event, Field, Ignore, Invariant, Spec, Transition
from wolfpack.spec.defaults import RestartAction
from wolfpack.spec.expr import And, If, Not

OFFLINE = "Offline"
ONLINE_PENDING = "OnlinePending"
ONLINE = "Online"
OFFLINE_PENDING = "OfflinePending"
FAILED = "Failed"
RESTARTING = "Restarting"

STATES = (OFFLINE, ONLINE_PENDING, ONLINE, OFFLINE_PENDING, FAILED, RESTARTING)
ALL = STATES

# --- guards (named: diagrams and proofs show the names) -----------------------


def restart_allowed(r: Any, e: Any) -> Any:
    """The policy restarts locally: not DontRestart, and the window has room."""
    return And(r.restart_action != RestartAction.DONT_RESTART, r.restart_count < r.restart_threshold)


def restart_exhausted(r: Any, e: Any) -> Any:
    """The negation of :func:`restart_allowed` (the resource stays Failed)."""
    return Not(restart_allowed(r, e))


def notify_group(r: Any, e: Any) -> Any:
    """RestartAction says: once restarts are exhausted, fail the group over."""
    return r.restart_action == RestartAction.RESTART_NOTIFY


def first_restart_in_window(r: Any, e: Any) -> Any:
    return r.restart_count == 0


# --- effects -------------------------------------------------------------------


def _call(entry: str) -> Effect:
    return Effect("call", entry)


def _pending_timer() -> Effect:
    return Effect("start_timer", "pending_timeout", lambda r, e, r2: {"ms": r.pending_timeout_ms})


CANCEL_PENDING = Effect("cancel_timer", "pending_timeout")
CANCEL_RESTART_DELAY = Effect("cancel_timer", "restart_delay_elapsed")
CANCEL_RETRY = Effect("cancel_timer", "retry_period_elapsed")
START_ONLINE = (_call("Online"), _pending_timer())
REPORT_OFFLINE = Effect("report", "offline")


def _failure_rows(trigger: str, source: str, doc: str) -> tuple[Transition, ...]:
    """What every failure does: Terminate, then restart locally or stay Failed."""
    return (
        Transition(
            trigger,
            (source,),
            RESTARTING,
            guard=restart_allowed,
            update=lambda r, e: {"restart_count": r.restart_count + 1},
            effects=(
                CANCEL_PENDING,
                _call("Terminate"),
                Effect("start_timer", "restart_delay_elapsed", lambda r, e, r2: {"ms": r.restart_delay_ms}),
                Effect(
                    "start_timer",
                    "restart_period_elapsed",
                    lambda r, e, r2: {"ms": r.restart_period_ms},
                    when=first_restart_in_window,
                ),
                Effect("report", "restarting", lambda r, e, r2: {"restart": r2.restart_count}),
            ),
            doc=f"{doc}; the restart policy allows a local restart after RestartDelay",
        ),
        Transition(
            trigger,
            (source,),
            FAILED,
            guard=restart_exhausted,
            effects=(
                CANCEL_PENDING,
                _call("Terminate"),
                Effect("start_timer", "retry_period_elapsed", lambda r, e, r2: {"ms": r.retry_period_ms}),
                Effect("report", "failed", lambda r, e, r2: {"failover": bool(notify_group(r, e))}),
                Effect("report", "group_failover_requested", when=notify_group),
            ),
            doc=f"{doc}; restarts exhausted (or DontRestart): Failed; the group fails over if RestartAction says so",
        ),
    )


TRANSITIONS: tuple[Transition, ...] = (
    Transition("online", (OFFLINE,), ONLINE_PENDING, effects=START_ONLINE, doc="call Online under PendingTimeout"),
    Transition(
        "online",
        (FAILED,),
        ONLINE_PENDING,
        update=lambda r, e: {"restart_count": 0},
        effects=(CANCEL_RETRY, *START_ONLINE),
        doc="a manual online of a failed resource starts a fresh restart window",
    ),
    Transition("online_pending", (ONLINE_PENDING,), None, effects=(_pending_timer(),),
               doc="Online returned pending, or a progress report: PendingTimeout starts again"),
    Transition("online_succeeded", (ONLINE_PENDING,), ONLINE, effects=(CANCEL_PENDING, Effect("report", "online")),
               doc="Online returned success or the pending operation reported Online"),
    *_failure_rows("online_failed", ONLINE_PENDING, "Online returned an error"),
    *_failure_rows("pending_timeout", ONLINE_PENDING, "no status report within PendingTimeout"),
    Transition("looks_alive_failed", (ONLINE,), None, effects=(_call("IsAlive"),),
               doc="LooksAlive said no: run IsAlive at once"),
    *_failure_rows("is_alive_failed", ONLINE, "IsAlive said the resource is dead"),
    Transition("offline", (ONLINE, ONLINE_PENDING), OFFLINE_PENDING,
               effects=(CANCEL_PENDING, _call("Offline"), _pending_timer()), doc="call Offline under PendingTimeout"),
    Transition("offline", (FAILED,), OFFLINE, update=lambda r, e: {"restart_count": 0},
               effects=(CANCEL_RETRY, REPORT_OFFLINE), doc="clear a failure (Terminate already ran)"),
    Transition("offline", (RESTARTING,), OFFLINE, effects=(CANCEL_RESTART_DELAY, REPORT_OFFLINE),
               doc="cancel the scheduled restart"),
    Transition("offline_pending", (OFFLINE_PENDING,), None, effects=(_pending_timer(),),
               doc="Offline returned pending, or a progress report"),
    Transition("offline_succeeded", (OFFLINE_PENDING,), OFFLINE, effects=(CANCEL_PENDING, REPORT_OFFLINE),
               doc="Offline returned success or the pending operation reported Offline"),
    Transition("offline_failed", (OFFLINE_PENDING,), OFFLINE,
               effects=(CANCEL_PENDING, _call("Terminate"), REPORT_OFFLINE),
               doc="Offline failed: Terminate makes it offline"),
    Transition("pending_timeout", (OFFLINE_PENDING,), OFFLINE,
               effects=(_call("Terminate"), REPORT_OFFLINE), doc="Offline hung past PendingTimeout: Terminate"),
    Transition(
        "terminate",
        (ONLINE, ONLINE_PENDING, OFFLINE_PENDING, RESTARTING, FAILED),
        OFFLINE,
        effects=(CANCEL_PENDING, CANCEL_RESTART_DELAY, CANCEL_RETRY, _call("Terminate"), REPORT_OFFLINE),
        doc="ungraceful stop (failover manager, halting node)",
    ),
    Transition("restart_delay_elapsed", (RESTARTING,), ONLINE_PENDING, effects=START_ONLINE,
               doc="RestartDelay is over: call Online again"),
    Transition("restart_period_elapsed", ALL, None, update=lambda r, e: {"restart_count": 0},
               doc="RestartPeriod is over: a new restart window begins"),
    Transition(
        "retry_period_elapsed",
        (FAILED,),
        ONLINE_PENDING,
        update=lambda r, e: {"restart_count": 0},
        effects=START_ONLINE,
        doc="RetryPeriodOnFailure is over: try once more with a fresh window",
    ),
)

_STALE = "a late report or timer from an operation that already ended"


def _all_but(*states: str) -> tuple[str, ...]:
    return tuple(s for s in STATES if s not in states)


IGNORED: tuple[Ignore, ...] = (
    Ignore("online", (ONLINE, ONLINE_PENDING, RESTARTING), "already online or coming online"),
    Ignore("online", (OFFLINE_PENDING,),
           "the resource is going offline; wait until it is Offline, then bring it online", reject=True),
    Ignore("offline", (OFFLINE, OFFLINE_PENDING), "already offline or going offline"),
    *(Ignore(t, _all_but(ONLINE_PENDING), _STALE) for t in ("online_pending", "online_succeeded", "online_failed")),
    *(Ignore(t, _all_but(OFFLINE_PENDING), _STALE) for t in ("offline_pending", "offline_succeeded", "offline_failed")),
    Ignore("pending_timeout", _all_but(ONLINE_PENDING, OFFLINE_PENDING), _STALE),
    Ignore("looks_alive_failed", _all_but(ONLINE), "health checks only matter while Online"),
    Ignore("is_alive_failed", _all_but(ONLINE), "health checks only matter while Online"),
    Ignore("terminate", (OFFLINE,), "nothing runs"),
    Ignore("restart_delay_elapsed", _all_but(RESTARTING), _STALE),
    Ignore("retry_period_elapsed", _all_but(FAILED), _STALE),
)

FIELDS = (
    Field("restart_action", RestartAction, d.RESTART_ACTION, "MSCS RestartAction", param=True),
    Field("restart_threshold", int, d.RESTART_THRESHOLD, "restarts allowed per RestartPeriod", lo=0, param=True),
    Field("pending_timeout_ms", int, d.PENDING_TIMEOUT_MS, "PendingTimeout", lo=1, param=True),
    Field("restart_period_ms", int, d.RESTART_PERIOD_MS, "RestartPeriod", lo=1, param=True),
    Field("restart_delay_ms", int, d.RESTART_DELAY_MS, "RestartDelay", lo=0, param=True),
    Field("retry_period_ms", int, d.RETRY_PERIOD_ON_FAILURE_MS, "RetryPeriodOnFailure", lo=1, param=True),
    Field("restart_count", int, 0, "local restarts in the current RestartPeriod", lo=0),
)

EVENTS = (
    Event("online", "bring the resource online (administrator or failover manager)"),
    Event("offline", "take the resource offline gracefully"),
    Event("online_pending", "Online returned ERROR_IO_PENDING, or a pending Online reported progress"),
    Event("online_succeeded", "Online returned success, or a pending Online reported Online"),
    Event("online_failed", "Online returned an error, or a pending Online reported Failed"),
    Event("offline_pending", "Offline returned ERROR_IO_PENDING, or a pending Offline reported progress"),
    Event("offline_succeeded", "Offline returned success, or a pending Offline reported Offline"),
    Event("offline_failed", "Offline returned an error, or a pending Offline reported Failed"),
    Event("pending_timeout", "the PendingTimeout timer fired"),
    Event("looks_alive_failed", "LooksAlive returned false"),
    Event("is_alive_failed", "IsAlive returned false"),
    Event("terminate", "stop the resource now, ungracefully"),
    Event("restart_delay_elapsed", "the RestartDelay timer fired"),
    Event("restart_period_elapsed", "the RestartPeriod timer fired"),
    Event("retry_period_elapsed", "the RetryPeriodOnFailure timer fired"),
)

INVARIANTS = (
    Invariant(
        "restarts_within_threshold",
        lambda r: r.restart_count <= r.restart_threshold,
        "a resource is never restarted more than RestartThreshold times in one RestartPeriod",
    ),
    Invariant(
        "restart_only_if_policy_allows",
        lambda r: If(r.is_(RESTARTING), r.restart_action != RestartAction.DONT_RESTART, True),
        "a resource whose RestartAction is DontRestart is never restarted locally",
    ),
)

SPEC = Spec(
    name="resource",
    doc=__doc__ or "",
    states=STATES,
    initial=OFFLINE,
    fields=FIELDS,
    events=EVENTS,
    transitions=TRANSITIONS,
    ignored=IGNORED,
    invariants=INVARIANTS,
    state_docs={
        OFFLINE: "not running on this node",
        ONLINE_PENDING: "Online called; waiting for success, failure or PendingTimeout",
        ONLINE: "running; LooksAlive/IsAlive polled",
        OFFLINE_PENDING: "Offline called; waiting for success, failure or PendingTimeout",
        FAILED: "failed, restarts exhausted; retried after RetryPeriodOnFailure",
        RESTARTING: "failed; local restart after RestartDelay",
    },
)
