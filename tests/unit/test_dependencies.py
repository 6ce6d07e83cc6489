import pytest

from wolfpack.errors import DependencyError
from wolfpack.machines import group_machine
from wolfpack.spec import dependencies


def test_matrix_row_major() -> None:
    m = dependencies.matrix(["disk", "ip", "app"], {"app": ["disk", "ip"], "ip": ["disk"]})
    n = 3
    assert m[2 * n + 0] and m[2 * n + 1] and m[1 * n + 0]
    assert sum(m) == 3


def test_cycle_is_rejected_with_the_cycle_named() -> None:
    with pytest.raises(DependencyError) as err:
        dependencies.validate(["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": ["a"]})
    msg = str(err.value)
    assert "cycle" in msg and "a -> b -> c -> a" in msg and "remove one of these edges" in msg


def test_self_dependency_and_unknown_resource() -> None:
    with pytest.raises(DependencyError) as err:
        dependencies.validate(["a"], {"a": ["a", "zz"]})
    assert "depends on itself" in str(err.value)
    assert "unknown resource 'zz'" in str(err.value)


def test_cross_group_dependency_is_named() -> None:
    with pytest.raises(DependencyError) as err:
        dependencies.validate(["ip"], {"ip": ["disk"]}, group_of={"disk": "sql", "ip": "web"})
    assert "of group 'sql'" in str(err.value) and "same group" in str(err.value)


def test_group_machine_refuses_a_cycle() -> None:
    with pytest.raises(DependencyError):
        group_machine(["a", "b"], {"a": ["b"], "b": ["a"]})
