"""The quorum disk's reservation device, abstract (REQUIREMENTS Q3, C6, C7).

One instance per quorum disk, shared by the ``n`` nodes (SCSI initiators
``0 .. n-1``).  It follows SCSI-2 RESERVE(6) / RELEASE(6) and reset
(``shared/reference/scsi-and-timing.md`` §3.2, §5; MSCS KB309186):

* ``reserve(node)`` succeeds if the device is free or already reserved by
  that node (a re-reserve is the owner's renewal), else it answers
  RESERVATION CONFLICT;
* ``release(node)`` frees the device if that node holds it; a RELEASE from
  any other node succeeds and changes nothing (SPC-2);
* ``reset`` (bus or LUN reset) breaks the reservation, whoever holds it, and
  raises a *unit attention* for every other initiator;
* faults: ``crash`` (the device is gone: every RESERVE fails, the
  reservation is lost) and ``repair`` (power on: free, unit attention for
  all).  A stall is a matter of time and lives in the simulator
  (:mod:`wolfpack.runtime.sim.device`).

Commands take time, so a RESERVE is **queued** when it arrives
(``reserve``) and **served** later (``serve``), which is when its answer
goes back as a report (``reserve_ok``, ``reserve_conflict`` or
``reserve_failed``, with the node).  Each initiator has at most one RESERVE
queued (a second one from the same node before the first is served is the
same command); a RELEASE or a reset from a node runs after that node's
queued RESERVE (commands of one initiator run in order), so they serve it
first, and its answer goes back then.  RELEASE and reset have no answer of
their own.

``unit_attention[k]`` is SCSI's unit attention condition: set for node
``k`` by a reset or a power cycle it did not issue, cleared when ``k``'s
next command runs (the initiator retries past it, so commands still
execute; a command of a failed device clears nothing).  It
records, in the device, that ``k`` has not sent anything since its
reservation could have been broken: the composed proof uses it to state
that an owner's belief is stale only until its next command.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition
from wolfpack.spec.expr import And, If, Implies, Not, Or, Select, Store

ONLINE = "Online"
FAILED = "Failed"
STATES = (ONLINE, FAILED)

#: ``holder`` of a free device.
FREE = -1

OK, CONFLICT, ERROR = "reserve_ok", "reserve_conflict", "reserve_failed"
ANSWERS = (OK, CONFLICT, ERROR)


# --- guards (named: diagrams and proofs show the names) -----------------------------


def free_or_mine(r: Any, e: Any) -> Any:
    """A RESERVE from ``e.node`` succeeds: the device is free or already reserved by it."""
    return Or(r.holder == FREE, r.holder == e.node)


def held_by_other(r: Any, e: Any) -> Any:
    return Not(free_or_mine(r, e))


def queued(r: Any, e: Any) -> Any:
    """``e.node`` has a RESERVE waiting to be served."""
    return Select(r.pending, e.node)


def nothing_queued(r: Any, e: Any) -> Any:
    return Not(queued(r, e))


def queued_and_free_or_mine(r: Any, e: Any) -> Any:
    return And(queued(r, e), free_or_mine(r, e))


def queued_and_held_by_other(r: Any, e: Any) -> Any:
    return And(queued(r, e), held_by_other(r, e))


# --- updates ------------------------------------------------------------------------


def _served(r: Any, e: Any) -> dict[str, Any]:
    """The node's queued RESERVE runs (if any): it gets the device when free or its own."""
    q = queued(r, e)
    return {
        "holder": If(And(q, free_or_mine(r, e)), e.node, r.holder),
        "pending": Store(r.pending, e.node, False),
        "unit_attention": Store(r.unit_attention, e.node, False),
    }


def _released(r: Any, e: Any) -> dict[str, Any]:
    """Queued RESERVE first, then RELEASE: the device ends free if the node held it, else unchanged."""
    served = _served(r, e)
    return {**served, "holder": If(r.holder == e.node, FREE, r.holder)}


def _reset(r: Any, e: Any) -> dict[str, Any]:
    """The resetting node's queued RESERVE runs first; then the reservation is broken for everyone."""
    n = len(r.pending)
    return {
        "holder": FREE,
        "pending": Store(r.pending, e.node, False),
        "unit_attention": tuple(If(e.node == k, False, True) for k in range(n)),
    }


def _power_cycle(r: Any, e: Any) -> dict[str, Any]:
    n = len(r.pending)
    return {"holder": FREE, "unit_attention": (True,) * n}


# --- effects ---------------------------------------------------------------------------


def _answer(name: str, when: Any = None) -> Effect:
    return Effect("report", name, lambda r, e, r2: {"node": e.node}, when=when)


