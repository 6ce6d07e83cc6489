"""Supervised processes in process groups of their own (Linux ``/proc``).

Each resource's processes run in a new session, so one signal to the group
reaches everything the resource started, and :func:`group_members` can tell
when the last of them is gone.  Zombies count as gone: they run nothing, and
the reaper of orphans may be an init that never reaps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_POLL_S = 0.02


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2:].split()


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a process from a reused pid)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def spawn(argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to every process of the group (a group already gone is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_group_gone(pgid: int, seconds: float, leader: subprocess.Popen[bytes] | None = None,
                    cancelled: threading.Event | None = None) -> bool:
    """Wait up to ``seconds`` until the group has no live member; reap ``leader`` on the way."""
    deadline = time.monotonic() + seconds
    while True:
        if leader is not None:
            leader.poll()
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline or (cancelled is not None and cancelled.is_set()):
            return False
        time.sleep(_POLL_S)


def stop_group(pgid: int, grace_s: float, leader: subprocess.Popen[bytes] | None = None,
               kill_wait_s: float = 5.0) -> bool:
    """SIGTERM to the group, SIGKILL after ``grace_s``; True once no member is left."""
    signal_group(pgid, signal.SIGTERM)
    if wait_group_gone(pgid, grace_s, leader):
        return True
    return kill_group(pgid, leader, kill_wait_s)


def kill_group(pgid: int, leader: subprocess.Popen[bytes] | None = None, wait_s: float = 5.0) -> bool:
    """SIGKILL to the group; True once no member is left."""
    signal_group(pgid, signal.SIGKILL)
    return wait_group_gone(pgid, wait_s, leader)
