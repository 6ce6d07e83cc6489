"""The spec data model refuses malformed tables with clear messages."""

import dataclasses
from enum import IntEnum

import pytest

from wolfpack.errors import SpecError
from wolfpack.spec import all_specs
from wolfpack.spec.core import Event, Field, Ignore, Spec, Transition
from wolfpack.spec.group import make_group_spec


def tiny(**changes):
    base = dict(
        name="tiny",
        doc="",
        states=("A", "B"),
        initial="A",
        fields=(Field("n", int, 0, "a counter", lo=0),),
        events=(Event("go", "go"),),
        transitions=(Transition("go", ("A",), "B"),),
        ignored=(Ignore("go", ("B",), "done"),),
    )
    base.update(changes)
    return Spec(**base)


def test_a_well_formed_spec_builds() -> None:
    assert tiny().rows("A", "go")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"initial": "Z"}, "initial state 'Z'"),
        ({"transitions": (Transition("nope", ("A",), "B"),)}, "unknown event 'nope'"),
        ({"transitions": (Transition("go", ("A",), "Q"),)}, "unknown state 'Q'"),
        ({"ignored": (Ignore("go", ("A",), "x"),)}, "both handled and ignored"),
        ({"fields": (Field("state", int, 0, "clash"),)}, "not 'state'"),
    ],
)
def test_malformed_specs_are_refused(changes, message) -> None:
    with pytest.raises(SpecError, match=message):
        tiny(**changes)


def test_field_kinds_are_checked() -> None:
    with pytest.raises(SpecError, match="use int, bool or an IntEnum"):
        Field("x", str, "", "bad kind")

    class Colour(IntEnum):
        RED = 0

    f = Field("c", Colour, Colour.RED, "enum")
    assert f.check(5) is not None and f.check(0) is None


def test_records_are_validated_and_immutable() -> None:
    spec = tiny()
    rec = spec.record(n=3)
    assert rec.n == 3 and rec.state == "A"
    with pytest.raises(AttributeError):
        rec.n = 4
    with pytest.raises(SpecError, match="n must be >= 0"):
        spec.record(n=-1)
    assert rec.replace(n=4).n == 4 and rec.n == 3


def test_group_spec_needs_resources() -> None:
    with pytest.raises(ValueError, match="at least one resource"):
        make_group_spec(0)


def test_specs_are_frozen_data() -> None:
    for spec in all_specs().values():
        assert dataclasses.is_dataclass(spec)
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "x"  # type: ignore[misc]
