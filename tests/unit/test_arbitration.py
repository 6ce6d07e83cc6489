"""Quorum arbitration: the reservation device, the challenge/defense machine, the simulated disk,
deterministic scenarios on the virtual clock, generated property tests and the composed proof.

The scenarios run three arbitration machines and the simulated device through a small pump
(:class:`Pump`) that carries out their effects on a :class:`VirtualClock`: timers become clock
entries, ``command`` effects go to the device, the device's answers come back as events, and a
node can be paused (its events wait until the pause ends, like a process stopped in a debugger).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from wolfpack.errors import InvalidEvent, SpecError
from wolfpack.machines import LiveMachine
from wolfpack.runtime.sim.clock import Handle, VirtualClock
from wolfpack.runtime.sim.device import SimReservationDevice
from wolfpack.spec import arbitration, reservation
from wolfpack.spec.arbitration import make_arbitration_spec
from wolfpack.spec.core import Emitted, Record, Spec
from wolfpack.spec.expr import Store
from wolfpack.spec.reservation import make_reservation_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "property"))
from generated import machine_test, random_walks

T, W, D = 3_000, 10_000, 1_000
LATENCY = 1


def labels(effects: list[Emitted]) -> list[str]:
    return [f"{e.kind}:{e.name}" for e in effects]


# --- the reservation device ------------------------------------------------------------------


def device(n: int = 3) -> LiveMachine:
    return LiveMachine(make_reservation_spec(n))


def reserve(dev: LiveMachine, node: int) -> list[str]:
    dev.step("reserve", node=node)
    return [e.name for e in dev.step("serve", node=node)]


def test_reserve_succeeds_when_free_or_already_mine_and_conflicts_otherwise() -> None:
    dev = device()
    assert reserve(dev, 1) == ["reserve_ok"] and dev.record.holder == 1
    assert reserve(dev, 1) == ["reserve_ok"]  # the owner's renewal
    assert reserve(dev, 2) == ["reserve_conflict"] and dev.record.holder == 1


def test_answers_carry_the_node() -> None:
    dev = device()
    dev.step("reserve", node=2)
    assert dev.step("serve", node=2)[0].args == {"node": 2}


def test_release_frees_only_the_holders_reservation() -> None:
    dev = device()
    reserve(dev, 0)
    assert dev.step("release", node=1) == [] and dev.record.holder == 0
    dev.step("release", node=0)
    assert dev.record.holder == reservation.FREE


def test_reset_breaks_the_reservation_and_raises_unit_attention_for_the_others() -> None:
    dev = device()
    reserve(dev, 0)
    dev.step("reset", node=2)
    assert dev.record.holder == reservation.FREE
    assert dev.record.unit_attention == (True, True, False)
    reserve(dev, 0)
    assert dev.record.unit_attention == (False, True, False)


def test_a_release_or_reset_runs_after_the_nodes_queued_reserve() -> None:
    dev = device()
    dev.step("reserve", node=1)
    assert labels(dev.step("release", node=1)) == ["report:reserve_ok"]
    assert dev.record.holder == reservation.FREE and dev.record.pending == (False, False, False)


def test_a_failed_device_fails_every_reserve_and_holds_nothing() -> None:
    dev = device()
    reserve(dev, 0)
    dev.step("crash")
    assert dev.state == "Failed" and dev.record.holder == reservation.FREE
    assert reserve(dev, 0) == ["reserve_failed"]
    dev.step("repair")
    assert reserve(dev, 1) == ["reserve_ok"]


def test_serving_with_nothing_queued_changes_nothing() -> None:
    dev = device()
    before = dev.record
    assert dev.step("serve", node=0) == [] and dev.record == before


def test_a_node_outside_the_cluster_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="node"):
        device(2).step("reserve", node=2)


# --- the arbitration machine -----------------------------------------------------------------


def node_machine(me: int = 0, wait: int = W) -> LiveMachine:
    return LiveMachine(make_arbitration_spec(3), me=me, renew_period_ms=T, challenge_wait_ms=wait,
                       reserve_timeout_ms=D)


def test_a_challenge_resets_waits_then_reserves() -> None:
    m = node_machine(me=2)
    effects = m.step("arbitrate")
    assert labels(effects) == ["command:reset", "start_timer:challenge_wait_elapsed"]
    assert effects[0].args == {"node": 2} and effects[1].args == {"ms": W}
    assert labels(m.step("challenge_wait_elapsed")) == ["command:reserve", "start_timer:reserve_timeout"]
    effects = m.step("reserve_ok")
    assert m.state == "Defending"
    assert labels(effects) == ["cancel_timer:reserve_timeout", "start_timer:renew_elapsed", "report:won"]
    assert effects[1].args == {"ms": T}


@pytest.mark.parametrize("answer", ["reserve_conflict", "reserve_failed", "reserve_timeout"])
def test_a_failed_renewal_is_lost_quorum(answer: str) -> None:
    m = node_machine()
    for event in ("arbitrate", "challenge_wait_elapsed", "reserve_ok", "renew_elapsed"):
        m.step(event)
    assert m.state == "Renewing"
    assert "report:lost_quorum" in labels(m.step(answer))
    assert m.state == "Lost"
    assert labels(m.step("arbitrate"))[0] == "command:reset"  # it may challenge again


def test_a_late_answer_or_timer_is_ignored() -> None:
    m = node_machine()
    for event in ("reserve_ok", "renew_elapsed", "challenge_wait_elapsed", "reserve_timeout"):
        assert m.step(event) == []
        assert m.last is not None and m.last.outcome == "ignored"


def test_release_while_renewing_sends_the_release_after_the_reserve_in_flight() -> None:
    m = node_machine()
    for event in ("arbitrate", "challenge_wait_elapsed", "reserve_ok", "renew_elapsed"):
        m.step(event)
    assert labels(m.step("release")) == ["cancel_timer:reserve_timeout", "command:release", "report:released"]
    assert m.state == "Idle"


def test_the_role_is_derived_from_the_state() -> None:
    m = node_machine()
    (role,) = make_arbitration_spec(3).derived
    assert role.evaluate(m.record) == "none"
    m.step("arbitrate")
    assert role.evaluate(m.record) == "challenger"
    m.step("challenge_wait_elapsed")
    m.step("reserve_ok")
    assert role.evaluate(m.record) == "owner"


# --- the pump: three nodes and the simulated device on the virtual clock ------------------------


class Pump:
    """Carries out the machines' effects on a virtual clock."""

    def __init__(self, n: int = 3, *, latency: int = LATENCY, wait: int = W) -> None:
        self.clock = VirtualClock()
        self.trace: list[dict[str, Any]] = []
        self.device = SimReservationDevice(self.clock, n, self.feed, latency_ms=latency, trace=self.trace.append)
        self.nodes = [node_machine(k, wait) for k in range(n)]
        self.timers: dict[tuple[int, str], Handle] = {}
        self.paused_until = [0] * n
        self.backlog: list[list[str]] = [[] for _ in range(n)]
        self.reports: list[tuple[int, int, str]] = []  # (time, node, report)

    def at(self, t: int, node: int, event: str) -> None:
        self.clock.call_at(t, lambda: self.feed(node, event), f"{event} to node {node}")

    def pause(self, node: int, start: int, ms: int) -> None:
        """Node ``node`` is stopped from ``start`` for ``ms``: its events wait, then arrive in order."""
        def begin() -> None:
            self.paused_until[node] = self.clock.now + ms
            self.clock.call_later(ms, lambda: self._wake(node), f"node {node} wakes")

        self.clock.call_at(start, begin)

    def _wake(self, node: int) -> None:
        waiting, self.backlog[node] = self.backlog[node], []
        for event in waiting:
            self.feed(node, event)

    def feed(self, node: int, event: str) -> None:
        if self.clock.now < self.paused_until[node]:
            self.backlog[node].append(event)
            return
        for effect in self.nodes[node].step(event):
            self.carry_out(node, effect)

    def carry_out(self, node: int, effect: Emitted) -> None:
        key = (node, effect.name)
        if effect.kind == "start_timer":
            if key in self.timers:
                self.timers.pop(key).cancel()
            self.timers[key] = self.clock.call_later(effect.args["ms"], lambda: self._fire(key), effect.name)
        elif effect.kind == "cancel_timer":
            if key in self.timers:
                self.timers.pop(key).cancel()
        elif effect.kind == "command":
            self.device.carry_out(node, effect)
        elif effect.kind == "report":
            self.reports.append((self.clock.now, node, effect.name))
        else:  # pragma: no cover - the arbitration spec emits nothing else
            raise AssertionError(f"unexpected effect {effect}")

    def _fire(self, key: tuple[int, str]) -> None:
        self.timers.pop(key, None)
        self.feed(*key)

    def run_until(self, t: int) -> None:
        self.clock.run_until(t, max_actions=100_000)

    def states(self) -> list[str]:
        return [m.state for m in self.nodes]

    def reports_of(self, node: int) -> list[str]:
        return [r for _, k, r in self.reports if k == node]

    def when(self, node: int, report: str) -> int:
        return next(t for t, k, r in self.reports if k == node and r == report)

    def device_runs(self, trigger: str, node: int) -> list[int]:
        return [e["t"] for e in self.trace if e.get("device") == trigger and e.get("node") == node]


