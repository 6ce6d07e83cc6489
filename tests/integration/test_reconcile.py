"""Reconciliation before a join (issue 14): a node that starts while a copy of another node's group runs on it
stops that copy before it becomes a member.

Three daemons in namespaces; Debian's ``redis-server`` is the Generic Application of group ``cache``, owned
by node 1.  Node 0's daemon is stopped, a redis is started *by hand* in node 0's namespace (either a plain
stray, or the kind an earlier monitor leaves: the pid file the type writes names it, which Open adopts), and
node 0's daemon is started again.  A prober in every namespace PINGs its node's redis every 20 ms: node 0's
copy must stop answering before node 1 lists node 0 as a member, and before node 0 installs a membership,
while node 1's copy answers throughout.  Under ``multiple_active = block`` the stray is left running and
node 0 stays out until the operator stops it by hand."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator

import pytest
from netns import Network, formed, start_formed
from probe import PORT, REDIS, Prober, start_probers, stop_probers

from wolfpack.runtime.daemon.lab import LabCluster
from wolfpack.runtime.daemon.reconcile import RECHECK_S
from wolfpack.runtime.monitor.process import work_dir_for
from wolfpack.runtime.resource_types import process_groups

pytestmark = pytest.mark.integration

OWNER = 1
ARGV = [REDIS, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]


def cache_group(lab: LabCluster, policy: str) -> None:
    api = lab.client(OWNER)
    api.post("/v1/groups", {"name": "cache", "preferred": [OWNER, 2, 0]})
    api.post("/v1/resources", {
        "group": "cache", "name": "redis", "type": "Generic Application",
        "properties": {"command": ARGV, "health": {"tcp": f"127.0.0.1:{PORT}"}, "online_waits_for_health": True},
        "settings": {"multiple_active": policy}})
    api.post("/v1/groups/cache/online")
    lab.wait_for("cache online on node 1", lambda: lab.group(OWNER, "cache")["state"] == "Online", 30)


def ping(network: Network, i: int) -> bool:
    probe = (f"import socket; s = socket.create_connection(('127.0.0.1', {PORT}), timeout=0.5); "
             "s.sendall(b'PING\\r\\n'); print(s.recv(16).decode().strip())")
    done = subprocess.run([*network.prefix(i), "python3", "-c", probe], capture_output=True, text=True, timeout=10)
    return done.stdout.strip() == "+PONG"


@contextlib.contextmanager
def stray_redis(lab: LabCluster, network: Network, pid_file: bool) -> Iterator[subprocess.Popen[bytes]]:
    """A redis started by hand in node 0's namespace (``ip netns exec`` execs it: its pid is redis's)."""
    proc = subprocess.Popen([*network.prefix(0), *ARGV], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        lab.wait_for("the stray redis answers in node 0's namespace", lambda: ping(network, 0), 10)
        if pid_file:  # what the Generic Application type writes: the kind a restarted monitor adopts
            work = work_dir_for(lab.nodes[0].data_dir / "run", "cache/redis")
            work.mkdir(parents=True, exist_ok=True)
            (work / "application.pid").write_text(f"{proc.pid} {process_groups.start_time(proc.pid)}\n")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def member_seen_by(lab: LabCluster, i: int, node: int) -> bool:
    return node in lab.client(i).get("/v1/local", timeout_s=2)["membership"]["members"]


def first_stable_ms(lab: LabCluster, node: int, after_ms: int) -> int | None:
    """When ``node``'s membership machine first installed a membership (wall ms) after ``after_ms``."""
    return next((int(s["t"]) for s in lab.trace(node) if s.get("kind") == "step" and s.get("machine") == "membership"
                 and s.get("dest") == "Stable" and int(s["t"]) > after_ms), None)


def answered_after(prober: Prober, t_ns: int) -> list[int]:
    return [t for t, ok in prober.samples if ok and t >= t_ns]


def restart_node0_with_a_stray(lab: LabCluster, network: Network, policy: str, daemon: bool = True) -> None:
    """Node 0 out of the cluster: its daemon stopped, or (``daemon=False``) a planned leave of a running daemon."""
    start_formed(lab)
    cache_group(lab, policy)
    if daemon:
        lab.stop(0)
    else:
        lab.client(0).post("/v1/nodes/0/leave")
    formed(lab, [1, 2])


@pytest.mark.parametrize(("pid_file", "how"), [(False, "start"), (True, "start"), (False, "rejoin")],
                         ids=["by-hand", "pid-file", "rejoin"])
