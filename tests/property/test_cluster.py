"""Whole simulated clusters under random faults (hypothesis stateful testing).

Rules are faults, administrators and time: crash a node, restart it,
partition the network (both ways or one way), cut only a node's heartbeats
or only its transport (a firewall dropping UDP, or TCP), heal it, make a link
lossy, slow and duplicating, stall a node's daemon (50 ms to 10 s; it wakes by
itself, and halts on the clock gap if the stall passed the suspicion bound),
submit configuration updates from any node, let time pass.  Each node's
heartbeat ticks fall at a phase of its own in each period (drawn per run), as
each daemon's C timer thread runs from its own start: nodes then suspect a
silent peer at different ticks.  After every step
the cluster-wide invariants must hold: a group's processes (as the nodes'
resource monitors have them, under the lease) run on at most one node, at
every instant, and only on a node inside the cluster; nodes that
installed the same epoch agree on its members; the applied global updates
of the nodes in the cluster are prefixes of one sequence that holds every
committed update unchanged.  Two stories these checks first failed on
(before joins loaded the sponsor's database) are kept as tests.
A copy of the world with the take-over wait removed (a seeded protocol bug)
is caught.

A healthy majority must not halt itself (issue 15): every halt of a node
that belongs to the newest membership, installed by a majority of live nodes
whose links among them have been clean since before the install, is a bug
unless :data:`MAJORITY_HALTS_ALLOWED` says why the spec wants it; the check
runs after every step and the allowed ones are counted
(:data:`majority_halts`).

Liveness: after the faults stop (the end of each run), the network heals,
crashed nodes come back (or stay down, drawn per run), and within
:data:`LIVENESS_BOUND_MS` of simulated time the cluster must have recovered:
see :meth:`Cluster.teardown` for what that means and where the bound comes
from.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from wolfpack.runtime.sim.network import CHANNELS, LinkPolicy
from wolfpack.runtime.sim.world import REJOIN_AFTER_MS, GroupConfig, World
from wolfpack.spec import defaults as d

NODES = 3
GROUPS = [GroupConfig("web", ["ip", "app"], {"app": ["ip"]}, preferred=[0, 1, 2]),
          GroupConfig("db", ["disk", "sql"], {"sql": ["disk"]}, preferred=[2, 1, 0])]

#: the simulated resource driver's time for one Online (World's ``op_ms``)
OP_MS = 50
#: a node that will halt has done so: its suspicions are at most a detection old, and its rounds run out
SETTLED_MS = d.HEARTBEAT_PERIOD_MS * d.HEARTBEAT_MISSED_THRESHOLD + d.REGROUP_MAX_ROUNDS * 2 * d.REGROUP_STAGE_MS
#: a halted node starts its cluster role again (the daemon's default node.rejoin_after_ms) and joins in its rounds
REJOINED_MS = REJOIN_AFTER_MS + d.REGROUP_MAX_ROUNDS * 2 * d.REGROUP_STAGE_MS
#: the groups of nodes left out are taken over, and started resource by resource (at most two per group here)
ONLINE_MS = d.TAKEOVER_WAIT_MS + max(len(g.resources) for g in GROUPS) * OP_MS
#: after the faults stop, everything that can run runs within this: 900 + 2400 + 600 = 3900 ms
LIVENESS_BOUND_MS = SETTLED_MS + REJOINED_MS + ONLINE_MS

# Under disk quorum: a node that will halt has done so within a detection and the disk regroup window; the
# disk is won within a challenge (W, three reserve timeouts, jitter); a halted node rejoins as above; the groups
# of nodes left out are taken over after the disk take-over wait: 15500 + 13200 + 2400 + 14100 = 45200 ms.
DISK_LIVENESS_BOUND_MS = (d.HEARTBEAT_PERIOD_MS * d.HEARTBEAT_MISSED_THRESHOLD + d.DISK_REGROUP_WINDOW_MS
                          + d.CHALLENGE_WAIT_MS + 3 * d.RESERVE_TIMEOUT_MS + d.JITTER_MS + REJOINED_MS
                          + d.DISK_TAKEOVER_WAIT_MS + max(len(g.resources) for g in GROUPS) * OP_MS)


#: halts of a member of a live majority that the spec asks for, by trigger, with the reason
MAJORITY_HALTS_ALLOWED = {
    "shutdown": "a planned stop (ClusterExit) of that node",
    "clock_gap": "that node's daemon was stalled past the suspicion bound: the others may have taken its groups",
}
#: the longest stall of a node's daemon the tests draw (issue 14: a GC or swap storm, a paused VM, SIGSTOP)
LONGEST_STALL_MS = 10_000
#: how many halts of a member of a live majority the checks saw, by trigger (allowed ones only: the rest fail)
majority_halts: dict[str, int] = {}
#: a link must have been clean this long before an install for the membership to count as healthy (the longest
#: delay of a degraded link: a message sent before the heal may still be on its way)
CLEAN_BEFORE_INSTALL_MS = 50


def cluster_machine(takeover_wait_ms: int | None = None, more_faults: bool = True,
                    longest_wait_ms: int = 600, faults_take_time: bool = False,
                    liveness: bool = False, quorum: str = "mns",
                    lease_ms: int = d.LEASE_MS) -> type[RuleBasedStateMachine]:
    """The whole-cluster model; ``more_faults`` adds one-way cuts, degraded links, configuration updates,
    administrator moves and resource failures to crash, restart, partition, heal and wait (up to
    ``longest_wait_ms`` at a time).  Under ``quorum="disk"`` the disk can also stall and resume.

    With ``liveness`` a halted node starts its cluster role again after ``REJOIN_AFTER_MS`` (the daemon's
    default), and each run ends with the liveness check of :meth:`Cluster.teardown`.

    With ``faults_take_time`` every fault is followed by up to ``longest_wait_ms`` of simulated time.
    Otherwise time passes only in ``wait``, and hypothesis's swarm testing leaves that rule out of about
    half the runs: their faults all happen at one instant and never last.
    """
    then = st.integers(0, longest_wait_ms) if faults_take_time else st.just(0)

    class Cluster(RuleBasedStateMachine):
        @initialize(seed=st.integers(0, 2**16), restart_crashed=st.booleans() if liveness else st.just(False),
                    phases=st.none() | st.lists(st.integers(0, d.HEARTBEAT_PERIOD_MS - 1), min_size=NODES,
                                                max_size=NODES))
        def form(self, seed: int, restart_crashed: bool, phases: list[int] | None = None) -> None:
            self.restart_crashed = restart_crashed
            self.world = World(NODES, GROUPS, seed=seed, op_ms=OP_MS, quorum=quorum,
                               rejoin_after_ms=REJOIN_AFTER_MS if liveness else 0, lease_ms=lease_ms,
                               heartbeat_phases=phases)
            if takeover_wait_ms is not None:
                for node in self.world.cluster.nodes.values():
                    fo = node.machines["failover"]
                    fo.record = fo.record.replace(takeover_wait_ms=takeover_wait_ms)
            self.world.boot_all()
            self._seen = 0  # trace entries already looked at by the majority-halt check
            self.installed: dict[int, tuple[int, frozenset[int]]] = {}  # epoch -> (first install time, members)
            self.nodes_changed_at = 0  # the last crash or restart, or the end of the last stall
            self.disk_clean_since: int | None = 0  # None while the disk stalls
            # under disk quorum the first node challenges for the disk (W), then waits out the disk take-over wait
            self.world.cluster.run_for(2000 if quorum == "mns" else 30000)

        def up(self) -> list[int]:
            return [i for i, n in self.world.cluster.nodes.items() if n.up]

        @precondition(lambda self: len(self.up()) > 1)
        @rule(data=st.data(), then_ms=then)
        def crash(self, data: st.DataObject, then_ms: int) -> None:
            self.world.cluster.nodes[data.draw(st.sampled_from(self.up()))].crash()
            self.nodes_changed_at = max(self.nodes_changed_at, self.world.cluster.clock.now)
            self.wait(then_ms)

        @precondition(lambda self: len(self.up()) < NODES)
        @rule(data=st.data(), then_ms=then)
        def restart(self, data: st.DataObject, then_ms: int) -> None:
            down = [i for i in range(NODES) if i not in self.up()]
            self.world.restart(data.draw(st.sampled_from(down)))
            self.nodes_changed_at = max(self.nodes_changed_at, self.world.cluster.clock.now)
            self.wait(then_ms)

        @rule(side=st.sets(st.integers(0, NODES - 1), min_size=1, max_size=NODES - 1), then_ms=then)
        def partition(self, side: set[int], then_ms: int) -> None:
            self.world.cluster.network.partition(side, set(range(NODES)) - side)
            self.wait(then_ms)

        @rule(then_ms=then)
        def heal(self, then_ms: int) -> None:
            self.world.cluster.network.heal()
            self.wait(then_ms)

        @rule(ms=st.integers(10, longest_wait_ms))
        def wait(self, ms: int) -> None:
            for _ in range(ms // 10):
                self.world.cluster.run_for(10)
                self.check()

        def check(self) -> None:
            problems = self.world.violations() + self.world.update_violations()
            problems += [f"group {g} started on one more node at {t} ms: it ran on {nodes}"
                         for t, g, nodes in self.world.overlaps]
            assert not problems, "; ".join(problems)
            self.check_majority_halts()
            installed: dict[int, tuple[bool, ...]] = {}
            for node in self.world.cluster.nodes.values():
                rec = node.machines["membership"].record
                if node.up and node.machines["membership"].state == "Stable":
                    assert installed.setdefault(rec.epoch, rec.members) == rec.members, (
                        f"two memberships installed for epoch {rec.epoch}")

        def check_majority_halts(self) -> None:
            """A member of the newest membership halts: if that membership is a majority of live nodes, none
            restarted or crashed since it was installed, their links to each other have been clean since before
            and the quorum disk too (for longer than a reserve timeout: a command sent while it stalled may time
            out after it resumed; and clean only once every command a stall held has run: such a command runs
            late, after the resume, e.g. a challenger's reset that breaks the holder's reservation), the halt is a
            bug unless the spec says why (:data:`MAJORITY_HALTS_ALLOWED`)."""
            trace = self.world.cluster.trace
            new, self._seen = trace[self._seen:], len(trace)
            for entry in new:
                if entry.get("machine") != "membership" or "dest" not in entry:
                    continue
                for effect in entry.get("effects", []):
                    if effect.get("kind") == "report" and effect.get("name") == "installed":
                        args = effect["args"]
                        members = frozenset(k for k in range(NODES) if args.get(f"m{k}"))
                        self.installed.setdefault(int(args["epoch"]), (int(entry["t"]), members))
                if entry["dest"] != "Halted" or entry.get("source") in ("Halted", "Down") or not self.installed:
                    continue
                node, t, trigger = int(entry["node"]), int(entry["t"]), str(entry["trigger"])
                epoch = max(self.installed)
                since, members = self.installed[epoch]
                network = self.world.cluster.network
                clean = [network.clean_since(a, b) for a in members for b in members if a != b]
                healthy = (node in members and len(members) >= NODES // 2 + 1
                           and all(self.world.cluster.nodes[k].up for k in members) and self.nodes_changed_at < since
                           and all(c is not None and c <= since - CLEAN_BEFORE_INSTALL_MS for c in clean)
                           and self.disk_clean_since is not None
                           and self.disk_clean_since <= since - d.RESERVE_TIMEOUT_MS)
                if not healthy:
                    continue
                assert trigger in MAJORITY_HALTS_ALLOWED, (
                    f"node {node}, a member of the live majority {sorted(members)} (epoch {epoch}, installed at "
                    f"{since} ms, every member up and their links clean since before), halted at {t} ms on "
                    f"{trigger}: a healthy majority halted itself")
                majority_halts[trigger] = majority_halts.get(trigger, 0) + 1

        @invariant()
        def invariants_hold(self) -> None:
            self.check()

        def teardown(self) -> None:
            """Liveness: the faults stop.  Stalled nodes wake (a stall ends by itself), the network heals (cuts
            and degraded links too), crashed nodes
            restart if this run drew ``restart_crashed``, and simulated time runs for
            :data:`LIVENESS_BOUND_MS`, the invariants checked every 10 ms.  Then, with U the live nodes:

            * if U is a majority, every node of U has installed one membership, U itself (same epoch); its
              GUM is idle with nothing queued or in flight, all applied the same updates (the same number, the
              same configuration, every committed update); every group is online on exactly one node of U, its
              processes run there (under the lease) and nowhere else;
            * if U is not a majority, no group runs anywhere.

            The bound, from ``spec/defaults.py`` and the daemon's ``node.rejoin_after_ms``: a node that will
            halt has halted within a detection (heartbeat period x missed threshold, 500 ms) and its regroup
            rounds (max rounds x 2 stages, 400 ms); a halted node starts again within REJOIN_AFTER_MS (2000
            ms) and joins within its rounds (400 ms); the groups of nodes left out are taken over after the
            take-over wait (500 ms) and started resource by resource (2 x 50 ms): 3900 ms.  Over 1000
            derandomised runs the slowest recovery took 3450 ms."""
            if not liveness:
                return
            world = self.world
            while any(world.stalled(i) for i in range(NODES)):  # a stall ends by itself: let it
                self.wait(10)
            world.cluster.network.heal()
            world.disk.resume()
            self.disk_clean_since = max(world.cluster.clock.now, world.disk.settles_at)
            if self.restart_crashed:
                for i in range(NODES):
                    if not world.cluster.nodes[i].up:
                        world.restart(i)
                        self.nodes_changed_at = max(self.nodes_changed_at, world.cluster.clock.now)
            bound = LIVENESS_BOUND_MS if quorum == "mns" else DISK_LIVENESS_BOUND_MS
            self.wait(bound)
            live = self.up()
            if len(live) < (NODES // 2 + 1 if quorum == "mns" else 1):
                running = {g.name: world.running_on(gi) for gi, g in enumerate(GROUPS) if world.running_on(gi)}
                assert not running, f"nodes {live} are no majority, but groups run: {running}"
                return
            for i in live:
                node = world.cluster.nodes[i]
                membership, gum, app = node.machines["membership"], node.machines["gum"], world.apps[i]
                members = [k for k, m in enumerate(membership.record.members) if m]
                assert membership.state == "Stable" and members == live, (
                    f"{bound} ms after the faults stopped node {i} is {membership.state} with members "
                    f"{members}, not Stable with the live nodes {live}")
                assert gum.state == "Idle" and not app.queue and app.pending is None, (
                    f"node {i}'s global updates are stuck: GUM {gum.state}, {len(app.queue)} queued, "
                    f"{'one' if app.pending is not None else 'none'} in flight")
            epochs = {world.cluster.nodes[i].machines["membership"].record.epoch for i in live}
            assert len(epochs) == 1, f"the live nodes installed different epochs: {epochs}"
            applied = {i: world.cluster.nodes[i].machines["gum"].record.last_seq for i in live}
            assert len(set(applied.values())) == 1, f"the members applied different numbers of updates: {applied}"
            assert all(world.config(i) == world.config(live[0]) for i in live), "the members' configurations differ"
            assert not world.update_violations()
            for gi, g in enumerate(GROUPS):
                online, running, active = world.online_on(gi), world.running_on(gi), world.active_on(gi)
                assert len(online) == 1 and running == online and active == online, (
                    f"{bound} ms after the faults stopped group {g.name} is online on {online}, its machines "
                    f"run on {running} and its processes on {active}")

    if not more_faults:
        return Cluster

    class ClusterWithMoreFaults(Cluster):
        @rule(src=st.integers(0, NODES - 1), dst=st.integers(0, NODES - 1), then_ms=then)
        def cut_one_way(self, src: int, dst: int, then_ms: int) -> None:
            if src != dst:
                self.world.cluster.network.cut(src, dst)
            self.wait(then_ms)

        @rule(node=st.integers(0, NODES - 1), channel=st.sampled_from(CHANNELS), then_ms=then)
        def cut_channel(self, node: int, channel: str, then_ms: int) -> None:
            """Only the node's heartbeats, or only its transport, are lost, both ways (``heartbeat_only`` and
            ``tcp_only`` of the link-fault bench)."""
            for other in range(NODES):
                if other != node:
                    self.world.cluster.network.cut_channel(node, other, channel)
                    self.world.cluster.network.cut_channel(other, node, channel)
            self.wait(then_ms)

        @rule(src=st.integers(0, NODES - 1), dst=st.integers(0, NODES - 1), loss=st.sampled_from([0.0, 0.1, 0.5]),
              delay=st.integers(1, 40), duplicate=st.sampled_from([0.0, 0.2]), then_ms=then)
        def degrade(self, src: int, dst: int, loss: float, delay: int, duplicate: float, then_ms: int) -> None:
            if src != dst:
                self.world.cluster.network.set_policy(
                    src, dst, LinkPolicy(loss=loss, min_delay_ms=1, max_delay_ms=delay, duplicate=duplicate))
            self.wait(then_ms)

        @precondition(lambda self: any(not self.world.stalled(i) for i in self.up()))
        @rule(data=st.data(), ms=st.integers(50, LONGEST_STALL_MS), then_ms=then)
        def stall(self, data: st.DataObject, ms: int, then_ms: int) -> None:
            """A node's daemon stops for ``ms`` (its monitor goes on, and enforces the lease); it wakes by itself."""
            node = data.draw(st.sampled_from([i for i in self.up() if not self.world.stalled(i)]))
            self.world.stall(node, ms)
            # a stalled member is no live member: the others may rightly halt while it stalls or as it wakes
            self.nodes_changed_at = max(self.nodes_changed_at, self.world.cluster.clock.now + ms)
            self.wait(then_ms)

        @rule(node=st.integers(0, NODES - 1), value=st.integers(0, 9), then_ms=then)
        def update(self, node: int, value: int, then_ms: int) -> None:
            self.world.submit_config(node, "k", str(value))
            self.wait(then_ms)

        @rule(group=st.integers(0, len(GROUPS) - 1), resource=st.integers(0, 1), then_ms=then)
        def fail_resource(self, group: int, resource: int, then_ms: int) -> None:
            self.world.fail_resource(group, resource % len(GROUPS[group].resources))
            self.wait(then_ms)

        @rule(group=st.integers(0, len(GROUPS) - 1), node=st.integers(0, NODES - 1), then_ms=then)
        def move(self, group: int, node: int, then_ms: int) -> None:
            self.world.move(group, node)
            self.wait(then_ms)

        if quorum == "disk":
            @rule(delay=st.sampled_from([500, 3000, 12000]), node=st.sampled_from([None, *range(NODES)]),
                  then_ms=then)
            def stall_disk(self, delay: int, node: int | None, then_ms: int) -> None:
                self.world.disk.stall(delay, node)
                self.disk_clean_since = None
                self.wait(then_ms)

            @rule(then_ms=then)
            def resume_disk(self, then_ms: int) -> None:
                self.world.disk.resume()
                self.disk_clean_since = max(self.world.cluster.clock.now, self.world.disk.settles_at)
                self.wait(then_ms)

    return ClusterWithMoreFaults


