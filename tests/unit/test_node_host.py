"""The node's work loop (``runtime/node/host.py``): a command that fails skips the rest of its step, also when
it failed after the node suspended for it (the daemon's database transfer that times out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wolfpack.runtime.node.host import ApplyFailed, MachineHost, Routed
from wolfpack.spec.core import Emitted


@dataclass
class _Last:
    source: str
    dest: str
    outcome: str = "moved"


class _Machine:
    """A stand-in machine: ``install`` asks for the database, then sends and reports (as the membership
    machine's install step does); every other event is recorded."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.last: _Last | None = None

    def step(self, trigger: str, **args: Any) -> list[Emitted]:
        self.heard.append(trigger)
        self.last = _Last("A", "B")
        if trigger == "install":
            return [Emitted("command", "load_database"), Emitted("send", "commit", {"to": -1}),
                    Emitted("report", "installed")]
        if trigger == "reserve_ok":
            return [Emitted("report", "won")]
        return []


class _Host(MachineHost):
    def __init__(self, suspend_for_load: bool) -> None:
        self.node_id = 0
        self.machines = {"membership": _Machine(), "failover": _Machine(),  # type: ignore[dict-item]
                         "arbitration": _Machine()}
        self.suspend_for_load = suspend_for_load
        self.sent: list[str] = []

    def send(self, machine: str, name: str, to: int, args: Mapping[str, Any]) -> None:
        self.sent.append(name)

    def route(self, machine: str, report: Emitted) -> Routed:
        if report.name == "won":  # the daemon reads the quorum log before the membership machine hears it
            self.suspend()
            return [("membership", "disk_won", {})]
        return [("failover", report.name, {})]

    def command(self, machine: str, effect: Emitted) -> None:
        if not self.suspend_for_load:
            raise ApplyFailed("database_unavailable", {}, "the sponsor is down")
        self.suspend()


def _heard(host: _Host, machine: str) -> list[str]:
    return host.machines[machine].heard  # type: ignore[attr-defined,no-any-return]


def test_a_command_that_fails_skips_the_rest_of_its_step() -> None:
    host = _Host(suspend_for_load=False)
    host.feed("membership", "install")
    assert _heard(host, "membership") == ["install", "database_unavailable"]
    assert host.sent == [] and _heard(host, "failover") == []


def test_a_suspended_command_that_fails_skips_the_rest_of_its_step() -> None:
    host = _Host(suspend_for_load=True)
    host.feed("membership", "install")
    host.feed("membership", "later")  # waits: the node is suspended
    assert host.suspended and _heard(host, "membership") == ["install"]
    host.resume_failed(ApplyFailed("database_unavailable", {}, "the sponsor did not answer"))
    assert _heard(host, "membership") == ["install", "database_unavailable", "later"]
    assert host.sent == [] and _heard(host, "failover") == []


def test_a_suspended_command_that_succeeds_goes_on_with_its_step() -> None:
    host = _Host(suspend_for_load=True)
    host.feed("membership", "install")
    host.resume()
    assert host.sent == ["commit"] and _heard(host, "failover") == ["installed"]


def test_events_fed_before_a_suspension_wait_for_what_resume_runs_first() -> None:
    host = _Host(suspend_for_load=True)
    host.feed("arbitration", "reserve_ok")
    assert host.suspended and _heard(host, "membership") == []
    host.resume(first=lambda: host.feed("membership", "disk_epoch"))
    assert _heard(host, "membership") == ["disk_epoch", "disk_won"]


def test_events_fed_before_a_suspension_are_dropped_when_it_fails() -> None:
    """The quorum log could not be read after the disk was won: the membership machine hears that the disk
    is lost, never that it was won."""
    host = _Host(suspend_for_load=True)
    host.feed("arbitration", "reserve_ok")
    host.resume_failed(ApplyFailed("disk_lost", {}, "the quorum log cannot be read", machine="membership"))
    assert _heard(host, "membership") == ["disk_lost"] and not host.suspended
