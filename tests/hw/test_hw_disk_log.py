"""The quorum log on the shared disk, against the in-memory device and against tgtd: round trip, torn writes,
damage, orphans, checkpoints and catch-up, a full log, stale readers, and writes refused to a node that lost
the disk (SCSI-3 preempt, SCSI-2 reset)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Target, make_target

from wolfpack.errors import DatabaseError, DeviceError
from wolfpack.hw.arbiter import pr_key
from wolfpack.hw.device import Disk
from wolfpack.hw.disk_log import DiskLog, LogFull, StaleLog
from wolfpack.hw.errors import DeviceFailed, OwnershipLost
from wolfpack.runtime.db import CorruptLog, Hive

SMALL = {"checkpoint_bytes": 64 << 10, "log_bytes": 64 << 10}
A, B = pr_key("c1", 0), pr_key("c1", 1)


def ops_for(seq: int, tag: str = "") -> list[dict[str, Any]]:
    """A valid update for every sequence number, whatever came before it."""
    key = f"k{seq % 5}{tag}"
    return [{"op": "create_key", "key": key}, {"op": "set_value", "key": key, "name": "v", "value": seq}]


def hive_after(updates: list[tuple[int, list[dict[str, Any]]]]) -> Hive:
    hive = Hive(":memory:")
    for seq, ops in updates:
        hive.apply(seq, ops, epoch=1)
    return hive


def logged(target: Target, count: int, **sizes: int) -> tuple[Disk, DiskLog]:
    """Node a's disk and a fresh log on it holding updates 1..count (epoch 1)."""
    disk = target.open("a")
    log = DiskLog.format(disk, **(sizes or SMALL))
    for seq in range(1, count + 1):
        log.append(seq, 1, ops_for(seq))
    return disk, log


@pytest.fixture(params=("spc", "tgtd"))
def disk_target(request: pytest.FixtureRequest) -> Target:
    return make_target(request.param, request)


