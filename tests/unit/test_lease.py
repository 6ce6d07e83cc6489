"""The lease (issue 14): the daemon renews it only while a quorum vouches for the node, and a real monitor process
terminates every resource by itself when it lapses, is revoked or ended, reports how long that took, and refuses
Online until the lease is renewed."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from test_monitor import FAST, app_pid, expect, monitor, run

from wolfpack.runtime.daemon.lease import LeaseKeeper, anchor_ns
from wolfpack.runtime.monitor.client import MonitorClient
from wolfpack.runtime.monitor.lease import LeasePage
from wolfpack.runtime.resource_types import process_groups

S = 1_000_000_000
SLEEPER = {"command": [sys.executable, "-c", "import time; time.sleep(600)"]}


# --- the anchor: what a quorum said it heard of this node --------------------------------------------------------


def test_a_majority_node_set_lease_rests_on_the_oldest_vouch_a_quorum_needs() -> None:
    now = 100 * S
    vouches = {1: (now - 30_000_000, 4, {0, 1, 2}), 2: (now - 80_000_000, 4, {0, 1, 2})}
    assert anchor_ns(0, 3, "mns", 4, False, vouches, now) == now - 30_000_000  # one peer is a quorum with me
    assert anchor_ns(0, 5, "mns", 4, False, {**vouches, 3: (None, 4, {0})}, now) == now - 80_000_000  # two needed
    assert anchor_ns(0, 5, "mns", 4, False, {1: vouches[1], 3: (None, 0, set())}, now) is None
    # a peer whose heartbeats carry a newer membership without this node vouches for it no more
    assert anchor_ns(0, 3, "mns", 4, False, {1: (now, 5, {1, 2}), 2: (None, 4, {0})}, now) is None
    assert anchor_ns(0, 3, "mns", 4, False, {1: (now, 5, {0, 1}), 2: (None, 4, {0})}, now) == now
    # disk quorum: the disk's holder holds the lease; another node needs a member's word
    assert anchor_ns(0, 2, "disk", 4, True, {1: (None, 4, {0, 1})}, now) == now
    assert anchor_ns(0, 2, "disk", 4, False, {1: (None, 4, {0, 1})}, now) is None
    assert anchor_ns(0, 2, "disk", 4, False, {1: (now - 5, 4, {0, 1})}, now) == now - 5


def test_the_keeper_renews_only_a_member_of_a_quorate_membership_and_ends_it(tmp_path: Path) -> None:
    keeper = LeaseKeeper(tmp_path / "lease", 0, 3, "mns", 600)
    reader = LeasePage.attach(tmp_path / "lease")
    now = time.monotonic_ns()
    heard = {1: (now - 10_000_000, 2, {0, 1, 2}), 2: (None, 2, {0})}
    assert not keeper.renew("Down", False, 2, False, heard, now) and "Down" in keeper.not_renewed
    assert not keeper.renew("Stable", True, 2, False, heard, now) and "halted" in keeper.not_renewed
    assert not keeper.renew("Stable", False, 2, False, {1: (None, 2, set()), 2: (None, 2, set())}, now)
    assert not reader.read().fresh()
    assert keeper.renew("Collecting", False, 2, False, heard, now)  # in a round, still a member: renewed
    lease = reader.read()
    assert lease.expiry_ns == now - 10_000_000 + 600_000_000 and lease.fresh() and lease.generation == 1
    stale = {1: (now - 700_000_000, 2, {0, 1, 2}), 2: (None, 2, {0})}
    assert not keeper.renew("Stable", False, 2, False, stale, now) and "700 ms ago" in keeper.not_renewed
    keeper.end("this node halted")
    assert reader.read().expiry_ns == 0 and not reader.read().fresh()
    keeper.page.revoke(5)  # stands for the heartbeat thread: a membership of epoch 5 left this node out
    keeper.installed(4)  # an older epoch does not lift it
    assert reader.read().revoked == 5
    keeper.installed(5)
    assert reader.read().revoked == 0
    assert keeper.status()["renewals"] == 1
    reader.close()
    keeper.close()


# --- a real monitor enforces it ------------------------------------------------------------------------------------


def leased_monitor(tmp_path: Path, page: LeasePage, kill_ms: int = 500) -> object:
    return monitor(tmp_path, lease=page.path, lease_kill_ms=kill_ms)


def test_a_lapsed_lease_terminates_the_resources_and_online_waits_for_a_renewal(tmp_path: Path) -> None:
    async def body() -> None:
        page = LeasePage.create(tmp_path / "run" / "lease")
        page.renew(time.monotonic_ns() + 5 * S)
        async with leased_monitor(tmp_path, page) as client:
            assert isinstance(client, MonitorClient)
            await client.open("app", "Generic Application", SLEEPER, **FAST)
            client.online("app", op_id=1)
            await expect(client, "online_succeeded", "app")
            pid = app_pid(tmp_path / "run", "app")
            assert process_groups.is_running(pid)
            expiry = time.monotonic_ns() + 300_000_000  # the daemon stops renewing: it lapses 300 ms from now
            page.renew(expiry)
            seen: list[dict[str, object]] = []
            lapsed = await expect(client, "lease_lapsed", timeout=5, seen=seen)
            gone = time.monotonic_ns()
            assert not process_groups.is_running(pid)
            assert lapsed["resources"] == ["app"] and lapsed["why"].startswith("lapsed")
            assert 0 <= lapsed["took_ms"] <= 500 and lapsed["within_bound"], lapsed
            assert expiry <= gone, "the application was killed before the lease's end"
            assert [m["op"] for m in seen if m.get("resource") == "app"] == ["is_alive_failed"], seen
            client.online("app", op_id=2)
            refused = await expect(client, "online_failed", "app")
            assert "lapsed" in refused["detail"] or "no fresh lease" in refused["detail"]
            page.renew(time.monotonic_ns() + 5 * S)  # the daemon is back in a quorate membership
            client.online("app", op_id=3)
            await expect(client, "online_succeeded", "app")
            assert process_groups.is_running(app_pid(tmp_path / "run", "app"))
        page.close()

    run(body())


def test_a_revoked_or_ended_lease_terminates_at_once_and_a_stale_one_refuses_online(tmp_path: Path) -> None:
    async def body() -> None:
        page = LeasePage.create(tmp_path / "run" / "lease")
        async with leased_monitor(tmp_path, page) as client:
            assert isinstance(client, MonitorClient)
            await client.open("a", "Generic Application", SLEEPER, **FAST)
            client.online("a", op_id=1)  # no lease yet: refused, nothing started
            refused = await expect(client, "online_failed", "a")
            assert "no fresh lease" in refused["detail"] and refused["op_id"] == 1
            assert not (tmp_path / "run" / "resources" / "a" / "application.pid").exists()
            page.renew(time.monotonic_ns() + 60 * S)
            client.online("a", op_id=2)
            await expect(client, "online_succeeded", "a")
            pid = app_pid(tmp_path / "run", "a")
            started = time.monotonic_ns()
            page.revoke(7)  # the heartbeat thread: a newer membership left this node out
            seen: list[dict[str, object]] = []
            lapsed = await expect(client, "lease_lapsed", timeout=5, seen=seen)
            assert lapsed["why"].startswith("revoked") and not process_groups.is_running(pid)
            assert (time.monotonic_ns() - started) / 1e6 < 1000
            assert any(m["op"] == "is_alive_failed" and "lease" in str(m.get("detail")) for m in seen), seen
            page.clear_revoked()
            page.renew(time.monotonic_ns() + 60 * S)
            client.online("a", op_id=3)
            await expect(client, "online_succeeded", "a")
            pid = app_pid(tmp_path / "run", "a")
            page.end()  # the daemon halted
            lapsed = await expect(client, "lease_lapsed", timeout=5)
            assert lapsed["why"].startswith("ended") and not process_groups.is_running(pid)
            await asyncio.sleep(0.2)
            assert client.lapses and len(client.lapses) == 2
        page.close()

    run(body())
