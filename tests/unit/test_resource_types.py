"""Resource types (R6) called directly, without a monitor: the plug-in loader, the property
schema, Generic Application with a real HTTP server, Generic Script with a shell script and
with the real OCF Dummy agent of Debian's resource-agents package."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from wolfpack.errors import ResourceTypeError
from wolfpack.runtime.resource_types import health, ocf, process_groups
from wolfpack.runtime.resource_types.base import (
    EntryPointFailed,
    Operation,
    ResourceContext,
    Severity,
    available_types,
    load_type,
    load_types,
)
from wolfpack.runtime.resource_types.generic_application import GenericApplication
from wolfpack.runtime.resource_types.generic_script import GenericScript

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
NEEDS_DUMMY = "the OCF Dummy agent is missing: apt-get install resource-agents (the test setup installs it)"


def context(tmp_path: Path, name: str = "r1") -> ResourceContext:
    work = tmp_path / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    return ResourceContext(resource_id=name, work_dir=work, looks_alive_ms=100, is_alive_ms=100,
                           pending_timeout_ms=10_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def cleanup(*apps: GenericApplication) -> Iterator[None]:
    try:
        yield
    finally:
        for app in apps:
            if app.pid is not None:
                process_groups.kill_group(app.pid, wait_s=2)


# --- plug-ins --------------------------------------------------------------------------


def test_types_are_found_through_the_entry_point_group() -> None:
    assert {"Generic Application", "Generic Script"} <= set(available_types())
    types = load_types()
    assert types["Generic Application"] is GenericApplication
    assert types["Generic Script"] is GenericScript


def test_unknown_or_broken_types_are_clear_errors() -> None:
    with pytest.raises(ResourceTypeError, match=r"unknown resource type 'Generic Frobnicator'.*'Generic Application'"):
        load_type("Generic Frobnicator")
    with pytest.raises(ResourceTypeError, match="not a ResourceType subclass"):
        load_type("wolfpack.runtime.resource_types.base:Severity")
    with pytest.raises(ResourceTypeError, match="cannot be imported"):
        load_type("wolfpack.no_such_module:Thing")


def test_property_schema_lists_every_problem_at_once(tmp_path: Path) -> None:
    bad = {"cmd": "x", "stop_grace_ms": "10", "env": {"A": 1}, "health": {"tcp": "nohost", "http": "x"}}
    with pytest.raises(ResourceTypeError) as caught:
        GenericApplication("web", bad, context(tmp_path))
    message = str(caught.value)
    for part in ("unknown property 'cmd'", "'command' is required", "'stop_grace_ms' must be an integer",
                 "'env' must map names to string values", "'health' must name exactly one check",
                 "the type knows: command, cwd"):
        assert part in message, message
    with pytest.raises(ResourceTypeError, match="needs a 'health' check"):
        GenericApplication("web", {"command": "true", "online_waits_for_health": True}, context(tmp_path))
    with pytest.raises(ResourceTypeError, match="must be one of"):
        GenericScript("s", {"script": "/bin/true", "mode": "lsb"}, context(tmp_path))
    with pytest.raises(ResourceTypeError, match="absolute path"):
        GenericScript("s", {"script": "run.sh"}, context(tmp_path))
    assert health.problem({"command": "exit 0", "timeout_ms": 0}) == "'timeout_ms' must be a positive integer"


# --- Generic Application ------------------------------------------------------------------


def test_generic_application_serves_and_its_checks_follow_the_process(tmp_path: Path) -> None:
    port = free_port()
    app = GenericApplication("web", {
        "command": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        "health": {"http": f"http://127.0.0.1:{port}/"}, "online_waits_for_health": True,
        "health_retry_ms": 20,
    }, context(tmp_path, "web"))
    with cleanup(app):
        app.open()
        app.online(Operation("Online"))  # returns once the HTTP GET succeeds
        assert app.looks_alive() and app.is_alive()
        assert health.check({"tcp": f"127.0.0.1:{port}"}, env={}, cwd=None) == (True, "")
        assert (app.context.work_dir / "application.pid").read_text().split()[0] == str(app.pid)
        assert health.check({"command": "exit 3"}, env=dict(os.environ), cwd=None)[0] is False

        assert app.pid is not None
        os.kill(app.pid, signal.SIGKILL)
        wait_until(lambda: not app.looks_alive(), what="LooksAlive to see the server gone")
        with pytest.raises(EntryPointFailed, match="not running"):
            app.is_alive()
        ok, why = health.check({"tcp": f"127.0.0.1:{port}"}, env={}, cwd=None)
        assert not ok and "TCP connect" in why
        ok, why = health.check({"http": f"http://127.0.0.1:{port}/"}, env={}, cwd=None)
        assert not ok and "HTTP GET" in why
        app.terminate()
        assert app.pid is None and not (app.context.work_dir / "application.pid").exists()


def test_offline_stops_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    app = GenericApplication("grp", {"command": "trap '' TERM; sleep 30 & sleep 30 & wait", "stop_grace_ms": 200},
                             context(tmp_path, "grp"))
    with cleanup(app):
        app.open()
        app.online(Operation("Online"))
        assert app.pid is not None
        pgid = app.pid
        wait_until(lambda: len(process_groups.group_members(pgid)) == 3, what="the shell and its two sleeps")
        app.offline(Operation("Offline"))
        assert process_groups.group_members(pgid) == []
        assert not app.looks_alive()


def test_a_new_instance_adopts_the_running_application(tmp_path: Path) -> None:
    """What a restarted monitor relies on: the pid file names the running leader."""
    first = GenericApplication("a", {"command": ["sleep", "30"]}, context(tmp_path, "a"))
    with cleanup(first):
        first.online(Operation("Online"))
        second = GenericApplication("a", {"command": ["sleep", "30"]}, context(tmp_path, "a"))
        second.open()
        assert second.pid == first.pid and second.looks_alive()
        second.terminate()
        assert first.pid is not None
        assert process_groups.group_members(first.pid) == []


def test_a_command_that_cannot_start_is_a_hard_failure(tmp_path: Path) -> None:
    app = GenericApplication("x", {"command": ["/nonexistent/daemon"]}, context(tmp_path, "x"))
    with pytest.raises(EntryPointFailed, match="cannot start") as caught:
        app.online(Operation("Online"))
    assert caught.value.severity is Severity.HARD


# --- OCF and Generic Script ---------------------------------------------------------------------


def test_ocf_exit_codes_map_to_results_and_severities() -> None:
    assert [ocf.severity(c) for c in range(10)] == [
        Severity.SOFT, Severity.SOFT, Severity.HARD, Severity.HARD, Severity.HARD, Severity.HARD,
        Severity.FATAL, Severity.SOFT, Severity.SOFT, Severity.SOFT]
    assert ocf.succeeded("stop", 7) and not ocf.succeeded("start", 7)
    assert ocf.succeeded("monitor", 8) and not ocf.succeeded("monitor", 7)
    assert ocf.meaning(7) == "7 (not running)" and ocf.meaning(-9) == "killed by signal 9"


def test_dummy_meta_data_describes_its_parameters() -> None:
    if not DUMMY.exists():
        pytest.fail(NEEDS_DUMMY)
    text = subprocess.run([str(DUMMY), "meta-data"], capture_output=True, text=True,
                          env={**os.environ, "OCF_ROOT": ocf.DEFAULT_OCF_ROOT}, check=True).stdout
    meta = ocf.parse_meta_data(text, "Dummy")
    assert meta.name == "Dummy" and {p.name for p in meta.parameters} == {"state", "fake"}
    assert {"start", "stop", "monitor", "validate-all"} <= set(meta.actions)
    assert meta.problems({"state": "/tmp/x", "nope": "1"}) == ["unknown parameter 'nope'"]
    with pytest.raises(ResourceTypeError, match="not XML"):
        ocf.parse_meta_data("usage: Dummy ...", "Dummy")


def test_generic_script_runs_the_ocf_dummy_agent_as_is(tmp_path: Path) -> None:
    if not DUMMY.exists():
        pytest.fail(NEEDS_DUMMY)
    state = tmp_path / "dummy.state"
    agent = GenericScript("d1", {"script": "heartbeat:Dummy", "mode": "ocf", "parameters": {"state": str(state)}},
                          context(tmp_path, "d1"))
    agent.open()  # meta-data and validate-all
    with pytest.raises(EntryPointFailed, match=r"monitor exited 7 \(not running\)") as caught:
        agent.looks_alive()
    assert caught.value.severity is Severity.SOFT
    agent.online(Operation("Online"))
    assert state.exists() and agent.looks_alive() and agent.is_alive()
    state.unlink()
    with pytest.raises(EntryPointFailed, match="not running"):
        agent.is_alive()
    agent.offline(Operation("Offline"))  # stop of a stopped resource succeeds
    assert "--- start: exit 0" in (agent.context.work_dir / "script.log").read_text()


def test_ocf_open_rejects_bad_parameters_and_failed_validation(tmp_path: Path) -> None:
    if not DUMMY.exists():
        pytest.fail(NEEDS_DUMMY)
    unknown = GenericScript("d2", {"script": str(DUMMY), "mode": "ocf", "parameters": {"stat": "/tmp/x"}},
                            context(tmp_path, "d2"))
    with pytest.raises(EntryPointFailed, match=r"unknown parameter 'stat'.*the agent knows: state, fake") as caught:
        unknown.open()
    assert caught.value.severity is Severity.FATAL
    unwritable = GenericScript("d3", {"script": str(DUMMY), "mode": "ocf",
                                      "parameters": {"state": "/nonexistent/dir/state"}}, context(tmp_path, "d3"))
    with pytest.raises(EntryPointFailed, match=r"validate-all exited 2 \(invalid argument\).*not writable") as caught:
        unwritable.open()
    assert caught.value.severity is Severity.HARD
    missing = GenericScript("d4", {"script": "heartbeat:NoSuchAgent", "mode": "ocf"}, context(tmp_path, "d4"))
    with pytest.raises(EntryPointFailed, match="does not exist or is not executable"):
        missing.open()


SCRIPT = """#!/bin/sh
flag="$OCF_RESKEY_flag"
case "$1" in
  online) echo started; touch "$flag"; [ -n "$OCF_RESKEY_hang" ] && { touch "$flag.hanging"; sleep 30; }; exit 0;;
  offline) rm -f "$flag"; echo stopped >> "$flag.log"; exit 0;;
  looksalive) [ -f "$flag" ];;
  isalive) [ -f "$flag" ] || { echo "no flag file" >&2; exit 5; };;
  *) exit 3;;
