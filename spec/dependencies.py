"""Resource dependency graphs (REQUIREMENTS C4).

Dependencies exist only between resources of one group and must form a
directed acyclic graph.  This module validates a graph and turns it into the
dependency matrix the group machine carries as a parameter.  The ordering
itself (online in dependency order, offline in reverse) is not computed here:
it follows from the group machine's guards, which start a resource only when
everything it depends on is online and stop it only when nothing that depends
on it is still active.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wolfpack.errors import DependencyError


def validate(
    resources: Sequence[str],
    depends_on: Mapping[str, Sequence[str]],
    group_of: Mapping[str, str] | None = None,
) -> None:
    """Raise :class:`DependencyError` naming every problem of the graph.

    ``depends_on[r]`` lists what ``r`` depends on.  ``group_of`` (resource ->
    group), when given, lets the check name resources of other groups.
    """
    known = set(resources)
    problems: list[str] = []
    for res, deps in depends_on.items():
        if res not in known:
            problems.append(f"{res!r} has dependencies but is not a resource of this group")
            continue
        for dep in deps:
            if dep == res:
                problems.append(f"{res!r} depends on itself; remove that dependency")
            elif dep not in known:
                if group_of is not None and dep in group_of:
                    problems.append(
                        f"{res!r} depends on {dep!r} of group {group_of[dep]!r}: dependencies exist only "
                        "inside one group; move both resources into the same group"
                    )
                else:
                    problems.append(f"{res!r} depends on unknown resource {dep!r}")
    cycle = find_cycle(resources, depends_on)
    if cycle:
        problems.append(
            "dependency cycle " + " -> ".join(cycle) + ": a resource cannot wait for itself; remove one of these edges"
        )
    if problems:
        raise DependencyError("invalid resource dependencies:\n  " + "\n  ".join(problems))


def find_cycle(resources: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a list of names (first == last), or None."""
    white, grey, black = 0, 1, 2
    colour = {r: white for r in resources}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for dep in depends_on.get(node, ()):
            if dep not in colour or dep == node:
                continue
            if colour[dep] == grey:
                return stack[stack.index(dep):] + [dep]
            if colour[dep] == white:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for r in resources:
        if colour[r] == white:
            found = visit(r)
            if found:
                return found
    return None


def matrix(resources: Sequence[str], depends_on: Mapping[str, Sequence[str]]) -> tuple[bool, ...]:
    """Row-major ``n*n`` matrix: entry ``i*n + j`` is "resource i depends on j"."""
    validate(resources, depends_on)
    index = {r: k for k, r in enumerate(resources)}
    n = len(resources)
    out = [False] * (n * n)
    for res, deps in depends_on.items():
        for dep in deps:
            out[index[res] * n + index[dep]] = True
    return tuple(out)
