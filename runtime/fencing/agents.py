"""Fence devices and the standard fence-agent interface (the ClusterLabs ``fence-agents``, run unchanged).

A fence agent is an executable (Debian's ``fence-agents`` puts about 80 of them
in ``/usr/sbin/fence_*``) run with no arguments and given ``key=value`` lines on
standard input, one of them ``action=``::

    action=off
    ip=10.0.0.21
    username=admin
    password=...
    lanplus=1
    plug=2

Its exit status is the answer: 0 success; for ``status`` 0 means the power is
on, 2 off, anything else an error.  ``metadata`` prints XML naming the agent's
parameters and actions; :func:`metadata` parses it, and
:meth:`FenceDevice.validate` checks a device's parameters against it.

* :class:`FenceDevice`: one device (an IPMI BMC, a PDU, a SCSI disk...), its
  agent, parameters, and the nodes it fences with each node's ``plug``;
* :func:`run_agent` / :func:`run_agent_async`: one action as a subprocess in a
  process group of its own, killed (the whole group) at the timeout; a
  :class:`FenceResult` says what happened;
* :func:`fence_node` / :func:`fence_node_async`: the STONITH step: try each
  device that covers the node, in order, until one succeeds; confirm with
  ``status`` where the agent has it; a :class:`FenceSummary` keeps every attempt.

Secrets never reach a log, a repr or an error: the values of parameters whose
names look secret (``password``, ``passwd``, ``*_kg``, ``secret``, ``token``...)
are masked, also where an agent echoes them in its output.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from wolfpack.runtime.fencing.errors import (
    AgentFailed,
    AgentNotFound,
    FenceConfigError,
    FenceFailed,
    NoFenceDevice,
)

log = logging.getLogger(__name__)

AGENT_DIR = "/usr/sbin"
#: The actions of the interface (``validate-all`` is an extension most agents have).
ACTIONS = ("off", "on", "reboot", "status", "monitor", "list", "metadata", "validate-all")
#: ``status`` exit codes.
STATUS_ON, STATUS_ERROR, STATUS_OFF = 0, 1, 2
DEFAULT_TIMEOUT_S = 60.0
METADATA_TIMEOUT_S = 10.0
TAIL_CHARS = 2000
MASK = "******"
#: The parameter names whose values are secret.
SECRET_NAME = re.compile(r"pass|secret|token|community|(^|_)kg$", re.IGNORECASE)
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: Noise the Python agents of Debian 12 print on every run.
_NOISE = re.compile(r"DeprecationWarning|^\s*from pipes import")

Power = Literal["on", "off"]
Outcome = Literal["fenced", "failed", "no-device"]


def is_secret(name: str) -> bool:
    """Whether a parameter's value must never be shown (passwords, keys, tokens)."""
    return bool(SECRET_NAME.search(name))


def masked(params: Mapping[str, str]) -> dict[str, str]:
    """``params`` with every secret value replaced by ``******``."""
    return {k: MASK if is_secret(k) else v for k, v in params.items()}


def mask_text(text: str, params: Mapping[str, str]) -> str:
    """``text`` with every secret value of ``params`` replaced by ``******`` (for output an agent echoes)."""
    for key, value in params.items():
        if is_secret(key) and value:
            text = text.replace(value, MASK)
    return text


# --- agents and their metadata ---------------------------------------------------------------------------------


def resolve_agent(agent: str) -> str:
    """The path of the agent executable: a path as given; a bare name from /usr/sbin, ``PATH`` or the interpreter's
    directory."""
    if "/" in agent:
        if os.path.isfile(agent) and os.access(agent, os.X_OK):
            return agent
        raise AgentNotFound(f"fence agent {agent} does not exist or is not executable: give the path of an "
                            "installed agent, or a bare name such as fence_ipmilan")
    candidate = os.path.join(AGENT_DIR, agent)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(agent) or shutil.which(agent, path=os.path.dirname(sys.executable))
    if found:  # the second: Wolfpack's own agents beside the interpreter of a virtualenv not on PATH
        return found
    if agent.startswith("fence_wolfpack"):
        hint = "it is one of Wolfpack's own agents: install Wolfpack (pip install -e . puts it on PATH)"
    elif agent.startswith("fence_"):
        hint = ("install Debian's fence-agents package (apt-get install fence-agents; scripts/install does), "
                "or give the agent's full path")
    else:
        hint = "fence agents are named fence_<kind>, e.g. fence_ipmilan (Debian package fence-agents)"
    raise AgentNotFound(f"fence agent {agent!r} is not in {AGENT_DIR} nor on PATH: {hint}")


