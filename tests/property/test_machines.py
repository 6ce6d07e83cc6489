"""The live machines against their tables, for every machine and group size.

Each ``Test*`` class is a hypothesis state machine generated from a spec
(:mod:`generated`) and runs under the loaded profile (``tests/conftest.py``).
The random walks below show that the same generators reach every state, so
the state machine tests are not stuck in a corner of the table.
"""

from __future__ import annotations

import unittest

import domains
import pytest
from generated import machine_test, random_walks
from hypothesis import settings

from wolfpack.spec import failover, heartbeat, membership, node, pr_arbitration, resource
from wolfpack.spec.core import Spec
from wolfpack.spec.group import make_group_spec
from wolfpack.spec.persistent_reservation import make_persistent_reservation_spec


def _test_case(spec: Spec, domain: domains.Domain) -> type[unittest.TestCase]:
    case = machine_test(spec, domains.records(spec, domain)).TestCase
    case.settings = settings()  # the loaded profile, stated rather than inherited by accident
    return case


TestResource = _test_case(resource.SPEC, domains.RESOURCE)
TestNode = _test_case(node.SPEC, domains.NODE)
TestGroup1 = _test_case(make_group_spec(1), domains.group(1))
TestGroup2 = _test_case(make_group_spec(2), domains.group(2))
TestGroup3 = _test_case(make_group_spec(3), domains.group(3))
TestGroup4 = _test_case(make_group_spec(4), domains.group(4))
TestHeartbeat = _test_case(heartbeat.SPEC, domains.HEARTBEAT)
TestMembership = _test_case(membership.SPEC, domains.MEMBERSHIP)
TestFailover = _test_case(failover.SPEC, domains.FAILOVER)
TestPersistentReservation = _test_case(make_persistent_reservation_spec(2), domains.PERSISTENT_RESERVATION)
TestPrArbitration = _test_case(pr_arbitration.SPEC, domains.PR_ARBITRATION)


@pytest.mark.parametrize("name", sorted(domains.machines()))
def test_random_walks_reach_every_state(name: str) -> None:
    spec, domain = domains.machines()[name]
    walks = domains.WALKS.get(name, 300)
    visits = random_walks(spec, lambda rng: domains.random_record(spec, domain, rng), walks=walks, steps=50, seed=2)
    missed = [s for s, count in visits.items() if count == 0]
    assert not missed, f"{name}: {walks} seeded random walks never reached {missed}; visits: {visits}"


def test_group_domains_hold_every_dag() -> None:
    # the number of labelled DAGs on n vertices (OEIS A003024): the drawn matrices miss none
    assert [len(domains.dags(n)) for n in domains.GROUP_SIZES] == [1, 3, 25, 543]
