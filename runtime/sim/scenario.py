"""Cluster stories as readable scripts, run in the simulated world.

A scenario file (``tests/scenarios/cluster/*.sim``)::

    # comments start with '#'
    nodes 3
    seed 1
    quorum mns          # or: quorum disk (a shared quorum disk, challenge/defense)
    rejoin after 2000   # a halted node starts its cluster role again, as the daemon does (default: never)
    heartbeat lag 5     # heartbeat reports reach the membership machine 5 ms later (default: 1)
    heartbeat phases 95 5 44   # node i's heartbeat ticks fall that many ms into each period (default: all at once)
    group web: ip app; app needs ip; preferred 0 1 2

    at 0     boot all
    at 3000  expect web online on 0
    at 3000  crash 0
    within 2000  expect web online on 1
    at 9000  expect halted 2

Commands (times in simulated milliseconds, absolute after ``at``, relative
to the previous line after ``within``, where the expectation must become true
by then): ``boot all|N``, ``crash N``, ``restart N`` (the node's service
starts again, with what it keeps on disk), ``partition A,B|C,D``, ``cut A>B``
(messages from A to B are lost), ``cut A>B heartbeats`` / ``cut A>B transport``
(only A's heartbeat datagrams to B are lost, or only its transport messages),
``slow A>B MS`` (messages from A to B on the transport, every machine's but the heartbeats', take MS longer, as TCP in
retransmission backoff), ``heal``,
``move GROUP to N``, ``drain N`` (pause N and move its groups away),
``resume N``, ``hour H`` (every node's clock shows hour H of the day),
``update N KEY=VALUE`` (node N submits a global update), ``crash N after
MACHINE EFFECT`` (node N dies right after the next step in which its
MACHINE emits EFFECT, e.g. ``crash 1 after gum apply_update``: the sender
dies with its first delivery on the wire), ``stall disk MS`` / ``resume
disk`` (every command to the quorum disk takes MS longer, until resumed), ``stall N MS`` (node N's daemon
stops for MS: SIGSTOP, a VM pause; what reaches it waits, and on waking it looks at its clock first),
``stall N MS with monitor`` (its resource monitor stops with it), ``expect GROUP online on N``, ``expect
GROUP offline``, ``expect GROUP copies on N,M,...`` / ``expect GROUP copies on none`` (where the group's
processes run, as the nodes' monitors have them), ``expect halted N``, ``expect members N,M,...``, ``expect
disk owner N`` (the node holding the quorum disk's reservation, ``-1``:
nobody), ``expect paused N`` / ``expect resumed N`` (as every member
records it), ``expect config KEY=VALUE on N,M,...`` (``KEY=``: unset),
``expect updates agree`` (the applied global updates of all nodes are prefixes of one sequence that
holds every committed update).  After every 10 ms of simulated time the
cluster-wide invariants are checked (a group's processes run on at most one
node, only inside the cluster; the updates agree), and every start of a
process is checked at its instant; a violation fails the scenario at once.

A story that shows a violation the protocol does not prevent (yet) says so:
``within MS expect violation GROUP`` holds when a violation about GROUP is
seen; from that line on such violations are tolerated (and written to the
timeline) until ``within MS expect no violation`` holds.  Any other
violation still fails the story, and so does one that never ends.

Errors name the file, the line and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from wolfpack.errors import WolfpackError
from wolfpack.runtime.sim.network import CHANNELS
from wolfpack.runtime.sim.world import HEARTBEAT_LAG_MS, QUORUMS, GroupConfig, World

CHECK_EVERY_MS = 10


class ScenarioError(WolfpackError):
    """A scenario file is malformed, or its expectation failed."""


@dataclass
class Step:
    line: int
    at: int | None  # absolute time, or None for "within"
    within: int | None
    command: str


@dataclass
class Scenario:
    path: str
    nodes: int = 3
    seed: int = 0
    quorum: str = "mns"
    rejoin_after_ms: int = 0
    heartbeat_lag_ms: int = HEARTBEAT_LAG_MS
    heartbeat_phases: list[int] | None = None
    groups: list[GroupConfig] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


_GROUP = re.compile(r"^group\s+(\w+)\s*:\s*(.*)$")
_AT = re.compile(r"^(at|within)\s+(\d+)\s+(.*)$")


def parse(path: Path) -> Scenario:
    sc = Scenario(str(path))
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        if m := _GROUP.match(line):
            sc.groups.append(_group(m.group(1), m.group(2), where))
        elif m := _AT.match(line):
            value = int(m.group(2))
            at, within = (value, None) if m.group(1) == "at" else (None, value)
            sc.steps.append(Step(number, at, within, m.group(3).strip()))
        elif line.startswith("nodes "):
            sc.nodes = _int(line.split()[1], where)
        elif line.startswith("seed "):
            sc.seed = _int(line.split()[1], where)
        elif line.startswith("rejoin "):
            words = line.split()
            if len(words) != 3 or words[1] != "after":
                raise ScenarioError(f"{where}: cannot read {line!r}; expected 'rejoin after MS'")
            sc.rejoin_after_ms = _int(words[2], where)
        elif line.startswith("heartbeat "):
            words = line.split()
            if len(words) == 3 and words[1] == "lag":
                sc.heartbeat_lag_ms = _int(words[2], where)
            elif len(words) > 2 and words[1] == "phases":
                sc.heartbeat_phases = [_int(w, where) for w in words[2:]]
            else:
                raise ScenarioError(f"{where}: cannot read {line!r}; expected 'heartbeat lag MS' or "
                                    "'heartbeat phases MS MS ...' (one per node)")
        elif line.startswith("quorum "):
            sc.quorum = line.split()[1]
            if sc.quorum not in QUORUMS:
                raise ScenarioError(f"{where}: unknown quorum {sc.quorum!r}; use one of {', '.join(QUORUMS)}")
        else:
            raise ScenarioError(f"{where}: cannot read {line!r}; expected 'nodes N', 'seed N', "
                                "'quorum mns|disk', 'rejoin after MS', 'heartbeat lag MS', 'heartbeat phases MS ...', "
                                "'group NAME: ...', "
                                "'at MS COMMAND' or 'within MS COMMAND'")
    if not sc.groups:
        raise ScenarioError(f"{path}: no 'group NAME: resources...' line")
    if sc.heartbeat_phases is not None and len(sc.heartbeat_phases) != sc.nodes:
        raise ScenarioError(f"{path}: 'heartbeat phases' lists {len(sc.heartbeat_phases)} phases for {sc.nodes} "
                            "nodes; give one per node, in node order")
    return sc


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ScenarioError(f"{where}: {text!r} is not a whole number") from None


def _group(name: str, body: str, where: str) -> GroupConfig:
    parts = [p.strip() for p in body.split(";") if p.strip()]
    if not parts:
        raise ScenarioError(f"{where}: group {name} lists no resources")
    resources = parts[0].split()
    depends: dict[str, list[str]] = {}
    preferred: list[int] = []
    failback, window = False, (-1, -1)
    for part in parts[1:]:
        words = part.split()
        if len(words) >= 3 and words[1] == "needs":
            depends.setdefault(words[0], []).extend(words[2:])
        elif words and words[0] == "preferred":
            preferred = [_int(w, where) for w in words[1:]]
        elif words == ["failback", "always"]:
            failback = True
        elif len(words) == 2 and words[0] == "failback" and "-" in words[1]:
            start, end = words[1].split("-", 1)
            failback, window = True, (_int(start, where), _int(end, where))
        else:
            raise ScenarioError(f"{where}: cannot read {part!r}; use 'X needs Y', 'preferred N M ...', "
                                "'failback always' or 'failback START-END' (hours)")
    return GroupConfig(name, resources, depends, preferred, failback, window)


class Runner:
    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.world = World(scenario.nodes, scenario.groups, seed=scenario.seed, quorum=scenario.quorum,
                           rejoin_after_ms=scenario.rejoin_after_ms, heartbeat_lag_ms=scenario.heartbeat_lag_ms,
                           heartbeat_phases=scenario.heartbeat_phases)
        self.timeline: list[str] = []
        self._index = {g.name: i for i, g in enumerate(scenario.groups)}
        self._overlaps = 0  # the world's two-copy moments already looked at
        #: the group whose violations a story expects (``expect violation GROUP``), the line, and what was seen
        self.tolerated: str | None = None
        self._tolerated_since = ""
        self.seen: list[str] = []

    def run(self) -> list[str]:
        for step in self.sc.steps:
            where = f"{self.sc.path}:{step.line}"
            if step.at is not None:
                if step.at < self.now:
                    raise ScenarioError(f"{where}: time {step.at} is before the current time {self.now}")
                self._advance(step.at - self.now, where)
                self._do(step.command, where)
            else:
                assert step.within is not None
                deadline = self.now + step.within
                words = step.command.split()
                if words[:2] == ["expect", "violation"] and len(words) == 3:
                    self._group(words[2], where)
                    self.tolerated, self._tolerated_since, self.seen = words[2], where, []
                while not self._holds(step.command, where):
                    if self.now >= deadline:
                        raise ScenarioError(f"{where}: '{step.command}' did not hold within {step.within} ms "
                                            f"(now {self.now} ms): {self._state()}")
                    self._advance(CHECK_EVERY_MS, where)
                self._note(f"ok: {step.command} (after {self.now - (deadline - step.within)} ms)")
                if step.command.split() == ["expect", "no", "violation"]:
                    self.tolerated = None
        if self.tolerated is not None:
            raise ScenarioError(f"{self._tolerated_since}: the expected violation about {self.tolerated} never "
                                "ended: add 'within MS expect no violation' after it")
        return self.timeline

    @property
    def now(self) -> int:
        return self.world.cluster.clock.now

    def _advance(self, ms: int, where: str) -> None:
        end = self.now + ms
        while self.now < end:
            self.world.cluster.run_for(min(CHECK_EVERY_MS, end - self.now))
            overlaps, self._overlaps = self.world.overlaps[self._overlaps:], len(self.world.overlaps)
            problems = [f"group {g} started on one more node at {t} ms: it ran on {nodes}" for t, g, nodes in overlaps]
            problems += self.world.violations() + self.world.update_violations()
            expected = [p for p in problems if self.tolerated is not None and p.startswith(f"group {self.tolerated} ")]
            if expected and expected != self.seen[-len(expected):]:
                self._note(f"violation (expected): {'; '.join(expected)}")
            self.seen += expected
            problems = [p for p in problems if p not in expected]
            if problems:
                raise ScenarioError(f"{where}: invariant violated at {self.now} ms: {'; '.join(problems)}")

    def _note(self, text: str) -> None:
        self.timeline.append(f"{self.now:>7} ms  {text}")

    def _do(self, command: str, where: str) -> None:
        words = command.split()
        verb = words[0] if words else ""
        if verb == "boot":
            targets = range(self.sc.nodes) if words[1:] == ["all"] else [self._node(words[1], where)]
            for n in targets:
                self.world.boot(n)
        elif verb == "crash" and len(words) == 5 and words[2] == "after":
            self.world.crash_after(self._node(words[1], where), words[3], words[4])
        elif verb == "crash":
            self.world.cluster.nodes[self._node(words[1], where)].crash()
        elif verb == "restart":
            n = self._node(words[1], where)
            if self.world.cluster.nodes[n].up:
                self.world.cluster.nodes[n].crash()  # a running (or halted) node's service is restarted
            self.world.restart(n)
        elif verb == "move" and len(words) == 4 and words[2] == "to":
            self.world.move(self._group(words[1], where), self._node(words[3], where))
        elif verb == "drain" and len(words) == 2:
            self.world.drain(self._node(words[1], where))
        elif verb == "resume" and len(words) == 2:
            self.world.resume(self._node(words[1], where))
        elif verb == "hour" and len(words) == 2:
            self.world.set_hour(_int(words[1], where))
        elif verb == "update" and len(words) == 3 and "=" in words[2]:
            key, value = words[2].split("=", 1)
            self.world.submit_config(self._node(words[1], where), key, value)
        elif verb == "partition":
            sides = [{self._node(x, where) for x in side.split(",")} for side in " ".join(words[1:]).split("|")]
            self.world.cluster.network.partition(*sides)
        elif verb == "cut" and len(words) == 2 and words[1].count(">") == 1:
            src, dst = (self._node(x, where) for x in words[1].split(">"))
            self.world.cluster.network.cut(src, dst)
        elif verb == "cut" and len(words) == 3 and words[1].count(">") == 1 and words[2] in CHANNELS:
            src, dst = (self._node(x, where) for x in words[1].split(">"))
            self.world.cluster.network.cut_channel(src, dst, words[2])
        elif verb == "slow" and len(words) == 3 and words[1].count(">") == 1:
            src, dst = (self._node(x, where) for x in words[1].split(">"))
            self.world.cluster.network.slow(src, dst, _int(words[2], where))
        elif verb == "heal":
            self.world.cluster.network.heal()
        elif words[:2] == ["stall", "disk"] and len(words) == 3:
            self.world.disk.stall(_int(words[2], where))
        elif verb == "stall" and (len(words) == 3 or words[3:] == ["with", "monitor"]):
            n = self._node(words[1], where)
            if self.world.stalled(n):
                raise ScenarioError(f"{where}: node {n} is stalled already; wait until it wakes")
            self.world.stall(n, _int(words[2], where), with_monitor=len(words) == 5)
        elif words == ["resume", "disk"]:
            self.world.disk.resume()
        elif verb == "expect":
            if not self._holds(command, where):
                raise ScenarioError(f"{where}: expected '{command}' at {self.now} ms: {self._state()}")
        else:
            raise ScenarioError(f"{where}: unknown command {command!r}; use boot, crash, restart, partition, "
                                "cut A>B (one way), cut A>B heartbeats|transport, slow A>B MS, heal, "
                                "move GROUP to N, drain N, resume N, hour H, update N KEY=VALUE, "
                                "crash N after MACHINE EFFECT, stall disk MS, resume disk, stall N MS [with monitor], "
                                "expect")
        self._note(command + ("" if verb == "expect" else f"   -> {self._state()}"))

    def _holds(self, command: str, where: str) -> bool:
        words = command.split()
        if words[:1] != ["expect"] or len(words) < 2:
            raise ScenarioError(f"{where}: 'within' needs an expectation, got {command!r}")
        if words[1] == "halted":
            return bool(self.world.cluster.nodes[self._node(words[2], where)].machines["membership"].state
                        == "Halted")
        if words[1:3] == ["disk", "owner"] and len(words) == 4:
            return self.world.disk.holder == (-1 if words[3] == "-1" else self._node(words[3], where))
        if words[1:3] == ["updates", "agree"]:
            return not self.world.update_violations()
        if words[1:] == ["no", "violation"]:
            return not self.world.violations()
        if words[1] == "violation" and len(words) == 3:
            self._group(words[2], where)
            if self.tolerated != words[2]:
                raise ScenarioError(f"{where}: 'expect violation {words[2]}' goes after 'within MS': the "
                                    "violation is tolerated from that line until 'expect no violation' holds")
            return bool(self.seen)
        if words[1] == "config" and len(words) == 5 and words[3] == "on" and "=" in words[2]:
            key, value = words[2].split("=", 1)
            nodes = [self._node(x, where) for x in words[4].split(",")]
            return all(self.world.config(n).get(key, "") == value for n in nodes)
        if words[1] in ("paused", "resumed") and len(words) == 3:
            n, want = self._node(words[2], where), words[1] == "paused"
            return all(bool(node.machines["failover"].record.paused[n]) == want
                       for node in self.world.cluster.nodes.values()
                       if node.up and node.machines["failover"].state == "Member")
        if words[1] == "members":
            want = {self._node(x, where) for x in words[2].split(",")}
            return all(self._members(n) == want for n in want)
        gi = self._group(words[1], where)
        if words[2:4] == ["online", "on"]:
            return self.world.online_on(gi) == [self._node(words[4], where)]
        if words[2:] == ["offline"]:
            return not self.world.running_on(gi)
        if words[2:4] == ["copies", "on"] and len(words) == 5:
            want = [] if words[4] == "none" else sorted({self._node(x, where) for x in words[4].split(",")})
            return self.world.active_on(gi) == want
        raise ScenarioError(f"{where}: cannot read expectation {command!r}")

    def _members(self, n: int) -> set[int]:
        rec = self.world.cluster.nodes[n].machines["membership"].record
        return {k for k, m in enumerate(rec.members) if m}

    def _node(self, text: str, where: str) -> int:
        n = _int(text, where)
        if not 0 <= n < self.sc.nodes:
            raise ScenarioError(f"{where}: node {n} does not exist (nodes are 0..{self.sc.nodes - 1})")
        return n

    def _group(self, name: str, where: str) -> int:
        if name not in self._index:
            raise ScenarioError(f"{where}: unknown group {name!r}; groups: {', '.join(self._index)}")
        return self._index[name]

    def _state(self) -> str:
        parts = []
        for i, node in self.world.cluster.nodes.items():
            if not node.up:
                parts.append(f"n{i}:down")
                continue
            mem = node.machines["membership"]
            owned = [g.name for gi, g in enumerate(self.sc.groups) if i in self.world.online_on(gi)]
            copies = [g.name for gi, g in enumerate(self.sc.groups) if i in self.world.active_on(gi)]
            parts.append(f"n{i}:{mem.state}/e{mem.record.epoch}" + (f"[{','.join(owned)}]" if owned else "")
                         + (f"(copies {','.join(copies) or 'none'})" if copies != owned else "")
                         + (" stalled" if self.world.stalled(i) else ""))
        return " ".join(parts)


def run_file(path: Path) -> list[str]:
    return Runner(parse(path)).run()
