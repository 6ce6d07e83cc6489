"""The failover manager with fencing required (cluster.fencing = "required"): a lost owner's groups move only
once a fence device reports it off, or the administrator confirms it is; a failed fence leaves them offline."""

from __future__ import annotations

from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.spec.failover import WANTED_ONLINE, make_failover_spec


def cluster_with_groups_on(owner: int, me: int = 0, fencing: bool = True) -> LiveMachine:
    """Node ``me`` of 3, both groups wanted online and owned by ``owner``, all three members."""
    live = LiveMachine(make_failover_spec(3, 2), me=me, wanted=(WANTED_ONLINE,) * 2)
    live.step("fencing_configured", required=int(fencing))
    live.step("installed", epoch=1, m0=1, m1=1, m2=1)
    live.step("resume_owned_elapsed")
    for g in range(2):
        live.step("group_configured", group=g, wanted=WANTED_ONLINE, failback=0, failback_start=-1,
                  failback_end=-1, p0=owner, p1=(owner + 1) % 3, p2=(owner + 2) % 3)
        live.step("owner_applied", group=g, node=owner)
    return live


def named(effects: list[Any]) -> dict[str, dict[str, Any]]:
    return {e.name: dict(e.args) for e in effects}


def placed(effects: list[Any]) -> list[int]:
    return sorted(u["group"] for e in effects if e.name == "submit_owners" for u in e.args["updates"])


def test_the_coordinator_fences_the_lost_owner_at_once_and_places_its_groups_only_after_the_fence() -> None:
    live = cluster_with_groups_on(2)
    installed = named(live.step("installed", epoch=2, m0=1, m1=1, m2=0))
    assert installed["fence_nodes"] == {"nodes": [2]}
    assert placed(live.step("takeover_elapsed")) == []  # the wait is over, but node 2 may still run them
    assert placed(live.step("fence_succeeded", node=2)) == [0, 1]


def test_a_fence_before_the_take_over_wait_places_nothing_early() -> None:
    live = cluster_with_groups_on(2)
    live.step("installed", epoch=2, m0=1, m1=1, m2=0)
    assert placed(live.step("fence_succeeded", node=2)) == []
    assert placed(live.step("takeover_elapsed")) == [0, 1]


def test_a_failed_fence_leaves_the_groups_offline_reports_it_and_tries_again() -> None:
    live = cluster_with_groups_on(2)
    live.step("installed", epoch=2, m0=1, m1=1, m2=0)
    live.step("takeover_elapsed")
    failed = live.step("fence_failed", node=2)
    assert named(failed)["fence_failed"] == {"node": 2, "groups": [0, 1]}
    assert next(e for e in failed if e.kind == "start_timer").args["ms"] == live.record.fence_retry_ms
    assert placed(failed) == []
    assert named(live.step("fence_retry_elapsed"))["fence_nodes"] == {"nodes": [2]}
    # the administrator confirms node 2 is off (wolfpack fence confirm 2): the groups move
    assert placed(live.step("fence_succeeded", node=2)) == [0, 1]


def test_only_the_coordinator_fences_and_places() -> None:
    live = cluster_with_groups_on(2, me=1)
    assert "fence_nodes" not in named(live.step("installed", epoch=2, m0=1, m1=1, m2=0))
    assert placed(live.step("fence_succeeded", node=2)) == []
    assert "fence_nodes" not in named(live.step("fence_retry_elapsed"))


def test_a_lost_node_that_owns_nothing_wanted_online_is_not_fenced() -> None:
    live = cluster_with_groups_on(0)
    assert "fence_nodes" not in named(live.step("installed", epoch=2, m0=1, m1=1, m2=0))


def test_with_fencing_off_the_groups_move_after_the_take_over_wait_alone() -> None:
    live = cluster_with_groups_on(2, fencing=False)
    assert "fence_nodes" not in named(live.step("installed", epoch=2, m0=1, m1=1, m2=0))
    assert placed(live.step("takeover_elapsed")) == [0, 1]


def test_a_node_still_unfenced_at_the_next_membership_is_fenced_again_and_clears_when_it_rejoins() -> None:
    live = cluster_with_groups_on(2)
    live.step("installed", epoch=2, m0=1, m1=1, m2=0)
    live.step("fence_failed", node=2)
    assert named(live.step("installed", epoch=3, m0=1, m1=0, m2=0))["fence_nodes"] == {"nodes": [2]}
    live.step("installed", epoch=4, m0=1, m1=1, m2=1)  # node 2 is back (it was off, it restarted)
    assert live.record.unfenced == (False, False, False)


def test_a_new_coordinator_fences_what_the_old_one_had_not() -> None:
    live = cluster_with_groups_on(2, me=1)
    live.step("installed", epoch=2, m0=1, m1=1, m2=0)  # node 0 coordinates: node 1 does nothing yet
    installed = named(live.step("installed", epoch=3, m0=0, m1=1, m2=0))  # node 0 is gone too
    assert installed["fence_nodes"] == {"nodes": [2]}  # node 0 owned nothing wanted online: not fenced
