"""Reconciliation before a join (issue 14): the pure decision, the ``multiple_active`` setting, the Generic
Application's probe against real processes, and the reconciler over real resource monitors (a copy started by
hand, one an earlier monitor's pid file names, one left running under ``block``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wolfpack.runtime.daemon import catalog, operations
from wolfpack.runtime.daemon.operations import AdminError
from wolfpack.runtime.daemon.reconcile import (
    BLOCK,
    HOLD,
    KEEP,
    NONE,
    STOP,
    STOP_START,
    UNKNOWN,
    Reconciler,
    Target,
    decide,
    policy_problem,
    targets,
)
from wolfpack.runtime.daemon.resources import ResourceBridge
from wolfpack.runtime.db.hive import Hive
from wolfpack.runtime.monitor.process import work_dir_for
from wolfpack.runtime.resource_types import listeners, process_groups
from wolfpack.runtime.resource_types.base import ResourceContext
from wolfpack.runtime.resource_types.generic_application import GenericApplication

ME = 0
ACTIVE = {"active": True, "pids": [42], "adoptable": False, "stoppable": True, "detail": "pid 42 listens"}
ADOPTABLE = {**ACTIVE, "adoptable": True}


def target(owner: int, wanted: str = "online", policy: str = STOP_START) -> Target:
    return Target("res0.0", "cache/redis", "cache", 0, owner, wanted, policy)


@pytest.mark.parametrize(("owner", "wanted", "policy", "found", "action", "twice"), [
    (1, "online", STOP_START, {"active": False}, NONE, False),
    (1, "online", STOP_START, ACTIVE, STOP, True),  # a stray beside the owner's copy: stopped here
    (1, "online", STOP_START, ADOPTABLE, STOP, True),  # adoptable, but not this node's: never adopted
    (1, "offline", STOP_START, ADOPTABLE, STOP, True),
    (1, "online", BLOCK, ACTIVE, HOLD, True),  # left running, the node stays out
    (ME, "online", STOP_START, ADOPTABLE, KEEP, False),  # its own copy: the owner adopts it
    (ME, "online", BLOCK, ADOPTABLE, KEEP, False),
    (ME, "online", STOP_START, ACTIVE, STOP, False),  # its own group, but a copy its type cannot supervise
    (ME, "offline", BLOCK, ADOPTABLE, STOP, False),  # wanted offline: no second copy, so block does not apply
    (-1, "online", BLOCK, ACTIVE, STOP, False),  # nobody owns it
    (1, "online", STOP_START, {**ACTIVE, "stoppable": False}, HOLD, True),  # cannot be reached: the operator
    (1, "online", STOP_START, {"error": "monitor died"}, UNKNOWN, False),
])
def test_what_reconciliation_does_with_a_probe(owner: int, wanted: str, policy: str, found: dict[str, Any],
                                               action: str, twice: bool) -> None:
    v = decide(ME, target(owner, wanted, policy), found)
    assert (v.action, v.multiple_active) == (action, twice), v.why


def test_multiple_active_is_a_resource_setting_checked_with_a_clear_error() -> None:
    assert policy_problem("stop_start") is None and policy_problem("block") is None
    hive = Hive(":memory:")
    hive.apply(1, operations.create_group(hive, "cache", n=3, slots=4, owner=1))
    app = {"command": ["sleep", "60"]}
    for bad in ("stop", 1, True, None):
        with pytest.raises(AdminError, match=r"multiple_active must be 'stop_start' or 'block'.*not"):
            operations.create_resource(hive, "cache", "redis", "Generic Application", app,
                                       settings={"multiple_active": bad})
    hive.apply(2, operations.create_resource(hive, "cache", "redis", "Generic Application", app,
                                             settings={"multiple_active": "block"}))
    [t] = targets(hive, lambda machine: True)
    assert (t.machine, t.resource, t.owner, t.wanted, t.policy) == ("res0.0", "cache/redis", 1, "offline", BLOCK)


def test_the_listener_tables_of_proc_are_read() -> None:
    v4 = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
          "   0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   0        0 4242 1\n"
          "   1: 0100007F:18EB 0100007F:C000 01 00000000:00000000 00:00000000 00000000   0        0 4343 1\n")
    v6 = ("  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
          "tm->when retrnsmt   uid  timeout inode\n"
          "   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 "
          "00:00000000 00000000     0        0 77 1\n")
    assert [(str(a), p, i) for a, p, i in listeners.parse_table(v4, 4)] == [("127.0.0.1", 6379, 4242)]
    assert [(str(a), p, i) for a, p, i in listeners.parse_table(v6, 6)] == [("::", 80, 77)]


LISTENER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
time.sleep(600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def stray(port: int, pid_file: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """A copy started by hand, listening on ``port``; with ``pid_file``, one that file names (the adoptable kind)."""
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(port)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        if pid_file is not None:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(f"{proc.pid} {process_groups.start_time(proc.pid)}\n")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def gone(proc: subprocess.Popen[str], within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def app(tmp_path: Path, port: int) -> GenericApplication:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    ctx = ResourceContext("cache/redis", work, looks_alive_ms=100, is_alive_ms=100, pending_timeout_ms=10_000)
    return GenericApplication("cache/redis", {"command": ["sleep", "60"], "health": {"tcp": f"127.0.0.1:{port}"}},
                              ctx)


def test_the_generic_application_probe_finds_a_copy_by_its_port_and_terminate_stops_only_it(tmp_path: Path) -> None:
    port = free_port()
    instance = app(tmp_path, port)
    instance.open()
    assert not instance.probe().active
    with stray(port) as proc:
        found = instance.probe()
        assert found.active and found.pids == (proc.pid,) and not found.adoptable and found.stoppable, found
        assert not instance.looks_alive()  # the monitor's own checks do not see it: only the probe does
        instance.terminate()
        assert gone(proc)
    assert not instance.probe().active


def test_the_generic_application_probe_finds_the_copy_its_pid_file_names(tmp_path: Path) -> None:
    port = free_port()
    with stray(port, tmp_path / "work" / "application.pid") as proc:
        instance = app(tmp_path, port)
        instance.open()  # adopts it, as after a monitor restart
        found = instance.probe()
        assert found.active and found.adoptable and found.pids == (proc.pid,), found
        instance.terminate()
        assert gone(proc)
        assert not (tmp_path / "work" / "application.pid").exists()


def _group(hive: Hive, name: str, owner: int, port: int, *, policy: str = STOP_START, online: bool = True) -> None:
    hive.apply(hive.last_seq + 1, operations.create_group(hive, name, n=3, slots=4, owner=owner))
    hive.apply(hive.last_seq + 1, operations.create_resource(
        hive, name, f"{name}-app", "Generic Application",
        {"command": ["sleep", "60"], "health": {"tcp": f"127.0.0.1:{port}"}}, settings={"multiple_active": policy}))
    if online:
        hive.apply(hive.last_seq + 1, [{"op": "set_value", "key": catalog.group_key(name), "name": "state",
                                        "value": "online"}])


def test_the_reconciler_stops_strays_keeps_the_owners_copy_and_holds_under_block(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "wolfpack.reconcile")
    hive = Hive(":memory:")
    ports = {name: free_port() for name in ("theirs", "mine", "held", "quiet")}
    _group(hive, "theirs", 1, ports["theirs"])
    _group(hive, "mine", ME, ports["mine"])
    _group(hive, "held", 2, ports["held"], policy=BLOCK)
    _group(hive, "quiet", 1, ports["quiet"])
    run_dir = tmp_path / "run"

    async def main() -> None:
        tasks: set[asyncio.Task[Any]] = set()

        def spawn(coro: Any) -> None:
            task = asyncio.get_running_loop().create_task(coro)
            tasks.add(task)

        bridge = ResourceBridge(run_dir, post=lambda fn: None, feed=lambda m, e: None, spawn=spawn)
        await bridge.start()
        try:
            with (stray(ports["theirs"]) as theirs,
                  stray(ports["mine"], work_dir_for(run_dir, "mine/mine-app") / "application.pid") as mine,
                  stray(ports["held"]) as held):
                for info in catalog.groups(hive).values():
                    r = info.resources[0]
                    bridge.bind(f"res{info.slot}.0", f"{info.name}/{r.name}", r.type, r.properties, separate=False,
                                intervals={"looks_alive_ms": 1000, "is_alive_ms": 1000, "pending_timeout_ms": 5000})
                reconciler = Reconciler(ME, bridge, lambda: hive, spawn)
                verdicts = {v.target.group: v for v in await reconciler.run("start")}
                assert {g: v.action for g, v in verdicts.items()} == {"theirs": STOP, "mine": KEEP, "held": HOLD,
                                                                      "quiet": NONE}
                assert gone(theirs, 0.1), "the stray of a group node 1 owns still runs"
                assert mine.poll() is None and held.poll() is None
                assert reconciler.kept.keys() == {"res1.0"}
                # the failover manager brought back the groups it owns, but not "mine" (its owner changed)
                before = set(tasks)
                reconciler.after_step("failover", {"trigger": "resume_owned_elapsed", "source": "Member",
                                                   "dest": "Member"}, lambda slot: False)
                await asyncio.gather(*(tasks - before))
                assert gone(mine), "a kept copy whose group did not come back here still runs"
                assert held.poll() is None
        finally:
            await bridge.shutdown()
            for task in tasks:
                task.cancel()

    asyncio.run(asyncio.wait_for(main(), 60))
    lines = [r.getMessage() for r in caplog.records]
    assert any("resource theirs/theirs-app is active on node 0" in m and "ACTIVE ON TWO NODES" in m and "stopped" in m
               for m in lines), lines
    assert any("held/held-app" in m and "multiple_active=block" in m and "does not join" in m and "kill" in m
               for m in lines), lines
    assert any("mine/mine-app" in m and "did not come back here" in m for m in lines), lines
    assert os.path.exists(run_dir)
