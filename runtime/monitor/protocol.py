"""The monitor protocol: JSON lines over a Unix socket between the daemon and a resource monitor.

Every message is one JSON object on one line, at most :data:`MAX_LINE_BYTES`,
with ``"v"`` (the protocol version) and ``"op"``.

Daemon to monitor (commands):

==============  ========================================================================
op              fields
==============  ========================================================================
``open``        ``resource``, ``type``, ``properties``, ``looks_alive_ms``,
                ``is_alive_ms``, ``pending_timeout_ms``; optional ``online`` (true: the
                resource is believed online, poll it at once, as after a monitor restart)
``online``      ``resource``, optional ``op_id`` (echoed by the events of this call)
``offline``     ``resource``, optional ``op_id``
``terminate``   ``resource``
``is_alive``    ``resource``: run IsAlive now (the machine's answer to LooksAlive failing)
``probe``       ``resource``: is a copy running here that this monitor did not start? (the
                reconciliation before a join; starts nothing, answered with ``probed``)
``close``       ``resource``
``ping``        optional ``token``
``shutdown``    (none): close every resource and exit
==============  ========================================================================

Monitor to daemon: the resource machine's events, named as in
``wolfpack.spec.resource`` (:data:`MACHINE_EVENTS`), each with ``resource``
and, for failures, ``severity`` and ``detail``; replies (:data:`REPLIES`):
``hello`` (``pid``, ``name``), ``opened``, ``open_failed`` (``error``,
``severity``), ``closed``, ``terminated``, ``probed`` (``active``, ``detail``, ``pids``, ``adoptable``,
``stoppable``, or ``error``), ``pong``, ``log`` (``level``,
``message``, optional ``resource``), and ``lease_lapsed`` (the monitor
terminated its resources because the node's lease ended: ``why``,
``resources``, ``took_ms`` from the end of the lease to the last Terminate
returned, ``noticed_ms``, ``bound_ms``, ``within_bound``, ``unfinished``).

A malformed command is answered with a ``log`` line of level ``error``; the
connection stays up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from wolfpack.errors import MonitorError
from wolfpack.spec.defaults import MIN_POLL_INTERVAL_MS

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20

#: The resource machine's events that a monitor reports (all named as in the resource spec).
MACHINE_EVENTS = (
    "online_pending",
    "online_succeeded",
    "online_failed",
    "offline_pending",
    "offline_succeeded",
    "offline_failed",
    "pending_timeout",
    "looks_alive_failed",
    "is_alive_failed",
)

#: Monitor messages that are not machine events.
REPLIES = ("hello", "opened", "open_failed", "closed", "terminated", "probed", "pong", "log", "lease_lapsed")

#: The machine's ``call`` effects -> the command that carries them out.
ENTRY_POINT_COMMANDS = {"Online": "online", "Offline": "offline", "Terminate": "terminate", "IsAlive": "is_alive"}

_Fields = dict[str, tuple[type | tuple[type, ...], bool]]
_RESOURCE: _Fields = {"resource": (str, True)}
_OP: _Fields = {"resource": (str, True), "op_id": ((int, str), False)}

#: op -> field -> (accepted types, required)
COMMANDS: dict[str, _Fields] = {
    "open": {
        "resource": (str, True),
        "type": (str, True),
        "properties": (dict, True),
        "looks_alive_ms": (int, True),
        "is_alive_ms": (int, True),
        "pending_timeout_ms": (int, True),
        "online": (bool, False),
    },
    "online": _OP,
    "offline": _OP,
    "terminate": _RESOURCE,
    "is_alive": _RESOURCE,
    "probe": _RESOURCE,
    "close": _RESOURCE,
    "ping": {"token": ((int, str), False)},
    "shutdown": {},
}

_LOWEST = {"looks_alive_ms": MIN_POLL_INTERVAL_MS, "is_alive_ms": MIN_POLL_INTERVAL_MS, "pending_timeout_ms": 1}


async def iter_lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes | None]:
    """The lines from ``reader`` until end-of-file; ``None`` stands for a line over the limit (dropped whole)."""
    buffer = bytearray()
    discarding = False
    while True:
        try:
            chunk = await reader.read(1 << 16)
        except ConnectionError:
            return
        if not chunk:
            return
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) >= MAX_LINE_BYTES:
                    if not discarding:
                        yield None
                    discarding = True
                    buffer.clear()
                break
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            if discarding:
                discarding = False
            elif len(line) > MAX_LINE_BYTES:
                yield None
            else:
                yield line


def encode(op: str, **fields: Any) -> bytes:
    """One message as a line."""
    line = json.dumps({"v": PROTOCOL_VERSION, "op": op, **fields}, separators=(",", ":"), default=str).encode()
    if len(line) >= MAX_LINE_BYTES:
        raise MonitorError(f"a {op!r} message of {len(line)} bytes exceeds the protocol limit of {MAX_LINE_BYTES}; "
                           "send smaller properties")
    return line + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MonitorError(f"monitor protocol: line is not JSON ({exc}): {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise MonitorError(f"monitor protocol: a message must be a JSON object, not {type(message).__name__}")
    if message.get("v") != PROTOCOL_VERSION:
        raise MonitorError(
            f"monitor protocol: version {message.get('v')!r} is not {PROTOCOL_VERSION}; "
            "the daemon and the monitor come from different Wolfpack versions, restart both"
        )
    if not isinstance(message.get("op"), str):
        raise MonitorError("monitor protocol: a message needs a string 'op'")
    return message


def _fits(value: Any, kinds: type | tuple[type, ...]) -> bool:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def decode_command(line: bytes) -> dict[str, Any]:
    """A daemon-to-monitor command, checked field by field; :class:`MonitorError` if malformed."""
    message = _object(line)
    op = message["op"]
    fields = COMMANDS.get(op)
    if fields is None:
        raise MonitorError(f"monitor protocol: unknown command {op!r}; known: {', '.join(COMMANDS)}")
    problems = [f"unknown field {k!r}" for k in message if k not in fields and k not in ("v", "op")]
    for name, (kinds, required) in fields.items():
        if name not in message:
            if required:
                problems.append(f"missing field {name!r}")
        elif not _fits(message[name], kinds):
            problems.append(f"field {name!r} has the wrong type ({type(message[name]).__name__})")
        elif name in _LOWEST and message[name] < _LOWEST[name]:
            problems.append(f"field {name!r} must be at least {_LOWEST[name]}")
        elif name == "resource" and not message[name]:
            problems.append("field 'resource' must not be empty")
    if problems:
        raise MonitorError(f"monitor protocol: bad {op!r} command: {'; '.join(problems)}")
    return message


def decode_message(line: bytes) -> dict[str, Any]:
    """A monitor-to-daemon message; :class:`MonitorError` if malformed or unknown."""
    message = _object(line)
    if message["op"] not in MACHINE_EVENTS and message["op"] not in REPLIES:
        raise MonitorError(f"monitor protocol: unknown message {message['op']!r} from the monitor")
    return message


def is_machine_event(message: Mapping[str, Any]) -> bool:
    return message.get("op") in MACHINE_EVENTS
