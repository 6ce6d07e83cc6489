"""A stalled owner (issue 14): the owner's ``wolfpackd`` is frozen with SIGSTOP while Debian's
``redis-server`` runs as its Generic Application, and a prober inside every node's namespace sends PING
to that node's copy every 20 ms.  Safety is judged from those answers, not from what the daemons say: at
no sampled moment may two copies answer, and once the daemon wakes its copy must be gone within a lease.

What stops the frozen daemon's copy is its monitor, a process apart: the daemon renews the monitor's lease
only while a quorum vouches for it; the lease lapses while the daemon is frozen and the monitor terminates
redis by itself, before the survivors' take-over wait ends (the obligation ``stalled_owner_stops_before_
takeover`` in proofs/timing.py)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
from netns import Network, formed

from wolfpack.runtime.daemon.lab import LabCluster
from wolfpack.spec import defaults as d

pytestmark = pytest.mark.integration

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


def two_copies(probers: list[Prober]) -> list[str]:
    """Every moment two nodes' copies answered: two stretches of answers that overlap."""
    found = []
    for a in probers:
        for b in probers:
            if a.node < b.node:
                for s1, e1 in a.runs():
                    for s2, e2 in b.runs():
                        if s1 <= e2 and s2 <= e1:
                            found.append(f"nodes {a.node} and {b.node} both answered for "
                                         f"{(min(e1, e2) - max(s1, s2)) / 1e6:.0f} ms")
    return found


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


def owner_seen_by(lab: LabCluster, i: int) -> tuple[int | None, str]:
    g = lab.group(i, "cache")
    return g["owner"], g["state"]


def last_answer(prober: Prober) -> int | None:
    return max((t for t, ok in prober.samples if ok), default=None)


@pytest.mark.parametrize("freeze_s", [0.3, 2.0, 5.0])
def test_a_frozen_owner_daemon_loses_its_copy_before_another_answers(lab: LabCluster, network: Network,
                                                                      freeze_s: float) -> None:
    for i in range(3):
        lab.start(i)
    for i in range(3):
        lab.wait_api(i)
    formed(lab, [0, 1, 2])
    redis_group(lab, 0)
    probers = start_probers(network)
    try:
        time.sleep(0.5)
        daemon = lab.nodes[0].process
        assert daemon is not None
        frozen_at = time.monotonic_ns()
        daemon.send_signal(signal.SIGSTOP)
        time.sleep(freeze_s)
        woken_at = time.monotonic_ns()
        daemon.send_signal(signal.SIGCONT)
        # the cluster settles: the group answers on exactly one node
        lab.wait_for("cache online on one node", lambda: owner_seen_by(lab, 1)[1] == "Online"
                     and owner_seen_by(lab, 2) == owner_seen_by(lab, 1), 30)
        time.sleep(1.0)
    finally:
        stop_probers(probers)
    overlaps = two_copies(probers)
    assert not overlaps, overlaps
    owner, _ = owner_seen_by(lab, 1)
    assert owner is not None
    assert probers[owner].samples[-1][1], f"the new owner {owner}'s copy does not answer"
    stopped = last_answer(probers[0])
    if owner != 0:
        # the frozen node's copy went away by itself: its lease lapsed (plus the monitor's kill bound), or, for
        # a short freeze that let the lease run on, within a lease of waking
        assert stopped is not None
        took_ms = (stopped - frozen_at) / 1e6
        print(f"freeze {freeze_s:g} s: the frozen owner's copy last answered {took_ms:.0f} ms after SIGSTOP; "
              f"{(min(t for t, ok in probers[owner].samples if ok and t > stopped) - stopped) / 1e6:.0f} ms "
              f"later the new owner's answered")
        assert stopped <= max(frozen_at + (d.LEASE_MS + d.LEASE_KILL_MS + PROBE_MS) * 1_000_000,
                              woken_at + d.LEASE_MS * 1_000_000), f"the stalled copy ran {took_ms:.0f} ms"
    local = lab.client(0).get("/v1/local")
    print("woken node's lease lapses:", local["monitors"]["default"].get("lease_lapses"))
