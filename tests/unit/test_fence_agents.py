"""The fencing shell: the agent protocol as bytes, password masking, the timeout kill, metadata parsing (against the
real ``fence_ipmilan``), exit codes, ``fence_node``'s order and fallback, and Wolfpack's two agents run in-process
(the lab agent on a state directory, the SCSI agent on the in-memory SPC disk).

The agent doubles are tiny scripts written to ``tmp_path``: each stands for a device that answers (or does not)
in a chosen way, and logs what it was asked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from wolfpack.errors import ConfigError, FencingError, WolfpackError
from wolfpack.hw.arbiter import pr_key
from wolfpack.runtime.fencing import agents, lab_agent, protocol, scsi_agent
from wolfpack.runtime.fencing.agents import (
    FenceDevice,
    agent_input,
    fence_node,
    fence_node_async,
    mask_text,
    masked,
    parse_metadata,
    run_agent,
    run_agent_async,
)
from wolfpack.runtime.fencing.errors import (
    AgentFailed,
    AgentNotFound,
    FenceConfigError,
    FenceFailed,
    NoFenceDevice,
)

IPMILAN = "/usr/sbin/fence_ipmilan"
SECRET = "hunter2-Sekr1t"

#: An agent double: logs each request (as JSON, one line) to ``log=``; exits with ``rc_<action>=`` (default 0);
#: ``hang=<pidfile>`` starts a child, writes its pid, and hangs; ``echo=1`` prints the password back, as a careless
#: agent might; ``metadata`` lists ``status`` unless ``nostatus`` is in the script's name.
FAKE_AGENT = r'''#!{python}
import json, os, subprocess, sys, time
params = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if "=" in line)
action = params["action"]
if action == "metadata":
    status = "" if "nostatus" in sys.argv[0] else '<action name="status" />'
    print('<?xml version="1.0" ?><resource-agent name="fake" shortdesc="a fake"><parameters>'
          '<parameter name="action" required="1"><content type="string" default="reboot" /></parameter>'
          '<parameter name="ip" required="1"><content type="string" /></parameter>'
          '<parameter name="log" required="0"><content type="string" /></parameter>'
          '<parameter name="password" required="0"><content type="string" /></parameter>'
          '</parameters><actions><action name="off" /><action name="on" />' + status + '</actions></resource-agent>')
    sys.exit(0)
if "log" in params:
    with open(params["log"], "a") as f:
        f.write(json.dumps({{"agent": os.path.basename(sys.argv[0]), **params}}) + "\n")
if "hang" in params:
    child = subprocess.Popen(["sleep", "60"])
    with open(params["hang"], "w") as f:
        f.write(str(child.pid))
    print("connecting...", flush=True)
    time.sleep(60)
if params.get("echo"):
    print("logging in with password " + params.get("password", ""))
    print("2026-01-01 10:00:00,000 ERROR: Failed: login refused for password " + params.get("password", ""),
          file=sys.stderr)
sys.exit(int(params.get("rc_" + action, "0")))
'''


def fake_agent(tmp_path: Path, name: str = "fence_fake") -> str:
    path = tmp_path / name
    path.write_text(FAKE_AGENT.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def requests(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# --- the protocol as bytes ----------------------------------------------------------------------------------------


def test_agent_input_puts_action_first_then_params_then_the_nodes_plug() -> None:
    device = FenceDevice("pdu", "fence_apc", {"ip": "10.0.0.9", "username": "apc", "password": "pw", "port": "7"},
                         {"n1": "3", "n2": None})
    assert agent_input(device, "off", "n1") == "action=off\nip=10.0.0.9\nusername=apc\npassword=pw\nplug=3\n"
    # a node without a plug keeps the device's own port parameter (a one-node device)
    assert agent_input(device, "status", "n2").endswith("password=pw\nport=7\n")
    assert agent_input(device, "monitor") == "action=monitor\nip=10.0.0.9\nusername=apc\npassword=pw\nport=7\n"


def test_agent_input_refuses_an_uncovered_node_and_an_unknown_action() -> None:
    device = FenceDevice("bmc", "fence_ipmilan", {"ip": "10.0.0.9"}, {"1": None})
    with pytest.raises(FenceConfigError, match="does not fence node 2; it fences 1"):
        agent_input(device, "off", 2)
    with pytest.raises(FenceConfigError, match="unknown fence action 'poweroff'"):
        agent_input(device, "poweroff")


@pytest.mark.parametrize(("params", "message"), [
    ({"action": "off"}, "sets 'action' as a parameter"),
    ({"ip": "10.0.0.1\naction=on"}, "line break"),
    ({"bad name": "x"}, "malformed parameter name"),
])
def test_device_refuses_bad_params(params: dict[str, str], message: str) -> None:
    with pytest.raises(FenceConfigError, match=message) as caught:
        FenceDevice("bmc", "fence_ipmilan", params, {"1": None})
    assert isinstance(caught.value, FencingError) and isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, WolfpackError)


def test_device_from_config_takes_a_node_list_or_map_and_names_unknown_keys() -> None:
    listed = FenceDevice.from_config({"name": "b", "agent": "fence_ipmilan", "params": {"ip": "h"}, "nodes": [1, 2]})
    assert listed.nodes == {"1": None, "2": None} and listed.covers(1) and not listed.covers(3)
    mapped = FenceDevice.from_config({"name": "p", "agent": "fence_apc", "nodes": {1: 4}})
    assert mapped.plug_for(1) == "4"
    with pytest.raises(FenceConfigError, match="unknown keys nodez"):
        FenceDevice.from_config({"name": "p", "agent": "fence_apc", "nodez": [1]})


def test_unknown_agent_says_which_package_to_install() -> None:
    with pytest.raises(AgentNotFound, match="install Debian's fence-agents package"):
        agents.resolve_agent("fence_does_not_exist")
    with pytest.raises(AgentNotFound, match="Wolfpack's own agents"):
        agents.resolve_agent("fence_wolfpack_nothing")
    with pytest.raises(AgentNotFound, match="not executable"):
        agents.resolve_agent("/nonexistent/fence_x")


# --- secrets ------------------------------------------------------------------------------------------------------


def test_secrets_are_masked_in_repr_and_mappings() -> None:
    device = FenceDevice("bmc", "fence_ipmilan", {"ip": "h", "password": SECRET, "passwd": SECRET,
                                                   "hexadecimal_kg": "abcd", "username": "admin"}, {"1": None})
    shown = repr(device)
    assert SECRET not in shown and "abcd" not in shown and "admin" in shown
    assert masked(device.params)["passwd"] == "******"
    assert mask_text(f"user admin pw {SECRET}!", device.params) == "user admin pw ******!"


def test_an_agent_echoing_the_password_never_leaks_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    device = FenceDevice("bmc", fake_agent(tmp_path), {"password": SECRET, "echo": "1", "rc_off": "1"}, ["1"])
    with caplog.at_level(logging.DEBUG):
        result = run_agent(device, "off", "1", timeout_s=10)
    assert not result.ok and result.rc == 1
    assert "login refused for password ******" in result.reason
    for text in (result.output, result.stderr, result.reason, result.describe(), repr(result), caplog.text):
        assert SECRET not in text
    assert "password ******" in result.output


# --- running agents -------------------------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def test_timeout_kills_the_agent_and_everything_it_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    device = FenceDevice("bmc", fake_agent(tmp_path), {"hang": str(pidfile)}, ["1"])
    start = time.monotonic()
    result = run_agent(device, "off", "1", timeout_s=1.0)
    assert time.monotonic() - start < 5
    assert result.timed_out and not result.ok and result.rc is None
    assert "no answer within 1 s" in result.reason and "connecting..." in result.output
    deadline = time.monotonic() + 5
    while not _gone(int(pidfile.read_text())) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(int(pidfile.read_text())), "the agent's child survived the timeout"


def test_async_timeout_kills_the_agent_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    device = FenceDevice("bmc", fake_agent(tmp_path), {"hang": str(pidfile)}, ["1"])
    result = asyncio.run(run_agent_async(device, "off", "1", timeout_s=1.0))
    assert result.timed_out and result.rc is None and "connecting..." in result.output
    deadline = time.monotonic() + 5
    while not _gone(int(pidfile.read_text())) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(int(pidfile.read_text()))


@pytest.mark.parametrize(("action", "rc", "ok", "power"), [
    ("status", 0, True, "on"), ("status", 2, True, "off"), ("status", 1, False, None),
    ("off", 0, True, None), ("off", 1, False, None), ("on", 2, False, None), ("monitor", 0, True, None),
])
def test_exit_codes(tmp_path: Path, action: str, rc: int, ok: bool, power: str | None) -> None:
    device = FenceDevice("bmc", fake_agent(tmp_path), {f"rc_{action}": str(rc)}, ["1"])
    result = run_agent(device, action, "1", timeout_s=10)
    assert (result.ok, result.power, result.rc, result.timed_out) == (ok, power, rc, False)
    assert result.action == action and result.node == "1" and result.took_ms >= 0


def test_async_run_reads_the_same_answers(tmp_path: Path) -> None:
    device = FenceDevice("bmc", fake_agent(tmp_path), {"rc_status": "2"}, ["1"])
    result = asyncio.run(run_agent_async(device, "status", "1", timeout_s=10))
    assert result.ok and result.power == "off" and result.rc == 2


# --- metadata -------------------------------------------------------------------------------------------------------


@pytest.fixture
def ipmilan() -> str:
    if not os.access(IPMILAN, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{IPMILAN} is missing: scripts/install installs fence-agents")
        pytest.skip("fence-agents is not installed (apt-get install fence-agents)")
    return IPMILAN


def test_metadata_of_the_real_fence_ipmilan(ipmilan: str) -> None:
    meta = agents.metadata("fence_ipmilan")
    assert meta.agent == "fence_ipmilan" and "IPMI" in meta.shortdesc
    for name in ("ip", "ipport", "username", "password", "lanplus", "plug", "cipher", "method"):
        assert name in meta.names
    assert meta.parameter("action") is not None and meta.parameter("action").required  # type: ignore[union-attr]
    assert meta.parameter("ipport").default == "623"  # type: ignore[union-attr]
    assert meta.parameter("lanplus").type == "boolean"  # type: ignore[union-attr]
    assert meta.parameter("passwd").deprecated  # type: ignore[union-attr]
    assert meta.parameter("password").obsoletes == "passwd"  # type: ignore[union-attr]
    assert {"on", "off", "reboot", "status", "monitor", "metadata"} <= set(meta.actions)
    assert meta.required == ()


def test_validate_against_the_real_metadata_lists_the_parameters(ipmilan: str) -> None:
    good = FenceDevice("bmc", "fence_ipmilan", {"ip": "10.0.0.9", "username": "u", "password": SECRET,
                                                 "lanplus": "1"}, ["1"])
    assert good.validate().agent == "fence_ipmilan"
    bad = FenceDevice("bmc", "fence_ipmilan", {"ip": "10.0.0.9", "pasword": SECRET}, ["1"])
    with pytest.raises(FenceConfigError, match=r"no parameter pasword .*its parameters are: .*password") as caught:
        bad.validate()
    assert SECRET not in str(caught.value)


def test_parse_metadata_refuses_what_is_not_agent_metadata() -> None:
    with pytest.raises(AgentFailed, match="not XML"):
        parse_metadata("usage: fence_x [options]", "fence_x")
    with pytest.raises(AgentFailed, match="not <resource-agent>"):
        parse_metadata("<resource-agents/>", "fence_x")


def test_validate_finds_a_missing_required_parameter(tmp_path: Path) -> None:
    with pytest.raises(FenceConfigError, match="requires ip"):
        FenceDevice("bmc", fake_agent(tmp_path), {"password": "x"}, ["1"]).validate()


# --- fence_node -----------------------------------------------------------------------------------------------------


def test_fence_node_falls_back_in_order_and_confirms(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    first = FenceDevice("bmc", fake_agent(tmp_path, "fence_a"), {"log": str(log), "rc_off": "1"}, ["n1", "n2"])
    other = FenceDevice("other", fake_agent(tmp_path, "fence_b"), {"log": str(log)}, ["n3"])
    second = FenceDevice("pdu", fake_agent(tmp_path, "fence_c"), {"log": str(log), "rc_status": "2"}, {"n2": "4"})
    summary = fence_node([first, other, second], "n2")
    assert summary.fenced and summary.device == "pdu" and summary.outcome == "fenced"
    assert [(r["agent"], r["action"], r.get("plug")) for r in requests(log)] == [
        ("fence_a", "off", None), ("fence_c", "off", "4"), ("fence_c", "status", "4")]
    assert [(a.device, a.action, a.ok) for a in summary.attempts] == [
        ("bmc", "off", False), ("pdu", "off", True), ("pdu", "status", True)]
    assert "confirmed power off" in summary.describe()
    assert summary.raise_for_outcome() is summary


def test_fence_node_stops_at_the_first_success(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    first = FenceDevice("bmc", fake_agent(tmp_path, "fence_a"), {"log": str(log), "rc_status": "2"}, ["n1"])
    second = FenceDevice("pdu", fake_agent(tmp_path, "fence_b"), {"log": str(log)}, ["n1"])
    assert fence_node([first, second], "n1").device == "bmc"
    assert {r["agent"] for r in requests(log)} == {"fence_a"}


def test_success_that_status_contradicts_does_not_count(tmp_path: Path) -> None:
    liar = FenceDevice("liar", fake_agent(tmp_path, "fence_a"), {"rc_status": "0"}, ["n1"])
    broken = FenceDevice("broken", fake_agent(tmp_path, "fence_b"), {"rc_status": "1"}, ["n1"])
    summary = fence_node([liar, broken], "n1")
    assert summary.outcome == "failed" and not summary.fenced
    assert "liar: off reported success but status says the power is on" in summary.reason
    assert "broken: off reported success but status could not confirm it" in summary.reason
    with pytest.raises(FenceFailed, match=r"all devices failed.*must not be taken over"):
        summary.raise_for_outcome()


def test_all_devices_failing_lists_every_reason(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    slow = FenceDevice("slow", fake_agent(tmp_path, "fence_a"), {"hang": str(pidfile)}, ["n1"])
    refused = FenceDevice("refused", fake_agent(tmp_path, "fence_b"), {"rc_off": "1", "echo": "1",
                                                                          "password": SECRET}, ["n1"])
    summary = fence_node([slow, refused], "n1", timeout_s=0.5)
    assert summary.outcome == "failed" and len(summary.attempts) == 2
    assert "slow: no answer within 0.5 s" in summary.reason
    assert "refused: exit status 1: ERROR: Failed: login refused for password ******" in summary.reason
    assert SECRET not in summary.describe()


def test_no_device_for_node(tmp_path: Path) -> None:
    device = FenceDevice("bmc", fake_agent(tmp_path), {}, ["n1"])
    summary = fence_node([device], "n9")
    assert summary.outcome == "no-device" and summary.attempts == ()
    with pytest.raises(NoFenceDevice, match="no fence device covers it"):
        summary.raise_for_outcome()


def test_unconfirmed_where_the_agent_has_no_status(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    device = FenceDevice("bmc", fake_agent(tmp_path, "fence_nostatus"), {"log": str(log)}, ["n1"])
    summary = fence_node([device], "n1")
    assert summary.fenced and "not confirmed" in summary.reason
    assert [r["action"] for r in requests(log)] == ["off"]
    reboot = fence_node([device], "n1", action="reboot")
    assert reboot.fenced and [a.action for a in reboot.attempts] == ["reboot"]


def test_fence_node_async(tmp_path: Path) -> None:
    first = FenceDevice("bmc", fake_agent(tmp_path, "fence_a"), {"rc_off": "1"}, ["n1"])
    second = FenceDevice("pdu", fake_agent(tmp_path, "fence_b"), {"rc_status": "2"}, ["n1"])
    summary = asyncio.run(fence_node_async([first, second], "n1"))
    assert summary.device == "pdu" and [a.action for a in summary.attempts] == ["off", "off", "status"]


# --- the lab agent ----------------------------------------------------------------------------------------------------


def lab(params: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO("".join(f"{k}={v}\n" for k, v in params.items()))
    rc = protocol.main(lab_agent.handle, lab_agent.PARAMS, lab_agent.ACTIONS, [], stdin, out, err)
    return rc, out.getvalue(), err.getvalue()


def test_lab_agent_metadata_parses_as_fence_agent_metadata() -> None:
    rc, out, _ = lab({"action": "metadata"})
    meta = parse_metadata(out, "fence_wolfpack_lab")
    assert rc == 0 and meta.agent == "fence_wolfpack_lab"
    assert {"netns", "plug", "state_dir", "action"} <= set(meta.names)
    assert meta.parameter("state_dir").default == lab_agent.STATE_DIR  # type: ignore[union-attr]
    assert set(meta.actions) == set(lab_agent.ACTIONS)


def test_lab_agent_off_status_on_on_a_state_dir(tmp_path: Path) -> None:
    netns_dir, state = tmp_path / "netns", tmp_path / "state"
    netns_dir.mkdir()
    (netns_dir / "wpn1").touch()  # stands for the bind mount; no process lives in a plain file's "namespace"
    base = {"netns_dir": str(netns_dir), "state_dir": str(state)}
    assert lab({**base, "action": "status", "plug": "wpn1"})[0] == 0
    rc, out, _ = lab({**base, "action": "off", "port": "wpn1"})
    assert rc == 0 and "Powered OFF" in out and (state / "wpn1").exists()
    assert lab({**base, "action": "status", "netns": "wpn1"}) == (2, "Status: OFF\n", "")
    assert lab({**base, "action": "on", "netns": "wpn1"})[0] == 0 and not (state / "wpn1").exists()
    assert lab({**base, "action": "list"})[1] == "wpn1,wpn1\n"
    rc, _, err = lab({**base, "action": "status", "netns": "wpn9"})
    assert rc == 1 and "no network namespace wpn9" in err
    rc, _, err = lab({**base, "action": "off", "netns": "../etc"})
    assert rc == 1 and "is not a namespace name" in err
    rc, _, err = lab({**base, "action": "off"})
    assert rc == 1 and "no namespace given" in err
    rc, _, err = lab({**base, "action": "status", "netns": "wpn1", "password": SECRET})
    assert rc == 0 and "Ignoring unknown option 'password'" in err and SECRET not in err


def test_lab_agent_runs_through_run_agent(tmp_path: Path) -> None:
    if shutil.which("fence_wolfpack_lab", path=os.path.dirname(sys.executable)) is None:
        pytest.fail("fence_wolfpack_lab is not installed: pip install -e . (scripts/install)")
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    (netns_dir / "wpn1").touch()
    device = FenceDevice("lab", "fence_wolfpack_lab", {"netns_dir": str(netns_dir), "state_dir": str(tmp_path)},
                         {"n1": "wpn1"})
    device.validate()
    summary = fence_node([device], "n1")
    assert summary.fenced and summary.attempts[-1].power == "off"


# --- the SCSI agent on the in-memory SPC disk ------------------------------------------------------------------------


def scsi(params: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO("".join(f"{k}={v}\n" for k, v in params.items()))
    rc = protocol.main(scsi_agent.handle, scsi_agent.PARAMS, scsi_agent.ACTIONS, [], stdin, out, err)
    return rc, out.getvalue(), err.getvalue()


def test_scsi_keys_follow_the_daemons_rule() -> None:
    assert scsi_agent.key_of("2", "wolfpack", "plug") == pr_key("wolfpack", 2) == (
        pr_key("wolfpack", 0) & ~0xFFFFFFFF) | 3
    assert scsi_agent.key_of("0xab", "wolfpack", "plug") == 0xAB
    with pytest.raises(protocol.AgentError, match="neither a node id"):
        scsi_agent.key_of("node-a", "wolfpack", "plug")
    assert scsi_agent.disk_url({"portal": "10.0.0.9:3260", "target": "iqn.x:q", "lun": "2"}) == \
        "iscsi://10.0.0.9:3260/iqn.x:q/2"


def test_scsi_agent_on_off_status_on_a_memory_disk(tmp_path: Path) -> None:
    url = {"url": f"memory://fence-{tmp_path.name}"}
    assert scsi({**url, "action": "on", "plug": "1"})[0] == 0
    assert scsi({**url, "action": "on", "plug": "2"})[0] == 0
    assert scsi({**url, "action": "status", "plug": "2"})[0] == 0
    rc, _, err = scsi({**url, "action": "off", "plug": "2", "nodename": "3"})
    assert rc == 1 and "is not registered" in err
    rc, _, err = scsi({**url, "action": "off", "plug": "1", "nodename": "1"})
    assert rc == 1 and "refusing to fence this node's own key" in err
    rc, out, _ = scsi({**url, "action": "off", "plug": "2", "nodename": "1"})
    assert rc == 0 and "PREEMPT AND ABORT" in out and "degraded" not in out
    assert scsi({**url, "action": "status", "plug": "2"})[:2] == (2, "Status: OFF\n")
    assert scsi({**url, "action": "list"})[1] == f"{pr_key('wolfpack', 1):#x},node 1\n" * 2
    rc, _, err = scsi({"action": "status", "plug": "2"})
    assert rc == 1 and "no disk given" in err
