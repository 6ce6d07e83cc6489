"""The daemon's quorum disk shell on an in-memory LUN: winning the disk merges its quorum log with the node's
database (both directions), updates are logged through the reservation, and a node that lost the disk logs
nothing and halts.  The daemon with real disks: ``tests/integration/test_disk_quorum.py``."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wolfpack.errors import DatabaseError
from wolfpack.hw.device import open_device
from wolfpack.hw.disk_log import DiskLog
from wolfpack.runtime.daemon.quorum_disk import QuorumDisk
from wolfpack.runtime.db import Hive, QuorumLog

_names = itertools.count()


def ops_for(seq: int) -> list[dict[str, Any]]:
    return [{"op": "create_key", "key": f"k{seq}"}, {"op": "set_value", "key": f"k{seq}", "name": "v", "value": seq}]


class Config:
    def __init__(self, url: str, me: int) -> None:
        self.values = {"cluster.quorum_disk": url, "cluster.arbitration": "scsi3", "cluster.name": "lab"}
        self.timing = {"reserve_timeout_ms": 1000}
        self.initiator = f"iqn.2026-01.test:node{me}"

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


class Node:
    """What the shell uses of a DaemonNode: its database, GUM's record, the app's store and adopt, the queue."""

    def __init__(self, hive: Hive, me: int = 0) -> None:
        self.node_id, self.n = me, 3
        self.database = SimpleNamespace(hive=hive)
        self.machines = {"gum": SimpleNamespace(record=SimpleNamespace(locker=0, members=(True, True, True)))}
        self.adopted: list[int] = []
        self.app = SimpleNamespace(store={}, adopt=lambda seq, locker, members, events: self.adopted.append(seq))
        self.posted: list[Any] = []
        self.fed: list[str] = []
        self.fed_args: list[dict[str, Any]] = []
        self.suspended = False

    def post(self, action: Any) -> None:
        self.posted.append(action)

    def feed(self, machine: str, event: str, **args: Any) -> None:
        self.fed.append(f"{machine}.{event}")
        self.fed_args.append(args)

    def suspend(self) -> None:
        self.suspended = True

    def resume(self, first: Any = None) -> None:
        self.suspended = False
        if first is not None:
            first()


def hive_at(tmp: Path, name: str, upto: int) -> tuple[Hive, QuorumLog]:
    hive, local = Hive(tmp / f"{name}.sqlite"), QuorumLog(tmp / f"{name}-log")
    for seq in range(1, upto + 1):
        local.append(seq, 1, ops_for(seq))
        hive.apply(seq, ops_for(seq), epoch=1)
    return hive, local


async def win(disk: QuorumDisk) -> None:
    """The arbitration machine reported ``won``: wait until the log is read and merged."""
    disk.won()
    while disk.node.suspended:  # type: ignore[attr-defined]
        await asyncio.sleep(0.001)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_stale_node_that_wins_the_disk_catches_up_from_its_log_before_it_forms(tmp_path: Path) -> None:
    """The partition in time: node 1 logged updates 1..3 while node 0 was down; node 0 wins the disk with its
    database at update 1 and is brought to update 3 before the membership machine hears disk_won."""
    url = f"memory://qd{next(_names)}"

    async def story() -> None:
        hive1, local1 = hive_at(tmp_path, "n1", 1)
        first = QuorumDisk(Config(url, 1), Node(hive1, 1), local1, lambda: None)  # type: ignore[arg-type]
        await win(first)  # formats the blank disk, logs a checkpoint of update 1
        for seq in (2, 3):
            first.append(seq, 1, ops_for(seq))
            local1.append(seq, 1, ops_for(seq))
            hive1.apply(seq, ops_for(seq), epoch=1)
        hive0, local0 = hive_at(tmp_path, "n0", 1)
        node0, loaded = Node(hive0), []
        second = QuorumDisk(Config(url, 0), node0, local0, lambda: loaded.append(True))  # type: ignore[arg-type]
        await win(second)
        assert hive0.last_seq == 3 and hive0.last_digest == hive1.last_digest
        assert local0.last_seq == 3 and node0.adopted == [3] and loaded == [True]
        assert second.owner and sorted(node0.app.store) == [2, 3]

    run(story())


def test_a_disk_log_behind_the_winner_s_database_gets_a_checkpoint(tmp_path: Path) -> None:
    url = f"memory://qd{next(_names)}"

    async def story() -> None:
        hive, local = hive_at(tmp_path, "n0", 4)
        disk = QuorumDisk(Config(url, 0), Node(hive), local, lambda: None)  # type: ignore[arg-type]
        await win(disk)
        assert disk.log is not None and disk.log.last_seq == 4 and disk.node.adopted == []  # type: ignore[attr-defined]
        again = DiskLog.open(open_device(url, initiator="reader"))
        assert again.checkpoint_seq == 4

    run(story())


def test_only_the_owner_logs_and_a_refused_write_halts_the_node(tmp_path: Path) -> None:
    """The disk log is written through the reservation: once another node took the disk (a preempt here), the
    old owner's append gets RESERVATION CONFLICT: nothing is logged, it stops owning, and it halts."""
    url = f"memory://qd{next(_names)}"

    async def story() -> None:
        hive, local = hive_at(tmp_path, "n0", 0)
        node = Node(hive)
        disk = QuorumDisk(Config(url, 0), node, local, lambda: None)  # type: ignore[arg-type]
        disk.append(1, 1, ops_for(1))
        assert disk.log is None  # not the owner: nothing written
        raw = disk.disk
        raw.register_ignore(disk.commands.key)
        raw.reserve(disk.commands.key)
        await win(disk)
        disk.append(1, 1, ops_for(1))
        assert disk.log is not None and disk.log.last_seq == 1
        rival = open_device(url, initiator="rival")
        rival_key = disk.commands.key + 1
        rival.register_ignore(rival_key)
        rival.preempt(rival_key, disk.commands.key)
        with pytest.raises(DatabaseError, match="not logged on the quorum disk"):
            disk.append(2, 1, ops_for(2))
        assert not disk.owner
        for action in node.posted:
            action()
        assert node.fed == ["membership.disk_epoch", "membership.disk_lost"]  # at the win, then the halt

    run(story())


