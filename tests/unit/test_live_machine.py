"""The step API of machines built from the specs."""

import pytest

from wolfpack.errors import InvalidEvent, SpecError
from wolfpack.machines import group_machine, node_machine, resource_machine
from wolfpack.spec import resource
from wolfpack.spec.defaults import RestartAction


def labels(effects):
    return [f"{e.kind}:{e.name}" for e in effects]


def test_resource_online_calls_the_entry_point_under_pending_timeout() -> None:
    m = resource_machine(pending_timeout_ms=1234)
    effects = m.step("online")
    assert m.state == "OnlinePending"
    assert labels(effects) == ["call:Online", "start_timer:pending_timeout"]
    assert effects[1].args == {"ms": 1234}
    assert m.last is not None and m.last.source == "Offline" and m.last.dest == "OnlinePending"


def test_looks_alive_failure_runs_is_alive_at_once() -> None:
    m = resource_machine()
    m.step("online")
    m.step("online_succeeded")
    assert labels(m.step("looks_alive_failed")) == ["call:IsAlive"]
    assert m.state == "Online"


def test_dont_restart_goes_straight_to_failed_without_group_failover() -> None:
    m = resource_machine(restart_action=RestartAction.DONT_RESTART)
    m.step("online")
    m.step("online_succeeded")
    effects = labels(m.step("is_alive_failed"))
    assert m.state == "Failed"
    assert "call:Terminate" in effects and "report:group_failover_requested" not in effects


def test_stale_report_is_ignored_and_recorded() -> None:
    m = resource_machine()
    assert m.step("online_succeeded") == []
    assert m.state == "Offline"
    assert m.last is not None and m.last.outcome == "ignored"


def test_rejected_event_raises_with_reason() -> None:
    m = resource_machine()
    m.step("online")
    m.step("online_succeeded")
    m.step("offline")
    with pytest.raises(InvalidEvent, match="going offline"):
        m.step("online")


def test_unknown_event_and_bad_arguments() -> None:
    m = resource_machine()
    with pytest.raises(InvalidEvent, match="no event 'explode'"):
        m.step("explode")
    g = group_machine(["a"], nodes=2)
    with pytest.raises(InvalidEvent, match=r"node must be an integer in 0\.\.1"):
        g.step("online", node=5)
    with pytest.raises(InvalidEvent, match="takes arguments"):
        g.step("online")
    with pytest.raises(InvalidEvent, match="must be an integer"):
        g.step("online", node=True)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(SpecError, match="restart_threshold must be >= 0"):
        resource_machine(restart_threshold=-1)
    with pytest.raises(SpecError, match="no field"):
        resource_machine(bogus=1)


def test_may_reports_enabled_transitions() -> None:
    m = resource_machine()
    assert m.may("online") and not m.may("offline")


def test_node_epochs_only_grow() -> None:
    n = node_machine()
    n.step("form")
    n.step("regroup_survived", epoch=5)
    n.step("regroup_survived", epoch=3)
    assert n.record.epoch == 5


def test_every_state_listed_has_a_doc() -> None:
    assert set(resource.SPEC.state_docs) == set(resource.SPEC.states)
