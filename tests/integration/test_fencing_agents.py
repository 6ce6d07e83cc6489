"""Fencing with real agents against real devices, all on loopback and in network namespaces made here:

* the ClusterLabs ``fence_ipmilan`` (unchanged) against OpenIPMI's BMC simulator ``ipmi_sim`` on 127.0.0.1,
  whose chassis power-off kills every process of a test namespace (the node "loses power");
* ``fence_wolfpack_lab`` killing a namespace's processes;
* ``fence_wolfpack_scsi`` preempting a node's key on a tgtd LUN, after which the node's writes are refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ipmi import Bmc, bmc_for, wait_until
from netns import ip

from wolfpack.hw import tgtd
from wolfpack.hw.arbiter import pr_key
from wolfpack.hw.device import open_device
from wolfpack.hw.errors import ReservationConflict
from wolfpack.runtime.fencing import FenceDevice, fence_node, run_agent

pytestmark = pytest.mark.integration


def need(*programs: str) -> None:
    """Skip (fail under CI) unless root and every program is installed."""
    why = "needs root (network namespaces)" if os.geteuid() != 0 else None
    missing = [p for p in programs if shutil.which(p) is None and not os.access(p, os.X_OK)]
    if missing:
        why = f"{', '.join(missing)} not installed (scripts/install adds fence-agents, openipmi, ipmitool)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def node_ns() -> Iterator[str]:
    """A network namespace of its own: the "node" to fence; deleted at the end."""
    need("ip")
    name = f"wpf{os.getpid() % 100000}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
            os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", name, check=False)


def start_in(ns: str, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def namespace_pids(ns: str) -> list[int]:
    found = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=True).stdout
    return [int(p) for p in found.split()]


# --- fence_ipmilan against ipmi_sim -----------------------------------------------------------------------------

@pytest.fixture
def bmc(tmp_path: Path, node_ns: str) -> Iterator[Bmc]:
    need("ipmi_sim", "ipmitool", "/usr/sbin/fence_ipmilan")
    with bmc_for(tmp_path / "bmc", node_ns) as server:
        yield server


def test_fence_ipmilan_powers_off_a_node_through_ipmi_sim(bmc: Bmc, node_ns: str) -> None:
    workload = start_in(node_ns, "sleep", "600")
    wait_until("the workload to run in the namespace", lambda: workload.pid in namespace_pids(node_ns))
    device = bmc.device()
    device.validate()  # against the real agent's metadata
    assert run_agent(device, "status", "n1").power == "on"

    summary = fence_node([device], "n1")
    assert summary.fenced, summary.describe()
    assert [(a.action, a.ok) for a in summary.attempts] == [("off", True), ("status", True)]
    assert summary.attempts[-1].power == "off"
    assert workload.wait(timeout=5) == -signal.SIGKILL
    assert namespace_pids(node_ns) == []
    assert run_agent(device, "status", "n1").power == "off"

    on = run_agent(device, "on", "n1")
    assert on.ok, on.reason
    assert run_agent(device, "status", "n1").power == "on"


def test_wrong_password_fails_clearly_and_the_next_device_fences(bmc: Bmc, node_ns: str) -> None:
    workload = start_in(node_ns, "sleep", "600")
    wrong = "not-" + bmc.password
    bad = bmc.device(password=wrong, name="bad-bmc")
    result = run_agent(bad, "off", "n1")
    assert not result.ok and result.rc == 1 and not result.timed_out
    assert "Unable to obtain correct plug status" in result.reason
    assert wrong not in result.output + result.stderr + result.reason
    assert workload.poll() is None, "a refused login must not power the node off"

    summary = fence_node([bad, bmc.device()], "n1")
    assert summary.fenced and summary.device == "bmc"
    assert summary.attempts[0].device == "bad-bmc" and not summary.attempts[0].ok
    assert workload.wait(timeout=5) == -signal.SIGKILL


# --- fence_wolfpack_lab -------------------------------------------------------------------------------------------


def test_lab_agent_kills_every_process_of_the_namespace(node_ns: str, tmp_path: Path) -> None:
    inside = [start_in(node_ns, "sleep", "600"), start_in(node_ns, "sh", "-c", "sleep 600 & sleep 600 & wait")]
    outside = subprocess.Popen(["sleep", "600"])
    try:
        wait_until("four processes in the namespace", lambda: len(namespace_pids(node_ns)) >= 4)
        device = FenceDevice("lab", "fence_wolfpack_lab", {"state_dir": str(tmp_path / "state")}, {"n1": node_ns})
        device.validate()
        assert run_agent(device, "status", "n1").power == "on"
        summary = fence_node([device], "n1")
        assert summary.fenced and summary.attempts[-1].power == "off", summary.describe()
        assert namespace_pids(node_ns) == []
        for process in inside:
            assert process.wait(timeout=5) == -signal.SIGKILL
        assert outside.poll() is None, "a process outside the namespace was killed"
        assert (tmp_path / "state" / node_ns).exists()
        assert run_agent(device, "on", "n1").ok
        assert run_agent(device, "status", "n1").power == "on"
    finally:
        outside.kill()
        outside.wait()


# --- fence_wolfpack_scsi on tgtd ------------------------------------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path) -> Iterator[tgtd.Tgtd]:
    why = tgtd.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with tgtd.Tgtd(tmp_path / "tgt", size_mb=8) as server:
        yield server


def test_scsi_agent_preempts_the_victims_key(target: tgtd.Tgtd) -> None:
    # node 1's view of the disk: it fences, and node 2 is its victim
    device = FenceDevice("disk", "fence_wolfpack_scsi", {"url": target.url, "nodename": "1"}, {"1": "1", "2": "2"})
    device.validate()
    assert run_agent(device, "monitor").ok
    for node in ("1", "2"):
        unfenced = run_agent(device, "on", node)
        assert unfenced.ok, unfenced.reason
    victim_key = pr_key("wolfpack", 2)
    # node 2's daemon: its own I_T nexus, registered with its key, writing
    with open_device(target.url, initiator="iqn.2026-01.org.wolfpack:node2") as victim:
        victim.register_ignore(victim_key)
        victim.write_blocks(0, b"2" * 512)
        assert run_agent(device, "status", "2").power == "on"

        summary = fence_node([device], "2")
        assert summary.fenced, summary.describe()
        assert summary.attempts[-1].power == "off"
        assert "PREEMPT" in summary.attempts[0].output

        with open_device(target.url, initiator="iqn.2026-01.org.wolfpack:observer") as observer:
            keys = observer.read_keys().keys
            reservation = observer.read_reservation()
        assert victim_key not in keys and pr_key("wolfpack", 1) in keys
        assert reservation.key == pr_key("wolfpack", 1)
        with pytest.raises(ReservationConflict):
            victim.write_blocks(0, b"X" * 512)
        with pytest.raises(ReservationConflict):
            victim.reserve(victim_key)
        assert victim.read_blocks(0, 1) == b"2" * 512  # type 5: anyone still reads
    # fencing again is a no-op success; the fencer itself cannot be fenced with its own key
    assert "Already OFF" in run_agent(device, "off", "2").output
    self_fence = run_agent(device, "off", "1")
    assert not self_fence.ok and "refusing to fence this node's own key" in self_fence.reason
