"""The parameter values the generated tests draw initial records from.

A domain maps each parameter field to the values it may take.  The same
domain feeds hypothesis (:func:`records`) and the seeded random walks
(:func:`random_record`).  Variables keep their defaults and the state is the
spec's initial state, so every record is one the machine can start from.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from hypothesis import strategies as st

from wolfpack.spec import failover, heartbeat, membership, node, pr_arbitration, resource
from wolfpack.spec.core import Record, Spec
from wolfpack.spec.defaults import FailbackPolicy, RestartAction
from wolfpack.spec.group import make_group_spec
from wolfpack.spec.persistent_reservation import make_persistent_reservation_spec

Domain = Mapping[str, Sequence[Any]]

GROUP_SIZES = (1, 2, 3, 4)

RESOURCE: Domain = {
    "restart_action": tuple(RestartAction),
    "restart_threshold": range(6),
    "pending_timeout_ms": range(1, 11),
    "restart_period_ms": range(1, 11),
    "restart_delay_ms": range(11),
    "retry_period_ms": range(1, 11),
}

NODE: Domain = {}

HEARTBEAT: Domain = {"me": range(3), "period_ms": range(1, 4), "threshold": range(1, 5)}

FAILOVER: Domain = {"me": range(3), "preferred": ((-1,) * 6, (0, 1, 2, 1, 2, 0), (2, -1, -1, 0, 1, -1))}

MEMBERSHIP: Domain = {"me": range(3), "kind": (0, 1), "stage_ms": range(1, 4), "max_rounds": range(1, 4)}

#: a target with PREEMPT AND ABORT, and one without (tgt); tested for 2 nodes, as in the composed proof
#: (every command step evaluates every command's effect: 3 nodes cost twice the time for nothing new)
PERSISTENT_RESERVATION: Domain = {"abort_supported": (True, False)}

#: the timings only go into timers (no guard reads them): small values
PR_ARBITRATION: Domain = {"me": range(3), "renew_period_ms": range(1, 11), "challenge_wait_ms": range(1, 31),
                          "reserve_timeout_ms": range(1, 6)}


#: seeded random walks per machine in ``test_random_walks_reach_every_state`` (default 300): the persistent
#: reservation has two states, and a walk of it costs about 25 times a resource's (every command's effect is
#: evaluated at every step), so 20 walks show both states reached (each is, hundreds of times)
#: membership: Proposing needs a node that ranks first among all it heard (the newest epoch, then the lowest id),
#: rare in walks that draw the peers' epochs at random (3 visits in 300 walks with the lowest-id rule, 0 since the
#: epoch ranks first, 3 in 2000)
WALKS: Mapping[str, int] = {"persistent_reservation": 20, "membership": 2000}


@cache
def dags(n: int) -> tuple[tuple[bool, ...], ...]:
    """Every acyclic dependency matrix over n resources, fewest edges first.

    A DAG is a set of edges from higher to lower index, relabelled by a
    permutation (every DAG has a topological order).
    """
    pairs = [(i, j) for i in range(n) for j in range(i)]
    found = set()
    for chosen in itertools.product((False, True), repeat=len(pairs)):
        for perm in itertools.permutations(range(n)):
            matrix = [False] * (n * n)
            for (i, j), edge in zip(pairs, chosen, strict=True):
                if edge:
                    matrix[perm[i] * n + perm[j]] = True
            found.add(tuple(matrix))
    return tuple(sorted(found, key=lambda m: (sum(m), m)))


def group(n: int) -> Domain:
    return {
        "dep": dags(n),
        "nodes": range(1, 5),
        "failover_threshold": range(4),
        "failback_policy": tuple(FailbackPolicy),
        "failback_window_start": range(-1, 24),
        "failback_window_end": range(-1, 24),
        "failback_limit": range(4),
    }


def records(spec: Spec, domain: Domain) -> st.SearchStrategy[Record]:
    """Initial records of ``spec`` with parameters drawn from ``domain``."""
    if not domain:
        return st.just(spec.record())
    return st.fixed_dictionaries({k: st.sampled_from(v) for k, v in domain.items()}).map(lambda p: spec.record(**p))


def random_record(spec: Spec, domain: Domain, rng: random.Random) -> Record:
    return spec.record(**{k: rng.choice(v) for k, v in domain.items()})


def machines() -> dict[str, tuple[Spec, Domain]]:
    """Every machine the property tests cover, by test name."""
    out: dict[str, tuple[Spec, Domain]] = {
        "resource": (resource.SPEC, RESOURCE),
        "node": (node.SPEC, NODE),
        "heartbeat": (heartbeat.SPEC, HEARTBEAT),
        "membership": (membership.SPEC, MEMBERSHIP),
        "failover": (failover.SPEC, FAILOVER),
        "persistent_reservation": (make_persistent_reservation_spec(2), PERSISTENT_RESERVATION),
        "pr_arbitration": (pr_arbitration.SPEC, PR_ARBITRATION),
    }
    for n in GROUP_SIZES:
        out[f"group{n}"] = (make_group_spec(n), group(n))
    return out