esac
"""


def script(tmp_path: Path) -> Path:
    path = tmp_path / "svc.sh"
    path.write_text(SCRIPT)
    path.chmod(0o755)
    return path


def test_generic_script_plain_actions_and_exit_code_severity(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    svc = GenericScript("s1", {"script": str(script(tmp_path)), "parameters": {"flag": str(flag)}},
                        context(tmp_path, "s1"))
    svc.open()
    svc.online(Operation("Online"))
    assert svc.looks_alive() and svc.is_alive()
    flag.unlink()
    with pytest.raises(EntryPointFailed, match=r"looksalive exited 1") as soft:
        svc.looks_alive()
    assert soft.value.severity is Severity.SOFT
    with pytest.raises(EntryPointFailed, match=r"isalive exited 5 .*: no flag file") as hard:
        svc.is_alive()
    assert hard.value.severity is Severity.HARD
    svc.offline(Operation("Offline"))
    assert (tmp_path / "flag.log").read_text() == "stopped\n"


def test_terminate_kills_a_hung_action_then_stops(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    svc = GenericScript("s2", {"script": str(script(tmp_path)), "parameters": {"flag": str(flag), "hang": "1"}},
                        context(tmp_path, "s2"))
    failures: list[BaseException] = []

    def online() -> None:
        try:
            svc.online(Operation("Online"))
        except EntryPointFailed as exc:
            failures.append(exc)

    worker = threading.Thread(target=online)
    worker.start()
    try:
        wait_until((tmp_path / "flag.hanging").exists, what="the online action to hang")
        svc.terminate()
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert failures and "killed by signal 9" in str(failures[0])
        assert not flag.exists() and (tmp_path / "flag.log").read_text() == "stopped\n"
    finally:
        for proc in list(svc._running):
            process_groups.kill_group(proc.pid, proc, wait_s=2)
        worker.join(timeout=5)