def test_a_stray_copy_is_stopped_before_the_node_joins(lab: LabCluster, network: Network, pid_file: bool,
                                                       how: str) -> None:
    restart_node0_with_a_stray(lab, network, "stop_start", daemon=how == "start")
    with stray_redis(lab, network, pid_file) as stray:
        probers = start_probers(network)
        try:
            time.sleep(0.3)
            started_ms = time.time_ns() // 1_000_000
            if how == "start":
                lab.start(0)
            else:
                lab.client(0).post("/v1/nodes/0/join")
            member_at = None
            deadline = time.monotonic() + 30
            while member_at is None and time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    if member_seen_by(lab, OWNER, 0):
                        member_at = time.monotonic_ns()
                time.sleep(0.02)
            assert member_at is not None, "node 0 did not join within 30 s"
            formed(lab, [0, 1, 2])
            time.sleep(0.5)
        finally:
            stop_probers(probers)
        assert stray.poll() is not None, "the stray redis still runs in node 0's namespace"
    stray_last = max((t for t, ok in probers[0].samples if ok), default=None)
    assert stray_last is not None, "the prober never saw the stray answer"
    print(f"stray last answered {(member_at - stray_last) / 1e6:.0f} ms before node 1 listed node 0 as a member")
    assert stray_last < member_at, "node 0's stray answered after node 1 counted node 0 a member"
    assert not answered_after(probers[0], member_at)
    # node 1's copy answered throughout, and still does
    assert probers[OWNER].samples and all(ok for _, ok in probers[OWNER].samples), "the owner's copy missed a PING"
    assert ping(network, OWNER) and not ping(network, 0)
    assert lab.group(0, "cache")["owner"] == OWNER and lab.group(0, "cache")["state"] == "Online"
    # node 0's own view: its reconciliation ended before it first installed a membership
    # the first run since the join was asked for; in about 1 run of 10 node 0 halts once after it joined and
    # rejoins 2 s later (a second run, that finds nothing): an open liveness finding, not this test's subject
    runs = [r for r in lab.client(0).get("/v1/local")["reconcile"]["runs"] if r["why"] == how
            and r["at"] * 1000 >= started_ms]
    assert runs, "node 0 has no reconciliation run since the join was asked for"
    run = min(runs, key=lambda r: r["at"])
    [found] = run["found"]
    assert found["resource"] == "cache/redis" and found["action"] == "stop" and found["multiple_active"]
    stable_ms = first_stable_ms(lab, 0, started_ms)
    assert stable_ms is not None and run["at"] * 1000 <= stable_ms, (run["at"], stable_ms)
    log_text = lab.nodes[0].log_path.read_text() if lab.nodes[0].log_path else ""
    line = next((ln for ln in log_text.splitlines() if "reconcile: resource cache/redis is active on node 0" in ln),
                "")
    assert f"pid {stray.pid}" in line and "node 1 owns group cache" in line and "ACTIVE ON TWO NODES" in line \
        and "stopped" in line, line
    # an adoption at Open (the pid-file kind) is only the probe's input: the group never ran on node 0
    assert lab.client(0).get("/v1/local")["groups"]["cache"]["machine"] == "Offline"


def test_under_block_the_stray_is_left_and_the_node_waits_for_the_operator(lab: LabCluster,
                                                                         network: Network) -> None:
    restart_node0_with_a_stray(lab, network, "block")
    with stray_redis(lab, network, pid_file=False) as stray:
        lab.start(0)
        lab.wait_api(0)
        lab.wait_for("node 0 holds", lambda: lab.client(0).get("/v1/local")["reconcile"].get("holding"), 20)
        time.sleep(2 * RECHECK_S + 1)
        local = lab.client(0).get("/v1/local")
        assert local["membership"]["state"] == "Down" and local["reconcile"]["holding"]
        assert not member_seen_by(lab, OWNER, 0)
        assert stray.poll() is None and ping(network, 0) and ping(network, OWNER)  # nothing was stopped
        log_text = lab.nodes[0].log_path.read_text() if lab.nodes[0].log_path else ""
        assert "multiple_active=block" in log_text and f"kill {stray.pid}" in log_text
        # the operator stops the copy he does not want; node 0 joins by itself
        stray.kill()
        stray.wait()
        took = lab.wait_for("node 0 joins", lambda: member_seen_by(lab, OWNER, 0), 30)
        print(f"node 0 joined {took:.1f} s after the stray was stopped by hand")
    formed(lab, [0, 1, 2])
    assert ping(network, OWNER) and not ping(network, 0)