@dataclass(frozen=True)
class AgentParameter:
    """One parameter an agent's metadata declares."""

    name: str
    required: bool = False
    default: str | None = None
    type: str = "string"
    deprecated: bool = False
    obsoletes: str | None = None
    shortdesc: str = ""


@dataclass(frozen=True)
class AgentMetadata:
    """What ``action=metadata`` says about an agent."""

    agent: str
    shortdesc: str
    parameters: tuple[AgentParameter, ...]
    actions: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> AgentParameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def required(self) -> tuple[str, ...]:
        """The required parameters, ``action`` aside (it is always given)."""
        return tuple(p.name for p in self.parameters if p.required and p.name != "action")


def parse_metadata(text: str, agent: str) -> AgentMetadata:
    """Parse the XML of ``action=metadata`` (the fence-agents ``<resource-agent>`` format)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise AgentFailed(f"fence agent {agent} printed metadata that is not XML ({error}); it is not a fence "
                          "agent, or a broken one: check it with: echo action=metadata | " + agent) from None
    if root.tag != "resource-agent":
        raise AgentFailed(f"fence agent {agent}'s metadata has root <{root.tag}>, not <resource-agent>: it does not "
                          "follow the fence-agents interface")
    parameters = []
    for node in root.iterfind("parameters/parameter"):
        content = node.find("content")
        parameters.append(AgentParameter(
            name=node.get("name", ""),
            required=node.get("required") == "1",
            default=content.get("default") if content is not None else None,
            type=content.get("type", "string") if content is not None else "string",
            deprecated=node.get("deprecated") == "1",
            obsoletes=node.get("obsoletes"),
            shortdesc=(node.findtext("shortdesc") or "").strip(),
        ))
    actions = tuple(a.get("name", "") for a in root.iterfind("actions/action"))
    return AgentMetadata(root.get("name", agent), root.get("shortdesc", ""), tuple(parameters), actions)


@functools.lru_cache(maxsize=64)
def _metadata(path: str, timeout_s: float) -> AgentMetadata:
    done = _run([path], "action=metadata\n", timeout_s)
    if done.timed_out or done.rc != 0:
        why = f"timed out after {timeout_s:g} s" if done.timed_out else f"exit status {done.rc}"
        raise AgentFailed(f"fence agent {path} did not print its metadata ({why}: {_reason(done.err, done.out)}); "
                          f"run it by hand: echo action=metadata | {path}")
    return parse_metadata(done.out, path)


def metadata(agent: str, timeout_s: float = METADATA_TIMEOUT_S) -> AgentMetadata:
    """The parsed metadata of ``agent`` (a name or path); cached per path."""
    return _metadata(resolve_agent(agent), timeout_s)


# --- devices ------------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class FenceDevice:
    """One fence device: its agent, the agent's parameters, and the nodes it fences.

    ``nodes`` maps a node (its id or name, as a string) to the ``plug`` the agent
    needs for it (the outlet, the VM, the node id on a SCSI disk), or to None
    where the device fences that node alone (a node's own BMC)."""

    name: str
    agent: str
    params: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not str(self.name).strip():
            problems.append("a fence device needs a name")
        if not self.agent:
            problems.append("names no agent (e.g. agent: fence_ipmilan)")
        self.params = {str(k): str(v) for k, v in dict(self.params).items()}
        if isinstance(self.nodes, Mapping):
            self.nodes = {str(k): None if v is None else str(v) for k, v in self.nodes.items()}
        else:  # a list of nodes, each fenced without a plug
            self.nodes = {str(n): None for n in self.nodes}
        for key, value in self.params.items():
            if key == "action":
                problems.append("sets 'action' as a parameter: the action is chosen per call (off, on, status...); "
                                "remove it")
            elif not _PARAM_NAME.match(key):
                problems.append(f"has a malformed parameter name {key!r} (letters, digits, '_' and '-')")
            if "\n" in value or "\r" in value:
                problems.append(f"parameter {key} holds a line break, which would inject lines into the agent's "
                                "input: remove it")
        for node, plug in self.nodes.items():
            if plug is not None and ("\n" in plug or "\r" in plug):
                problems.append(f"the plug of node {node} holds a line break: remove it")
        if problems:
            raise FenceConfigError(f"fence device {self.name!r}: " + "; ".join(problems))

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> FenceDevice:
        """From a configuration mapping ``{name, agent, params, nodes}``; ``nodes`` a mapping or a list."""
        unknown = sorted(set(raw) - {"name", "agent", "params", "nodes"})
        if unknown:
            raise FenceConfigError(f"fence device {raw.get('name')!r}: unknown keys {', '.join(unknown)}; "
                                   "a device has name, agent, params and nodes")
        nodes = raw.get("nodes") or {}
        if not isinstance(nodes, Mapping):
            nodes = {str(n): None for n in nodes}
        return cls(str(raw.get("name", "")), str(raw.get("agent", "")), dict(raw.get("params") or {}), dict(nodes))

    def __repr__(self) -> str:
        return (f"FenceDevice(name={self.name!r}, agent={self.agent!r}, params={masked(self.params)!r}, "
                f"nodes={self.nodes!r})")

    @property
    def path(self) -> str:
        return resolve_agent(self.agent)

    def covers(self, node: str | int) -> bool:
        return str(node) in self.nodes

    def plug_for(self, node: str | int) -> str | None:
        return self.nodes.get(str(node))

    def validate(self) -> AgentMetadata:
        """Check the device against its agent's metadata (the agent must be installed); the metadata."""
        meta = metadata(self.agent)
        names = set(meta.names)
        unknown = sorted(set(self.params) - names)
        if unknown:
            choices = ", ".join(sorted(n for n in names if n != "action"))
            raise FenceConfigError(f"fence device {self.name!r}: agent {self.agent} has no parameter "
                                   f"{', '.join(unknown)} (it would ignore them); its parameters are: {choices}")
        plugged = bool(self.nodes) and all(p is not None for p in self.nodes.values())
        missing = [n for n in meta.required if n not in self.params and not (plugged and n in ("plug", "port"))]
        if missing:
            raise FenceConfigError(f"fence device {self.name!r}: agent {self.agent} requires "
                                   f"{', '.join(missing)}; add {'them' if len(missing) > 1 else 'it'} to params")
        return meta


def agent_input(device: FenceDevice, action: str, node: str | int | None = None) -> str:
    """The lines given to the agent on standard input: ``action=``, the parameters, the node's ``plug=``."""
    if action not in ACTIONS:
        raise FenceConfigError(f"unknown fence action {action!r}: use one of {', '.join(ACTIONS)}")
    lines = {"action": action, **device.params}
    if node is not None:
        if not device.covers(node):
            raise FenceConfigError(f"fence device {device.name!r} does not fence node {node}; it fences "
                                   f"{', '.join(device.nodes) or 'no node'}: add the node to its nodes")
        plug = device.plug_for(node)
        if plug is not None:
            lines.pop("port", None)
            lines["plug"] = plug
    return "".join(f"{k}={v}\n" for k, v in lines.items())


# --- running an agent -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Done:
    rc: int | None
    out: str
    err: str
    timed_out: bool
    took_ms: int


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def _kill_group(pid: int) -> None:
    """SIGKILL the process group the agent leads (it and whatever it started: ipmitool, ssh...)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _run(argv: Sequence[str], stdin: str, timeout_s: float) -> _Done:
    start = time.monotonic()
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, env=_env())
    timed_out = False
    try:
        out, err = process.communicate(stdin.encode(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process.pid)
        out, err = process.communicate()
    took = int((time.monotonic() - start) * 1000)
    return _Done(None if timed_out else process.returncode, out.decode(errors="replace"),
                 err.decode(errors="replace"), timed_out, took)


async def _run_async(argv: Sequence[str], stdin: str, timeout_s: float) -> _Done:
    start = time.monotonic()
    process = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, start_new_session=True, env=_env())
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    readers = [asyncio.ensure_future(process.stdout.read()), asyncio.ensure_future(process.stderr.read())]
    timed_out = False
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(stdin.encode())
            await process.stdin.drain()
            process.stdin.close()
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        timed_out = True
        _kill_group(process.pid)
        await process.wait()
    finally:
        if process.returncode is None:  # cancelled: never leave the agent behind
            _kill_group(process.pid)
            for reader in readers:
                reader.cancel()
    out, err = await asyncio.gather(*readers)
    took = int((time.monotonic() - start) * 1000)
    return _Done(None if timed_out else process.returncode, out.decode(errors="replace"),
                 err.decode(errors="replace"), timed_out, took)


def _tail(text: str) -> str:
    return text[-TAIL_CHARS:]


def _reason(err: str, out: str) -> str:
    """The line of an agent's output that says why it failed (its last ERROR line, else its last line)."""
    lines = [line.strip() for line in (err + "\n" + out).splitlines()
             if line.strip() and not _NOISE.search(line)]
    errors = [line for line in lines if "ERROR" in line or line.startswith("Failed")]
    chosen = (errors or lines or ["no output"])[-1]
    return re.sub(r"^\d{4}-\d\d-\d\d [\d:,]+ ", "", chosen)


@dataclass(frozen=True)
class FenceResult:
    """What one agent run did.

    ``ok``: the action succeeded (for ``status``: the power state was read,
    ``power`` says which); ``rc`` is None when the agent was killed at the
    timeout (``timed_out``); ``output`` and ``stderr`` are the tails of what it
    printed, secrets masked; ``reason`` is one sentence for logs."""

    device: str
    agent: str
    action: str
    node: str | None
    ok: bool
    power: Power | None
    rc: int | None
    took_ms: int
    output: str
    stderr: str
    timed_out: bool
    reason: str

    def describe(self) -> str:
        target = f" of node {self.node}" if self.node is not None else ""
        verdict = "succeeded" if self.ok else "failed"
        power = f" (power {self.power})" if self.power else ""
        why = "" if self.ok else f": {self.reason}"
        return f"{self.device} ({self.agent}): {self.action}{target} {verdict}{power} in {self.took_ms} ms{why}"


def _result(device: FenceDevice, action: str, node: str | int | None, done: _Done, timeout_s: float) -> FenceResult:
    power: Power | None = None
    if done.timed_out:
        ok, reason = False, f"no answer within {timeout_s:g} s: the agent was killed (device unreachable?)"
    elif action == "status":
        power = "on" if done.rc == STATUS_ON else "off" if done.rc == STATUS_OFF else None
        ok = power is not None
        reason = f"power {power}" if ok else f"exit status {done.rc}: {_reason(done.err, done.out)}"
    else:
        ok = done.rc == 0
        reason = "exit status 0" if ok else f"exit status {done.rc}: {_reason(done.err, done.out)}"
    secret = device.params
    result = FenceResult(device.name, device.agent, action, None if node is None else str(node), ok, power, done.rc,
                         done.took_ms, mask_text(_tail(done.out), secret), mask_text(_tail(done.err), secret),
                         done.timed_out, mask_text(reason, secret))
    (log.info if ok else log.warning)("fence device %s", result.describe())
    return result


def run_agent(device: FenceDevice, action: str, node: str | int | None = None, *,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> FenceResult:
    """Run ``action`` (for ``node``: its plug is added) on ``device``'s agent; blocks up to ``timeout_s``."""
    stdin = agent_input(device, action, node)
    return _result(device, action, node, _run([device.path], stdin, timeout_s), timeout_s)


async def run_agent_async(device: FenceDevice, action: str, node: str | int | None = None, *,
                          timeout_s: float = DEFAULT_TIMEOUT_S) -> FenceResult:
    """:func:`run_agent` for the asyncio daemon: the agent runs while the loop goes on."""
    stdin = agent_input(device, action, node)
    return _result(device, action, node, await _run_async([device.path], stdin, timeout_s), timeout_s)


# --- fencing a node -----------------------------------------------------------------------------------------------

#: The power state that confirms an action (reboot is not confirmed: the node may come back on at any time).
CONFIRMS: dict[str, Power] = {"off": "off", "on": "on"}


@dataclass(frozen=True)
class FenceSummary:
    """The outcome of :func:`fence_node`: ``fenced``, ``failed`` (every device failed) or ``no-device``."""

    node: str
    action: str
    outcome: Outcome
    device: str | None
    attempts: tuple[FenceResult, ...]
    reason: str

    @property
    def fenced(self) -> bool:
        return self.outcome == "fenced"

    def describe(self) -> str:
        if self.outcome == "fenced":
            return f"node {self.node} fenced ({self.action}) by {self.device}: {self.reason}"
        if self.outcome == "no-device":
            return (f"node {self.node} cannot be fenced: no fence device covers it; add it to a device's nodes "
                    "(its resources stay where they are until it is fenced or rejoins)")
        return (f"node {self.node} was not fenced ({self.action}): all devices failed: {self.reason}; it may still "
                "be running: its resources must not be taken over; check the devices and fence again")

    def raise_for_outcome(self) -> FenceSummary:
        """Self if fenced, else :class:`NoFenceDevice` or :class:`FenceFailed`."""
        if self.outcome == "no-device":
            raise NoFenceDevice(self.describe())
        if self.outcome == "failed":
            raise FenceFailed(self.describe())
        return self


def _supports_status(device: FenceDevice) -> bool:
    try:
        return "status" in metadata(device.agent).actions
    except (AgentFailed, AgentNotFound) as error:
        log.warning("fence device %s: cannot read its agent's metadata (%s); its action goes unconfirmed",
                    device.name, error)
        return False


def _judge(action: str, done: FenceResult, status: FenceResult | None) -> str | None:
    """Why this device's attempt does not count (None: it fenced the node)."""
    if not done.ok:
        return done.reason
    if status is None:
        return None
    if not status.ok:
        return f"{action} reported success but status could not confirm it ({status.reason})"
    if status.power != CONFIRMS[action]:
        return f"{action} reported success but status says the power is {status.power}"
    return None


def _covering(devices: Iterable[FenceDevice], node: str | int) -> list[FenceDevice]:
    return [d for d in devices if d.covers(node)]


def _summary(node: str, action: str, attempts: list[FenceResult], device: FenceDevice | None,
             failures: list[str], candidates: int) -> FenceSummary:
    if not candidates:
        return FenceSummary(node, action, "no-device", None, (), "no fence device covers the node")
    if device is not None:
        last = attempts[-1]
        confirmed = f", confirmed power {last.power}" if last.action == "status" else ", not confirmed"
        return FenceSummary(node, action, "fenced", device.name, tuple(attempts),
                            f"{action} succeeded{confirmed if action in CONFIRMS else ''}")
    return FenceSummary(node, action, "failed", None, tuple(attempts), "; ".join(failures))


def fence_node(devices: Sequence[FenceDevice], node: str | int, action: str = "off", *,
               timeout_s: float = DEFAULT_TIMEOUT_S, confirm: bool = True) -> FenceSummary:
    """Fence ``node``: each device that covers it in order, until one succeeds (and ``status`` confirms).
    The one loop is :func:`fence_node_async`'s; this runs it on an event loop of its own."""
    return asyncio.run(fence_node_async(devices, node, action, timeout_s=timeout_s, confirm=confirm))


async def fence_node_async(devices: Sequence[FenceDevice], node: str | int, action: str = "off", *,
                           timeout_s: float = DEFAULT_TIMEOUT_S, confirm: bool = True) -> FenceSummary:
    """Fence ``node`` from the asyncio daemon: each device that covers it in order, until one succeeds (and
    ``status`` confirms where the agent has it)."""
    candidates = _covering(devices, node)
    attempts: list[FenceResult] = []
    failures: list[str] = []
    for device in candidates:
        done = await run_agent_async(device, action, node, timeout_s=timeout_s)
        attempts.append(done)
        status = None
        if done.ok and confirm and action in CONFIRMS and await asyncio.to_thread(_supports_status, device):
            status = await run_agent_async(device, "status", node, timeout_s=timeout_s)
            attempts.append(status)
        why = _judge(action, done, status)
        if why is None:
            summary = _summary(str(node), action, attempts, device, failures, len(candidates))
            log.info("%s", summary.describe())
            return summary
        failures.append(f"{device.name}: {why}")
    summary = _summary(str(node), action, attempts, None, failures, len(candidates))
    log.error("%s", summary.describe())
    return summary