class TestCluster(cluster_machine(liveness=True).TestCase):  # type: ignore[misc]
    # 300 runs of 50 faults or waits each under the ci profile; the large profile runs more
    settings = settings(settings(), max_examples=max(300, settings().max_examples), stateful_step_count=50)


class TestClusterDisk(cluster_machine(liveness=True, quorum="disk",  # type: ignore[misc]
                                      longest_wait_ms=3000).TestCase):
    # the same faults under disk quorum, with a disk that stalls; waits up to 3 s, so that arbitration plays out;
    # the safety invariants after every step and the liveness check at the end (45.2 s of simulated recovery),
    # 100 runs under the ci profile; the large profile runs more
    settings = settings(settings(), max_examples=max(100, settings().max_examples), stateful_step_count=50)


def test_a_holder_a_membership_behind_is_not_granted_the_lock() -> None:
    """Found by ``TestClusterDisk`` (ci profile) and shrunk by hand (decision 24).  The locker, node 0, installs
    a membership with nodes 0, 1 and 2; node 1 acknowledged it but missed the commit, so its GUM still has the
    members of the membership before (0 and 1).  Granted its request, node 1 swept update 5 to the members it
    knew and freed the lock, and node 2 never got update 5: every GUM idle, node 2 one update behind (the
    liveness check at the end failed).  Now the locker answers busy until node 1 has installed its membership."""
    machine = cluster_machine(liveness=True, quorum="disk", longest_wait_ms=3000)
    s = machine()
    s.form(seed=34, restart_crashed=False)
    s.move(group=0, node=2, then_ms=0)
    s.wait(ms=383)
    s.fail_resource(group=0, resource=1, then_ms=0)
    s.move(group=0, node=1, then_ms=0)
    s.wait(ms=55)
    s.world.cluster.nodes[2].crash()
    s.update(node=0, then_ms=0, value=1)
    s.wait(ms=2993)
    s.partition(side={0, 2}, then_ms=0)
    s.update(node=0, then_ms=0, value=6)
    s.update(node=1, then_ms=0, value=0)
    s.partition(side={0, 1}, then_ms=0)
    s.wait(ms=130)
    s.world.restart(2)
    s.teardown()


