"""The GUM machine, driven as a cluster by a tiny deterministic message pump.

The pump (:class:`Pump`) plays the runtime and nothing more: one
:class:`~wolfpack.machines.LiveMachine` per node; a queue of messages built
from each ``send`` effect by the protocol conventions (``to`` = a node or -1
for every other node; the receiver gets ``src`` plus the same fields); the
payloads, which the machines never see (a node's pending update and its
database, the payloads it applied in order), attached to ``lock_request``
(the pending one) and ``apply_update`` (the one stored under that number, or
the pending one if the sender has not applied it yet); ``command apply``
carried out on the database, or, for an apply chosen to fail, the step's
later effects skipped and ``apply_error`` fed at once; timers remembered and
fired on request; a crash drops the messages to the node and gives every
survivor ``membership_changed``.  Nothing in it decides what a spec decides.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest

from wolfpack.errors import InvalidEvent
from wolfpack.machines import LiveMachine
from wolfpack.spec.core import Emitted
from wolfpack.spec.gum import make_gum_spec


@dataclass
class Msg:
    src: int
    dst: int
    name: str
    args: dict[str, int]
    payload: str | None = None


@dataclass
class Pump:
    n: int
    nodes: list[LiveMachine] = field(init=False)
    queue: deque[Msg] = field(default_factory=deque)
    alive: list[bool] = field(init=False)
    pending: dict[int, str | None] = field(init=False)
    db: dict[int, list[str]] = field(init=False)
    applies: list[tuple[int, int]] = field(default_factory=list)  # (node, seq) in the order they happened
    reports: dict[int, list[tuple[str, dict[str, Any]]]] = field(init=False)
    timers: dict[int, set[str]] = field(init=False)
    fail_apply: set[tuple[int, int]] = field(default_factory=set)  # (node, seq) whose apply fails
    persisted: dict[int, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        spec = make_gum_spec(self.n)
        self.nodes = [LiveMachine(spec, me=k) for k in range(self.n)]
        self.alive = [True] * self.n
        self.pending = dict.fromkeys(range(self.n))
        self.db = {k: [] for k in range(self.n)}
        self.reports = {k: [] for k in range(self.n)}
        self.timers = {k: set() for k in range(self.n)}
        self.persisted = {k: [] for k in range(self.n)}

    # -- driving ----------------------------------------------------------------------
    def submit(self, k: int, payload: str) -> None:
        self.pending[k] = payload
        self.feed(k, "submit")

    def feed(self, k: int, trigger: str, payload: str | None = None, **args: int) -> None:
        if not self.alive[k]:
            return
        effects = self.nodes[k].step(trigger, **args)
        self.carry_out(k, effects, payload)

    def carry_out(self, k: int, effects: list[Emitted], payload: str | None) -> None:
        for i, eff in enumerate(effects):
            if eff.kind == "command" and eff.name == "persist":
                self.persisted[k].append(eff.args["seq"])
            elif eff.kind == "command" and eff.name == "apply":
                seq = eff.args["seq"]
                if (k, seq) in self.fail_apply:
                    self.fail_apply.discard((k, seq))
                    del effects[i + 1:]  # the runtime skips the step's later effects
                    self.feed(k, "apply_error", seq=seq)
                    return
                value = payload if payload is not None else self.pending[k]
                assert value is not None, f"node {k} applies seq {seq} without a payload"
                assert len(self.db[k]) == seq - 1, f"node {k} applies seq {seq} on a database of {self.db[k]}"
                self.db[k].append(value)
                self.applies.append((k, seq))
            elif eff.kind == "send":
                args = dict(eff.args)
                to = args.pop("to")
                for dst in ([d for d in range(self.n) if d != k] if to == -1 else [to]):
                    self.queue.append(Msg(k, dst, eff.name, args, self._payload(k, eff.name, args)))
            elif eff.kind == "start_timer":
                self.timers[k].add(eff.name)
            elif eff.kind == "cancel_timer":
                self.timers[k].discard(eff.name)
            elif eff.kind == "report":
                self.reports[k].append((eff.name, dict(eff.args)))
                if eff.name in ("committed", "aborted", "interrupted", "refused"):
                    self.pending[k] = None if eff.name == "committed" else self.pending[k]

    def _payload(self, k: int, name: str, args: dict[str, int]) -> str | None:
        if name == "lock_request":
            return self.pending[k]
        if name == "apply_update":
            seq = args["seq"]
            return self.db[k][seq - 1] if 1 <= seq <= len(self.db[k]) else self.pending[k]
        return None

    def deliver_one(self, index: int = 0) -> Msg:
        msg = self.queue[index]
        del self.queue[index]
        if self.alive[msg.dst]:
            self.feed(msg.dst, msg.name, msg.payload, src=msg.src, **msg.args)
        return msg

    def deliver(self, name: str, src: int | None = None, dst: int | None = None) -> Msg:
        """Deliver the first queued message of that name (and ends)."""
        for i, msg in enumerate(self.queue):
            if msg.name == name and src in (None, msg.src) and dst in (None, msg.dst):
                return self.deliver_one(i)
        raise AssertionError(f"no {name} message {src}->{dst} in {self.queue}")

    def run(self, limit: int = 1000) -> None:
        """Deliver in FIFO order until nothing is queued (timers are not fired)."""
        for _ in range(limit):
            if not self.queue:
                return
            self.deliver_one()
        raise AssertionError("the pump did not quiesce")

    def fire_timers(self) -> None:
        for k in range(self.n):
            for name in sorted(self.timers[k]):
                self.timers[k].discard(name)
                self.feed(k, name)

    def settle(self, rounds: int = 10) -> None:
        """Deliver everything, fire timers, repeat until quiet."""
        for _ in range(rounds):
            self.run()
            if not any(self.timers.values()):
                return
            self.fire_timers()
        raise AssertionError("the cluster did not settle")

    def crash(self, *dead: int) -> None:
        for k in dead:
            self.alive[k] = False
        self.queue = deque(m for m in self.queue if self.alive[m.dst])
        self.install()

    def install(self) -> None:
        vector = {f"alive{k}": int(self.alive[k]) for k in range(self.n)}
        for k in range(self.n):
            self.feed(k, "membership_changed", **vector)

    # -- reading -----------------------------------------------------------------------
    def state(self, k: int) -> str:
        return self.nodes[k].state

    def rec(self, k: int) -> Any:
        return self.nodes[k].record

    def report_names(self, k: int) -> list[str]:
        return [name for name, _ in self.reports[k]]

    def survivors(self) -> list[int]:
        return [k for k in range(self.n) if self.alive[k] and self.state(k) != "Halted"]

    def databases_agree(self) -> None:
        """Every healthy survivor has the same database, and its last_seq says how long it is."""
        dbs = {k: self.db[k] for k in self.survivors()}
        assert len({tuple(v) for v in dbs.values()}) == 1, f"databases differ: {dbs}"
        for k in dbs:
            assert self.rec(k).last_seq == len(self.db[k]), f"node {k}: last_seq {self.rec(k).last_seq}, {self.db[k]}"


def order_of(pump: Pump, seq: int) -> list[int]:
    """The nodes that applied ``seq``, in the order they applied it."""
    return [k for k, s in pump.applies if s == seq]


# --- the normal path ---------------------------------------------------------------------


@pytest.mark.parametrize("sender", [0, 1, 2, 3])
def test_the_locker_applies_first_then_the_fixed_order_with_the_sender_in_its_turn(sender: int) -> None:
    p = Pump(4)
    p.submit(sender, "u")
    p.run()
    assert order_of(p, 1) == [0, 1, 2, 3]  # locker 0 first, then 1, 2, 3; the sender in its own place
    assert p.db == {k: ["u"] for k in range(4)}
    assert [p.rec(k).last_seq for k in range(4)] == [1, 1, 1, 1]
    assert p.reports[sender] == [("committed", {"seq": 1})]
    assert p.rec(0).lock_holder == -1, "the lock is free again"
    assert all(p.state(k) == "Idle" for k in range(4))


def test_a_sender_asks_the_locker_and_never_applies_before_it() -> None:
    p = Pump(3)
    p.submit(2, "u")
    view = {"alive0": 1, "alive1": 1, "alive2": 1}  # the requester's installed membership
    assert [(m.src, m.dst, m.name, m.args) for m in p.queue] == [(2, 0, "lock_request", {"seen": 0, **view})]
    assert p.applies == [] and p.state(2) == "Requesting"
    p.deliver("lock_request")
    assert p.applies == [(0, 1)] and p.rec(0).lock_holder == 2
    p.deliver("lock_granted")
    assert p.state(2) == "Delivering" and p.rec(2).next == 1 and p.applies == [(0, 1)]


def test_two_concurrent_senders_are_serialised_in_one_order_everywhere() -> None:
    p = Pump(3)
    p.submit(1, "a")
    p.submit(2, "b")
    p.deliver("lock_request", src=1)
    p.deliver("lock_request", src=2)
    assert p.queue[-1].name == "lock_busy" and p.queue[-1].dst == 2, "the second sender is told the lock is held"
    p.settle()
    assert p.db == {k: ["a", "b"] for k in range(3)}
    assert order_of(p, 1) == [0, 1, 2] and order_of(p, 2) == [0, 1, 2]
    assert p.reports[1] == [("committed", {"seq": 1})] and p.reports[2] == [("committed", {"seq": 2})]


def test_a_request_that_raced_with_an_update_is_told_busy_and_asks_again_up_to_date() -> None:
    p = Pump(3)
    p.submit(1, "a")
    p.submit(2, "b")  # asks with seen=0
    p.deliver("lock_request", src=1)
    stale = next(m for m in p.queue if m.name == "lock_request")
    p.queue.remove(stale)
    p.run()  # 1's update reaches everybody and the lock is free again
    p.queue.append(stale)
    p.run()
    assert p.db[0] == ["a"], "a request made before seq 1 is not granted after it"
    p.settle()
    assert p.db == {k: ["a", "b"] for k in range(3)}


def test_a_requester_that_missed_a_membership_commit_is_told_busy_until_it_installs_it() -> None:
    """Decision 24.  Node 2 rejoins; node 1 asked for the lock before the regroup and missed its commit, so it
    still knows members 0 and 1.  Granted, it would sweep to those and node 2 would never get the update."""
    p = Pump(3)
    p.crash(2)  # members 0 and 1
    p.submit(1, "u")  # the request carries members 0 and 1
    for k in (0, 1):
        p.feed(k, "regroup_started")
    p.alive[2] = True
    joined = {"alive0": 1, "alive1": 1, "alive2": 1}
    for k in (0, 2):  # node 1 acknowledged the membership but missed its commit
        p.feed(k, "membership_changed", **joined)
    p.run()
    assert p.db[0] == [] and p.rec(0).lock_holder == -1, "the locker granted a requester a membership behind"
    assert p.state(1) == "Requesting", "the requester was told busy and asks again"
    p.feed(1, "membership_changed", **joined)
    p.settle()
    assert p.db == {k: ["u"] for k in range(3)} and p.reports[1] == [("committed", {"seq": 1})]


def test_the_locker_tells_a_node_told_busy_when_the_lock_is_free_and_takes_turns_with_it() -> None:
    """Decision 25.  Without the yield the locker, whose own updates take a free lock at once, granted itself
    update after update while node 2's retries always found the lock held; without its turn at the unlock, the
    other nodes' requests kept the locker waiting; without ``lock_free``, each turn waited for a retry timer."""
    p = Pump(3)
    p.submit(0, "a")  # the locker takes the lock for its own update and sweeps it
    p.submit(2, "x")
    p.deliver("lock_request", src=2)  # told busy
    assert p.rec(0).waiter == 2
    for name, dst in (("apply_update", 1), ("applied", 0), ("apply_update", 2), ("applied", 0)):
        p.deliver(name, dst=dst)
    assert p.db[0] == ["a"] and any(m.name == "lock_free" and m.dst == 2 for m in p.queue)
    p.submit(0, "b")  # before node 2 asks again: the locker's update waits for it
    assert p.state(0) == "Requesting" and p.db[0] == ["a"], "the locker took the lock again before node 2"
    p.run()  # no timer fires: node 2 asks when told, sweeps x and unlocks; the locker's b takes the lock then
    assert p.db == {k: ["a", "x", "b"] for k in range(3)} and p.rec(0).waiter == -1
    assert p.reports[0] == [("committed", {"seq": 1}), ("committed", {"seq": 3})]
    assert p.reports[2] == [("committed", {"seq": 2})]


