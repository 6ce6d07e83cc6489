"""Heartbeat-driven suspicion (REQUIREMENTS N1, O6).

One instance per node.  Every ``period_ms`` (the ``tick`` timer) the node
sends a heartbeat to every other configured node and counts, per peer, the
periods in which nothing arrived.  A peer that misses ``threshold`` periods
in a row is *suspected* (reported once, to the membership machine, which
regroups); the next heartbeat from it clears the suspicion (``peer_back``).

Every heartbeat carries the membership epoch its sender installed.  A
heartbeat from a peer at a newer epoch than this node's is reported once
(``peer_ahead``): a membership was committed without this node hearing of
it (its status or the proposal was lost while the peer's heartbeats still
arrive), and the membership machine halts rather than keep running groups
that the new membership may already give to others.  The report carries the
peer's epoch: in the daemon it travels from the timer thread to the node's
loop, which may have installed that epoch itself in between (issue 15), and
the membership machine compares it with what it installed.  A new epoch goes
out at once, in a heartbeat out of turn.

The lab runtime counts in its C timer thread on every network at once; this
table is the rule it follows and the one the simulator runs.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition
from wolfpack.spec.expr import And, ForAll, If, Implies, Not, Or, Select, Store

STOPPED = "Stopped"
RUNNING = "Running"


@cache
def make_heartbeat_spec(n: int) -> Spec:
    ks = range(n)

    def peer(r: Any, k: int) -> Any:
        return And(k != r.me, r.configured[k])

    def now_suspected(r: Any, k: int) -> Any:
        """Peer k reaches the threshold with this tick."""
        return And(peer(r, k), Not(r.suspected[k]), r.missed[k] + 1 >= r.threshold)

    def tick(r: Any, e: Any) -> dict[str, Any]:
        return {
            "missed": tuple(If(peer(r, k), If(r.missed[k] < r.threshold, r.missed[k] + 1, r.missed[k]), 0)
                            for k in ks),
            "suspected": tuple(Or(r.suspected[k], now_suspected(r, k)) for k in ks),
        }

    def suspect_effect(k: int) -> Effect:
        return Effect("report", "suspect", lambda r, e, r2: {"node": k},
                      when=lambda r, e: now_suspected(r, k))

    def was_suspected(r: Any, e: Any) -> Any:
        return Or(*(And(e.src == k, r.suspected[k]) for k in ks))

    def was_trusted(r: Any, e: Any) -> Any:
        return Not(was_suspected(r, e))

    def ahead_now(r: Any, e: Any) -> Any:
        """The peer installed a newer epoch than this node, and that is news."""
        return And(e.epoch > r.epoch, Not(Select(r.ahead, e.src)))

    def heard(r: Any, e: Any) -> dict[str, Any]:
        return {"missed": Store(r.missed, e.src, 0), "suspected": Store(r.suspected, e.src, False),
                "ahead": Store(r.ahead, e.src, Or(Select(r.ahead, e.src), e.epoch > r.epoch))}

    beat = Effect("send", "beat", lambda r, e, r2: {"to": -1, "epoch": r2.epoch})
    ahead = Effect("report", "peer_ahead", lambda r, e, r2: {"node": e.src, "epoch": e.epoch}, when=ahead_now)
    new_epoch = {"epoch_installed": lambda r, e: {"epoch": e.epoch, "ahead": (False,) * n}}
    rearm = Effect("start_timer", "tick", lambda r, e, r2: {"ms": r.period_ms})
    rows = (
        Transition("start", (STOPPED,), RUNNING,
                   update=lambda r, e: {"missed": (0,) * n, "suspected": (False,) * n},
                   effects=(beat, rearm), doc="start sending and counting"),
        Transition("tick", (RUNNING,), None, update=tick,
                   effects=(beat, rearm, *(suspect_effect(k) for k in ks)),
                   doc="one period: send a heartbeat, count a miss for every peer, suspect those at the threshold"),
        Transition("beat", (RUNNING,), None, guard=was_suspected, update=heard,
                   effects=(Effect("report", "peer_back", lambda r, e, r2: {"node": e.src}), ahead),
                   doc="a heartbeat from a suspected peer: it is back"),
        Transition("beat", (RUNNING,), None, guard=was_trusted, update=heard, effects=(ahead,),
                   doc="a heartbeat: reset the count (and report a peer at a newer epoch, once)"),
        Transition("epoch_installed", (STOPPED,), None, update=new_epoch["epoch_installed"],
                   doc="the membership machine installed an epoch: send it once running"),
        Transition("epoch_installed", (RUNNING,), None, update=new_epoch["epoch_installed"], effects=(beat,),
                   doc="the membership machine installed an epoch: send it now, out of turn, and from now on (a "
                       "node the new membership left out hears of it within a network delay, not a period)"),
        Transition("stop", (RUNNING,), STOPPED, effects=(Effect("cancel_timer", "tick"),), doc="stop"),
    )
    ignored = (
        Ignore("start", (RUNNING,), "already running"),
        Ignore("tick", (STOPPED,), "a late timer"),
        Ignore("beat", (STOPPED,), "not counting"),
        Ignore("stop", (STOPPED,), "already stopped"),
    )
    fields = (
        Field("me", int, 0, "this node's id", lo=0, hi=n - 1, param=True),
        Field("configured", bool, (True,) * n, "configured nodes", param=True, length=n),
        Field("period_ms", int, d.HEARTBEAT_PERIOD_MS, "heartbeat period", lo=1, param=True),
        Field("threshold", int, d.HEARTBEAT_MISSED_THRESHOLD, "missed periods before suspicion", lo=1, param=True),
        Field("missed", int, (0,) * n, "periods without a heartbeat, per peer", lo=0, length=n),
        Field("suspected", bool, (False,) * n, "peers reported as suspected", length=n),
        Field("epoch", int, 0, "the membership epoch this node installed (sent with every heartbeat)", lo=0),
        Field("ahead", bool, (False,) * n, "peers reported at a newer epoch than this node's", length=n),
    )
    invariants = (
        Invariant("counts_bounded", lambda r: ForAll(ks, lambda k: r.missed[k] <= r.threshold),
                  "a miss count never passes the threshold"),
        Invariant("suspected_only_after_threshold",
                  lambda r: ForAll(ks, lambda k: Implies(r.suspected[k], r.missed[k] >= r.threshold)),
                  "a peer is suspected only after missing threshold periods in a row"),
        Invariant("never_suspect_itself", lambda r: ForAll(ks, lambda k: Implies(k == r.me, Not(r.suspected[k]))),
                  "a node does not suspect itself"),
    )
    return Spec(
        name="heartbeat",
        doc=__doc__ or "",
        states=(STOPPED, RUNNING),
        initial=STOPPED,
        fields=fields,
        events=(
            Event("start", "start heartbeats"),
            Event("tick", "timer: one heartbeat period is over"),
            Event("beat", "message: a heartbeat", (Arg("src", 0, n, "sender", hi_max=n),
                                                     Arg("epoch", 0, None, "the sender's installed epoch", hi_max=3))),
            Event("epoch_installed", "the membership machine installed an epoch",
                  (Arg("epoch", 0, None, "membership epoch", hi_max=3),)),
            Event("stop", "stop heartbeats"),
        ),
        transitions=rows,
        ignored=ignored,
        invariants=invariants,
        state_docs={STOPPED: "not sending", RUNNING: "sending every period and counting misses"},
    )


SPEC = make_heartbeat_spec(3)
