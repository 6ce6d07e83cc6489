"""The transition log: every step of every machine as one NDJSON record, and its replay.

Two kinds of record, one per line:

``{"kind": "machine", "node", "epoch", "seq", "machine", "spec", "record": {...}, "t"}``
    a machine is (re)built, with its whole starting record (parameters, and
    the durable fields a restarted node keeps);
``{"kind": "step", "node", "epoch", "seq", "machine", "trigger", "args", "source", "dest", "outcome",
"effects", "t"}``
    one event given to a machine; ``epoch`` and ``seq`` are the node's
    membership epoch and last global update when it happened.  A rejected
    event has ``rejected`` instead of the outcome; an effect that failed
    (GUM's apply) has ``failed`` and ``why``.

:func:`replay` runs every record of a log through fresh machines built from
the specs and reports each step the machines would not have taken the same
way: the log is then not a legal run of the specs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from wolfpack.errors import InvalidEvent, WolfpackError
from wolfpack.machines import LiveMachine
from wolfpack.spec.core import Spec


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


class TraceWriter:
    """Appends records to one file (line-buffered: a crash loses at most the line being written)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", buffering=1)  # noqa: SIM115 - closed by close()

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record, sort_keys=True, default=str) + "\n")

    def machine(self, name: str, live: LiveMachine, context: Mapping[str, Any]) -> None:
        values = {k: _plain(v) for k, v in live.record.values().items()}
        self._write({"kind": "machine", **context, "machine": name, "spec": live.spec.name,
                     "size": _size(live.spec), "record": values, "t": _now_ms()})

    def step(self, machine: str, record: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        self._write({"kind": "step", **context, "machine": machine, **record, "t": _now_ms()})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _size(spec: Spec) -> dict[str, int]:
    """What the spec's factory needs to build it again."""
    sizes = {}
    for f in spec.fields:
        if f.name == "members" and f.length is not None:
            sizes["n"] = f.length
        if f.name == "owner" and f.length is not None:
            sizes["groups"] = f.length
        if f.name == "res" and f.length is not None:
            sizes["resources"] = f.length
        if f.name == "me" and f.hi is not None:  # machines without a per-node vector (arbitration)
            sizes.setdefault("n", int(f.hi) + 1)
    return sizes


def spec_of(name: str, size: Mapping[str, int]) -> Spec:
    """The spec a ``machine`` record names (its ``spec`` and ``size``)."""
    from wolfpack.spec.arbitration import make_arbitration_spec
    from wolfpack.spec.failover import make_failover_spec
    from wolfpack.spec.group import make_group_spec
    from wolfpack.spec.gum import make_gum_spec
    from wolfpack.spec.heartbeat import make_heartbeat_spec
    from wolfpack.spec.membership import make_membership_spec
    from wolfpack.spec.pr_arbitration import make_pr_arbitration_spec
    from wolfpack.spec.resource import SPEC as RESOURCE

    factories = {
        "resource": lambda: RESOURCE, "group": lambda: make_group_spec(size["resources"]),
        "failover": lambda: make_failover_spec(size["n"], size["groups"]),
        "membership": lambda: make_membership_spec(size["n"]), "gum": lambda: make_gum_spec(size["n"]),
        "heartbeat": lambda: make_heartbeat_spec(size["n"]), "arbitration": lambda: make_arbitration_spec(size["n"]),
        "pr_arbitration": lambda: make_pr_arbitration_spec(size["n"]),
    }
    if name not in factories:
        raise WolfpackError(f"the trace names a spec {name!r} that Wolfpack does not have")
    return factories[name]()


def _record_values(spec: Spec, values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for f in spec.fields:
        if f.name in values:
            v = values[f.name]
            out[f.name] = tuple(f.kind(x) for x in v) if isinstance(v, list) else f.kind(v)
    return out


def read(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):
                    return  # a torn last line (the node was killed while writing it)
                raise WolfpackError(f"{path}:{number}: not JSON ({exc})") from exc


def replay(records: Iterable[Mapping[str, Any]]) -> tuple[int, list[str]]:
    """Replay the records of one node's log; (steps replayed, problems)."""
    machines: dict[str, LiveMachine] = {}
    problems: list[str] = []
    steps = 0
    for index, rec in enumerate(records, start=1):
        where = f"record {index} (node {rec.get('node')}, {rec.get('machine')})"
        if rec.get("kind") == "machine":
            spec = spec_of(str(rec["spec"]), rec.get("size", {}))
            values = dict(rec["record"])
            state = values.pop("state")
            machines[str(rec["machine"])] = LiveMachine(spec, spec.record(state=state, **_record_values(spec, values)))
            continue
        if rec.get("kind") != "step" or "failed" in rec:
            continue
        live = machines.get(str(rec["machine"]))
        if live is None:
            problems.append(f"{where}: a step of a machine the log never built")
            continue
        steps += 1
        if live.state != rec.get("source", live.state):
            problems.append(f"{where}: {rec['trigger']} logged from {rec['source']}, but the machine is in "
                            f"{live.state}")
        try:
            effects = live.step(str(rec["trigger"]), **dict(rec.get("args", {})))
        except InvalidEvent as exc:
            if "rejected" not in rec:
                problems.append(f"{where}: {rec['trigger']} is not legal here: {exc}")
            continue
        if "rejected" in rec:
            problems.append(f"{where}: {rec['trigger']} was rejected by the node but is legal")
            continue
        if live.state != rec.get("dest"):
            problems.append(f"{where}: {rec['trigger']} leads to {live.state}, the log says {rec.get('dest')}")
        logged = [json.dumps(e, sort_keys=True, default=str) for e in rec.get("effects", [])]
        made = [json.dumps(_plain_effect(e.as_dict()), sort_keys=True, default=str) for e in effects]
        if logged != made:
            problems.append(f"{where}: {rec['trigger']} has effects {made}, the log says {logged}")
    return steps, problems


def _plain_effect(effect: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(effect, default=str))


def replay_file(path: Path) -> tuple[int, list[str]]:
    """Replay a log that may hold several nodes' records (each node replayed on its own)."""
    by_node: dict[Any, list[dict[str, Any]]] = {}
    for rec in read(path):
        by_node.setdefault(rec.get("node"), []).append(rec)
    total, problems = 0, []
    for node, recs in sorted(by_node.items(), key=lambda kv: str(kv[0])):
        steps, found = replay(recs)
        total += steps
        problems += [f"node {node}: {p}" for p in found]
    return total, problems
