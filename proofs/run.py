"""Run every check of a model and collect the rows of ``wolfpack verify``."""

from __future__ import annotations

from collections.abc import Iterable

from wolfpack.proofs.backend import symbolic
from wolfpack.proofs.invariants import Prover
from wolfpack.proofs.model import Model
from wolfpack.proofs.results import PROVED, Result
from wolfpack.proofs.system import System
from wolfpack.proofs.table import reachability, run_table_checks


def check_model(model: Model) -> list[Result]:
    """Table checks (single specs) then invariants; one :class:`Result` per (model, property)."""
    with symbolic():
        system = System(model)
        invariants = Prover(system, bound=model.bmc_bound).run()
        rows: list[Result] = []
        if model.table_checks and not model.is_product:
            proved = {r.prop for r in invariants if r.result == PROVED}
            assume = [inv for inv in model.spec.invariants if inv.name in proved]
            rows = run_table_checks(system, assume)
        elif model.is_product:
            rows = [reachability(system, model.bmc_bound)]
    return rows + invariants


def check_models(models: Iterable[Model]) -> list[Result]:
    return [r for m in models for r in check_model(m)]