#: Node 0 challenges at t=0: its reset runs at 1, its wait ends at W, its RESERVE runs (and is answered) at W+1.
OWNER_SINCE = W + LATENCY


def owned_by_node0(wait: int = W) -> Pump:
    pump = Pump(wait=wait)
    pump.at(0, 0, "arbitrate")
    pump.run_until(wait + LATENCY)
    assert pump.reports == [(wait + LATENCY, 0, "won")]
    return pump


def test_the_owner_renews_every_period() -> None:
    pump = owned_by_node0()
    pump.run_until(OWNER_SINCE + 4 * (T + LATENCY))
    renewals = pump.device_runs("serve", 0)[1:]
    assert renewals == [OWNER_SINCE + i * (T + LATENCY) for i in range(1, 5)]
    assert pump.device.holder == 0 and pump.states()[0] == "Defending"


def test_a_live_owner_defends_and_the_challenger_loses() -> None:
    pump = owned_by_node0()
    pump.at(20_000, 1, "arbitrate")
    pump.run_until(40_000)
    # node 1's reset broke the reservation; node 0's next renewal took it back within T
    reset_at = pump.device_runs("reset", 1)[0]
    renewed_at = min(t for t in pump.device_runs("serve", 0) if t > reset_at)
    assert renewed_at - reset_at <= T + LATENCY
    assert pump.when(1, "lost_quorum") == 20_000 + W + LATENCY  # its RESERVE conflicted
    assert pump.states()[:2] == ["Defending", "Lost"]
    assert pump.reports_of(0) == ["won"] and pump.device.holder == 0


