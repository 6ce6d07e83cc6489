"""The deterministic simulator: speed, and failover time in simulated time.

Run: ``.venv/bin/python bench/bench_sim.py [--trials N] [--seconds S]``.
Figures are printed, never asserted (the machine is shared).

1. Simulated cluster-seconds per wall-clock second for 8 and 32 nodes (one
   group of two resources per node, every protocol machine of every node,
   heartbeats every 100 ms), measured over S simulated seconds of a formed
   cluster, with the 3-node cluster measured in the same run as the baseline.
2. Crash -> every group of the crashed node online elsewhere, in simulated
   time with the default timings (heartbeat 100 ms x 5, regroup stage 100 ms,
   take-over wait 500 ms, 50 ms resource operations), over N seeds: p50, p99
   and max, with the detection (new membership installed) part shown apart.
"""

from __future__ import annotations

import argparse
import statistics
import time

from wolfpack.runtime.sim.world import GroupConfig, World

STEP_MS = 10


def groups_for(n: int) -> list[GroupConfig]:
    return [GroupConfig(f"g{i}", ["ip", "app"], {"app": ["ip"]}, [i % n, (i + 1) % n]) for i in range(n)]


def formed(n: int, seed: int) -> World:
    world = World(n, groups_for(n), seed=seed)
    world.boot_all()
    for _ in range(2000):
        world.cluster.run_for(STEP_MS)
        if all(world.online_on(g) for g in range(n)):
            return world
    raise RuntimeError(f"{n}-node cluster did not bring its groups online in 20 s")


def speed(n: int, seconds: int) -> tuple[float, float]:
    """(cluster-seconds per wall second, machine steps per wall second) over ``seconds`` simulated seconds."""
    world = formed(n, seed=1)
    steps_before = len(world.cluster.trace)
    started = time.perf_counter()
    world.cluster.run_for(seconds * 1000)
    wall = time.perf_counter() - started
    return seconds / wall, (len(world.cluster.trace) - steps_before) / wall


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def failover(n: int, seed: int) -> tuple[int, int]:
    """(ms from crash to a new membership on every survivor, ms to all the crashed node's groups online)."""
    world = formed(n, seed)
    victim = 0
    lost = [g for g in range(n) if world.online_on(g) == [victim]]
    survivors = [i for i in range(n) if i != victim]
    epoch = world.cluster.nodes[survivors[0]].machines["membership"].record.epoch
    world.cluster.nodes[victim].crash()
    crashed_at = world.cluster.clock.now
    membership_ms = None
    while world.cluster.clock.now - crashed_at < 30_000:
        world.cluster.run_for(STEP_MS)
        now = world.cluster.clock.now - crashed_at
        if membership_ms is None and all(
                world.cluster.nodes[i].machines["membership"].record.epoch > epoch
                and world.cluster.nodes[i].machines["membership"].state == "Stable" for i in survivors):
            membership_ms = now
        if membership_ms is not None and all(world.online_on(g) and world.online_on(g) != [victim] for g in lost):
            return membership_ms, now
    raise RuntimeError(f"seed {seed}: the groups of node {victim} were not online elsewhere within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    print(f"== simulator speed ({args.seconds} simulated seconds of a formed cluster)")
    base, base_steps = speed(3, args.seconds)
    print(f"  3 nodes (baseline): {base:7.2f} cluster-s per wall-s, {base_steps:9.0f} machine steps/s")
    for n in (8, 32):
        rate, steps = speed(n, args.seconds)
        print(f"  {n:2d} nodes:            {rate:7.2f} cluster-s per wall-s, {steps:9.0f} machine steps/s "
              f"(x{rate / base:.3f} of the 3-node speed; per node-second x{rate * n / (base * 3):.3f})")

    for n in (3, 8):
        detect, online = zip(*(failover(n, seed) for seed in range(args.trials)), strict=True)
        print(f"== crash -> groups online elsewhere, {n} nodes, default timings, {args.trials} seeds (simulated ms)")
        for label, values in (("new membership", detect), ("groups online", online)):
            vals = [float(v) for v in values]
            print(f"  {label:15s} p50 {statistics.median(vals):6.0f}  p99 {percentile(vals, 99):6.0f}  "
                  f"max {max(vals):6.0f}")


if __name__ == "__main__":
    main()
