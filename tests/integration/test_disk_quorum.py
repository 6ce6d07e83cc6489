"""Disk quorum with real daemons: three wolfpackd in network namespaces share one iSCSI LUN (tgtd on the test
network's switch) as the quorum disk, SCSI-3 arbitration, and a second LUN as a group's Physical Disk.

Every node's transition log is replayed through the machines at the end of each test (``conftest.lab_cluster``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SETTINGS, lab_cluster
from netns import Network, formed, start_formed

from wolfpack.hw import tgtd
from wolfpack.runtime.daemon.lab import LabCluster

pytestmark = pytest.mark.integration

#: the arbitration timings of these tests: T = 300 ms, W = 1.5 s, D = 200 ms (the obligations hold: T + jitter + 3D
#: = 1.1 s < W; the rounds outlast a challenge and a cut-off node halts before the take-over, 3 s each)
TIMING = {"timing.renew_period_ms": 300, "timing.challenge_wait_ms": 1500, "timing.reserve_timeout_ms": 200,
          "timing.disk_regroup_window_ms": 3000, "timing.disk_takeover_wait_ms": 3000}
PORT = 8080


@pytest.fixture
def target(network: Network, tmp_path: Path) -> Iterator[tgtd.Tgtd]:
    why = tgtd.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the disk quorum tests cannot run in CI: {why}")
        pytest.skip(why)
    with tgtd.Tgtd(tmp_path / "tgt", size_mb=64, host=network.switch_address(),
                   prefix=["ip", "netns", "exec", network.switch]) as server:
        yield server


@pytest.fixture
def disk_lab(network: Network, target: tgtd.Tgtd, tmp_path: Path) -> Iterator[LabCluster]:
    settings = {**SETTINGS, **TIMING, "cluster.quorum": "disk", "cluster.quorum_disk": target.url,
                "cluster.arbitration": "scsi3"}
    with lab_cluster(network, tmp_path / "lab", settings) as cluster:
        yield cluster


def start(lab: LabCluster) -> int:
    """Start the three nodes; wait for them to form with the disk; the node that owns it."""
    start_formed(lab)
    owners = [i for i in range(3) if disk_state(lab, i)["owner"]]
    assert len(owners) == 1, f"one node owns the quorum disk, not {owners}"
    return owners[0]


def disk_state(lab: LabCluster, i: int) -> dict[str, Any]:
    state: dict[str, Any] = lab.client(i).get("/v1/local", timeout_s=2)["quorum_disk"]
    return state


def local(lab: LabCluster, i: int) -> dict[str, Any]:
    answer: dict[str, Any] = lab.client(i).get("/v1/local", timeout_s=2)
    return answer


def web_group(lab: LabCluster, owner: int, data_disk: str | None = None) -> None:
    """Group web on ``owner``: a web server, and (with ``data_disk``) a Physical Disk it depends on."""
    api = lab.client(owner)
    preferred = [owner, *[i for i in range(3) if i != owner]]
    api.post("/v1/groups", {"name": "web", "preferred": preferred})
    depends: list[str] = []
    if data_disk is not None:
        api.post("/v1/resources", {"group": "web", "name": "disk", "type": "Physical Disk",
                                   "properties": {"disk": data_disk}})
        depends = ["disk"]
    api.post("/v1/resources", {
        "group": "web", "name": "server", "type": "Generic Application", "depends_on": depends,
        "properties": {"command": [sys.executable, "-m", "http.server", str(PORT)],
                       "health": {"tcp": f"127.0.0.1:{PORT}"}, "online_waits_for_health": True,
                       "stop_grace_ms": 2000}})
    api.post("/v1/groups/web/online")
    lab.wait_for("web online", lambda: lab.group(owner, "web")["state"] == "Online", 30)
    assert lab.group(owner, "web")["owner"] == owner


def serving(network: Network, i: int) -> bool:
    code = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), timeout=2)"
    return network.run(i, [sys.executable, "-c", code]).returncode == 0


def won_at(lab: LabCluster, i: int, after_ms: int) -> int | None:
    """When node ``i``'s arbitration machine last reported ``won`` after ``after_ms`` (wall-clock ms)."""
    times = [r["t"] for r in lab.trace(i) if r.get("kind") == "step" and r.get("machine") == "arbitration"
             and r.get("t", 0) >= after_ms and any(e.get("name") == "won" for e in r.get("effects", []))]
    return times[-1] if times else None


def arbitration_bound_ms() -> int:
    """Owner death to a challenger owning the disk, at most: detection (5 missed 100 ms heartbeats, and a
    period's phase), the regroup's first stage, the challenge (register, W, read keys, preempt: 3 commands
    within D each, and the jitter), and 1 s for the scheduling of a shared, busy test machine."""
    detection = 6 * 100
    return detection + 100 + TIMING["timing.challenge_wait_ms"] + 4 * TIMING["timing.reserve_timeout_ms"] + 200 + 1000


