"""The message-level regroup model (proofs/regroup_model.py): a bug seeded into a copy of the membership spec
is found by bounded model checking, its run is legal for the live machines, and the story written from it,
run in the simulator with the same copy, reaches a state that breaks the same property; with the real spec
the story runs clean.

What the simulator check shows, precisely: after every step of a membership machine the model's own property
functions are evaluated on the simulated nodes' records (a node that is down counts as crashed) and on the
history of the installs the simulated nodes reported; the test asserts that the property the solver found
broken is broken there too.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any

import pytest

import wolfpack.spec.membership as membership_module
import wolfpack.spec.quorum as quorum_module
from wolfpack.proofs.model import Property, View
from wolfpack.proofs.network import NET, NetworkModel, node
from wolfpack.proofs.network_run import replay_network_run, restart_record
from wolfpack.proofs.regroup_model import DURABLE, build_regroup_model, check_regroup, properties
from wolfpack.proofs.results import FAILED, Result
from wolfpack.runtime.sim import world as world_module
from wolfpack.runtime.sim.scenario import Runner, ScenarioError, parse
from wolfpack.spec import quorum
from wolfpack.spec.core import Record, Spec
from wolfpack.spec.membership import make_membership_spec
from wolfpack.spec.quorum import QuorumKind


# --- two seeded bugs, each in a copy of the spec ------------------------------------------------------------
def acks_twice(n: int) -> Spec:
    """A node acknowledges a second proposal in a round it already acknowledged (the acked check dropped)."""
    spec = make_membership_spec(n)
    rows = list(spec.transitions)
    (i,) = [i for i, t in enumerate(rows) if t.trigger == "install" and t.guard_name == "accept_includes_me"]
    guard = rows[i].guard
    assert guard is not None
    rows[i] = dataclasses.replace(rows[i], guard=lambda r, e: guard(r.replace(acked=0), e))
    return dataclasses.replace(spec, transitions=tuple(rows))


def half_is_a_majority(n: int) -> Spec:
    """A copy of spec/membership.py built on a copy of spec/quorum.py whose majority is half the votes."""
    rule = types.ModuleType("quorum_copy")
    exec(compile(Path(quorum_module.__file__).read_text(), quorum_module.__file__, "exec"), rule.__dict__)
    rule.has_majority = lambda votes, total: 2 * votes >= total
    copy = types.ModuleType("membership_copy")
    exec(compile(Path(membership_module.__file__).read_text(), membership_module.__file__, "exec"), copy.__dict__)
    copy.quorum = rule
    spec: Spec = copy.make_membership_spec(n)
    return spec


# --- the simulator against the model's properties --------------------------------------------------------------
class Monitor:
    """Evaluates the regroup model's properties on the simulated nodes after every membership step."""

    def __init__(self, runner: Runner, net: NetworkModel) -> None:
        self.runner, self.net = runner, net
        self.first: dict[int, tuple[tuple[bool, ...], bool]] = {}
        self.broken: dict[str, int] = {}  # property -> first time (ms)
        runner.world.cluster.step_hooks.append(self.step)

    def step(self, sim: Any, machine: str, entry: dict[str, Any]) -> None:
        if machine != "membership":
            return
        rec = sim.machines["membership"].record
        if any(e.get("name") == "installed" for e in entry.get("effects", [])):
            holder = tuple(k == self.runner.world.disk.holder for k in range(self.net.n))
            self.first.setdefault(rec.epoch, (rec.members, bool(quorum.survives(
                rec.kind, rec.members, rec.configured, holder))))
        for prop in self.properties():
            if not prop.holds(self.view()) and prop.name not in self.broken:
                self.broken[prop.name] = self.runner.world.cluster.clock.now

    def properties(self) -> tuple[Property, ...]:
        return properties(self.net.n, max([*self.first, 1]))

    def view(self) -> View:
        n, epochs = self.net.n, max([*self.first, 1])
        none = ((False,) * n, False)
        ghost = Record({"used": tuple(e + 1 in self.first for e in range(epochs)),
                        "set": tuple(self.first.get(e + 1, none)[0][k] for e in range(epochs) for k in range(n)),
                        "quorate": tuple(self.first.get(e + 1, none)[1] for e in range(epochs))})
        records = {}
        for k, sim in self.runner.world.cluster.nodes.items():
            rec = sim.machines["membership"].record
            records[node(k)] = rec if sim.up else restart_record(self.net, rec)
        return View({**records, NET: ghost}, {**{name: "membership" for name in records}, NET: "network"})


def simulate(story: str, tmp_path: Path, spec: Spec, net: NetworkModel,
             monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, int], str]:
    path = tmp_path / "counterexample.sim"
    path.write_text(story)
    with monkeypatch.context() as patch:
        patch.setattr(world_module, "make_membership_spec", lambda n: spec)
        runner = Runner(parse(path))
        monitor = Monitor(runner, net)
        try:
            runner.run()
            outcome = "passed"
        except ScenarioError as exc:
            outcome = str(exc)
    return monitor.broken, outcome


def failed(results: list[Result], prop: str) -> Result:
    (row,) = [r for r in results if r.prop == prop]
    assert row.result == FAILED, row
    assert row.run is not None and row.story is not None
    return row


# --- the tests -------------------------------------------------------------------------------------------------
def test_a_second_acknowledgement_in_a_round_installs_two_memberships_in_the_simulator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = acks_twice(3)
    model, net = build_regroup_model(mutant, 3, QuorumKind.MNS, depth=6)
    row = failed(check_regroup(model, net), "stable_nodes_agree")
    assert replay_network_run(row.run, net).problems == []  # every step is legal for the live machines
    assert row.run is not None and len(row.run.steps) == 6
    assert "partition 0|1" in row.story and "boot 2" in row.story
    broken, outcome = simulate(row.story, tmp_path, mutant, net, monkeypatch)
    assert "stable_nodes_agree" in broken and "one_membership_per_epoch" in broken, (broken, outcome)
    assert "runs on nodes" in outcome  # the simulator's own check stops it: a group on two nodes
    clean, outcome = simulate(row.story, tmp_path, make_membership_spec(3), net, monkeypatch)
    assert clean == {} and outcome == "passed"


def test_half_the_votes_commit_a_minority_in_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = half_is_a_majority(4)
    model, net = build_regroup_model(mutant, 4, QuorumKind.MNS, depth=5)
    row = failed(check_regroup(model, net), "committed_sets_have_quorum")
    assert replay_network_run(row.run, net).problems == []
    broken, outcome = simulate(row.story, tmp_path, mutant, net, monkeypatch)
    assert "committed_sets_have_quorum" in broken, (broken, outcome)
    clean, outcome = simulate(row.story, tmp_path, make_membership_spec(4), net, monkeypatch)
    assert clean == {} and outcome == "passed"


def test_a_crash_keeps_what_the_simulator_keeps_on_disk() -> None:
    assert world_module.DURABLE["membership"] == DURABLE
