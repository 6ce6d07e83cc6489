"""Probes of a real service from inside each node's namespace: safety judged from what answers, not from what the
daemons say.  Debian's ``redis-server`` is the service (scripts/install installs it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from netns import Network

from wolfpack.runtime.daemon.lab import LabCluster

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
PORT = 6379
PROBE_MS = 20

#: runs inside a namespace: PING the local redis every PROBE_MS, print "<monotonic ns> <1|0>" per sample
PROBER = f"""
import socket, sys, time
while True:
    t = time.monotonic_ns()
    ok = 0
    try:
        with socket.create_connection(("127.0.0.1", {PORT}), timeout=0.015) as s:
            s.settimeout(0.015)
            s.sendall(b"PING\\r\\n")
            ok = int(s.recv(16).startswith(b"+PONG"))
    except OSError:
        pass
    sys.stdout.write(f"{{t}} {{ok}}\\n")
    sys.stdout.flush()
    time.sleep(max(0.0, {PROBE_MS} / 1000 - (time.monotonic_ns() - t) / 1e9))
"""


@dataclass
class Prober:
    """A prober process in one node's namespace and the samples it printed (CLOCK_MONOTONIC is shared by
    every namespace, so the samples of different nodes are on one time line)."""
    node: int
    process: subprocess.Popen[str]
    samples: list[tuple[int, bool]] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            t, ok = line.split()
            self.samples.append((int(t), ok == "1"))

    def runs(self) -> list[tuple[int, int]]:
        """The stretches (first, last sample time) in which this node's copy answered every sample."""
        out: list[tuple[int, int]] = []
        start = last = None
        for t, ok in self.samples:
            if ok:
                start = t if start is None else start
                last = t
            elif start is not None:
                out.append((start, last or start))
                start = None
        if start is not None:
            out.append((start, last or start))
        return out


def start_probers(network: Network) -> list[Prober]:
    probers = []
    for i in range(3):
        process = subprocess.Popen([*network.prefix(i), sys.executable, "-u", "-c", PROBER],
                                   stdout=subprocess.PIPE, text=True)
        prober = Prober(i, process)
        threading.Thread(target=prober.read, daemon=True).start()
        probers.append(prober)
    return probers


def stop_probers(probers: list[Prober]) -> None:
    for p in probers:
        p.process.terminate()
        p.process.wait(timeout=5)
    time.sleep(0.1)  # the readers take the last lines


def overlaps(probers: list[Prober]) -> list[tuple[int, int, float]]:
    """Every stretch in which two nodes' copies both answered: (node, node, milliseconds)."""
    found = []
    for a in probers:
        for b in probers:
            if a.node < b.node:
                for s1, e1 in a.runs():
                    for s2, e2 in b.runs():
                        if s1 <= e2 and s2 <= e1:
                            found.append((a.node, b.node, (min(e1, e2) - max(s1, s2)) / 1e6))
    return found


def two_copies(probers: list[Prober]) -> list[str]:
    """Every moment two nodes' copies answered, said in words."""
    return [f"nodes {a} and {b} both answered for {ms:.0f} ms" for a, b, ms in overlaps(probers)]


def redis_group(lab: LabCluster, owner: int) -> None:
    assert shutil.which("redis-server"), "redis-server is missing: scripts/install installs it"
    api = lab.client(owner)
    api.post("/v1/groups", {"name": "cache", "preferred": [owner, *(i for i in range(3) if i != owner)]})
    api.post("/v1/resources", {
        "group": "cache", "name": "redis", "type": "Generic Application",
        "properties": {"command": [REDIS, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--daemonize", "no"],
                       "health": {"tcp": f"127.0.0.1:{PORT}"}, "online_waits_for_health": True}})
    api.post("/v1/groups/cache/online")
    lab.wait_for("cache online", lambda: lab.group(owner, "cache")["state"] == "Online", 30)


def last_answer(prober: Prober) -> int | None:
    return max((t for t, ok in prober.samples if ok), default=None)
