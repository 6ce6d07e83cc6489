"""The hive's snapshot format: the whole database as one self-checking blob.

A snapshot is what a sponsor sends a joining node (REQUIREMENTS O4) and what a
checkpoint file holds (L2).  Layout::

    MAGIC (8 bytes) | sha256 of the rest (32 bytes) | zlib(JSON document)

The JSON document is self-describing::

    {"format": "wolfpack-hive-snapshot", "version": 1,
     "last_seq": 42, "epoch": 3, "last_digest": "<hex or empty>",
     "keys": ["Groups", "Groups/web", ...],                 # sorted, parents included
     "values": [["Groups/web", "owner", 2], ...]}           # sorted by (key, name)

Encoding is deterministic: the same hive content gives the same bytes, so two
snapshots can be compared byte for byte.  :func:`decode_snapshot` refuses a
blob with the wrong magic, a checksum mismatch, an unknown version, or content
that breaks the hive's rules (an invalid key or value, a key without its
parent, a value on a missing key), with a :class:`CorruptSnapshot` error that
says what to do: fetch the database again from a healthy node.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db.updates import (
    InvalidOperation,
    JsonValue,
    canonical_json,
    check_key,
    check_value,
    check_value_name,
    parent_of,
)

MAGIC = b"WPHIVE\x00\x01"
FORMAT = "wolfpack-hive-snapshot"
VERSION = 1
_HEADER = len(MAGIC) + 32
_ADVICE = "fetch the database again from a healthy member (a sponsor) or restore a backup"


class CorruptSnapshot(DatabaseError):
    """A hive snapshot (from a sponsor or a checkpoint file) is damaged or not a snapshot at all."""


@dataclass(frozen=True)
class HiveContent:
    """Everything a hive holds, in the canonical (sorted) order."""

    last_seq: int
    epoch: int
    last_digest: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, str, JsonValue], ...]


def encode_snapshot(content: HiveContent) -> bytes:
    """Serialise hive content (already sorted) into checked, compressed snapshot bytes."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "last_seq": content.last_seq,
        "epoch": content.epoch,
        "last_digest": content.last_digest,
        "keys": list(content.keys),
        "values": [[key, name, value] for key, name, value in content.values],
    }
    body = zlib.compress(canonical_json(document).encode(), 6)
    return MAGIC + hashlib.sha256(body).digest() + body


def _corrupt(why: str) -> CorruptSnapshot:
    return CorruptSnapshot(f"the hive snapshot is refused: {why}; {_ADVICE}")


def _int_field(document: dict[str, object], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _corrupt(f"field {name!r} is {value!r}, not a non-negative integer")
    return value


def decode_snapshot(data: bytes) -> HiveContent:
    """Check and parse snapshot bytes; raise :class:`CorruptSnapshot` on any damage."""
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise _corrupt("it does not start with the snapshot header (wrong file, or truncated)")
    body = data[_HEADER:]
    if hashlib.sha256(body).digest() != data[len(MAGIC) : _HEADER]:
        raise _corrupt("its sha256 checksum does not match (damaged in transit or on disk)")
    try:
        document = json.loads(zlib.decompress(body))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _corrupt(f"its body does not decode ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _corrupt("its body is not a Wolfpack hive snapshot")
    if document.get("version") != VERSION:
        raise _corrupt(f"it has format version {document.get('version')!r}; this Wolfpack reads version {VERSION}")
    last_seq, epoch = _int_field(document, "last_seq"), _int_field(document, "epoch")
    last_digest = document.get("last_digest")
    keys, values = document.get("keys"), document.get("values")
    if not isinstance(last_digest, str) or not isinstance(keys, list) or not isinstance(values, list):
        raise _corrupt("fields 'last_digest', 'keys' or 'values' have the wrong type")
    try:
        key_set = {check_key(key) for key in keys}
        for key in key_set:
            if parent_of(key) and parent_of(key) not in key_set:
                raise _corrupt(f"key {key!r} is there without its parent {parent_of(key)!r}")
        rows: list[tuple[str, str, JsonValue]] = []
        for row in values:
            if not isinstance(row, list) or len(row) != 3:
                raise _corrupt(f"value row {row!r} is not [key, name, value]")
            key, name, value = row
            if check_key(key) not in key_set:
                raise _corrupt(f"value {name!r} belongs to the missing key {key!r}")
            check_value_name(name)
            check_value(value, f"value {name!r} of key {key!r}")
            rows.append((key, name, value))
    except InvalidOperation as error:
        raise _corrupt(str(error)) from None
    if len(key_set) != len(keys) or len({(k, n) for k, n, _ in rows}) != len(rows):
        raise _corrupt("it lists a key or a value twice")
    return HiveContent(last_seq, epoch, last_digest, tuple(sorted(key_set)), tuple(sorted(rows, key=_row_order)))


def _row_order(row: tuple[str, str, JsonValue]) -> tuple[str, str]:
    return row[0], row[1]
