"""The quorum disk's SCSI-3 persistent reservation, abstract (the device of :mod:`wolfpack.spec.pr_arbitration`).

One instance per disk, shared by ``n`` nodes; node ``k`` registers with its
own key (``wolfpack.hw.keys``), so a key is named here by its node.  It follows
SPC-3 for the commands the arbitration uses (``shared/reference/scsi-and-timing.md``
§3.3-3.4), with one reservation type, Write Exclusive - Registrants Only (5):

* ``register`` (REGISTER AND IGNORE EXISTING KEY): the node is registered;
* ``reserve``: succeeds if the node is registered and the disk is unreserved or
  already the node's; else RESERVATION CONFLICT;
* ``read_keys`` / ``read_reservation`` (PRIN): whether the node is registered and
  the lowest other registered node (``rival``); the holder;
* ``preempt(victim, abort)``: the node must be registered and the victim too
  (else CONFLICT); removes the victim's registration and takes its reservation if
  it held one; with ``abort`` (PREEMPT AND ABORT) the victim's write in flight is
  aborted, and a target without it (``abort_supported`` false: tgt) answers
  ILLEGAL REQUEST without doing anything;
* ``release``: REGISTER AND IGNORE with key 0: unregisters, and ends the node's
  reservation if it held one (no answer);
* ``write``/``write_done``: any node's software may send a WRITE at any time; the
  device accepts it when the disk is unreserved or the node is registered (a
  registrant under type 5), and it stays in flight until done;
* faults: ``crash`` (power loss: nothing persists, as on tgt without APTPL;
  every command fails) and ``repair``.

Commands take time: a command is **queued** when the node sends it and
**served** later (``serve``), which is when its answer goes back as a report
with the node.  A node has at most one command queued: a new one from the same
node runs the queued one first (commands of one initiator run in order) and
that one's answer is dropped (the node stopped waiting for it; the arbiter
shell drops such answers too).

``fenced[k]``: node k's key was removed by another node's PREEMPT and the disk
has been reserved ever since; ``late[k]``: a write of k accepted before that
PREEMPT is still in flight (only a plain PREEMPT leaves one).  They record, in
the device, what storage fencing guarantees: a fenced node starts no write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from functools import cache
from typing import Any

from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition, named
from wolfpack.spec.expr import And, Exists, ForAll, If, Implies, Not, Or

ONLINE = "Online"
FAILED = "Failed"
STATES = (ONLINE, FAILED)
FREE = -1


class Cmd(IntEnum):
    """The command a node has queued at the device."""

    NONE = 0
    REGISTER = 1
    RESERVE = 2
    READ_KEYS = 3
    READ_RESERVATION = 4
    PREEMPT = 5
    RELEASE = 6


#: Commands sent by the arbitration machine (events of this device with a node argument).
COMMANDS = {"register": Cmd.REGISTER, "reserve": Cmd.RESERVE, "read_keys": Cmd.READ_KEYS,
            "read_reservation": Cmd.READ_RESERVATION, "preempt": Cmd.PREEMPT, "release": Cmd.RELEASE}


def at(seq: Sequence[Any], i: Any) -> Any:
    """``seq[i]``, false for an index outside the vector (-1: nobody)."""
    return Exists(range(len(seq)), lambda k: And(i == k, seq[k]))


def put(seq: Sequence[Any], i: Any, value: Any) -> tuple[Any, ...]:
    return tuple(If(i == k, value, seq[k]) for k in range(len(seq)))


# --- what a command does --------------------------------------------------------------------


def reserve_ok(r: Any, node: Any) -> Any:
    return And(at(r.registered, node), Or(r.holder == FREE, r.holder == node))


def preempt_refused(r: Any, node: Any) -> Any:
    """PREEMPT AND ABORT on a target without it: ILLEGAL REQUEST before any check."""
    return And(at(r.qabort, node), Not(r.abort_supported))


def preempt_ok(r: Any, node: Any) -> Any:
    victim = at_int(r.victim, node)
    return And(Not(preempt_refused(r, node)), at(r.registered, node), victim >= 0, at(r.registered, victim))


def at_int(seq: Sequence[Any], i: Any) -> Any:
    out: Any = seq[0]
    for k in range(1, len(seq)):
        out = If(i == k, seq[k], out)
    return out


State = tuple[Any, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]


def _state(r: Any) -> State:
    return (r.holder, tuple(r.registered), tuple(r.fenced), tuple(r.writing), tuple(r.late))


def _register(r: Any, node: Any) -> State:
    holder, reg, fenced, writing, late = _state(r)
    return (holder, put(reg, node, True), put(fenced, node, False), writing, put(late, node, False))


def _reserve(r: Any, node: Any) -> State:
    holder, reg, fenced, writing, late = _state(r)
    return (If(reserve_ok(r, node), node, holder), reg, fenced, writing, late)


def _preempt(r: Any, node: Any) -> State:
    holder, reg, fenced, writing, late = _state(r)
    victim, abort, ok = at_int(r.victim, node), at(r.qabort, node), preempt_ok(r, node)
    other = And(ok, victim != node)
    new_holder = If(And(ok, holder == victim), node, holder)
    kept = new_holder != FREE
    return (new_holder, put(reg, victim, If(other, False, at(reg, victim))),
            put(fenced, victim, If(other, kept, at(fenced, victim))),
            put(writing, victim, If(And(other, abort), False, at(writing, victim))),
            put(late, victim, If(other, And(Not(abort), at(writing, victim), kept), at(late, victim))))


def _release(r: Any, node: Any) -> State:
    holder, reg, fenced, writing, late = _state(r)
    dropped = holder == node
    n = len(reg)
    return (If(dropped, FREE, holder), put(reg, node, False), tuple(And(Not(dropped), fenced[k]) for k in range(n)),
            writing, tuple(And(Not(dropped), late[k]) for k in range(n)))


_EFFECT: dict[Cmd, Callable[[Any, Any], State]] = {
    Cmd.REGISTER: _register, Cmd.RESERVE: _reserve, Cmd.PREEMPT: _preempt, Cmd.RELEASE: _release}


def _run(r: Any, node: Any) -> State:
    """The node's queued command runs (if the device works): the state after it."""
    out = _state(r)
    cmd = at_int(r.queued, node)
    for code, fn in _EFFECT.items():
        new = fn(r, node)
        live = And(r.is_(ONLINE), cmd == int(code))
        out = (If(live, new[0], out[0]), *(tuple(If(live, a, b) for a, b in zip(x, y, strict=True))
                                            for x, y in zip(new[1:], out[1:], strict=True)))
    return out


