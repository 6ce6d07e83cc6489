"""Membership, quorum and ownership composed (proofs/cluster_model.py): proved for all depths, not vacuous,
and each assumption it rests on is needed: a node left out that keeps running, or a quorum rule that lets any
node survive, breaks a property."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import pytest

import wolfpack.spec.quorum as quorum_module
from wolfpack.proofs import cluster_model
from wolfpack.proofs.cluster_model import build_cluster_model, check_cluster
from wolfpack.proofs.results import FAILED, PROVED
from wolfpack.spec import node
from wolfpack.spec.core import Effect
from wolfpack.spec.group import make_group_spec


def test_the_composed_model_is_proved_for_all_depths_and_reaches_its_witnesses() -> None:
    results = check_cluster()
    assert all(r.result == PROVED for r in results), [r for r in results if r.result != PROVED]
    by_name = {r.prop: r for r in results}
    for prop in ("active_on_at_most_one_node", "active_owner_in_latest_membership",
                 "one_membership_per_epoch"):
        assert by_name[prop].method in ("inductive", "spacer") or by_name[prop].method.startswith("k-induction")
    reached = by_name["reachability"].detail
    assert "active_again_after_its_owner_halted@" in reached


def test_a_node_left_out_that_keeps_its_resources_runs_the_group_outside_the_membership() -> None:
    rows = list(node.SPEC.transitions)
    (i,) = [i for i, t in enumerate(rows) if t.trigger == "regroup_excluded"]
    rows[i] = dataclasses.replace(rows[i], effects=(Effect("report", "excluded"),))  # no stop_all_resources
    keeps_running = dataclasses.replace(node.SPEC, transitions=tuple(rows))
    model = build_cluster_model(make_group_spec(1), keeps_running)
    results = check_cluster(dataclasses.replace(model, bmc_bound=6, properties=tuple(
        p for p in model.properties if p.name == "active_owner_in_latest_membership")))
    (row,) = [r for r in results if r.prop == "active_owner_in_latest_membership"]
    assert row.result == FAILED and row.run is not None
    assert "cluster.regroup(" in row.run.text() and "regroup_excluded()" in row.run.text()


def test_a_quorum_rule_that_lets_one_node_survive_reuses_an_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = types.ModuleType("quorum_copy")
    exec(compile(Path(quorum_module.__file__).read_text(), quorum_module.__file__, "exec"), rule.__dict__)
    rule.has_majority = lambda votes, total: votes >= 1
    monkeypatch.setattr(cluster_model, "quorum", rule)
    model = build_cluster_model(make_group_spec(1), node.SPEC)
    results = check_cluster(dataclasses.replace(model, bmc_bound=6, properties=tuple(
        p for p in model.properties if p.name == "one_membership_per_epoch")))
    (row,) = [r for r in results if r.prop == "one_membership_per_epoch"]
    assert row.result == FAILED and row.run is not None and "kind=0" in row.run.text()


def test_without_the_epochs_recorded_on_the_disk_an_epoch_is_committed_twice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under disk quorum a node that wins the disk after every node of the latest membership halted would form at
    its own next round, an epoch already committed (the story disk_epochs_never_repeat.sim shows what that cost)."""
    monkeypatch.setattr(cluster_model.ClusterSystem, "disk_records_epochs", False)
    model = cluster_model.cluster_model()
    results = check_cluster(dataclasses.replace(model, bmc_bound=6, properties=tuple(
        p for p in model.properties if p.name == "one_membership_per_epoch")))
    (row,) = [r for r in results if r.prop == "one_membership_per_epoch"]
    assert row.result == FAILED and row.run is not None and "kind=1" in row.run.text()
