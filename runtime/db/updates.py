"""Global-update operations on the hive: their shape, validation and canonical encoding.

A global update is ``(seq, epoch, ops)``: its sequence number (given by the GUM
locker), the membership epoch it was issued in, and its body, a list of
operations, each a JSON object:

``{"op": "create_key", "key": "Groups/web"}``
    creates the key and every missing parent (like ``RegCreateKeyEx``); an
    existing key is left as it is.
``{"op": "delete_key", "key": "Groups/web"}``
    deletes the key, all its subkeys and all their values; the key must exist.
``{"op": "set_value", "key": "Groups/web", "name": "owner", "value": 2}``
    sets one named value of an existing key; the value is any JSON value
    (str, 64-bit int, finite float, bool, null, list, object with str keys).
``{"op": "delete_value", "key": "Groups/web", "name": "owner"}``
    deletes one named value; it must exist.

Keys are ``/``-separated paths of names, case-sensitive.  Every name is
non-empty, at most ``MAX_NAME_LENGTH`` characters, without ``/`` and without
control characters; a path has at most ``MAX_KEY_DEPTH`` names and
``MAX_KEY_LENGTH`` characters.  The root key is the empty path ``""``; it
always exists, has no values, and no operation targets it.  Value names follow
the rules of key names, except that ``/`` is allowed.

:func:`validate_ops` checks the *shape* of an operation list (before any of it
is applied); whether an operation fits the hive's content (the key exists, the
value exists) is checked by :meth:`wolfpack.runtime.db.hive.Hive.apply` inside
its transaction.  Both raise :class:`InvalidOperation`, and in both cases the
hive is left unchanged.  Validation is deterministic: a hive in a given state
accepts or refuses an update the same way on every node.

:func:`encode_ops` gives the canonical bytes of an operation list (sorted keys,
no spaces, UTF-8, no NaN), used by the quorum log and by :func:`update_digest`,
the fingerprint a hive keeps of the last update it applied so that a node that
applied an orphaned update (design decision 5) can be told apart from one that
merely lags.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from wolfpack.errors import DatabaseError

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
Op: TypeAlias = Mapping[str, Any]

MAX_NAME_LENGTH = 255
MAX_KEY_LENGTH = 1024
MAX_KEY_DEPTH = 32
MAX_VALUE_BYTES = 1 << 20
MAX_VALUE_NESTING = 32
MAX_OPS = 10_000
MIN_INT, MAX_INT = -(2**63), 2**63 - 1

OP_FIELDS: dict[str, frozenset[str]] = {
    "create_key": frozenset({"op", "key"}),
    "delete_key": frozenset({"op", "key"}),
    "set_value": frozenset({"op", "key", "name", "value"}),
    "delete_value": frozenset({"op", "key", "name"}),
}


class InvalidOperation(DatabaseError, ValueError):
    """A key, value name, value or operation is malformed, or an operation does not fit the hive's content."""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_name(name: object, what: str, allow_slash: bool) -> str | None:
    """Why ``name`` is not a valid key segment or value name, or None when it is."""
    if not isinstance(name, str):
        return f"{what} must be a string, not {type(name).__name__}"
    if not name:
        return f"{what} is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} {name[:40]!r}... is {len(name)} characters long, more than {MAX_NAME_LENGTH}"
    if not allow_slash and "/" in name:
        return f"{what} {name!r} contains '/', the key separator"
    if _CONTROL.search(name):
        return f"{what} {name!r} contains a control character"
    if _SURROGATE.search(name):
        return f"{what} {name!r} contains a lone surrogate, which UTF-8 cannot store"
    return None


def check_key(key: object, *, root_ok: bool = False) -> str:
    """Return ``key`` if it is a valid key path (the root ``""`` only with ``root_ok``), else raise."""
    if not isinstance(key, str):
        raise InvalidOperation(f"key must be a string path like 'Groups/web', not {type(key).__name__}")
    if key == "":
        if root_ok:
            return key
        raise InvalidOperation("key is empty (the root key): operations target a named key like 'Groups/web'")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidOperation(f"key {key[:40]!r}... is {len(key)} characters long, more than {MAX_KEY_LENGTH}")
    segments = key.split("/")
    if len(segments) > MAX_KEY_DEPTH:
        raise InvalidOperation(f"key {key!r} has {len(segments)} levels, more than {MAX_KEY_DEPTH}")
    longest = max(map(len, segments))
    if "" not in segments and longest <= MAX_NAME_LENGTH and not _CONTROL.search(key) and not _SURROGATE.search(key):
        return key  # the common case, checked in one pass
    for index, segment in enumerate(segments):
        if segment == "":
            raise InvalidOperation(
                f"key {key!r} has an empty name at level {index + 1}: names are separated by single '/', "
                "with no '/' at either end"
            )
        problem = _bad_name(segment, f"key {key!r}: name", allow_slash=False)
        if problem:
            raise InvalidOperation(problem)
    raise AssertionError(f"check_key found no fault in {key!r} on its slow path")  # pragma: no cover


