"""The simulated resource monitor (runtime/sim/monitor.py) and the simulated heartbeats' lease bookkeeping
(runtime/sim/lease.py), against what the real monitor and heartbeat timer do."""

from __future__ import annotations

from wolfpack.runtime.heartbeat._wire import AGE_NEVER
from wolfpack.runtime.sim.clock import VirtualClock
from wolfpack.runtime.sim.lease import BeatNote, SimHeartbeats
from wolfpack.runtime.sim.monitor import KILL_MS, SimMonitor

OP = 50


def monitor() -> tuple[SimMonitor, list[tuple[int, str, str]]]:
    clock = VirtualClock()
    heard: list[tuple[int, str, str]] = []
    m = SimMonitor(0, clock, lambda machine, event: heard.append((clock.now, machine, event)))
    return m, heard


def started(expiry: int) -> tuple[SimMonitor, list[tuple[int, str, str]]]:
    """A monitor whose lease holds until ``expiry``, with res0.0's process started (at ``OP``)."""
    m, heard = monitor()
    m.renew(expiry)
    m.call("res0.0", "Online", OP)
    m.clock.run_for(OP)
    return m, heard


def test_online_without_a_fresh_lease_is_refused_and_starts_nothing() -> None:
    m, heard = monitor()
    m.call("res0.0", "Online", OP)
    m.clock.run_for(100)
    assert heard == [(0, "res0.0", "online_failed")] and not m.running


def test_online_offline_and_terminate_under_a_lease() -> None:
    m, heard = monitor()
    m.renew(10_000)
    m.call("res0.0", "Online", OP)
    m.call("res0.1", "Online", OP)
    m.clock.run_for(OP - 1)
    assert not m.running and m.starting == {"res0.0", "res0.1"}  # a process runs once Online completes
    m.clock.run_for(1)
    assert m.running == {"res0.0", "res0.1"}
    m.call("res0.0", "Offline", OP)
    m.clock.run_for(OP - 1)
    assert "res0.0" in m.running  # the process runs until Offline completes
    m.clock.run_for(1)
    m.call("res0.1", "Terminate", OP)
    assert not m.running  # Terminate is at once
    assert [e for _, _, e in heard] == ["online_succeeded", "online_succeeded", "offline_succeeded"]


def test_terminate_abandons_an_online_in_flight() -> None:
    m, heard = monitor()
    m.renew(10_000)
    m.call("res0.0", "Online", OP)
    m.clock.run_for(10)
    m.call("res0.0", "Terminate", OP)
    m.clock.run_for(100)
    assert not m.running and heard == []


def test_a_lapse_kills_within_the_bound_and_refuses_online_until_a_newer_renewal() -> None:
    m, heard = monitor()
    m.renew(500)
    m.call("res0.0", "Online", OP)
    m.clock.run_for(499)
    m.renew(600)  # renewed in time: no lapse
    m.clock.run_for(100)
    assert m.running == {"res0.0"} and not m.lapses
    m.clock.run_for(1 + KILL_MS)  # lapsed at 600
    assert not m.running and m.lapses == [(600, 600 + KILL_MS, ["res0.0"])]
    assert heard[-1] == (600 + KILL_MS, "res0.0", "is_alive_failed")
    m.call("res0.0", "Online", OP)
    m.clock.run_for(1)
    assert heard[-1][2] == "online_failed"  # no fresh lease
    m.renew(m.clock.now + 1000)
    m.call("res0.0", "Online", OP)
    m.clock.run_for(OP)
    assert m.running == {"res0.0"}


def test_a_renewal_after_the_lapse_was_seen_does_not_save_the_process() -> None:
    m, _ = monitor()
    m.renew(100)
    m.call("res0.0", "Online", OP)
    m.clock.run_for(105)  # the lease ended at 100; the kill comes at 100 + KILL_MS
    m.renew(m.clock.now + 500)
    m.clock.run_for(KILL_MS)
    assert not m.running and len(m.lapses) == 1


def test_an_online_in_flight_when_the_lease_ends_fails_and_never_runs() -> None:
    m, heard = monitor()
    m.renew(20)
    m.call("res0.0", "Online", OP)
    m.clock.run_for(200)
    assert not m.running and heard == [(20 + KILL_MS, "res0.0", "online_failed")]


def test_a_revocation_kills_and_holds_until_a_newer_epoch_is_installed() -> None:
    m, heard = started(10_000)
    m.revoke(3)
    m.clock.run_for(KILL_MS)
    assert not m.running and heard[-1][2] == "is_alive_failed"
    m.installed(2)
    m.renew(10_000)
    assert m.no_lease() is not None  # an older epoch does not lift it
    m.installed(3)
    m.renew(10_000)
    assert m.no_lease() is None


def test_a_frozen_monitor_kills_nothing_and_completes_nothing_until_it_thaws() -> None:
    m, heard = started(100)
    m.call("res0.1", "Online", OP)
    m.freeze()
    m.clock.run_for(1000)
    assert m.running == {"res0.0"} and len(heard) == 1  # res0.1's Online came due while frozen
    m.thaw()
    assert m.running == {"res0.0", "res0.1"}  # what came due is done first; the lease has ended since
    m.clock.run_for(KILL_MS)
    assert not m.running and m.lapses[0][0] == 1000 + OP


def test_a_monitor_whose_daemon_died_answers_nothing_more() -> None:
    m, heard = started(10_000)
    m.call("res0.0", "Offline", OP)
    m.clear()
    m.clock.run_for(1000)
    assert not m.running and heard == [(OP, "res0.0", "online_succeeded")]


def test_a_peers_vouch_is_when_it_last_heard_this_node() -> None:
    hb = SimHeartbeats(0, 3)
    assert hb.received(1, 1, BeatNote(frozenset({0, 1, 2}), (30, 0, AGE_NEVER)), now=1000) is None
    assert hb.vouches[1] == (970, 1, frozenset({0, 1, 2}))
    hb.received(2, 1, BeatNote(frozenset({0, 1, 2}), (AGE_NEVER, 5, 0)), now=1001)
    assert hb.vouches[2][0] is None  # it never heard node 0
    assert hb.note(1011).ages == (0, 11, 10)  # what node 0's next heartbeat says of its peers


def test_a_newer_membership_without_this_node_revokes_once_per_peer_and_epoch() -> None:
    hb = SimHeartbeats(0, 3)
    hb.set_epoch(1, frozenset({0, 1, 2}))
    without = BeatNote(frozenset({1, 2}), (0, 0, 0))
    assert hb.received(1, 1, without, now=10) is None  # not newer
    assert hb.received(1, 2, without, now=20) == 2
    assert hb.received(1, 2, without, now=30) is None  # reported once
    assert hb.received(2, 2, without, now=30) == 2
    assert hb.received(2, 3, BeatNote(frozenset({0, 1, 2}), (0, 0, 0)), now=40) is None  # it includes node 0