def test_the_locker_waits_one_retry_period_only_for_a_node_that_does_not_ask() -> None:
    """A late copy of a request makes its node the waiter, but that node asks no more: the locker's own update
    waits for it one lock_retry_ms, not for ever."""
    p = Pump(3)
    p.submit(2, "x")
    late = next(m for m in p.queue if m.name == "lock_request")
    p.settle()
    assert p.db == {k: ["x"] for k in range(3)}
    p.queue.append(late)
    p.run()
    assert p.rec(0).waiter == 2
    p.submit(0, "b")
    p.run()
    assert p.state(0) == "Requesting"
    p.feed(0, "lock_retry_elapsed")
    assert p.state(0) == "Delivering" and p.rec(0).waiter == -1
    p.settle()
    assert p.db == {k: ["x", "b"] for k in range(3)}


def lose(pump: Pump, name: str) -> Msg:
    """Take the first queued message of that name off the network."""
    msg = next(m for m in pump.queue if m.name == name)
    pump.queue.remove(msg)
    return msg


def test_a_lost_grant_is_sent_again_when_the_holder_asks_again() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.deliver("lock_request")  # the locker applies u as seq 1 and grants
    lose(p, "lock_granted")
    p.feed(2, "lock_retry_elapsed")  # node 2 asks again, still without the update
    p.run()
    assert order_of(p, 1) == [0, 1, 2], "the locker applied u once, then the sweep went on as granted"
    assert p.db == {k: ["u"] for k in range(3)} and p.reports[2] == [("committed", {"seq": 1})]
    assert p.rec(0).lock_holder == -1


