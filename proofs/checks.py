"""The checks of ``wolfpack verify`` that are not single models of the registry (:mod:`wolfpack.proofs.models`):
composed models with checkers of their own, and the quorum rules.

* ``gum_cluster``: the composed GUM of 3 nodes for all depths (:mod:`wolfpack.proofs.gum_model`); with
  ``deep``, the same for 4 nodes (1-induction, minutes);
* ``regroup``: BMC of the message-level regroup, 3 and 4 nodes under Majority Node Set
  (:mod:`wolfpack.proofs.regroup_model`), to the default depths or ``depth``; with ``deep``, two steps deeper,
  and 3 nodes under disk quorum (what its properties become without timing);
* ``cluster``: membership, quorum and ownership composed, for all depths (:mod:`wolfpack.proofs.cluster_model`);
* ``quorum``: two disjoint partitions never both survive (:mod:`wolfpack.proofs.arbitration_model`).
"""

from __future__ import annotations

from wolfpack.proofs.model import Model
from wolfpack.proofs.results import Result

#: checked here, in this order, when named or when everything is checked
NAMES = ("gum_cluster", "regroup", "cluster", "quorum")
#: steps added to the regroup depths by ``deep``
DEEPER = 2


def run_checks(names: tuple[str, ...], depth: int | None = None,
               deep: bool = False) -> tuple[list[Result], list[Model]]:
    """Results and models of the named checks (all of them when ``names`` is empty)."""
    chosen = [n for n in NAMES if not names or n in names]
    results: list[Result] = []
    models: list[Model] = []
    for name in chosen:
        if name == "gum_cluster":
            from wolfpack.proofs.gum_model import check_gum, gum_model

            for n in (3, 4) if deep else (3,):
                results += check_gum(gum_model(n))
                models.append(gum_model(n))
        elif name == "regroup":
            from wolfpack.proofs.regroup_model import DEEP_DEPTHS, DEPTHS, SIZES, check_regroup, regroup_model

            sizes = {(n, kind): d + (DEEPER if deep else 0) for (n, kind), d in DEPTHS.items() if (n, kind) in SIZES}
            if deep:
                sizes.update(DEEP_DEPTHS)
            for (n, kind), default in sizes.items():
                model, net = regroup_model(n, kind, depth or default)
                results += check_regroup(model, net)
                models.append(model)
        elif name == "cluster":
            from wolfpack.proofs.cluster_model import check_cluster, cluster_model

            results += check_cluster()
            models.append(cluster_model())
        else:
            from wolfpack.proofs.arbitration_model import quorum_results

            results += quorum_results()
    return results, models
