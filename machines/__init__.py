"""Live machines generated from ``wolfpack.spec`` with a pure step API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wolfpack.machines.live import LiveMachine, Step, effects_of
from wolfpack.spec import dependencies
from wolfpack.spec import node as node_spec
from wolfpack.spec import resource as resource_spec
from wolfpack.spec.defaults import FAILOVER_THRESHOLD_NODES_MINUS_ONE, failover_threshold
from wolfpack.spec.group import make_group_spec

__all__ = ["LiveMachine", "Step", "effects_of", "group_machine", "node_machine", "resource_machine"]


def resource_machine(**params: Any) -> LiveMachine:
    """A resource in Offline with the given policy parameters."""
    return LiveMachine(resource_spec.SPEC, **params)


def node_machine(**values: Any) -> LiveMachine:
    return LiveMachine(node_spec.SPEC, **values)


def group_machine(
    resources: Sequence[str], depends_on: Mapping[str, Sequence[str]] | None = None, **params: Any
) -> LiveMachine:
    """A group of the named resources; ``depends_on[r]`` lists what ``r`` needs.

    ``failover_threshold`` defaults to MSCS's "nodes - 1".  Raises
    :class:`~wolfpack.errors.DependencyError` for a cycle, a
    self-dependency or an unknown resource.
    """
    matrix = dependencies.matrix(resources, depends_on or {})
    if "failover_threshold" not in params:  # MSCS default: nodes - 1
        params["failover_threshold"] = failover_threshold(FAILOVER_THRESHOLD_NODES_MINUS_ONE, params.get("nodes", 2))
    return LiveMachine(make_group_spec(len(resources)), dep=matrix, **params)