def test_without_the_takeover_wait_and_with_a_lease_too_long_a_split_runs_a_group_twice() -> None:
    """The basic faults find the split that needs the take-over wait: an owner cut off long enough to be
    declared dead (about 600 ms) still runs its group when the others take it over.

    The lease alone now stops the cut-off owner's copy in time (500 ms after the others last heard it, 15 ms
    to kill, where the others suspect it no sooner than 400 ms after that, regroup for 100 ms and take 50 ms
    to bring the group online), so the seeded bug breaks the timing obligation
    ``stalled_owner_stops_before_takeover`` twice over: no take-over wait, and a lease of 2 s.

    Faults take time here (up to a second after each), so a split lasts in most runs, whatever rules
    swarm testing leaves out.  Without that, only about one run in 150 held a split that long, and
    whether 200 runs found it depended on luck: hypothesis mixes the integer constants of every loaded
    module into its draws, so importing one more module (the hw layer) changed the runs and lost the
    bug.  Measured over 24 seeds of the derandomized search, this hunt finds it within 4 to 103 runs."""
    hunt = settings(derandomize=True, database=None, deadline=None, max_examples=200, stateful_step_count=20,
                    suppress_health_check=[HealthCheck.too_slow], report_multiple_bugs=False,
                    phases=[Phase.generate])  # finding it is the point; shrinking would take minutes
    try:
        run_state_machine_as_test(cluster_machine(takeover_wait_ms=0, more_faults=False, longest_wait_ms=1000,
                                                  faults_take_time=True, lease_ms=2000), settings=hunt)
    except AssertionError as exc:
        assert "runs on nodes" in str(exc) or "started on one more node" in str(exc), exc
    else:
        raise AssertionError("the seeded bug (no take-over wait, a lease of 2 s) was not found")


