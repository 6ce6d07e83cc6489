"""The failover manager and a group's replicated configuration (the administrator's online, offline, move)."""

from __future__ import annotations

from wolfpack.machines import LiveMachine
from wolfpack.spec.failover import NO_GROUP, STOPPING, WANTED_OFFLINE, WANTED_ONLINE, make_failover_spec


def machine(me: int = 0) -> LiveMachine:
    live = LiveMachine(make_failover_spec(3, 2), me=me, wanted=(NO_GROUP,) * 2)
    live.step("installed", epoch=1, m0=1, m1=1, m2=1)
    live.step("resume_owned_elapsed")  # a node that just joined starts nothing before the take-over wait
    return live


def configure(live: LiveMachine, wanted: int) -> list[str]:
    return [e.name for e in live.step("group_configured", group=0, wanted=wanted, failback=0, failback_start=-1,
                                      failback_end=-1, p0=0, p1=1, p2=-1)]


def test_an_owned_offline_group_starts_when_wanted_online_and_stops_when_wanted_offline() -> None:
    live = machine()
    configure(live, WANTED_OFFLINE)
    assert live.step("owner_applied", group=0, node=0) == []  # owned, but to stay offline
    assert configure(live, WANTED_ONLINE) == ["group_online"]
    assert live.record.running[0]
    assert configure(live, WANTED_OFFLINE) == ["groups_offline"]
    assert live.record.running[0] and live.record.moving[0] == STOPPING  # it runs until its machine says offline
    live.step("group_stopped", group=0)
    assert not live.record.running[0] and live.record.moving[0] == -1 and live.record.owner[0] == 0


def test_an_offline_group_moves_at_once_but_not_while_it_is_still_stopping() -> None:
    live = machine()
    configure(live, WANTED_ONLINE)
    live.step("owner_applied", group=0, node=0)
    configure(live, WANTED_OFFLINE)
    refused = live.step("move_requested", group=0, node=1)
    assert [e.name for e in refused] == ["move_refused"]  # still going offline
    live.step("group_stopped", group=0)
    moved = live.step("move_requested", group=0, node=1)
    assert [(e.name, e.args["updates"]) for e in moved] == [("submit_owners", [{"group": 0, "node": 1}])]


def test_free_slots_are_never_placed() -> None:
    live = LiveMachine(make_failover_spec(3, 2), me=0, wanted=(NO_GROUP, WANTED_OFFLINE))
    live.step("installed", epoch=1, m0=1, m1=1, m2=0)
    placed = live.step("takeover_elapsed")
    assert [u["group"] for e in placed for u in e.args["updates"]] == [1]


def test_a_node_that_just_joined_starts_its_wanted_groups_only_after_the_take_over_wait() -> None:
    live = LiveMachine(make_failover_spec(3, 2), me=0, wanted=(NO_GROUP,) * 2)
    live.step("installed", epoch=1, m0=1, m1=1, m2=1)
    live.step("owner_applied", group=0, node=0)
    assert configure(live, WANTED_ONLINE) == []
    assert [e.name for e in live.step("resume_owned_elapsed")] == ["groups_online"]
