"""The Global Update Manager of one node (REQUIREMENTS G1, G2).

One instance per node.  GUM gives the configuration changes of the cluster
one total order and makes every healthy member apply each of them, or be
evicted.  The update's payload is not in the record: the runtime keeps it
keyed by sequence number (and the pending one of this node), attaches it to
``lock_request`` and ``apply_update``, and carries out ``command persist`` /
``command apply`` with the sequence number.

The protocol (USENIX'98 GUM, patent 6,163,855; design decision 4):

* The **locker** (initially node 0) holds the global lock.  A sender asks it
  with ``lock_request``, which carries the sender's installed membership; the
  locker, if the lock is free and that membership is its own, gives the
  update the next sequence number, **applies it first**, takes the lock for
  the sender and answers ``lock_granted(seq)``; otherwise ``lock_busy`` and
  the sender asks again after ``lock_retry_ms`` (G2: it waits).  A sender
  that missed the commit of a membership would sweep to the members it
  knows and skip a new one (decision 24).  The locker takes the lock for
  its own updates at once, except after it told a member busy (its
  ``waiter``): when the lock is free it tells that member (``lock_free``),
  which asks at once, and its own next update waits for it for at most one
  ``lock_retry_ms``; when that member unlocks, a waiting update of the
  locker takes the lock (decision 25).  Without the yield, a stream of the
  locker's own updates kept the other nodes waiting; without the turn at
  the unlock, the others' stream kept the locker waiting; without the
  notice, every turn of another node cost a retry period.
* The sender then **sweeps**: it delivers ``apply_update(seq)`` to the other
  members one at a time, in the fixed order that starts after the locker
  (ids after the locker's, wrapping, skipping non-members), waiting for each
  ``applied`` before the next.  It applies the update **itself in its own
  turn of that order, never before the locker** (decision 4), and finally
  sends ``unlock``.
* **Lost lock messages.**  Nothing acknowledges ``lock_granted`` or ``unlock``;
  the lock's state tells when one was lost.  A holder that asks for the lock
  again without the update it was granted lost the grant: the locker sends
  it again.  A holder that keeps the lock is asked (its unlock may be lost):
  after ``unlock_query_ms`` the locker sends ``unlock_query(seq)``, and the
  holder answers ``unlock`` again if it swept that update to the end; a
  holder that restarted after its grant asks for the grant again (without
  the update: it sweeps what the locker applied, the grant carries it) or
  sweeps the update again from the start (with it).
* A receiver applies ``seq`` only if it is ``last_seq + 1``; an older one is
  a duplicate, acknowledged and not applied again; a newer one means it
  missed an update: it answers ``apply_failed`` and halts (it is evicted).
* A node whose apply fails halts its GUM role and asks for its own eviction;
  the sender that hears ``apply_failed`` reports the eviction as well (G2).
  The runtime carries out a step's effects in order and, when ``apply``
  fails, skips the step's later effects and feeds ``apply_error(seq)`` at
  once.  At the **locker** that means nobody else has the update: the
  locker takes it back (``last_seq`` goes down again, the persisted record
  becomes an orphan, decision 5) and the update fails back to its sender
  with ``update_failed`` (G2), instead of evicting the locker for a bad
  update.
* **Replay.**  When a membership change removes the node that holds the
  lock, the locker sweeps its last update to every member (a *replay*)
  before it frees the lock.  When it removes the locker, the new locker (the
  first member after it in id order: it was the first to receive anything
  after the locker) replays its last update, even the empty one (seq 0), so
  that every member has whatever any survivor has.
* **A sender whose locker dies** learns the fate of its update from that
  replay.  If its sweep had passed the new locker, the update is committed.
  If not, it waits (``Awaiting``) for the new locker's replay: the replay
  carries its update's number exactly when some survivor has it.  Sweep
  messages carry the locker that granted them; a node ignores those of
  another locker, so a sweep cut short by the locker's death cannot reach
  anybody after the change.  A sender still waiting for the grant when its
  locker dies reports ``aborted``: nobody alive has the update.
* **Regroups.**  During a regroup (``regroup_started`` until the next
  ``membership_changed``) the locker grants no lock and ``submit`` is
  refused: the caller must recompute its change against the new membership
  (a placement decided before the regroup may be wrong after it), so a
  queued update would be stale.  A sweep in progress continues.

Outcomes for the caller of ``submit``: ``report committed(seq)``, ``report
aborted`` (nobody applied it: the locker died before any survivor had it, or
the update was dropped for another: submit it again if it still makes
sense), ``report interrupted`` (this node halted, was left out, or loaded
its sponsor's database while the update was in flight: a locker may have
numbered it, and then it is swept without this node; look before submitting
it again) or ``report refused(seq)`` (the locker could not apply it).  The
caller submits one update at a time (``submit`` is refused while one is in
flight).

Choices where MSCS is silent or where this table departs from the brief:

* The new locker is computed here from the installed members, not given by
  the membership layer: succession is a GUM rule, and the membership
  machine's ``installed`` report then maps onto ``membership_changed`` by
  renaming alone.
* No ``last_update_seq``: the last update a node applied is ``last_seq``,
  and its payload is found by that number; its sender is not needed, since
  the sequence number alone tells a waiting sender whether the replay is its
  update (a locker hands each number to one sweep only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition, named
from wolfpack.spec.expr import And, Count, If, Implies, Not, Or, Select, Store

IDLE = "Idle"
BLOCKED = "Blocked"
REQUESTING = "Requesting"
DELIVERING = "Delivering"
AWAITING = "Awaiting"
HALTED = "Halted"
STATES = (IDLE, BLOCKED, REQUESTING, DELIVERING, AWAITING, HALTED)
LIVE = (IDLE, BLOCKED, REQUESTING, DELIVERING, AWAITING)
AT_REST = (IDLE, BLOCKED)

NONE = -1
#: Wolfpack default: how long a sender told ``lock_busy`` waits before asking again.
LOCK_RETRY_MS = 100
#: Wolfpack default: how long a sweep waits for an acknowledgement before it delivers again.
RESEND_MS = 100
#: Wolfpack default: how long the locker lets another node hold the lock before it asks whether the sweep is over.
UNLOCK_QUERY_MS = 500
#: the expressions grow as n**3 (the delivery order is spelled out for every (start, place) pair);
#: the proofs use 2..4 nodes, the simulator up to this many
MIN_NODES, MAX_NODES = 2, 64

Fn = Callable[..., Any]


def _first_after_concrete(n: int, members: Sequence[bool], a: int, c: int) -> int:
    """``first_after`` on concrete values, in O(n) instead of O(n**3): the same walk (a test compares them)."""
    if not (0 <= a < n and 0 <= c < n):
        return NONE
    for d in range((c - a) % n + 1, n):
        k = (a + d) % n
        if members[k]:
            return k
    return NONE


def first_after_in_order(n: int, members: Sequence[Any], a: Any, c: Any) -> Any:
    """The first member after node c in the delivery order that starts at node a; -1 if none is left."""
    if isinstance(a, int) and isinstance(c, int) and all(isinstance(m, bool) for m in members):
        return _first_after_concrete(n, members, a, c)
    ks = range(n)
    result: Any = NONE
    for a0 in ks:
        for c0 in ks:
            found: Any = NONE
            for d in range(n - 1, (c0 - a0) % n, -1):
                k = (a0 + d) % n
                found = If(members[k], k, found)
            result = If(And(a == a0, c == c0), found, result)
    return result


@cache
def make_gum_spec(n: int) -> Spec:
    """The GUM machine of one node in a cluster of ``n`` nodes (2..64)."""
    if not MIN_NODES <= n <= MAX_NODES:
        raise ValueError(f"the GUM spec is built for clusters of {MIN_NODES} to {MAX_NODES} nodes, not {n}")
    ks = range(n)

    # --- the fixed delivery order ----------------------------------------------------
    def pos(a: Any, k: Any) -> Any:
        """Place of node k in the order that starts at node a (a itself is 0)."""
        return If(k >= a, k - a, k - a + n)

    def first_after(members: Sequence[Any], a: Any, c: Any) -> Any:
        return first_after_in_order(n, members, a, c)

    def alive(e: Any) -> tuple[Any, ...]:
        return tuple(getattr(e, f"alive{k}") == 1 for k in ks)

    def successor(r: Any, members: Sequence[Any]) -> Any:
        """The locker after a membership change: the same if still a member, else the next member after it."""
        return If(Select(members, r.locker), r.locker, first_after(members, r.locker, r.locker))

    # --- sweeps -------------------------------------------------------------------------
    def target(r1: Any, c: Any) -> tuple[Any, Any]:
        """From place c: the next node to deliver to (-1: done) and whether the sender applies its own update now."""
        t1 = first_after(r1.members, r1.locker, c)
        turn = And(r1.own, t1 == r1.me)
        t2 = If(turn, first_after(r1.members, r1.locker, r1.me), t1)
        return t2, And(turn, r1.last_seq + 1 == r1.sending_seq)

    def swept(r1: Any, c: Any) -> Any:
        t2, self_apply = target(r1, c)
        done = t2 == NONE
        return r1.replace(
            last_seq=If(self_apply, r1.sending_seq, r1.last_seq),
            next=t2,
            own=If(done, False, r1.own),
            last_swept=If(And(done, r1.own), r1.sending_seq, r1.last_swept),
            sending_seq=If(done, 0, r1.sending_seq),
            lock_holder=If(And(done, r1.locker == r1.me), NONE, r1.lock_holder),
        )

    variables = ("members", "locker", "last_seq", "lock_holder", "locked_seq", "sending_seq", "next", "own", "waiter",
                 "blocked", "fresh", "last_swept")

    def changes(after: Any) -> dict[str, Any]:
        return {name: getattr(after, name) for name in variables}

    def persist_and_apply(seq: Fn, when: Fn | None = None) -> tuple[Effect, ...]:
        return (Effect("command", "persist", lambda r, e, a: {"seq": seq(r, e)}, when=when),
                Effect("command", "apply", lambda r, e, a: {"seq": seq(r, e)}, when=when))

    Prepare = Callable[[Any, Any], Any]

    def sweep_rows(trigger: str, sources: tuple[str, ...], name: str, guard: Fn, prepare: Prepare,
                   start: Fn, doc: str, first: tuple[Effect, ...] = ()) -> list[Transition]:
        """Rows that prepare the record, then sweep from place ``start``: deliver to the next
        member (``Delivering``) or finish (unlock, report, ``Idle`` or ``Blocked``)."""

        def r1_of(r: Any, e: Any) -> Any:
            return prepare(r, e)

        def plan(r: Any, e: Any) -> tuple[Any, Any, Any]:
            r1 = r1_of(r, e)
            t2, self_apply = target(r1, start(r1, e))
            return r1, t2, self_apply

        def update(r: Any, e: Any) -> dict[str, Any]:
            r1 = r1_of(r, e)
            return changes(swept(r1, start(r1, e)))

        def goes_on(r: Any, e: Any) -> Any:
            return And(guard(r, e), plan(r, e)[1] != NONE)

        def ends(blocked: bool) -> Fn:
            def holds(r: Any, e: Any) -> Any:
                r1, t2, _ = plan(r, e)
                return And(guard(r, e), t2 == NONE, r1.blocked == blocked)

            return holds

        own_apply = persist_and_apply(lambda r, e: r1_of(r, e).sending_seq, when=lambda r, e: plan(r, e)[2])
        deliver = Effect("send", "apply_update", lambda r, e, a: {"to": a.next, "seq": a.sending_seq,
                                                                  "locker": a.locker})
        resend_later = Effect("start_timer", "resend_elapsed", lambda r, e, a: {"ms": a.resend_ms})
        unlock = Effect("send", "unlock", lambda r, e, a: {"to": a.locker, "seq": r1_of(r, e).sending_seq},
                        when=lambda r, e: r1_of(r, e).locker != r1_of(r, e).me)
        committed = Effect("report", "committed", lambda r, e, a: {"seq": r1_of(r, e).sending_seq},
                           when=lambda r, e: r1_of(r, e).own)
        free = Effect("send", "lock_free", lambda r, e, a: {"to": a.waiter},
                      when=lambda r, e: And(r1_of(r, e).locker == r1_of(r, e).me, r1_of(r, e).waiter != NONE))
        return [
            Transition(trigger, sources, DELIVERING, guard=named(f"{name}_goes_on", goes_on), update=update,
                       effects=(*first, *own_apply, deliver, resend_later), doc=f"{doc}; deliver to the next member"),
            Transition(trigger, sources, IDLE, guard=named(f"{name}_ends", ends(False)), update=update,
                       effects=(*first, *own_apply, unlock, free, committed),
                       doc=f"{doc}; every member has it: unlock (the locker tells the node it told busy)"),
            Transition(trigger, sources, BLOCKED, guard=named(f"{name}_ends_in_regroup", ends(True)), update=update,
                       effects=(*first, *own_apply, unlock, free, committed),
                       doc=f"{doc}; every member has it: unlock (a regroup is in progress)"),
        ]

    def at_rest(name: str, trigger: str, sources: tuple[str, ...], guard: Fn, update: Fn,
                effects: tuple[Effect, ...], doc: str) -> list[Transition]:
        """Two rows that end in Idle or Blocked, as the record after ``update`` says."""
        def ends(blocked: bool) -> Fn:
            return lambda r, e: And(guard(r, e), r.replace(**update(r, e)).blocked == blocked)

        return [
            Transition(trigger, sources, IDLE, guard=named(name, ends(False)), update=update, effects=effects,
                       doc=doc),
            Transition(trigger, sources, BLOCKED, guard=named(f"{name}_in_regroup", ends(True)), update=update,
                       effects=effects, doc=f"{doc} (a regroup is in progress)"),
        ]

    # --- the lock -------------------------------------------------------------------------
    def i_am_locker(r: Any) -> Any:
        return r.locker == r.me

    def lock_free(r: Any) -> Any:
        return r.lock_holder == NONE

    def sweeping(r: Any, seq: Any) -> Any:
        """This node sweeps its own update ``seq``."""
        return And(r.is_(DELIVERING), r.own, r.sending_seq == seq)

    def self_grant(r: Any, e: Any) -> Any:
        """The locker gives its own update the next number and applies it first."""
        seq = r.last_seq + 1
        return r.replace(last_seq=seq, lock_holder=r.me, locked_seq=seq, sending_seq=seq, own=True, next=NONE)

    def at_me(r1: Any, e: Any) -> Any:
        return r1.me

    SELF_APPLY = persist_and_apply(lambda r, e: r.last_seq + 1)
    RETRY = Effect("start_timer", "lock_retry_elapsed", lambda r, e, a: {"ms": r.lock_retry_ms})
    REQUEST = Effect("send", "lock_request", lambda r, e, a: {
        "to": r.locker, "seen": r.last_seq, **{f"alive{k}": If(Select(r.members, k), 1, 0) for k in ks}})
    ABORTED = Effect("report", "aborted")
    #: this node's own update in flight, when this node stops taking part: a locker may have numbered it, and
    #: then it is swept without this node; the caller must look before it submits it again
    INTERRUPTED = Effect("report", "interrupted", when=lambda r, e: Or(
        r.is_(REQUESTING, AWAITING), And(r.is_(DELIVERING), r.own)))
    HALT = {"lock_holder": NONE, "next": NONE, "own": False, "sending_seq": 0, "waiter": NONE}
    EVICT_ME = Effect("report", "evict", lambda r, e, a: {"node": r.me})

    def holder_asks(r: Any, e: Any) -> Any:
        """A lock request from the node the lock is held for."""
        return And(i_am_locker(r), r.lock_holder == e.src, e.src != r.me)

    def same_view(r: Any, e: Any) -> Any:
        """The requester installed the membership this locker has: its sweep will reach every member."""
        return And(*(Select(r.members, k) == v for k, v in enumerate(alive(e))))

    def grant_lost(r: Any, e: Any) -> Any:
        """The holder asks again without the update: the grant was lost (or this request is a late copy)."""
        return And(holder_asks(r, e), e.seen + 1 == r.locked_seq, same_view(r, e))

    def grantable(r: Any, e: Any) -> Any:
        return And(i_am_locker(r), lock_free(r), Not(r.blocked), Select(r.members, e.src), e.src != r.me,
                   e.seen == r.last_seq, same_view(r, e))

    QUERY_LATER = Effect("start_timer", "unlock_query_elapsed", lambda r, e, a: {"ms": r.unlock_query_ms})

    def asked_by_locker(r: Any, e: Any) -> Any:
        return And(e.src == r.locker, Not(i_am_locker(r)))

    def sweep_is_over(r: Any, e: Any) -> Any:
        """This node swept that update to the end (since it last started): its unlock was lost."""
        return And(asked_by_locker(r, e), r.last_swept == e.seq, r.last_seq >= e.seq, Not(sweeping(r, e.seq)))

    def sweep_cut_short(r: Any, e: Any) -> Any:
        """This node has the update but not the end of its sweep: it restarted in the middle of it."""
        return And(r.is_(IDLE, BLOCKED, REQUESTING), asked_by_locker(r, e), r.last_seq == e.seq,
                   r.last_swept != e.seq)

    def sweep_was_lost(r: Any, e: Any) -> Any:
        return And(r.is_(*AT_REST), asked_by_locker(r, e), r.last_seq + 1 == e.seq)

    def held_by_another(r: Any) -> Any:
        return And(i_am_locker(r), r.lock_holder != NONE, r.lock_holder != r.me)

    rows: list[Transition] = [
        Transition("resend_elapsed", (DELIVERING,), None,
                   effects=(Effect("send", "apply_update", lambda r, e, a: {"to": r.next, "seq": r.sending_seq,
                                                                            "locker": r.locker}),
                            Effect("start_timer", "resend_elapsed", lambda r, e, a: {"ms": r.resend_ms})),
                   doc="no acknowledgement yet: deliver again (a message lost, or one that reached the node "
                       "before it installed the locker's membership); duplicates are acknowledged, not re-applied"),
    ]

    # submit and the locker's own retries
    rows += sweep_rows("submit", (IDLE,), "locker_submits", lambda r, e: And(
        i_am_locker(r), lock_free(r), r.waiter == NONE),
                       self_grant, at_me, "the locker's own update: it takes the lock and applies it first",
                       first=SELF_APPLY)
    rows += [
        Transition("submit", (IDLE,), REQUESTING, guard=named("locker_busy", lambda r, e: And(
            i_am_locker(r), Or(Not(lock_free(r)), r.waiter != NONE))), effects=(RETRY,),
                   doc="the locker's own update while the lock is held, or while it yields to a node told busy: "
                       "try again later"),
        Transition("submit", (IDLE,), REQUESTING, guard=named("not_locker", lambda r, e: Not(i_am_locker(r))),
                   effects=(REQUEST, RETRY), doc="ask the locker for the global lock (it applies the update first); "
                                                 "ask again after lock_retry_ms if no answer came (it was lost)"),
    ]
    def holder_unlocks(r: Any, e: Any) -> Any:
        return And(i_am_locker(r), r.lock_holder == e.src, e.src != r.me, r.locked_seq == e.seq)

    def locker_waits(r: Any) -> Any:
        """The locker's own update waits for the lock (outside a regroup)."""
        return And(r.is_(REQUESTING), i_am_locker(r), Not(r.blocked))

    rows += sweep_rows("unlock", (REQUESTING,), "locker_next", lambda r, e: And(
        holder_unlocks(r, e), locker_waits(r)), lambda r, e: self_grant(r.replace(lock_holder=NONE), e), at_me,
                       "the sender delivered to every member, and the locker's own update waits: the locker takes "
                       "the lock for it at once (its turn after a node it yielded to) and applies it first",
                       first=SELF_APPLY)
    rows += sweep_rows("lock_retry_elapsed", (REQUESTING,), "locker_retries", lambda r, e: And(
        i_am_locker(r), lock_free(r), Not(r.blocked)), lambda r, e: self_grant(r, e).replace(waiter=NONE), at_me,
                       "the lock is free: the locker takes it for its own update and applies it first (a node it "
                       "yielded to that has not asked within lock_retry_ms is waited for no longer)",
                       first=SELF_APPLY)
    rows += [
        Transition("lock_retry_elapsed", (REQUESTING,), None, guard=named("locker_still_busy", lambda r, e: And(
            i_am_locker(r), Not(And(lock_free(r), Not(r.blocked))))), effects=(RETRY,),
                   doc="the lock is still held, or a regroup is in progress: wait again"),
        Transition("lock_retry_elapsed", (REQUESTING,), None, guard=named("ask_again", lambda r, e: Not(
            i_am_locker(r))), effects=(REQUEST, RETRY), doc="ask the locker again"),
    ]

    # the locker's side of the lock
    rows += [
        Transition("lock_request", LIVE, None, guard=named("grantable", grantable),
                   update=lambda r, e: {"last_seq": r.last_seq + 1, "lock_holder": e.src,
                                        "locked_seq": r.last_seq + 1, "waiter": NONE},
                   effects=(*SELF_APPLY, Effect("send", "lock_granted", lambda r, e, a: {"to": e.src,
                                                                                        "seq": a.last_seq}),
                            QUERY_LATER),
                   doc="lock free, requester up to date and a member: number the update, apply it first, grant; "
                       "ask the holder after unlock_query_ms if it has not unlocked by then"),
        Transition("lock_request", LIVE, None, guard=named("grant_lost", grant_lost),
                   effects=(Effect("send", "lock_granted", lambda r, e, a: {"to": e.src, "seq": r.locked_seq}),
                            QUERY_LATER),
                   doc="the holder asks again without the update it was granted: the grant was lost; send it "
                       "again (a late copy of a request meets a sender that ignores the grant)"),
        Transition("lock_request", LIVE, None, guard=named("busy", lambda r, e: And(
            i_am_locker(r), Not(grantable(r, e)), Not(grant_lost(r, e)))),
                   update=lambda r, e: {"waiter": If(And(Select(r.members, e.src), e.src != r.me), e.src, r.waiter)},
                   effects=(Effect("send", "lock_busy", lambda r, e, a: {"to": e.src}),),
                   doc="the lock is held (also by the requester: its unlock may be lost, and the query settles it), "
                       "a regroup is in progress, the request is stale, or the requester has not installed this "
                       "locker's membership (its sweep would miss a member): ask again later"),
        Transition("lock_request", LIVE, None, guard=named("not_the_locker", lambda r, e: Not(i_am_locker(r))),
                   doc="this node is not the locker (a request from before a membership change)"),
        Transition("unlock", LIVE, None, guard=named("holder_unlocks", lambda r, e: And(
            holder_unlocks(r, e), Not(locker_waits(r)))),
                   update=lambda r, e: {"lock_holder": NONE},
                   effects=(Effect("send", "lock_free", lambda r, e, a: {"to": r.waiter},
                                   when=lambda r, e: r.waiter != NONE),),
                   doc="the sender delivered to every member: free; tell the node last told busy, which asks now"),
        Transition("unlock_query_elapsed", LIVE, None, guard=named("holder_keeps_the_lock", lambda r, e:
                                                                   held_by_another(r)),
                   effects=(Effect("send", "unlock_query", lambda r, e, a: {"to": r.lock_holder,
                                                                            "seq": r.locked_seq}), QUERY_LATER),
                   doc="the lock is still held for another node: ask it whether its sweep is over (its unlock may "
                       "have been lost), and again later"),
        Transition("unlock_query_elapsed", LIVE, None, guard=named("lock_given_back", lambda r, e: Not(
            held_by_another(r))), doc="the lock was freed (or is the locker's own): a late timer"),
        Transition("unlock_query", LIVE, None, guard=named("sweep_is_over", sweep_is_over),
                   effects=(Effect("send", "unlock", lambda r, e, a: {"to": e.src, "seq": e.seq}),),
                   doc="this node swept the update to the end: its unlock was lost, unlock again"),
        Transition("unlock_query", AT_REST, REQUESTING, guard=named("sweep_was_lost", sweep_was_lost),
                   effects=(REQUEST, RETRY),
                   doc="this node holds the lock for an update it does not have and does not ask for: it restarted "
                       "after the locker granted it; ask for the grant again: the locker sends it with the update "
                       "it applied under that number, and this node sweeps that"),
        Transition("unlock_query", LIVE, None, guard=named("sweep_not_over", lambda r, e: Not(Or(
            sweep_is_over(r, e), sweep_was_lost(r, e), sweep_cut_short(r, e)))),
                   doc="still sweeping it, still waiting for its grant (the retry brings it again), or not from "
                       "this node's locker: no answer"),
        Transition("unlock", LIVE, None, guard=named("stale_unlock", lambda r, e: Not(holder_unlocks(r, e))),
                   doc="not from the holder of this lock (late, duplicated, or the lock was replayed)"),
    ]

    rows += sweep_rows("unlock_query", (IDLE, BLOCKED, REQUESTING), "sweep_again", sweep_cut_short,
                       lambda r, e: r.replace(sending_seq=e.seq, own=True, next=NONE), lambda r1, e: r1.locker,
                       "this node holds the lock for an update it has, but restarted in the middle of its sweep: "
                       "sweep it again from the start (a request of its own is dropped: aborted)",
                       first=(Effect("report", "aborted", when=lambda r, e: r.is_(REQUESTING)),))

    # the sender's side of the lock
    def grant_valid(r: Any, e: Any) -> Any:
        return And(e.src == r.locker, Not(i_am_locker(r)), e.seq == r.last_seq + 1)

    def granted(r: Any, e: Any) -> Any:
        return r.replace(sending_seq=e.seq, own=True, next=NONE)

    rows += sweep_rows("lock_granted", (REQUESTING,), "granted", grant_valid, granted,
                       lambda r1, e: r1.locker, "the locker applied the update and granted the lock")
    rows += [
        Transition("lock_granted", (REQUESTING,), None, guard=named("stale_grant", lambda r, e: Not(
            grant_valid(r, e))), doc="not from the locker, or not for this node's next number: a late message"),
        Transition("lock_free", (REQUESTING,), None, guard=named("told_free", lambda r, e: And(
            e.src == r.locker, Not(i_am_locker(r)))), effects=(REQUEST,),
                   doc="the locker freed the lock after telling this node busy: ask now, not at the retry"),
        Transition("lock_free", (REQUESTING,), None, guard=named("stale_free", lambda r, e: Not(And(
            e.src == r.locker, Not(i_am_locker(r))))), doc="from a former locker"),
        Transition("lock_busy", (REQUESTING,), None, guard=named("told_busy", lambda r, e: e.src == r.locker),
                   effects=(RETRY,), doc="the lock is held: ask again after lock_retry_ms (G2: the sender waits)"),
        Transition("lock_busy", (REQUESTING,), None, guard=named("stale_busy", lambda r, e: e.src != r.locker),
                   doc="from a former locker"),
    ]
    refused_valid = named("refused", lambda r, e: And(e.src == r.locker, e.seq == r.last_seq + 1))
    rows += at_rest("update_refused", "update_failed", (REQUESTING,), refused_valid, lambda r, e: {},
                    (Effect("report", "refused", lambda r, e, a: {"seq": e.seq}),),
                    "the locker could not apply the update: it fails back to the caller (G2)")
    rows.append(Transition("update_failed", (REQUESTING,), None, guard=named("stale_refusal", lambda r, e: Not(
        refused_valid(r, e))), doc="not about this node's request"))

    # receiving an update
    def accepts(r: Any, e: Any) -> Any:
        """A sweep of this node's locker (the locker itself has every update and takes none)."""
        return And(e.locker == r.locker, Not(i_am_locker(r)))

    def gap(r: Any, e: Any) -> Any:
        return Or(e.seq > r.last_seq + 1, And(r.is_(DELIVERING), r.own, e.seq > r.sending_seq))

    def fresh(r: Any, e: Any) -> Any:
        return e.seq == r.last_seq + 1

    def receive_update(r: Any, e: Any) -> dict[str, Any]:
        return {"last_seq": If(fresh(r, e), e.seq, r.last_seq)}

    RECEIVE = (*persist_and_apply(lambda r, e: e.seq, when=fresh),
               Effect("send", "applied", lambda r, e, a: {"to": e.src, "seq": e.seq}))

    def verdict(r: Any, e: Any) -> Any:
        return And(accepts(r, e), Not(gap(r, e)), e.src == r.locker)

    rows += [
        Transition("apply_update", LIVE, HALTED, guard=named("missed_an_update", lambda r, e: And(
            accepts(r, e), gap(r, e), Not(r.blocked))), update=lambda r, e: HALT,
                   effects=(Effect("send", "apply_failed", lambda r, e, a: {"to": e.src, "seq": e.seq}), EVICT_ME),
                   doc="a number beyond the next: this node missed an update and cannot catch up; leave"),
        Transition("apply_update", LIVE, None, guard=named("ahead_of_the_regroup", lambda r, e: And(
            accepts(r, e), gap(r, e), r.blocked)),
                   doc="a number beyond the next during a regroup: the sweep of a membership this node has not "
                       "installed yet, which may bring it the sponsor's database; not acknowledged, so the sender "
                       "delivers it again"),
        Transition("apply_update", (IDLE, BLOCKED, REQUESTING, DELIVERING), None, guard=named(
            "in_order_or_duplicate", lambda r, e: And(accepts(r, e), Not(gap(r, e)))), update=receive_update,
                   effects=RECEIVE, doc="apply the next number; acknowledge it, or a duplicate, to the sender"),
        Transition("apply_update", (AWAITING,), None, guard=named("from_another_sender", lambda r, e: And(
            accepts(r, e), Not(gap(r, e)), e.src != r.locker)), update=receive_update, effects=RECEIVE,
                   doc="apply the next number; acknowledge it, or a duplicate, to the sender"),
        Transition("apply_update", LIVE, None, guard=named("other_locker", lambda r, e: Not(accepts(r, e))),
                   doc="a sweep granted by another locker (cut short by a membership change): ignore"),
    ]
    rows += at_rest("replay_decides", "apply_update", (AWAITING,), verdict,
                    lambda r, e: {**receive_update(r, e), "sending_seq": 0},
                    (*RECEIVE,
                     Effect("report", "committed", lambda r, e, a: {"seq": e.seq},
                            when=lambda r, e: e.seq == r.sending_seq),
                     Effect("report", "aborted", when=lambda r, e: e.seq != r.sending_seq)),
                    "the new locker's replay: it carries this node's update exactly when a survivor had it")

    # acknowledgements and failures
    def ack_expected(r: Any, e: Any) -> Any:
        return And(e.src == r.next, e.seq == r.sending_seq)

    rows += sweep_rows("applied", (DELIVERING,), "acknowledged", ack_expected, lambda r, e: r,
                       lambda r1, e: e.src, "the node applied the update")
    rows += [
        Transition("applied", (DELIVERING,), None, guard=named("stale_ack", lambda r, e: Not(ack_expected(r, e))),
                   doc="not the acknowledgement this sweep waits for"),
        Transition("apply_failed", LIVE, None,
                   effects=(Effect("report", "evict", lambda r, e, a: {"node": e.src}),),
                   doc="a node could not apply an update: have it evicted (G2); a sweep waiting for it goes on "
                       "once the membership changes"),
        Transition("peer_failed", LIVE, None, effects=(Effect("report", "evict", lambda r, e, a: {"node": e.node}),),
                   doc="the transport cannot reach a node: declare it dead, the regroup evicts it"),
    ]

    # this node's own apply failed
    def own_first_apply(r: Any, e: Any) -> Any:
        return And(r.is_(DELIVERING), r.own, i_am_locker(r), e.seq == r.sending_seq, e.seq == r.last_seq)

    def granted_apply(r: Any, e: Any) -> Any:
        return And(i_am_locker(r), r.lock_holder != NONE, r.lock_holder != r.me, e.seq == r.locked_seq,
                   e.seq == r.last_seq)

    def alone_apply(r: Any, e: Any) -> Any:
        return And(r.is_(*AT_REST), i_am_locker(r), lock_free(r), e.seq == r.last_seq, e.seq >= 1,
                   Count(r.members) == 1)

    def broken(r: Any, e: Any) -> Any:
        return Not(Or(own_first_apply(r, e), granted_apply(r, e), alone_apply(r, e)))

    def un_apply(r: Any) -> dict[str, Any]:
        """Take back the last update applied here (an own sweep of it is forgotten)."""
        return {"last_seq": r.last_seq - 1, "last_swept": If(r.last_swept < r.last_seq, r.last_swept, 0)}

    def take_back(r: Any, e: Any) -> dict[str, Any]:
        return {**un_apply(r), "lock_holder": NONE, "own": False, "next": NONE, "sending_seq": 0}

    REFUSED = Effect("report", "refused", lambda r, e, a: {"seq": e.seq})
    rows += at_rest("own_update_refused", "apply_error", (DELIVERING,), own_first_apply, take_back, (REFUSED,),
                    "the locker could not apply its own update (nothing went out): take it back, it fails")
    rows += at_rest("alone_update_refused", "apply_error", AT_REST, alone_apply,
                    lambda r, e: un_apply(r), (REFUSED,),
                    "the only member could not apply its own update: take it back, it fails")
    rows += [
        Transition("apply_error", LIVE, None, guard=named("grant_refused", lambda r, e: And(
            granted_apply(r, e), Not(own_first_apply(r, e)))),
                   update=lambda r, e: {**un_apply(r), "lock_holder": NONE},
                   effects=(Effect("send", "update_failed", lambda r, e, a: {"to": r.lock_holder, "seq": e.seq}),),
                   doc="the locker could not apply a sender's update (the grant did not go out): take it back "
                       "and free the lock; the update fails back to the sender (G2)"),
        Transition("apply_error", LIVE, HALTED, guard=named("cannot_apply", broken), update=lambda r, e: HALT,
                   effects=(Effect("send", "apply_failed", lambda r, e, a: {"to": NONE, "seq": e.seq}), EVICT_ME),
                   doc="this node could not apply an update the cluster committed: halt and be evicted (G2)"),
    ]

    # regroups and membership changes
    def me_alive(r: Any, e: Any) -> Any:
        return Select(alive(e), r.me)

    def becomes_locker(r: Any, e: Any) -> Any:
        return And(successor(r, alive(e)) == r.me, Not(i_am_locker(r)))

    def holder_lost(r: Any, e: Any) -> Any:
        return And(i_am_locker(r), r.lock_holder != NONE, r.lock_holder != r.me,
                   Not(Select(alive(e), r.lock_holder)))

    def restarted_locker(r: Any, e: Any) -> Any:
        """A locker that (re)started since its last membership lost the state of its sweeps: a member may lack
        its last update (it applied it first, then crashed or halted mid-sweep)."""
        return And(r.fresh, successor(r, alive(e)) == r.me, lock_free(r), r.last_seq >= 1)

    def replays(r: Any, e: Any) -> Any:
        return And(me_alive(r, e), Or(becomes_locker(r, e), holder_lost(r, e), restarted_locker(r, e)))

    def locker_lost(r: Any, e: Any) -> Any:
        return successor(r, alive(e)) != r.locker

    def calm(r: Any, e: Any) -> Any:
        """Still a member, no replay to start."""
        return And(me_alive(r, e), Not(replays(r, e)))

    def installed(r: Any, e: Any) -> dict[str, Any]:
        members = alive(e)
        locker = successor(r, members)
        return {"members": members, "locker": locker, "blocked": False, "fresh": False, "waiter": NONE,
                "lock_holder": If(locker == r.me, r.lock_holder, NONE)}

    def keeps_own(r: Any) -> Any:
        """This node's own sweep continues as the replay: it is the new locker and has its update."""
        return And(r.is_(DELIVERING), r.own, r.last_seq == r.sending_seq)

    def replay_prepare(r: Any, e: Any) -> Any:
        return r.replace(**installed(r, e)).replace(lock_holder=r.me, locked_seq=r.last_seq,
                                                    sending_seq=r.last_seq, own=keeps_own(r), next=NONE)

    def drops_own(r: Any, e: Any) -> Any:
        return Or(r.is_(REQUESTING, AWAITING), And(r.is_(DELIVERING), r.own, Not(keeps_own(r))))

    def passed_new_locker(r: Any, e: Any) -> Any:
        return pos(r.locker, successor(r, alive(e))) < pos(r.locker, r.next)

    def stop(r: Any, e: Any) -> dict[str, Any]:
        return {**installed(r, e), "lock_holder": NONE, "next": NONE, "own": False, "sending_seq": 0}

    MEMBERSHIP = "membership_changed"
    rows += [
        Transition(MEMBERSHIP, LIVE, HALTED, guard=named("excluded", lambda r, e: Not(me_alive(r, e))),
                   update=lambda r, e: {**HALT, "members": alive(e)},
                   effects=(INTERRUPTED,),
                   doc="this node is no longer a member: halt its GUM role"),
    ]
    rows += sweep_rows(MEMBERSHIP, LIVE, "replay", replays, replay_prepare, at_me,
                       "the locker lost the lock's holder, or this node is the new locker: replay the last update "
                       "(seq 0 if none) to every member, holding the lock",
                       first=(Effect("report", "aborted", when=drops_own),))
    rows += sweep_rows(MEMBERSHIP, (DELIVERING,), "skip_lost_node", lambda r, e: And(
        calm(r, e), Not(locker_lost(r, e)), Not(Select(alive(e), r.next))),
                       lambda r, e: r.replace(**installed(r, e)), lambda r1, e: r1.next,
                       "the node this sweep waited for is gone: go on without it")
    rows += [
        Transition(MEMBERSHIP, (DELIVERING,), IDLE, guard=named("locker_had_it", lambda r, e: And(
            calm(r, e), locker_lost(r, e), r.own, passed_new_locker(r, e))), update=stop,
                   effects=(Effect("report", "committed", lambda r, e, a: {"seq": r.sending_seq}),),
                   doc="the locker died after this sweep reached the new locker: it has the update and replays it"),
        Transition(MEMBERSHIP, (DELIVERING,), AWAITING, guard=named("locker_may_lack_it", lambda r, e: And(
            calm(r, e), locker_lost(r, e), r.own, Not(passed_new_locker(r, e)))),
                   update=lambda r, e: {**stop(r, e), "sending_seq": r.sending_seq},
                   doc="the locker died before this sweep reached the new locker: its replay will tell"),
        Transition(MEMBERSHIP, (DELIVERING,), IDLE, guard=named("replay_moot", lambda r, e: And(
            calm(r, e), locker_lost(r, e), Not(r.own))), update=stop,
                   doc="no longer the locker: the new locker replays"),
        Transition(MEMBERSHIP, (DELIVERING,), None, guard=named("sweep_goes_on", lambda r, e: And(
            calm(r, e), Not(locker_lost(r, e)), Select(alive(e), r.next))), update=installed,
                   doc="install the membership; the sweep goes on"),
        Transition(MEMBERSHIP, (REQUESTING,), IDLE, guard=named("request_lost", lambda r, e: And(
            calm(r, e), locker_lost(r, e))), update=stop, effects=(ABORTED,),
                   doc="the locker died before granting: no survivor has the update; the caller may submit again"),
        Transition(MEMBERSHIP, (REQUESTING,), None, guard=named("request_stands", lambda r, e: And(
            calm(r, e), Not(locker_lost(r, e)))), update=installed, doc="install the membership"),
        Transition(MEMBERSHIP, AT_REST, IDLE, guard=named("install", lambda r, e: calm(r, e)), update=installed,
                   doc="install the membership: updates may flow again"),
        Transition(MEMBERSHIP, (AWAITING,), None, guard=named("still_awaiting", lambda r, e: calm(r, e)),
                   update=installed,
                   doc="install the membership; wait for the (new) locker's replay"),
        Transition("regroup_started", (IDLE,), BLOCKED, update=lambda r, e: {"blocked": True},
                   doc="a regroup is in progress: no new update until the membership is installed"),
        Transition("regroup_started", (REQUESTING, DELIVERING, AWAITING), None, update=lambda r, e: {"blocked": True},
                   doc="a regroup is in progress: no lock is granted until the membership is installed"),
        Transition("database_loaded", LIVE, BLOCKED,
                   guard=named("sponsor_view", lambda r, e: Select(alive(e), e.locker)),
                   update=lambda r, e: {**HALT, "last_seq": e.seq, "locker": e.locker, "locked_seq": 0,
                                        "members": Store(alive(e), r.me, True), "blocked": True,
                                        "last_swept": If(r.last_swept <= e.seq, r.last_swept, 0)},
                   effects=(Effect("cancel_timer", "lock_retry_elapsed"), Effect("cancel_timer", "resend_elapsed"),
                            INTERRUPTED),
                   doc="this node joins a membership behind its sponsor and loaded the sponsor's database: its "
                       "history is the sponsor's up to seq, its locker and members the sponsor's (and itself); "
                       "anything of its own in flight is left (interrupted); updates wait for the membership to "
                       "be installed; an own sweep newer than the loaded history is forgotten"),
        Transition("database_loaded", LIVE, None, guard=named("not_a_sponsor_view",
                                                               lambda r, e: Not(Select(alive(e), e.locker))),
                   doc="a sponsor's locker is always one of its members: a malformed load, ignored"),
        Transition("halt", LIVE, HALTED, update=lambda r, e: HALT, effects=(INTERRUPTED,),
                   doc="this node halted or left the cluster"),
    ]

    in_flight = ("an update from this node is in flight: submit the next one after its committed, aborted, "
                 "interrupted or refused report")
    halted = "GUM is halted on this node (it left the cluster or could not apply an update): it must rejoin first"
    ignored = (
        Ignore("submit", (BLOCKED,), "a regroup is in progress: recompute the change against the new membership and "
               "submit it once it is installed", reject=True),
        Ignore("submit", (REQUESTING, DELIVERING, AWAITING), in_flight, reject=True),
        Ignore("submit", (HALTED,), halted, reject=True),
        Ignore("lock_retry_elapsed", (IDLE, BLOCKED, DELIVERING, AWAITING, HALTED), "a late timer"),
        Ignore("resend_elapsed", (IDLE, BLOCKED, REQUESTING, AWAITING, HALTED), "not sweeping: a late timer"),
        *(Ignore(t, (IDLE, BLOCKED, DELIVERING, AWAITING, HALTED), "not waiting for the lock: a late message")
          for t in ("lock_granted", "lock_busy", "lock_free", "update_failed")),
        Ignore("applied", (IDLE, BLOCKED, REQUESTING, AWAITING, HALTED), "not sweeping: a late acknowledgement"),
        *(Ignore(t, (HALTED,), "GUM is halted on this node")
          for t in ("lock_request", "unlock", "unlock_query", "unlock_query_elapsed", "apply_update", "apply_failed",
                    "peer_failed", "apply_error", MEMBERSHIP, "regroup_started", "halt")),
        Ignore("regroup_started", (BLOCKED,), "already blocked"),
        Ignore("database_loaded", (HALTED,), "GUM is halted on this node: it must rejoin first"),
    )

    src = Arg("src", 0, n, "sender's node id", hi_max=n)
    seq = Arg("seq", 0, None, "sequence number of an update", hi_max=5)
    events = (
        Event("submit", "the caller asks to replicate its (pending) update"),
        Event("lock_retry_elapsed", "timer: ask for the lock again"),
        Event("resend_elapsed", "timer: the member the sweep waits for has not acknowledged yet"),
        Event("lock_request", "message to the locker: lock, number and apply my pending update",
              (src, Arg("seen", 0, None, "the requester's last_seq", hi_max=5),
               *(Arg(f"alive{k}", 0, 2, f"1 if node {k} is a member of the requester's installed membership",
                     hi_max=2) for k in ks))),
        Event("lock_granted", "message from the locker: it applied the update under seq; deliver it", (src, seq)),
        Event("lock_busy", "message from the locker: the lock is held; ask again later", (src,)),
        Event("lock_free", "message from the locker: the lock it said was held is free; ask now", (src,)),
        Event("update_failed", "message from the locker: it could not apply the update", (src, seq)),
        Event("unlock", "message to the locker: the sweep of seq is over", (src, seq)),
        Event("unlock_query", "message from the locker: is the sweep of seq over? (its unlock may have been lost)",
              (src, seq)),
        Event("unlock_query_elapsed", "timer: the locker asks the lock's holder whether its sweep is over"),
        Event("apply_update", "message: apply update seq (of the sweep granted by locker)",
              (src, seq, Arg("locker", 0, n, "the locker that granted the sweep", hi_max=n))),
        Event("applied", "message: the node has update seq", (src, seq)),
        Event("apply_failed", "message: the node could not apply update seq and leaves", (src, seq)),
        Event("apply_error", "the runtime could not apply update seq here (the step's later effects were "
              "not carried out)", (seq,)),
        Event("peer_failed", "the transport cannot reach a node", (Arg("node", 0, n, "node id", hi_max=n),)),
        Event("regroup_started", "the membership layer started a regroup"),
        Event(MEMBERSHIP, "the membership layer installed a membership",
              tuple(Arg(f"alive{k}", 0, 2, f"1 if node {k} is a member", hi_max=2) for k in ks)),
        Event("halt", "this node halted or left the cluster"),
        Event("database_loaded", "the runtime loaded the sponsor's database, whose last update is seq",
              (seq, Arg("locker", 0, n, "the sponsor's locker", hi_max=n),
               *(Arg(f"alive{k}", 0, 2, f"1 if node {k} is one of the sponsor's members", hi_max=2) for k in ks))),
    )

    fields = (
        Field("me", int, 0, "this node's id", lo=0, hi=n - 1, param=True),
        Field("lock_retry_ms", int, LOCK_RETRY_MS, "wait before asking for a busy lock again", lo=1, param=True),
        Field("resend_ms", int, RESEND_MS, "wait for an acknowledgement before delivering again", lo=1,
              param=True),
        Field("unlock_query_ms", int, UNLOCK_QUERY_MS, "at the locker: how long a lock may be held for another "
              "node before the locker asks it whether its sweep is over", lo=1, param=True),
        Field("members", bool, (True,) * n, "installed membership", length=n),
        Field("locker", int, 0, "the locker node", lo=0, hi=n - 1),
        Field("last_seq", int, 0, "highest sequence number applied here", lo=0),
        Field("lock_holder", int, NONE, "at the locker: who holds the global lock (-1: free)", lo=NONE, hi=n - 1),
        Field("locked_seq", int, 0, "at the locker: the number of the update the lock was taken for", lo=0),
        Field("sending_seq", int, 0, "the update this node sweeps, or waits to hear about (0: none)", lo=0),
        Field("next", int, NONE, "the node this sweep waits for (-1: none)", lo=NONE, hi=n - 1),
        Field("own", bool, False, "the sweep carries this node's own update (else it is a replay)"),
        Field("blocked", bool, False, "a regroup is in progress"),
        Field("waiter", int, NONE, "at the locker: the member last told busy, until the locker grants it the lock "
              "(-1: none); told when the lock is free, and the locker's own next update waits for it for one "
              "lock_retry_ms, so that a stream of the locker's own updates cannot keep the others waiting",
              lo=NONE, hi=n - 1),
        Field("last_swept", int, 0, "the last update of its own this node swept to the end since it started (a "
              "locker asks a holder that keeps its lock)", lo=0),
        Field("fresh", bool, True, "(re)started and no membership installed since: a locker then replays its "
              "last update at its first membership"),
    )

    def member(r: Any, k: Any) -> Any:
        return Select(r.members, k)

    invariants = (
        Invariant("lock_only_at_locker", lambda r: Implies(r.lock_holder != NONE, i_am_locker(r)),
                  "only the locker holds lock state: at most one lock, as the locker's record sees it"),
        Invariant("locker_applied_first", lambda r: Implies(r.lock_holder != NONE, r.locked_seq == r.last_seq),
                  "while the lock is held, the locker has applied the update it was taken for (it applies first)"),
        Invariant("own_lock_iff_sweeping_as_locker",
                  lambda r: (r.lock_holder == r.me) == And(r.is_(DELIVERING), i_am_locker(r)),
                  "the locker holds the lock for itself exactly while it sweeps (its own update or a replay)"),
        Invariant("sweep_waits_for_a_member", lambda r: If(
            r.is_(DELIVERING), And(r.next != NONE, r.next != r.me, r.next != r.locker, member(r, r.next)),
            r.next == NONE),
                  "a sweep waits for another member, never for itself or the locker"),
        Invariant("sender_at_most_one_behind", lambda r: Implies(And(r.is_(DELIVERING), r.own), And(
            r.sending_seq >= 1, r.last_seq + 1 >= r.sending_seq, r.last_seq <= r.sending_seq)),
                  "a sender has applied everything before its update, and nothing after it"),
        Invariant("replay_is_the_lockers_last", lambda r: Implies(And(r.is_(DELIVERING), Not(r.own)), And(
            i_am_locker(r), r.sending_seq == r.last_seq)),
                  "only the locker replays, and it replays the last update it applied"),
        Invariant("swept_what_it_has", lambda r: r.last_swept <= r.last_seq,
                  "the last update this node swept to the end is one it has"),
        Invariant("own_only_when_sweeping", lambda r: Implies(r.own, r.is_(DELIVERING)),
                  "the own flag describes a sweep"),
        Invariant("nothing_in_flight_at_rest", lambda r: And(
            Implies(r.is_(IDLE, BLOCKED, REQUESTING, HALTED), r.sending_seq == 0),
            Implies(r.is_(AWAITING), r.sending_seq >= 1)),
                  "a sequence number is kept only while this node sweeps or waits for a replay's verdict"),
        Invariant("blocked_state_matches_flag", lambda r: And(
            Implies(r.is_(IDLE), Not(r.blocked)), Implies(r.is_(BLOCKED), r.blocked)),
                  "Blocked is the idle state during a regroup"),
        Invariant("live_node_is_a_member", lambda r: Implies(Not(r.is_(HALTED)), And(
            member(r, r.me), member(r, r.locker))),
                  "a node running GUM is in its installed membership, and so is its locker"),
    )
    return Spec(
        name="gum",
        doc=__doc__ or "",
        states=STATES,
        initial=IDLE,
        fields=fields,
        events=events,
        transitions=tuple(rows),
        ignored=ignored,
        invariants=invariants,
        final_states=(HALTED,),
        state_docs={
            IDLE: "no update of this node in flight (the locker may hold the lock for another node)",
            BLOCKED: "idle during a regroup: submit is refused, no lock is granted",
            REQUESTING: "waiting for the locker's grant",
            DELIVERING: "sweeping an update (own or replayed) to the members in order",
            AWAITING: "the locker died mid-sweep: waiting for the new locker's replay to learn the outcome",
            HALTED: "no longer taking part (left the cluster, or could not apply an update)",
        },
    )


#: The machine drawn in diagrams and checked by default (3 nodes).
SPEC = make_gum_spec(3)
