"""State machines written once, as data (see :mod:`wolfpack.spec.core`)."""

from __future__ import annotations

from wolfpack.spec.core import Spec

__all__ = ["Spec", "all_specs", "get"]


def all_specs() -> dict[str, Spec]:
    """Every machine by name, in a stable order."""
    from wolfpack.spec import (
        arbitration,
        failover,
        group,
        gum,
        heartbeat,
        membership,
        node,
        persistent_reservation,
        pr_arbitration,
        reservation,
        resource,
    )

    return {
        "resource": resource.SPEC,
        "group": group.SPEC,
        "node": node.SPEC,
        "heartbeat": heartbeat.SPEC,
        "membership": membership.SPEC,
        "gum": gum.SPEC,
        "failover": failover.SPEC,
        "reservation": reservation.SPEC,
        "arbitration": arbitration.SPEC,
        "persistent_reservation": persistent_reservation.SPEC,
        "pr_arbitration": pr_arbitration.SPEC,
    }


def get(name: str) -> Spec:
    specs = all_specs()
    try:
        return specs[name]
    except KeyError:
        from wolfpack.errors import WolfpackError

        raise WolfpackError(f"unknown machine {name!r}; choose from {', '.join(specs)}") from None
