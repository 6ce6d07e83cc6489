"""``fence_wolfpack_lab``: a fence agent for lab nodes that run in network namespaces.

A lab node (see ``tests/integration``) is every process inside one network
namespace, ``/run/netns/<name>``.  "Power off" is: SIGKILL each process whose
``/proc/<pid>/ns/net`` is that namespace (same device and inode as the bind
mount in ``/run/netns``), until none is left, and remember "off" in
``<state_dir>/<name>``; "power on" forgets it (it starts nothing: the test or
the lab starts the node again).  The agent speaks the fence-agent protocol
(:mod:`wolfpack.runtime.fencing.protocol`)::

    printf 'action=off\\nnetns=wp123n1\\n' | fence_wolfpack_lab    # or plug=wp123n1

Parameters: ``netns`` (or ``plug``/``port``) the namespace; ``state_dir``
(default ``/run/wolfpack-lab-fence``); ``netns_dir`` (default ``/run/netns``).
Exit status: 0 success; ``status`` 0 on, 2 off; 1 error.  Needs root.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from wolfpack.runtime.fencing import protocol
from wolfpack.runtime.fencing.protocol import EXIT_OFF, EXIT_OK, AgentError, Param

NAME = "fence_wolfpack_lab"
STATE_DIR = "/run/wolfpack-lab-fence"
NETNS_DIR = "/run/netns"
KILL_TIMEOUT_S = 5.0
LONGDESC = ("fence_wolfpack_lab powers off a lab node that runs in a network namespace: it kills (SIGKILL) every "
            "process in the namespace and remembers the node is off until action=on.")
ACTIONS = ("on", "off", "reboot", "status", "monitor", "list", "metadata")
PARAMS = (
    *protocol.COMMON,
    Param("netns", "Network namespace of the node (a name in /run/netns); plug may name it instead"),
    Param("state_dir", "Directory that remembers which namespaces are off", default=STATE_DIR),
    Param("netns_dir", "Directory of the named network namespaces", default=NETNS_DIR),
)


def namespace_pids(netns: Path) -> list[int]:
    """The live processes (not zombies, not this one) whose network namespace is the one ``netns`` names."""
    target = os.stat(netns)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            ns = os.stat(f"/proc/{entry.name}/ns/net")
            if (ns.st_dev, ns.st_ino) != (target.st_dev, target.st_ino):
                continue
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
        if stat[stat.rfind(")") + 2:][:1] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def kill_namespace(netns: Path, timeout_s: float = KILL_TIMEOUT_S) -> int:
    """SIGKILL every process in the namespace, again until none is left (a fork may race); how many were killed."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        pids = namespace_pids(netns)
        if not pids:
            return len(killed)
        if time.monotonic() > deadline:
            raise AgentError(f"{len(pids)} processes of namespace {netns.name} survived SIGKILL for {timeout_s:g} s "
                             f"(pids {', '.join(map(str, pids[:10]))}); they may be stuck in the kernel (D state)")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
            except PermissionError as error:
                raise AgentError(f"cannot kill pid {pid} of namespace {netns.name} ({error}); run the agent as "
                                 "root") from None
        time.sleep(0.01)


class Lab:
    """The namespaces of one lab and the agent's memory of which are off."""

    def __init__(self, state_dir: str = STATE_DIR, netns_dir: str = NETNS_DIR) -> None:
        self.state_dir, self.netns_dir = Path(state_dir), Path(netns_dir)

    def _checked(self, name: str) -> str:
        if not name:
            raise AgentError("no namespace given: pass netns=<name> (or plug=<name>)")
        if "/" in name or name in (".", ".."):
            raise AgentError(f"{name!r} is not a namespace name (a file name in {self.netns_dir})")
        return name

    def netns(self, name: str) -> Path:
        return self.netns_dir / self._checked(name)

    def is_off(self, name: str) -> bool:
        return (self.state_dir / self._checked(name)).exists()

    def off(self, name: str) -> int:
        path = self.netns(name)
        if not path.exists():
            if self.is_off(name):
                return 0
            raise AgentError(f"no network namespace {name} in {self.netns_dir}: check the plug/netns parameter "
                             "(ip netns list shows the namespaces)")
        killed = kill_namespace(path)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / name).write_text(f"off {time.time():.3f} killed {killed}\n")
        return killed

    def on(self, name: str) -> None:
        (self.state_dir / self._checked(name)).unlink(missing_ok=True)

    def status(self, name: str) -> bool:
        """True if on."""
        if self.is_off(name):
            return False
        if not self.netns(name).exists():
            raise AgentError(f"no network namespace {name} in {self.netns_dir} and no record that it was fenced: "
                             "check the plug/netns parameter")
        return True

    def names(self) -> list[str]:
        return sorted(p.name for p in self.netns_dir.iterdir()) if self.netns_dir.is_dir() else []


def handle(action: str, params: dict[str, str], out: TextIO) -> int:
    if action == "metadata":
        out.write(protocol.metadata_xml(NAME, "Fence agent for Wolfpack lab nodes in network namespaces",
                                        LONGDESC,
                                        PARAMS, ACTIONS))
        return EXIT_OK
    lab = Lab(params.get("state_dir", STATE_DIR), params.get("netns_dir", NETNS_DIR))
    name = params.get("netns") or params.get("plug", "")
    if action == "monitor":
        if not os.access(lab.state_dir if lab.state_dir.exists() else lab.state_dir.parent, os.W_OK):
            raise AgentError(f"cannot write the state directory {lab.state_dir}: run the agent as root")
        return EXIT_OK
    if action == "list":
        for netns in lab.names():
            out.write(f"{netns},{netns}\n")
        return EXIT_OK
    if action == "status":
        on = lab.status(name)
        out.write(f"Status: {'ON' if on else 'OFF'}\n")
        return EXIT_OK if on else EXIT_OFF
    if action in ("off", "reboot"):
        killed = lab.off(name)
        out.write(f"Success: Powered OFF (namespace {name}: {killed} processes killed)\n")
    if action in ("on", "reboot"):
        lab.on(name)
        out.write("Success: Powered ON\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return protocol.main(handle, PARAMS, ACTIONS, argv)


if __name__ == "__main__":
    sys.exit(main())
