"""A stalled owner (issue 14): the owner's ``wolfpackd`` is frozen with SIGSTOP while Debian's
``redis-server`` runs as its Generic Application, and a prober inside every node's namespace sends PING
to that node's copy every 20 ms.  Safety is judged from those answers, not from what the daemons say: at
no sampled moment may two copies answer, and once the daemon wakes its copy must be gone within a lease.

What stops the frozen daemon's copy is its monitor, a process apart: the daemon renews the monitor's lease
only while a quorum vouches for it; the lease lapses while the daemon is frozen and the monitor terminates
redis by itself, before the survivors' take-over wait ends (the obligation ``stalled_owner_stops_before_
takeover`` in proofs/timing.py)."""

from __future__ import annotations

import signal
import time

import pytest
from netns import Network, start_formed
from probe import PROBE_MS, last_answer, redis_group, start_probers, stop_probers, two_copies

from wolfpack.runtime.daemon.lab import LabCluster
from wolfpack.spec import defaults as d

pytestmark = pytest.mark.integration


def owner_seen_by(lab: LabCluster, i: int) -> tuple[int | None, str]:
    g = lab.group(i, "cache")
    return g["owner"], g["state"]


@pytest.mark.parametrize("freeze_s", [0.3, 2.0, 5.0, pytest.param(60.0, marks=pytest.mark.slow)])
def test_a_frozen_owner_daemon_loses_its_copy_before_another_answers(lab: LabCluster, network: Network,
                                                                      freeze_s: float) -> None:
    start_formed(lab)
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