#: The answer of a RESERVE served by a RELEASE or a reset of the same node (it was queued before them).
FLUSHED_ANSWERS = (
    _answer(OK, when=queued_and_free_or_mine),
    _answer(CONFLICT, when=queued_and_held_by_other),
)


@cache
def make_reservation_spec(n: int) -> Spec:
    """The reservation device shared by ``n`` >= 1 nodes."""
    if n < 1:
        raise ValueError("a reservation device needs at least one initiator node")
    ks = range(n)
    node = Arg("node", 0, n, "the initiator node id", hi_max=n)

    transitions = (
        Transition("reserve", STATES, None, update=lambda r, e: {"pending": Store(r.pending, e.node, True)},
                   doc="a RESERVE arrives and waits to be served (a second one from the node is the same)"),
        Transition("serve", (ONLINE,), None, guard=queued_and_free_or_mine, update=_served, effects=(_answer(OK),),
                   doc="the node's RESERVE runs: the device was free or already the node's; it is the node's now"),
        Transition("serve", (ONLINE,), None, guard=queued_and_held_by_other, update=_served,
                   effects=(_answer(CONFLICT),), doc="the node's RESERVE runs: another node holds the device"),
        Transition("serve", (FAILED,), None, guard=queued,
                   update=lambda r, e: {"pending": Store(r.pending, e.node, False)}, effects=(_answer(ERROR),),
                   doc="the device is gone: the RESERVE fails"),
        Transition("serve", STATES, None, guard=nothing_queued,
                   doc="nothing queued for that node (a late or duplicate service): no change"),
        Transition("release", (ONLINE,), None, update=_released, effects=FLUSHED_ANSWERS,
                   doc="RELEASE (after the node's queued RESERVE): free if the node held the device, else no change"),
        Transition("reset", (ONLINE,), None, update=_reset, effects=FLUSHED_ANSWERS,
                   doc="bus or LUN reset (after the node's queued RESERVE): the reservation is broken; every "
                       "other initiator gets a unit attention"),
        Transition("release", (FAILED,), None, update=lambda r, e: {"pending": Store(r.pending, e.node, False)},
                   effects=(_answer(ERROR, when=queued),),
                   doc="the device is gone: the node's queued RESERVE fails; there is nothing to release"),
        Transition("reset", (FAILED,), None, update=lambda r, e: {"pending": Store(r.pending, e.node, False)},
                   effects=(_answer(ERROR, when=queued),),
                   doc="the device is gone: the node's queued RESERVE fails; the reset reaches nothing"),
        Transition("crash", (ONLINE,), FAILED, update=_power_cycle,
                   doc="the device is gone: the reservation is lost, every RESERVE fails"),
        Transition("repair", (FAILED,), ONLINE, update=_power_cycle,
                   doc="the device is back (power on): free, unit attention for every initiator"),
    )
    ignored = (
        Ignore("crash", (FAILED,), "already failed"),
        Ignore("repair", (ONLINE,), "the device is working: nothing to repair"),
    )
    fields = (
        Field("holder", int, FREE, "node holding the reservation (-1: free)", lo=FREE, hi=n - 1),
        Field("pending", bool, (False,) * n, "pending[k]: node k has a RESERVE queued, not served yet", length=n),
        Field("unit_attention", bool, (False,) * n,
              "unit_attention[k]: a reset or power cycle happened since node k's last command", length=n),
    )
    events = (
        Event("reserve", "a RESERVE(6) from a node arrives at the device", (node,)),
        Event("serve", "the device runs the node's queued RESERVE and answers it", (node,)),
        Event("release", "a RELEASE(6) from a node", (node,)),
        Event("reset", "a node resets the bus or the LUN (the MSCS challenge)", (node,)),
        Event("crash", "fault: the device fails (power loss, path loss for everyone)"),
        Event("repair", "the device is back"),
    )
    invariants = (
        Invariant("failed_device_is_free", lambda r: Implies(r.is_(FAILED), r.holder == FREE),
                  "a failed device holds no reservation (a power cycle clears SCSI-2 reservations)"),
        Invariant("holder_sees_no_attention",
                  lambda r: And(*(Implies(r.holder == k, Not(r.unit_attention[k])) for k in ks)),
                  "the holder's reservation has not been broken since its last command"),
    )
    return Spec(
        name="reservation",
        doc=__doc__ or "",
        states=STATES,
        initial=ONLINE,
        fields=fields,
        events=events,
        transitions=transitions,
        ignored=ignored,
        invariants=invariants,
        state_docs={
            ONLINE: "working: RESERVE, RELEASE and reset act on the reservation",
            FAILED: "gone: every RESERVE fails, nothing is held",
        },
    )


#: The device of a 3-node cluster (drawn in diagrams, checked by default).
SPEC = make_reservation_spec(3)
