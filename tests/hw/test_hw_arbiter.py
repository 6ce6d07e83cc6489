"""The arbiter shell runs the arbitration machines (SCSI-2 and SCSI-3) against real device code: the
in-memory device on the virtual clock (no sleeping), both SPC and tgt modes; and tgtd under asyncio."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Target, make_target

from wolfpack.hw.arbiter import Arbiter, AsyncioScheduler, VirtualScheduler, node_of_key, pr_key
from wolfpack.hw.errors import ReservationConflict
from wolfpack.machines import LiveMachine
from wolfpack.runtime.sim.clock import VirtualClock
from wolfpack.spec.arbitration import make_arbitration_spec
from wolfpack.spec.pr_arbitration import make_pr_arbitration_spec

T, W, D = 300, 700, 100


def arbiters(target: Target, spec: str, clock: VirtualClock, n: int = 2) -> tuple[list[Arbiter], list[list[Any]]]:
    make = make_pr_arbitration_spec if spec == "pr" else make_arbitration_spec
    reports: list[list[Any]] = [[] for _ in range(n)]
    out = []
    for k in range(n):
        machine = LiveMachine(make(3), me=k, renew_period_ms=T, challenge_wait_ms=W, reserve_timeout_ms=D)
        out.append(Arbiter(machine, target.open(f"n{k}"), VirtualScheduler(clock), cluster="c1",
                           on_report=lambda name, args, k=k: reports[k].append((clock.now, name))))
    return out, reports


def names(reports: list[Any]) -> list[str]:
    return [name for _, name in reports]


def first_owner(kind: str, spec: str, request: pytest.FixtureRequest,
                settle_ms: int) -> tuple[VirtualClock, list[Arbiter], list[list[Any]]]:
    """Two nodes on a fresh target; node 0 arbitrates alone and has won after ``settle_ms``."""
    clock = VirtualClock()
    nodes, reports = arbiters(make_target(kind, request), spec, clock)
    nodes[0].feed("arbitrate")
    clock.run_until(settle_ms)
    assert names(reports[0]) == ["won"]
    return clock, nodes, reports


@pytest.mark.parametrize("kind", ["spc", "tgt_compat"])
def test_pr_owner_defends_then_a_dead_owner_is_fenced(kind: str, request: pytest.FixtureRequest) -> None:
    clock, (a, b), (ra, rb) = first_owner(kind, "pr", request, 50)
    assert a.machine.state == "Defending"
    b.feed("arbitrate")  # a live owner: b's registered key is preempted before its wait ends
    clock.run_until(2_000)
    assert "lost_quorum" in names(rb) and names(ra).count("fenced") == 1 and a.machine.state in ("Defending",
                                                                                                "Checking")
    assert ("degraded" in names(ra)) is (kind == "tgt_compat")
    a.crash()  # the owner dies (its key stays registered)
    b.feed("arbitrate")
    clock.run_until(4_000)
    assert "won" in names(rb) and b.machine.state in ("Defending", "Checking")
    with pytest.raises(ReservationConflict):  # storage fencing: the old owner cannot write
        a.disk.write_blocks(0, b"x" * 512)
    b.disk.write_blocks(0, b"y" * 512)


def test_pr_a_preempted_owner_reports_lost_quorum_within_the_bound(request: pytest.FixtureRequest) -> None:
    clock, (a, b), (ra, _) = first_owner("spc", "pr", request, 50)
    b.disk.register_ignore(pr_key("c1", 1))
    b.disk.preempt(pr_key("c1", 1), pr_key("c1", 0))  # taken behind a's back (a stalled defense)
    taken = clock.now
    clock.run_until(taken + a.fencing_bound_ms)
    assert names(ra)[-1] == "lost_quorum" and ra[-1][0] - taken <= a.fencing_bound_ms


@pytest.mark.parametrize("kind", ["spc", "tgt_compat"])
def test_scsi2_challenge_defense(kind: str, request: pytest.FixtureRequest) -> None:
    clock, (a, b), (_, rb) = first_owner(kind, "scsi2", request, W + 50)
    b.feed("arbitrate")  # a resets; a renews within T < W: b's RESERVE conflicts
    clock.run_until(3 * W)
    assert names(rb) == ["lost_quorum"] and a.machine.state in ("Defending", "Renewing")
    a.crash()
    b.feed("arbitrate")
    clock.run_until(6 * W)
    assert names(rb)[-1] == "won"
    with pytest.raises(ReservationConflict):
        a.disk.reserve6()


def test_keys_name_their_node_and_cluster() -> None:
    key = pr_key("c1", 4)
    assert node_of_key("c1", key) == 4 and node_of_key("c2", key) is None and node_of_key("c1", 0xA) is None
    assert key != pr_key("c1", 3) and key & 0xFFFFFFFF == 5


def test_pr_arbitration_against_tgtd_under_asyncio(request: pytest.FixtureRequest) -> None:
    target = make_target("tgtd", request)
    reports: list[list[str]] = [[], []]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        arbs = []
        for k in range(2):
            machine = LiveMachine(make_pr_arbitration_spec(3), me=k, renew_period_ms=T, challenge_wait_ms=W,
                                  reserve_timeout_ms=D)
            arbs.append(Arbiter(machine, target.open(f"n{k}"), AsyncioScheduler(loop), cluster="c1",
                                on_report=lambda name, args, k=k: reports[k].append(name)))
        arbs[0].feed("arbitrate")
        await asyncio.sleep(0.1)
        arbs[1].feed("arbitrate")
        await asyncio.sleep(W / 1000 + 0.5)
        assert "lost_quorum" in reports[1] and "degraded" in reports[0]
        arbs[0].crash()
        arbs[1].feed("arbitrate")
        await asyncio.sleep(W / 1000 + 0.5)
        assert reports[1][-1] in ("won", "degraded", "fenced") and "won" in reports[1]

    asyncio.run(run())
    assert reports[0][0] == "won"
