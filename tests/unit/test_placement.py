"""Failover placement: cascading, N+1, paused and possible owners, load spread."""

import itertools

from wolfpack.spec.placement import ClusterView, GroupPlacement, place, place_all


def test_cascading_failover_walks_the_preferred_list() -> None:
    g = GroupPlacement("sql", preferred=(0, 1, 2, 3), leaving=0)
    assert place(g, ClusterView(up=frozenset({1, 2, 3}))) == 1
    g2 = GroupPlacement("sql", preferred=(0, 1, 2, 3), leaving=1)
    assert place(g2, ClusterView(up=frozenset({2, 3}))) == 2
    g3 = GroupPlacement("sql", preferred=(0, 1, 2, 3), leaving=3)
    assert place(g3, ClusterView(up=frozenset({0, 1, 2}))) == 0  # wraps round


def test_n_plus_one_sends_groups_to_the_standby_first() -> None:
    standby = 3
    groups = [GroupPlacement(f"g{k}", preferred=(k, standby), leaving=k) for k in range(3)]
    view = ClusterView(up=frozenset({1, 2, 3}))
    assert place(groups[0], view) == standby


def test_paused_and_impossible_owners_are_skipped() -> None:
    g = GroupPlacement("web", preferred=(1, 2, 3), possible={1, 3}, leaving=0)
    assert place(g, ClusterView(up=frozenset({1, 2, 3}), paused=frozenset({1}))) == 3
    assert place(g, ClusterView(up=frozenset({1, 2}), paused=frozenset({1}))) is None


def test_groups_without_preference_spread_over_survivors() -> None:
    groups = [GroupPlacement(f"g{k}", leaving=0) for k in range(6)]
    result = place_all(groups, ClusterView(up=frozenset({1, 2, 3})))
    counts = {n: list(result.values()).count(n) for n in (1, 2, 3)}
    assert counts == {1: 2, 2: 2, 3: 2}


def test_existing_load_is_respected() -> None:
    result = place_all([GroupPlacement("a"), GroupPlacement("b")],
                       ClusterView(up=frozenset({1, 2}), load={1: 3}))
    assert result == {"a": 2, "b": 2}


def test_every_survivor_computes_the_same_placement() -> None:
    groups = [GroupPlacement(f"g{k}", preferred=((k % 4), 3), leaving=k % 4) for k in range(8)]
    view = ClusterView(up=frozenset({1, 2, 3}), load={1: 1})
    expected = place_all(groups, view)
    for perm in itertools.islice(itertools.permutations(groups), 50):
        assert place_all(perm, ClusterView(frozenset({3, 2, 1}), load={1: 1})) == expected
