"""Done-means 2: a copy of a spec with one guard removed or weakened fails ``wolfpack verify``
with a counterexample run a person can read, and the run replays through the live machine."""

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wolfpack.cli import cli
from wolfpack.proofs import models
from wolfpack.proofs.model import Model, single
from wolfpack.proofs.results import FAILED, Result
from wolfpack.proofs.run import check_model
from wolfpack.proofs.trace import record_from_dict, replay
from wolfpack.spec import node, resource
from wolfpack.spec.core import Spec, Transition
from wolfpack.spec.group import make_group_spec


def mutate(spec: Spec, pick: Callable[[Transition], bool], **changes: Any) -> Spec:
    """A copy of ``spec`` with the one row ``pick`` selects changed."""
    rows = list(spec.transitions)
    (index,) = [i for i, t in enumerate(rows) if pick(t)]
    rows[index] = dataclasses.replace(rows[index], **changes)
    return dataclasses.replace(spec, transitions=tuple(rows))


def failed(results: list[Result], prop: str) -> Result:
    (row,) = [r for r in results if r.prop == prop]
    assert row.result == FAILED, row
    return row


def assert_readable_run(row: Result, spec: Spec, steps: list[str]) -> None:
    """The run names the invariant, lists numbered steps from the initial state, and is legal."""
    assert row.run is not None
    text = row.run.text()
    assert f"violated: {row.prop}" in text
    assert "0. initial" in text
    for number, event in enumerate(steps, start=1):
        assert f"{number}. {event}" in text, text
    data = json.loads(json.dumps(row.run.as_dict()))
    assert replay(data, {spec.name: spec}) == []
    last = record_from_dict(spec, data["steps"][-1]["state"][spec.name])
    if row.prop != "well_formed":
        (inv,) = [i for i in spec.invariants if i.name == row.prop]
        assert not inv.holds(last)  # the live machine really reaches a state that breaks it


# --- resource: restart without asking the policy ------------------------------------------
RESOURCE_NO_POLICY = mutate(resource.SPEC, lambda t: t.trigger == "online_failed" and t.dest == "Restarting",
                            guard=None)


def test_resource_restarting_without_the_policy_breaks_the_restart_threshold() -> None:
    results = check_model(single(RESOURCE_NO_POLICY))
    assert "online_failed in OnlinePending" in failed(results, "determinism").detail
    row = failed(results, "restarts_within_threshold")
    assert_readable_run(row, RESOURCE_NO_POLICY, ["online()", "online_failed()"])
    assert "restart_threshold=0" in row.run.text()


# --- group: failover without the threshold; a move to the node it is on ------------------
GROUP = make_group_spec(2)
GROUP_NO_THRESHOLD = mutate(GROUP, lambda t: t.trigger == "failover_requested" and t.guard_name == "failover_allowed",
                            guard=None)
GROUP_MOVE_ANYWHERE = mutate(GROUP, lambda t: t.trigger == "move" and t.guard_name == "other_node", guard=None)


def test_group_failover_past_the_threshold_is_caught() -> None:
    results = check_model(single(GROUP_NO_THRESHOLD))
    row = failed(results, "failovers_within_threshold")
    assert_readable_run(row, GROUP_NO_THRESHOLD, ["online(node=0)", "failover_requested()"])


def test_group_moving_to_its_own_node_is_caught() -> None:
    results = check_model(single(GROUP_MOVE_ANYWHERE))
    assert "move in Online" in failed(results, "determinism").detail
    row = failed(results, "move_has_target")
    assert_readable_run(row, GROUP_MOVE_ANYWHERE, ["online(node=0)", "move(node=0)"])


# --- node: release a group it does not own ----------------------------------------------
NODE_RELEASES_NOTHING = mutate(node.SPEC, lambda t: t.guard_name == "owns_groups", guard=None)


def test_node_releasing_a_group_it_does_not_own_leaves_its_bounds() -> None:
    results = check_model(single(NODE_RELEASES_NOTHING))
    assert "release_group in Online" in failed(results, "determinism").detail
    row = failed(results, "well_formed")
    assert_readable_run(row, NODE_RELEASES_NOTHING, ["form()", "release_group()"])
    assert "groups must be >= 0, got -1" in row.run.text()


# --- ownership: a node that halts without telling its group ----------------------------------
def forgetful_ownership() -> Model:
    model = models.ownership_model(make_group_spec(1))
    syncs = tuple(s for s in model.syncs if s.trigger != "owner_halted")
    return dataclasses.replace(model, syncs=syncs)


def test_ownership_without_the_halt_synchronisation_loses_the_owner() -> None:
    model = forgetful_ownership()
    results = check_model(model)
    row = failed(results, "active_owner_is_member")
    assert row.run is not None
    text = row.run.text()
    assert "group.online(node=" in text and ".accept_group()" in text
    assert "violated: active_owner_is_member" in text
    specs = {c.name: c.spec for c in model.components}
    assert replay(row.run.as_dict(), specs) == []


# --- the command line ----------------------------------------------------------------------
@pytest.fixture
def mutated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "registry", lambda: {
        "resource": (single(RESOURCE_NO_POLICY),), "group": (single(GROUP_NO_THRESHOLD, name="group[n=2]"),),
        "node": (single(NODE_RELEASES_NOTHING),), "ownership": (forgetful_ownership(),)})


@pytest.mark.usefixtures("mutated_registry")
def test_verify_exits_1_and_prints_and_saves_the_counterexample(tmp_path: Path) -> None:
    saved = tmp_path / "cex.json"
    result = CliRunner().invoke(cli, ["verify", "resource", "--save-counterexample", str(saved)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "FAILED resource restarts_within_threshold: violated after 2 step(s)" in out
    assert "1. online()" in out and "2. online_failed()" in out and "-> Restarting" in out
    runs = json.loads(saved.read_text())
    assert any("restarts_within_threshold" in r["violated"] for r in runs)
    for run in runs:
        assert replay(run, {"resource": RESOURCE_NO_POLICY}) == []


@pytest.mark.usefixtures("mutated_registry")
@pytest.mark.parametrize("machine", ["group", "node", "ownership"])
def test_verify_fails_for_every_mutated_machine(machine: str) -> None:
    result = CliRunner().invoke(cli, ["verify", machine, "--format", "json"])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False
    runs = [r["counterexample"] for r in document["results"] if r["counterexample"]]
    assert runs and all(run["steps"] for run in runs)