def test_a_holder_that_asks_again_after_a_lost_unlock_waits_for_the_query() -> None:
    """A request of the holder with its update does not free the lock by itself (a holder that restarted in the
    middle of its sweep has the update too); the locker's query settles it, then the retry is granted."""
    p = Pump(3)
    p.submit(2, "u")
    for name in ("lock_request", "lock_granted", "apply_update", "applied"):
        p.deliver(name)  # node 2's sweep is over: it applied u and sends unlock
    lose(p, "unlock")
    p.submit(2, "v")
    p.deliver("lock_request")
    assert p.rec(0).lock_holder == 2 and p.deliver("lock_busy").dst == 2
    p.feed(0, "unlock_query_elapsed")
    p.settle()
    assert p.db == {k: ["u", "v"] for k in range(3)}
    assert p.rec(0).lock_holder == -1 and p.report_names(2) == ["committed", "committed"]


def test_a_holder_restarted_in_the_middle_of_its_sweep_sweeps_again_when_asked() -> None:
    p = Pump(4)
    p.submit(2, "u")
    for name in ("lock_request", "lock_granted", "apply_update", "applied"):
        p.deliver(name)  # nodes 0, 1 and 2 have u; the delivery to node 3 is on the wire
    lose(p, "apply_update")
    restarted = LiveMachine(make_gum_spec(4), me=2)
    restarted.record = restarted.record.replace(last_seq=1)  # what it keeps on disk
    p.nodes[2], p.pending[2] = restarted, None
    p.feed(0, "unlock_query_elapsed")
    p.deliver("unlock_query")
    assert p.state(2) == "Delivering"
    p.run()
    assert p.db == {k: ["u"] for k in range(4)} and p.rec(0).lock_holder == -1