def test_disk_quorum_forms_and_a_challenger_wins_the_disk_of_a_killed_owner(disk_lab: LabCluster,
                                                                           network: Network,
                                                                           target: tgtd.Tgtd) -> None:
    owner = start(disk_lab)
    web_group(disk_lab, owner, data_disk=target.new_lun(16))
    assert serving(network, owner)
    killed_ms = time.time_ns() // 1_000_000
    disk_lab.kill(owner)
    rest = [i for i in range(3) if i != owner]
    disk_lab.wait_for("a survivor owns the disk", lambda: any(disk_state(disk_lab, i)["owner"] for i in rest), 20)
    new_owner = next(i for i in rest if disk_state(disk_lab, i)["owner"])
    won = won_at(disk_lab, new_owner, killed_ms)
    assert won is not None
    assert won - killed_ms <= arbitration_bound_ms(), (won - killed_ms, arbitration_bound_ms())
    disk_lab.wait_for("web online on a survivor", lambda: disk_lab.group(rest[0], "web")["state"] == "Online"
                      and disk_lab.group(rest[0], "web")["owner"] in rest, 20)
    now = disk_lab.group(rest[0], "web")
    assert [r["state"] for r in now["resources"]] == ["Online", "Online"]
    assert serving(network, now["owner"])
    # the quorum log on the disk holds every update: the new owner read it and logs on
    assert disk_state(disk_lab, new_owner)["log_last_seq"] == local(disk_lab, new_owner)["gum"]["last_seq"]


def test_the_disk_owner_alone_survives_a_partition_from_the_two_others(disk_lab: LabCluster,
                                                                       network: Network) -> None:
    """Disk quorum does not count heads: the owner, cut off from both others (not from the disk), keeps the
    cluster; the two others lose the challenge, halt and stop their resources, and the owner takes their group."""
    owner = start(disk_lab)
    others = [i for i in range(3) if i != owner]
    web_group(disk_lab, others[0])
    assert serving(network, others[0])
    network.separate(owner, others)
    try:
        disk_lab.wait_for("the owner alone", lambda: disk_lab.formed(owner, [owner]), 20)
        disk_lab.wait_for("the others halted", lambda: all(
            local(disk_lab, i)["membership"]["state"] in ("Halted", "Down", "Collecting") and not serving(network, i)
            for i in others), 20)
        disk_lab.wait_for("web online on the owner", lambda: disk_lab.group(owner, "web")["state"] == "Online"
                          and disk_lab.group(owner, "web")["owner"] == owner, 20)
        assert serving(network, owner)
        # for as long as the partition lasts, the two never form a cluster of their own
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for i in others:
                assert local(disk_lab, i)["membership"]["state"] != "Stable", f"node {i} formed without the disk"
                assert not disk_state(disk_lab, i)["owner"]
            time.sleep(0.2)
        assert disk_state(disk_lab, owner)["owner"]
    finally:
        network.undrop(owner)
    formed(disk_lab, [0, 1, 2], timeout_s=30)


def test_a_frozen_owner_stops_by_its_lease_and_the_survivors_take_the_disks(disk_lab: LabCluster, network: Network,
                                                                     target: tgtd.Tgtd) -> None:
    """SIGSTOP the owner's daemon (its resource monitor goes on): the monitor's lease lapses and it terminates the
    web server and the data disk by itself, before the others preempt its keys on the quorum disk and on the
    group's data disk and bring the group up; once thawed the old owner finds its reservation gone, halts and
    stays stopped (self-fencing)."""
    owner = start(disk_lab)
    web_group(disk_lab, owner, data_disk=target.new_lun(16))
    rest = [i for i in range(3) if i != owner]
    daemon = disk_lab.nodes[owner].process
    assert daemon is not None
    monitor_log = disk_lab.nodes[owner].data_dir / "run" / "monitor-default.log"
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        # judged from the namespace, not from what the daemons say
        disk_lab.wait_for("the frozen owner's web server stopped", lambda: not serving(network, owner), 20)
        assert "the lease lapsed" in monitor_log.read_text(), "the monitor, not the daemon, stopped the resources"
        disk_lab.wait_for("web online on a survivor", lambda: disk_lab.group(rest[0], "web")["state"] == "Online"
                          and disk_lab.group(rest[0], "web")["owner"] in rest, 30)
        assert any(disk_state(disk_lab, i)["owner"] for i in rest)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    log_path = disk_lab.nodes[owner].log_path
    assert log_path is not None
    disk_lab.wait_for("the old owner stopped its resources", lambda: local(disk_lab, owner)["groups"]["web"][
        "resources"]["server"] in ("Offline", None) or local(disk_lab, owner)["membership"]["state"] != "Stable", 20)
    text = log_path.read_text()
    assert "lost its reservation or could not renew it in time" in text or "halted" in text
    new = disk_lab.group(rest[0], "web")["owner"]
    assert serving(network, new)
    disk_lab.wait_for("the old web server stopped", lambda: not serving(network, owner), 20)
    formed(disk_lab, [0, 1, 2], timeout_s=30)
