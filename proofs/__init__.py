"""The z3 proofs of Wolfpack's state machines (``wolfpack verify``).

Every spec of ``wolfpack.spec`` is turned into a z3 transition system by
evaluating its own guards, updates and invariants on symbolic records
(:mod:`~wolfpack.proofs.encode`, :mod:`~wolfpack.proofs.system`); no rule is
written twice.  :mod:`~wolfpack.proofs.table` checks table hygiene,
:mod:`~wolfpack.proofs.invariants` proves invariants for all depths,
:mod:`~wolfpack.proofs.models` chooses the bounds and compositions, and
:mod:`~wolfpack.proofs.timing` holds the timing obligations (importable
without z3, for the daemon's start-up check).

Importing this package does not import z3; the modules that need it do.
"""
