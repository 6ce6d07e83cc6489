"""Integration tests: real daemons in network namespaces (root only; CI runs as root).

Under ``CI=true`` a missing privilege is a failure, not a skip: these tests
are what shows the runtime works.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from netns import Network

from wolfpack.runtime.daemon import trace
from wolfpack.runtime.daemon.lab import LabCluster

#: timings for the tests: the defaults, except the monitors' polling (LooksAlive every 500 ms)
SETTINGS = {"monitor.looks_alive_ms": 500, "monitor.is_alive_ms": 5000}


def _can_use_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    return None


@pytest.fixture
def network() -> Iterator[Network]:
    why = _can_use_namespaces()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"integration tests cannot run in CI: {why}")
        pytest.skip(why)
    net = Network(3)
    try:
        yield net
    finally:
        net.close()


@contextlib.contextmanager
def lab_cluster(network: Network, root: Path, settings: Mapping[str, Any]) -> Iterator[LabCluster]:
    """Three daemons, one per namespace, not yet started; at the end every node's transition log must replay."""
    cluster = LabCluster(root, [network.address(i) for i in range(3)], loopback=False,
                         prefixes=[network.prefix(i) for i in range(3)], settings=settings)
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)
    for i in range(3):
        path = cluster.trace_path(i)
        if path.exists():
            steps, problems = trace.replay(trace.read(path))
            assert not problems, f"node {i}'s transition log is not a legal run of the machines:\n" + "\n".join(
                problems[:20])
            assert steps > 0


@pytest.fixture
def lab(network: Network, tmp_path: Path) -> Iterator[LabCluster]:
    with lab_cluster(network, tmp_path / "lab", SETTINGS) as cluster:
        yield cluster
