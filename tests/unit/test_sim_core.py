"""The simulator's clock and network are deterministic and do what they say."""

import random

import pytest

from wolfpack.runtime.sim.clock import VirtualClock
from wolfpack.runtime.sim.network import LinkPolicy, SimNetwork


def test_clock_runs_actions_in_time_then_schedule_order() -> None:
    clock = VirtualClock()
    seen: list[str] = []
    clock.call_at(10, lambda: seen.append("b"))
    clock.call_at(5, lambda: seen.append("a"))
    clock.call_at(10, lambda: seen.append("c"))
    cancelled = clock.call_at(7, lambda: seen.append("x"))
    cancelled.cancel()
    assert clock.run_until(9) == 1 and clock.now == 9
    clock.run_until(100)
    assert seen == ["a", "b", "c"] and clock.now == 100


def test_clock_refuses_the_past_and_catches_livelock() -> None:
    clock = VirtualClock(50)
    with pytest.raises(ValueError):
        clock.call_at(10, lambda: None)

    def again() -> None:
        clock.call_later(0, again)

    clock.call_later(0, again)
    with pytest.raises(RuntimeError, match="livelock"):
        clock.run_until(60, max_actions=100)


def run(seed: int, policy: LinkPolicy) -> list[tuple[int, int, int, int]]:
    clock = VirtualClock()
    got: list[tuple[int, int, int, int]] = []
    net = SimNetwork(clock, random.Random(seed), lambda dst, src, p: got.append((clock.now, src, dst, p)), policy)
    for k in range(50):
        net.send(k % 3, (k + 1) % 3, k)
    clock.run_until(1000)
    return got


def test_same_seed_same_run_and_faults_happen() -> None:
    policy = LinkPolicy(loss=0.2, min_delay_ms=1, max_delay_ms=30, duplicate=0.1)
    a, b = run(7, policy), run(7, policy)
    assert a == b
    assert a != run(8, policy)
    payloads = [p for *_, p in a]
    assert len(set(payloads)) < 50  # some were lost
    assert len(payloads) > len(set(payloads))  # some were duplicated
    assert payloads != sorted(payloads)  # some were reordered


def test_partitions_cuts_and_crashes() -> None:
    clock = VirtualClock()
    got: list[tuple[int, int]] = []
    net = SimNetwork(clock, random.Random(1), lambda dst, src, p: got.append((src, dst)))
    net.partition({0, 1}, {2, 3})
    net.cut(0, 1)
    for s in range(4):
        for d in range(4):
            if s != d:
                net.send(s, d, None)
    clock.run_until(10)
    assert sorted(got) == [(1, 0), (2, 3), (3, 2)]
    net.heal()
    net.crash(3)
    got.clear()
    net.send(2, 3, None)
    net.send(1, 2, None)
    net.crash(2)  # dies while the message is in flight
    clock.run_until(20)
    assert got == [] and net.stats.dropped >= 2