def test_the_locker_asks_a_holder_that_keeps_the_lock_and_it_unlocks_again() -> None:
    p = Pump(3)
    p.submit(2, "u")
    for name in ("lock_request", "lock_granted", "apply_update", "applied"):
        p.deliver(name)
    lose(p, "unlock")
    p.submit(0, "w")  # the locker's own update waits for the lock
    assert p.state(0) == "Requesting"
    p.feed(0, "unlock_query_elapsed")
    query = p.deliver("unlock_query")
    assert (query.dst, query.args) == (2, {"seq": 1})
    p.deliver("unlock")  # the lock is free, and the locker's waiting update takes it at once
    assert p.state(0) == "Delivering" and p.rec(0).lock_holder == 0 and p.rec(0).sending_seq == 2
    p.settle()
    assert p.db == {k: ["u", "w"] for k in range(3)} and p.report_names(0) == ["committed"]


def test_a_holder_still_sweeping_or_still_waiting_for_its_grant_does_not_unlock() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.deliver("lock_request")
    p.feed(0, "unlock_query_elapsed")
    p.deliver("unlock_query")  # node 2 has no grant yet
    assert not any(m.name == "unlock" for m in p.queue)
    p.deliver("lock_granted")  # node 2 sweeps: node 1 has not acknowledged
    p.feed(0, "unlock_query_elapsed")
    p.deliver("unlock_query")
    assert not any(m.name == "unlock" for m in p.queue) and p.rec(0).lock_holder == 2
    p.run()
    assert p.db == {k: ["u"] for k in range(3)} and p.rec(0).lock_holder == -1


