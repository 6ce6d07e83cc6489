"""The node configuration: one schema, layers, every problem at once, the timing obligations."""

from __future__ import annotations

from pathlib import Path

import pytest

from wolfpack.errors import ConfigError
from wolfpack.runtime.daemon import config

KEY = "ab" * 32


def node_file(tmp_path: Path, extra: str = "", nodes: int = 3) -> Path:
    text = f"""
[cluster]
name = "lab"
key = "{KEY}"

[node]
id = 0
data_dir = "{tmp_path / 'data'}"
{extra}
""" + "".join(f'\n[[nodes]]\nid = {i}\naddress = "10.0.0.{i + 1}:7400"\n' for i in range(nodes))
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_a_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    cfg = config.load(node_file(tmp_path), environ={})
    assert cfg.node_id == 0 and cfg.n == 3 and cfg.key == bytes.fromhex(KEY)
    assert cfg.me.heartbeat == (("10.0.0.1", 7401),)  # the transport's port + 1 by default
    assert cfg.timing["heartbeat_period_ms"] == 100 and cfg["cluster.quorum"] == "mns"
    assert cfg.admin_socket == tmp_path / "data" / "run" / "admin.sock"


def test_the_environment_is_above_the_file_and_overrides_above_both(tmp_path: Path) -> None:
    path = node_file(tmp_path, "[timing]\nheartbeat_period_ms = 200\nlease_ms = 700\ntakeover_wait_ms = 1000\n")
    assert config.load(path, environ={})["timing.heartbeat_period_ms"] == 200
    env = {"WOLFPACK_TIMING_HEARTBEAT_PERIOD_MS": "150"}
    assert config.load(path, environ=env)["timing.heartbeat_period_ms"] == 150
    cfg = config.load(path, environ=env, overrides={"timing.heartbeat_period_ms": "120"})
    assert cfg["timing.heartbeat_period_ms"] == 120


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = node_file(tmp_path, '[admin]\nlisten = "localhost:80"\n[node2]\nx = 1\n'
                               '[timing]\nmissed_heartbeats = "five"\n')
    with pytest.raises(ConfigError) as err:
        config.load(path, environ={"WOLFPACK_NODE_ID": "zero"})
    text = str(err.value)
    assert "4 problem(s)" in text
    assert "not a numeric IP address" in text and "unknown section [node2]" in text
    assert "missed_heartbeats" in text and "node.id (environment WOLFPACK_NODE_ID) must be a int" in text


def test_a_violated_timing_obligation_is_an_error_with_its_numbers(tmp_path: Path) -> None:
    path = node_file(tmp_path, "[timing]\ntakeover_wait_ms = 200\n")
    with pytest.raises(ConfigError) as err:
        config.load(path, environ={})
    assert "stalled_owner_stops_before_takeover" in str(err.value) and "VIOLATED" in str(err.value)
    assert "raise takeover_wait_ms (timing.takeover_wait_ms in a node file) to at least 251" in str(err.value)


def test_two_node_majority_node_set_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='use quorum = "disk"'):
        config.load(node_file(tmp_path, nodes=2), environ={})


def test_cluster_wide_values_are_checked_before_they_are_submitted(tmp_path: Path) -> None:
    cfg = config.load(node_file(tmp_path), environ={})
    assert config.check_cluster_values(cfg, {"timing.restart_delay_ms": "1000"}) == {"timing.restart_delay_ms": 1000}
    with pytest.raises(ConfigError, match="not a cluster-wide setting"):
        config.check_cluster_values(cfg, {"node.id": 2})
    with pytest.raises(ConfigError, match="restarts_fit_period"):
        config.check_cluster_values(cfg, {"timing.restart_delay_ms": 10_000_000})
    assert cfg.with_cluster_values({"timing.restart_delay_ms": 1000})["timing.restart_delay_ms"] == 1000


def test_a_rendered_file_loads_back(tmp_path: Path) -> None:
    entries = (config.NodeEntry(0, ("10.0.0.1", 7400), (("10.0.1.1", 7401), ("10.0.2.1", 7401)), None),
               config.NodeEntry(1, ("10.0.0.2", 7400), (("10.0.1.2", 7401), ("10.0.2.2", 7401)), None),
               config.NodeEntry(2, ("10.0.0.3", 7400), (("10.0.1.3", 7401), ("10.0.2.3", 7401)), None))
    path = tmp_path / "n.toml"
    path.write_text(config.render({"cluster.name": "x", "cluster.key": KEY, "node.id": 2,
                                   "node.data_dir": "/d"}, entries))
    cfg = config.load(path, environ={})
    assert cfg.nodes == entries and cfg.node_id == 2


def test_disk_quorum_needs_the_url_of_a_disk_every_node_shares(tmp_path: Path) -> None:
    path = node_file(tmp_path, nodes=2)
    with pytest.raises(ConfigError, match=r"quorum = \"disk\" needs cluster\.quorum_disk"):
        config.load(path, environ={"WOLFPACK_CLUSTER_QUORUM": "disk"})
    with pytest.raises(ConfigError, match="exists inside one process only"):
        config.load(path, environ={"WOLFPACK_CLUSTER_QUORUM": "disk", "WOLFPACK_CLUSTER_QUORUM_DISK": "memory://q"})
    with pytest.raises(ConfigError, match="must be one of scsi2, scsi3"):
        config.load(path, environ={"WOLFPACK_CLUSTER_QUORUM": "disk", "WOLFPACK_CLUSTER_ARBITRATION": "scsi4",
                                   "WOLFPACK_CLUSTER_QUORUM_DISK": "iscsi://10.0.0.9:3260/iqn.2026-01.lab:q/1"})
    cfg = config.load(path, environ={"WOLFPACK_CLUSTER_QUORUM": "disk",  # two nodes are fine with a disk
                                     "WOLFPACK_CLUSTER_QUORUM_DISK": "iscsi://10.0.0.9:3260/iqn.2026-01.lab:q/1"})
    assert cfg["cluster.arbitration"] == "scsi3" and cfg.initiator == "iqn.2026-01.org.wolfpack:lab.node0"


def test_the_disk_timing_obligation_is_checked_at_start(tmp_path: Path) -> None:
    path = node_file(tmp_path, "[timing]\nrenew_period_ms = 9000\n")
    with pytest.raises(ConfigError, match="renew_before_challenge"):
        config.load(path, environ={})