def _fields(state: State) -> dict[str, Any]:
    holder, reg, fenced, writing, late = state
    return {"holder": holder, "registered": reg, "fenced": fenced, "writing": writing, "late": late}


def _queue(code: Cmd) -> Callable[[Any, Any], dict[str, Any]]:
    def update(r: Any, e: Any) -> dict[str, Any]:
        victim = getattr(e, "victim", FREE)
        abort = getattr(e, "abort", 0) == 1
        return {**_fields(_run(r, e.node)), "queued": put(r.queued, e.node, int(code)),
                "victim": tuple(If(e.node == k, victim, r.victim[k]) for k in range(len(r.victim))),
                "qabort": put(r.qabort, e.node, abort)}

    return update


def _served(r: Any, e: Any) -> dict[str, Any]:
    return {**_fields(_run(r, e.node)), "queued": put(r.queued, e.node, int(Cmd.NONE))}


def _rival(r: Any, node: Any) -> Any:
    """The lowest registered node other than ``node`` (-1: none)."""
    out: Any = FREE
    for k in reversed(range(len(r.registered))):
        out = If(And(node != k, r.registered[k]), k, out)
    return out


def _queued(code: Cmd, name: str, extra: Callable[[Any, Any], Any] | None = None) -> Any:
    def guard(r: Any, e: Any) -> Any:
        parts = [at_int(r.queued, e.node) == int(code)]
        if extra is not None:
            parts.append(extra(r, e.node))
        return And(*parts)

    return named(name, guard)


def _answer(name: str, more: Callable[[Any, Any], dict[str, Any]] | None = None) -> Effect:
    return Effect("report", name, lambda r, e, r2: {"node": e.node, **(more(r, e.node) if more else {})})


