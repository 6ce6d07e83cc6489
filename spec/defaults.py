"""Every default value of Wolfpack, one named constant each, with its source.

Times are integers in milliseconds.  Sources are the MSCS/WSFC property
documentation (learn.microsoft.com, "previous-versions/windows/desktop/mscs")
and KB articles, as collected in ``shared/reference/mscs-algorithms.md`` §1.
"""

from __future__ import annotations

from enum import IntEnum

MS = 1
SECOND = 1000 * MS
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# --- resources ---------------------------------------------------------------

#: Maximum gap between status reports of a pending Online/Offline before the
#: resource monitor calls Terminate.  MSCS Resources.PendingTimeout = 180000 ms.
PENDING_TIMEOUT_MS = 180 * SECOND

#: Upper bound on any entry-point call before deadlock handling.
#: MSCS DeadlockTimeout = 300000 ms.
DEADLOCK_TIMEOUT_MS = 300 * SECOND

#: Cheap health check period.  MSCS ResourceTypes.LooksAlivePollInterval = 5000 ms.
LOOKS_ALIVE_INTERVAL_MS = 5 * SECOND

#: Thorough health check period.  MSCS ResourceTypes.IsAlivePollInterval = 60000 ms.
IS_ALIVE_INTERVAL_MS = 60 * SECOND

#: Smallest poll interval a resource may ask for.  MSCS Resources.LooksAlivePollInterval (minimum 10 ms).
MIN_POLL_INTERVAL_MS = 10 * MS


class RestartAction(IntEnum):
    """MSCS Resources.RestartAction values (CLUSTER_RESOURCE_RESTART_ACTION)."""

    DONT_RESTART = 0  # ClusterResourceDontRestart: stay Failed
    RESTART_NO_NOTIFY = 1  # ClusterResourceRestartNoNotify: restart, never fail the group over
    RESTART_NOTIFY = 2  # ClusterResourceRestartNotify: restart, then fail the group over


#: MSCS Resources.RestartAction default = ClusterResourceRestartNotify (2).
RESTART_ACTION = RestartAction.RESTART_NOTIFY

#: Restarts allowed within RESTART_PERIOD_MS.  MSCS Resources.RestartThreshold = 3.
RESTART_THRESHOLD = 3

#: Window in which RESTART_THRESHOLD is counted.  MSCS Resources.RestartPeriod = 900000 ms (15 min).
RESTART_PERIOD_MS = 15 * MINUTE

#: Pause between a failure and the local restart.  WSFC RestartDelay = 500 ms.
RESTART_DELAY_MS = 500 * MS

#: Time in Failed before another online attempt.  MSCS Resources.RetryPeriodOnFailure
#: = 0x36EE80 = 3600000 ms (1 h).
RETRY_PERIOD_ON_FAILURE_MS = 1 * HOUR

# --- groups ------------------------------------------------------------------

#: MSCS Groups.FailoverThreshold default 0xFFFFFFFF means "number of nodes - 1".
#: Wolfpack spells that as this sentinel; :func:`failover_threshold` resolves it.
FAILOVER_THRESHOLD_NODES_MINUS_ONE = -1

#: Window for the failover threshold.  MSCS Groups.FailoverPeriod = 6 h.
FAILOVER_PERIOD_MS = 6 * HOUR


class FailbackPolicy(IntEnum):
    """MSCS Groups.AutoFailbackType values."""

    PREVENT = 0  # ClusterGroupPreventFailback
    ALLOW = 1  # ClusterGroupAllowFailback


#: MSCS Groups.AutoFailbackType default = ClusterGroupPreventFailback (0).
FAILBACK_POLICY = FailbackPolicy.PREVENT

#: MSCS Groups.FailbackWindowStart/End default -1 (no window: fail back at any hour).
FAILBACK_WINDOW_NONE = -1

#: Failback attempts allowed per failover period (WSFC has no direct knob; the
#: group's failover threshold is the natural bound).  Wolfpack default: 1 attempt.
FAILBACK_ATTEMPT_LIMIT = 1


def failover_threshold(configured: int, nodes: int) -> int:
    """Resolve MSCS's "nodes - 1" default for a cluster of ``nodes`` nodes."""
    if configured == FAILOVER_THRESHOLD_NODES_MINUS_ONE:
        return max(nodes - 1, 0)
    return configured


# --- nodes and membership ------------------------------------------------------

#: Heartbeat period.  MSCS 1.2 s (KB892422); WSFC SameSubnetDelay 1000 ms.
#: Wolfpack aims lower (100 ms) on its own timer thread; see the runtime.
HEARTBEAT_PERIOD_MS = 100 * MS

