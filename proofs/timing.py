"""Timing obligations: the inequalities a cluster configuration must satisfy.

Safety never depends on these (the machines are proved for every parameter
value); liveness and availability do.  Each obligation is linear once the
configuration's numbers are fixed, with the scheduling jitter a real
variable in ``[0, jitter_ms]``; ``wolfpack verify`` proves each one with z3
over the reals for every jitter in that range, and names a violated one with
its numbers.

The configuration is a TOML file with the keys of :data:`VARIABLES` (all
optional, integers, milliseconds unless the name says otherwise), or a
``wolfpackd`` node file, whose ``[timing]`` table is read; missing keys take
Wolfpack's defaults.  Loading and the plain arithmetic check
(:func:`check`) need no z3, so the daemon can check its configuration at
start without importing the proof engine.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wolfpack.errors import ConfigError
from wolfpack.spec import defaults as d


@dataclass(frozen=True)
class Variable:
    name: str
    default: int
    doc: str
    lo: int = 0


VARIABLES: tuple[Variable, ...] = (
    Variable("heartbeat_period_ms", d.HEARTBEAT_PERIOD_MS, "period between heartbeats", lo=1),
    Variable("missed_heartbeats", d.HEARTBEAT_MISSED_THRESHOLD, "missed periods before a peer is suspected", lo=1),
    Variable("regroup_stage_ms", d.REGROUP_STAGE_MS, "collection time of a regroup round", lo=1),
    Variable("regroup_max_rounds", d.REGROUP_MAX_ROUNDS, "fruitless regroup rounds before a node halts", lo=1),
    Variable("takeover_wait_ms", d.TAKEOVER_WAIT_MS, "survivors' wait before taking over the groups of nodes "
             "left out"),
    Variable("jitter_ms", d.JITTER_MS, "largest delay of a timer beyond its deadline"),
    Variable("quorum_arbitration_wait_ms", d.QUORUM_ARBITRATION_WAIT_MS, "wait before arbitrating for the quorum",
             lo=1),
    Variable("pending_timeout_ms", d.PENDING_TIMEOUT_MS, "PendingTimeout of resources", lo=1),
    Variable("deadlock_timeout_ms", d.DEADLOCK_TIMEOUT_MS, "DeadlockTimeout of resource entry points", lo=1),
    Variable("restart_delay_ms", d.RESTART_DELAY_MS, "RestartDelay"),
    Variable("restart_threshold", d.RESTART_THRESHOLD, "RestartThreshold (restarts per RestartPeriod)"),
    Variable("restart_period_ms", d.RESTART_PERIOD_MS, "RestartPeriod", lo=1),
    Variable("renew_period_ms", d.RENEW_PERIOD_MS, "quorum disk re-reservation period (defender)", lo=1),
    Variable("challenge_wait_ms", d.CHALLENGE_WAIT_MS, "challenger's wait after a bus reset", lo=1),
    Variable("reserve_timeout_ms", d.RESERVE_TIMEOUT_MS, "longest wait for the answer to a RESERVE", lo=1),
    Variable("disk_regroup_window_ms", d.DISK_REGROUP_WINDOW_MS, "disk quorum: how long regroup rounds may go on "
             "before a node halts", lo=1),
    Variable("disk_takeover_wait_ms", d.DISK_TAKEOVER_WAIT_MS, "disk quorum: survivors' wait before taking over "
             "the groups of nodes left out"),
    Variable("lease_ms", d.LEASE_MS, "how long a node's resources may run after it last heard a quorum (the lease "
             "its monitors enforce)", lo=1),
    Variable("lease_kill_ms", d.LEASE_KILL_MS, "the monitors' bound from the end of a lease to every resource's "
             "processes gone (measured and reported at each lapse)", lo=1),
)
BY_NAME = {v.name: v for v in VARIABLES}


Products = tuple[tuple[str, ...], ...]  # a sum of products of variable names


@dataclass(frozen=True)
class Obligation:
    """``sum of products of lhs`` (< or <=) ``sum of products of rhs`` (or one variable); the jitter, if it
    appears, ranges over [0, jitter_ms]."""

    name: str
    lhs: Products
    op: str  # "<" or "<="
    rhs: str | Products
    why: str

    @property
    def right(self) -> Products:
        return ((self.rhs,),) if isinstance(self.rhs, str) else self.rhs

    def text(self) -> str:
        return _sum_text(self.lhs) + f" {self.op} " + _sum_text(self.right)

    def values(self, config: Mapping[str, int]) -> tuple[int, int]:
        return _sum(self.lhs, config), _sum(self.right, config)

    def holds(self, config: Mapping[str, int]) -> bool:
        left, right = self.values(config)
        return left < right if self.op == "<" else left <= right

    def numbers(self, config: Mapping[str, int]) -> str:
        left, right = self.values(config)
        verdict = "holds" if self.holds(config) else "VIOLATED"
        return f"{_shown(self.lhs, config)} {self.op} {_shown(self.right, config)} ({verdict}, slack {right - left} ms)"

    def remedy(self, config: Mapping[str, int]) -> str:
        """Which settings to change, and to what, for a violated obligation: a variable that appears once, alone
        in its term, can be raised on the right or lowered on the left (each alone, the others kept)."""
        left, right = self.values(config)
        short = left - right + (1 if self.op == "<" else 0)
        if short <= 0:
            return ""
        uses = [name for product in (*self.lhs, *self.right) for name in product]
        options = []
        for product in self.right:
            if len(product) == 1 and uses.count(product[0]) == 1:
                name = product[0]
                options.append(f"raise {name} (timing.{name} in a node file) to at least {config[name] + short}")
        for product in self.lhs:
            if (len(product) == 1 and uses.count(product[0]) == 1
                    and config[product[0]] - short >= BY_NAME[product[0]].lo):
                name = product[0]
                options.append(f"lower {name} (timing.{name}) to at most {config[name] - short}")
        return "to fix it, " + ", or ".join(dict.fromkeys(options)) if options else ""


def _sum_text(products: Products) -> str:
    return " + ".join(" * ".join(p) for p in products)


def _sum(products: Products, config: Mapping[str, int]) -> int:
    total = 0
    for product in products:
        term = 1
        for name in product:
            term *= config[name]
        total += term
    return total


def _shown(products: Products, config: Mapping[str, int]) -> str:
    terms = " + ".join(" * ".join(str(config[n]) for n in p) for p in products)
    return f"{terms} = {_sum(products, config)}" if len(products) > 1 or len(products[0]) > 1 else terms


OBLIGATIONS: tuple[Obligation, ...] = (
    Obligation("lease_outlasts_its_renewal",
               (("heartbeat_period_ms",), ("heartbeat_period_ms",), ("jitter_ms",)), "<", "lease_ms",
               "a member renews its lease every heartbeat period, from a quorum's heartbeats at most a period old, "
               "late by up to the jitter: a healthy member's lease never lapses"),
    Obligation("stalled_owner_stops_before_takeover",
               (("lease_ms",), ("lease_kill_ms",), ("heartbeat_period_ms",), ("heartbeat_period_ms",)), "<",
               (("heartbeat_period_ms", "missed_heartbeats"), ("regroup_stage_ms",), ("takeover_wait_ms",)),
               "a node that stops (stalled, deadlocked, paused) or stops hearing a quorum at t renewed its lease for "
               "no later than t + lease_ms, and its monitors stop its resources within lease_kill_ms; the others "
               "heard its last heartbeat after t - heartbeat_period_ms, suspect it at the threshold's tick (no "
               "sooner than (missed_heartbeats - 1) periods after that heartbeat), regroup for a stage and wait "
               "the take-over wait before they start its groups"),
    Obligation("left_out_member_stops_before_takeover",
               (("heartbeat_period_ms",), ("jitter_ms",), ("lease_kill_ms",)), "<", "takeover_wait_ms",
               "a member left out of a membership that still hears the others (a one-way or transport-only cut) "
               "gets the new epoch in the first heartbeat after the install (sent out of turn, or a period later, "
               "late by up to the jitter, if that one is lost); its heartbeat thread revokes its lease at once "
               "and its monitors stop its resources within lease_kill_ms, before the survivors start them"),
    Obligation("stalled_owner_stops_before_disk_takeover",
               (("lease_ms",), ("lease_kill_ms",), ("heartbeat_period_ms",), ("heartbeat_period_ms",)), "<",
               (("heartbeat_period_ms", "missed_heartbeats"), ("regroup_stage_ms",), ("disk_takeover_wait_ms",)),
               "stalled_owner_stops_before_takeover under disk quorum"),
    Obligation("detection_before_arbitration",
               (("heartbeat_period_ms", "missed_heartbeats"), ("jitter_ms",)), "<", "quorum_arbitration_wait_ms",
               "a failed node is suspected before the survivors arbitrate for the quorum"),
    Obligation("pending_within_deadlock", (("pending_timeout_ms",),), "<=", "deadlock_timeout_ms",
               "a hung pending Online/Offline is terminated before deadlock handling recycles the monitor"),
    Obligation("restarts_fit_period", (("restart_delay_ms", "restart_threshold"),), "<", "restart_period_ms",
               "all allowed restarts (with their delays) fit in one RestartPeriod, so the threshold can be reached"),
    Obligation("renew_before_challenge",
               (("renew_period_ms",), ("jitter_ms",), ("reserve_timeout_ms",), ("reserve_timeout_ms",),
                ("reserve_timeout_ms",)), "<", "challenge_wait_ms",
               "the quorum owner renews its reservation, command and answer included, before a challenger's "
               "wait ends (disk quorum)"),
    Obligation("disk_rounds_outlast_arbitration",
               (("regroup_stage_ms",), ("challenge_wait_ms",), ("reserve_timeout_ms",), ("reserve_timeout_ms",),
                ("reserve_timeout_ms",), ("jitter_ms",)), "<", "disk_regroup_window_ms",
               "a coordinator that challenges for the quorum disk is still in its regroup rounds when the "
               "challenge ends (reset sent, wait, reserve answered), so a won challenge installs a membership"),
    Obligation("disk_cut_off_halts_before_takeover",
               (("regroup_stage_ms",), ("regroup_stage_ms",), ("regroup_stage_ms",), ("challenge_wait_ms",),
                ("reserve_timeout_ms",), ("reserve_timeout_ms",), ("reserve_timeout_ms",), ("jitter_ms",)), "<",
               "disk_takeover_wait_ms",
               "a node cut off from the disk owner (detected no later than the survivors detect it) fails a round, "
               "loses its challenge and halts, and its round's empty proposal halts the rest of its side, before "
               "the survivors bring its groups online (disk quorum)"),
)


def default_config() -> dict[str, int]:
    return {v.name: v.default for v in VARIABLES}


def parse(data: Mapping[str, Any], source: str = "configuration") -> dict[str, int]:
    """Validate a mapping of timing values; report every problem at once."""
    problems = []
    config = default_config()
    for key, value in data.items():
        var = BY_NAME.get(key)
        if var is None:
            problems.append(f"unknown key {key!r} (known keys: {', '.join(BY_NAME)})")
        elif not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{key} must be an integer ({var.doc}), got {type(value).__name__} {value!r}")
        elif value < var.lo:
            problems.append(f"{key} must be >= {var.lo} ({var.doc}), got {value}")
        else:
            config[key] = value
    if problems:
        raise ConfigError(f"{source} has {len(problems)} problem(s):\n  " + "\n  ".join(problems)
                          + "\nfix these keys; the timing keys are listed in docs/verification.md")
    return config


def load(path: Path) -> dict[str, int]:
    """Read and validate a TOML timing configuration."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; give an existing TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the syntax") from exc
    if any(isinstance(v, dict) for v in data.values()):  # a wolfpackd node file: its [timing] table
        data = data.get("timing", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [timing] must be a table of timing keys")
    return parse(data, str(path))


def check(config: Mapping[str, int]) -> list[str]:
    """The violated obligations, each with its inequality and numbers (plain arithmetic, no z3)."""
    return [f"{o.name}: {o.text()}: {o.numbers(config)}" + (f"; {o.remedy(config)}" if o.remedy(config) else "")
            for o in OBLIGATIONS if not o.holds(config)]
