"""Fencing (STONITH): power a node off, or cut it from its disks, before its resources move.

:mod:`~wolfpack.runtime.fencing.agents` runs the standard fence agents (the
ClusterLabs ``fence-agents`` package, unchanged: ``fence_ipmilan``,
``fence_apc``, ``fence_scsi``...) and two of Wolfpack's own that speak the same
protocol: :mod:`~wolfpack.runtime.fencing.lab_agent` (``fence_wolfpack_lab``,
kills a lab node's network namespace) and
:mod:`~wolfpack.runtime.fencing.scsi_agent` (``fence_wolfpack_scsi``, SCSI-3
persistent-reservation fencing over the user-space iSCSI initiator).
"""

from wolfpack.runtime.fencing.agents import (
    AgentMetadata,
    AgentParameter,
    FenceDevice,
    FenceResult,
    FenceSummary,
    fence_node,
    fence_node_async,
    metadata,
    run_agent,
    run_agent_async,
)
from wolfpack.runtime.fencing.errors import AgentFailed, AgentNotFound, FenceConfigError, FenceFailed, NoFenceDevice

__all__ = [
    "AgentFailed",
    "AgentMetadata",
    "AgentNotFound",
    "AgentParameter",
    "FenceConfigError",
    "FenceDevice",
    "FenceFailed",
    "FenceResult",
    "FenceSummary",
    "NoFenceDevice",
    "fence_node",
    "fence_node_async",
    "metadata",
    "run_agent",
    "run_agent_async",
]