QUEUED_REGISTER = _queued(Cmd.REGISTER, "queued_register")
QUEUED_RESERVE_OK = _queued(Cmd.RESERVE, "queued_reserve_ok", reserve_ok)
QUEUED_RESERVE_CONFLICT = _queued(Cmd.RESERVE, "queued_reserve_conflict", lambda r, n: Not(reserve_ok(r, n)))
QUEUED_READ_KEYS = _queued(Cmd.READ_KEYS, "queued_read_keys")
QUEUED_READ_RESERVATION = _queued(Cmd.READ_RESERVATION, "queued_read_reservation")
QUEUED_PREEMPT_REFUSED = _queued(Cmd.PREEMPT, "queued_preempt_refused", preempt_refused)
QUEUED_PREEMPT_OK = _queued(Cmd.PREEMPT, "queued_preempt_ok", preempt_ok)
QUEUED_PREEMPT_CONFLICT = _queued(Cmd.PREEMPT, "queued_preempt_conflict",
                                  lambda r, n: And(Not(preempt_refused(r, n)), Not(preempt_ok(r, n))))
QUIET = named("nothing_to_answer", lambda r, e: Or(at_int(r.queued, e.node) == int(Cmd.NONE),
                                                   at_int(r.queued, e.node) == int(Cmd.RELEASE)))
LOUD = named("something_to_answer", lambda r, e: Not(QUIET(r, e)))
MAY_WRITE = named("may_write", lambda r, e: Or(r.holder == FREE, at(r.registered, e.node)))
MAY_NOT_WRITE = named("may_not_write", lambda r, e: Not(MAY_WRITE(r, e)))


