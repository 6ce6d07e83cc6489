"""Heartbeats: a timer thread (C extension, with a pure-Python twin) that sends
and receives authenticated UDP heartbeats and signals suspicions to the loop.

``HeartbeatTimer`` is the C implementation (``CHeartbeatTimer``) when the
extension ``_hbtimer`` was built, else the pure-Python twin
(``PyHeartbeatTimer``); set ``WOLFPACK_HEARTBEAT=python`` to choose the twin.
Both have the same API and pass the same tests::

    timer = HeartbeatTimer(node_id=1, key=cluster_key,
                           networks=[("10.0.1.1", 3343), ("10.0.2.1", 3343)],
                           peers={2: [("10.0.1.2", 3343), ("10.0.2.2", 3343)]})
    timer.start()
    loop.add_reader(timer.fileno(), lambda: handle(timer.read_events()))
    ...
    timer.close()

Defaults: a heartbeat every 100 ms on every network; a peer is suspect once
no valid heartbeat came from it on any network for 5 periods.
"""

from __future__ import annotations

import os

from wolfpack.runtime.heartbeat._timer import (
    DEFAULT_MISSED_THRESHOLD,
    DEFAULT_PERIOD_MS,
    BaseHeartbeatTimer,
    CHeartbeatTimer,
    PyHeartbeatTimer,
)

IMPLEMENTATION_VARIABLE = "WOLFPACK_HEARTBEAT"

HeartbeatTimer: type[BaseHeartbeatTimer]
if CHeartbeatTimer is None or os.environ.get(IMPLEMENTATION_VARIABLE) == "python":
    HeartbeatTimer = PyHeartbeatTimer
else:
    HeartbeatTimer = CHeartbeatTimer

__all__ = [
    "DEFAULT_MISSED_THRESHOLD",
    "DEFAULT_PERIOD_MS",
    "IMPLEMENTATION_VARIABLE",
    "BaseHeartbeatTimer",
    "CHeartbeatTimer",
    "HeartbeatTimer",
    "PyHeartbeatTimer",
]
