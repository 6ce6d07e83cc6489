"""The quorum log: durable appends, torn tails, the orphan rule, checkpoints, catch-up, crashes."""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wolfpack.errors import DatabaseError
from wolfpack.runtime.db import CorruptLog, DivergedHive, Hive, InvalidOperation, QuorumLog, is_stale
from wolfpack.runtime.db.checkpoint import checkpoint_path, write_checkpoint
from wolfpack.runtime.db.quorum_log import FRAME, SEGMENT_HEADER, segment_path


def ops_for(seq: int) -> list[dict[str, Any]]:
    """A valid update for every sequence number, whatever came before it."""
    key = f"k{seq % 7}/s{seq % 3}"
    return [
        {"op": "create_key", "key": key},
        {"op": "set_value", "key": key, "name": f"v{seq % 5}", "value": seq},
        {"op": "create_key", "key": f"tmp/{seq % 4}"},
        {"op": "delete_key", "key": f"tmp/{seq % 4}" if seq % 2 else f"k{seq % 7}"},
    ]


def reference(upto: int) -> Hive:
    """A hive that applied ops_for(1..upto) directly."""
    hive = Hive(":memory:")
    for seq in range(1, upto + 1):
        hive.apply(seq, ops_for(seq), epoch=1)
    return hive


def logged(tmp: Path, count: int) -> tuple[Hive, QuorumLog]:
    """A node that logged then applied updates 1..count, as the daemon does."""
    hive, qlog = Hive(tmp / "hive.db"), QuorumLog(tmp / "quorum")
    for seq in range(1, count + 1):
        qlog.append(seq, 1, ops_for(seq))
        hive.apply(seq, ops_for(seq), epoch=1)
    return hive, qlog


def newest_segment(directory: Path) -> Path:
    return sorted(directory.glob("log-*.wal"))[-1]


def test_appended_records_survive_reopen(tmp_path: Path) -> None:
    with QuorumLog(tmp_path) as qlog:
        for seq in (1, 2, 3):
            qlog.append(seq, 7, ops_for(seq))
    with QuorumLog(tmp_path) as again:
        assert [(r.seq, r.epoch, r.ops) for r in again.records()] == [(s, 7, ops_for(s)) for s in (1, 2, 3)]
        assert [r.seq for r in again.records(1)] == [2, 3]
        assert (again.last_seq, again.epoch, again.checkpoint_seq) == (3, 7, 0)
        again.append(4, 8, [])
        assert again.last_seq == 4


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with QuorumLog(tmp_path), pytest.raises(DatabaseError, match="open in another process"):
        QuorumLog(tmp_path)
    QuorumLog(tmp_path).close()


def test_append_refuses_gaps_old_epochs_and_bad_bodies(tmp_path: Path) -> None:
    with QuorumLog(tmp_path) as qlog:
        qlog.append(1, 5, [])
        with pytest.raises(DatabaseError, match="log ends at update 1, and a gap"):
            qlog.append(3, 5, [])
        with pytest.raises(DatabaseError, match="epoch 4, older than the log's epoch 5"):
            qlog.append(2, 4, [])
        with pytest.raises(InvalidOperation, match="operation #0"):
            qlog.append(2, 5, [{"op": "create_key", "key": "a//b"}])
        with pytest.raises(InvalidOperation, match="not an integer"):
            qlog.append(-1, 5, [])
        assert qlog.last_seq == 1 and [r.seq for r in qlog.records()] == [1]


def _tear(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "record cut short":
        path.write_bytes(data[:-3])
    elif how == "partial header":
        path.write_bytes(data + b"WPQR\x00\x00")
    elif how == "zero tail":
        path.write_bytes(data + bytes(4096))
    elif how == "last record checksum":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))


@pytest.mark.parametrize("how", ["record cut short", "partial header", "zero tail", "last record checksum"])
def test_a_torn_tail_is_truncated_on_open(tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str) -> None:
    with QuorumLog(tmp_path) as qlog:
        for seq in (1, 2, 3):
            qlog.append(seq, 1, ops_for(seq))
    segment = newest_segment(tmp_path)
    _tear(segment, how)
    with caplog.at_level(logging.WARNING), QuorumLog(tmp_path) as qlog:
        kept = [1, 2] if how in ("record cut short", "last record checksum") else [1, 2, 3]
        assert [r.seq for r in qlog.records()] == kept and qlog.last_seq == kept[-1]
        assert "truncated" in caplog.text
        qlog.append(kept[-1] + 1, 1, [])
    caplog.clear()
    with caplog.at_level(logging.WARNING), QuorumLog(tmp_path) as qlog:
        assert [r.seq for r in qlog.records()] == [*kept, kept[-1] + 1] and caplog.text == ""


