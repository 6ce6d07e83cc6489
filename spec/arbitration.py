"""Quorum disk arbitration: MSCS challenge/defense (REQUIREMENTS Q3, C6, C7, O2).

One instance per node, in a cluster of ``n`` nodes, talking to the quorum
disk's reservation device (:mod:`wolfpack.spec.reservation`) with
``command`` effects and receiving its answers as events
(``shared/reference/mscs-algorithms.md`` §5.2, ``scsi-and-timing.md`` §5):

* **Challenge.** A node that must get the quorum (forming, or it cannot
  reach the owner) resets the bus/LUN, which breaks any reservation, waits
  ``challenge_wait_ms`` (W), then reserves.  RESERVATION CONFLICT means a
  live owner re-reserved during the wait: the challenger lost.  Success
  means nobody defended: the challenger owns the quorum (report ``won``).
* **Defense.** The owner re-reserves every ``renew_period_ms`` (T), the
  "SCSI maintenance command".  A renewal that conflicts, fails, or is not
  answered within ``reserve_timeout_ms`` (D) means the reservation is gone:
  the node reports ``lost_quorum`` and its node machine halts and stops
  every resource (self-fencing).
* ``release`` gives the quorum up in order (the Physical Disk resource's
  Release); ``crash`` is the node dying: its arbitration state is gone, its
  reservation stays on the device until a challenger resets it.

Safety (proved in ``wolfpack.proofs.arbitration_model`` for every timing):
a node believes it owns the quorum only while it holds the reservation or
while the device has a unit attention waiting for it, i.e. until its next
command, which then either re-reserves or fails.

Timing (not needed for safety).  If every command reaches the device
within D and every answer is back within D of the command (slower answers
time out), an owner's successive renewals run at most ``T + jitter + 2D``
apart, and a reset reaches the device at most D after the challenger starts
its wait.  So a live owner re-reserves before a single challenger's RESERVE
when ``renew_period + jitter + 3 * reserve_timeout < challenge_wait``, and
an owner whose reservation was taken reports ``lost_quorum`` at most
``T + jitter + 3D`` later (the self-fencing bound).  Even then two
challengers can unseat a timely owner: the second one's reset breaks the
owner's fresh renewal just before the first one's RESERVE.  The owner
learns at its next renewal, so a new owner must wait out the self-fencing
bound before it takes over groups (design decision 3).

Choices where MSCS is silent:

* The renewal timer is armed when a RESERVE is answered, not on a fixed
  grid, so a slow answer delays the next renewal rather than queueing two.
* An unanswered RESERVE (device or path stalled past D) counts as a lost
  reservation, for the challenger and for the owner alike.
* A challenger that loses also reports ``lost_quorum``: its partition has no
  quorum.  From ``Lost`` (and ``Idle``) a node may challenge again.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec.core import Derived, Effect, Event, Field, Ignore, Spec, Transition

IDLE = "Idle"
CHALLENGING = "Challenging"
RESERVING = "Reserving"
DEFENDING = "Defending"
RENEWING = "Renewing"
LOST = "Lost"
STATES = (IDLE, CHALLENGING, RESERVING, DEFENDING, RENEWING, LOST)

#: States in which the node believes it owns the quorum disk.
OWNER = (DEFENDING, RENEWING)
#: States in which a RESERVE of this node is waiting for its answer.
AWAITING_ANSWER = (RESERVING, RENEWING)
#: The device's answers to a RESERVE (events of this machine, reports of the device).
ANSWERS = ("reserve_ok", "reserve_conflict", "reserve_failed")

RENEW_PERIOD_MS = d.RENEW_PERIOD_MS
CHALLENGE_WAIT_MS = d.CHALLENGE_WAIT_MS
RESERVE_TIMEOUT_MS = d.RESERVE_TIMEOUT_MS


def believes_owner(r: Any) -> Any:
    """The node believes it owns the quorum disk (Defending or Renewing)."""
    return r.is_(*OWNER)


# --- effects -----------------------------------------------------------------------------


def _command(name: str) -> Effect:
    return Effect("command", name, lambda r, e, r2: {"node": r.me})


def _start(timer: str, param: str) -> Effect:
    return Effect("start_timer", timer, lambda r, e, r2: {"ms": getattr(r, param)})


RESET, RESERVE, RELEASE = _command("reset"), _command("reserve"), _command("release")
START_WAIT = _start("challenge_wait_elapsed", "challenge_wait_ms")
START_RENEW = _start("renew_elapsed", "renew_period_ms")
START_ANSWER_TIMEOUT = _start("reserve_timeout", "reserve_timeout_ms")
CANCEL_WAIT = Effect("cancel_timer", "challenge_wait_elapsed")
CANCEL_RENEW = Effect("cancel_timer", "renew_elapsed")
CANCEL_ANSWER_TIMEOUT = Effect("cancel_timer", "reserve_timeout")
WON = Effect("report", "won")
LOST_QUORUM = Effect("report", "lost_quorum")
RELEASED = Effect("report", "released")


def _losing_rows(trigger: str, why: str) -> tuple[Transition, ...]:
    return (
        Transition(trigger, (RESERVING,), LOST, effects=(CANCEL_ANSWER_TIMEOUT, LOST_QUORUM),
                   doc=f"challenge lost: {why}; this partition has no quorum"),
        Transition(trigger, (RENEWING,), LOST, effects=(CANCEL_ANSWER_TIMEOUT, LOST_QUORUM),
                   doc=f"renewal failed: {why}; ownership is lost, the node halts and stops every resource"),
    )


TRANSITIONS: tuple[Transition, ...] = (
    Transition("arbitrate", (IDLE, LOST), CHALLENGING, effects=(RESET, START_WAIT),
               doc="challenge: reset the bus/LUN (breaks any reservation), then wait W for a live owner to defend"),
    Transition("challenge_wait_elapsed", (CHALLENGING,), RESERVING, effects=(RESERVE, START_ANSWER_TIMEOUT),
               doc="the wait is over: reserve"),
    Transition("reserve_ok", (RESERVING,), DEFENDING, effects=(CANCEL_ANSWER_TIMEOUT, START_RENEW, WON),
               doc="nobody defended: this node owns the quorum disk and starts renewing every T"),
    Transition("reserve_ok", (RENEWING,), DEFENDING, effects=(CANCEL_ANSWER_TIMEOUT, START_RENEW),
               doc="renewed: still the owner"),
    *_losing_rows("reserve_conflict", "another node holds the reservation"),
    *_losing_rows("reserve_failed", "the device failed the RESERVE"),
    *_losing_rows("reserve_timeout", "the RESERVE was not answered within D"),
    Transition("renew_elapsed", (DEFENDING,), RENEWING, effects=(RESERVE, START_ANSWER_TIMEOUT),
               doc="defend: re-reserve (the SCSI maintenance command)"),
    Transition("release", (DEFENDING,), IDLE, effects=(CANCEL_RENEW, RELEASE, RELEASED),
               doc="give the quorum disk up in order"),
    Transition("release", AWAITING_ANSWER, IDLE, effects=(CANCEL_ANSWER_TIMEOUT, RELEASE, RELEASED),
               doc="give up; the RELEASE runs after the RESERVE in flight, so the device ends up free of us"),
    Transition("release", (CHALLENGING,), IDLE, effects=(CANCEL_WAIT, RELEASED),
               doc="abandon the challenge before reserving"),
    Transition("crash", (CHALLENGING, RESERVING, DEFENDING, RENEWING, LOST), IDLE,
               doc="the node died: its arbitration state is gone (a reservation it held stays on the device)"),
)


def _all_but(*states: str) -> tuple[str, ...]:
    return tuple(s for s in STATES if s not in states)


_STALE_TIMER = "a timer of a phase that already ended"
_STALE_ANSWER = "an answer to a RESERVE this node no longer waits for"

IGNORED: tuple[Ignore, ...] = (
    Ignore("arbitrate", (CHALLENGING, RESERVING), "already challenging"),
    Ignore("arbitrate", OWNER, "already owns the quorum disk"),
    Ignore("challenge_wait_elapsed", _all_but(CHALLENGING), _STALE_TIMER),
    Ignore("renew_elapsed", _all_but(DEFENDING), _STALE_TIMER),
    Ignore("reserve_timeout", _all_but(*AWAITING_ANSWER), _STALE_TIMER),
    *(Ignore(answer, _all_but(*AWAITING_ANSWER), _STALE_ANSWER) for answer in ANSWERS),
    Ignore("release", (IDLE, LOST), "this node neither owns nor challenges for the quorum disk"),
    Ignore("crash", (IDLE,), "nothing to lose"),
)

EVENTS = (
    Event("arbitrate", "get the quorum: the node forms a cluster or cannot reach the owner"),
    Event("challenge_wait_elapsed", "the challenger's wait W after its reset is over"),
    Event("renew_elapsed", "the owner's renewal period T is over"),
    Event("reserve_timeout", "no answer to this node's RESERVE within D"),
    Event("reserve_ok", "the device: this node's RESERVE succeeded (it holds the reservation)"),
    Event("reserve_conflict", "the device: RESERVATION CONFLICT, another node holds the reservation"),
    Event("reserve_failed", "the device: the RESERVE failed (device or path error)"),
    Event("release", "give the quorum disk up (orderly shutdown, quorum moved)"),
    Event("crash", "the node died or its cluster service was killed"),
)

ROLE = Derived(
    "role",
    cases=(
        ("none", lambda r: r.is_(IDLE, LOST)),
        ("challenger", lambda r: r.is_(CHALLENGING, RESERVING)),
        ("owner", believes_owner),
    ),
    doc="what the node is to the quorum disk: nothing, a challenger, or the owner",
)


@cache
def make_arbitration_spec(n: int) -> Spec:
    """The arbitration machine of one node (``me``) in a cluster of ``n`` >= 1 nodes."""
    if n < 1:
        raise ValueError("a cluster has at least one node")
    fields = (
        Field("me", int, 0, "this node's id (its SCSI initiator)", lo=0, hi=n - 1, param=True),
        Field("renew_period_ms", int, RENEW_PERIOD_MS, "T: the owner re-reserves every T", lo=1, param=True),
        Field("challenge_wait_ms", int, CHALLENGE_WAIT_MS, "W: a challenger's wait between reset and reserve",
              lo=1, param=True),
        Field("reserve_timeout_ms", int, RESERVE_TIMEOUT_MS, "D: longest wait for the answer to a RESERVE",
              lo=1, param=True),
    )
    return Spec(
        name="arbitration",
        doc=__doc__ or "",
        states=STATES,
        initial=IDLE,
        fields=fields,
        events=EVENTS,
        transitions=TRANSITIONS,
        ignored=IGNORED,
        derived=(ROLE,),
        state_docs={
            IDLE: "neither owns nor challenges for the quorum disk",
            CHALLENGING: "reset sent; waiting W for a live owner to defend",
            RESERVING: "RESERVE sent after the wait; waiting for the answer",
            DEFENDING: "owns the quorum disk; re-reserves every T",
            RENEWING: "owns the quorum disk; renewal RESERVE sent, waiting for the answer",
            LOST: "lost the challenge or the reservation: the node halted its resources",
        },
    )


#: The machine drawn in diagrams and checked by default (a node of a 3-node cluster).
SPEC = make_arbitration_spec(3)
