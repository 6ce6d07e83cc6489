"""The cluster's objects in the hive, administrators' operations on them, and what their updates mean to the
failover manager."""

from __future__ import annotations

import pytest

from wolfpack.machines import LiveMachine
from wolfpack.runtime.daemon import catalog, operations
from wolfpack.runtime.daemon.operations import AdminError
from wolfpack.runtime.db.hive import Hive
from wolfpack.spec.failover import NO_GROUP, WANTED_OFFLINE, WANTED_ONLINE, make_failover_spec

N, SLOTS = 3, 4
APP = {"command": ["sleep", "60"]}


def apply(hive: Hive, ops: list[dict]) -> list[tuple[str, dict]]:
    before = catalog.by_slot(hive)
    hive.apply(hive.last_seq + 1, ops)
    return catalog.events_of(before, hive, ops, N)


def web(hive: Hive) -> None:
    apply(hive, operations.create_group(hive, "web", n=N, slots=SLOTS, owner=1, preferred=[1, 2]))
    apply(hive, operations.create_resource(hive, "web", "ip", "Generic Application", APP))
    apply(hive, operations.create_resource(hive, "web", "app", "Generic Application", APP, depends_on=["ip"]))


def test_a_group_is_created_offline_in_a_free_slot_owned_by_the_asking_node() -> None:
    hive = Hive(":memory:")
    events = apply(hive, operations.create_group(hive, "web", n=N, slots=SLOTS, owner=1, preferred=[1, 2]))
    assert events == [("owner_applied", {"group": 0, "node": 1}),
                      ("group_configured", {"group": 0, "wanted": WANTED_OFFLINE, "failback": 0, "failback_start": -1,
                                            "failback_end": -1, "p0": 1, "p1": 2, "p2": -1})]
    info = catalog.groups(hive)["web"]
    assert info.slot == 0 and info.state == "offline" and catalog.owners(hive) == {0: 1}
    apply(hive, operations.create_group(hive, "db", n=N, slots=SLOTS, owner=0))
    assert catalog.groups(hive)["db"].slot == 1


def test_resources_carry_their_order_dependencies_and_checked_properties() -> None:
    hive = Hive(":memory:")
    web(hive)
    info = catalog.groups(hive)["web"]
    assert [(r.name, r.index, r.depends_on) for r in info.resources] == [("ip", 0, ()), ("app", 1, ("ip",))]
    assert info.resources[0].properties["stop_grace_ms"] == 10_000  # the type's defaults filled in
    config = info.config()
    assert list(config.resources) == ["ip", "app"] and config.depends_on == {"app": ["ip"]}


@pytest.mark.parametrize(("call", "message"), [
    (lambda h: operations.create_group(h, "web", n=N, slots=SLOTS, owner=0), "exists already"),
    (lambda h: operations.create_group(h, "bad/name", n=N, slots=SLOTS, owner=0), "not valid"),
    (lambda h: operations.create_group(h, "x", n=N, slots=SLOTS, owner=0, preferred=[5]), "distinct node ids"),
    (lambda h: operations.create_resource(h, "web", "ip", "Generic Application", APP), "exists already"),
    (lambda h: operations.create_resource(h, "web", "x", "No Such Type", {}), "unknown resource type"),
    (lambda h: operations.create_resource(h, "web", "x", "Generic Application", {}), "command"),
    (lambda h: operations.create_resource(h, "web", "x", "Generic Application", APP, depends_on=["x"]), "itself"),
    (lambda h: operations.delete_resource(h, "ip"), "depend on"),
    (lambda h: operations.set_group_state(h, "nope", "online", members=[0], paused=[], owners={}, n=N), "no group"),
])
def test_bad_requests_are_refused_with_what_to_do(call, message: str) -> None:  # type: ignore[no-untyped-def]
    hive = Hive(":memory:")
    web(hive)
    with pytest.raises(AdminError, match=message):
        call(hive)


def test_an_online_group_cannot_change_its_resources_or_be_deleted() -> None:
    hive = Hive(":memory:")
    web(hive)
    apply(hive, operations.set_group_state(hive, "web", "online", members=[0, 1, 2], paused=[], owners={0: 1}, n=N))
    with pytest.raises(AdminError, match="take it offline"):
        operations.create_resource(hive, "web", "more", "Generic Application", APP)
    with pytest.raises(AdminError, match="take it offline first"):
        operations.delete_group(hive, "web")


def test_online_places_a_group_whose_owner_is_gone_by_its_preferred_owners() -> None:
    hive = Hive(":memory:")
    web(hive)
    ops = operations.set_group_state(hive, "web", "online", members=[0, 2], paused=[], owners={0: 1}, n=N)
    events = apply(hive, ops)
    assert ("owner_applied", {"group": 0, "node": 2}) in events
    assert events[-1][1]["wanted"] == WANTED_ONLINE


def test_the_failover_manager_learns_a_database_from_its_events() -> None:
    hive = Hive(":memory:")
    web(hive)
    apply(hive, operations.set_group_state(hive, "web", "online", members=[0, 1, 2], paused=[], owners={0: 1}, n=N))
    apply(hive, catalog.encode([{"pause": 2, "paused": 1}]))
    live = LiveMachine(make_failover_spec(N, SLOTS), me=1, wanted=(NO_GROUP,) * SLOTS)
    for trigger, args in catalog.state_events(hive, N):
        live.step(trigger, **args)
    r = live.record
    assert r.wanted == (WANTED_ONLINE, NO_GROUP, NO_GROUP, NO_GROUP) and r.owner[0] == 1
    assert r.preferred[:3] == (1, 2, -1) and r.paused == (False, False, True)


def test_a_deleted_group_frees_its_slot() -> None:
    hive = Hive(":memory:")
    web(hive)
    apply(hive, operations.delete_resource(hive, "app"))
    events = apply(hive, operations.delete_group(hive, "web"))
    assert ("group_configured", {"group": 0, "wanted": NO_GROUP, "failback": 0, "failback_start": -1,
                                 "failback_end": -1, "p0": -1, "p1": -1, "p2": -1}) in events
    assert catalog.free_slot(hive, SLOTS) == 0


def test_only_resource_changes_rebuild_a_group_s_machines() -> None:
    state = [{"op": "set_value", "key": "Groups/web", "name": "state", "value": "online"}]
    res = [{"op": "create_key", "key": "Groups/web/Resources/ip"}]
    created = [{"op": "create_key", "key": "Groups/web"}]
    assert catalog.touched_groups(state) == set()
    assert catalog.touched_groups(res) == {"web"} == catalog.touched_groups(created)
