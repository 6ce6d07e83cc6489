"""The quorum rules (REQUIREMENTS Q1-Q4): which partition may survive.

Two kinds of quorum sit behind one function, :func:`survives`:

* **Disk quorum** (MSCS standard quorum, patent US 6,279,032): the partition
  that holds the quorum disk's reservation *is* the cluster, whatever its
  head count.  Who holds the reservation is decided by the arbitration
  machine (:mod:`wolfpack.spec.arbitration`) on the reservation device
  (:mod:`wolfpack.spec.reservation`).
* **Majority Node Set** (W2K3): a partition survives only with more than half
  of the votes: one per configured node, plus one for a witness if the
  cluster has one (File Share Witness, KB921181).  With ``n`` votes that is
  ``floor(n/2) + 1`` (TechNet cc783705: "(configured nodes / 2) + 1").  A
  change commits only when acknowledged by such a majority, so the same rule
  decides commits (:func:`majority_acknowledged`).

The witness is one extra vote that at most one partition can hold: it is
held through one node (``Witness.holder``, the node that owns the witness
share's lock), and partitions are disjoint sets of nodes.

Every function here is a combinator over vectors of 0/1 (or booleans) of
length ``n`` (one entry per node id), written with :mod:`wolfpack.spec.expr`,
so the runtime evaluates it on plain values and the proofs read it as z3
terms.  Only :func:`majority` (a plain number for messages and
configuration) and :func:`two_node_mns_refused` (a configuration check) are
concrete-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from wolfpack.errors import ConfigError
from wolfpack.spec.expr import And, Count, Exists, If, Or

#: The holder of nothing (no node holds the witness vote).
NOBODY = -1


class QuorumKind(IntEnum):
    """How a cluster decides which partition survives.

    The values match the membership machine's ``kind`` field (0 MNS, 1 disk).
    """

    MNS = 0  # Majority Node Set: more than half of the votes
    DISK = 1  # the partition holding the quorum disk's reservation


class Witness(NamedTuple):
    """An extra vote for Majority Node Set (a file share witness).

    ``configured``: the cluster has a witness (a bool, or a symbolic one).
    ``holder``: the node through which a partition holds the witness vote
    (it owns the witness's lock), or :data:`NOBODY`.
    """

    configured: Any
    holder: Any


#: A cluster without a witness.
NO_WITNESS = Witness(False, NOBODY)

TWO_NODE_MNS_MESSAGE = (
    "Majority Node Set needs at least 3 votes: add a third node or a witness, or use disk quorum"
)


# --- counting votes -----------------------------------------------------------------


def majority(configured_count: int) -> int:
    """Votes needed out of ``configured_count``: ``floor(n/2) + 1`` (concrete numbers only).

    Guards and invariants use :func:`has_majority`, which says the same
    without division (``2 * votes > total``) and also reads as a z3 term.
    """
    if configured_count < 0:
        raise ValueError(f"a vote count cannot be negative, got {configured_count}")
    return configured_count // 2 + 1


def has_majority(votes: Any, total: Any) -> Any:
    """``votes >= majority(total)``, written as ``2 * votes > total``."""
    return 2 * votes > total


def member_votes(members: Sequence[Any], configured: Sequence[Any]) -> Any:
    """Configured nodes among ``members`` (members that are not configured have no vote)."""
    _same_length(members, configured)
    return Count(And(m, c) for m, c in zip(members, configured, strict=True))


def holds_witness(members: Sequence[Any], configured: Sequence[Any], witness: Witness) -> Any:
    """The partition ``members`` holds the witness vote: the witness exists and its holder is a configured member."""
    return And(witness.configured,
               Exists(range(len(members)), lambda k: And(members[k], configured[k], witness.holder == k)))


def votes(members: Sequence[Any], configured: Sequence[Any], witness: Witness = NO_WITNESS) -> Any:
    """The votes of the partition ``members``: its configured nodes, plus the witness if it holds it."""
    return member_votes(members, configured) + If(holds_witness(members, configured, witness), 1, 0)


def total_votes(configured: Sequence[Any], witness: Witness = NO_WITNESS) -> Any:
    """Every vote of the cluster: one per configured node, one for a witness."""
    return Count(configured) + If(witness.configured, 1, 0)


# --- the two kinds ------------------------------------------------------------------


def mns_survives(members: Sequence[Any], configured: Sequence[Any], witness: Witness = NO_WITNESS) -> Any:
    """Majority Node Set: the partition holds more than half of all votes."""
    return has_majority(votes(members, configured, witness), total_votes(configured, witness))


def majority_acknowledged(acks: Sequence[Any], configured: Sequence[Any], witness: Witness = NO_WITNESS) -> Any:
    """A change commits under MNS once the acknowledging nodes hold a majority of the votes."""
    return mns_survives(acks, configured, witness)


def disk_survives(members: Sequence[Any], holds_disk: Any) -> Any:
    """Disk quorum: the partition survives iff it holds the disk, whatever its head count.

    ``holds_disk`` is either one flag for the partition or a vector with one
    flag per node (who holds the reservation); then some member must hold it.
    """
    if isinstance(holds_disk, tuple | list):
        _same_length(members, holds_disk)
        return Exists(range(len(members)), lambda k: And(members[k], holds_disk[k]))
    return holds_disk


def survives(kind: Any, members: Sequence[Any], configured: Sequence[Any], holds_disk: Any,
             witness: Witness = NO_WITNESS) -> Any:
    """The one quorum interface: may the partition ``members`` survive?

    ``kind`` is a :class:`QuorumKind` (or a symbolic integer); ``members``
    and ``configured`` are vectors over node ids; ``holds_disk`` is as in
    :func:`disk_survives` (ignored by MNS); ``witness`` as in :class:`Witness`
    (ignored by disk quorum).
    """
    disk = disk_survives(members, holds_disk)
    mns = mns_survives(members, configured, witness)
    if isinstance(kind, int):  # a concrete kind: only that rule
        return disk if kind == QuorumKind.DISK else mns
    return Or(And(kind == QuorumKind.DISK, disk), And(kind == QuorumKind.MNS, mns))


# --- configuration -------------------------------------------------------------------


def two_node_mns_refused(kind: QuorumKind, configured_count: int, witness: bool = False) -> None:
    """Refuse a Majority Node Set cluster of two nodes without a witness.

    With two votes the majority is two: the loss of either node stops the
    cluster, and a 1|1 split leaves no survivor, so the cluster would be
    less available than one node alone.  Raises :class:`ConfigError`.
    """
    if kind == QuorumKind.MNS and configured_count == 2 and not witness:
        raise ConfigError(
            f"quorum = Majority Node Set with 2 configured nodes and no witness is refused: {TWO_NODE_MNS_MESSAGE} "
            "(with 2 votes a majority is 2, so losing either node, or a 1|1 split, stops the whole cluster)"
        )
    if configured_count < 1:
        raise ConfigError(f"a cluster needs at least 1 configured node, got {configured_count}; list its nodes")


def _same_length(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"node vectors must have one entry per node id: lengths {len(a)} and {len(b)} differ")
