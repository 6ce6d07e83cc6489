"""Whole simulated clusters: the protocol machines together, faults, and the
cluster-wide invariant checked every 10 simulated milliseconds."""

from __future__ import annotations

from wolfpack.runtime.sim.monitor import KILL_MS
from wolfpack.runtime.sim.world import (
    CHECKPOINT_EVERY,
    LEASE_MS,
    REJOIN_AFTER_MS,
    REJOIN_MIN_MS,
    GroupConfig,
    World,
)

WEB = GroupConfig("web", ["ip", "app"], {"app": ["ip"]}, preferred=[0, 1, 2, 3])


def run_checked(world: World, ms: int, step: int = 10) -> None:
    for _ in range(ms // step):
        world.cluster.run_for(step)
        assert not world.violations(), world.violations()


def formed(nodes: int, seed: int = 1) -> World:
    world = World(nodes, [WEB], seed=seed)
    world.boot_all()
    run_checked(world, 3000)
    assert world.online_on(0) == [0]
    return world


def partition(world: World, *sides: set[int]) -> None:
    world.cluster.network.partition(*sides)


def test_owner_crash_fails_the_group_over_in_bounded_time() -> None:
    world = formed(3)
    world.cluster.nodes[0].crash()
    start = world.cluster.clock.now
    while not world.online_on(0):
        run_checked(world, 10)
        assert world.cluster.clock.now - start < 3000, "no failover within 3 s"
    # detection (5 x 100 ms), one regroup round, the take-over wait (500 ms), the online itself
    assert 1000 <= world.cluster.clock.now - start <= 1500
    assert world.online_on(0) == [1]


def test_minority_owner_stops_before_the_majority_takes_over() -> None:
    world = formed(3)
    partition(world, {0}, {1, 2})
    run_checked(world, 4000)
    assert world.cluster.nodes[0].machines["membership"].state == "Halted"
    assert world.online_on(0) == [1] and world.running_on(0) == [1]


def test_even_split_stops_everything_under_node_majority() -> None:
    world = formed(4)
    partition(world, {0, 1}, {2, 3})
    run_checked(world, 4000)
    assert {n.machines["membership"].state for n in world.cluster.nodes.values()} == {"Halted"}
    assert world.running_on(0) == []


def test_same_seed_same_run() -> None:
    traces = []
    for _ in range(2):
        world = formed(3, seed=5)
        world.cluster.nodes[0].crash()
        world.cluster.run_for(3000)
        traces.append(world.cluster.ndjson())
    assert traces[0] == traces[1]


def halted_minority(seed: int = 1) -> tuple[World, int]:
    """A 3-node world whose halted nodes start again after 2 s (the daemon's default); node 0 is cut off,
    halts, and the network heals: the time of its halt."""
    world = World(3, [WEB], seed=seed, rejoin_after_ms=REJOIN_AFTER_MS)
    world.boot_all()
    run_checked(world, 3000)
    partition(world, {0}, {1, 2})
    while world.cluster.nodes[0].machines["membership"].state != "Halted":
        run_checked(world, 10)
    halted_at = max(e["t"] for e in world.cluster.trace if e.get("node") == 0 and e.get("machine") == "membership"
                    and e.get("dest") == "Halted")
    world.cluster.network.heal()
    return world, halted_at


def members(world: World, i: int) -> tuple[int, ...]:
    return tuple(k for k, m in enumerate(world.cluster.nodes[i].machines["membership"].record.members) if m)


def test_a_halted_node_starts_its_cluster_role_again_after_rejoin_after_ms() -> None:
    world, halted_at = halted_minority()
    world.cluster.run_for(halted_at + REJOIN_AFTER_MS - 1 - world.cluster.clock.now)
    assert world.cluster.nodes[0].machines["membership"].state == "Halted"  # nobody regrouped: it waits
    run_checked(world, 400)
    assert members(world, 0) == members(world, 1) == (0, 1, 2)


def test_a_halted_node_that_hears_a_regroup_joins_that_round() -> None:
    """Before REJOIN_MIN_MS it ignores the regroup; later it starts again at once, and the status it heard
    reaches its new membership machine: it takes part in the sender's round, or the sender in its own (a cut-off
    node's rounds run ahead: each suspicion during a round starts the next one)."""
    world, halted_at = halted_minority()
    world.restart(2)  # node 2's service restarts: it boots a round, node 1 joins it
    world.cluster.run_for(5)
    assert world.cluster.nodes[0].machines["membership"].state == "Halted"
    world.cluster.run_for(halted_at + REJOIN_MIN_MS - world.cluster.clock.now)
    world.restart(1)
    sender = world.cluster.nodes[1].machines["membership"].record.round
    world.cluster.run_for(10)  # two network delays: the sender may join this node's round and answer
    joined, other = (world.cluster.nodes[i].machines["membership"] for i in (0, 1))
    assert joined.state == "Collecting" and joined.record.heard[1]
    assert joined.record.round == other.record.round >= sender
    run_checked(world, 300)
    assert members(world, 0) == members(world, 1) == (0, 1, 2)


def test_a_crash_ends_the_wait_to_start_again() -> None:
    world, _ = halted_minority()
    world.cluster.nodes[0].crash()
    world.cluster.run_for(REJOIN_AFTER_MS + 500)
    assert not world.cluster.nodes[0].up


def test_the_locker_refuses_a_failover_decision_made_in_an_older_membership() -> None:
    """A failover decision is submitted with the membership epoch it was made in; a request that reaches the
    locker after a newer membership was installed (it was in flight across a regroup) is refused, never
    applied: in the new membership the group's old owner may be back and running it.  A decision of the current
    membership is numbered and applied as any update."""
    world = formed(3)
    locker, asker = world.cluster.nodes[0], 1
    epoch = int(locker.machines["membership"].record.epoch)
    assert epoch >= 1 and locker.machines["gum"].record.locker == 0

    def ask(decided_in: object) -> int:
        last = int(locker.machines["gum"].record.last_seq)
        payload = [{"decided_in": decided_in}, {"group": 0, "node": asker}]
        view = {f"alive{k}": int(m) for k, m in enumerate(locker.machines["gum"].record.members)}
        world.apps[0].take_payload(asker, "gum", "lock_request", {"seen": last, **view}, payload)
        locker.feed("gum", "lock_request", src=asker, seen=last, **view)
        run_checked(world, 1500)
        return int(locker.machines["gum"].record.last_seq) - last

    assert ask(epoch - 1) == 0, "a decision of an older membership was numbered"
    assert ask("new") == 0, "a mark that is not an epoch was taken for a current one"
    assert locker.machines["gum"].record.lock_holder == -1 and world.online_on(0) == [0]
    assert ask(epoch) == 1
    assert all(world.apps[k].store[max(world.apps[k].store)] == [{"group": 0, "node": asker}] for k in range(3))
    assert not world.update_violations()


def test_updates_queued_during_a_regroup_are_all_committed_once_it_ends() -> None:
    """Found by the disk-quorum whole-cluster test's liveness check.  A step is logged before its effects run,
    so the step that ended an update (GUM Idle, then the report) found it still in flight and left the queue;
    a late GUM timer, or the next submit, moved it on.  Node 0, alone after node 1 crashed, commits each update
    within its submit step and has no timer left: the updates queued during the regroup waited for ever."""
    world = World(2, [WEB], seed=1, quorum="disk")
    world.boot_all()
    run_checked(world, 3000)
    world.cluster.nodes[1].crash()
    gum = world.cluster.nodes[0].machines["gum"]
    for _ in range(2000):
        world.cluster.run_for(10)
        if gum.state == "Blocked":
            break
    assert gum.state == "Blocked", "node 0 did not start a regroup: the story did not happen"
    for value in ("a", "b", "c"):
        world.submit_config(0, "k", value)
    assert len(world.apps[0].queue) == 3, "submitted during the regroup: queued"
    run_checked(world, 30000)
    assert gum.record.members == (True, False) and gum.state == "Idle"
    assert not world.apps[0].queue, f"{len(world.apps[0].queue)} updates still queued"
    assert world.config(0).get("k") == "c"


def test_a_node_back_alone_catches_up_from_the_quorum_logs_checkpoint_and_records() -> None:
    """The partition in time with a log long enough for checkpoints: node 1 is down while node 0, the disk's
    owner, makes 20 changes; the quorum log keeps a checkpoint of node 0's database and the records after it.
    Node 0 goes down, node 1 comes back alone, wins the disk and catches up from the checkpoint, then the
    records, before it forms."""
    world = World(2, [WEB], seed=22, quorum="disk")
    world.boot_all()
    run_checked(world, 16000)
    world.cluster.nodes[1].crash()
    run_checked(world, 20000)
    for k in range(20):
        world.submit_config(0, f"key{k % 5}", str(k))
        run_checked(world, 100)
    checkpoint = world.disk_checkpoint
    assert checkpoint is not None and checkpoint.seq >= CHECKPOINT_EVERY, "no checkpoint was written"
    assert world.disk_log and min(world.disk_log) == checkpoint.seq + 1, "the records after it are kept, not before"
    final = dict(world.config(0))
    last = world.cluster.nodes[0].machines["gum"].record.last_seq
    world.cluster.nodes[0].crash()
    world.restart(1)
    run_checked(world, 30000)
    node = world.cluster.nodes[1]
    assert node.machines["membership"].state == "Stable" and world.disk.holder == 1
    assert world.bases.get(1) == checkpoint, "node 1 did not start from the checkpoint"
    assert world.config(1) == final and node.machines["gum"].record.last_seq >= last
    assert 1 not in world.apps[1].store, "updates before the checkpoint came one by one, not from the checkpoint"


# -- the resource monitors, the lease and stalls (issue 14) ---------------------------------------------------
def test_the_invariant_counts_the_monitors_processes_not_the_machines() -> None:
    world = formed(3)
    assert world.active_on(0) == [0] and not world.violations()
    world.monitors[1].running.add("res0.1")  # a copy the resource machines of node 1 know nothing of
    assert world.running_on(0) == [0] and world.violations() == ["group web runs on nodes [0, 1] at once"]


def test_a_crash_ends_the_nodes_processes() -> None:
    world = formed(3)
    world.cluster.nodes[0].crash()
    assert world.active_on(0) == [] and not world.monitors[0].running


def test_a_stalled_owners_copy_goes_on_the_lease_before_the_others_start_it() -> None:
    world = formed(3)
    start = world.cluster.clock.now
    stall = world.stall(0, 5000)
    assert stall is not None
    run_checked(world, 5000)
    ((ended, gone, killed),) = world.monitors[0].lapses
    # the lease ran out no later than LEASE_MS after the stall began, and the kill took KILL_MS
    assert start < ended <= start + LEASE_MS and gone == ended + KILL_MS and killed == ["res0.0", "res0.1"]
    assert world.active_on(0) == [1] and not world.overlaps
    first_start = min(e["t"] for e in world.cluster.trace
                      if e.get("node") == 1 and e.get("machine") == "res0.0" and e.get("dest") == "Online")
    assert gone < first_start
    # while stalled node 0 took no step; waking, its first step is the halt on the clock gap
    steps = [e for e in world.cluster.trace if e.get("node") == 0 and "trigger" in e and e["t"] > start]
    assert steps[0]["t"] == start + 5000 and steps[0]["machine"] == "membership"
    assert steps[0]["trigger"] == "clock_gap" and steps[0]["dest"] == "Halted"
    assert stall.gap is not None and stall.gap >= 5000 and stall.halted


def test_messages_sent_to_a_stalled_node_are_handled_after_it_wakes() -> None:
    world = formed(3)
    start = world.cluster.clock.now
    world.stall(0, 300)
    run_checked(world, 200)
    assert world.cluster.nodes[0].backlog  # the peers' heartbeats, its own timers
    run_checked(world, 100)
    assert not world.cluster.nodes[0].backlog
    beats = [e for e in world.cluster.trace if e.get("node") == 0 and e.get("trigger") == "beat" and e["t"] > start]
    assert beats and beats[0]["t"] == start + 300 and len([b for b in beats if b["t"] == start + 300]) >= 4


def test_a_short_stall_moves_nothing() -> None:
    world = formed(3)
    stall = world.stall(0, 300)
    run_checked(world, 3000)
    assert stall is not None and stall.gap is not None and not stall.halted
    assert world.active_on(0) == [0] and world.online_on(0) == [0] and not world.monitors[0].lapses
    assert all(e.get("trigger") != "clock_gap" for e in world.cluster.trace)


def test_a_stalled_daemon_and_monitor_show_two_copies_to_the_invariant() -> None:
    """Without fencing the lease cannot stop a copy whose monitor is frozen too: the check must see it."""
    world = formed(3)
    world.stall(0, 5000, with_monitor=True)
    seen = []
    for _ in range(500):
        world.cluster.run_for(10)
        seen += world.violations()
    assert "group web runs on nodes [0, 1] at once" in seen
    assert world.overlaps and world.overlaps[0][1:] == ("web", [0, 1])
    assert world.active_on(0) == [1] and not world.violations()  # woken, node 0 halted and terminated its copy


def test_a_node_left_out_by_a_newer_membership_has_its_lease_revoked() -> None:
    """Cut one way: node 0 still hears the others' heartbeats, which come to carry a membership without it (its
    lease also lapses: nobody vouches for it any more)."""
    world = formed(3)
    revoked = []
    for peer in (1, 2):
        world.cluster.network.cut(0, peer)
    for _ in range(300):
        world.cluster.run_for(10)
        revoked.append(world.monitors[0].revoked)
        assert not world.violations(), world.violations()
    new_epoch = world.cluster.nodes[1].machines["membership"].record.epoch
    assert new_epoch in revoked and world.active_on(0) == [1] and not world.overlaps