def test_a_node_restarted_with_an_orphan_update_loads_the_sponsors_database() -> None:
    """Node 0 (the locker) applies its own update first, cannot deliver it (cut off) and dies: the update
    is an orphan.  The survivors give number 2 to another update.  Node 0 comes back with its orphan as
    number 2; joining behind the others, it loads the sponsor's database and agrees with them."""
    world = World(NODES, GROUPS, seed=30235)
    world.boot_all()
    world.cluster.run_for(2000)
    world.cluster.network.cut(0, 1)
    world.cluster.network.cut(0, 2)
    world.submit_config(0, "k", "1")
    world.cluster.run_for(1)
    world.cluster.nodes[0].crash()
    world.cluster.run_for(3000)
    assert world.committed, "the survivors committed nothing: the story did not happen"
    world.cluster.network.heal()
    world.restart(0)
    world.cluster.run_for(3000)
    assert not world.update_violations()
    assert world.config(0) == world.config(1) and world.cluster.nodes[0].machines["gum"].state == "Idle"


def test_a_locker_in_a_superseded_epoch_loses_its_orphan() -> None:
    """A locker cut off one way applies its own update in a superseded epoch while the others commit
    another update under the same number; when it is back in a membership it takes the newer history."""
    world = World(NODES, GROUPS, seed=0)
    world.boot_all()
    world.cluster.run_for(2000)
    world.cluster.network.cut(0, 1)
    world.cluster.run_for(470)
    world.submit_config(0, "k", "1")
    world.submit_config(1, "k", "0")
    problems: list[str] = []
    for _ in range(60):
        world.cluster.run_for(10)
        problems += world.update_violations()
    assert world.committed, "nothing was committed: the story did not happen"
    assert not problems, problems


