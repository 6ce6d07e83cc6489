"""Resource monitors as real processes (R1-R5): the protocol, polling, PendingTimeout,
crash attribution through the shared call record and restart, and what a monitor does
when its daemon dies.  Short poll intervals (100 ms) keep it quick; every wait is on a
condition (an event from the monitor, a process gone), never a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from wolfpack.errors import MonitorError, ResourceTypeError
from wolfpack.runtime.monitor.client import MonitorClient, monitor_name
from wolfpack.runtime.monitor.process import work_dir_for
from wolfpack.runtime.monitor.protocol import (
    ENTRY_POINT_COMMANDS,
    MACHINE_EVENTS,
    decode_command,
    decode_message,
    encode,
)
from wolfpack.runtime.monitor.shared_state import CallRecordTable
from wolfpack.runtime.resource_types import process_groups
from wolfpack.runtime.resource_types.base import EntryPointFailed, Severity
from wolfpack.spec.resource import SPEC

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
FAST = {"looks_alive_ms": 100, "is_alive_ms": 100_000, "pending_timeout_ms": 10_000}


def run(coro: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


async def expect(client: MonitorClient, op: str, resource: str | None = None, timeout: float = 10.0,
                 seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The next event ``op`` (about ``resource``); the events passed over go to ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            message = await asyncio.wait_for(client.events.get(), deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"no {op!r} for {resource!r} within {timeout} s; passed over: {seen}") from None
        if message["op"] == op and (resource is None or message.get("resource") == resource):
            return message
        if seen is not None:
            seen.append(message)


def app_pid(run_dir: Path, resource: str) -> int:
    return int((work_dir_for(run_dir, resource) / "application.pid").read_text().split()[0])


def kill_leftovers(run_dir: Path) -> None:
    """Kill every application a test left behind (by the pid files in the run directory)."""
    for pid_file in run_dir.glob("resources/*/application.pid"):
        with contextlib.suppress(ValueError, OSError):
            process_groups.kill_group(int(pid_file.read_text().split()[0]), wait_s=2)


@contextlib.asynccontextmanager
async def monitor(tmp_path: Path, **options: Any) -> AsyncIterator[MonitorClient]:
    client = MonitorClient("default", tmp_path / "run", **options)
    await client.start()
    try:
        yield client
    finally:
        try:
            await client.shutdown(timeout_s=5)
        finally:
            kill_leftovers(tmp_path / "run")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- protocol ------------------------------------------------------------------------------


def test_reported_events_and_carried_calls_are_the_resource_machines() -> None:
    """The monitor speaks the machine's vocabulary: every event it reports is a resource-machine
    event, and it carries out every entry point the machine calls."""
    assert set(MACHINE_EVENTS) <= {e.name for e in SPEC.events}
    called = {eff.name for t in SPEC.transitions for eff in t.effects if eff.kind == "call"}
    assert called == set(ENTRY_POINT_COMMANDS)


def test_protocol_checks_every_command_field() -> None:
    good = encode("open", resource="r", type="Generic Script", properties={}, looks_alive_ms=100,
                  is_alive_ms=1000, pending_timeout_ms=500)
    assert decode_command(good)["resource"] == "r"
    bad = {
        b"not json\n": "not JSON",
        b"[1, 2]\n": "must be a JSON object",
        b'{"v": 2, "op": "ping"}\n': "version 2 is not 1",
        b'{"v": 1, "op": "frobnicate"}\n': "unknown command 'frobnicate'",
        b'{"v": 1, "op": "online"}\n': "missing field 'resource'",
        b'{"v": 1, "op": "online", "resource": 7, "colour": 1}\n':
            r"unknown field 'colour'.*'resource' has the wrong type",
        encode("open", resource="r", type="t", properties={}, looks_alive_ms=5, is_alive_ms=True,
               pending_timeout_ms=1): r"'looks_alive_ms' must be at least 10.*'is_alive_ms' has the wrong type",
    }
    for line, why in bad.items():
        with pytest.raises(MonitorError, match=why):
            decode_command(line)
    with pytest.raises(MonitorError, match="unknown message"):
        decode_message(encode("online", resource="r"))


def test_monitor_names_are_safe_file_names() -> None:
    assert monitor_name("web", separate=False) == "default"
    assert monitor_name("a/b c", separate=True) == "separate-a%2Fb%20c"
    with pytest.raises(MonitorError, match="cannot name files"):
        MonitorClient("../x", Path("/tmp"))


def test_call_record_is_shared_and_survives_its_writer(tmp_path: Path) -> None:
    daemon_side = CallRecordTable.create(tmp_path / "calls", slots=2)
    monitor_side = CallRecordTable.attach(tmp_path / "calls")
    first = monitor_side.enter("Online", "web")
    second = monitor_side.enter("LooksAlive", "db")
    assert monitor_side.enter("IsAlive", "x") == -1 and daemon_side.unrecorded == 1
    assert [(c.entry_point, c.resource) for c in daemon_side.in_flight()] == [("Online", "web"), ("LooksAlive", "db")]
    monitor_side.leave(first)
    monitor_side.close()  # the writer is gone; what it wrote stays
    assert [(c.entry_point, c.resource, c.seq) for c in daemon_side.in_flight()] == [("LooksAlive", "db", 2)]
    assert second >= 0
    (tmp_path / "junk").write_bytes(b"x" * 64)
    with pytest.raises(MonitorError, match="not a version-1 monitor call record"):
        CallRecordTable.attach(tmp_path / "junk")


def test_malformed_lines_are_rejected_and_the_connection_stays_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path) as client:
            for line, why in ((b"garbage\n", "not JSON"),
                              (b'{"v": 1, "op": "frobnicate"}\n', "unknown command 'frobnicate'"),
                              (b"x" * (3 << 20) + b"\n", "longer than 1048576 bytes was dropped"),
                              (encode("online", resource="nobody"), "'nobody' is not open in this monitor")):
                client.send_raw(line)
                message = await expect(client, "log")
                assert message["level"] == "error" and why in message["message"]
            await client.ping()  # still connected, to the same process
            assert not client.crashes

    run(scenario())


def test_open_failures_come_back_as_clear_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path) as client:
            with pytest.raises(ResourceTypeError, match="unknown resource type 'Nope'") as unknown:
                await client.open("a", "Nope", {}, **FAST)
            assert isinstance(unknown.value, EntryPointFailed) and unknown.value.severity is Severity.HARD
            with pytest.raises(ResourceTypeError, match="'command' is required"):
                await client.open("b", "Generic Application", {"comand": "true"}, **FAST)
            await client.open("c", "Generic Application", {"command": "true"}, **FAST)
            with pytest.raises(ResourceTypeError, match="already open"):
                await client.open("c", "Generic Application", {"command": "true"}, **FAST)

    run(scenario())


# --- Generic Application through a monitor ------------------------------------------------------


def test_a_dead_server_is_reported_by_looks_alive_then_is_alive(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path) as client:
            port = free_port()
            await client.open("web", "Generic Application", {
                "command": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                "health": {"http": f"http://127.0.0.1:{port}/"}, "online_waits_for_health": True,
                "health_retry_ms": 20,
            }, **FAST)
            client.online("web", op_id=1)
            assert (await expect(client, "online_succeeded", "web"))["op_id"] == 1
            os.kill(app_pid(client.run_dir, "web"), signal.SIGKILL)
            seen: list[dict[str, Any]] = []
            failed = await expect(client, "looks_alive_failed", "web", seen=seen)
            assert "returned false" in failed["detail"]
            assert not [m for m in seen if m["op"] in ("is_alive_failed", "looks_alive_failed")]
            client.call("IsAlive", "web")  # what the machine does on looks_alive_failed
            assert "not running" in (await expect(client, "is_alive_failed", "web"))["detail"]
            client.call("Terminate", "web")
            assert (await expect(client, "terminated", "web"))["ok"] is True

    run(scenario())


def test_offline_through_the_monitor_stops_the_process_group(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path) as client:
            await client.open("grp", "Generic Application",
                              {"command": "sleep 30 & sleep 30 & wait", "stop_grace_ms": 2000}, **FAST)
            client.online("grp")
            await expect(client, "online_succeeded", "grp")
            pgid = app_pid(client.run_dir, "grp")
            wait_until(lambda: len(process_groups.group_members(pgid)) == 3, what="the shell and two sleeps")
            client.offline("grp", op_id="o1")
            assert (await expect(client, "offline_succeeded", "grp"))["op_id"] == "o1"
            assert process_groups.group_members(pgid) == []

    run(scenario())


def test_a_hung_online_times_out_without_blocking_other_resources(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path) as client:
            await client.open("steady", "Generic Application", {"command": ["sleep", "30"]}, **FAST)
            client.online("steady")
            await expect(client, "online_succeeded", "steady")
            closed_port = free_port()
            await client.open("stuck", "Generic Application", {
                "command": ["sleep", "30"], "health": {"tcp": f"127.0.0.1:{closed_port}"},
                "online_waits_for_health": True, "health_retry_ms": 20,
            }, looks_alive_ms=100, is_alive_ms=100_000, pending_timeout_ms=1500)
            client.online("stuck", op_id=7)
            # While stuck's Online hangs, steady is still polled:
            os.kill(app_pid(client.run_dir, "steady"), signal.SIGKILL)
            seen: list[dict[str, Any]] = []
            await expect(client, "looks_alive_failed", "steady", seen=seen)
            assert not [m for m in seen if m.get("resource") == "stuck" and m["op"] in MACHINE_EVENTS]
            timeout = await expect(client, "pending_timeout", "stuck")
            assert timeout["op_id"] == 7 and timeout["entry_point"] == "Online"
            pgid = app_pid(client.run_dir, "stuck")
            client.terminate("stuck")  # what the machine orders after pending_timeout
            await expect(client, "terminated", "stuck")
            assert process_groups.group_members(pgid) == []

    run(scenario())


# --- Generic Script with the real OCF Dummy agent -----------------------------------------------


def test_the_ocf_dummy_agent_through_the_monitor(tmp_path: Path) -> None:
    if not DUMMY.exists():
        pytest.fail("the OCF Dummy agent is missing: apt-get install resource-agents (the test setup installs it)")
    state = tmp_path / "dummy.state"

    async def scenario() -> None:
        async with monitor(tmp_path) as client:
            await client.open("dummy", "Generic Script",
                              {"script": "heartbeat:Dummy", "mode": "ocf", "parameters": {"state": str(state)}},
                              looks_alive_ms=100, is_alive_ms=250, pending_timeout_ms=10_000)
            client.online("dummy")
            await expect(client, "online_succeeded", "dummy")
            assert state.exists()
            state.unlink()  # the resource "dies"
            failed = await expect(client, "looks_alive_failed", "dummy")
            assert failed["detail"] == "Dummy monitor exited 7 (not running): No process state file found"
            assert failed["severity"] == "soft"
            client.is_alive("dummy")
            await expect(client, "is_alive_failed", "dummy")
            client.offline("dummy")
            await expect(client, "offline_succeeded", "dummy")

    run(scenario())


# --- R5: a crash is attributed, the monitor restarted, resources re-opened ----------------------

CRASHING_TYPES = '''
import ctypes
import os
from pathlib import Path

from wolfpack.runtime.resource_types.base import Property, PropertySchema, ResourceType


class Steady(ResourceType):
    """Alive while its flag file exists; logs every Open with the monitor's pid."""

    type_name = "Steady"
    schema = PropertySchema((Property("flag", (str,), "the flag file", required=True),))

    def open(self):
        with open(self.properties["flag"] + ".opens", "a") as f:
            f.write(f"{os.getpid()}\\n")

    def online(self, op):
        Path(self.properties["flag"]).touch()

    def offline(self, op):
        Path(self.properties["flag"]).unlink(missing_ok=True)

    def terminate(self):
        Path(self.properties["flag"]).unlink(missing_ok=True)

    def looks_alive(self):
        return Path(self.properties["flag"]).exists()

    def is_alive(self):
        return self.looks_alive()


