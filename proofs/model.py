"""What ``wolfpack verify`` checks under one name: a model.

A :class:`Model` is one spec, or a product of specs (several components
that take some steps together).  It is pure data; :mod:`wolfpack.proofs.system`
turns it into a z3 transition system.  Per-machine code (in
:mod:`wolfpack.proofs.models`) only chooses components, bounds and, for
products, which events synchronise; every rule still comes from ``spec/``.

Products
--------
Components interleave: one component (the *initiator*) fires one of its own
rows.  A :class:`Sync` makes another component (the *follower*) handle an
event in the same atomic step when a condition over the step holds (e.g.
"the group became active on node 1" makes node 1 ``accept_group``).  A
follower handles the event by one of its rows, or by doing nothing if its
spec ignores the event in its current state; if its spec *rejects* the event
there (or no guard holds), the joint step cannot happen.  Events that appear
as a follower's trigger in some sync never happen on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wolfpack.spec.core import Record, Spec


class View:
    """The records of all components of a model, by component name.

    ``view.group`` or ``view["node1"]``; :meth:`of` lists the components built
    from one spec (``view.of("node")`` gives node0, node1, ...).
    """

    __slots__ = ("_records", "_specs")
    _records: dict[str, Record]
    _specs: dict[str, str]

    def __init__(self, records: Mapping[str, Record], specs: Mapping[str, str]) -> None:
        object.__setattr__(self, "_records", dict(records))
        object.__setattr__(self, "_specs", dict(specs))

    def __getattr__(self, name: str) -> Record:
        try:
            return self._records[name]
        except KeyError:
            raise AttributeError(f"model has no component {name!r}") from None

    def __getitem__(self, name: str) -> Record:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def of(self, spec_name: str) -> list[Record]:
        return [r for n, r in self._records.items() if self._specs[n] == spec_name]

    def replace(self, name: str, record: Record) -> View:
        return View({**self._records, name: record}, self._specs)


@dataclass(frozen=True)
class Component:
    """One instance of a spec in a model; ``fixed`` pins parameters (e.g. ``nodes=3``)."""

    name: str
    spec: Spec
    fixed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sync:
    """When ``initiator`` fires a row (of one of ``on`` triggers, or any when
    empty) and ``when(before, after)`` holds, ``follower`` handles ``trigger``
    in the same step.  ``before``/``after`` are :class:`View` s; in ``after``
    only the initiator has moved.  ``args`` gives the follower's event
    arguments from ``before`` (default: any valid arguments)."""

    initiator: str
    follower: str
    trigger: str
    when: Callable[[View, View], Any]
    doc: str
    on: tuple[str, ...] = ()
    args: Callable[[View], Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Property:
    """A predicate over a model's :class:`View` that must hold in every reachable state.

    ``reported`` False marks a lemma: a component's own invariant, proved
    along with the model's properties but shown only if it fails.
    """

    name: str
    holds: Callable[[View], Any]
    doc: str
    reported: bool = True


@dataclass(frozen=True)
class Model:
    """One named unit of ``wolfpack verify``."""

    name: str
    doc: str
    components: tuple[Component, ...]
    syncs: tuple[Sync, ...] = ()
    properties: tuple[Property, ...] = ()
    witnesses: tuple[Property, ...] = ()  # must be reachable: shows a product is not vacuous
    table_checks: bool = True  # determinism, completeness, dead ends, derived functions (single specs)
    bmc_bound: int = 12

    @property
    def spec(self) -> Spec:
        """The spec of a single-component model."""
        if len(self.components) != 1:
            raise ValueError(f"model {self.name} has {len(self.components)} components")
        return self.components[0].spec

    @property
    def is_product(self) -> bool:
        return len(self.components) > 1

    def all_properties(self) -> tuple[Property, ...]:
        """The model's properties, followed by every component's invariants as lemmas."""
        lemmas: list[Property] = []
        reported = not self.is_product
        for comp in self.components:
            for inv in comp.spec.invariants:
                name = inv.name if not self.is_product else f"{comp.name}.{inv.name}"
                lemmas.append(Property(name, _component_invariant(comp.name, inv.holds), inv.doc, reported))
        return (*self.properties, *lemmas)


def _component_invariant(name: str, holds: Callable[[Any], Any]) -> Callable[[View], Any]:
    return lambda view: holds(view[name])


def single(spec: Spec, *, name: str | None = None, fixed: Mapping[str, Any] | None = None,
           doc: str = "", bmc_bound: int = 12) -> Model:
    """The model of one spec on its own."""
    return Model(name or spec.name, doc or spec.name, (Component(spec.name, spec, dict(fixed or {})),),
                 bmc_bound=bmc_bound)