def test_an_owner_that_crashes_and_restarts_at_once_brings_its_groups_back() -> None:
    """The owner of web dies and its service restarts before anybody notices: it rejoins with a current
    database that still names it the owner, so nobody else will take web over; it must bring web back."""
    world = World(NODES, GROUPS, seed=0)
    world.boot_all()
    world.cluster.run_for(2000)
    assert world.online_on(0) == [0]
    world.cluster.nodes[0].crash()
    world.restart(0)
    world.cluster.run_for(3000)
    assert world.online_on(0) == [0] and world.online_on(1) == [2]


def sponsor_dies(check: Callable[[World], None], seed: int = 5) -> World:
    """Node 0 applies k=0 as update 2 alone (cut one way from node 1, node 2 restarting) while nodes 1 and 2
    commit k=7 as update 2; the network heals and node 1, the sponsor node 0 will name, crashes.  ``check``
    runs every 10 ms until then.  Which of the two rival coordinators of node 2's first round node 2 hears first
    depends on the links' random delays: the seed is one where it is node 1 (seed 0 was, until a coordinator
    began sending a late acknowledger its commit again, which draws one more delay)."""
    world = World(NODES, GROUPS, seed=seed, op_ms=OP_MS, rejoin_after_ms=REJOIN_AFTER_MS)
    world.boot_all()
    world.cluster.run_for(2000)
    world.cluster.nodes[2].crash()
    world.submit_config(0, "k", "0")
    world.restart(2)
    world.cluster.network.cut(0, 1)
    world.submit_config(2, "k", "7")
    for ms in (150, 30):  # re-timed when a rival commit began ending a proposal at once (it was 270, 114)
        for _ in range(ms // 10):
            world.cluster.run_for(10)
            check(world)
        world.cluster.network.heal()
    world.cluster.nodes[1].crash()
    return world


def test_a_join_whose_sponsor_died_does_not_keep_an_orphan() -> None:
    """Found by the whole-cluster test (under xdist's draws).  Node 0, the locker, applies k=0 as update 2 and
    cannot deliver it (cut one way from node 1; node 2 is restarting).  Nodes 1 and 2 install a membership
    without node 0 and commit k=7 as update 2.  The network heals and node 0 coordinates the next round,
    naming node 1 (the newest epoch) its sponsor, but node 1 has just crashed: node 0 cannot load its
    database: it halts (database_unavailable) rather than keep its orphan k=0 as update 2 and its own view of the
    locker, and it counts as installed before its sponsor's epoch, so that its next join loads a database."""
    problems: list[str] = []
    world = sponsor_dies(lambda w: problems.extend(w.update_violations()))
    for _ in range(100):
        world.cluster.run_for(10)
        problems += world.update_violations()
    assert world.committed.get(2) == [{"key": "k", "value": "7"}], "the story did not happen: k=7 is not update 2"
    assert not problems, problems[0]


def test_a_join_whose_sponsor_died_leaves_the_node_out_of_the_failover_manager() -> None:
    """Found by the large profile (seed 305).  The same story: node 0 used to coordinate the round, name node 1
    its sponsor, fail to load node 1's database and halt in the middle of its install step, whose ``installed``
    report then reached the failover manager after ``halted`` and made the halted node a member again.  Since the
    coordinator is the node with the newest epoch (issue 15), node 0, behind, does not coordinate: the coordinator
    is its own sponsor, so no install step loads a database any more.  Node 0 joins through node 2 (the newest
    epoch left) with node 2's database; at every step a halted node is out of the failover manager and no group
    runs twice."""
    problems: list[str] = []
    world = sponsor_dies(lambda w: problems.extend(w.update_violations()))
    joined = False
    for _ in range(150):
        world.cluster.run_for(10)
        assert not world.violations(), world.violations()
        problems += world.update_violations()
        node = world.cluster.nodes[0]
        if node.up and node.machines["membership"].state == "Halted":
            assert node.machines["failover"].state == "Out", "a halted node is a member of the failover manager"
        joined = joined or (node.up and node.machines["membership"].state == "Stable"
                            and bool(node.machines["membership"].record.members[2]))
    assert not problems, problems[0]
    assert joined, "node 0 never joined node 2"
    assert world.committed.get(2) == [{"key": "k", "value": "7"}], "the story did not happen: k=7 is not update 2"


def test_a_stalled_node_that_rejoins_while_the_disk_stalls_keeps_no_orphan() -> None:
    """Found by ``TestClusterDisk`` (ci profile, full suite's draws), cut down to its one stall that matters.
    Node 1 submitted k=8 as update 2 while cut off (an orphan); the others committed k=1 as update 2, and node 0,
    alone with the disk, recorded epoch 104 there.  Node 1's daemon stalls 4377 ms from 32590 ms while the disk
    stalls (12 s, every path); it wakes, halts on the clock gap (36967 ms) and rejoins (37502 ms).  Node 2, at
    epoch 103 like node 1, wins the disk at 40602 ms and replays the quorum log (update 3).  Both counted as
    installed at epoch 103, so node 1 (the lower id) coordinated epoch 205 as its own sponsor, and node 2 did not
    load its database either: node 1 kept k=8 as update 2 (``update_violations``).  Now the replay raises node
    2's epoch in the round to the disk's (``disk_epoch``, ``log_newer_than_this_round``): node 2 coordinates
    and sponsors, and node 1 loads its database.  (The disk's epoch is 105 since a suspicion during a round
    starts the next round.)"""
    machine = cluster_machine(liveness=True, quorum="disk", longest_wait_ms=3000)
    s = machine()
    s.form(seed=1533, restart_crashed=False)
    s.heal(then_ms=0)
    s.wait(ms=10)
    s.partition(side={0, 1}, then_ms=0)
    s.partition(side={0, 2}, then_ms=0)
    s.cut_one_way(dst=2, src=2, then_ms=0)
    s.wait(ms=400)
    s.wait(ms=2172)
    s.stall_disk(delay=12000, node=1, then_ms=0)
    s.update(node=0, then_ms=0, value=1)
    s.resume_disk(then_ms=0)
    s.partition(side={0}, then_ms=0)
    s.update(node=1, then_ms=0, value=8)
    s.resume_disk(then_ms=0)
    s.degrade(delay=31, dst=1, duplicate=0.2, loss=0.1, src=1, then_ms=0)
    s.update(node=2, then_ms=0, value=9)
    s.update(node=2, then_ms=0, value=1)
    s.resume_disk(then_ms=0)
    s.heal(then_ms=0)
    s.update(node=0, then_ms=0, value=6)
    s.update(node=1, then_ms=0, value=8)
    s.cut_one_way(dst=1, src=2, then_ms=0)
    s.update(node=1, then_ms=0, value=3)
    s.resume_disk(then_ms=0)
    s.degrade(delay=12, dst=2, duplicate=0.2, loss=0.1, src=2, then_ms=0)
    s.stall_disk(delay=12000, node=None, then_ms=0)
    s.partition(side={0}, then_ms=0)
    s.degrade(delay=16, dst=0, duplicate=0.2, loss=0.5, src=1, then_ms=0)
    s.partition(side={0, 2}, then_ms=0)
    s.wait(ms=10)
    s.heal(then_ms=0)
    s.update(node=2, then_ms=0, value=8)
    s.world.cluster.nodes[0].crash()
    s.degrade(delay=33, dst=2, duplicate=0.0, loss=0.1, src=1, then_ms=0)
    s.stall_disk(delay=12000, node=None, then_ms=0)
    s.move(group=1, node=0, then_ms=0)
    s.world.stall(1, 4377)
    s.heal(then_ms=0)
    s.move(group=1, node=2, then_ms=0)
    s.stall_disk(delay=12000, node=0, then_ms=0)
    s.stall_disk(delay=12000, node=2, then_ms=0)
    s.teardown()
    assert s.world.committed.get(2) == [{"key": "k", "value": "1"}], "the story did not happen: k=1 is not update 2"
    assert any(e.get("node") == 2 and e.get("machine") == "membership" and e.get("trigger") == "disk_epoch"
               and any(x["name"] == "status" and x["args"]["epoch"] == e["args"]["epoch"] > 103 for x in e["effects"])
               for e in s.world.cluster.trace), "the story did not happen: node 2 never counted as at the disk's epoch"
