"""The protocol messages the machines of two nodes exchange, and their schema.

A message names a machine and an event of it, with integer arguments, as in
``LiveMachine.step(trigger, **args)``, plus an optional JSON ``payload`` (for
example the body of a global update)::

    {"machine": "gum", "name": "update", "args": {"seq": 12}, "payload": {...}}

The schema is checked on both ends: names are short identifiers, arguments are
64-bit integers (booleans are not integers here), there are no other fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from wolfpack.runtime.transport.frames import FrameError, JSONObject, JSONValue, decode_body, encode_body

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
FIELDS = ("machine", "name", "args", "payload")


def _check_identifier(what: str, value: object) -> str:
    if not isinstance(value, str) or IDENTIFIER.fullmatch(value) is None:
        raise FrameError(
            "schema",
            f"message {what} {value!r} is not an identifier (a letter or _, then up to 63 letters, digits, _ . -)",
        )
    return value


@dataclass(frozen=True)
class Message:
    """One message between the machines of two nodes.  ``payload=None`` means no payload."""

    machine: str
    name: str
    args: Mapping[str, int] = field(default_factory=dict)
    payload: JSONValue = None

    def __post_init__(self) -> None:
        _check_identifier("machine", self.machine)
        _check_identifier("name", self.name)
        if not isinstance(self.args, Mapping):
            raise FrameError("schema", f"message args must be an object of integers, not {type(self.args).__name__}")
        for key, value in self.args.items():
            _check_identifier("argument name", key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise FrameError(
                    "schema",
                    f"message {self.machine}.{self.name}: argument {key} is {value!r}, not an integer",
                )
            if not INT64_MIN <= value <= INT64_MAX:
                raise FrameError(
                    "schema", f"message {self.machine}.{self.name}: argument {key}={value} does not fit in 64 bits"
                )

    def to_body(self) -> bytes:
        """The JSON body of a MESSAGE frame; :class:`FrameError` if the payload is not JSON."""
        obj: JSONObject = {"machine": self.machine, "name": self.name, "args": dict(self.args)}
        if self.payload is not None:
            obj["payload"] = self.payload
        return encode_body(obj)

    @classmethod
    def from_body(cls, body: bytes) -> Message:
        """Decode and check the body of a MESSAGE frame."""
        obj = decode_body(body, "MESSAGE")
        unknown = sorted(set(obj) - set(FIELDS))
        if unknown:
            allowed = ", ".join(FIELDS)
            raise FrameError("schema", f"a message has unknown fields {', '.join(unknown)} (allowed: {allowed})")
        missing = [name for name in FIELDS[:3] if name not in obj]
        if missing:
            raise FrameError("schema", f"a message lacks the fields {', '.join(missing)}")
        args = obj["args"]
        if not isinstance(args, dict):
            raise FrameError("schema", f"message args must be an object of integers, not a JSON {type(args).__name__}")
        machine, name = obj["machine"], obj["name"]
        return cls(
            machine=_check_identifier("machine", machine),
            name=_check_identifier("name", name),
            args=args,  # type: ignore[arg-type]  # checked in __post_init__
            payload=obj.get("payload"),
        )