def check_value_name(name: object) -> str:
    """Return ``name`` if it is a valid value name, else raise :class:`InvalidOperation`."""
    problem = _bad_name(name, "value name", allow_slash=True)
    if problem:
        raise InvalidOperation(problem)
    assert isinstance(name, str)
    return name


def _check_json(value: object, where: str, depth: int) -> None:
    if depth > MAX_VALUE_NESTING:
        raise InvalidOperation(f"{where} is nested more than {MAX_VALUE_NESTING} levels deep")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise InvalidOperation(f"{where} contains a lone surrogate, which UTF-8 cannot store")
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise InvalidOperation(f"{where} is an integer outside 64 bits: store it as a string")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidOperation(f"{where} is {value!r}, which JSON cannot carry: use a finite number or a string")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise InvalidOperation(f"{where} has the key {k!r}: object keys must be strings")
            _check_json(k, f"{where} key", depth + 1)
            _check_json(item, f"{where}[{k!r}]", depth + 1)
        return
    raise InvalidOperation(
        f"{where} is a {type(value).__name__}: values are JSON (str, int, float, bool, None, list, dict)"
    )


def canonical_json(value: object) -> str:
    """The one text form of a JSON value: sorted keys, no spaces, non-ASCII kept, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_value(value: object, where: str = "value") -> None:
    """Check that ``value`` is a storable JSON value (types, finite floats, 64-bit ints, nesting, size)."""
    _check_json(value, where, 0)
    if isinstance(value, list | dict) or (isinstance(value, str) and 6 * len(value) + 2 > MAX_VALUE_BYTES):
        size = len(canonical_json(value).encode())
        if size > MAX_VALUE_BYTES:
            raise InvalidOperation(f"{where} takes {size} bytes as JSON, more than {MAX_VALUE_BYTES}")


def validate_op(op: object, index: int = 0) -> None:
    """Check the shape of one operation; raise :class:`InvalidOperation` naming it by ``index``."""
    if not isinstance(op, Mapping):
        raise InvalidOperation(f"operation #{index} is a {type(op).__name__}, not an object like {{'op': ...}}")
    kind = op.get("op")
    if kind not in OP_FIELDS:
        raise InvalidOperation(f"operation #{index} has op {kind!r}: use one of {', '.join(sorted(OP_FIELDS))}")
    fields = set(op)
    if fields != OP_FIELDS[kind]:
        missing, extra = OP_FIELDS[kind] - fields, fields - OP_FIELDS[kind]
        parts = [f"missing {sorted(missing)}" if missing else "", f"unknown {sorted(extra)}" if extra else ""]
        raise InvalidOperation(
            f"operation #{index} ({kind}) has the wrong fields ({', '.join(p for p in parts if p)}): "
            f"it takes exactly {sorted(OP_FIELDS[kind])}"
        )
    try:
        check_key(op["key"])
        if "name" in op:
            check_value_name(op["name"])
        if "value" in op:
            check_value(op["value"])
    except InvalidOperation as error:
        raise InvalidOperation(f"operation #{index} ({kind}): {error}") from None


def validate_ops(ops: object) -> list[Op]:
    """Check the shape of a whole update body; return it as a list, or raise :class:`InvalidOperation`."""
    if not isinstance(ops, Sequence) or isinstance(ops, str | bytes):
        raise InvalidOperation(f"an update body is a list of operations, not a {type(ops).__name__}")
    if len(ops) > MAX_OPS:
        raise InvalidOperation(f"an update has {len(ops)} operations, more than {MAX_OPS}: split it")
    for index, op in enumerate(ops):
        validate_op(op, index)
    return list(ops)


def encode_ops(ops: Sequence[Op]) -> bytes:
    """The canonical bytes of an operation list (what the quorum log stores)."""
    return canonical_json(list(ops)).encode()


def decode_ops(data: bytes) -> list[Op]:
    """Parse and validate an operation list written by :func:`encode_ops`."""
    try:
        ops = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidOperation(f"an update body is not valid JSON ({error})") from None
    return validate_ops(ops)


def update_digest(seq: int, ops: Sequence[Op]) -> str:
    """A fingerprint of an update (its sequence number and body): hex sha256 of the canonical form."""
    return hashlib.sha256(f"{seq}:".encode() + encode_ops(ops)).hexdigest()


def parent_of(key: str) -> str:
    """The parent path of a key (``""`` for a top-level key)."""
    head, _, _ = key.rpartition("/")
    return head


def ancestors_and_self(key: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b", "a/b/c"]``."""
    segments = key.split("/")
    return ["/".join(segments[: i + 1]) for i in range(len(segments))]
