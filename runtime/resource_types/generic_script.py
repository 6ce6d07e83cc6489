"""Generic Script: a script that implements the entry points as actions (REQUIREMENTS R6).

Properties:

``script``
    absolute path of the script; in ``ocf`` mode also ``provider:agent``
    (for example ``heartbeat:Dummy``, found under ``<ocf_root>/resource.d``).
``parameters``
    a mapping of parameter names to values, given to the script as
    ``OCF_RESKEY_<name>`` environment variables (in both modes).
``mode``
    ``script`` (default): the script is run as ``script online|offline|looksalive|isalive``;
    exit code 0 means success (or alive); a non-zero code is a failure whose
    severity follows the OCF table (so a script may say "hard" with 5).
    Terminate kills the actions in flight, then runs ``script offline``.

    ``ocf``: the script is an OCF resource agent, run as is; see
    :mod:`wolfpack.runtime.resource_types.ocf` for the action and exit-code
    mapping.  Open reads ``meta-data``, checks ``parameters`` against it and
    runs ``validate-all``.
``ocf_root``
    the OCF root (``OCF_ROOT``), default ``/usr/lib/ocf``.
``action_timeout_ms``
    the limit of every action but Online's and Offline's (those are bounded
    by the resource's PendingTimeout): meta-data, validate-all, the polls, and
    the stop of Terminate.

Every action runs in a process group of its own, with the resource's work
directory as working directory and ``HA_RSCTMP``; its output is appended to
``script.log`` there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from wolfpack.errors import ResourceTypeError
from wolfpack.runtime.resource_types import ocf, process_groups
from wolfpack.runtime.resource_types.base import (
    EntryPointFailed,
    Operation,
    Property,
    PropertySchema,
    ResourceType,
    Severity,
)

MODES = ("script", "ocf")

#: Generic Script action per entry point, per mode.
ACTIONS = {
    "script": {"Online": "online", "Offline": "offline", "LooksAlive": "looksalive", "IsAlive": "isalive",
               "Terminate": "offline"},
    "ocf": {"Online": "start", "Offline": "stop", "LooksAlive": "monitor", "IsAlive": "monitor",
            "Terminate": "stop"},
}


def _parameters_problem(value: dict[str, Any]) -> str | None:
    bad = [k for k, v in value.items()
           if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
           or not isinstance(v, str | int | bool)]
    return f"must map parameter names (letters, digits, _) to strings or numbers (bad: {bad})" if bad else None


def _mode_problem(value: str) -> str | None:
    return None if value in MODES else f"must be one of {list(MODES)}"


def _positive(value: int) -> str | None:
    return "must be positive" if value <= 0 else None


SCHEMA = PropertySchema((
    Property("script", (str,), "absolute path of the script, or provider:agent in ocf mode", required=True),
    Property("parameters", (dict,), "parameters, passed as OCF_RESKEY_<name>", default={},
             check=_parameters_problem),
    Property("mode", (str,), "'script' (online/offline/looksalive/isalive) or 'ocf' (an OCF resource agent)",
             default="script", check=_mode_problem),
    Property("ocf_root", (str,), "OCF_ROOT", default=ocf.DEFAULT_OCF_ROOT),
    Property("action_timeout_ms", (int,), "limit of meta-data, validate-all, polls and Terminate's stop",
             default=20_000, check=_positive),
))


def _as_text(value: str | int | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _instance_name(resource_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", resource_id)


class GenericScript(ResourceType):
    type_name = "Generic Script"
    schema = SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode: str = self.properties["mode"]
        self.script = self._resolve(self.properties["script"])
        self.meta_data: ocf.MetaData | None = None
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._log_file = self.context.work_dir / "script.log"

    def _resolve(self, script: str) -> Path:
        if self.mode == "ocf" and "/" not in script and script.count(":") == 1:
            provider, agent = script.split(":")
            return Path(self.properties["ocf_root"]) / "resource.d" / provider / agent
        if not os.path.isabs(script):
            raise ResourceTypeError(
                f"resource {self.resource_id!r}: 'script' must be an absolute path"
                + (" or provider:agent" if self.mode == "ocf" else "") + f", not {script!r}"
            )
        return Path(script)

    # --- running actions -------------------------------------------------------------

    def _env(self, action: str, timeout_ms: int | None, check_level: int | None = None,
             interval_ms: int | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("HA_RSCTMP", str(self.context.work_dir))
        env.update({
            "WOLFPACK_RESOURCE": self.resource_id,
            "OCF_ROOT": self.properties["ocf_root"],
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": _instance_name(self.resource_id),
            "OCF_RESOURCE_TYPE": self.script.name,
            "OCF_RESOURCE_PROVIDER": self.script.parent.name,
        })
        for name, value in self.properties["parameters"].items():
            env[f"OCF_RESKEY_{name}"] = _as_text(value)
        if timeout_ms is not None:
            env["OCF_RESKEY_CRM_meta_timeout"] = str(timeout_ms)
        if check_level is not None:
            env["OCF_CHECK_LEVEL"] = str(check_level)
        if interval_ms is not None:
            env["OCF_RESKEY_CRM_meta_interval"] = str(interval_ms)
        return env

    def _run(self, action: str, *, timeout_ms: int | None, op: Operation | None = None,
             check_level: int | None = None, interval_ms: int | None = None) -> tuple[int, str]:
        """Run ``script action``; (exit code, its output).  -9 when killed (timeout, cancel, Terminate)."""
        env = self._env(action, timeout_ms if timeout_ms is not None else self.context.pending_timeout_ms,
                        check_level, interval_ms)
        work = self.context.work_dir
        with open(work / f".{action}.{threading.get_ident()}.out", "w+b") as out:
            try:
                proc = subprocess.Popen([str(self.script), action], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                        close_fds=True)
            except OSError as exc:
                raise EntryPointFailed(f"cannot run {self.script} {action}: {exc}", Severity.HARD) from exc
            with self._lock:
                self._running.add(proc)
            if op is not None:
                op.on_cancel(lambda: process_groups.signal_group(proc.pid, signal.SIGKILL))
            try:
                code = proc.wait(timeout=None if timeout_ms is None else timeout_ms / 1000)
            except subprocess.TimeoutExpired:
                process_groups.kill_group(proc.pid, proc)
                code = proc.wait()
                self.log(f"{self.script.name} {action} did not finish within {timeout_ms} ms; killed", "warning")
            finally:
                with self._lock:
                    self._running.discard(proc)
            out.seek(0)
            output = out.read().decode(errors="replace")
        Path(out.name).unlink(missing_ok=True)
        with open(self._log_file, "a") as log:
            log.write(f"--- {action}: exit {code}\n{output}")
        return code, output

    def _failure(self, action: str, code: int, output: str) -> EntryPointFailed:
        reasons = [line.partition(":")[2].strip() for line in output.splitlines()
                   if line.startswith("ocf-exit-reason:")]
        tail = [line.strip() for line in output.splitlines() if line.strip()]
        why = reasons[-1] if reasons else (tail[-1] if tail else "")
        return EntryPointFailed(
            f"{self.script.name} {action} exited {ocf.meaning(code)}" + (f": {why}" if why else ""),
            ocf.severity(code) if code >= 0 else Severity.SOFT,
        )

    def _ok(self, action: str, code: int) -> bool:
        return ocf.succeeded(action, code) if self.mode == "ocf" else code == 0

    # --- entry points -------------------------------------------------------------

    def open(self) -> None:
        if not os.access(self.script, os.X_OK):
            raise EntryPointFailed(
                f"resource {self.resource_id!r}: script {str(self.script)!r} does not exist or is not executable "
                "on this node; install it (for OCF agents: the resource-agents package) or fix 'script'",
                Severity.HARD)
        if self.mode != "ocf":
            return
        limit = self.properties["action_timeout_ms"]
        code, output = self._run("meta-data", timeout_ms=limit)
        if code != 0:
            raise self._failure("meta-data", code, output)
        self.meta_data = ocf.parse_meta_data(output, str(self.script))
        values = {k: _as_text(v) for k, v in self.properties["parameters"].items()}
        problems = self.meta_data.problems(values)
        if problems:
            known = ", ".join(p.name for p in self.meta_data.parameters) or "none"
            raise EntryPointFailed(
                f"resource {self.resource_id!r}: its parameters do not fit OCF agent {self.meta_data.name!r}: "
                + "; ".join(problems) + f". Fix 'parameters' (the agent knows: {known})", Severity.FATAL)
        if "validate-all" in self.meta_data.actions:
            code, output = self._run("validate-all", timeout_ms=limit)
            if code != 0:
                raise self._failure("validate-all", code, output)

    def online(self, op: Operation) -> None:
        action = ACTIONS[self.mode]["Online"]
        code, output = self._run(action, timeout_ms=None, op=op)
        if not self._ok(action, code):
            raise self._failure(action, code, output)

    def offline(self, op: Operation) -> None:
        action = ACTIONS[self.mode]["Offline"]
        code, output = self._run(action, timeout_ms=None, op=op)
        if not self._ok(action, code):
            raise self._failure(action, code, output)

    def terminate(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            process_groups.kill_group(proc.pid, proc)
        action = ACTIONS[self.mode]["Terminate"]
        code, output = self._run(action, timeout_ms=self.properties["action_timeout_ms"])
        if not self._ok(action, code):
            self.log(str(self._failure(action, code, output)), "error")

    def _poll(self, entry_point: str) -> bool:
        action = ACTIONS[self.mode][entry_point]
        looks = entry_point == "LooksAlive"
        code, output = self._run(
            action, timeout_ms=self.properties["action_timeout_ms"],
            check_level=(ocf.LOOKS_ALIVE_CHECK_LEVEL if looks else ocf.IS_ALIVE_CHECK_LEVEL)
            if self.mode == "ocf" else None,
            interval_ms=self.context.looks_alive_ms if looks else self.context.is_alive_ms,
        )
        if not self._ok(action, code):
            raise self._failure(action, code, output)
        return True

    def looks_alive(self) -> bool:
        return self._poll("LooksAlive")

    def is_alive(self) -> bool:
        return self._poll("IsAlive")