def test_duplicates_are_acknowledged_and_not_applied_again() -> None:
    p = Pump(3)
    p.submit(1, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")
    update = next(m for m in p.queue if m.name == "apply_update")
    p.queue.append(Msg(update.src, update.dst, update.name, dict(update.args), update.payload))
    p.run()
    assert order_of(p, 1) == [0, 1, 2]
    assert p.db == {k: ["u"] for k in range(3)}
    node2 = p.nodes[2]
    assert node2.step("apply_update", src=1, seq=1, locker=0) == [
        Emitted("send", "applied", {"to": 1, "seq": 1})], "a duplicate is acknowledged, not applied"


def test_a_node_that_missed_an_update_halts_and_is_reported() -> None:
    p = Pump(3)
    effects = p.nodes[2].step("apply_update", src=1, seq=3, locker=0)
    assert p.state(2) == "Halted"
    assert Emitted("send", "apply_failed", {"to": 1, "seq": 3}) in effects
    assert Emitted("report", "evict", {"node": 2}) in effects


def test_messages_of_another_locker_are_ignored() -> None:
    p = Pump(3)
    assert p.nodes[2].step("apply_update", src=1, seq=1, locker=1) == []
    assert p.rec(2).last_seq == 0 and p.nodes[2].last is not None and p.nodes[2].last.outcome == "transition"


# --- failures --------------------------------------------------------------------------------


def test_sender_dies_after_the_locker_applied_the_locker_replays_to_the_survivors() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.deliver("lock_request")  # the locker applied seq 1 and granted the lock to 2
    p.crash(2)
    assert p.state(0) == "Delivering" and p.rec(0).lock_holder == 0, "the locker replays, holding the lock"
    p.run()
    assert p.db[0] == p.db[1] == ["u"]
    assert p.rec(0).lock_holder == -1 and p.state(0) == "Idle"


def test_sender_dies_mid_sweep_the_replay_fills_the_gaps_without_applying_twice() -> None:
    p = Pump(4)
    p.submit(3, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")
    p.deliver("apply_update", dst=1)  # node 1 applied; its ack is queued
    p.crash(3)
    p.run()
    assert order_of(p, 1) == [0, 1, 2], "node 1 did not apply the replayed update again"
    p.databases_agree()
    assert p.db[2] == ["u"]


def test_locker_dies_after_the_sweep_reached_its_successor_the_successor_replays() -> None:
    p = Pump(4)
    p.submit(3, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")
    p.deliver("apply_update", dst=1)
    p.deliver("applied", src=1)  # node 3 now sends to node 2
    p.crash(0)
    assert p.rec(1).locker == 1 and p.state(1) == "Delivering", "node 1 is the new locker and replays"
    assert p.reports[3] == [("committed", {"seq": 1})], "the sweep passed the new locker: committed"
    p.run()
    p.databases_agree()
    assert p.db[1] == ["u"]


def test_locker_dies_while_its_successor_acknowledges_the_replay_decides() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")
    p.deliver("apply_update", dst=1)  # node 1 has it; the ack to 2 is still queued
    p.crash(0)
    assert p.state(2) == "Awaiting", "the sender cannot tell whether the new locker has it"
    p.run()
    assert p.reports[2] == [("committed", {"seq": 1})]
    assert p.db[1] == p.db[2] == ["u"]
    assert order_of(p, 1) == [0, 1, 2]


def test_locker_dies_before_anybody_else_had_the_update_nobody_has_it_and_the_sender_retries() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")  # the sweep's first message, to node 1, is still queued
    p.crash(0)
    p.run()  # node 1 ignores the sweep of the dead locker, and replays its own last (nothing)
    assert p.reports[2] == [("aborted", {})]
    assert p.db[1] == p.db[2] == []
    p.submit(2, "u")
    p.settle()
    assert p.db[1] == p.db[2] == ["u"] and p.reports[2][-1] == ("committed", {"seq": 1})
    assert p.persisted[0] == [1] and p.db[0] == ["u"], (
        "the dead locker's record of seq 1 is an orphan: seq 1 was given again (decision 5)")


def test_locker_dies_before_granting_the_request_is_aborted() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.crash(0)
    assert p.state(2) == "Idle" and p.reports[2] == [("aborted", {})]


def test_locker_and_sender_die_together_the_successor_replays() -> None:
    p = Pump(4)
    p.submit(3, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")
    p.deliver("apply_update", dst=1)
    p.crash(0, 3)
    p.run()
    assert p.db[1] == p.db[2] == ["u"]


def test_a_receiver_that_fails_to_apply_is_reported_for_eviction() -> None:
    p = Pump(3)
    p.fail_apply.add((2, 1))
    p.submit(1, "u")
    p.run()
    assert p.state(2) == "Halted" and p.db[2] == []
    assert ("evict", {"node": 2}) in p.reports[2], "it asks for its own eviction"
    assert ("evict", {"node": 2}) in p.reports[1], "the sender reports it"
    assert p.state(1) == "Delivering" and p.rec(1).next == 2, "the sweep waits for the membership change"
    p.crash(2)  # the eviction
    p.run()
    assert p.reports[1][-1] == ("committed", {"seq": 1}) and p.rec(0).lock_holder == -1
    p.databases_agree()


def test_the_locker_cannot_apply_the_update_fails_back_to_the_sender() -> None:
    p = Pump(3)
    p.fail_apply.add((0, 1))
    p.submit(1, "u")
    p.run()
    assert p.reports[1] == [("refused", {"seq": 1})] and p.state(1) == "Idle"
    assert p.rec(0).last_seq == 0 and p.rec(0).lock_holder == -1 and p.state(0) == "Idle"
    assert p.persisted[0] == [1], "the persisted record is an orphan: the next update reuses seq 1"
    p.submit(1, "v")
    p.run()
    assert p.db == {k: ["v"] for k in range(3)}


def test_the_lockers_own_update_it_cannot_apply_is_refused() -> None:
    p = Pump(3)
    p.fail_apply.add((0, 1))
    p.submit(0, "u")
    assert p.reports[0] == [("refused", {"seq": 1})] and p.state(0) == "Idle" and p.rec(0).lock_holder == -1
    assert not p.queue


# --- regroups -----------------------------------------------------------------------------------


def test_submit_during_a_regroup_is_refused_with_the_reason() -> None:
    p = Pump(3)
    for k in range(3):
        p.feed(k, "regroup_started")
    assert p.state(1) == "Blocked"
    with pytest.raises(InvalidEvent, match="a regroup is in progress: recompute the change"):
        p.submit(1, "u")
    p.install()
    assert p.state(1) == "Idle"
    p.submit(1, "u")
    p.run()
    assert p.db == {k: ["u"] for k in range(3)}


def test_no_lock_is_granted_during_a_regroup_and_the_sender_waits() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.feed(0, "regroup_started")
    p.run()
    assert p.db[0] == [] and p.timers[2] == {"lock_retry_elapsed"}, "told busy: it will ask again"
    p.install()
    p.settle()
    assert p.db == {k: ["u"] for k in range(3)}


def test_a_sweep_in_progress_goes_on_during_a_regroup_and_ends_blocked() -> None:
    p = Pump(3)
    p.submit(1, "u")
    p.deliver("lock_request")
    p.deliver("lock_granted")
    p.feed(1, "regroup_started")
    p.run()
    assert p.state(1) == "Blocked" and p.reports[1] == [("committed", {"seq": 1})]
    assert p.db == {k: ["u"] for k in range(3)}


def test_an_excluded_node_halts() -> None:
    p = Pump(3)
    p.submit(2, "u")
    p.nodes[2].step("membership_changed", alive0=1, alive1=1, alive2=0)
    assert p.state(2) == "Halted"
    with pytest.raises(InvalidEvent, match="must rejoin"):
        p.nodes[2].step("submit")


@pytest.mark.parametrize("n", [1, 65])
def test_cluster_sizes_outside_two_to_sixty_four_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="2 to 64 nodes"):
        make_gum_spec(n)


def test_the_concrete_delivery_order_is_the_symbolic_one() -> None:
    """``first_after_in_order`` has an O(n) path for concrete values; it must walk the same order as the
    expression the proofs use (evaluated here on 0/1 ints, which take the expression path)."""
    import itertools

    from wolfpack.spec.gum import first_after_in_order

    for n in range(2, 6):
        for bits in itertools.product((0, 1), repeat=n):
            for a in range(-1, n):
                for c in range(n):
                    fast = first_after_in_order(n, [b == 1 for b in bits], a, c)
                    slow = first_after_in_order(n, list(bits), a, c)
                    assert fast == slow, (n, bits, a, c)