def test_a_corrupt_record_in_the_middle_raises(tmp_path: Path) -> None:
    with QuorumLog(tmp_path) as qlog:
        for seq in (1, 2, 3):
            qlog.append(seq, 1, ops_for(seq))
    segment = newest_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[SEGMENT_HEADER.size + FRAME.size + 2] ^= 0x20  # inside the first record's payload
    segment.write_bytes(bytes(data))
    with pytest.raises(CorruptLog, match="update 1 fails its checksum and more records follow"):
        QuorumLog(tmp_path)


def test_garbage_after_the_last_record_is_corruption_not_a_torn_tail(tmp_path: Path) -> None:
    with QuorumLog(tmp_path) as qlog:
        qlog.append(1, 1, [])
    segment = newest_segment(tmp_path)
    segment.write_bytes(segment.read_bytes() + b"\x01garbage" * 10)
    with pytest.raises(CorruptLog, match="does not start with the record marker"):
        QuorumLog(tmp_path)


def test_orphan_rule_replay_uses_the_later_record(tmp_path: Path) -> None:
    orphan = [{"op": "create_key", "key": "orphan"}]
    survivor = [{"op": "create_key", "key": "survivor"}]
    with QuorumLog(tmp_path / "q") as qlog:
        qlog.append(1, 1, ops_for(1))
        qlog.append(2, 1, orphan)  # its sender died before anybody else had it
        qlog.append(2, 2, survivor)  # the new membership reuses number 2
        qlog.append(3, 2, ops_for(3))
        assert [(r.seq, r.epoch, r.ops) for r in qlog.records()] == [(1, 1, ops_for(1)), (2, 2, survivor),
                                                                     (3, 2, ops_for(3))]
    with QuorumLog(tmp_path / "q") as qlog, Hive(tmp_path / "h.db") as hive:
        assert qlog.catch_up(hive) == 3
        assert hive.exists("survivor") and not hive.exists("orphan") and hive.epoch == 2


def test_a_record_supersedes_every_later_numbered_orphan(tmp_path: Path) -> None:
    with QuorumLog(tmp_path) as qlog:
        for seq in (1, 2, 3):
            qlog.append(seq, 1, ops_for(seq))
        qlog.append(2, 2, [])
        assert [r.seq for r in qlog.records()] == [1, 2] and qlog.last_seq == 2
        assert qlog.records()  # and 3 is gone: the next number is 3 again
        qlog.append(3, 2, [])


def test_a_hive_that_applied_an_orphan_is_diverged(tmp_path: Path) -> None:
    orphan = [{"op": "create_key", "key": "orphan"}]
    with QuorumLog(tmp_path / "q") as qlog, Hive(tmp_path / "h.db") as hive:
        qlog.append(1, 1, ops_for(1))
        hive.apply(1, ops_for(1), epoch=1)
        qlog.append(2, 1, orphan)  # this node was the locker: it logged and applied, then died
        hive.apply(2, orphan, epoch=1)
        assert not qlog.diverged(hive) and not is_stale(hive, qlog)
        qlog.append(2, 2, ops_for(2))  # back, it receives what the survivors committed under 2
        qlog.append(3, 2, ops_for(3))
        assert qlog.diverged(hive) and is_stale(hive, qlog)
        with pytest.raises(DivergedHive, match="discarded as an orphan"):
            qlog.catch_up(hive)
        with pytest.raises(DivergedHive):
            qlog.checkpoint(hive)
        assert qlog.catch_up(hive, rebuild_diverged=True) == 3
        assert list(hive.walk()) == list(reference(3).walk()) and hive.epoch == 2


def test_a_refused_last_update_is_skipped_by_catch_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    refused = [{"op": "delete_key", "key": "does/not/exist"}]
    with QuorumLog(tmp_path / "q") as qlog, Hive(tmp_path / "h.db") as hive:
        qlog.append(1, 1, ops_for(1))
        hive.apply(1, ops_for(1), epoch=1)
        qlog.append(2, 1, refused)  # the locker persists, then its apply fails: it takes the update back
        with pytest.raises(InvalidOperation):
            hive.apply(2, refused, epoch=1)
        assert not is_stale(hive, qlog)
        with Hive(tmp_path / "fresh.db") as fresh:
            assert is_stale(fresh, qlog)
            with caplog.at_level(logging.WARNING):
                assert qlog.catch_up(fresh) == 1
            assert "skipping update 2" in caplog.text and not is_stale(fresh, qlog)
        qlog.append(2, 1, ops_for(2))  # the next update reuses the number
        qlog.append(3, 1, refused)
        qlog.append(3, 1, ops_for(3))
        with Hive(tmp_path / "fresh2.db") as fresh:
            assert qlog.catch_up(fresh) == 3
            assert fresh.content() == reference(3).content()


