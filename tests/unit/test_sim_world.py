"""Whole simulated clusters: the protocol machines together, faults, and the
cluster-wide invariant checked every 10 simulated milliseconds."""

from __future__ import annotations

from wolfpack.runtime.sim.world import GroupConfig, World

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
    # detection (5 x 100 ms), one regroup round, the take-over wait (700 ms), the online itself
    assert 1200 <= world.cluster.clock.now - start <= 1700
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
