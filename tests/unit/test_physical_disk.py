"""Physical Disk on an in-memory SPC-3 LUN (tgt's deviations on): online takes the disk with a persistent
reservation and fences the node that had it, whose writes then get RESERVATION CONFLICT; offline gives it up.
With real iSCSI sessions: ``tests/integration/test_disk_quorum.py``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from wolfpack.errors import ResourceTypeError
from wolfpack.hw import memory
from wolfpack.hw.arbiter import pr_key
from wolfpack.hw.device import Disk
from wolfpack.hw.memory import MemoryTransport
from wolfpack.runtime.resource_types import physical_disk
from wolfpack.runtime.resource_types.base import EntryPointFailed, Operation, ResourceContext, load_type

URL = "iscsi://10.0.0.9:3260/iqn.2026-01.test:data/1"
_luns = itertools.count()


@pytest.fixture
def lun(monkeypatch: pytest.MonkeyPatch) -> memory.MemoryLun:
    """Every session the type opens goes to one in-memory LUN (the URL is only checked)."""
    unit = memory.lun(f"pd{next(_luns)}", tgt_compat=True)
    monkeypatch.setattr(physical_disk, "open_device",
                        lambda url, initiator: Disk(MemoryTransport(unit, initiator)))
    monkeypatch.setenv("WOLFPACK_CLUSTER_NAME", "lab")
    return unit


def on_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, node: int, logs: list[str]) -> Any:
    monkeypatch.setenv("WOLFPACK_NODE_ID", str(node))
    work = tmp_path / f"n{node}"
    work.mkdir(exist_ok=True)
    ctx = ResourceContext("data/disk", work, 100, 100, 1000, log=lambda message, level: logs.append(message))
    resource = load_type("Physical Disk")("data/disk", {"disk": URL}, ctx)
    resource.open()
    return resource


def test_the_type_is_registered_and_checks_its_disk_url() -> None:
    assert load_type("Physical Disk") is physical_disk.PhysicalDisk
    ctx = ResourceContext("d", Path("/tmp"), 1, 1, 1)
    with pytest.raises(ResourceTypeError, match="exists inside one process only"):
        physical_disk.PhysicalDisk("d", {"disk": "memory://x"}, ctx)


def test_online_fences_the_old_owner_whose_writes_are_then_refused(lun: memory.MemoryLun, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    old = on_node(monkeypatch, tmp_path, 0, logs)
    old.online(Operation("Online"))
    assert old.looks_alive() and old.is_alive()
    new = on_node(monkeypatch, tmp_path, 1, logs)  # the failover manager moved the group: node 0 is gone
    new.online(Operation("Online"))
    assert any("fenced node 0" in line for line in logs)
    assert new.looks_alive() and new.is_alive()
    assert lun.registrations and set(lun.registrations.values()) == {pr_key("lab", 1)}
    assert not old.looks_alive() and not old.is_alive()
    assert any("RESERVATION CONFLICT" in line and "this node was fenced" in line for line in logs)
    new.offline(Operation("Offline"))
    assert not lun.registrations and lun.pr_holder is None
    old.terminate()


def test_a_disk_another_cluster_registered_is_not_taken(lun: memory.MemoryLun, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    stranger = Disk(MemoryTransport(lun, "stranger"))
    stranger.register_ignore(0x1234)
    with pytest.raises(EntryPointFailed, match="another cluster or host uses this disk") as failed:
        on_node(monkeypatch, tmp_path, 0, []).online(Operation("Online"))
    assert failed.value.severity == "fatal"


def test_without_the_daemon_s_environment_open_fails_hard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WOLFPACK_NODE_ID", raising=False)
    ctx = ResourceContext("d", tmp_path, 1, 1, 1)
    with pytest.raises(EntryPointFailed, match="runs under wolfpackd"):
        physical_disk.PhysicalDisk("d", {"disk": URL}, ctx).open()
