"""The daemon's transition log replays through the machines; a log that is not a legal run is caught."""

from __future__ import annotations

import json
from pathlib import Path

from wolfpack.machines import LiveMachine
from wolfpack.runtime.daemon import trace
from wolfpack.spec.failover import NO_GROUP, WANTED_OFFLINE, WANTED_ONLINE, make_failover_spec
from wolfpack.spec.resource import SPEC as RESOURCE


def run(path: Path) -> None:
    """A resource that comes online, fails its IsAlive and restarts; a failover manager that learns a group."""
    writer = trace.TraceWriter(path)
    ctx = {"node": 1, "epoch": 2, "seq": 3}
    res = LiveMachine(RESOURCE, restart_threshold=2)
    writer.machine("res0.0", res, ctx)
    for trigger in ("online", "online_succeeded", "is_alive_failed", "restart_delay_elapsed", "online_succeeded"):
        effects = res.step(trigger)
        step = res.last
        assert step is not None
        writer.step("res0.0", {"trigger": trigger, "args": {}, "source": step.source, "dest": step.dest,
                               "outcome": step.outcome, "effects": [e.as_dict() for e in effects]}, ctx)
    fo = LiveMachine(make_failover_spec(3, 2), me=1, wanted=(NO_GROUP,) * 2)
    writer.machine("failover", fo, ctx)
    for trigger, args in [("group_configured", {"group": 1, "wanted": WANTED_OFFLINE, "failback": 0,
                                                "failback_start": -1, "failback_end": -1, "p0": 1, "p1": -1,
                                                "p2": -1}),
                          ("owner_applied", {"group": 1, "node": 1}),
                          ("installed", {"epoch": 1, "m0": 1, "m1": 1, "m2": 0}),
                          ("resume_owned_elapsed", {}),
                          ("group_configured", {"group": 1, "wanted": WANTED_ONLINE, "failback": 0,
                                                "failback_start": -1, "failback_end": -1, "p0": 1, "p1": -1,
                                                "p2": -1})]:
        effects = fo.step(trigger, **args)
        step = fo.last
        assert step is not None
        writer.step("failover", {"trigger": trigger, "args": args, "source": step.source, "dest": step.dest,
                                 "outcome": step.outcome, "effects": [e.as_dict() for e in effects]}, ctx)
    writer.close()


def test_a_legal_run_replays(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    run(path)
    steps, problems = trace.replay_file(path)
    assert (steps, problems) == (10, [])


def test_a_changed_destination_or_effect_or_a_missing_step_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    run(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    wrong_dest = [dict(r, dest="Failed") if r.get("trigger") == "online_succeeded" else r for r in records]
    assert any("leads to" in p for p in trace.replay(wrong_dest)[1])
    no_effects = [dict(r, effects=[]) if r.get("trigger") == "is_alive_failed" else r for r in records]
    assert any("has effects" in p for p in trace.replay(no_effects)[1])
    skipped = [r for r in records if r.get("trigger") != "restart_delay_elapsed"]
    assert trace.replay(skipped)[1]  # the machine is not where the log says
    started = [r for r in records if r.get("kind") == "step" and r["machine"] == "failover"][-1]
    assert started["effects"][0]["name"] == "group_online"  # the owner brings the group online when it is wanted


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    run(path)
    with open(path, "a") as f:
        f.write('{"kind": "step", "machi')
    assert trace.replay_file(path)[1] == []


def test_an_install_then_a_halt_on_a_report_of_that_epoch_is_flagged() -> None:
    """Issue 15: a daemon installed epoch 26, and 3 ms later halted on peer_ahead from a node at epoch 26 (the
    timer thread's report of a heartbeat that arrived before the commit).  The spec now says that report is old
    news, so replaying such a log flags the halt; the same report handled as the spec says replays cleanly, and a
    log written before reports carried the epoch is flagged too (it does not say which epoch the peer had)."""
    from wolfpack.spec.membership import make_membership_spec

    live = LiveMachine(make_membership_spec(3), me=1, epoch=26, members=(True, True, False))
    values = {k: trace._plain(v) for k, v in live.record.values().items()}
    values["state"] = "Stable"
    built = {"kind": "machine", "node": 1, "epoch": 26, "seq": 0, "machine": "membership", "spec": "membership",
             "size": {"n": 3}, "record": values}

    def step(args: dict[str, int], dest: str, effects: list[object]) -> dict[str, object]:
        return {"kind": "step", "node": 1, "epoch": 26, "seq": 0, "machine": "membership", "trigger": "peer_ahead",
                "args": args, "source": "Stable", "dest": dest, "outcome": "", "effects": effects}

    spec = make_membership_spec(3)
    halted = LiveMachine(spec, spec.record(state="Stable", **trace._record_values(spec, values)))
    halt_effects = [e.as_dict() for e in halted.step("peer_ahead", node=0, epoch=27)]
    _, problems = trace.replay([built, step({"node": 0, "epoch": 26}, "Halted", halt_effects)])
    assert any("peer_ahead leads to Stable, the log says Halted" in p for p in problems), problems
    assert trace.replay([built, step({"node": 0, "epoch": 26}, "Stable", [])]) == (1, [])
    assert trace.replay([built, step({"node": 0, "epoch": 27}, "Halted", halt_effects)]) == (1, [])
    _, old = trace.replay([built, step({"node": 0}, "Halted", halt_effects)])
    assert any("peer_ahead is not legal here" in p for p in old), old