def test_records_round_trip_and_rebuild_a_hive(disk_target: Target) -> None:
    writer = DiskLog.format(disk_target.open("a"), **SMALL)
    for seq in range(1, 8):
        writer.append(seq, 1 + seq // 4, ops_for(seq))
    reader = DiskLog.open(disk_target.open("b"))
    assert [(r.seq, r.epoch, r.ops) for r in reader.records()] == [(s, 1 + s // 4, ops_for(s)) for s in range(1, 8)]
    assert (reader.last_seq, reader.epoch, reader.checkpoint_seq) == (7, 2, 0)
    snapshot, records = reader.read_all()
    rebuilt = Hive.restore(":memory:", snapshot)
    for record in records:
        rebuilt.apply(record.seq, record.ops, epoch=record.epoch)
    assert rebuilt.content().keys == hive_after([(s, ops_for(s)) for s in range(1, 8)]).content().keys
    assert rebuilt.get("k2", "v") == 7 and rebuilt.last_seq == 7


def test_a_record_larger_than_one_command_round_trips(disk_target: Target) -> None:
    log = DiskLog.format(disk_target.open("a"), checkpoint_bytes=64 << 10, log_bytes=3 << 20)
    big = [{"op": "create_key", "key": "big"},
           *({"op": "set_value", "key": "big", "name": f"v{i}", "value": "x" * 600_000} for i in range(2))]
    log.append(1, 1, big)
    log.append(2, 1, ops_for(2))
    assert log.used_blocks > 2048
    assert [r.ops for r in DiskLog.open(disk_target.open("b")).records()] == [big, ops_for(2)]


def test_a_torn_last_record_ends_the_log_and_is_overwritten(disk_target: Target) -> None:
    disk, log = logged(disk_target, 2)
    end = log.used_blocks
    log.append(3, 1, [{"op": "create_key", "key": "long"}, {"op": "set_value", "key": "long", "name": "v",
                                                              "value": "y" * 2000}])
    assert log.used_blocks - end == 5
    disk.write_blocks(log.log_lba + end + 2, bytes(disk.block_size))  # a WRITE cut short: one block never landed
    reopened = DiskLog.open(disk_target.open("b"))
    assert [r.seq for r in reopened.records()] == [1, 2] and reopened.used_blocks == end
    reopened.append(3, 1, ops_for(3))  # overwrites the torn record
    assert [r.ops for r in DiskLog.open(disk_target.open("c")).records()] == [ops_for(1), ops_for(2), ops_for(3)]


def test_damage_before_good_records_is_corruption(disk_target: Target) -> None:
    disk, log = logged(disk_target, 3)
    disk.write_blocks(log.log_lba + 1, b"\xff" * disk.block_size)  # record 2 damaged, record 3 good behind it
    with pytest.raises(CorruptLog, match="holds a good record"):
        DiskLog.open(disk_target.open("b"))


def test_a_later_record_with_a_lower_or_equal_number_supersedes_orphans(disk_target: Target) -> None:
    _, log = logged(disk_target, 3)
    log.append(2, 2, ops_for(2, "b"))  # updates 2 and 3 were orphans: the cluster gave number 2 to another update
    for reader in (log, DiskLog.open(disk_target.open("b"))):
        assert [(r.seq, r.ops) for r in reader.records()] == [(1, ops_for(1)), (2, ops_for(2, "b"))]
        assert reader.last_seq == 2 and reader.epoch == 2
    with pytest.raises(DatabaseError, match="epoch 1, older"):
        log.append(3, 1, ops_for(3))
    hive = hive_after([(1, ops_for(1)), (2, ops_for(2))])  # a node that applied the orphan 2
    with pytest.raises(DatabaseError, match="discarded as an orphan"):
        log.catch_up(hive)
    assert log.catch_up(hive, rebuild_diverged=True) == 2 and hive.exists("k2b") and not hive.exists("k2")


def test_checkpoint_then_replay(disk_target: Target) -> None:
    log = DiskLog.format(disk_target.open("a"), **SMALL)
    updates = [(seq, ops_for(seq)) for seq in range(1, 13)]
    for seq, ops in updates[:10]:
        log.append(seq, 1, ops)
    assert log.checkpoint(hive_after(updates[:8])) == 8  # taken by a hive two updates behind the log
    for seq, ops in updates[10:]:
        log.append(seq, 1, ops)
    reader = DiskLog.open(disk_target.open("b"))
    assert reader.checkpoint_seq == 8 and [r.seq for r in reader.records()] == [9, 10, 11, 12]
    with pytest.raises(DatabaseError, match="compacted into checkpoint 8"):
        list(reader.records(5))
    with pytest.raises(DatabaseError, match="checkpointed at update 8"):
        reader.append(8, 1, ops_for(8))
    fresh = Hive(":memory:")
    assert reader.catch_up(fresh) == 12
    assert fresh.content() == hive_after(updates).content()
    assert reader.checkpoint(fresh) == 12 and reader.checkpoint(fresh) == 12  # twice: the slots alternate
    assert [r.seq for r in DiskLog.open(disk_target.open("c")).records()] == []


def test_a_checkpoint_cut_short_leaves_the_previous_one(request: pytest.FixtureRequest) -> None:
    target = make_target("spc", request)
    disk, log = logged(target, 4)
    header = log.slot_lba(1)  # slot 1's header block: the commit

    def crash_at_commit(lba: int, data: bytes, write: Any = disk.write_blocks) -> None:
        if lba == header:
            raise DeviceFailed("the node lost power")
        write(lba, data)

    disk.write_blocks = crash_at_commit  # type: ignore[method-assign]
    with pytest.raises(DeviceFailed):
        log.checkpoint(hive_after([(s, ops_for(s)) for s in range(1, 5)]))
    reader = DiskLog.open(target.open("b"))
    assert reader.checkpoint_seq == 0 and [r.seq for r in reader.records()] == [1, 2, 3, 4]


def test_a_checkpoint_with_damaged_data_falls_back_to_the_previous_one(request: pytest.FixtureRequest) -> None:
    target = make_target("spc", request)
    disk, log = logged(target, 4)
    log.checkpoint(hive_after([(s, ops_for(s)) for s in range(1, 4)]))
    data = log.slot_lba(1) + 1  # slot 1's first data block
    disk.write_blocks(data, b"\x00" * disk.block_size)  # its header landed, its data did not
    reader = DiskLog.open(target.open("b"))  # the previous checkpoint (the empty one) and its log
    assert reader.checkpoint_seq == 0 and [r.seq for r in reader.records()] == [1, 2, 3, 4]
    log.append(5, 1, ops_for(5))  # a record of the damaged checkpoint's generation: no way back
    with pytest.raises(CorruptLog, match="record of generation 2, newer than the newest valid checkpoint"):
        DiskLog.open(target.open("c"))


def test_a_full_log_asks_for_a_checkpoint(request: pytest.FixtureRequest) -> None:
    _, log = logged(make_target("spc", request), 8, checkpoint_bytes=64 << 10, log_bytes=4 << 10)
    updates = [(seq, ops_for(seq)) for seq in range(1, 10)]
    with pytest.raises(LogFull, match="take a checkpoint"):
        log.append(9, 1, ops_for(9))
    log.checkpoint(hive_after(updates[:8]))
    log.append(9, 1, ops_for(9))
    assert log.used_blocks == 1


def test_a_reader_that_missed_writes_cannot_append(request: pytest.FixtureRequest) -> None:
    target = make_target("spc", request)
    first = DiskLog.format(target.open("a"), **SMALL)
    first.append(1, 1, ops_for(1))
    second = DiskLog.open(target.open("b"))
    second.append(2, 1, ops_for(2))
    with pytest.raises(StaleLog, match="read it again"):
        first.append(2, 1, ops_for(2, "x"))
    second.checkpoint(hive_after([(1, ops_for(1)), (2, ops_for(2))]))
    first.refresh()
    third = DiskLog.open(target.open("c"))
    first.append(3, 1, ops_for(3))
    with pytest.raises(StaleLog):
        third.checkpoint(hive_after([(1, ops_for(1)), (2, ops_for(2))]))


def test_a_new_format_ignores_the_old_log_and_an_unformatted_disk_is_refused(disk_target: Target) -> None:
    disk = disk_target.open("a")
    with pytest.raises(CorruptLog, match="no Wolfpack quorum log"):
        DiskLog.open(disk)
    old = DiskLog.format(disk, **SMALL)
    for seq in (1, 2, 3):
        old.append(seq, 1, ops_for(seq))
    new = DiskLog.format(disk, **SMALL)
    new.append(1, 1, ops_for(1, "new"))
    assert [r.ops for r in DiskLog.open(disk_target.open("b")).records()] == [ops_for(1, "new")]


def _owner_preempted(target: Target) -> tuple[DiskLog, Disk]:
    a, b = target.open("a"), target.open("b")
    a.register_ignore(A)
    a.reserve(A)
    log = DiskLog.format(a, **SMALL)
    log.append(1, 1, ops_for(1))
    b.register_ignore(B)
    b.fence(B, A)  # PREEMPT (AND ABORT): b takes the reservation, a's key is gone
    return log, b


def _owner_reset(target: Target) -> tuple[DiskLog, Disk]:
    a, b = target.open("a"), target.open("b")
    a.reserve6()
    log = DiskLog.format(a, **SMALL)
    log.append(1, 1, ops_for(1))
    b.reset()  # the MSCS challenge; a does not defend in time
    b.reserve6()
    return log, b


@pytest.mark.parametrize("lose", [_owner_preempted, _owner_reset], ids=["scsi3_preempted", "scsi2_reset"])
def test_a_node_that_lost_the_disk_cannot_append(disk_target: Target, lose: Any) -> None:
    log, winner = lose(disk_target)
    with pytest.raises(OwnershipLost, match="no longer owns the quorum disk") as caught:
        log.append(2, 1, ops_for(2))
    assert isinstance(caught.value, DeviceError)
    taken = DiskLog.open(winner)  # nothing of update 2 reached the disk
    assert [r.seq for r in taken.records()] == [1]
    taken.append(2, 1, ops_for(2, "winner"))
    assert [r.ops for r in DiskLog.open(winner).records()] == [ops_for(1), ops_for(2, "winner")]
