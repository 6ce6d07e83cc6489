"""Every cluster story in tests/scenarios/cluster runs to the end with its
expectations met and no invariant violated; the same seed gives the same run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wolfpack.cli import cli
from wolfpack.runtime.sim.scenario import Runner, ScenarioError, parse, run_file

STORIES = sorted((Path(__file__).parent / "cluster").glob("*.sim"))


@pytest.mark.parametrize("path", STORIES, ids=[p.stem for p in STORIES])
def test_story(path: Path) -> None:
    timeline = run_file(path)
    assert timeline and all(" ms  " in line for line in timeline)


def test_same_seed_same_trace_byte_for_byte() -> None:
    path = STORIES[0]
    traces = []
    for _ in range(2):
        runner = Runner(parse(path))
        runner.run()
        traces.append(runner.world.cluster.ndjson())
    assert traces[0] == traces[1] and len(traces[0]) > 1000


def test_a_wrong_expectation_fails_with_file_and_line(tmp_path: Path) -> None:
    story = tmp_path / "wrong.sim"
    story.write_text("nodes 3\ngroup web: ip\nat 0 boot all\nwithin 3000 expect web online on 2\n")
    with pytest.raises(ScenarioError, match=r"wrong.sim:4: 'expect web online on 2' did not hold"):
        run_file(story)


def test_cli_prints_the_timeline_and_saves_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "run.ndjson"
    result = CliRunner().invoke(cli, ["simulate", str(STORIES[0]), "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert "every expectation held" in result.output and trace.read_text().count("\n") > 100


STALL = ("nodes 3\nseed 1\nrejoin after 2000\ngroup web: ip app; app needs ip; preferred 0 1 2\nat 0 boot all\n"
         "within 3000 expect web online on 0\nat 3000 stall 0 5000 with monitor\n")


def test_a_violation_no_line_expects_fails_the_story(tmp_path: Path) -> None:
    story = tmp_path / "two.sim"
    story.write_text(STALL + "at 6000 expect web copies on 0,1\n")
    with pytest.raises(ScenarioError, match=r"two.sim:8: invariant violated at \d+ ms: group web started on one more"):
        run_file(story)


def test_an_expected_violation_must_be_seen_and_must_end(tmp_path: Path) -> None:
    story = tmp_path / "never_ends.sim"
    story.write_text(STALL + "within 2000 expect violation web\nat 6000 expect web copies on 0,1\n")
    with pytest.raises(ScenarioError, match=r"never_ends.sim:8: the expected violation about web never ended"):
        run_file(story)
    short = tmp_path / "short.sim"
    short.write_text(STALL.replace("5000 with", "300 with") + "within 2000 expect violation web\n")
    with pytest.raises(ScenarioError, match=r"short.sim:8: 'expect violation web' did not hold within 2000 ms"):
        run_file(short)
    at = tmp_path / "at.sim"
    at.write_text(STALL + "at 3500 expect violation web\n")
    with pytest.raises(ScenarioError, match=r"at.sim:8: 'expect violation web' goes after 'within MS'"):
        run_file(at)
