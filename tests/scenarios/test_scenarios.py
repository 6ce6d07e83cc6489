"""Runs the scenario scripts ``tests/scenarios/*.scenario`` through the live machines.

A scenario is a readable table of events and what each must do.  Format (one
item per line, ``#`` starts a comment)::

    machine: group                            # starts a machine: resource, group or node
    params: nodes=2 failover_threshold=0      # parameters (enum values by name, true/false)
    resources: disk ip app                    # group only: the resources, in index order
    depends: ip needs disk, app needs ip      # group only: "X needs Y [Z ...]", comma-separated
    online node=0 -> OnlinePending  effects: command:online_resources(resources=[disk])
    resource_online i=disk -> OnlinePending
    move node=0 -> REJECTED "changing state"  # the machine must raise InvalidEvent (message part optional)

A step is ``event [name=value ...] -> State [effects: ...]``.  Event
arguments are integers, true/false or resource names (``i=app``).  After
``effects:`` comes the exact list of effects in order, comma-separated, each
``kind:name`` with optional ``(key=value, ...)`` to check some arguments;
``effects: none`` means no effect; without ``effects:`` they are not checked.
A list value ``[a, b]`` matches a list argument in any order.  Several
``machine:`` sections may follow each other in one file (e.g. a resource that
asks for failover, then the group that carries it out).  A mismatch fails
with the file and line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from wolfpack.errors import InvalidEvent
from wolfpack.machines import LiveMachine, group_machine, node_machine, resource_machine
from wolfpack.spec import get as get_spec
from wolfpack.spec.core import Emitted, Spec
from wolfpack.spec.group import make_group_spec

HERE = Path(__file__).parent
SCENARIOS = sorted(HERE.glob("*.scenario"))
HEADERS = ("machine", "params", "resources", "depends")
EFFECT = re.compile(r"^(?P<label>\w+:\w+)\s*(?:\((?P<args>.*)\))?$")


class ScenarioError(Exception):
    """A line of a scenario is wrong or does not match what the machine did."""


@dataclass
class Section:
    machine: str
    params: dict[str, str] = field(default_factory=dict)
    resources: list[str] = field(default_factory=list)
    depends: dict[str, list[str]] = field(default_factory=dict)
    live: LiveMachine | None = None

    def spec(self) -> Spec:
        return make_group_spec(max(len(self.resources), 1)) if self.machine == "group" else get_spec(self.machine)

    def start(self) -> LiveMachine:
        if self.live is None:
            params = {k: param_value(self.spec(), k, v) for k, v in self.params.items()}
            if self.machine == "group":
                if not self.resources:
                    raise ScenarioError("a group needs a 'resources:' line before its first step")
                self.live = group_machine(self.resources, self.depends, **params)
            else:
                self.live = (resource_machine if self.machine == "resource" else node_machine)(**params)
        return self.live

    def value(self, token: str) -> Any:
        token = token.strip()
        if token.startswith("[") and token.endswith("]"):
            return sorted(self.value(t) for t in split_top(token[1:-1]))
        if token in ("true", "false"):
            return token == "true"
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in self.resources:
            return self.resources.index(token)
        raise ScenarioError(f"unknown value {token!r}: use an integer, true/false, a [list] or a resource name")

    def describe(self, effects: list[Emitted]) -> str:
        def arg(key: str, v: Any) -> str:
            if key == "resources" and isinstance(v, list) and self.resources:
                return "[" + ", ".join(self.resources[k] for k in v) + "]"
            return str(v).lower() if isinstance(v, bool) else str(v)

        parts = [f"{e.kind}:{e.name}" + (f"({', '.join(f'{k}={arg(k, v)}' for k, v in e.args.items())})"
                                         if e.args else "") for e in effects]
        return ", ".join(parts) or "none"


def param_value(spec: Spec, name: str, token: str) -> Any:
    kind = spec.field(name).kind
    if kind is bool:
        if token not in ("true", "false"):
            raise ScenarioError(f"{name} takes true or false, got {token!r}")
        return token == "true"
    if issubclass(kind, IntEnum):
        try:
            return kind[token]
        except KeyError:
            raise ScenarioError(f"{name} takes one of {', '.join(m.name for m in kind)}, got {token!r}") from None
    try:
        return int(token)
    except ValueError:
        raise ScenarioError(f"{name} takes an integer, got {token!r}") from None


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets and parentheses; drop empty parts."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def pairs(tokens: list[str]) -> dict[str, str]:
    out = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key or not value:
            raise ScenarioError(f"expected name=value, got {token!r}")
        out[key.strip()] = value.strip()
    return out


def header(section: Section | None, key: str, rest: str) -> Section:
    if key == "machine":
        if rest not in ("resource", "group", "node"):
            raise ScenarioError(f"machine must be resource, group or node, got {rest!r}")
        return Section(rest)
    if section is None:
        raise ScenarioError(f"'{key}:' comes before any 'machine:' line")
    if section.live is not None:
        raise ScenarioError(f"'{key}:' comes after the machine's first step; put it right under 'machine:'")
    if key == "params":
        section.params.update(pairs(rest.split()))
    elif key == "resources":
        section.resources = rest.split()
    else:
        for clause in split_top(rest):
            who, needs, *deps = clause.split()
            if needs != "needs" or not deps:
                raise ScenarioError(f"write dependencies as 'X needs Y [Z ...]', got {clause!r}")
            section.depends.setdefault(who, []).extend(deps)
    return section


def step(section: Section, line: str) -> None:
    left, _, right = line.partition("->")
    event, *arg_tokens = left.split()
    args = {k: section.value(v) for k, v in pairs(arg_tokens).items()}
    outcome, has_effects, effects_text = right.partition("effects:")
    outcome = outcome.strip()
    spec = section.spec()
    spec.event(event)  # an unknown event is a mistake in the scenario, not a rejection
    live = section.start()
    if outcome.startswith("REJECTED"):
        wanted = outcome[len("REJECTED"):].strip().strip('"')
        try:
            live.step(event, **args)
        except InvalidEvent as exc:
            if wanted not in str(exc):
                raise ScenarioError(f"{event} was rejected, but the message {str(exc)!r} lacks {wanted!r}") from None
            return
        raise ScenarioError(f"{event} was accepted (now {live.state}); the scenario expects it to be rejected")
    if outcome not in spec.states:
        raise ScenarioError(f"{outcome!r} is not a {section.machine} state ({', '.join(spec.states)}) nor REJECTED")
    try:
        emitted = live.step(event, **args)
    except InvalidEvent as exc:
        raise ScenarioError(f"{event} was rejected: {exc}") from None
    if live.state != outcome:
        raise ScenarioError(f"{event}: expected {outcome}, the machine is in {live.state}")
    if has_effects:
        check_effects(section, emitted, effects_text.strip())


def check_effects(section: Section, emitted: list[Emitted], text: str) -> None:
    expected = [] if text == "none" else split_top(text)
    actual = section.describe(emitted)
    labels = []
    for item in expected:
        match = EFFECT.match(item)
        if not match:
            raise ScenarioError(f"cannot read effect {item!r}; write kind:name or kind:name(key=value, ...)")
        labels.append(match["label"])
    if labels != [f"{e.kind}:{e.name}" for e in emitted]:
        raise ScenarioError(f"expected effects {', '.join(labels) or 'none'}; the machine emitted {actual}")
    for item, eff in zip(expected, emitted, strict=True):
        args = EFFECT.match(item)["args"]  # type: ignore[index]
        for key, token in pairs(split_top(args or "")).items():
            got = eff.args.get(key, "<missing>")
            got = sorted(got) if isinstance(got, list) else got
            if got != section.value(token):
                raise ScenarioError(f"{eff.kind}:{eff.name}: expected {key}={token}; the machine emitted {actual}")


def run(path: Path) -> int:
    """Run one scenario file; return the number of steps."""
    section: Section | None = None
    steps = 0
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key, colon, rest = line.partition(":")
            if "->" not in line and colon and key.strip() in HEADERS:
                section = header(section, key.strip(), rest.strip())
            elif "->" in line:
                if section is None:
                    raise ScenarioError("a step comes before any 'machine:' line")
                step(section, line)
                steps += 1
            else:
                raise ScenarioError(f"cannot read this line; expected {', '.join(HEADERS)} or 'event -> State'")
        except (ScenarioError, InvalidEvent) as exc:
            problem = f"{path.name}:{lineno}: {raw.strip()}\n    {exc}"
        else:
            continue
        pytest.fail(problem, pytrace=False)  # outside the except: no chained traceback
    return steps


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    assert run(path) > 0, f"{path.name} has no steps"


def test_the_runner_reports_the_line_of_a_mismatch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.scenario"
    bad.write_text("machine: resource\n\nonline -> OnlinePending\nonline_succeeded -> Failed  # wrong on purpose\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)bad.scenario:4: .*expected Failed, the machine is in Online"):
        run(bad)


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 4
