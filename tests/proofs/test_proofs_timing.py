"""Done-means 3: a configuration that breaks a timing obligation is rejected, with the numbers."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from wolfpack.cli import cli, main
from wolfpack.errors import ConfigError
from wolfpack.proofs import timing
from wolfpack.proofs.results import FAILED, PROVED
from wolfpack.proofs.timing_proof import prove_all
from wolfpack.spec import defaults


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


def test_defaults_come_from_the_spec_constants() -> None:
    config = timing.default_config()
    assert config["heartbeat_period_ms"] == defaults.HEARTBEAT_PERIOD_MS
    assert config["missed_heartbeats"] == defaults.HEARTBEAT_MISSED_THRESHOLD
    assert config["pending_timeout_ms"] == defaults.PENDING_TIMEOUT_MS
    assert config["deadlock_timeout_ms"] == defaults.DEADLOCK_TIMEOUT_MS
    assert config["restart_period_ms"] == defaults.RESTART_PERIOD_MS
    assert timing.check(config) == []


def test_slow_heartbeats_are_rejected_with_the_inequality_and_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "heartbeat_period_ms = 1200\nmissed_heartbeats = 6\njitter_ms = 300\n")
    result = CliRunner().invoke(cli, ["verify", "timing", "--config", str(path)])
    assert result.exit_code == 1
    assert "FAILED timing detection_before_arbitration" in result.output
    assert "heartbeat_period_ms * missed_heartbeats + jitter_ms < quorum_arbitration_wait_ms" in result.output
    assert "1200 * 6 + 300 = 7500 < 7000 (VIOLATED, slack -500 ms)" in result.output


def test_a_jitter_that_only_breaks_at_its_upper_end_is_found(tmp_path: Path) -> None:
    config = timing.parse({"renew_period_ms": 6_000, "jitter_ms": 1_500})
    (renew,) = [r for r in prove_all(config) if r.prop == "renew_before_challenge"]
    assert renew.result == FAILED
    assert "6000 + 1500 + 1000 + 1000 + 1000 = 10500 < 10000" in renew.detail
    assert "breaks at jitter = 1000 ms" in renew.detail


def test_each_obligation_can_fail_on_its_own() -> None:
    broken = {
        "pending_within_deadlock": {"pending_timeout_ms": 400_000},
        "restarts_fit_period": {"restart_delay_ms": 400_000, "restart_threshold": 3},
        "renew_before_challenge": {"renew_period_ms": 10_000},
        "detection_before_arbitration": {"quorum_arbitration_wait_ms": 700},
    }
    for name, values in broken.items():
        results = {r.prop: r.result for r in prove_all(timing.parse(values))}
        assert results.pop(name) == FAILED
        assert set(results.values()) == {PROVED}
    assert timing.check(timing.parse(broken["pending_within_deadlock"])) == [
        "pending_within_deadlock: pending_timeout_ms <= deadlock_timeout_ms: "
        "400000 <= 300000 (VIOLATED, slack -100000 ms); to fix it, raise deadlock_timeout_ms "
        "(timing.deadlock_timeout_ms in a node file) to at least 400000, or lower pending_timeout_ms "
        "(timing.pending_timeout_ms) to at most 300000"]


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'heartbeat_ms = 100\npending_timeout_ms = "3 min"\n'
                           'jitter_ms = -5\nrestart_threshold = true\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "timing", "--config", str(path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "has 4 problem(s)" in err
    assert "unknown key 'heartbeat_ms'" in err
    assert "pending_timeout_ms must be an integer" in err and "got str '3 min'" in err
    assert "jitter_ms must be >= 0" in err
    assert "restart_threshold must be an integer" in err
    assert "Traceback" not in err


def test_a_file_that_is_not_toml_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        timing.load(write(tmp_path, "heartbeat_period_ms = = 3\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        timing.load(tmp_path / "missing.toml")


def test_the_lease_obligations_refuse_a_short_takeover_wait_and_name_the_setting(tmp_path: Path) -> None:
    """Issue 14: a stalled owner's monitors stop its resources (lease + kill bound) before the others, who
    detected it no sooner than (missed - 1) periods after its last heartbeat, regroup and wait the take-over wait
    start them; a node file's [timing] table is read as it is."""
    path = write(tmp_path, "[cluster]\nname = 'lab'\n[timing]\ntakeover_wait_ms = 200\nlease_ms = 500\n")
    result = CliRunner().invoke(cli, ["verify", "timing", "--config", str(path)])
    assert result.exit_code == 1
    assert "FAILED timing stalled_owner_stops_before_takeover" in result.output
    assert "500 + 150 + 100 + 100 = 850 < 100 * 5 + 100 + 200 = 800 (VIOLATED, slack -50 ms)" in result.output
    assert "raise takeover_wait_ms (timing.takeover_wait_ms in a node file) to at least 251" in result.output
    assert "lower lease_ms (timing.lease_ms) to at most 449" in result.output
    assert "FAILED timing left_out_member_stops_before_takeover" in result.output
    short_lease = timing.parse({"lease_ms": 350})
    assert [r.prop for r in prove_all(short_lease) if r.result == FAILED] == ["lease_outlasts_its_renewal"]
    assert all(r.result == PROVED for r in prove_all(timing.default_config()))
