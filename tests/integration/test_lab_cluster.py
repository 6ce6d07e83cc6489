"""Three wolfpackd processes in network namespaces on a bridge: failover of real processes, partitions,
authentication, bad frames, monitor crashes.  Every node's transition log is replayed through the machines
at the end of each test (``conftest.lab``)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from netns import Network, formed

from wolfpack.client import ApiError
from wolfpack.runtime.daemon.lab import HEARTBEAT_PORT, TRANSPORT_PORT, LabCluster

pytestmark = pytest.mark.integration

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
ATTACKER = Path(__file__).with_name("attacker.py")
PORT = 8080


def start(lab: LabCluster, nodes: list[int] | None = None) -> None:
    for i in nodes if nodes is not None else range(3):
        lab.start(i)
    for i in nodes if nodes is not None else range(3):
        lab.wait_api(i)
    formed(lab, nodes if nodes is not None else [0, 1, 2])


def web_group(lab: LabCluster, preferred: list[int]) -> None:
    """Group web: a web server (Generic Application, TCP health check) and the OCF Dummy agent (Generic Script),
    which depends on it."""
    api = lab.client(preferred[0])
    api.post("/v1/groups", {"name": "web", "preferred": preferred})
    api.post("/v1/resources", {
        "group": "web", "name": "server", "type": "Generic Application",
        "properties": {"command": [sys.executable, "-m", "http.server", str(PORT)],
                       "health": {"tcp": f"127.0.0.1:{PORT}"}, "online_waits_for_health": True,
                       "stop_grace_ms": 2000}})
    assert DUMMY.exists(), "the OCF Dummy agent is missing: scripts/install installs resource-agents"
    api.post("/v1/resources", {"group": "web", "name": "dummy", "type": "Generic Script",
                               "properties": {"script": "heartbeat:Dummy", "mode": "ocf"},
                               "depends_on": ["server"]})
    api.post("/v1/groups/web/online")
    lab.wait_for("web online", lambda: group(lab, preferred[0])["state"] == "Online", 30)
    assert group(lab, preferred[1])["owner"] == preferred[0]


def group(lab: LabCluster, i: int) -> dict[str, Any]:
    return lab.group(i, "web")


def serving(network: Network, i: int) -> bool:
    """Something answers on the web server's port in node ``i``'s namespace."""
    code = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), timeout=2)"
    return network.run(i, [sys.executable, "-c", code]).returncode == 0


def test_kill_9_of_the_owner_fails_its_group_over(lab: LabCluster, network: Network) -> None:
    start(lab)
    web_group(lab, [0, 1, 2])
    assert serving(network, 0)
    lab.kill(0)
    took = lab.wait_for("web online elsewhere", lambda: group(lab, 1)["state"] == "Online"
                        and group(lab, 1)["owner"] in (1, 2), 15)
    new = group(lab, 1)
    assert [r["state"] for r in new["resources"]] == ["Online", "Online"]  # the OCF Dummy agent failed over too
    assert serving(network, new["owner"])
    # the dead daemon's monitor saw it die and terminated the web server (R4)
    lab.wait_for("the old web server stopped", lambda: not serving(network, 0), 10)
    assert took < 10


def test_a_cut_off_owner_stops_its_resources_and_the_majority_takes_over(lab: LabCluster, network: Network) -> None:
    start(lab)
    web_group(lab, [0, 1, 2])
    network.cut(0)
    lab.wait_for("web online on the majority side", lambda: group(lab, 1)["state"] == "Online"
                 and group(lab, 1)["owner"] in (1, 2), 15)
    cut_off = lab.client(0).get("/v1/local")
    assert cut_off["membership"]["state"] in ("Halted", "Collecting", "Proposing", "Accepted", "Down")
    assert cut_off["groups"]["web"]["resources"] == {"server": "Offline", "dummy": "Offline"}
    assert not serving(network, 0)
    network.heal(0)
    formed(lab, [0, 1, 2], 30)  # it starts its cluster role again (node.rejoin_after_ms) and joins
    assert group(lab, 0)["state"] == "Online" and group(lab, 0)["owner"] in (1, 2)


def test_an_owner_that_hears_heartbeats_of_a_newer_membership_halts(lab: LabCluster, network: Network) -> None:
    """Node 2 owns web and loses its transport and its outgoing heartbeats, but still hears the others'
    heartbeats (a one-way loss): it suspects nobody, while nodes 0 and 1 suspect it, install a membership
    without it and take web over after the take-over wait.  Node 2 never hears of their regroup (their
    statuses and proposal travel on the transport); it hears their heartbeats carry the newer epoch
    (peer_ahead) and halts, stopping web.  Without that rule it stayed Stable in the old membership, and web
    ran on two nodes."""
    start(lab)
    web_group(lab, [2, 0, 1])
    epoch = lab.client(2).get("/v1/local")["membership"]["epoch"]
    network.drop(2, [("input", f"tcp dport {TRANSPORT_PORT}"), ("input", f"tcp sport {TRANSPORT_PORT}"),
                     ("output", f"tcp dport {TRANSPORT_PORT}"), ("output", f"tcp sport {TRANSPORT_PORT}"),
                     ("output", f"udp dport {HEARTBEAT_PORT}")])
    formed(lab, [0, 1], 30)
    lab.wait_for("web online on node 0 or 1", lambda: group(lab, 0)["state"] == "Online"
                 and group(lab, 0)["owner"] in (0, 1), 15)
    left_out = lab.client(2).get("/v1/local")
    assert left_out["membership"]["state"] != "Stable" or left_out["membership"]["epoch"] > epoch, left_out
    assert left_out["groups"]["web"]["resources"] == {"server": "Offline", "dummy": "Offline"}
    assert not serving(network, 2) and serving(network, group(lab, 0)["owner"])
    halts = [s for s in lab.trace(2) if s.get("machine") == "membership" and s.get("trigger") == "peer_ahead"
             and s.get("dest") == "Halted"]
    assert len(halts) == 1, "node 2 did not halt on the newer epoch in the heartbeats"
    network.undrop(2)
    formed(lab, [0, 1, 2], 30)


def test_a_node_with_a_wrong_key_is_refused_and_both_sides_log_it(lab: LabCluster, network: Network) -> None:
    wrong = lab.root / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    good = lab.nodes[2].config_path
    bad = lab.root / "node2-wrong-key.toml"
    bad.write_text(good.read_text().replace(str(lab.root / "cluster.key"), str(wrong)))
    start(lab, [0, 1])
    lab.nodes[2].config_path = bad
    lab.start(2)
    lab.wait_api(2)
    # the lower ids dial node 2: node 2 refuses them, and they log that node 2 refused them
    lab.wait_for("the refusal logged on node 2",
                 lambda: "wrong cluster key" in lab.nodes[2].log_path.read_text(), 25)
    assert any("node 2 at" in line and "refused this node: wrong cluster key" in line
               for i in (0, 1) for line in lab.nodes[i].log_path.read_text().splitlines())
    assert not lab.client(2).get("/v1/local")["membership"]["members"]
    assert lab.client(0).get("/v1/local")["membership"]["members"] == [0, 1]
    lab.stop(2)
    lab.nodes[2].config_path = good
    lab.start(2)
    lab.wait_api(2)
    formed(lab, [0, 1, 2])


def test_garbage_and_replayed_frames_are_rejected_while_the_cluster_works(lab: LabCluster, network: Network) -> None:
    start(lab, [0, 1])
    api = lab.client(0)
    api.post("/v1/groups", {"name": "g", "preferred": [0, 1]})
    target = network.address(0)
    garbage = network.run(2, [sys.executable, str(ATTACKER), "garbage", target, "7400"])
    assert garbage.stdout.split() == ["closed", "closed"], garbage.stderr
    replay = network.run(2, [sys.executable, str(ATTACKER), "replay", target, "7400",
                             str(lab.root / "cluster.key"), lab.name, "2"])
    assert replay.stdout.split() == ["closed"], replay.stderr
    rejected = lab.client(0).get("/v1/local")["transport"]["rejected"]
    assert rejected.get("replay", 0) >= 1 and sum(rejected.values()) >= 3, rejected
    # the cluster goes on: an update still commits on both members, and node 2 still joins
    assert api.post("/v1/groups", {"name": "h", "preferred": [1, 0]})["seq"] >= 2
    lab.start(2)
    lab.wait_api(2)
    formed(lab, [0, 1, 2])
    assert {g["name"] for g in lab.status(2)["groups"]} == {"g", "h"}  # node 2 received the database


def test_a_killed_monitor_is_restarted_and_its_resources_recovered(lab: LabCluster, network: Network) -> None:
    start(lab)
    web_group(lab, [1, 0, 2])
    before = lab.client(1).get("/v1/local")["monitors"]["default"]
    os.kill(before["pid"], signal.SIGKILL)
    lab.wait_for("the monitor restarted", lambda: (m := lab.client(1).get("/v1/local")["monitors"]["default"])
                 ["crashes"] == 1 and m["pid"] != before["pid"] and sorted(m["resources"]) == sorted(
                     before["resources"]), 15)
    local = lab.client(1).get("/v1/local")
    assert local["groups"]["web"]["resources"] == {"server": "Online", "dummy": "Online"}
    assert group(lab, 0)["owner"] == 1 and group(lab, 0)["state"] == "Online"  # recovered in place
    assert serving(network, 1)


def test_the_admin_api_refuses_bad_requests_and_the_daemon_keeps_running(lab: LabCluster) -> None:
    start(lab)
    api = lab.client(0)
    for method, path, body, status in [
        ("POST", "/v1/groups", {"name": "bad name!"}, 400),
        ("POST", "/v1/groups/nothing/online", {}, 404),
        ("POST", "/v1/resources", {"group": "nothing", "name": "r", "type": "Generic Application"}, 404),
        ("POST", "/v1/cluster/parameters", {"values": {"timing.takeover_wait_ms": 10}}, 400),
        ("POST", "/v1/nodes/7/pause", {}, 404),
    ]:
        with pytest.raises(ApiError) as err:
            api.request(method, path, body)
        assert err.value.status == status, (path, err.value)
        assert str(err.value)
    assert api.get("/v1/local")["membership"]["state"] == "Stable"
    # concurrent updates from every node: each node's queue goes out as one global update at a time
    api.post("/v1/groups", {"name": "g", "preferred": [0, 1, 2]})
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        seqs = list(pool.map(lambda k: lab.client(k % 3).post("/v1/groups/g/configure",
                                                              {"failback_window": [k, -1]})["seq"], range(24)))
    assert len(seqs) == 24 and all(s > 0 for s in seqs)
    assert len({lab.client(i).get("/v1/local")["gum"]["last_seq"] for i in range(3)}) == 1
    # the registry-like API: clients keep their data under Custom/, readable on every node
    api.post("/v1/db", {"key": "Custom/app", "set": {"colour": "green", "n": 3}})
    assert lab.client(2).get("/v1/db?key=Custom/app")["values"] == {"colour": "green", "n": 3}
    assert "Groups" in lab.client(1).get("/v1/db")["subkeys"]
    with pytest.raises(ApiError, match="only under Custom/"):
        api.post("/v1/db", {"key": "Cluster/Owners", "set": {"0": 2}})
    # a cluster-wide value is one global update: every node has it
    api.post("/v1/cluster/parameters", {"values": {"timing.restart_delay_ms": "1000"}})
    assert all(lab.status(i)["parameters"] == {"timing.restart_delay_ms": 1000} for i in range(3))
