"""Heartbeat timer: send jitter and CPU cost of the C engine and the Python twin, idle and with a busy interpreter.

Run: ``.venv/bin/python bench/bench_heartbeat.py [--seconds 5] [--period-ms 10] [--networks 2]``.
Figures are printed, never asserted (the machine is shared).  For each
implementation and each mode, two timers on 127.0.0.1 heartbeat each other for
the given time while the main thread either sleeps (idle) or runs pure-Python
arithmetic that never yields (busy).  Printed per run: how late timer A's sends
left against their absolute deadlines (p50, p99, max, in microseconds; the
first send, which waits for the thread to start, is left out), deadlines missed
entirely, the longest silence B saw from A (in periods), and the CPU time
A's thread used per second of wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

from wolfpack.runtime.heartbeat import BaseHeartbeatTimer, CHeartbeatTimer, PyHeartbeatTimer

KEY = b"bench cluster key"


def busy_until(end: float) -> None:
    total = 0
    while time.monotonic() < end:
        for i in range(2000):
            total += i * i


def run(impl: type[BaseHeartbeatTimer], busy: bool, seconds: float, period_ms: int, networks: int) -> str:
    nets = [("127.0.0.1", 0)] * networks
    with impl(1, KEY, nets, period_ms=period_ms) as a, impl(2, KEY, nets, period_ms=period_ms) as b:
        a.set_peers({2: b.addresses()})
        b.set_peers({1: a.addresses()})
        b.start()
        a.start()
        started = time.monotonic()
        if busy:
            busy_until(started + seconds)
        else:
            time.sleep(seconds)
        elapsed = time.monotonic() - started
        late = a.recent_lateness_us()[1:]
        stats_a, stats_b = a.stats(), b.stats()
    late.sort()
    p50 = statistics.median(late)
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
    gap_periods = stats_b["max_receive_gap_us"] / (period_ms * 1000)
    cpu_ms_per_s = stats_a["cpu_us"] / 1000 / elapsed
    return (f"{impl.implementation:6} {'busy' if busy else 'idle':5} {len(late):7} {p50:8.0f} {p99:8.0f} "
            f"{late[-1]:8.0f} {stats_a['missed_deadlines']:6} {gap_periods:9.2f} {cpu_ms_per_s:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--period-ms", type=int, default=10)
    parser.add_argument("--networks", type=int, default=2)
    args = parser.parse_args()
    impls = [impl for impl in (CHeartbeatTimer, PyHeartbeatTimer) if impl is not None]
    if CHeartbeatTimer is None:
        print("the C extension is not built: only the Python twin is measured")
    print(f"period {args.period_ms} ms, {args.networks} network(s), {args.seconds:g} s per run; lateness in us")
    print(f"{'impl':6} {'mode':5} {'sends':>7} {'p50':>8} {'p99':>8} {'max':>8} {'missed':>6} {'max gap':>9} "
          f"{'cpu ms/s':>10}")
    for impl in impls:
        for busy in (False, True):
            print(run(impl, busy, args.seconds, args.period_ms, args.networks), flush=True)


if __name__ == "__main__":
    main()
