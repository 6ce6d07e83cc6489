"""The administration commands: cluster create writes a working cluster; errors are clean messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wolfpack.cli import cli, main
from wolfpack.runtime.daemon import config


def test_cluster_create_writes_a_key_a_token_and_one_valid_file_per_node(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    result = CliRunner().invoke(cli, ["cluster", "create", "lab", "--node", "0=10.0.0.1,10.0.1.1",
                                      "--node", "1=10.0.0.2,10.0.1.2", "--node", "2=10.0.0.3,10.0.1.3",
                                      "--out", str(out), "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert (out / "cluster.key").stat().st_mode & 0o077 == 0
    cfg = config.load(out / "node-1.toml", environ={})
    assert cfg.node_id == 1 and cfg["cluster.name"] == "lab" and len(cfg.key) == 32 and cfg.token
    assert cfg.me.heartbeat == (("10.0.0.2", 7401), ("10.0.1.2", 7401))  # two heartbeat networks
    again = CliRunner().invoke(cli, ["cluster", "create", "lab", "--node", "0=10.0.0.1", "--out", str(out)])
    assert again.exit_code != 0 and "keeps its key" in again.output


def test_a_bad_node_argument_says_how_to_write_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cluster", "create", "lab", "--node", "zero", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "ID=ADDRESS" in result.output


def test_an_unreachable_api_is_one_clean_message(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--api", f"unix:{tmp_path / 'nothing.sock'}"])
    assert exit_.value.code == 1
