"""The combinators give plain Python values on concrete input."""

from wolfpack.spec.expr import And, Count, Exists, ForAll, If, Implies, In, Not, Or, Select, Store, Sum


def test_boolean_combinators_on_concrete_values() -> None:
    assert And() is True and Or() is False
    assert And(True, 1 < 2) is True and And(True, False) is False
    assert Or(False, 3 == 3) is True and Or(False, False) is False
    assert Not(False) is True and Not(True) is False
    assert Implies(False, False) is True and Implies(True, False) is False


def test_arithmetic_helpers() -> None:
    assert If(True, 1, 2) == 1 and If(False, 1, 2) == 2
    assert Sum(1, 2, 3) == 6
    assert Count([True, False, True]) == 2
    assert In(3, (1, 2, 3)) is True and In(4, (1, 2, 3)) is False


def test_vector_helpers() -> None:
    seq = (10, 20, 30)
    assert Select(seq, 1) == 20
    assert Store(seq, 2, 99) == (10, 20, 99)
    assert seq == (10, 20, 30)  # Store copies
    assert ForAll(range(3), lambda k: seq[k] > 5) is True
    assert Exists(range(3), lambda k: seq[k] == 30) is True
    assert ForAll(range(3), lambda k: seq[k] > 15) is False
