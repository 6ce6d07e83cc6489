"""Generic Application: a command line run as a supervised process (REQUIREMENTS R6).

Properties:

``command``
    a shell string (run by ``/bin/sh -c``) or an argument list.  Required.
``cwd``
    working directory; default the resource's work directory.
``env``
    extra environment variables (over the monitor's environment).
``health``
    ``None`` or one check for IsAlive: ``{"command": ...}``, ``{"tcp": "host:port"}``
    or ``{"http": "url"}`` (see :mod:`wolfpack.runtime.resource_types.health`).
``online_waits_for_health``
    Online returns only once the health check passes (PendingTimeout bounds the wait).
``health_retry_ms``
    the period of the health check while Online waits for it.
``stop_grace_ms``
    Offline sends SIGTERM to the process group, then SIGKILL after this long.

The process is the leader of a session of its own, so Offline and Terminate
reach every process it started.  Its stdout and stderr are appended to
``application.log`` in the resource's work directory.  ``application.pid``
there names the leader (pid and start time), so that a monitor restarted
after a crash adopts the running application instead of losing it.

LooksAlive: the leader process is alive.  IsAlive: LooksAlive and the health
check (LooksAlive alone when there is none).

Probe (reconciliation, before the node joins): a copy runs here if the
leader ``application.pid`` names is alive (the kind an owner may adopt), or
if a process of this node's network namespace listens on the ``tcp`` health
check's address (a copy nobody's pid file names, e.g. started by hand).
Terminate then stops both: the leader's process group, and each listener
(SIGKILL, checked against its start time).  An ``http`` or ``command``
health check is not used by the probe: it may be answered by another node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

from wolfpack.errors import ResourceTypeError
from wolfpack.runtime.resource_types import health, listeners, process_groups
from wolfpack.runtime.resource_types.base import (
    EntryPointFailed,
    Operation,
    Probe,
    Property,
    PropertySchema,
    ResourceType,
    Severity,
)


def _env_problem(value: dict[str, Any]) -> str | None:
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)]
    return f"must map names to string values (bad: {bad})" if bad else None


def _non_negative(value: int) -> str | None:
    return "must not be negative" if value < 0 else None


def _positive(value: int) -> str | None:
    return "must be positive" if value <= 0 else None


SCHEMA = PropertySchema((
    Property("command", (str, list), "the command line: a shell string or an argument list", required=True,
             check=health.command_problem),
    Property("cwd", (str,), "working directory (default: the resource's work directory)"),
    Property("env", (dict,), "extra environment variables", default={}, check=_env_problem),
    Property("health", (dict,), "IsAlive check: {'command': ...}, {'tcp': 'host:port'} or {'http': 'url'}",
             check=health.problem),
    Property("online_waits_for_health", (bool,), "Online succeeds only once the health check passes",
             default=False),
    Property("health_retry_ms", (int,), "health check period while Online waits for it", default=200,
             check=_positive),
    Property("stop_grace_ms", (int,), "SIGTERM to SIGKILL delay of Offline", default=10_000, check=_non_negative),
))


class GenericApplication(ResourceType):
    type_name = "Generic Application"
    schema = SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.properties["online_waits_for_health"] and self.properties["health"] is None:
            raise ResourceTypeError(
                f"resource {self.resource_id!r}: 'online_waits_for_health' needs a 'health' check to wait for; "
                "add one or drop the option"
            )
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None  # the session leader (= process group id)
        self._started: int | None = None  # its start time, against pid reuse
        self._strays: list[tuple[int, int | None]] = []  # copies a probe found by their port: (pid, start time)
        self._pid_file = self.context.work_dir / "application.pid"
        self._log_file = self.context.work_dir / "application.log"

    # --- helpers ---------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The pid of the application's leader process (its process group id), if running."""
        return self._pid

    def _env(self) -> dict[str, str]:
        return {**os.environ, "WOLFPACK_RESOURCE": self.resource_id, **self.properties["env"]}

    def _cwd(self) -> str:
        return self.properties["cwd"] or str(self.context.work_dir)

    def _leader_alive(self) -> bool:
        with self._lock:
            if self._pid is None:
                return False
            if self._proc is not None:
                return self._proc.poll() is None
            return process_groups.is_running(self._pid) and process_groups.start_time(self._pid) == self._started

    def _forget(self) -> None:
        self._proc = self._pid = self._started = None
        self._pid_file.unlink(missing_ok=True)

    def _health(self) -> tuple[bool, str]:
        spec = self.properties["health"]
        if spec is None:
            return True, ""
        return health.check(spec, env=self._env(), cwd=self._cwd())

    # --- entry points ---------------------------------------------------------------

    def open(self) -> None:
        cwd = self.properties["cwd"]
        if cwd is not None and not os.path.isdir(cwd):
            raise EntryPointFailed(
                f"working directory {cwd!r} of {self.resource_id!r} does not exist on this node; "
                "create it or fix 'cwd'", Severity.HARD)
        self._adopt()

    def _adopt(self) -> None:
        """Take over an application started by an earlier instance of this monitor."""
        try:
            pid_text, started_text = self._pid_file.read_text().split()
            pid, started = int(pid_text), int(started_text)
        except (FileNotFoundError, ValueError):
            return
        if process_groups.is_running(pid) and process_groups.start_time(pid) == started:
            self._pid, self._started = pid, started
            self.log(f"adopted the running application (pid {pid})", "info")
        else:
            self._pid_file.unlink(missing_ok=True)

    def online(self, op: Operation) -> None:
        with self._lock:
            if op.cancelled.is_set():  # given up on (PendingTimeout, Terminate, a lapsed lease): start nothing
                raise EntryPointFailed("Online was cancelled before the application started")
            if self._leader_alive():
                self.log(f"already running (pid {self._pid})", "info")
            else:
                self._start()
        if not self.properties["online_waits_for_health"]:
            return
        period = self.properties["health_retry_ms"] / 1000
        while not op.cancelled.is_set():
            if not self._leader_alive():
                raise EntryPointFailed(f"the application exited ({self._exit_status()}) before it became healthy; "
                                       f"see {self._log_file}")
            ok, _ = self._health()
            if ok:
                return
            op.wait(period)

    def _start(self) -> None:
        argv = health.argv(self.properties["command"])
        try:
            proc = process_groups.spawn(argv, cwd=self._cwd(), env=self._env(), log_path=self._log_file)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise EntryPointFailed(f"cannot start {argv[0]!r}: {exc}; install it or fix 'command'",
                                   Severity.HARD) from exc
        self._proc, self._pid = proc, proc.pid
        self._started = process_groups.start_time(proc.pid)
        self._pid_file.write_text(f"{proc.pid} {self._started}\n")
        self.log(f"started pid {proc.pid}: {argv}", "info")

    def _exit_status(self) -> str:
        code = self._proc.returncode if self._proc is not None else None
        return "exit status unknown" if code is None else f"exit code {code}"

    def offline(self, op: Operation) -> None:
        with self._lock:
            pid, proc = self._pid, self._proc
        if pid is None:
            return
        grace = self.properties["stop_grace_ms"] / 1000
        if not process_groups.stop_group(pid, grace, proc):
            raise EntryPointFailed(f"processes {process_groups.group_members(pid)} of group {pid} survived SIGKILL")
        with self._lock:
            self._forget()

    def terminate(self) -> None:
        with self._lock:
            pid, proc = self._pid, self._proc
            strays, self._strays = self._strays, []
        _kill_strays(strays)
        if pid is None:
            return
        gone = process_groups.kill_group(pid, proc)
        with self._lock:
            self._forget()
        if not gone:
            self.log(f"processes {process_groups.group_members(pid)} of group {pid} survived SIGKILL", "error")

    def looks_alive(self) -> bool:
        return self._leader_alive()

    def is_alive(self) -> bool:
        if not self._leader_alive():
            raise EntryPointFailed(f"the application is not running ({self._exit_status()})")
        ok, why = self._health()
        if not ok:
            raise EntryPointFailed(why)
        return True

    def probe(self) -> Probe:
        with self._lock:
            leader = self._pid if self._leader_alive() else None
        ours = set(process_groups.group_members(leader)) if leader is not None else set()
        spec = self.properties["health"] or {}
        address = health.tcp_address(spec)
        holders: tuple[int, ...] = ()
        listening = False
        if address is not None:
            inodes = listeners.listening_inodes(*address)
            listening = bool(inodes)
            holders = tuple(p for p in listeners.socket_holders(inodes) if p not in ours) if inodes else ()
        with self._lock:
            self._strays = [(p, process_groups.start_time(p)) for p in holders]
        if leader is not None:
            return Probe(True, f"the application started by an earlier monitor runs (pid {leader}, from "
                         f"{self._pid_file.name})", (leader, *holders), adoptable=not holders)
        if holders:
            return Probe(True, f"pid {', '.join(map(str, holders))} listens on {spec['tcp']} (the health check's "
                         "address); no pid file names it", holders)
        if listening:
            return Probe(True, f"a socket listens on {spec['tcp']}, but no process this monitor may look at holds "
                         "it", stoppable=False)
        return Probe(False, "no leader in the pid file" + (f", nothing listens on {spec['tcp']}" if address else ""))


def _kill_strays(strays: list[tuple[int, int | None]], wait_s: float = 5.0) -> None:
    """SIGKILL each process a probe found (unless its pid now names another process), and wait until gone."""
    alive = [(p, t) for p, t in strays if process_groups.start_time(p) == t and t is not None]
    for pid, _ in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + wait_s
    while any(process_groups.is_running(p) for p, _ in alive) and time.monotonic() < deadline:
        time.sleep(0.02)
