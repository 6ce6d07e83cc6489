"""``wolfpack verify``: output formats, the committed report and its --check."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from wolfpack.cli import cli, main

RESULT_KEYS = {"machine", "property", "method", "result", "seconds", "detail", "invariant", "counterexample",
               "story"}


def test_json_output_follows_the_documented_schema() -> None:
    result = CliRunner().invoke(cli, ["verify", "node", "timing", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schema"] == 1 and document["ok"] is True
    assert set(document["summary"]) == {"checks", "proved", "bounded", "failed", "seconds"}
    assert document["config"]["source"] is None and document["config"]["values"]["missed_heartbeats"] == 5
    assert document["summary"]["checks"] == len(document["results"])
    for row in document["results"]:
        assert set(row) == RESULT_KEYS
        assert row["result"] in ("proved", "bounded", "FAILED")
    assert {r["machine"] for r in document["results"]} == {"node", "timing"}


def test_the_table_has_one_row_per_machine_and_property() -> None:
    result = CliRunner().invoke(cli, ["verify", "resource"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["machine", "property", "method", "result", "time"]
    assert any(line.split()[:4] == ["resource", "restarts_within_threshold", "inductive", "proved"]
               for line in lines[1:])
    assert "0 FAILED" in lines[-1]


def test_the_report_is_written_without_timings_and_checked(tmp_path: Path) -> None:
    report = tmp_path / "verification.md"
    runner = CliRunner()
    assert runner.invoke(cli, ["verify", "node", "--report", str(report)]).exit_code == 0
    text = report.read_text()
    assert "| node | non_member_owns_nothing | inductive | proved |" in text
    results = text.split("## Results")[1].split("\n## ")[0]
    assert "## JSON output" in text and not re.search(r"\d\.\d+s\b", results)
    assert runner.invoke(cli, ["verify", "node", "--report", str(report), "--check"]).exit_code == 0
    report.write_text(text.replace("proved", "bounded", 1))
    stale = runner.invoke(cli, ["verify", "node", "--report", str(report), "--check"])
    assert stale.exit_code == 1
    assert "is out of date" in stale.output
    assert report.read_text() != text  # --check never writes


def test_check_needs_a_report_and_unknown_machines_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert CliRunner().invoke(cli, ["verify", "--check"]).exit_code == 2
    with pytest.raises(SystemExit):
        main(["verify", "toaster"])
    err = capsys.readouterr().err
    assert "unknown machine(s) toaster: choose from resource, group, node, ownership" in err and "timing" in err
