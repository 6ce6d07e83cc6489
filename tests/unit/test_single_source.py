"""Done-means of the foundation: rules live in spec/ only; defaults are named."""

import ast
import re
from pathlib import Path

from wolfpack.spec import defaults

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE_SPEC = ("machines", "runtime", "hw", "proofs", "cli")


def test_no_transition_rule_is_written_outside_spec() -> None:
    offenders = []
    for folder in OUTSIDE_SPEC:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name in ("Transition", "add_transition", "add_transitions", "Ignore"):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {name}")
    assert not offenders, "transition rules belong in spec/: " + "; ".join(offenders)


def test_the_live_machine_is_built_from_the_spec_table_only() -> None:
    text = (ROOT / "machines" / "live.py").read_text()
    assert "spec.transitions" in text
    assert "auto_transitions=False" in text and "queued=True" in text


def test_every_default_is_a_named_constant_with_its_source() -> None:
    source = (ROOT / "spec" / "defaults.py").read_text().splitlines()
    missing = []
    for i, line in enumerate(source):
        match = re.match(r"^([A-Z][A-Z0-9_]+) = ", line)
        if not match or match.group(1) in ("MS", "SECOND", "MINUTE", "HOUR"):
            continue
        comment = []
        j = i - 1
        while j >= 0 and source[j].startswith("#"):
            comment.append(source[j])
            j -= 1
        text = " ".join(comment)
        if not re.search(r"MSCS|WSFC|KB\d+|Wolfpack default", text):
            missing.append(match.group(1))
    assert not missing, f"defaults without a documented source: {missing}"


def test_specs_take_their_defaults_from_the_constants() -> None:
    from wolfpack.spec import resource

    by_name = {f.name: f.default for f in resource.SPEC.fields}
    assert by_name["pending_timeout_ms"] == defaults.PENDING_TIMEOUT_MS == 180_000
    assert by_name["restart_threshold"] == defaults.RESTART_THRESHOLD == 3
    assert by_name["restart_period_ms"] == defaults.RESTART_PERIOD_MS == 900_000
    assert by_name["restart_delay_ms"] == defaults.RESTART_DELAY_MS == 500
    assert by_name["retry_period_ms"] == defaults.RETRY_PERIOD_ON_FAILURE_MS == 3_600_000