class Progressing(Steady):
    """An Online that takes four PendingTimeouts' worth of time but reports progress."""

    def online(self, op):
        for step in range(4):
            op.report_pending(f"step {step}")
            if op.wait(0.1):
                return
        Path(self.properties["flag"]).touch()


class SegfaultInOnline(Steady):
    def online(self, op):
        ctypes.string_at(0)  # SIGSEGV in the monitor process
'''


def crash_module(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "crashing_types.py").write_text(CRASHING_TYPES)
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def test_progress_reports_restart_pending_timeout(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path, env=crash_module(tmp_path)) as client:
            await client.open("slow", "crashing_types:Progressing", {"flag": str(tmp_path / "slow")},
                              looks_alive_ms=100, is_alive_ms=100_000, pending_timeout_ms=250)
            client.online("slow", op_id=9)
            seen: list[dict[str, Any]] = []
            await expect(client, "online_succeeded", "slow", seen=seen)
            assert [m["detail"] for m in seen if m["op"] == "online_pending"] == [f"step {i}" for i in range(4)]
            assert all(m.get("op_id") == 9 for m in seen if m["op"] == "online_pending")
            assert "pending_timeout" not in [m["op"] for m in seen]

    run(scenario())


def test_a_crash_is_attributed_to_its_resource_and_the_monitor_restarted(tmp_path: Path) -> None:
    good_flag, bad_flag = tmp_path / "good", tmp_path / "bad"

    async def scenario() -> None:
        async with monitor(tmp_path, env=crash_module(tmp_path)) as client:
            await client.open("good", "crashing_types:Steady", {"flag": str(good_flag)}, **FAST)
            await client.open("bad", "crashing_types:SegfaultInOnline", {"flag": str(bad_flag)}, **FAST)
            client.online("good")
            await expect(client, "online_succeeded", "good")
            first_pid = client.pid
            client.online("bad", op_id=3)
            crash = await expect(client, "monitor_crashed")
            assert (crash["resource"], crash["entry_point"], crash["signal"]) == ("bad", "Online", "SIGSEGV")
            assert crash["attribution"] == "faulting thread" and crash["pid"] == first_pid
            failed = await expect(client, "online_failed", "bad")
            assert failed["synthesized"] and failed["op_id"] == 3 and "SIGSEGV" in failed["detail"]
            restarted = await expect(client, "monitor_restarted")
            assert sorted(restarted["reopened"]) == ["bad", "good"] and restarted["watching"] == ["good"]
            assert restarted["crashed_in"] == {"resource": "bad", "entry_point": "Online"}
            assert client.pid != first_pid
            opens = (tmp_path / "good.opens").read_text().split()
            assert opens == [str(first_pid), str(client.pid)]
            good_flag.unlink()  # the new monitor polls good at once
            await expect(client, "looks_alive_failed", "good")
            assert "Segmentation fault" in client.log_path.read_text()

    run(scenario())


def test_a_monitor_that_keeps_crashing_is_given_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with monitor(tmp_path, env=crash_module(tmp_path), max_restarts=0) as client:
            await client.open("bad", "crashing_types:SegfaultInOnline", {"flag": str(tmp_path / "bad")}, **FAST)
            client.online("bad")
            await expect(client, "monitor_crashed")
            failed = await expect(client, "monitor_failed")
            assert "is not restarted: it crashed 1 times" in failed["error"]
            with pytest.raises(MonitorError, match="is not restarted"):
                client.online("bad")

    run(scenario())


# --- R4: a monitor whose daemon dies terminates its resources ----------------------------------


def _gone(pid: int) -> bool:
    return not process_groups.is_running(pid)


def test_the_monitor_terminates_its_resources_when_the_socket_closes(tmp_path: Path) -> None:
    """Raw protocol, no client: close the daemon's end of the socket."""
    run_dir = tmp_path / "run"
    record = CallRecordTable.create(tmp_path / "calls")
    daemon_end, monitor_end = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wolfpack.runtime.monitor", "--fd", str(monitor_end.fileno()),
         "--record", str(record.path), "--run-dir", str(run_dir), "--name", "raw"],
        pass_fds=(monitor_end.fileno(),), stderr=subprocess.DEVNULL, start_new_session=True)
    monitor_end.close()
    lines = daemon_end.makefile("rb")
    try:
        assert json.loads(lines.readline())["op"] == "hello"
        daemon_end.sendall(encode("open", resource="app", type="Generic Application",
                                  properties={"command": ["sleep", "30"]}, **FAST))
        assert json.loads(lines.readline())["op"] == "opened"
        daemon_end.sendall(encode("online", resource="app"))
        while json.loads(lines.readline())["op"] != "online_succeeded":
            pass
        pid = app_pid(run_dir, "app")
        assert process_groups.is_running(pid)
        lines.close()
        daemon_end.close()
        assert proc.wait(timeout=10) == 0
        assert _gone(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_leftovers(run_dir)


STAND_IN_DAEMON = """
import asyncio, json, sys
from pathlib import Path
from wolfpack.runtime.monitor.client import MonitorClient, monitor_name

async def main():
    client = MonitorClient("default", Path(sys.argv[1]))
    await client.start()
    await client.open("app", "Generic Application", {"command": ["sleep", "30"]},
                      looks_alive_ms=100, is_alive_ms=100000, pending_timeout_ms=10000)
    client.online("app")
    while (await client.events.get())["op"] != "online_succeeded":
        pass
    pid = int((Path(sys.argv[1]) / "resources" / "app" / "application.pid").read_text().split()[0])
    print(json.dumps({"monitor": client.pid, "app": pid}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_the_monitor_terminates_its_resources_when_the_daemon_is_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    daemon = subprocess.Popen([sys.executable, "-c", STAND_IN_DAEMON, str(run_dir)], stdout=subprocess.PIPE,
                              start_new_session=True)
    pids: dict[str, int] = {}
    try:
        assert daemon.stdout is not None
        pids = json.loads(daemon.stdout.readline())
        assert process_groups.is_running(pids["app"]) and process_groups.is_running(pids["monitor"])
        daemon.kill()
        daemon.wait()
        wait_until(lambda: _gone(pids["app"]) and _gone(pids["monitor"]), what="the app and its monitor to go")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if pids and process_groups.is_running(pids["monitor"]):
            os.kill(pids["monitor"], signal.SIGKILL)
        kill_leftovers(run_dir)
