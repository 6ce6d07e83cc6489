"""The quorum rules: majorities, splits, disk quorum, witnesses, and the 2-node MNS refusal."""

from itertools import product

import pytest

from wolfpack.errors import ConfigError
from wolfpack.spec.quorum import (
    NO_WITNESS,
    NOBODY,
    TWO_NODE_MNS_MESSAGE,
    QuorumKind,
    Witness,
    has_majority,
    majority,
    majority_acknowledged,
    mns_survives,
    survives,
    total_votes,
    two_node_mns_refused,
    votes,
)

MNS, DISK = QuorumKind.MNS, QuorumKind.DISK


def nodes(n: int, *members: int) -> tuple[bool, ...]:
    return tuple(k in members for k in range(n))


def everyone(n: int) -> tuple[bool, ...]:
    return (True,) * n


@pytest.mark.parametrize(("n", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)])
def test_majority_is_floor_half_plus_one(n: int, needed: int) -> None:
    assert majority(n) == needed
    assert [has_majority(v, n) for v in range(n + 1)] == [v >= needed for v in range(n + 1)]


def test_majority_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="negative"):
        majority(-1)


def test_mns_split_two_two_leaves_no_survivor() -> None:
    left, right = nodes(4, 0, 1), nodes(4, 2, 3)
    assert not mns_survives(left, everyone(4))
    assert not mns_survives(right, everyone(4))
    assert not survives(MNS, left, everyone(4), holds_disk=True)


def test_mns_split_three_two_keeps_the_three() -> None:
    three, two = nodes(5, 0, 1, 2), nodes(5, 3, 4)
    assert survives(MNS, three, everyone(5), holds_disk=False)
    assert not survives(MNS, two, everyone(5), holds_disk=True)  # MNS ignores the disk


def test_disk_quorum_one_two_split_keeps_the_side_holding_the_disk_whatever_its_size() -> None:
    single, pair = nodes(3, 0), nodes(3, 1, 2)
    disk_at_0 = nodes(3, 0)
    assert survives(DISK, single, everyone(3), disk_at_0)
    assert not survives(DISK, pair, everyone(3), disk_at_0)
    # the same with one flag per partition
    assert survives(DISK, single, everyone(3), True)
    assert not survives(DISK, pair, everyone(3), False)


def test_unconfigured_members_have_no_vote() -> None:
    configured = nodes(4, 0, 1, 2)  # node 3 is not configured
    assert votes(nodes(4, 1, 3), configured) == 1
    assert not mns_survives(nodes(4, 1, 3), configured)
    assert mns_survives(nodes(4, 0, 1, 3), configured)


def test_a_witness_breaks_a_two_node_tie_for_the_side_that_holds_it() -> None:
    witness = Witness(True, 1)
    assert total_votes(everyone(2), witness) == 3
    assert mns_survives(nodes(2, 1), everyone(2), witness)
    assert not mns_survives(nodes(2, 0), everyone(2), witness)
    assert not mns_survives(nodes(2, 0), everyone(2), Witness(True, NOBODY))  # nobody holds it: 1 of 3
    assert mns_survives(everyone(2), everyone(2), Witness(True, NOBODY))  # both nodes: 2 of 3


def test_a_witness_held_through_an_unconfigured_node_gives_no_vote() -> None:
    configured = nodes(3, 0, 1)
    assert votes(nodes(3, 0, 2), configured, Witness(True, 2)) == 1


def test_a_change_commits_with_a_majority_of_acknowledgements() -> None:
    assert majority_acknowledged(nodes(3, 0, 2), everyone(3))
    assert not majority_acknowledged(nodes(3, 2), everyone(3))


def test_two_disjoint_partitions_never_both_survive_for_up_to_four_nodes() -> None:
    # exhaustive over every configuration, split (including nodes in neither side), witness and disk holder
    for n in range(1, 5):
        for configured in product((False, True), repeat=n):
            for sides in product((0, 1, 2), repeat=n):  # 0: neither, 1: side a, 2: side b
                a = tuple(s == 1 for s in sides)
                b = tuple(s == 2 for s in sides)
                for holder in range(-1, n):
                    witness = NO_WITNESS if holder < 0 else Witness(True, holder)
                    disk = tuple(k == holder for k in range(n))
                    for kind in QuorumKind:
                        both = survives(kind, a, configured, disk, witness) and survives(kind, b, configured, disk,
                                                                                         witness)
                        assert not both, (n, configured, sides, holder, kind)


def test_two_node_mns_without_a_witness_is_refused_with_the_advice() -> None:
    with pytest.raises(ConfigError) as info:
        two_node_mns_refused(MNS, 2)
    assert TWO_NODE_MNS_MESSAGE in str(info.value)
    assert "Majority Node Set needs at least 3 votes: add a third node or a witness, or use disk quorum" in str(
        info.value)


@pytest.mark.parametrize(("kind", "count", "witness"), [(MNS, 2, True), (MNS, 3, False), (MNS, 1, False),
                                                        (DISK, 2, False)])
def test_other_quorum_configurations_are_accepted(kind: QuorumKind, count: int, witness: bool) -> None:
    two_node_mns_refused(kind, count, witness)


def test_a_cluster_without_nodes_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 1 configured node"):
        two_node_mns_refused(DISK, 0)


def test_vectors_of_different_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="one entry per node"):
        mns_survives(nodes(3, 0), everyone(2))


def test_the_quorum_rules_are_proved_exclusive_for_one_to_seven_nodes() -> None:
    from wolfpack.proofs.arbitration_model import quorum_results
    from wolfpack.proofs.results import PROVED

    rows = quorum_results()
    assert {r.prop for r in rows} == {"majority_is_floor_half_plus_one", "mns_partitions_exclusive",
                                      "disk_partitions_exclusive"}
    assert all(r.result == PROVED for r in rows), [(r.prop, r.detail) for r in rows]


def test_the_exclusion_proof_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # a broken rule (a half is enough) must be caught: 2|2 would survive on both sides
    from wolfpack.proofs import arbitration_model
    from wolfpack.proofs.results import FAILED

    monkeypatch.setattr(arbitration_model, "survives",
                        lambda kind, m, c, d, w: 2 * votes(m, c, w) >= total_votes(c, w))
    rows = {r.prop: r for r in arbitration_model.quorum_results(sizes=(2, 4))}
    assert rows["mns_partitions_exclusive"].result == FAILED
    assert "[2, 4]" in rows["mns_partitions_exclusive"].detail