def test_a_record_that_does_not_apply_in_the_middle_raises(tmp_path: Path) -> None:
    with QuorumLog(tmp_path / "q") as qlog, Hive(tmp_path / "h.db") as hive:
        qlog.append(1, 1, [{"op": "delete_key", "key": "missing"}])
        qlog.append(2, 1, [])
        with pytest.raises(DivergedHive, match="update 1 of the quorum log does not apply"):
            qlog.catch_up(hive)


def test_checkpoint_compacts_the_log_and_catch_up_uses_it(tmp_path: Path) -> None:
    hive, qlog = logged(tmp_path, 10)
    with Hive(tmp_path / "early.db") as early:
        early.load_snapshot(reference(4).snapshot())  # a copy taken at update 4
        assert qlog.checkpoint(hive) == 10
        assert sorted(p.name for p in (tmp_path / "quorum").iterdir()) == [
            checkpoint_path(tmp_path, 10).name, "lock", segment_path(tmp_path, 10).name,
        ]
        with pytest.raises(DatabaseError, match="compacted into checkpoint 10"):
            qlog.records(4)
        for seq in (11, 12):
            qlog.append(seq, 1, ops_for(seq))
            hive.apply(seq, ops_for(seq), epoch=1)
        assert is_stale(early, qlog)
        assert qlog.catch_up(early) == 12 and early.content() == hive.content()
        assert not is_stale(early, qlog)
        with pytest.raises(DatabaseError, match="checkpointed at update 10"):
            qlog.append(10, 1, [])
    qlog.close()
    with QuorumLog(tmp_path / "quorum") as again, Hive(tmp_path / "empty.db") as empty:
        assert (again.checkpoint_seq, again.last_seq) == (10, 12)
        assert again.catch_up(empty) == 12 and empty.content() == hive.content()
    hive.close()


def test_checkpoint_of_a_hive_behind_the_log_keeps_the_later_records(tmp_path: Path) -> None:
    hive, qlog = logged(tmp_path, 5)
    qlog.append(6, 1, ops_for(6))  # logged, not yet applied (a crash between the two)
    qlog.checkpoint(hive)
    assert [r.seq for r in qlog.records()] == [6] and qlog.last_seq == 6
    with pytest.raises(DatabaseError, match="older than the newest checkpoint"):
        qlog.checkpoint(reference(3))
    assert qlog.catch_up(hive) == 6 and hive.content() == reference(6).content()
    hive.close()
    qlog.close()


def test_a_crash_in_the_middle_of_a_checkpoint_leaves_a_log_that_opens(tmp_path: Path) -> None:
    hive, qlog = logged(tmp_path, 6)
    qlog.close()
    directory = tmp_path / "quorum"
    # crashed after the checkpoint file was renamed into place, before the new segment existed:
    write_checkpoint(directory, 4, reference(4).snapshot())
    (directory / "log-00000000000000000004.wal.tmp").write_bytes(b"half a segment")
    with QuorumLog(directory) as again, Hive(tmp_path / "empty.db") as empty:
        assert not (directory / "log-00000000000000000004.wal.tmp").exists()
        assert (again.checkpoint_seq, again.last_seq, [r.seq for r in again.records()]) == (4, 6, [5, 6])
        assert again.catch_up(empty) == 6 and empty.content() == hive.content()
        again.append(7, 1, ops_for(7))
        hive.apply(7, ops_for(7), epoch=1)
        again.checkpoint(hive)
    # crashed after the new segment was written, before the old one was deleted:
    old = segment_path(directory, 0)
    old.write_bytes(SEGMENT_HEADER.pack(b"WPQLOG\x00\x01", 0))
    with QuorumLog(directory) as again:
        assert (again.checkpoint_seq, again.last_seq) == (7, 7)
    hive.close()


def test_a_corrupt_checkpoint_stops_the_log_from_opening(tmp_path: Path) -> None:
    hive, qlog = logged(tmp_path, 3)
    qlog.checkpoint(hive)
    qlog.close()
    path = checkpoint_path(tmp_path / "quorum", 3)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatabaseError, match=r"checkpoint .* is corrupt"):
        QuorumLog(tmp_path / "quorum")
    hive.close()


def test_partition_in_time(tmp_path: Path) -> None:
    """B goes down, A keeps changing the configuration and goes down, B comes back: B must replay first."""
    a, qlog = logged(tmp_path, 3)
    b = Hive.restore(tmp_path / "b.db", a.snapshot())
    for seq in (4, 5):
        qlog.append(seq, 2, ops_for(seq))
        a.apply(seq, ops_for(seq), epoch=2)
    a.close()
    assert is_stale(b, qlog)
    assert qlog.catch_up(b) == 5 and not is_stale(b, qlog) and b.epoch == 2
    b.close()
    qlog.close()


