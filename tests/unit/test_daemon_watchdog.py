"""The daemon's watchdog policy (runtime/daemon/watchdog.py) on the fake watchdog device: armed at the first fresh
lease, petted only while the lease is fresh, so a stalled daemon's node is reset; disarmed when the daemon ends the
lease itself."""

from __future__ import annotations

import pytest

from wolfpack.errors import ConfigError
from wolfpack.hw.watchdog import FakeWatchdog, FakeWatchdogDevice
from wolfpack.runtime.daemon import config
from wolfpack.runtime.daemon.watchdog import WatchdogKeeper


def keeper(device: FakeWatchdogDevice, timeout_s: int = 5) -> WatchdogKeeper:
    return WatchdogKeeper("/dev/watchdog", timeout_s, driver=lambda path: FakeWatchdog(device))


def test_a_node_waiting_to_join_is_never_armed() -> None:
    device = FakeWatchdogDevice()
    k = keeper(device)
    for _ in range(100):
        k.tick(lease_fresh=False)
        device.advance(1)
    assert not device.fired and k.status()["armed"] is False


def test_petted_while_the_lease_is_fresh_and_reset_once_it_stops_being_renewed() -> None:
    device = FakeWatchdogDevice()
    k = keeper(device, timeout_s=5)
    for _ in range(50):  # 50 ticks of 0.1 s with a fresh lease: never fires
        k.tick(lease_fresh=True)
        device.advance(0.1)
    assert not device.fired and k.status()["armed"] and k.status()["pets"] == 50
    # the daemon stalls (no ticks) or its lease lapses (ticks without a fresh lease): reset 5 s after the last pet
    for _ in range(49):
        k.tick(lease_fresh=False)
        device.advance(0.1)
    assert not device.fired
    device.advance(0.2)
    assert device.fired


def test_a_halt_disarms_and_the_next_lease_arms_again() -> None:
    device = FakeWatchdogDevice()
    k = keeper(device)
    k.tick(lease_fresh=True)
    k.release("this node halted")
    device.advance(60)
    assert not device.fired, "a node the daemon halted itself is not reset (the monitors stop its resources)"
    k.tick(lease_fresh=True)
    assert k.status()["armed"] and k.status()["arms"] == 2
    device.advance(6)
    assert device.fired


def test_none_is_off_and_a_bad_device_name_is_refused_at_load(tmp_path: object) -> None:
    off = WatchdogKeeper("none", 5)
    off.tick(lease_fresh=True)
    assert not off.status()["armed"]
    with pytest.raises(ConfigError, match=r"node\.watchdog"):
        config.load(None, environ={}, overrides={"node.watchdog": "watchdog0", "cluster.name": "x", "node.id": 0,
                                                 "node.data_dir": "/tmp/x", "cluster.key": "00" * 32})


def test_a_device_that_cannot_open_is_logged_and_the_node_runs_on() -> None:
    k = WatchdogKeeper("/dev/no-such-watchdog", 5)  # the Linux driver: the device does not exist here
    k.tick(lease_fresh=True)
    assert not k.status()["armed"] and k.status()["error"]
