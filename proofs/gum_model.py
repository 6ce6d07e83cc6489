"""The Global Update Manager as a composed model: N GUM nodes and a network.

Components: ``node0 .. node{N-1}``, the GUM machine of each node
(:func:`wolfpack.spec.gum.make_gum_spec`, ``me`` fixed), and ``env``: the
network, which nodes are alive, and the ghost payloads the properties talk
about.  Every rule of a node comes from the spec (its rows' guards, updates
and effects, evaluated on symbolic records); this module only says how the
nodes' effects meet.

* **Messages** sit in the network, one slot per (message type, sender,
  receiver).  A node's ``send`` effects write its slots (``to = -1``: every
  other node).  A step delivers a slot to a live receiver, which handles the
  event (``src`` plus the slot's fields) by one of its rows, or ignores it
  where its spec says so; its own sends land in the network in the same
  step.  The slot is emptied, or kept: the network duplicated the message.
  Replies travel like any message (synchronised steps alone, as in
  :class:`~wolfpack.proofs.model.Sync`, cannot carry a reply to a reply).
  A message may stay in flight for ever, which is what a lost message is to
  the properties (they read only node records and ghosts), and a later send
  into a full slot overwrites it.  So the model covers loss, duplication,
  delay and reordering across slots; two messages of one type between the
  same two nodes are never in flight at once.
* **Timers** (``*_elapsed``) fire at any step; the spec ignores a late one.
* **A crash** (or eviction) of node c removes it and, in the same step,
  gives every other live node ``membership_changed``: the regroup is atomic
  here.  The same step without a crash is a regroup that keeps everybody;
  ``regroup_started`` reaches every live node in one step.  Messages from a
  dead node stay in flight and may still be delivered.
* **Payloads.**  The runtime keeps each update's payload by sequence number;
  the model keeps an id: ``submit`` draws a fresh one (``env.mine``),
  ``lock_request`` and ``apply_update`` carry one, and ``command apply`` of
  seq s at node k records in ``env.hist`` the payload of the message being
  handled, or else the node's own pending one.  An ``apply_update`` carries
  the payload the sender applied under that number, or its pending one if
  it has not applied it yet.

Left out, each for a reason :func:`check_left_out` checks against the spec:
``lock_busy`` and ``apply_failed`` are never delivered (their rows leave the
record as it is; the retry timer fires freely anyway); ``apply_error``,
``peer_failed`` and ``halt`` are not steps (a node whose apply fails halts
and is evicted, which the model covers as a crash), so ``update_failed``,
which only ``apply_error`` rows send, never exists.  At most ``max_seq``
updates are numbered: a step past it is not taken.

Properties, over the healthy nodes (live and not halted):

* ``applied_prefixes_agree``: the updates applied by any two healthy nodes
  are prefixes of one sequence (the same payload at every number both have);
* ``lag_is_being_repaired``: two healthy nodes differ by at most one update,
  and one that lacks the newest is ahead of a healthy node's sweep of it (or
  of one about to start: the lock granted to a healthy requester).  It is
  the safety half of "if any survivor applied seq s, every survivor
  eventually does": somebody alive is responsible for the laggard, and when
  that node dies the crash step itself starts the replay that takes over;
* ``no_update_applied_twice``: one payload never gets two numbers at a node;
* ``live_nodes_stay_in``: a live node never halts (no node sees a gap);
* ``one_sweep_at_a_time``: at most one healthy node sweeps.

With the lemmas of :func:`lemmas` (what the locker, the lock holder and each
message in flight imply) and the spec's own invariants, they are one
inductive invariant: 1-induction proves them for all depths, for N nodes
and at most ``max_seq`` numbered updates.  :func:`witness_depths` shows the
runs the model must contain (a replay, a sender waiting for the verdict, an
update reaching everybody).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import z3

from wolfpack.errors import SpecError
from wolfpack.proofs.backend import symbolic, to_bool, to_term
from wolfpack.proofs.invariants import Prover
from wolfpack.proofs.model import Component, Model, Property, View
from wolfpack.proofs.results import FAILED, PROVED, Result
from wolfpack.proofs.system import Frame, System
from wolfpack.proofs.trace import Step
from wolfpack.spec import gum
from wolfpack.spec.core import Field, Record, Spec
from wolfpack.spec.expr import And, Exists, ForAll, If, Implies, Not, Or

NODES = 3
MAX_SEQ = 2
#: depth of the search for the witnesses (all are reached by depth 6)
BOUND = 6
ENV = "env"
#: the message types the model delivers -> the ghost fields each carries besides its event's arguments
#: (``uid``: the payload); :func:`message_fields` adds the arguments from the spec
MESSAGES: dict[str, tuple[str, ...]] = {
    "lock_request": ("uid",),
    "lock_granted": (),
    "lock_free": (),
    "unlock": (),
    "unlock_query": (),
    "apply_update": ("uid",),
    "applied": (),
}
GHOST = ("uid",)
#: messages whose delivery changes no record (checked), so the model never delivers them
NO_EFFECT = ("lock_busy", "apply_failed")
#: local events that are not steps of the model, and the messages only they send (checked)
#: (``database_loaded``: a node that joins behind the others; the model's members go through every membership)
NOT_STEPS = ("apply_error", "peer_failed", "halt", "database_loaded")
ONLY_FROM_NOT_STEPS = ("update_failed",)
#: local events that are steps of the model: submit, and every timer (``*_elapsed``: it may fire at any time)
SUBMIT = "submit"
TIMER_SUFFIX = "_elapsed"
#: the row number shown for steps of the environment (crash, regroup): not a row of any spec
ENV_STEP = -1


def node(k: int) -> str:
    return f"node{k}"


def slot(n: int, src: int, dst: int) -> int:
    return src * n + dst


@cache
def message_fields(n: int) -> dict[str, tuple[str, ...]]:
    """Message type -> its fields besides ``src``: the arguments of its event in the spec, then its ghosts
    (``lock_request`` carries the requester's view: one ``alive{k}`` per node)."""
    events = {e.name: e for e in gum.make_gum_spec(n).events}
    return {m: (*(a.name for a in events[m].args if a.name != "src"), *ghosts) for m, ghosts in MESSAGES.items()}


def env_spec(n: int, max_seq: int) -> Spec:
    """The network and the ghost state, as a record (no rows: the model's steps change it)."""
    pairs = n * n
    fields: list[Field] = [Field("alive", bool, (True,) * n, "the node is running", length=n)]
    for name, args in message_fields(n).items():
        fields.append(Field(f"{name}__in", bool, (False,) * pairs, f"a {name} is in flight [src*n+dst]",
                            length=pairs))
        for a in args:  # no bounds: the receivers' rows must cope with any value (and proving them costs)
            fields.append(Field(f"{name}__{a}", int, (0,) * pairs, f"{a} of that {name}", length=pairs))
    fields += [
        Field("hist", int, (0,) * (n * max_seq), "payload node k applied under seq s [k*max_seq+s-1] (0: none)",
              length=n * max_seq),
        Field("mine", int, (0,) * n, "payload of each node's pending update", length=n),
        Field("next_uid", int, 1, "the next fresh payload id"),
    ]
    return Spec(name="gum_network", doc="the network and ghost payloads of the composed GUM model",
                states=("Up",), initial="Up", fields=tuple(fields), events=(), transitions=())


def check_left_out(spec: Spec) -> None:
    """Raise if a spec change makes leaving those messages and events out of the model unsound."""
    sent = {e.name for t in spec.transitions for e in t.effects if e.kind == "send"}
    unknown = sent - set(MESSAGES) - set(NO_EFFECT) - set(ONLY_FROM_NOT_STEPS)
    if unknown:
        raise SpecError(f"gum sends {sorted(unknown)}, which the composed model does not know")
    for name in NO_EFFECT:
        for t in spec.transitions:
            if t.trigger == name and (t.update is not None or t.dest is not None
                                      or any(e.kind == "send" for e in t.effects)):
                raise SpecError(f"gum: {name} now changes the record or sends; the composed model must deliver it")
    for t in spec.transitions:
        for e in t.effects:
            if e.kind == "send" and e.name in ONLY_FROM_NOT_STEPS and t.trigger not in NOT_STEPS:
                raise SpecError(f"gum: {t.trigger} sends {e.name}; the composed model must deliver it")
    steps = {SUBMIT, "regroup_started", "membership_changed", *MESSAGES, *NO_EFFECT, *ONLY_FROM_NOT_STEPS,
             *NOT_STEPS}
    unaccounted = [t for t in spec.triggers if t not in steps and not t.endswith(TIMER_SUFFIX)]
    if unaccounted:
        raise SpecError(f"gum has events {unaccounted} the composed model does not account for")
    for t in spec.transitions:
        kinds = [e.name for e in t.effects if e.kind == "send"]
        if len(kinds) != len(set(kinds)):
            raise SpecError(f"gum: a {t.trigger} row sends one message type twice; the network has one slot each")


# -- properties ---------------------------------------------------------------------------------


def healthy(v: View, k: int) -> Any:
    return And(v[ENV].alive[k], Not(v[node(k)].is_(gum.HALTED)))


def hist(v: View, k: int, s: int, max_seq: int) -> Any:
    return v[ENV].hist[k * max_seq + s - 1]


def _pos(n: int, a: Any, k: Any) -> Any:
    return If(k >= a, k - a, k - a + n)


def properties(n: int, max_seq: int) -> tuple[Property, ...]:
    ks, seqs = range(n), range(1, max_seq + 1)

    def prefixes(v: View) -> Any:
        return ForAll(ks, lambda j: ForAll(ks, lambda k: Implies(And(j < k, healthy(v, j), healthy(v, k)), ForAll(
            seqs, lambda s: Implies(And(s <= v[node(j)].last_seq, s <= v[node(k)].last_seq),
                                    hist(v, j, s, max_seq) == hist(v, k, s, max_seq))))))

    def covered(v: View, k: int, newest: Any) -> Any:
        def sweeps_to_k(x: int) -> Any:
            rx = v[node(x)]
            return And(healthy(v, x), rx.is_(gum.DELIVERING), rx.sending_seq == newest,
                       _pos(n, rx.locker, k) >= _pos(n, rx.locker, rx.next))

        def granted_to_start(lk: int) -> Any:
            """The locker applied it and granted the lock to a healthy node whose sweep has not begun."""
            rl = v[node(lk)]
            return And(healthy(v, lk), rl.locker == lk, rl.locked_seq == newest, Exists(ks, lambda h: And(
                h != lk, rl.lock_holder == h, healthy(v, h), v[node(h)].is_(gum.REQUESTING))))

        return Or(Exists(ks, sweeps_to_k), Exists(ks, granted_to_start))

    def lag(v: View) -> Any:
        return ForAll(ks, lambda j: ForAll(ks, lambda k: Implies(
            And(healthy(v, j), healthy(v, k), v[node(k)].last_seq < v[node(j)].last_seq),
            And(v[node(k)].last_seq + 1 == v[node(j)].last_seq, covered(v, k, v[node(j)].last_seq)))))

    def once(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(healthy(v, k), ForAll(seqs, lambda s: ForAll(seqs, lambda t: Implies(
            And(s < t, t <= v[node(k)].last_seq), hist(v, k, s, max_seq) != hist(v, k, t, max_seq))))))

    def stay_in(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(v[ENV].alive[k], Not(v[node(k)].is_(gum.HALTED))))

    def one_sweep(v: View) -> Any:
        return ForAll(ks, lambda j: ForAll(ks, lambda k: Implies(j < k, Not(And(
            healthy(v, j), v[node(j)].is_(gum.DELIVERING), healthy(v, k), v[node(k)].is_(gum.DELIVERING))))))

    def agree(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(healthy(v, k), And(
            ForAll(ks, lambda j: v[node(k)].members[j] == v[ENV].alive[j]),
            ForAll(ks, lambda j: Implies(healthy(v, j), v[node(j)].locker == v[node(k)].locker)))))

    return (
        Property("applied_prefixes_agree", prefixes,
                 "the updates applied by any two healthy nodes are prefixes of one sequence"),
        Property("lag_is_being_repaired", lag,
                 "healthy nodes differ by at most one update, and one that lacks the newest is still ahead of a "
                 "healthy node's sweep of it, or that sweep is about to start (granted to a healthy requester)"),
        Property("no_update_applied_twice", once, "a payload is applied under one number only"),
        Property("live_nodes_stay_in", stay_in, "a live node never halts (it never misses an update)"),
        Property("one_sweep_at_a_time", one_sweep, "at most one healthy node sweeps an update"),
        Property("members_agree", agree, "healthy nodes install the live set and agree on the locker",
                 reported=False),
    )


def lemmas(n: int, max_seq: int) -> tuple[Property, ...]:
    """What an inductive proof needs besides the properties: the locker has the newest update, the lock
    holder's progress, and what each message in flight implies (shown only if one fails)."""
    ks, seqs = range(n), range(1, max_seq + 1)
    env = ENV

    def rec(v: View, k: int) -> Record:
        return v[node(k)]

    def is_locker(v: View, lk: int) -> Any:
        return And(healthy(v, lk), rec(v, lk).locker == lk)

    def h(v: View, k: int, s: int) -> Any:
        return hist(v, k, s, max_seq)

    def hist_at(v: View, k: int, seq: Any) -> Any:
        out: Any = 0
        for s in reversed(seqs):
            out = If(seq == s, h(v, k, s), out)
        return out

    def slot_of(v: View, m: str, field: str, s: int, d: int) -> Any:
        return getattr(v[env], f"{m}__{field}")[slot(n, s, d)]

    def for_locker(body: Callable[[View, int], Any]) -> Callable[[View], Any]:
        return lambda v: ForAll(ks, lambda lk: Implies(is_locker(v, lk), body(v, lk)))

    def everyone_has(v: View, seq: Any) -> Any:
        return ForAll(ks, lambda k: Implies(healthy(v, k), rec(v, k).last_seq == seq))

    def locker_of_healthy(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(healthy(v, k), Exists(ks, lambda lk: And(
            rec(v, k).locker == lk, is_locker(v, lk)))))

    def newest(v: View, lk: int) -> Any:
        rl = rec(v, lk)
        return ForAll(ks, lambda k: Implies(healthy(v, k), And(
            rec(v, k).last_seq <= rl.last_seq, rec(v, k).last_seq + 1 >= rl.last_seq,
            ForAll(seqs, lambda s: Implies(s <= rec(v, k).last_seq, h(v, k, s) == h(v, lk, s))))))

    def prefix_of_the_order(v: View, lk: int) -> Any:
        newest_seq = rec(v, lk).last_seq
        return ForAll(ks, lambda j: ForAll(ks, lambda k: Implies(And(
            healthy(v, j), healthy(v, k), rec(v, k).last_seq == newest_seq, _pos(n, lk, j) < _pos(n, lk, k)),
            rec(v, j).last_seq == newest_seq)))

    def nothing_beyond(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(healthy(v, k), ForAll(seqs, lambda s: If(
            s > rec(v, k).last_seq, h(v, k, s) == 0, h(v, k, s) >= 1))))

    def free_means_equal(v: View, lk: int) -> Any:
        return Implies(rec(v, lk).lock_holder == gum.NONE, everyone_has(v, rec(v, lk).last_seq))

    def holder_progress(v: View, lk: int) -> Any:
        rl = rec(v, lk)

        def case(k: int) -> Any:
            rk, q = rec(v, k), rl.locked_seq
            waiting = And(rk.is_(gum.REQUESTING), rk.last_seq + 1 == q, slot_of(v, "lock_granted", "in", lk, k),
                          slot_of(v, "lock_granted", "seq", lk, k) == q, hist_at(v, lk, q) == v[env].mine[k],
                          ForAll(ks, lambda j: Implies(And(j != lk, healthy(v, j)), rec(v, j).last_seq < q)),
                          ForAll(ks, lambda a: ForAll(ks, lambda b: Implies(a != b, Not(And(
                              slot_of(v, "apply_update", "in", a, b), slot_of(v, "apply_update", "locker", a, b) == lk,
                              slot_of(v, "apply_update", "seq", a, b) == q))))))
            sweeping = And(rk.is_(gum.DELIVERING), rk.own, rk.sending_seq == q, rk.last_swept < q)
            done = And(rk.is_(gum.IDLE, gum.BLOCKED, gum.REQUESTING), rk.last_seq == q, rk.last_swept == q,
                       everyone_has(v, q))
            return Implies(rl.lock_holder == k, And(healthy(v, k), q == rl.last_seq, q >= 1,
                                                    Or(waiting, sweeping, done)))

        return ForAll([k for k in ks if k != lk], case)

    def sweeps(v: View) -> Any:
        def one(x: int) -> Any:
            rx = rec(v, x)
            return ForAll(ks, lambda lk: Implies(And(healthy(v, x), rx.is_(gum.DELIVERING), rx.locker == lk), And(
                rec(v, lk).lock_holder == x, rec(v, lk).locked_seq == rx.sending_seq,
                rec(v, lk).last_seq == rx.sending_seq,
                ForAll(ks, lambda k: Implies(And(healthy(v, k), _pos(n, lk, k) < _pos(n, lk, rx.next)),
                                             rec(v, k).last_seq == rx.sending_seq)),
                Implies(And(rx.own, x != lk), hist_at(v, lk, rx.sending_seq) == v[env].mine[x]))))

        return ForAll(ks, one)

    def updates_in_flight(v: View, lk: int) -> Any:
        rl = rec(v, lk)

        def one(s: int, d: int) -> Any:
            seq = slot_of(v, "apply_update", "seq", s, d)
            earlier_have_it = ForAll(ks, lambda j: Implies(And(healthy(v, j), _pos(n, lk, j) < _pos(n, lk, d)),
                                                           rec(v, j).last_seq >= seq))
            tagged = slot_of(v, "apply_update", "locker", s, d) == lk
            return Implies(And(slot_of(v, "apply_update", "in", s, d), tagged),
                           And(seq <= rl.last_seq, seq >= 0, earlier_have_it,
                               Implies(seq >= 1, slot_of(v, "apply_update", "uid", s, d) == hist_at(v, lk, seq))))

        return ForAll(ks, lambda s: ForAll(ks, lambda d: Implies(s != d, one(s, d))))

    def acks_in_flight(v: View) -> Any:
        return ForAll(ks, lambda d: ForAll(ks, lambda x: Implies(And(
            d != x, slot_of(v, "applied", "in", d, x), healthy(v, d)),
            rec(v, d).last_seq >= slot_of(v, "applied", "seq", d, x))))

    def grants_in_flight(v: View, lk: int) -> Any:
        rl = rec(v, lk)
        return ForAll(ks, lambda k: Implies(And(k != lk, healthy(v, k), slot_of(v, "lock_granted", "in", lk, k)), Or(
            And(rl.lock_holder == k, rl.locked_seq == slot_of(v, "lock_granted", "seq", lk, k)),
            slot_of(v, "lock_granted", "seq", lk, k) <= rec(v, k).last_seq)))

    def requests_in_flight(v: View, lk: int) -> Any:
        rl = rec(v, lk)
        return ForAll(ks, lambda k: Implies(And(k != lk, healthy(v, k), slot_of(v, "lock_request", "in", k, lk)), And(
            slot_of(v, "lock_request", "seen", k, lk) <= rl.last_seq,
            Implies(slot_of(v, "lock_request", "seen", k, lk) == rl.last_seq, And(
            rec(v, k).is_(gum.REQUESTING), rec(v, k).last_seq == rl.last_seq,
            slot_of(v, "lock_request", "uid", k, lk) == v[env].mine[k])))))

    def unlocks_in_flight(v: View, lk: int) -> Any:
        rl = rec(v, lk)
        return ForAll(ks, lambda k: Implies(And(k != lk, slot_of(v, "unlock", "in", k, lk)), And(
            slot_of(v, "unlock", "seq", k, lk) <= rl.last_seq,
            Implies(And(rl.lock_holder == k, slot_of(v, "unlock", "seq", k, lk) == rl.locked_seq), And(
                everyone_has(v, rl.locked_seq), Not(And(rec(v, k).is_(gum.DELIVERING), rec(v, k).own)))))))

    def queries_in_flight(v: View, lk: int) -> Any:
        rl = rec(v, lk)
        def one(k: int) -> Any:
            rk, seq = rec(v, k), slot_of(v, "unlock_query", "seq", lk, k)
            return Or(And(rk.last_seq >= seq, Implies(rk.last_seq == seq, rk.last_swept == seq)),
                      And(rl.lock_holder == k, rl.locked_seq == seq))

        return ForAll(ks, lambda k: Implies(And(k != lk, healthy(v, k), slot_of(v, "unlock_query", "in", lk, k)),
                                            one(k)))

    def pending_not_applied(v: View, lk: int) -> Any:
        rl = rec(v, lk)
        return ForAll(ks, lambda k: Implies(And(healthy(v, k), rec(v, k).is_(gum.REQUESTING)), And(
            v[env].mine[k] >= 1, Implies(Not(And(rl.lock_holder == k, rec(v, k).last_seq + 1 == rl.locked_seq)),
                                         ForAll(seqs, lambda s: Implies(
                s <= rl.last_seq, h(v, lk, s) != v[env].mine[k]))))))

    def fresh(v: View) -> Any:
        e = v[env]
        uids = [*e.hist, *e.mine, *e.lock_request__uid, *e.apply_update__uid]
        return And(*[u < e.next_uid for u in uids], *[u >= 0 for u in uids])

    def distinct_pending(v: View) -> Any:
        e = v[env]
        return ForAll(ks, lambda j: ForAll(ks, lambda k: Implies(And(j < k, e.mine[j] >= 1), e.mine[j] != e.mine[k])))

    def live_lockers_are_current(v: View) -> Any:
        def pair(a: int, b: int) -> Any:
            tag = slot_of(v, "apply_update", "locker", a, b)
            return And(
                Implies(slot_of(v, "apply_update", "in", a, b), ForAll(ks, lambda t: Implies(
                    And(tag == t, healthy(v, t)), is_locker(v, t)))),
                Implies(And(slot_of(v, "lock_granted", "in", a, b), healthy(v, a)), is_locker(v, a)),
                Implies(And(slot_of(v, "unlock_query", "in", a, b), healthy(v, a)), is_locker(v, a)),
                Implies(And(slot_of(v, "lock_request", "in", a, b), healthy(v, b)), is_locker(v, b)),
                Implies(And(slot_of(v, "unlock", "in", a, b), healthy(v, b)), is_locker(v, b)))

        return ForAll(ks, lambda a: ForAll(ks, lambda b: Implies(a != b, pair(a, b))))

    def awaiting(v: View) -> Any:
        return ForAll(ks, lambda k: Implies(And(healthy(v, k), rec(v, k).is_(gum.AWAITING)), rec(v, k).locker != k))

    def lemma(name: str, holds: Callable[[View], Any], doc: str) -> Property:
        return Property(name, holds, doc, reported=False)

    return (
        lemma("locker_is_healthy", locker_of_healthy, "every healthy node's locker is healthy and knows it"),
        lemma("locker_has_the_newest", for_locker(newest),
              "healthy nodes have the locker's updates, at most one fewer"),
        lemma("newest_is_a_prefix_of_the_order", for_locker(prefix_of_the_order),
              "in the delivery order from the locker, the nodes that have the newest update come first"),
        lemma("nothing_beyond_last_seq", nothing_beyond,
              "a node has a payload for every number up to its last_seq, none past it"),
        lemma("free_lock_everyone_equal", for_locker(free_means_equal), "a free lock: every node has everything"),
        lemma("holder_progress", for_locker(holder_progress),
              "the lock holder waits for its grant, sweeps, or is done and everybody has the update (its unlock "
              "may be lost)"),
        lemma("sweeps_hold_the_lock", sweeps,
              "a sweeping node holds the locker's lock for the locker's newest update; the nodes it passed have it"),
        lemma("updates_in_flight_are_the_lockers", for_locker(updates_in_flight),
              "an update in flight tagged with the locker is one of the locker's, with its payload"),
        lemma("acks_are_true", acks_in_flight, "an acknowledgement from a healthy node is true"),
        lemma("grants_in_flight", for_locker(grants_in_flight), "a grant in flight is the current one, or stale"),
        lemma("requests_in_flight", for_locker(requests_in_flight),
              "a request the locker would grant comes from a waiting node, with its pending payload"),
        lemma("unlocks_in_flight", for_locker(unlocks_in_flight), "an unlock that would free the lock is true"),
        lemma("queries_in_flight", for_locker(queries_in_flight),
              "a query in flight asks about an update its node has, or about the lock it holds now"),
        lemma("pending_not_applied", for_locker(pending_not_applied), "a waiting node's update is not applied yet"),
        lemma("live_lockers_are_current", live_lockers_are_current,
              "a message tagged with, from or to a live node as the locker is from the current locker's time "
              "(a live locker is never replaced)"),
        lemma("awaiting_is_not_the_locker", awaiting, "a node waiting for a replay's verdict is not the locker"),
        lemma("payload_ids_fresh", fresh, "every payload id in use is below the next fresh one"),
        lemma("pending_ids_distinct", distinct_pending, "two nodes' pending updates are different updates"),
    )


def witnesses(n: int, max_seq: int) -> tuple[Property, ...]:
    """Runs the model must contain: it is not vacuous, and the failure paths are taken."""
    last = n - 1
    return (
        Property("an_update_reached_everybody", lambda v: ForAll(range(n), lambda k: v[node(k)].last_seq >= 1),
                 "every node applied an update"),
        Property("the_locker_replays", lambda v: Exists(range(n), lambda k: And(
            v[node(k)].is_(gum.DELIVERING), Not(v[node(k)].own), v[node(k)].sending_seq >= 1)),
                 "a locker replays an update after its sender died"),
        Property("a_sender_awaits_the_verdict", lambda v: v[node(last)].is_(gum.AWAITING),
                 f"node {last}'s locker died before its sweep reached the new locker: it waits for the replay"),
        Property("a_holder_done_is_asked", lambda v: Exists(range(n), lambda lk: Exists(
            range(n), lambda k: And(k != lk, v[node(lk)].locker == lk, v[node(lk)].lock_holder == k,
                                    v[node(lk)].locked_seq == 1, v[node(k)].is_(gum.IDLE),
                                    v[node(k)].last_swept == 1, v[ENV].unlock_query__in[slot(n, lk, k)],
                                    v[ENV].unlock_query__seq[slot(n, lk, k)] == 1))),
                 "the locker asks a holder that swept its update to the end whether its sweep is over (its "
                 "unlock may be lost)"),
        Property("a_second_update", lambda v: Exists(range(n), lambda k: v[node(k)].last_seq == max_seq),
                 f"a node applied update {max_seq}"),
    )


@cache
def gum_model(n: int = NODES, max_seq: int = MAX_SEQ, bound: int = BOUND) -> Model:
    """The composed model of ``n`` nodes of :func:`wolfpack.spec.gum.make_gum_spec`."""
    return build_gum_model(gum.make_gum_spec(n), n, max_seq, bound)


def build_gum_model(spec: Spec, n: int, max_seq: int = MAX_SEQ, bound: int = BOUND) -> Model:
    """The composed model of ``n`` nodes running ``spec`` (tests pass mutants)."""
    check_left_out(spec)
    components = (*(Component(node(k), spec, {"me": k}) for k in range(n)), Component(ENV, env_spec(n, max_seq)))
    return Model(f"gum_cluster[n={n}]", f"{n} GUM nodes and the network, at most {max_seq} numbered update(s)",
                 components, properties=(*properties(n, max_seq), *lemmas(n, max_seq)), witnesses=witnesses(n, max_seq),
                 table_checks=False, bmc_bound=bound)


# -- the transition relation ------------------------------------------------------------------
#
# One step: the selector ``act`` picks an action (a node's local event, a delivery, a regroup start,
# an install with or without a crash); ``row<k>`` is the row node k fires (IGNORED: it ignores
# the event; NOT_INVOLVED: the action does not concern it).  Each row's guard, update and effects are
# evaluated once per node on that node's event arguments (if-then-else chains over the actions that
# give it that event), and every next value is an if-then-else chain over the rows that change it.

IGNORED = -2
NOT_INVOLVED = -1


@dataclass(frozen=True)
class Action:
    kind: str  # "local", "deliver", "regroup_started", "install"
    trigger: str = ""
    node: int | None = None  # local: the node; deliver: the receiver; install: the crashed node (None: none)
    src: int | None = None

    def label(self) -> str:
        if self.kind == "local":
            return f"node{self.node}.{self.trigger}"
        if self.kind == "deliver":
            return f"deliver {self.trigger} {self.src}->{self.node}"
        if self.kind == "install":
            return "regroup installs everybody" if self.node is None else f"node{self.node} crashes"
        return self.kind


@dataclass
class Selected:
    """The decision variables of the template step."""

    act: z3.ArithRef
    rows: list[z3.ArithRef]
    keep: z3.BoolRef
    holds: z3.BoolRef


class GumSystem(System):
    """The transition system of :func:`gum_model` (build it inside ``symbolic()``)."""

    def __init__(self, model: Model) -> None:
        self.spec = model.components[0].spec
        self.n = n = len(model.components) - 1
        self.max_seq = len(model.components[-1].spec.field("hist").default) // n
        self.actions = self._actions()
        super().__init__(model)
        # Each node's record changes only by its own spec's rows, so the gum spec's invariants (proved for all
        # depths on the spec alone, for any event and arguments: ``wolfpack verify gum``) hold at every
        # reachable state of the product; assuming them at each step's start is sound and prunes the search.
        known = [self.encodings[node(k)].well_formed(self.x.parts[node(k)]) for k in range(n)]
        known += [to_bool(inv.holds(self.x.parts[node(k)].record)) for k in range(n) for inv in self.spec.invariants]
        self.template = z3.simplify(z3.And(self.template, *known))

    def _actions(self) -> list[Action]:
        n = self.n
        local = [SUBMIT, *(t for t in self.spec.triggers if t.endswith(TIMER_SUFFIX))]
        out = [Action("local", t, k) for k in range(n) for t in local]
        for m in MESSAGES:
            for s in range(n):
                for d in range(n):
                    if s != d:
                        out.append(Action("deliver", m, d, s))
        out.append(Action("regroup_started", "regroup_started"))
        out += [Action("install", "membership_changed", c) for c in (None, *range(n))]
        return out

    # -- helpers -------------------------------------------------------------------------------
    def env(self, f: Frame) -> Record:
        return f.parts[ENV].record

    def is_act(self, act: Any, pred: Callable[[Action], bool]) -> z3.BoolRef:
        hits = [act == i for i, a in enumerate(self.actions) if pred(a)]
        return z3.Or(*hits) if hits else z3.BoolVal(False)

    def handled(self, k: int, trigger: str, act: Any, env: Record) -> z3.BoolRef:
        """Node k handles ``trigger`` in this step."""
        cases = []
        for i, a in enumerate(self.actions):
            if a.trigger != trigger:
                continue
            if a.kind in ("local", "deliver") and a.node == k:
                cases.append(act == i)
            elif a.kind == "regroup_started" or (a.kind == "install" and a.node != k):
                cases.append(z3.And(act == i, to_bool(env.alive[k])))
        return z3.Or(*cases) if cases else z3.BoolVal(False)

    def event_args(self, k: int, trigger: str, act: Any, env: Record) -> Record:
        n = self.n
        if trigger in MESSAGES:
            names = ["src", *[a for a in message_fields(n)[trigger] if a not in GHOST]]
            deliveries = [(i, a.src) for i, a in enumerate(self.actions)
                          if a.kind == "deliver" and a.trigger == trigger and a.node == k and a.src is not None]
            values = {}
            for nm in names:
                cases = [(act == i, src if nm == "src" else getattr(env, f"{trigger}__{nm}")[slot(n, src, k)])
                         for i, src in deliveries]
                values[nm] = self.chain(cases[:-1], cases[-1][1])
            return Record(values)
        if trigger == "membership_changed":
            installs = [(i, a) for i, a in enumerate(self.actions) if a.kind == "install"]
            return Record({f"alive{j}": self.chain(
                [(act == i, If(And(env.alive[j], j != a.node), 1, 0)) for i, a in installs[:-1]],
                If(And(env.alive[j], j != installs[-1][1].node), 1, 0)) for j in range(n)})
        return Record({})

    def payload(self, k: int, trigger: str, act: Any, env: Record) -> Any:
        """The payload id a ``command apply`` at node k records in this step."""
        if trigger in ("lock_request", "apply_update"):
            cases = [(act == i, getattr(env, f"{trigger}__uid")[slot(self.n, a.src, k)])  # type: ignore[arg-type]
                     for i, a in enumerate(self.actions)
                     if a.kind == "deliver" and a.trigger == trigger and a.node == k]
            return self.chain(cases, 0)
        if trigger == "submit":
            return env.next_uid
        return env.mine[k]

    # -- the relation -----------------------------------------------------------------------------
    def _build(self, pre: Frame, post: Frame) -> list[Selected]:  # type: ignore[override]
        n, ms = self.n, self.max_seq
        env, env2 = self.env(pre), self.env(post)
        act = self.step_var("act", z3.IntSort())
        rows = [self.step_var(f"row{k}", z3.IntSort()) for k in range(n)]
        keep = self.step_var("keep", z3.BoolSort())
        spec_rows = list(enumerate(self.spec.transitions))
        triggers = sorted({a.trigger for a in self.actions})
        parts: list[Any] = [act >= 0, act < len(self.actions)]

        # when each action may happen
        for i, a in enumerate(self.actions):
            if a.kind == "local":
                parts.append(z3.Implies(act == i, to_bool(env.alive[a.node])))
            elif a.kind == "deliver":
                assert a.src is not None and a.node is not None
                present = to_bool(getattr(env, f"{a.trigger}__in")[slot(n, a.src, a.node)])
                parts.append(z3.Implies(act == i, z3.And(present, to_bool(env.alive[a.node]))))
            elif a.kind == "install" and a.node is not None:
                parts.append(z3.Implies(act == i, to_bool(env.alive[a.node])))

        sends: dict[tuple[int, str, int], list[tuple[Any, dict[str, Any]]]] = {}
        applies: dict[int, list[tuple[Any, Any, Any]]] = {k: [] for k in range(n)}
        for k in range(n):
            enc = self.encodings[node(k)]
            me, me2 = pre.parts[node(k)], post.parts[node(k)]
            before, after = me.record, me2.record
            hist2 = [env2.hist[k * ms + i] for i in range(ms)]
            involved = []
            updates: list[tuple[z3.BoolRef, dict[str, Any], Any]] = []
            for trigger in triggers:
                handles = self.handled(k, trigger, act, env)
                involved.append(handles)
                args = self.event_args(k, trigger, act, env)
                payload = self.payload(k, trigger, act, env)
                alternatives = [z3.And(rows[k] == IGNORED, enc.ignores(me, trigger))]
                for index, row in spec_rows:
                    if row.trigger != trigger:
                        continue
                    fired = rows[k] == index
                    alternatives.append(z3.And(fired, enc.enabled(row, me, args)))
                    changes = enc.next_values(row, me, args)
                    dest = me.state if row.dest is None else z3.IntVal(enc.state_index[row.dest])
                    updates.append((fired, changes, dest))
                    for eff in row.effects:
                        when = True if eff.when is None else eff.when(before, args)
                        if eff.kind == "command" and eff.name == "apply":
                            seq = dict((eff.args(before, args, after) if eff.args else None) or {}).get("seq", 0)
                            applies[k].append((And(fired, when), seq, payload))
                        if eff.kind != "send" or eff.name not in MESSAGES:
                            continue
                        values = dict((eff.args(before, args, after) if eff.args else None) or {})
                        to = values.pop("to")
                        if eff.name == "apply_update":
                            s = values["seq"]
                            stored = self.select(hist2, s - 1)
                            values["uid"] = If(And(s >= 1, s <= after.last_seq), stored, env2.mine[k])
                        elif eff.name == "lock_request":
                            values["uid"] = env2.mine[k]
                        for d in range(n):
                            if d != k:
                                write = And(fired, when, Or(to == d, to == -1))
                                sends.setdefault((k, eff.name, d), []).append((write, values))
                parts.append(z3.Implies(handles, z3.Or(*alternatives)))
            parts.append(z3.Implies(z3.Not(z3.Or(*involved)), rows[k] == NOT_INVOLVED))
            # the node's next record
            parts.append(to_bool(me2.state == self.chain([(f, d) for f, _, d in updates], me.state)))
            for f in self.spec.fields:
                old = me.value(f.name)
                cases = [(fired, ch[f.name]) for fired, ch, _ in updates if f.name in ch]
                if isinstance(old, tuple):
                    for j, item in enumerate(old):
                        parts.append(to_bool(to_term(me2.value(f.name)[j]) == to_term(
                            self.chain([(c, v[j]) for c, v in cases], item))))
                else:
                    parts.append(to_bool(to_term(me2.value(f.name)) == to_term(self.chain(cases, old))))
        # the network
        for m, fields in message_fields(n).items():
            for s in range(n):
                for d in range(n):
                    i = slot(n, s, d)
                    writes = sends.get((s, m, d), [])
                    delivered = self.is_act(act, Action("deliver", m, d, s).__eq__)
                    still = And(getattr(env, f"{m}__in")[i], Not(And(delivered, Not(keep))))
                    parts.append(to_bool(getattr(env2, f"{m}__in")[i] == Or(*[w for w, _ in writes], still)))
                    for name in fields:
                        old = getattr(env, f"{m}__{name}")[i]
                        parts.append(to_bool(to_term(getattr(env2, f"{m}__{name}")[i]) == to_term(
                            self.chain([(w, v[name]) for w, v in writes], old))))
        # the ghosts and the live set
        for k in range(n):
            for i in range(ms):
                cases = [(And(c, seq == i + 1), p) for c, seq, p in applies[k]]
                parts.append(to_bool(env2.hist[k * ms + i] == self.chain(cases, env.hist[k * ms + i])))
            submit = self.is_act(act, Action("local", SUBMIT, k).__eq__)
            parts.append(to_bool(env2.mine[k] == If(submit, env.next_uid, env.mine[k])))
            crashed = self.is_act(act, Action("install", "membership_changed", k).__eq__)
            parts.append(to_bool(env2.alive[k] == And(env.alive[k], Not(crashed))))
        any_submit = self.is_act(act, lambda a: a.kind == "local" and a.trigger == SUBMIT)
        parts.append(to_bool(env2.next_uid == If(any_submit, env.next_uid + 1, env.next_uid)))
        parts.append(post.parts[ENV].state == pre.parts[ENV].state)
        parts += [post.parts[node(k)].record.last_seq <= ms for k in range(n)]
        self.selected = Selected(act, rows, keep, z3.And(*[to_bool(p) for p in parts]))
        return [self.selected]

    @staticmethod
    def select(values: Sequence[Any], index: Any) -> Any:
        out: Any = 0
        for i in range(len(values) - 1, -1, -1):
            out = If(index == i, values[i], out)
        return out

    # -- reading runs back ---------------------------------------------------------------------------
    def decode_step(self, model: z3.ModelRef, pre: Frame, post: Frame, tag: str) -> Step:
        pairs = self._renaming(pre, post, tag)
        chosen = self.selected

        def val(term: Any) -> Any:
            return model.eval(z3.substitute(to_term(term), *pairs), model_completion=True)

        action = self.actions[val(chosen.act).as_long()]
        rows = [val(r).as_long() for r in chosen.rows]
        env = self.env(pre)

        def part(k: int, trigger: str) -> Step:
            args = self.event_args(k, trigger, chosen.act, env)
            values = {name: val(v).as_long() for name, v in args.values().items()}
            return Step(node(k), trigger, values, None if rows[k] == IGNORED else rows[k])

        if action.kind in ("local", "deliver"):
            assert action.node is not None
            step = part(action.node, action.trigger)
            if action.kind == "deliver" and z3.is_true(val(chosen.keep)):
                step = Step(step.component, step.trigger, {**step.args, "duplicated": 1}, step.row)
            return step
        if action.kind == "lose":
            return Step("net", f"lose_{action.trigger}", {"src": action.src or 0, "dst": action.node or 0}, ENV_STEP)
        followers = tuple(part(k, action.trigger) for k in range(self.n) if rows[k] != NOT_INVOLVED)
        if action.kind == "install":
            args = {} if action.node is None else {"node": action.node}
            return Step(ENV, "crash" if action.node is not None else "regroup_ends", args, ENV_STEP, followers)
        return Step(ENV, "regroup_started", {}, ENV_STEP, followers)


# -- running the checks -----------------------------------------------------------------------------


def witness_depths(system: GumSystem, model: Model, bound: int, started: float) -> Result:
    """BMC from the initial state: the first depth at which each witness holds (the model is not vacuous)."""
    solver = z3.Solver()
    frames = [system.frame("w0")]
    solver.add(system.init(frames[0]))
    depth: dict[str, int] = {}
    for k in range(bound + 1):
        if k > 0:
            frames.append(system.frame(f"w{k}"))
            solver.add(system.trans(frames[k - 1], frames[k], f"ws{k}"))
        for w in model.witnesses:
            if w.name not in depth and solver.check(system.holds(w, frames[k])) == z3.sat:
                depth[w.name] = k
        if len(depth) == len(model.witnesses):
            break
    missing = [w.name for w in model.witnesses if w.name not in depth]
    method, seconds = f"bmc bound {bound}", time.perf_counter() - started
    if missing:
        return Result(model.name, "reachability", method, FAILED, seconds,
                      "; ".join(f"{w} not reached within {bound} steps from the initial state" for w in missing))
    return Result(model.name, "reachability", method, PROVED, seconds,
                  "every witness reached; first depth: " + ", ".join(f"{w}@{d}" for w, d in depth.items()))


def check_gum(model: Model | None = None, *, max_k: int = 2, spacer_timeout_ms: int = 10_000) -> list[Result]:
    """The witnesses' reachability, then the properties and lemmas: 1-induction (then BMC to the model's
    bound, k-induction up to ``max_k`` and Spacer, as :class:`~wolfpack.proofs.invariants.Prover` does)."""
    model = model or gum_model()
    with symbolic():
        system = GumSystem(model)
        started = time.perf_counter()
        reached = witness_depths(system, model, model.bmc_bound, started)
        results = Prover(system, bound=model.bmc_bound, max_k=max_k, spacer_timeout_ms=spacer_timeout_ms).run()
    return [reached, *results]
