"""The generated tests can fail: each machine with one rule broken must be caught.

Every mutant is a copy of a real spec with one row changed through
``dataclasses.replace`` (spec/ is untouched).  The reference interpreter
reads the mutant too, so only the invariants can notice; each test requires
the hypothesis run to fail naming the invariant the broken rule violates.
The unbroken specs pass a larger budget in ``test_machines.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import domains
import pytest
from generated import machine_test
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from wolfpack.spec import node, resource
from wolfpack.spec.core import Spec, Transition
from wolfpack.spec.defaults import RestartAction
from wolfpack.spec.group import OFFP, ResState, make_group_spec

#: A small budget: each mutant is found within it (derandomized, so always the same run).
HUNT = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.generate, Phase.target, Phase.shrink],
    max_examples=300,
    stateful_step_count=30,
)


def mutant(spec: Spec, change: Callable[[Transition], Transition | None]) -> Spec:
    """``spec`` with every row for which ``change`` returns a new row replaced."""
    rows = [change(t) or t for t in spec.transitions]
    assert rows != list(spec.transitions), "the mutation matched no row; the spec changed, update this test"
    return dataclasses.replace(spec, transitions=tuple(rows))


def hunt(spec: Spec, domain: domains.Domain, invariant: str) -> None:
    machine = machine_test(spec, domains.records(spec, domain))
    with pytest.raises(AssertionError, match=f"invariant {invariant} violated"):
        run_state_machine_as_test(machine, settings=HUNT)


def test_a_restart_guard_that_ignores_the_threshold_is_caught() -> None:
    def restart_ignoring_threshold(r: Any, e: Any) -> Any:
        return r.restart_action != RestartAction.DONT_RESTART

    spec = mutant(resource.SPEC, lambda t: dataclasses.replace(t, guard=restart_ignoring_threshold)
                  if t.guard is resource.restart_allowed else None)
    hunt(spec, domains.RESOURCE, "restarts_within_threshold")


def test_an_offline_that_stops_dependencies_with_their_dependents_is_caught() -> None:
    n = 2

    def stop_everything_at_once(r: Any, e: Any) -> dict[str, Any]:
        # the broken rule: stop every running resource now, dependents or not
        return {"target": -1, "res": tuple(OFFP if s != ResState.OFFLINE else s for s in r.res)}

    spec = mutant(make_group_spec(n), lambda t: dataclasses.replace(t, update=stop_everything_at_once)
                  if t.trigger == "offline" and t.guard_name == "something_to_stop" else None)
    hunt(spec, domains.group(n), "dependency_order")


def test_a_leave_that_keeps_the_groups_is_caught() -> None:
    spec = mutant(node.SPEC, lambda t: dataclasses.replace(t, update=None) if t.trigger == "leave" else None)
    hunt(spec, domains.NODE, "non_member_owns_nothing")



def test_an_online_that_starts_everything_at_once_is_caught() -> None:
    n = 2

    def start_everything_at_once(r: Any, e: Any) -> dict[str, Any]:
        # the broken rule: start every resource now, dependencies online or not
        return {"owner": e.node, "res": (ResState.ONLINE_PENDING,) * n}

    spec = mutant(make_group_spec(n), lambda t: dataclasses.replace(t, update=start_everything_at_once)
                  if t.trigger == "online" else None)
    hunt(spec, domains.group(n), "started_after_dependencies")
