"""One row of ``wolfpack verify``: (machine, property, method, result, time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wolfpack.proofs.trace import Run

PROVED = "proved"
BOUNDED = "bounded"
FAILED = "FAILED"
RESULTS = (PROVED, BOUNDED, FAILED)


@dataclass(frozen=True)
class Result:
    """The outcome of one check.

    ``method`` is how it was decided: ``inductive``, ``k-induction k=N``,
    ``spacer``, ``bmc bound N``, ``smt`` (one satisfiability query) or
    ``lra`` (linear real arithmetic).  ``detail`` is stable text (no
    timings) for the committed report; ``run`` is the counterexample of a
    FAILED invariant, ``witness`` a record (or note) that explains any other
    failure; ``invariant`` the invariant Spacer synthesised; ``story`` the
    run as a simulator story (message-level models).
    """

    machine: str
    prop: str
    method: str
    result: str
    seconds: float
    detail: str = ""
    run: Run | None = None
    invariant: str | None = None
    story: str | None = None  # the counterexample as a simulator story (``wolfpack simulate``), when it has one

    @property
    def failed(self) -> bool:
        return self.result == FAILED

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "property": self.prop,
            "method": self.method,
            "result": self.result,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "invariant": self.invariant,
            "counterexample": None if self.run is None else self.run.as_dict(),
            "story": self.story,
        }
