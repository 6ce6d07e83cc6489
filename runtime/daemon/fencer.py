"""The daemon's side of STONITH: it carries out the failover manager's ``fence_nodes`` with the cluster's fence
devices, and feeds the outcome back (``fence_succeeded`` / ``fence_failed``).

The failover manager (``spec/failover.py``) decides *whom* to fence and holds a
lost owner's groups until the fence is done; this runs the agents
(:func:`wolfpack.runtime.fencing.fence_node_async`, the ClusterLabs interface)
in tasks of their own, so a slow BMC never blocks the node's loop.  One fence
per node at a time: a second request while one runs waits for its outcome.

Every outcome is kept per node for ``wolfpack fence list`` and ``/v1/local``,
and a failed fence is logged with what to do about it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from wolfpack.runtime.daemon import catalog
from wolfpack.runtime.daemon.config import NodeConfig
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.fencing import FenceSummary, fence_node_async
from wolfpack.spec import defaults as d

log = logging.getLogger("wolfpack.fencing")


@dataclass
class FenceState:
    """The last fence of one node, as this node saw it."""

    node: int
    state: str  # "fencing", "fenced", "failed", "confirmed" (the administrator said it is off)
    action: str
    device: str | None = None
    reason: str = ""
    started: float = 0.0  # wall-clock seconds
    took_ms: float | None = None


class Fencer:
    def __init__(self, hive: Hive, settings: Callable[[], NodeConfig], post: Callable[[Callable[[], None]], None],
                 feed: Callable[..., Any], spawn: Callable[[Any], None]) -> None:
        self.hive = hive
        self.settings = settings  # the node's configuration with the cluster-wide values, now
        self.post = post
        self.feed = feed
        self.spawn = spawn
        self.nodes: dict[int, FenceState] = {}
        self._running: set[int] = set()

    def fence(self, nodes: list[int]) -> None:
        """The failover manager's ``fence_nodes`` (in the node's task): start a fence for each node, once."""
        for node in nodes:
            if node in self._running:
                log.info("node %d: a fence is already running; its outcome answers this request too", node)
                continue
            self._running.add(node)
            self.spawn(self._fence(node))

    async def _fence(self, node: int) -> None:
        config = self.settings()
        action = str(config["cluster.fence_action"])
        devices = catalog.fence_devices(self.hive)
        state = FenceState(node, "fencing", action, started=time.time())
        self.nodes[node] = state
        log.warning("fencing node %d (%s) before its groups move; devices: %s", node, action,
                    ", ".join(d.name for d in devices if d.covers(node)) or "none covers it")
        began = time.monotonic()
        try:
            summary = await fence_node_async(devices, node, action,
                                             timeout_s=int(config["cluster.fence_timeout_ms"]) / 1000)
        except Exception as exc:  # a bug or an OS error: it counts as a failed fence, never as a success
            log.exception("node %d: the fence could not be run", node)
            summary = FenceSummary(str(node), action, "failed", None, (), f"the fence could not be run: {exc}")
        finally:
            self._running.discard(node)
        state.took_ms = round((time.monotonic() - began) * 1000, 1)
        state.device = summary.device
        state.reason = summary.describe()
        if summary.fenced:
            state.state = "fenced"
            log.warning("node %d fenced by %s in %.0f ms: its groups may move", node, summary.device, state.took_ms)
            self.post(lambda: self.feed("failover", "fence_succeeded", node=node))
            return
        state.state = "failed"
        log.error("FENCE FAILED: %s. Groups %s stay offline while node %d may still run them. The cluster tries "
                  "again every %g s; check the devices (`wolfpack fence list`, `wolfpack fence test DEVICE`), or once "
                  "you have made sure node %d is powered off, run `wolfpack fence confirm %d`", summary.describe(),
                  ", ".join(self._groups_of(node)) or "(none)", node, d.FENCE_RETRY_MS / 1000, node, node)
        self.post(lambda: self.feed("failover", "fence_failed", node=node))

    def confirm(self, node: int) -> None:
        """The administrator confirms ``node`` is off (in the node's task): its groups may move."""
        self.nodes[node] = FenceState(node, "confirmed", "manual", reason="the administrator confirmed the node is "
                                      "off (wolfpack fence confirm)", started=time.time())
        log.warning("node %d: the administrator confirmed it is off; its groups may move", node)
        self.feed("failover", "fence_succeeded", node=node)

    def _groups_of(self, node: int) -> list[str]:
        owners = catalog.owners(self.hive)
        return sorted(g.name for g in catalog.by_slot(self.hive).values() if owners.get(g.slot) == node)

    def state(self) -> dict[str, Any]:
        return {str(k): asdict(v) for k, v in sorted(self.nodes.items())}
