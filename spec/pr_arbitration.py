"""Quorum disk arbitration with SCSI-3 persistent reservations (the successor of MSCS's SCSI-2 challenge/defense).

One instance per node, talking to the disk's persistent reservation
(:mod:`wolfpack.spec.persistent_reservation`) with ``command`` effects and
receiving its answers as events.  Every node has its own key (cluster id +
node id, as fence_scsi: ``wolfpack.hw.keys``); the owner holds a Write
Exclusive - Registrants Only (type 5) reservation, so only registered nodes
can write, and removing a key fences that node's storage.

* **Challenge.**  The node registers its key, then reserves.  An unreserved
  disk is won at once (nobody defends a disk nobody reserves).  A RESERVATION
  CONFLICT means someone holds it: the challenger reads the holder (the
  *rival*), waits ``challenge_wait_ms`` (W) with its key registered (that
  registration *is* the challenge), then preempts the rival's key and reserves.
* **Defense.**  The owner reads the keys every ``renew_period_ms`` (T).  Its own
  key gone means it was preempted: ``lost_quorum`` (it is already fenced: its
  writes conflict).  Another key registered is a challenge: the owner
  preempts it (the challenger's own PREEMPT then conflicts: it lost), and
  reads the keys again.  A live owner thus keeps the disk when
  ``T + jitter + 3D < W`` (the SCSI-2 machine's obligation
  ``renew_before_challenge``, with the same T, W and D: the owner's read, its
  preempt and their answers fit in the challenger's wait).
* **Storage fencing.**  The winner's PREEMPT removes the old owner's key and
  takes its reservation in one command: from then on the old owner cannot
  write, whatever its state.  The owner's defense preempts every other key it
  sees, so an evicted node that registered is fenced at the owner's next check.
* **PREEMPT AND ABORT, degraded to PREEMPT.**  Preempts are sent as PREEMPT
  AND ABORT (the victim's queued writes are aborted too).  A target without it
  (tgt) answers ILLEGAL REQUEST 24/00 (``preempt_unsupported``): the node
  reports ``degraded`` and preempts with plain PREEMPT from then on
  (``abort`` false): a write the victim had in flight may still land.
* ``release`` unregisters the key (which ends the reservation); any failed or
  unanswered command (``failed``, ``answer_timeout`` after D) is a lost
  quorum, for a challenger and an owner alike.

Safety (``wolfpack.proofs.pr_arbitration_model``, every timing): a node that
believes it owns the disk holds the reservation or is not registered (so it
cannot write); at most one such node is registered; a fenced node starts no
write; with PREEMPT AND ABORT no write of a fenced node is in flight.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec.core import Arg, Derived, Effect, Event, Field, Ignore, Spec, Transition, named
from wolfpack.spec.expr import And, If, Not, Or

IDLE = "Idle"
REGISTERING = "Registering"
RESERVING = "Reserving"
INQUIRING = "Inquiring"
CHALLENGING = "Challenging"
PREEMPTING = "Preempting"
DEFENDING = "Defending"
CHECKING = "Checking"
EXPELLING = "Expelling"
LOST = "Lost"
STATES = (IDLE, REGISTERING, RESERVING, INQUIRING, CHALLENGING, PREEMPTING, DEFENDING, CHECKING, EXPELLING, LOST)

#: States in which the node believes it owns the quorum disk.
OWNER = (DEFENDING, CHECKING, EXPELLING)
#: States waiting for the answer of a command (the command each waits for, as a device command name).
WAITING = {REGISTERING: "register", RESERVING: "reserve", INQUIRING: "read_reservation",
           PREEMPTING: "preempt", CHECKING: "read_keys", EXPELLING: "preempt"}
ANSWERS = ("registered", "reserve_ok", "reserve_conflict", "reservation", "keys", "preempt_ok", "preempt_conflict",
           "preempt_unsupported", "failed")
NOBODY = -1


def believes_owner(r: Any) -> Any:
    return r.is_(*OWNER)


def _command(name: str, **extra: Any) -> Effect:
    def args(r: Any, e: Any, r2: Any) -> dict[str, Any]:
        values = {"node": r.me}
        if name == "preempt":
            values |= {"victim": r.rival, "abort": extra.get("abort", If(r.abort, 1, 0))}
        return values

    return Effect("command", name, args)


def _start(timer: str, param: str | None) -> Effect:
    return Effect("start_timer", timer, lambda r, e, r2: {"ms": getattr(r, param) if param else 0})


REGISTER, RESERVE, READ_KEYS, READ_RESERVATION = (_command(c) for c in ("register", "reserve", "read_keys",
                                                                        "read_reservation"))
PREEMPT, PREEMPT_PLAIN, RELEASE = _command("preempt"), _command("preempt", abort=0), _command("release")
START_WAIT = _start("challenge_wait_elapsed", "challenge_wait_ms")
START_RENEW = _start("renew_elapsed", "renew_period_ms")
START_ANSWER = _start("answer_timeout", "reserve_timeout_ms")
START_SEND = _start("send", None)
CANCEL_WAIT, CANCEL_RENEW, CANCEL_ANSWER, CANCEL_SEND = (Effect("cancel_timer", t) for t in (
    "challenge_wait_elapsed", "renew_elapsed", "answer_timeout", "send"))
WON, LOST_QUORUM, RELEASED = Effect("report", "won"), Effect("report", "lost_quorum"), Effect("report", "released")
DEGRADED = Effect("report", "degraded", lambda r, e, r2: {"reason": 1})
FENCED = Effect("report", "fenced", lambda r, e, r2: {"node": r.rival})

FREE_OR_MINE = named("free_or_mine", lambda r, e: Or(e.holder == NOBODY, e.holder == r.me))
HELD_BY_OTHER = named("held_by_other", lambda r, e: And(e.holder != NOBODY, e.holder != r.me))
KEY_GONE = named("key_gone", lambda r, e: e.mine == 0)
ALONE = named("alone", lambda r, e: And(e.mine == 1, e.rival == NOBODY))
CHALLENGED = named("challenged", lambda r, e: And(e.mine == 1, e.rival != NOBODY, e.rival != r.me))
NOT_MINE = named("rival_is_me", lambda r, e: And(e.mine == 1, e.rival == r.me))

_LOSE = (CANCEL_ANSWER, LOST_QUORUM)
_CHALLENGER_WAITING = (REGISTERING, RESERVING, INQUIRING, PREEMPTING)
_OWNER_WAITING = (CHECKING, EXPELLING)


def _lost(trigger: str, why: str) -> tuple[Transition, ...]:
    return (
        Transition(trigger, _CHALLENGER_WAITING, LOST, effects=_LOSE,
                   doc=f"challenge lost: {why}; this partition has no quorum"),
        Transition(trigger, _OWNER_WAITING, LOST, effects=_LOSE,
                   doc=f"ownership lost: {why}; the node halts and stops every resource"),
    )


SENT = named("sent", lambda r, e: r.sent)
UNSENT = named("not_sent", lambda r, e: Not(r.sent))
#: An answer that leads to another command: the node moves on and sends it in its own next step (``send``,
#: a zero-delay timer), so that every command leaves from a step of the node itself.
NEXT = (CANCEL_ANSWER, START_SEND)


def _next(**changes: Any) -> Any:
    return lambda r, e: {"sent": False, **{k: (v(r, e) if callable(v) else v) for k, v in changes.items()}}


_SEND_COMMANDS = {RESERVING: RESERVE, INQUIRING: READ_RESERVATION, PREEMPTING: PREEMPT, CHECKING: READ_KEYS,
                  EXPELLING: PREEMPT}

TRANSITIONS: tuple[Transition, ...] = (
    Transition("arbitrate", (IDLE, LOST), REGISTERING, update=lambda r, e: {"sent": True},
               effects=(REGISTER, START_ANSWER),
               doc="challenge: register this node's key (REGISTER AND IGNORE EXISTING KEY)"),
    Transition("registered", (REGISTERING,), RESERVING, update=_next(), effects=NEXT,
               doc="registered: reserve next (type 5)"),
    Transition("reserve_ok", (RESERVING,), DEFENDING, effects=(CANCEL_ANSWER, START_RENEW, WON),
               doc="reserved: this node owns the quorum disk; it checks the keys every T"),
    Transition("reserve_conflict", (RESERVING,), INQUIRING, update=_next(), effects=NEXT,
               doc="someone holds the disk: read who next"),
    Transition("reservation", (INQUIRING,), RESERVING, guard=FREE_OR_MINE, update=_next(), effects=NEXT,
               doc="nobody (or this node) holds it now: reserve next"),
    Transition("reservation", (INQUIRING,), CHALLENGING, guard=HELD_BY_OTHER,
               update=lambda r, e: {"rival": e.holder}, effects=(CANCEL_ANSWER, START_WAIT),
               doc="the rival holds it: wait W with this node's key registered (the challenge)"),
    Transition("challenge_wait_elapsed", (CHALLENGING,), PREEMPTING, update=lambda r, e: {"sent": True},
               effects=(PREEMPT, START_ANSWER),
               doc="the rival did not remove our key: preempt its key (storage fencing)"),
    Transition("preempt_ok", (PREEMPTING,), RESERVING, update=_next(), effects=(*NEXT, FENCED),
               doc="the rival is fenced: reserve next (a no-op if the preempt moved its reservation to us)"),
    Transition("preempt_conflict", (PREEMPTING,), LOST, effects=_LOSE,
               doc="our key was removed (a live owner defended) or the rival's key is gone: challenge lost"),
    Transition("preempt_unsupported", (PREEMPTING, EXPELLING), None, update=_next(abort=False),
               effects=(*NEXT, DEGRADED),
               doc="no PREEMPT AND ABORT on this target (tgt): preempt again with PREEMPT, degraded"),
    Transition("renew_elapsed", (DEFENDING,), CHECKING, update=lambda r, e: {"sent": True},
               effects=(READ_KEYS, START_ANSWER), doc="defend: read the registered keys"),
    Transition("keys", (CHECKING,), LOST, guard=KEY_GONE, effects=_LOSE,
               doc="our key is gone: we were preempted (fenced); the node halts and stops every resource"),
    Transition("keys", (CHECKING,), DEFENDING, guard=ALONE, effects=(CANCEL_ANSWER, START_RENEW),
               doc="only our key: still the owner"),
    Transition("keys", (CHECKING,), EXPELLING, guard=CHALLENGED, update=_next(rival=lambda r, e: e.rival),
               effects=NEXT, doc="another key is registered (a challenger or an evicted node): preempt it next"),
    Transition("keys", (CHECKING,), LOST, guard=NOT_MINE, effects=_LOSE,
               doc="the device names us as our own rival: a device answer that cannot be trusted"),
    Transition("preempt_ok", (EXPELLING,), CHECKING, update=_next(), effects=(*NEXT, FENCED),
               doc="fenced it; read the keys again next (there may be more)"),
    Transition("preempt_conflict", (EXPELLING,), CHECKING, update=_next(), effects=NEXT,
               doc="the other key went away first, or ours did: read the keys next to know which"),
    *(Transition("send", (state,), None, guard=UNSENT, update=lambda r, e: {"sent": True},
                 effects=(command, START_ANSWER), doc=f"send the {command.name} this state waits for")
      for state, command in _SEND_COMMANDS.items()),
    Transition("send", tuple(_SEND_COMMANDS), None, guard=SENT, doc="already sent: a stale send timer"),
    *_lost("failed", "the device failed the command"),
    *_lost("answer_timeout", "no answer within D"),
    Transition("release", (DEFENDING,), IDLE, effects=(CANCEL_RENEW, RELEASE, RELEASED),
               doc="give the quorum disk up: unregister (ends the reservation)"),
    Transition("release", (*_CHALLENGER_WAITING, *_OWNER_WAITING), IDLE,
               effects=(CANCEL_ANSWER, CANCEL_SEND, RELEASE, RELEASED),
               doc="give up; the unregister runs after the command in flight"),
    Transition("release", (CHALLENGING,), IDLE, effects=(CANCEL_WAIT, RELEASE, RELEASED),
               doc="abandon the challenge: unregister"),
    Transition("crash", STATES[1:], IDLE, update=lambda r, e: {"sent": True},
               doc="the node died: its state is gone (its key stays registered until someone preempts it)"),
)

_STALE_TIMER = "a timer of a phase that already ended"
_STALE_ANSWER = "an answer to a command this node no longer waits for"


def _all_but(*states: str) -> tuple[str, ...]:
    return tuple(s for s in STATES if s not in states)


def _handled(trigger: str) -> tuple[str, ...]:
    return tuple(s for t in TRANSITIONS if t.trigger == trigger for s in t.source)


IGNORED: tuple[Ignore, ...] = (
    Ignore("arbitrate", _all_but(IDLE, LOST), "already challenging or owning the quorum disk"),
    Ignore("challenge_wait_elapsed", _all_but(CHALLENGING), _STALE_TIMER),
    Ignore("renew_elapsed", _all_but(DEFENDING), _STALE_TIMER),
    Ignore("send", _all_but(*_SEND_COMMANDS), _STALE_TIMER),
    Ignore("answer_timeout", _all_but(*WAITING), _STALE_TIMER),
    *(Ignore(a, _all_but(*_handled(a)), _STALE_ANSWER) for a in ANSWERS),
    Ignore("release", (IDLE, LOST), "this node neither owns nor challenges for the quorum disk"),
    Ignore("crash", (IDLE,), "nothing to lose"),
)


@cache
def make_pr_arbitration_spec(n: int) -> Spec:
    """The SCSI-3 arbitration machine of one node (``me``) in a cluster of ``n`` >= 1 nodes."""
    if n < 1:
        raise ValueError("a cluster has at least one node")
    someone = Arg("holder", NOBODY, n, "the reservation holder (-1: none)", hi_max=n)
    events = (
        Event("arbitrate", "get the quorum: the node forms a cluster or cannot reach the owner"),
        Event("challenge_wait_elapsed", "the challenger's wait W is over"),
        Event("renew_elapsed", "the owner's check period T is over"),
        Event("send", "send the command the state waits for (a zero-delay step after an answer)"),
        Event("answer_timeout", "no answer to this node's command within D"),
        Event("registered", "the device: this node's key is registered"),
        Event("reserve_ok", "the device: RESERVE succeeded, this node holds the reservation"),
        Event("reserve_conflict", "the device: RESERVATION CONFLICT on RESERVE"),
        Event("reservation", "the device: READ RESERVATION's holder", (someone,)),
        Event("keys", "the device: READ KEYS (is our key registered, the lowest other registered node)",
              (Arg("mine", 0, 2, "1: our key is registered", hi_max=2),
               Arg("rival", NOBODY, n, "another registered node (-1: none)", hi_max=n))),
        Event("preempt_ok", "the device: PREEMPT succeeded"),
        Event("preempt_conflict", "the device: RESERVATION CONFLICT on PREEMPT"),
        Event("preempt_unsupported", "the device: ILLEGAL REQUEST 24/00 on PREEMPT AND ABORT"),
        Event("failed", "the device: the command failed (device or path error)"),
        Event("release", "give the quorum disk up (orderly shutdown, quorum moved)"),
        Event("crash", "the node died or its cluster service was killed"),
    )
    fields = (
        Field("me", int, 0, "this node's id (its key)", lo=0, hi=n - 1, param=True),
        Field("renew_period_ms", int, d.RENEW_PERIOD_MS, "T: the owner checks the keys every T", lo=1, param=True),
        Field("challenge_wait_ms", int, d.CHALLENGE_WAIT_MS, "W: a challenger's wait, registered, before it preempts",
              lo=1, param=True),
        Field("reserve_timeout_ms", int, d.RESERVE_TIMEOUT_MS, "D: longest wait for the answer to a command",
              lo=1, param=True),
        Field("rival", int, NOBODY, "the node whose key this node means to preempt", lo=NOBODY, hi=n - 1),
        Field("abort", bool, True, "preempt with PREEMPT AND ABORT (false once the target refused it: degraded)"),
        Field("sent", bool, True, "the command the state waits for has been sent"),
    )
    role = Derived("role", cases=(("none", lambda r: r.is_(IDLE, LOST)),
                                  ("challenger", lambda r: r.is_(*_CHALLENGER_WAITING, CHALLENGING)),
                                  ("owner", believes_owner)),
                   doc="what the node is to the quorum disk: nothing, a challenger, or the owner")
    return Spec(
        name="pr_arbitration", doc=__doc__ or "", states=STATES, initial=IDLE, fields=fields, events=events,
        transitions=TRANSITIONS, ignored=IGNORED, derived=(role,),
        state_docs={
            IDLE: "neither owns nor challenges", REGISTERING: "REGISTER sent", RESERVING: "RESERVE sent",
            INQUIRING: "READ RESERVATION sent after a conflict", CHALLENGING: "registered; waiting W",
            PREEMPTING: "PREEMPT of the rival sent", DEFENDING: "owns the disk; checks the keys every T",
            CHECKING: "owns the disk; READ KEYS sent",
            EXPELLING: "owns the disk; PREEMPT of another key (a challenger or an evicted node) sent",
            LOST: "lost the challenge or the disk: the node halted its resources",
        },
    )


#: The machine drawn in diagrams and checked by default (a node of a 3-node cluster).
SPEC = make_pr_arbitration_spec(3)