def test_the_owner_records_round_epochs_and_the_next_winner_starts_above_the_newest(tmp_path: Path) -> None:
    """Decision 20: epochs never repeat under disk quorum.  The owner records each round's epoch on the disk (a
    checkpoint carrying it; only when it is newer, and never without owning the disk); a node that wins the disk
    later hears the newest recorded epoch (disk_epoch) before anything else."""
    url = f"memory://qd{next(_names)}"

    async def story() -> None:
        hive0, local0 = hive_at(tmp_path, "n0", 2)
        node0 = Node(hive0)
        first = QuorumDisk(Config(url, 0), node0, local0, lambda: None)  # type: ignore[arg-type]
        first.record_epoch(5)
        assert first.log is None, "not the owner: nothing is written"
        await win(first)
        assert node0.fed == ["membership.disk_epoch"] and node0.fed_args == [{"epoch": 1}]  # the hive's epoch
        assert first.log is not None
        first.record_epoch(7)
        generation = first.log.generation
        first.record_epoch(6)  # older than what the disk records: no write
        assert first.log.generation == generation and first.log.epoch == 7
        assert DiskLog.open(open_device(url, initiator="reader")).epoch == 7

        hive1, local1 = hive_at(tmp_path, "n1", 2)
        node1 = Node(hive1, 1)
        second = QuorumDisk(Config(url, 1), node1, local1, lambda: None)  # type: ignore[arg-type]
        await win(second)
        assert node1.fed_args[-1] == {"epoch": 7} and node1.fed[-1] == "membership.disk_epoch"
        second.append(3, 8, ops_for(3))  # an update of the next round is logged after the recorded epoch
        assert second.log is not None and second.log.last_seq == 3 and second.log.epoch == 8

    run(story())