def test_a_stalled_owner_loses_to_the_challenger_and_fences_itself_at_its_next_renewal() -> None:
    pump = owned_by_node0()
    pump.pause(0, start=20_000, ms=15_000)  # past the challenger's wait
    pump.at(20_000, 1, "arbitrate")
    pump.run_until(40_000)
    won_at = pump.when(1, "won")
    assert won_at == 20_000 + W + LATENCY
    fenced_at = pump.when(0, "lost_quorum")
    assert fenced_at == 35_000 + LATENCY  # its overdue renewal ran when it woke, and conflicted
    assert pump.states()[:2] == ["Lost", "Defending"] and pump.device.holder == 1


def single_challenges(wait: int, owner_path_ms: int, challenger_path_ms: int) -> list[int]:
    """Challenge a live owner from every offset in one renewal period; the offsets where the challenger won."""
    won = []
    for offset in range(0, T + LATENCY, 97):
        pump = owned_by_node0(wait)
        pump.device.stall(owner_path_ms, node=0)
        pump.device.stall(challenger_path_ms, node=1)
        pump.at(20_000 + offset, 1, "arbitrate")
        pump.run_until(20_000 + offset + wait + 2 * D)
        if pump.reports_of(1) != ["lost_quorum"]:
            won.append(offset)
        else:
            assert pump.reports_of(0) == ["won"], (offset, pump.reports)
    return won