#: Missed periods on every network before a peer is suspected.
#: WSFC SameSubnetThreshold = 5 (MSCS used 6 on all interfaces, KB892422).
HEARTBEAT_MISSED_THRESHOLD = 5

#: Collection time of one regroup round.  Wolfpack default, sized to its 100 ms
#: heartbeats; WSFC's ClusSvcRegroupStageTimeout is 5 s at 1-s heartbeats.
REGROUP_STAGE_MS = 100 * MS

#: Fruitless regroup rounds before a node halts instead of risking a split.
#: Wolfpack default (MSCS's regroup has a fixed number of stages).
REGROUP_MAX_ROUNDS = 2

#: Scheduling jitter the heartbeat and renewal timers are allowed (GC pauses,
#: a busy machine).  Wolfpack default; the timing obligations budget for it.
JITTER_MS = 200 * MS

# --- quorum disk arbitration ----------------------------------------------------

#: How long a node that suspects its peers waits before it arbitrates for the
#: quorum.  WSFC QuorumArbitrationTimeMin/Max are 7-20 s; Wolfpack default 7 s.
QUORUM_ARBITRATION_WAIT_MS = 7 * SECOND

#: Period at which the quorum owner re-reserves the disk (defender).
#: MSCS: about 3 s (FTCS'98, KB309186).
RENEW_PERIOD_MS = 3 * SECOND

#: How long a challenger waits after a bus reset before it reserves.
#: MSCS: about 10 s (Veritas SFW guide on MSCS arbitration).
CHALLENGE_WAIT_MS = 10 * SECOND

#: Longest wait for the answer to a RESERVE before the reservation counts as
#: lost.  Wolfpack default, so that renew + jitter + 3 x this < challenge wait.
RESERVE_TIMEOUT_MS = 1 * SECOND

#: Under disk quorum, how long regroup rounds may go on without installing a
#: membership before the node halts: long enough for a challenge (reset, wait,
#: reserve) to end (timing obligation disk_rounds_outlast_arbitration).
#: Wolfpack default.
DISK_REGROUP_WINDOW_MS = 15 * SECOND

#: Under disk quorum, the survivors' wait before they take over the groups of
#: nodes left out: a node cut off from the disk owner halts only when it loses
#: its challenge, after the challenge wait (timing obligation
#: disk_cut_off_halts_before_takeover).  Wolfpack default; SCSI-3 storage
#: fencing (the hw layer) is what makes a shorter wait safe.
DISK_TAKEOVER_WAIT_MS = 14 * SECOND

#: How long the survivors of a regroup wait before they bring the groups of the
#: nodes left out online: by then those nodes' resources are stopped, by the
#: lease their monitors enforce (timing obligations
#: stalled_owner_stops_before_takeover, left_out_member_stops_before_takeover).
#: Wolfpack default, the counterpart of MSCS's challenge window (O6): 500 ms, the
#: shortest round value both obligations allow at the default lease, kill bound,
#: heartbeat period and jitter (they need more than 250 and 450 ms); 700 ms
#: until the lease was enforced (issue 14).
TAKEOVER_WAIT_MS = 500 * MS

# --- the lease the resource monitors enforce -----------------------------------

#: How long a node's resources may run after the node last heard a quorum of its
#: membership (its daemon renews the lease every heartbeat period while it is a
#: member of a quorate membership; a stalled, deadlocked or isolated daemon does
#: not, and its monitors terminate every resource when the lease lapses).
#: Wolfpack default: two heartbeat periods and the jitter, with room to spare
#: (timing obligation lease_outlasts_its_renewal).
LEASE_MS = 500 * MS

#: The monitors' bound from the end of a lease (lapsed, or revoked by the
#: heartbeat thread) to the last process of every resource gone; the monitors
#: measure it at each lapse and report it.  Wolfpack default.
LEASE_KILL_MS = 150 * MS

#: How often a monitor looks at the lease (part of LEASE_KILL_MS).  Wolfpack default.
LEASE_POLL_MS = 10 * MS

# --- fencing (STONITH) -----------------------------------------------------------

#: Whether the survivors fence a lost owner before they take over its groups
#: (``cluster.fencing``: "off" or "required").  Wolfpack default: off, as a
#: cluster has no fence device until one is configured; the lease and the
#: quorum protect a stalled or cut-off daemon, fencing also a frozen node.
FENCING_REQUIRED = False

#: After a failed fence, how long the coordinator waits before it tries again
#: (the groups of the node stay offline meanwhile).  Pacemaker retries a failed
#: fence too; Wolfpack default.
FENCE_RETRY_MS = 10 * SECOND
