"""Fencing required (issue 14): three real daemons in namespaces, Debian's redis-server as the group's
application, node 0's BMC an OpenIPMI ``ipmi_sim`` on the test network's switch whose power-off kills every process
of node 0's namespace, and the ClusterLabs ``fence_ipmilan``, unchanged, as the fence agent.  Everything is driven
through the public CLI (``wolfpack fence ...``, ``wolfpack cluster set``); safety is judged from PING probes of
redis inside every namespace.

* The owner's daemon *and* its resource monitor are frozen (SIGSTOP): the lease cannot help (the monitor is frozen
  too), so redis would run on beside a survivor's copy; with fencing required the survivors power node 0 off
  before they take the group over, and at no probed moment do two copies answer.
* The fence device fails (a wrong password): the group stays offline, the log says why and what to do, and
  ``wolfpack fence confirm 0`` brings it up on a survivor.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ipmi import Bmc, bmc_for
from netns import Network, start_formed
from probe import last_answer, redis_group, start_probers, stop_probers, two_copies

from wolfpack.runtime.daemon.lab import LabCluster

pytestmark = pytest.mark.integration


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None and not os.access(p, os.X_OK)]
    if missing:
        why = f"{', '.join(missing)} not installed (scripts/install adds fence-agents, openipmi, redis-server)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def bmc0(network: Network, tmp_path: Path) -> Iterator[Bmc]:
    """Node 0's BMC, on the switch (every node reaches it): power off kills node 0's namespace."""
    need("ipmi_sim", "ipmitool", "/usr/sbin/fence_ipmilan", "redis-server")
    host = network.switch_address()
    with bmc_for(tmp_path / "bmc0", network.names[0], host=host, prefix=["ip", "netns", "exec", network.switch],
                 probe=False) as server:
        yield server


def cli(lab: LabCluster, i: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``wolfpack ARGS`` against node ``i``'s admin socket, as an operator would run it."""
    done = subprocess.run([sys.executable, "-m", "wolfpack", *args, "--api",
                           f"unix:{lab.nodes[i].data_dir / 'run' / 'admin.sock'}", "--token", lab.token],
                          capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, f"wolfpack {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def fence_json(lab: LabCluster, i: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli(lab, i, "fence", "list", "--format", "json").stdout)
    return data


def add_bmc(lab: LabCluster, bmc: Bmc, password: str | None = None) -> None:
    params = [f"--param={k}={v}" for k, v in bmc.params(password).items()]
    cli(lab, 1, "fence", "add", "ipmi0", "--agent", "fence_ipmilan", *params, "--node", "0")


def freeze_node(lab: LabCluster, i: int) -> list[int]:
    """SIGSTOP node ``i``'s daemon and its resource monitors (a paused VM, as far as the cluster sees)."""
    monitors = [int(m["pid"]) for m in lab.client(i).get("/v1/local")["monitors"].values() if m.get("pid")]
    daemon = lab.nodes[i].process
    assert daemon is not None and monitors
    pids = [daemon.pid, *monitors]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def test_the_cli_lists_tests_and_removes_fence_devices_and_refuses_bad_ones(lab: LabCluster, bmc0: Bmc) -> None:
    start_formed(lab)
    # a parameter the agent does not have is refused, with the agent's own parameter list
    bad = cli(lab, 1, "fence", "add", "x", "--agent", "fence_ipmilan", "--param", "colour=blue", "--node", "0",
              check=False)
    assert bad.returncode != 0 and "has no parameter colour" in bad.stdout + bad.stderr
    missing = cli(lab, 1, "fence", "add", "x", "--agent", "fence_nosuch", "--node", "0", check=False)
    assert missing.returncode != 0 and "fence_nosuch" in missing.stdout + missing.stderr
    add_bmc(lab, bmc0)
    # every node has the device (it is in the replicated database), and its password never shows
    for i in range(3):
        listed = fence_json(lab, i)
        assert [d["name"] for d in listed["devices"]] == ["ipmi0"]
        assert bmc0.password not in json.dumps(listed)
    # test runs the agent's status through the BMC from the node asked: nothing is powered off
    deadline = time.monotonic() + 20
    while (tested := cli(lab, 2, "fence", "test", "ipmi0", "--format", "json", check=False)).returncode != 0:
        assert time.monotonic() < deadline, tested.stdout + tested.stderr
        time.sleep(0.5)
    result = json.loads(tested.stdout)
    assert result["ok"] and result["results"][0]["power"] == "on" and result["from_node"] == 2
    assert lab.nodes[0].process is not None and lab.nodes[0].process.poll() is None
    cli(lab, 1, "fence", "remove", "ipmi0")
    lab.wait_for("the device gone everywhere", lambda: all(not fence_json(lab, i)["devices"] for i in range(3)), 10)


def test_a_frozen_node_with_its_monitor_is_fenced_before_its_group_moves(lab: LabCluster, network: Network,
                                                                        bmc0: Bmc) -> None:
    start_formed(lab)
    add_bmc(lab, bmc0)
    cli(lab, 1, "cluster", "set", "cluster.fencing=required")
    redis_group(lab, 0)
    probers = start_probers(network)
    try:
        time.sleep(0.5)
        frozen_at = time.monotonic_ns()
        freeze_node(lab, 0)
        lab.wait_for("cache online on a survivor", lambda: lab.group(1, "cache")["state"] == "Online"
                     and lab.group(1, "cache")["owner"] in (1, 2), 60)
        time.sleep(1.0)
    finally:
        stop_probers(probers)
    overlaps = two_copies(probers)
    assert not overlaps, overlaps
    assert lab.nodes[0].process is not None and lab.nodes[0].process.wait(timeout=10) == -signal.SIGKILL, \
        "the fence (the BMC's power-off) killed node 0"
    stopped = last_answer(probers[0])
    owner = lab.group(1, "cache")["owner"]
    started = min(t for t, ok in probers[owner].samples if ok)
    assert stopped is not None and stopped < started
    fenced = fence_json(lab, 1)["nodes"]["0"]
    assert fenced["state"] == "fenced" and fenced["device"] == "ipmi0"
    print(f"frozen daemon and monitor: the copy last answered {(stopped - frozen_at) / 1e6:.0f} ms after SIGSTOP "
          f"(killed by the fence, which took {fenced['took_ms']:.0f} ms); the new owner answered "
          f"{(started - stopped) / 1e6:.0f} ms later")


def test_a_failed_fence_leaves_the_group_offline_until_the_operator_confirms(lab: LabCluster, network: Network,
                                                                            bmc0: Bmc) -> None:
    start_formed(lab)
    add_bmc(lab, bmc0, password="wrong-" + bmc0.password)
    cli(lab, 1, "cluster", "set", "cluster.fencing=required")
    redis_group(lab, 0)
    for line in subprocess.run(["ip", "netns", "pids", network.names[0]], capture_output=True,
                               text=True).stdout.split():
        os.kill(int(line), signal.SIGKILL)  # node 0 loses power (outside the cluster's knowledge)
    coordinator = 1
    log_path = lab.nodes[coordinator].log_path
    assert log_path is not None
    lab.wait_for("the fence failed", lambda: "FENCE FAILED" in log_path.read_text(), 60)
    text = log_path.read_text()
    assert "wolfpack fence confirm 0" in text and "cache" in text
    # the group stays offline: nobody may start it while node 0 might run it
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert lab.group(1, "cache")["owner"] == 0
        for i in (1, 2):
            assert network.run(i, ["redis-cli", "-h", "127.0.0.1", "ping"]).stdout.strip() != "PONG"
        time.sleep(0.3)
    assert fence_json(lab, 2)["unfenced"] == [0]
    assert fence_json(lab, 1)["nodes"]["0"]["state"] == "failed"
    cli(lab, 2, "fence", "confirm", "0", "--yes")
    lab.wait_for("cache online on a survivor after the confirmation", lambda: lab.group(1, "cache")["state"] ==
                 "Online" and lab.group(1, "cache")["owner"] in (1, 2), 30)
