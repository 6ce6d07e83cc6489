"""Targets for the hw tests: the in-memory device (SPC and tgt modes) and a real tgtd over libiscsi.

``tgtd`` is session-scoped: one private tgtd on 127.0.0.1 (own control and
portal ports) for the whole run, killed by pid in ``finally``; every test that
uses it gets a fresh LUN.  Without tgtd or libiscsi the tgtd tests are skipped
locally and FAIL under CI (``CI`` set), like the heartbeat C extension.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wolfpack.hw import memory
from wolfpack.hw.device import Disk, open_device
from wolfpack.hw.tgtd import Tgtd, available

KINDS = ("spc", "tgt_compat", "tgtd")
_names = itertools.count()


def missing_target() -> str | None:
    problem = available()
    if problem is None:
        from wolfpack.hw.iscsi import library

        try:
            library()
        except Exception as error:
            problem = str(error)
    return problem


@pytest.fixture(scope="session")
def tgtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    problem = missing_target()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the tgtd tests cannot run ({problem}); CI requires them: scripts/install installs tgt "
                        "and libiscsi7")
        pytest.skip(f"tgtd tests skipped ({problem}); they fail under CI")
    target = Tgtd(tmp_path_factory.mktemp("tgtd"))
    try:
        target.start()
        yield target
    finally:
        target.stop()


@dataclass
class Target:
    """One shared disk to test against, and how it behaves."""

    kind: str
    url: str
    opener: Callable[[str], Disk]

    @property
    def tgt(self) -> bool:
        """Behaves like tgt (the real one or the in-memory device in tgt_compat mode)."""
        return self.kind != "spc"

    @property
    def memory(self) -> memory.MemoryLun | None:
        if not self.url.startswith("memory://"):
            return None
        return memory.lun(self.url.removeprefix("memory://"))

    def open(self, node: str) -> Disk:
        return self.opener(node)


def make_target(kind: str, request: pytest.FixtureRequest) -> Target:
    if kind == "tgtd":
        target: Tgtd = request.getfixturevalue("tgtd")
        url = target.new_lun()
    else:
        name = f"t{next(_names)}"
        memory.lun(name, tgt_compat=kind == "tgt_compat")
        request.addfinalizer(lambda: memory.forget(name))
        url = f"memory://{name}"
    disks: list[Disk] = []

    def opener(node: str) -> Disk:
        disk = open_device(url, initiator=f"iqn.2026-01.org.wolfpack.test:{node}", timeout_ms=2_000)
        disks.append(disk)
        return disk

    def close_all() -> None:
        for disk in disks:
            disk.close()

    request.addfinalizer(close_all)
    return Target(kind, url, opener)


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest) -> Target:
    """Every kind of target: the conformance suite runs each test against all three."""
    return make_target(request.param, request)


@pytest.fixture(params=("spc", "tgtd"))
def pr_target(request: pytest.FixtureRequest) -> Target:
    return make_target(request.param, request)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