@cache
def make_persistent_reservation_spec(n: int) -> Spec:
    """The persistent reservation of a disk shared by ``n`` >= 1 nodes."""
    if n < 1:
        raise ValueError("a reservation device needs at least one initiator node")
    node = Arg("node", 0, n, "the initiator node id", hi_max=n)
    victim = Arg("victim", FREE, n, "the node whose key is preempted", hi_max=n)
    abort = Arg("abort", 0, 2, "1: PREEMPT AND ABORT, 0: PREEMPT", hi_max=2)
    queue_rows = tuple(
        Transition(name, STATES, None, update=_queue(code), doc=f"{name.upper()} from a node arrives and is queued "
                   "(a command of the node still queued runs first; its answer is dropped)")
        for name, code in COMMANDS.items())
    serve = "serve"
    transitions = (
        *queue_rows,
        Transition(serve, (ONLINE,), None, guard=QUEUED_REGISTER, update=_served, effects=(_answer("registered"),),
                   doc="REGISTER AND IGNORE EXISTING KEY runs: the node is registered"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_RESERVE_OK, update=_served, effects=(_answer("reserve_ok"),),
                   doc="RESERVE runs: registered, and the disk was free or already the node's"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_RESERVE_CONFLICT, update=_served,
                   effects=(_answer("reserve_conflict"),), doc="RESERVE runs: not registered, or another holds it"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_READ_KEYS, update=_served,
                   effects=(_answer("keys", lambda r, k: {"mine": If(at(r.registered, k), 1, 0),
                                                          "rival": _rival(r, k)}),),
                   doc="READ KEYS runs: is the node registered, and who else is"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_READ_RESERVATION, update=_served,
                   effects=(_answer("reservation", lambda r, k: {"holder": r.holder}),),
                   doc="READ RESERVATION runs: who holds the reservation"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_PREEMPT_REFUSED, update=_served,
                   effects=(_answer("preempt_unsupported"),),
                   doc="PREEMPT AND ABORT on a target without it: ILLEGAL REQUEST 24/00, nothing happens"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_PREEMPT_OK, update=_served, effects=(_answer("preempt_ok"),),
                   doc="PREEMPT runs: the victim's key is gone (and its reservation is the node's)"),
        Transition(serve, (ONLINE,), None, guard=QUEUED_PREEMPT_CONFLICT, update=_served,
                   effects=(_answer("preempt_conflict"),),
                   doc="PREEMPT runs: the node or the victim is not registered: RESERVATION CONFLICT"),
        Transition(serve, STATES, None, guard=QUIET, update=_served,
                   doc="nothing queued, or a RELEASE (it has no answer) runs"),
        Transition(serve, (FAILED,), None, guard=LOUD, update=_served, effects=(_answer("failed"),),
                   doc="the device is gone: the command fails"),
        Transition("write", (ONLINE,), None, guard=MAY_WRITE,
                   update=lambda r, e: {"writing": put(r.writing, e.node, True)},
                   doc="a WRITE is accepted: the disk is unreserved or the node is a registrant"),
        Transition("write", (ONLINE,), None, guard=MAY_NOT_WRITE,
                   doc="a WRITE from a node that is not registered while the disk is reserved: RESERVATION CONFLICT"),
        Transition("write_done", STATES, None, update=lambda r, e: {"writing": put(r.writing, e.node, False),
                                                                     "late": put(r.late, e.node, False)},
                   doc="the node's write completed (or never was)"),
        Transition("crash", (ONLINE,), FAILED,
                   update=lambda r, e: {"holder": FREE, "registered": (False,) * n, "fenced": (False,) * n,
                                        "writing": (False,) * n, "late": (False,) * n},
                   doc="power loss or target restart: nothing persists (no APTPL), writes in flight are lost"),
        Transition("repair", (FAILED,), ONLINE, doc="the device is back, unreserved, nobody registered"),
    )
    ignored = (
        Ignore("write", (FAILED,), "the device is gone: the write fails"),
        Ignore("crash", (FAILED,), "already failed"),
        Ignore("repair", (ONLINE,), "the device is working"),
    )
    fields = (
        Field("holder", int, FREE, "node holding the type-5 reservation (-1: none)", lo=FREE, hi=n - 1),
        Field("registered", bool, (False,) * n, "registered[k]: node k's key is registered", length=n),
        Field("queued", Cmd, (Cmd.NONE,) * n, "queued[k]: the command of node k waiting to run", length=n),
        Field("victim", int, (FREE,) * n, "victim[k]: the node a queued PREEMPT of k names", lo=FREE, hi=n - 1,
              length=n),
        Field("qabort", bool, (False,) * n, "qabort[k]: node k's queued PREEMPT is a PREEMPT AND ABORT", length=n),
        Field("writing", bool, (False,) * n, "writing[k]: a write of node k is in flight", length=n),
        Field("fenced", bool, (False,) * n, "fenced[k]: k was preempted and the disk stayed reserved since", length=n),
        Field("late", bool, (False,) * n, "late[k]: k's write in flight was accepted before it was fenced", length=n),
        Field("abort_supported", bool, True, "the target implements PREEMPT AND ABORT (tgt does not)", param=True),
    )
    events = (
        *(Event(name, f"{name.upper().replace('_', ' ')} from a node", (node,)) for name in COMMANDS
          if name != "preempt"),
        Event("preempt", "PREEMPT (AND ABORT) from a node, naming the victim", (node, victim, abort)),
        Event(serve, "the device runs the node's queued command and answers it", (node,)),
        Event("write", "a node's software sends a WRITE", (node,)),
        Event("write_done", "a node's write completes", (node,)),
        Event("crash", "fault: the device is gone (power loss, target restart)"),
        Event("repair", "the device is back"),
    )
    ks = range(n)
    invariants = (
        Invariant("fenced_are_unregistered_under_a_reservation",
                  lambda r: ForAll(ks, lambda k: Implies(r.fenced[k], And(Not(r.registered[k]), r.holder != FREE))),
                  "a fenced node is not registered, and the disk is reserved"),
        Invariant("fenced_node_starts_no_write",
                  lambda r: ForAll(ks, lambda k: Implies(And(r.fenced[k], r.writing[k]), r.late[k])),
                  "a fenced node's write in flight, if any, was accepted before its key was preempted"),
        Invariant("late_writes_are_fenced_writes",
                  lambda r: ForAll(ks, lambda k: Implies(r.late[k], And(r.writing[k], r.fenced[k]))),
                  "a late write is a write in flight of a fenced node"),
        Invariant("failed_device_holds_nothing",
                  lambda r: Implies(r.is_(FAILED), And(r.holder == FREE, *(Not(r.registered[k]) for k in ks))),
                  "a failed device has no reservation and no registration"),
        Invariant("holder_is_registered", lambda r: ForAll(ks, lambda k: Implies(r.holder == k, r.registered[k])),
                  "the reservation holder is registered (unregistering ends its reservation)"),
    )
    return Spec(name="persistent_reservation", doc=__doc__ or "", states=STATES, initial=ONLINE, fields=fields,
                events=events, transitions=transitions, ignored=ignored, invariants=invariants,
                state_docs={ONLINE: "working: commands run when served", FAILED: "gone: every command fails"})


#: The device of a 3-node cluster (drawn in diagrams, checked by default).
SPEC = make_persistent_reservation_spec(3)