@pytest.mark.parametrize("owner_path_ms", [0, D // 2, D - 2])
@pytest.mark.parametrize("challenger_path_ms", [0, D - 2])
def test_with_the_timing_obligation_a_single_challenger_never_unseats_a_live_owner(
        owner_path_ms: int, challenger_path_ms: int) -> None:
    # T + jitter + 3D < W (jitter 0): whenever the challenge starts within a renewal period, and however
    # slow each path is below D, the owner renews after the reset and before the challenger's RESERVE.
    assert T + 3 * D < W
    assert single_challenges(W, owner_path_ms, challenger_path_ms) == []


def test_without_it_a_slow_owner_path_loses_to_a_single_challenger() -> None:
    wait = T + D // 2  # W > T, but not > T + the owner's I/O time
    assert single_challenges(wait, D - 2, D - 2) != []


def test_two_challengers_can_unseat_an_owner_that_renews_in_time() -> None:
    # W > T + jitter holds (jitter 0 here), node 0 is never paused, and still: node 2's reset lands
    # just after node 0's renewal and just before node 1's RESERVE, so node 1 finds the disk free.
    pump = owned_by_node0()
    pump.at(20_000, 1, "arbitrate")  # RESERVE runs at 30_001
    pump.at(28_500, 2, "arbitrate")  # reset runs at 28_501, after node 0's renewal at 28_007
    pump.run_until(45_000)
    assert max(t for t in pump.device_runs("serve", 0) if t < 28_501) == OWNER_SINCE + 6 * (T + LATENCY)
    assert pump.when(1, "won") == 30_001
    fenced_at = pump.when(0, "lost_quorum")
    assert 0 < fenced_at - 30_001 <= T + 2 * LATENCY  # the stale owner learns at its next renewal
    assert pump.when(2, "lost_quorum") == 28_500 + W + LATENCY  # node 1 defended against node 2
    assert pump.states() == ["Lost", "Defending", "Lost"]


def test_a_stalled_path_makes_the_owner_fence_itself_after_the_reserve_timeout() -> None:
    pump = owned_by_node0()
    pump.clock.call_at(20_000, lambda: pump.device.stall(5_000, node=0))
    pump.run_until(40_000)
    issued = OWNER_SINCE + 4 * (T + LATENCY) - LATENCY  # the first renewal sent after the stall began
    assert pump.when(0, "lost_quorum") == issued + D
    assert pump.device.holder == 0  # the late RESERVE still ran: the disk stays reserved until a reset
    pump.at(41_000, 1, "arbitrate")
    pump.run_until(60_000)
    assert pump.states()[:2] == ["Lost", "Defending"] and pump.device.holder == 1


def test_a_failed_device_fences_the_owner_and_refuses_challengers_until_repaired() -> None:
    pump = owned_by_node0()
    pump.clock.call_at(12_000, pump.device.crash)
    pump.at(12_500, 1, "arbitrate")
    pump.run_until(30_000)
    assert pump.when(0, "lost_quorum") == OWNER_SINCE + T + LATENCY
    assert pump.reports_of(1) == ["lost_quorum"]
    pump.clock.call_at(31_000, pump.device.repair)
    pump.at(32_000, 2, "arbitrate")
    pump.run_until(50_000)
    assert pump.states() == ["Lost", "Lost", "Defending"] and pump.device.holder == 2


def test_a_crashed_owner_keeps_the_reservation_until_a_challenger_resets_it() -> None:
    pump = owned_by_node0()
    pump.at(12_000, 0, "crash")
    pump.run_until(20_000)
    assert pump.device.holder == 0 and pump.states()[0] == "Idle"
    pump.at(20_000, 1, "arbitrate")
    pump.run_until(40_000)
    assert pump.when(1, "won") == 20_000 + W + LATENCY


def test_a_scenario_is_the_same_run_every_time() -> None:
    def run() -> list[Any]:
        pump = owned_by_node0()
        pump.pause(0, start=20_000, ms=15_000)
        pump.at(20_000, 1, "arbitrate")
        pump.at(21_000, 2, "arbitrate")
        pump.run_until(60_000)
        return [pump.reports, pump.trace]

    assert run() == run()


def test_the_device_refuses_commands_it_does_not_know() -> None:
    pump = Pump()
    with pytest.raises(ValueError, match="reserve, release, reset"):
        pump.device.command(0, "format")
    with pytest.raises(ValueError, match="on behalf of node 2"):
        pump.device.command(0, "reserve", {"node": 2})
    with pytest.raises(ValueError, match=r"0\.\.2"):
        pump.device.command(3, "reserve")


# --- generated property tests ---------------------------------------------------------------------


def reservation_records(n: int) -> st.SearchStrategy[Record]:
    return st.just(make_reservation_spec(n).record())


def arbitration_records(n: int) -> st.SearchStrategy[Record]:
    spec = make_arbitration_spec(n)
    return st.builds(lambda me, t, w, d: spec.record(me=me, renew_period_ms=t, challenge_wait_ms=w,
                                                     reserve_timeout_ms=d),
                     st.integers(0, n - 1), st.integers(1, 10), st.integers(1, 30), st.integers(1, 5))


def _case(spec: Spec, records: st.SearchStrategy[Record]) -> Any:
    case = machine_test(spec, records).TestCase
    case.settings = settings()  # the loaded profile
    return case


TestReservation = _case(make_reservation_spec(3), reservation_records(3))
TestArbitration = _case(make_arbitration_spec(3), arbitration_records(3))


@pytest.mark.parametrize("spec", [make_reservation_spec(3), make_arbitration_spec(3)], ids=lambda s: s.name)
def test_random_walks_reach_every_state(spec: Spec) -> None:
    initial = (lambda rng: spec.record()) if spec.name == "reservation" else (
        lambda rng: spec.record(me=rng.randrange(3)))
    visits = random_walks(spec, initial, walks=100, steps=30, seed=1)
    assert all(visits.values()), visits


# --- the composed proof ------------------------------------------------------------------------------


def composed(arb_spec: Spec | None = None, dev_spec: Spec | None = None) -> dict[str, Any]:
    from wolfpack.proofs.arbitration_model import build_arbitration_model
    from wolfpack.proofs.run import check_model

    model = build_arbitration_model(arb_spec or make_arbitration_spec(3), dev_spec or make_reservation_spec(3), 3)
    return {r.prop: r for r in check_model(model)}


def test_the_composed_models_are_proved_for_all_depths_and_show_two_owners_at_once() -> None:
    from wolfpack.proofs.arbitration_model import arbitration_models
    from wolfpack.proofs.run import check_model

    models = arbitration_models()
    assert [m.name for m in models] == ["quorum_disk[n=2]", "quorum_disk[n=3]", "quorum_disk[n=4]"]
    for model in models:
        results = {r.prop: r for r in check_model(model)}
        for prop in ("owner_holds_or_is_told_at_next_command", "one_owner_without_attention",
                     "challenger_never_holds", "well_formed"):
            assert results[prop].result == "proved", (model.name, prop, results[prop].detail)
            assert results[prop].method.startswith(("inductive", "k-induction", "spacer")), results[prop].method
        reach = results["reachability"]
        assert reach.result == "proved" and "two_owners_at_once@" in reach.detail and "stale_owner@" in reach.detail


def _mutate(spec: Spec, trigger: str, source: str, **changes: Any) -> Spec:
    rows = tuple(dataclasses.replace(row, **changes) if row.trigger == trigger and source in row.source else row
                 for row in spec.transitions)
    return dataclasses.replace(spec, transitions=rows)


def test_an_owner_that_ignores_a_conflicting_renewal_is_caught() -> None:
    mutant = _mutate(make_arbitration_spec(3), "reserve_conflict", "Renewing", dest="Defending", effects=())
    results = composed(arb_spec=mutant)
    broken = results["owner_holds_or_is_told_at_next_command"]
    assert broken.result == "FAILED" and broken.run is not None
    assert "reserve_conflict" in broken.run.text()


def test_a_reset_that_raises_no_unit_attention_is_caught() -> None:
    dev = make_reservation_spec(3)
    mutant = _mutate(dev, "reset", "Online",
                     update=lambda r, e: {"holder": reservation.FREE,
                                          "pending": Store(r.pending, e.node, False)})
    results = composed(dev_spec=mutant)
    assert results["owner_holds_or_is_told_at_next_command"].result == "FAILED"


def test_a_node_still_waiting_for_its_answer_after_a_release_is_refused_by_the_model() -> None:
    from wolfpack.proofs.arbitration_model import build_arbitration_model

    mutant = _mutate(make_arbitration_spec(3), "release", "Renewing", dest="Renewing")
    with pytest.raises(SpecError, match="would drop those answers"):
        build_arbitration_model(mutant, make_reservation_spec(3), 3)


def test_the_specs_have_their_documented_names() -> None:
    assert arbitration.SPEC.name == "arbitration" and reservation.SPEC.name == "reservation"
