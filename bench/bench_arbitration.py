"""Arbitration time: from the quorum disk owner's death to the challenger owning the disk.

Run (as root, for tgtd): ``.venv/bin/python bench/bench_arbitration.py [--trials 20] [--renew-ms 300]
[--wait-ms 700] [--timeout-ms 100] [--devices tgtd,memory-tgt,memory-spc] [--forms scsi2,scsi3]``.
Figures are printed, never asserted (the machine is shared).

Each trial, on a fresh LUN (a new LUN of a private tgtd on 127.0.0.1, or a new
in-memory device in tgt or SPC mode): two :class:`~wolfpack.hw.arbiter.Arbiter`
shells under asyncio, node 0 and node 1, run the arbitration machine of one
form against the device, exactly as the daemon will:

* ``scsi2``: MSCS challenge/defense (:mod:`wolfpack.spec.arbitration`): the
  owner re-reserves every T; the challenger resets the LUN, waits W, reserves;
* ``scsi3``: persistent reservations (:mod:`wolfpack.spec.pr_arbitration`): the
  owner reads the keys every T; the challenger registers, reserves (conflict),
  reads the holder, waits W with its key registered, preempts (PREEMPT AND
  ABORT; tgt refuses it and the machine falls back to PREEMPT), reserves.

Node 0 wins the disk and defends it for T plus a random part of T (so it dies
at a random point of its cycle), then dies: its machine crashes and its
timers stop, its I_T nexus stays open (a hung or powered-off node whose
connection has not timed out: the reservation stays until it is broken).
Node 1 starts its challenge at that instant, so the time measured is the
arbitration alone, not the detection of the death (heartbeats, regroup).  It
ends when node 1 reports ``won``; then node 1 must be able to write and
node 0 must not.

The calculated figure: a challenger waits W and sends its commands one after
the other, each answered within the command timeout D (or the challenge is
lost), so the arbitration takes W + k x (command round trip), at most
W + k x D, with k = 1 (SCSI-2: the RESERVE after the wait; the reset runs
during it) and k = 5 (SCSI-3: register, reserve, read reservation, preempt,
reserve; 6 where PREEMPT AND ABORT is refused).  asyncio adds about 1 ms per
timer (``shared/reference/scsi-and-timing.md`` §13.2).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wolfpack.hw import memory
from wolfpack.hw.arbiter import Arbiter, AsyncioScheduler
from wolfpack.hw.device import open_device
from wolfpack.hw.errors import ReservationConflict
from wolfpack.hw.tgtd import Tgtd, available
from wolfpack.machines import LiveMachine
from wolfpack.spec import defaults as d
from wolfpack.spec.arbitration import make_arbitration_spec
from wolfpack.spec.pr_arbitration import make_pr_arbitration_spec

FORMS = {"scsi2": (make_arbitration_spec, 1), "scsi3": (make_pr_arbitration_spec, 5)}
DEVICES = ("tgtd", "memory-tgt", "memory-spc")


class Trial:
    """One owner and one challenger on one fresh device."""

    def __init__(self, url: str, form: str, timing: dict[str, Any], number: int) -> None:
        make, _ = FORMS[form]
        self.disks = [open_device(url, initiator=f"iqn.2026-01.org.wolfpack.bench:t{number}n{k}", timeout_ms=2_000)
                      for k in (0, 1)]
        self.won = [asyncio.Event(), asyncio.Event()]
        self.reports: list[list[str]] = [[], []]
        loop = asyncio.get_running_loop()
        self.arbiters = [
            Arbiter(LiveMachine(make(2), me=k, **timing), self.disks[k], AsyncioScheduler(loop), cluster="bench",
                    on_report=self._report(k))
            for k in (0, 1)
        ]

    def _report(self, k: int) -> Callable[[str, dict[str, Any]], None]:
        def report(name: str, args: dict[str, Any]) -> None:
            self.reports[k].append(name)
            if name == "won":
                self.won[k].set()

        return report

    async def run(self, renew_ms: int, limit_s: float) -> float:
        owner, challenger = self.arbiters
        owner.feed("arbitrate")
        await asyncio.wait_for(self.won[0].wait(), limit_s)
        await asyncio.sleep((renew_ms + random.uniform(0, renew_ms)) / 1000)
        owner.crash()  # the owner dies: its machine is gone, its timers stop
        started = time.perf_counter()
        challenger.feed("arbitrate")
        await asyncio.wait_for(self.won[1].wait(), limit_s)
        took = time.perf_counter() - started
        await asyncio.sleep(0.05)  # let the owner's last command (if any was in flight) finish in its worker
        self.disks[1].write_blocks(0, b"w" * self.disks[1].block_size)
        try:
            self.disks[0].write_blocks(0, b"o" * self.disks[0].block_size)
        except ReservationConflict:
            pass
        else:
            raise AssertionError(f"the dead owner could still write after the challenger won: {self.reports}")
        return took

    def close(self) -> None:
        """Stop both nodes (the winner keeps defending otherwise), then their workers and their nexuses."""
        for arbiter in self.arbiters:
            arbiter.crash()  # answers still in flight are ignored from here on
            if isinstance(arbiter.scheduler, AsyncioScheduler):
                arbiter.scheduler.executor.shutdown(wait=True)
        for disk in self.disks:
            disk.close()


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered), math.ceil(len(ordered) * p / 100)) - 1)]


def measure(new_url: Callable[[], str], form: str, timing: dict[str, Any], trials: int) -> tuple[list[float], bool]:
    """Arbitration times (ms) of ``trials`` trials, and whether PREEMPT AND ABORT was refused (degraded)."""
    times: list[float] = []
    degraded = False

    async def all_trials() -> None:
        nonlocal degraded
        limit_s = 5 * (timing["challenge_wait_ms"] + 5 * timing["reserve_timeout_ms"]) / 1000
        for number in range(trials):
            trial = Trial(new_url(), form, timing, number)
            try:
                times.append(1000 * await trial.run(timing["renew_period_ms"], limit_s))
                degraded |= "degraded" in trial.reports[1]
            finally:
                trial.close()

    asyncio.run(all_trials())
    return times, degraded


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--renew-ms", type=int, default=300, help="T: the owner's renewal/check period")
    parser.add_argument("--wait-ms", type=int, default=700, help="W: the challenger's wait")
    parser.add_argument("--timeout-ms", type=int, default=100, help="D: the longest wait for a command's answer")
    parser.add_argument("--devices", default=",".join(DEVICES))
    parser.add_argument("--forms", default=",".join(FORMS))
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the arbiters log every lost challenge and degraded preempt
    timing = {"renew_period_ms": options.renew_ms, "challenge_wait_ms": options.wait_ms,
              "reserve_timeout_ms": options.timeout_ms}
    print(f"T = {options.renew_ms} ms, W = {options.wait_ms} ms, D = {options.timeout_ms} ms, "
          f"{options.trials} trials each; owner death -> challenger owns the disk (ms)")
    with tempfile.TemporaryDirectory() as scratch:
        target: Tgtd | None = None
        try:
            for device in options.devices.split(","):
                if device == "tgtd":
                    if (problem := available()) is not None:
                        print(f"  tgtd: not run ({problem})")
                        continue
                    if target is None:
                        target = Tgtd(Path(scratch), size_mb=1).start()
                    new_url: Callable[[], str] = target.new_lun
                else:
                    new_url = _memory_urls(tgt_compat=device == "memory-tgt")
                for form in options.forms.split(","):
                    times, degraded = measure(new_url, form, timing, options.trials)
                    k = FORMS[form][1] + degraded
                    p50, p99 = nearest_rank(times, 50), nearest_rank(times, 99)
                    print(f"  {device:<10} {form}: p50 {p50:7.1f}  p99 {p99:7.1f}  max {max(times):7.1f}  "
                          f"min {min(times):7.1f}   (W = {options.wait_ms}; bound W + {k}D = "
                          f"{options.wait_ms + k * options.timeout_ms}"
                          f"{'; PREEMPT AND ABORT refused, degraded to PREEMPT' if degraded else ''})")
        finally:
            if target is not None:
                target.stop()
    print(f"calculated for the defaults (T = {d.RENEW_PERIOD_MS}, W = {d.CHALLENGE_WAIT_MS}, "
          f"D = {d.RESERVE_TIMEOUT_MS} ms): W + k x round trip, at most W + k x D:")
    for form, (_, k) in FORMS.items():
        print(f"  {form}: about {d.CHALLENGE_WAIT_MS} ms + {k} command round trip(s) (a few ms on a local target), "
              f"at most {d.CHALLENGE_WAIT_MS + k * d.RESERVE_TIMEOUT_MS} ms"
              + (f" ({d.CHALLENGE_WAIT_MS + (k + 1) * d.RESERVE_TIMEOUT_MS} ms where PREEMPT AND ABORT is refused)"
                 if form == "scsi3" else ""))


def _memory_urls(*, tgt_compat: bool) -> Callable[[], str]:
    count = 0

    def new_url() -> str:
        nonlocal count
        count += 1
        name = f"bench-{'tgt' if tgt_compat else 'spc'}-{count}"
        memory.lun(name, tgt_compat=tgt_compat)
        return f"memory://{name}"

    return new_url


if __name__ == "__main__":
    main()
