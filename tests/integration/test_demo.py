"""README command 1's main job: ``wolfpack demo`` runs to the end and shows a failover (no root needed)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from wolfpack.cli import cli

pytestmark = pytest.mark.integration


def test_the_demo_fails_the_web_server_over_and_prints_the_timeline() -> None:
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    owner = int(re.search(r"Online on node (\d); http", out).group(1))  # type: ignore[union-attr]
    moved = re.search(r"group web Online on node (\d), (\d+) ms after the kill; \S+ answers HTTP 200", out)
    assert moved is not None and int(moved.group(1)) != owner, out
    for line in ("(suspected)", "new membership installed", "take-over wait over", "group web Online"):
        assert line in out, out
    assert "stopped: every node left the cluster" in out
