"""The hive: reads, global-update applies in order and all-or-nothing, snapshots and restore."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db import CorruptSnapshot, Hive, InvalidOperation, MissingKey, OutOfOrderUpdate
from wolfpack.runtime.db.snapshot import HiveContent, encode_snapshot

WEB = [
    {"op": "create_key", "key": "Groups/web"},
    {"op": "set_value", "key": "Groups/web", "name": "owner", "value": 2},
    {"op": "set_value", "key": "Groups/web", "name": "preferred", "value": [2, 0, 1]},
    {"op": "create_key", "key": "Resources/ip"},
    {"op": "set_value", "key": "Resources/ip", "name": "props", "value": {"address": "10.0.0.5", "mask": 24}},
]


@pytest.fixture
def hive(tmp_path: Path) -> Any:
    with Hive(tmp_path / "hive.db") as opened:
        yield opened


def test_a_new_hive_is_empty_at_update_zero(hive: Hive) -> None:
    assert (hive.last_seq, hive.epoch, hive.last_digest) == (0, 0, "")
    assert hive.subkeys() == [] and list(hive.walk()) == [] and hive.exists("")


def test_apply_then_read_round_trips_every_json_type(hive: Hive) -> None:
    values = {"s": "wölf", "i": -(2**63), "f": 0.1, "t": True, "n": None, "l": [1, [2.5, "x"]], "d": {"k": {"z": []}}}
    ops = [{"op": "create_key", "key": "a/b"}]
    ops += [{"op": "set_value", "key": "a/b", "name": name, "value": value} for name, value in values.items()]
    hive.apply(1, ops, epoch=4)
    assert hive.values("a/b") == values
    assert type(hive.get("a/b", "t")) is bool and type(hive.get("a/b", "i")) is int
    assert hive.get("a/b", "missing", default="dflt") == "dflt" and hive.get("no/key", "x") is None
    assert (hive.last_seq, hive.epoch) == (1, 4)


def test_keys_form_a_tree_with_parents_created_and_subkeys_sorted(hive: Hive) -> None:
    hive.apply(1, WEB + [{"op": "create_key", "key": "Groups/db"}, {"op": "create_key", "key": "Groups/web"}])
    assert hive.subkeys() == ["Groups", "Resources"]
    assert hive.subkeys("Groups") == ["db", "web"]
    assert hive.exists("Groups") and hive.exists("Groups/web") and not hive.exists("Groups/mail")
    assert hive.values("Groups/web") == {"owner": 2, "preferred": [2, 0, 1]}, "create_key keeps an existing key"
    assert [key for key, _ in hive.walk()] == ["Groups", "Groups/db", "Groups/web", "Resources", "Resources/ip"]


def test_delete_key_removes_exactly_the_subtree(hive: Hive) -> None:
    neighbours = ["a-b", "a0", "ab", "a.b", "b/a"]  # sort around 'a/' in byte order but are not under 'a'
    ops = [{"op": "create_key", "key": k} for k in ["a/b/c", *neighbours]]
    ops += [{"op": "set_value", "key": k, "name": "v", "value": k} for k in ["a", "a/b/c", *neighbours]]
    hive.apply(1, ops)
    hive.apply(2, [{"op": "delete_key", "key": "a"}])
    assert not hive.exists("a") and not hive.exists("a/b/c")
    assert sorted(key for key, _ in hive.walk()) == sorted(["a-b", "a0", "ab", "a.b", "b", "b/a"])
    assert all(hive.get(k, "v") == k for k in neighbours)


def test_delete_value_and_set_value_replace(hive: Hive) -> None:
    hive.apply(1, WEB)
    hive.apply(2, [{"op": "set_value", "key": "Groups/web", "name": "owner", "value": 0},
                   {"op": "delete_value", "key": "Groups/web", "name": "preferred"}])
    assert hive.values("Groups/web") == {"owner": 0}


def test_reads_of_a_missing_key_raise_missing_key(hive: Hive) -> None:
    for read in (hive.values, hive.subkeys):
        with pytest.raises(MissingKey, match="no key 'nope'"):
            read("nope")


def test_updates_apply_only_in_sequence(hive: Hive) -> None:
    hive.apply(1, WEB)
    with pytest.raises(OutOfOrderUpdate, match=r"at update 1 and has not seen update 2, so this node is stale") as gap:
        hive.apply(3, [])
    assert not gap.value.duplicate and "catch up" in str(gap.value)
    with pytest.raises(OutOfOrderUpdate, match="already applied") as dup:
        hive.apply(1, WEB)
    assert dup.value.duplicate
    for bad in (0, -1, True, "2"):
        with pytest.raises(InvalidOperation, match="not a positive integer"):
            hive.apply(bad, [])  # type: ignore[arg-type]
    hive.apply(2, [])
    assert hive.last_seq == 2


def test_epoch_never_goes_back(hive: Hive) -> None:
    hive.apply(1, [], epoch=5)
    hive.apply(2, [])
    assert hive.epoch == 5
    with pytest.raises(DatabaseError, match="epoch 4, older than the hive's epoch 5"):
        hive.apply(3, [], epoch=4)
    assert hive.last_seq == 2


@pytest.mark.parametrize(
    ("bad_op", "message"),
    [
        ({"op": "set_value", "key": "x", "name": "v", "value": 1}, "key 'x', which does not exist"),
        ({"op": "delete_key", "key": "Groups/none"}, "key 'Groups/none', which does not exist"),
        ({"op": "delete_value", "key": "Groups/web", "name": "none"}, "value 'none' of key 'Groups/web'"),
        ({"op": "rename_key", "key": "a"}, "use one of create_key, delete_key"),
        ({"op": "set_value", "key": "a", "name": "v"}, r"missing \['value'\]"),
        ({"op": "create_key", "key": "a", "extra": 1}, r"unknown \['extra'\]"),
        ({"op": "set_value", "key": "a", "name": "v", "value": float("nan")}, "JSON cannot carry"),
        ({"op": "set_value", "key": "a", "name": "v", "value": {1: 2}}, "object keys must be strings"),
        ({"op": "set_value", "key": "a", "name": "v", "value": (1, 2)}, "is a tuple"),
        ({"op": "set_value", "key": "a", "name": "v", "value": [2**63]}, "outside 64 bits"),
        ({"op": "set_value", "key": "a", "name": "v", "value": "x" * (1 << 20)}, "more than 1048576"),
        ({"op": "set_value", "key": "a", "name": "", "value": 1}, "value name is empty"),
        ("create_key a", "is a str, not an object"),
    ],
)
def test_an_update_failing_half_way_changes_nothing(hive: Hive, bad_op: Any, message: str) -> None:
    hive.apply(1, WEB)
    before = hive.snapshot()
    ops = [
        {"op": "create_key", "key": "Groups/new"},
        {"op": "set_value", "key": "Groups/web", "name": "owner", "value": 1},
        bad_op,
        {"op": "create_key", "key": "after"},
    ]
    with pytest.raises(InvalidOperation, match=message):
        hive.apply(2, ops)
    assert hive.snapshot() == before and hive.last_seq == 1
    assert not hive.exists("Groups/new") and hive.get("Groups/web", "owner") == 2
    hive.apply(2, ops[:2])  # the same number is free for the next update
    assert hive.last_seq == 2


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "the root key"),
        ("/a", "empty name at level 1"),
        ("a/", "empty name at level 2"),
        ("a//b", "empty name at level 2"),
        ("a/\x07", "control character"),
        ("x" * 256, "more than 255"),
        ("/".join(["k"] * 33), "33 levels"),
        ("\ud800", "lone surrogate"),
        (7, "must be a string"),
    ],
)
def test_malformed_keys_are_refused_with_the_reason(hive: Hive, key: object, message: str) -> None:
    with pytest.raises(InvalidOperation, match=message):
        hive.apply(1, [{"op": "create_key", "key": key}])
    assert hive.last_seq == 0


def test_the_body_must_be_a_list() -> None:
    from wolfpack.runtime.db import validate_ops

    with pytest.raises(InvalidOperation, match="list of operations, not a str"):
        validate_ops("[]")


def test_check_is_a_dry_run(hive: Hive) -> None:
    hive.apply(1, WEB)
    hive.check([{"op": "delete_key", "key": "Groups"}])
    assert hive.exists("Groups/web") and hive.last_seq == 1
    with pytest.raises(InvalidOperation, match="does not exist"):
        hive.check([{"op": "delete_value", "key": "Groups", "name": "x"}])


def test_content_survives_reopen_and_the_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "hive.db"
    with Hive(path) as hive:
        hive.apply(1, WEB, epoch=3)
        assert hive._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        expected = hive.snapshot()
    with Hive(path) as again:
        assert again.snapshot() == expected and (again.last_seq, again.epoch) == (1, 3)
        assert again._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_snapshot_restore_gives_an_equal_hive(tmp_path: Path, hive: Hive) -> None:
    hive.apply(1, WEB, epoch=2)
    hive.apply(2, [{"op": "create_key", "key": "Nodes/0"}])
    data = hive.snapshot()
    assert data == hive.snapshot(), "snapshots are deterministic"
    with Hive(tmp_path / "joiner.db") as joiner:
        joiner.apply(1, [{"op": "create_key", "key": "stale"}])
        joiner.load_snapshot(data)
        assert list(joiner.walk()) == list(hive.walk()) and joiner.content() == hive.content()
    with Hive.restore(tmp_path / "new.db", data) as restored:
        assert restored.content() == hive.content()
        restored.apply(3, [{"op": "delete_key", "key": "Nodes"}])  # it goes on from the snapshot's number


def _damaged(data: bytes) -> dict[str, bytes]:
    bad_content = HiveContent(1, 0, "", keys=("a/b",), values=())  # a key without its parent
    return {
        "a flipped byte": data[:-5] + bytes([data[-5] ^ 0x40]) + data[-4:],
        "a truncation": data[: len(data) // 2],
        "another file": b"SQLite format 3\x00" + data[16:],
        "content breaking the rules": encode_snapshot(bad_content),
    }


@pytest.mark.parametrize("damage", ["a flipped byte", "a truncation", "another file", "content breaking the rules"])
def test_a_corrupt_snapshot_is_refused_and_changes_nothing(tmp_path: Path, hive: Hive, damage: str) -> None:
    hive.apply(1, WEB)
    bad = _damaged(hive.snapshot())[damage]
    with Hive(tmp_path / "joiner.db") as joiner:
        joiner.apply(1, [{"op": "create_key", "key": "mine"}])
        before = joiner.snapshot()
        with pytest.raises(CorruptSnapshot, match=r"snapshot is refused: .*fetch the database again"):
            joiner.load_snapshot(bad)
        assert joiner.snapshot() == before
    with pytest.raises(CorruptSnapshot):
        Hive.restore(tmp_path / "joiner.db", bad)
    with Hive(tmp_path / "joiner.db") as joiner:
        assert joiner.snapshot() == before


def test_files_that_are_not_a_hive_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError, match="not a usable SQLite database"):
        Hive(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(DatabaseError, match="not a Wolfpack hive"):
        Hive(other)
    newer = tmp_path / "newer.db"
    Hive(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = 99 WHERE name = 'schema_version'")
    with pytest.raises(DatabaseError, match="schema version 99, this Wolfpack uses 1"):
        Hive(newer)
