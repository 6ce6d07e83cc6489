"""Health checks for Generic Application's IsAlive: a command, a TCP connect or an HTTP GET.

The ``health`` property is ``None`` or a mapping with exactly one of
``command`` (a shell string or an argument list; healthy on exit code 0),
``tcp`` (``"host:port"``; healthy when a connection is accepted) or ``http``
(a URL; healthy on a 2xx/3xx answer), plus an optional ``timeout_ms``
(default 2000).
"""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

KINDS = ("command", "tcp", "http")
DEFAULT_TIMEOUT_MS = 2000

#: No proxies: a health check asks the service itself, whatever ``http_proxy`` says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def problem(health: Any) -> str | None:
    """What is wrong with a ``health`` property value, or None."""
    if health is None:
        return None
    kinds = [k for k in KINDS if k in health]
    unknown = sorted(set(health) - {*KINDS, "timeout_ms"})
    if unknown:
        return f"has unknown keys {unknown}; use one of {list(KINDS)} and optionally 'timeout_ms'"
    if len(kinds) != 1:
        return f"must name exactly one check of {list(KINDS)}, e.g. {{'tcp': '127.0.0.1:8080'}}"
    timeout = health.get("timeout_ms", DEFAULT_TIMEOUT_MS)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        return "'timeout_ms' must be a positive integer"
    value = health[kinds[0]]
    if kinds[0] == "command":
        return command_problem(value)
    if kinds[0] == "tcp":
        if not isinstance(value, str) or _split_host_port(value) is None:
            return f"'tcp' must be 'host:port', not {value!r}"
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return f"'http' must be an http:// or https:// URL, not {value!r}"
    return None


def command_problem(command: Any) -> str | None:
    """What is wrong with a command (a non-empty shell string or list of strings), or None."""
    if isinstance(command, str):
        return None if command.strip() else "must not be empty"
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        return None
    return "must be a shell string or a non-empty list of strings"


def argv(command: str | list[str]) -> list[str]:
    """The argument vector of a command: a string runs through ``/bin/sh -c``."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def _split_host_port(value: str) -> tuple[str, int] | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def tcp_address(health: Mapping[str, Any]) -> tuple[str, int] | None:
    """The (host, port) of a ``tcp`` health check, or None for any other check."""
    value = health.get("tcp")
    return _split_host_port(value) if isinstance(value, str) else None


def check(health: Mapping[str, Any], *, env: Mapping[str, str], cwd: str | None) -> tuple[bool, str]:
    """Run the health check; (healthy, why not)."""
    timeout_s = health.get("timeout_ms", DEFAULT_TIMEOUT_MS) / 1000
    if "command" in health:
        try:
            done = subprocess.run(argv(health["command"]), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout_s, start_new_session=True)
        except subprocess.TimeoutExpired:
            return False, f"health command did not finish within {timeout_s:g} s"
        except OSError as exc:
            return False, f"health command cannot run: {exc}"
        tail = (done.stdout + done.stderr).decode(errors="replace").strip()[-200:]
        return done.returncode == 0, f"health command exited {done.returncode}: {tail}"
    if "tcp" in health:
        address = _split_host_port(health["tcp"])
        assert address is not None  # checked by problem()
        try:
            with socket.create_connection(address, timeout=timeout_s):
                return True, ""
        except OSError as exc:
            return False, f"TCP connect to {health['tcp']} failed: {exc}"
    url = health["http"]
    try:
        with _OPENER.open(url, timeout=timeout_s) as answer:
            return answer.status < 400, f"HTTP GET {url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP GET {url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"HTTP GET {url} failed: {exc}"
