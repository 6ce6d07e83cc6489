"""The message-level regroup model (proofs/regroup_model.py): a bug seeded into a copy of the membership spec
is found by bounded model checking, its run is legal for the live machines, and the story `wolfpack verify
--stories` writes from it, run in the simulator with the same copy, reaches a state that breaks the same
property; with the real spec the story runs clean.

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
from click.testing import CliRunner

import wolfpack.spec.membership as membership_module
import wolfpack.spec.quorum as quorum_module
from wolfpack.cli import cli
from wolfpack.proofs import regroup_model as regroup
from wolfpack.proofs.model import Model, Property, View
from wolfpack.proofs.network import NET, NetworkModel, node
from wolfpack.proofs.network_run import replay_network_run, restart_record
from wolfpack.proofs.results import FAILED, Result
from wolfpack.runtime.node import layout
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


def only(model: Model, prop: str) -> Model:
    """The model checked for one property (and the lemmas), without witnesses: cheaper."""
    return dataclasses.replace(model, properties=tuple(p for p in model.properties if p.name == prop), witnesses=())


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
        return regroup.properties(self.net.n, max([*self.first, 1]))

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


def simulate(path: Path, spec: Spec, net: NetworkModel, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, int], str]:
    """Run a story with ``spec`` as every node's membership machine: the properties broken, and how it ended."""
    with monkeypatch.context() as patch:
        patch.setattr(layout, "make_membership_spec", lambda n: spec)  # the machines every simulated node runs
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
def test_verify_writes_a_story_that_installs_two_memberships_in_the_simulator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that acknowledges two proposals of one round: `wolfpack verify regroup --stories` exits 1 and
    writes the story; in the simulator nodes 0 and 1 install different memberships at epoch 1."""
    mutant = acks_twice(3)
    monkeypatch.setattr(regroup, "SIZES", ((3, QuorumKind.MNS),))
    monkeypatch.setattr(regroup, "regroup_model", lambda n, kind, depth: (
        only(regroup.build_regroup_model(mutant, n, kind, depth)[0], "stable_nodes_agree"),
        regroup.build_regroup_model(mutant, n, kind, depth)[1]))
    result = CliRunner().invoke(cli, ["verify", "regroup", "--depth", "6", "--stories", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "FAILED regroup[n=3,mns] stable_nodes_agree: violated after 6 step(s)" in result.output
    assert "as a simulator story" in result.output
    (story,) = tmp_path.glob("*.sim")
    text = story.read_text()
    assert "partition 0|1" in text and "boot 2" in text and "expect" in text
    _, net = regroup.build_regroup_model(mutant, 3)
    broken, outcome = simulate(story, mutant, net, monkeypatch)
    assert "stable_nodes_agree" in broken and "one_membership_per_epoch" in broken, (broken, outcome)
    # the simulator's own check stops it: the two memberships commit different owners as update 1, and their
    # groups' processes would start on two nodes (op_ms after the Online calls: the check counts processes)
    assert "invariant violated" in outcome and ("runs on nodes" in outcome or "applied different updates" in outcome)
    clean, outcome = simulate(story, make_membership_spec(3), net, monkeypatch)
    assert clean == {} and outcome == "passed"


def test_half_the_votes_commit_a_minority_in_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mutant = half_is_a_majority(4)
    model, net = regroup.build_regroup_model(mutant, 4, QuorumKind.MNS, depth=5)
    row = failed(regroup.check_regroup(only(model, "committed_sets_have_quorum"), net), "committed_sets_have_quorum")
    assert row.run is not None and row.story is not None
    replay = replay_network_run(row.run, net)
    assert replay.problems == [] and replay.differences == []  # the live machines take the same steps
    story = tmp_path / "minority.sim"
    story.write_text(row.story)
    broken, outcome = simulate(story, mutant, net, monkeypatch)
    assert "committed_sets_have_quorum" in broken, (broken, outcome)
    clean, outcome = simulate(story, make_membership_spec(4), net, monkeypatch)
    assert clean == {} and outcome == "passed"


def test_the_real_spec_has_no_violation_within_a_few_steps() -> None:
    model, net = regroup.build_regroup_model(make_membership_spec(3), 3, QuorumKind.MNS, depth=4)
    results = regroup.check_regroup(model, net)
    assert {r.result for r in results if r.prop != "reachability"} == {"bounded"}
    assert all(r.method == "bmc bound 4" and r.story is None for r in results)


def test_a_crash_keeps_what_the_simulator_keeps_on_disk() -> None:
    assert world_module.DURABLE["membership"] == regroup.DURABLE