# ---------------------------------------------------------------- property: checkpoint + replay == direct apply
keys = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
names = st.sampled_from(["x", "y"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=4,
)
operations = st.one_of(
    st.builds(lambda k: {"op": "create_key", "key": k}, keys),
    st.builds(lambda k: {"op": "delete_key", "key": k}, keys),
    st.builds(lambda k, n, v: {"op": "set_value", "key": k, "name": n, "value": v}, keys, names, json_values),
    st.builds(lambda k, n: {"op": "delete_value", "key": k, "name": n}, keys, names),
)
steps = st.lists(
    st.tuples(st.lists(operations, max_size=4), st.booleans(), st.integers(0, 1)), min_size=1, max_size=16
)


@given(steps=steps, copy_at=st.integers(0, 16))
def test_checkpoint_and_replay_equal_applying_every_update(steps: list[Any], copy_at: int) -> None:
    """Each step: maybe a checkpoint, then an update (epoch maybe bumped) logged then applied (refused
    updates become orphans whose number the next update reuses).  A copy of the hive taken at an arbitrary
    step, and an empty hive, caught up from the reopened log, end up identical to the hive that applied
    every update."""
    copy_at = min(copy_at, len(steps))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        hive, qlog = Hive(tmp / "a.db", durable=False), QuorumLog(tmp / "q", durable=False)
        epoch, stale = 0, b""
        for index, (ops, take_checkpoint, bump) in enumerate(steps):
            if index == copy_at:
                stale = hive.snapshot()
            if take_checkpoint:
                qlog.checkpoint(hive)
            epoch += bump
            seq = hive.last_seq + 1
            qlog.append(seq, epoch, ops)
            with contextlib.suppress(InvalidOperation):  # refused: an orphan, its number is reused
                hive.apply(seq, ops, epoch=epoch)
        stale = stale or hive.snapshot()
        qlog.close()
        with QuorumLog(tmp / "q", durable=False) as reopened:
            for copy in (Hive.restore(tmp / "b.db", stale, durable=False), Hive(tmp / "c.db", durable=False)):
                assert is_stale(copy, reopened) == (copy.content() != hive.content())
                assert reopened.catch_up(copy) == hive.last_seq
                assert copy.content() == hive.content() and copy.snapshot() == hive.snapshot()
                assert not is_stale(copy, reopened)
                copy.close()
        hive.close()


# ---------------------------------------------------------------- crash: SIGKILL of a process writing updates
CHILD = "from typing import Any\n\n" + inspect.getsource(ops_for) + """
import sys
from wolfpack.runtime.db import Hive, QuorumLog
directory = sys.argv[1]
hive, qlog = Hive(directory + "/hive.db"), QuorumLog(directory + "/quorum")
qlog.catch_up(hive)                          # what the daemon does at start
while True:
    seq = hive.last_seq + 1
    qlog.append(seq, 1, ops_for(seq))        # persist ...
    hive.apply(seq, ops_for(seq), epoch=1)   # ... then apply
    if seq % 25 == 0:
        qlog.checkpoint(hive)
    print(seq, flush=True)
"""


def test_a_killed_writer_leaves_a_log_that_reopens_and_a_hive_equal_to_it(tmp_path: Path) -> None:
    """SIGKILL lands wherever the writer is (an append, an apply, a checkpoint); every landing must be safe.
    Three rounds, each restarting the writer on what the previous kill left, as the daemon would."""
    for kill_after in (30, 80, 130):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) >= kill_after:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        with QuorumLog(tmp_path / "quorum") as qlog, Hive(tmp_path / "hive.db") as hive:
            assert hive.last_seq >= kill_after
            assert qlog.last_seq - hive.last_seq in (0, 1), "the log is written first, at most one update ahead"
            assert hive.content() == reference(hive.last_seq).content()
            logged_seq = qlog.last_seq
            assert qlog.catch_up(hive) == logged_seq
            assert hive.content() == reference(logged_seq).content()


def test_reset_to_a_sponsors_database_drops_the_orphans_after_it(tmp_path: Path) -> None:
    hive, qlog = logged(tmp_path, 5)  # this node logged 1..5; the cluster (its sponsor) is at 3 without 4, 5
    sponsor = reference(3)
    hive.load_snapshot(sponsor.snapshot())
    assert qlog.reset(hive) == 3
    assert (qlog.last_seq, qlog.checkpoint_seq, list(qlog.records())) == (3, 3, [])
    qlog.append(4, 1, ops_for(4))
    hive.apply(4, ops_for(4))
    qlog.close()
    again = QuorumLog(tmp_path / "quorum")
    assert again.last_seq == 4 and [r.seq for r in again.records()] == [4]
    fresh = Hive(":memory:")
    assert again.catch_up(fresh) == 4 and fresh.content().keys == hive.content().keys
