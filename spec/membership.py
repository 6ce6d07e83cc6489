"""Membership and regroup (REQUIREMENTS N1, M1, O2, O4, O6, Q2).

One instance per node.  Forming, joining and recovering from a failure are
one mechanism: a *regroup round*.  A round has a number, the epoch it
proposes.  Every node that takes part broadcasts its status: the nodes it can
hear (its connectivity row).  When the collection time is over, the
*coordinator* (among the nodes that answered and that this node hears and is
heard by, as the rows of the round say: the one with the newest installed
epoch, the lowest id among equals) prunes the answering nodes to a fully
connected set (Tandem's connectivity matrix, greedily from itself: first the
nodes at its epoch, then the others, each in id order), asks the quorum rule whether that
set may survive, and proposes it with ``install``.  A node accepts at most one
proposal per round, never one of an older round, and acknowledges it.  The
coordinator commits once the quorum rule holds for the acknowledgements:

* Majority Node Set: acknowledgements from more than half of the configured
  nodes.  Two committed sets of one round would need two disjoint majorities.
* Disk quorum: the coordinator holds the quorum disk (the arbitration machine
  says so), whatever the head count.  The holder records the epoch of every
  round it proposes or acknowledges on the disk (``record_epoch``) before
  the round can be committed, and a node that wins the disk starts its
  rounds above the newest epoch recorded there (``disk_epoch``, which the
  shell feeds before ``disk_won``): epochs never repeat although the
  disk's holders change.

A committed set is installed with its round as the new epoch.  A node left
out of the set, or whose coordinator cannot reach quorum, **halts**: it stops
every resource and leaves the cluster (N4).  A node that hears nothing within
the wait starts the next round; after ``max_rounds`` fruitless rounds it
halts too.

Messages follow ``docs/design/cluster-protocols.md``: a set of nodes travels
as one 0/1 field per node (``alive0..``, ``m0..``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from wolfpack.spec import defaults as d
from wolfpack.spec import quorum
from wolfpack.spec.core import Arg, Effect, Event, Field, Ignore, Invariant, Spec, Transition, all_of, named, negation
from wolfpack.spec.expr import And, Exists, ForAll, If, Implies, Not, Or, Select, Store
from wolfpack.spec.quorum import QuorumKind

DOWN = "Down"
COLLECTING = "Collecting"
PROPOSING = "Proposing"
ACCEPTED = "Accepted"
STABLE = "Stable"
HALTED = "Halted"
STATES = (DOWN, COLLECTING, PROPOSING, ACCEPTED, STABLE, HALTED)
IN_ROUND = (COLLECTING, PROPOSING, ACCEPTED)
RUNNING = (*IN_ROUND, STABLE)

MNS = QuorumKind.MNS
DISK = QuorumKind.DISK



@cache
def make_membership_spec(n: int) -> Spec:
    """The membership machine of one node in a cluster of ``n`` nodes."""
    if n < 1:
        raise ValueError("a cluster has at least one node")
    ks = range(n)

    def vec(e: Any, prefix: str) -> tuple[Any, ...]:
        return tuple(getattr(e, f"{prefix}{k}") == 1 for k in ks)

    def fields_of(prefix: str, values: Any) -> dict[str, int]:
        return {f"{prefix}{k}": If(values[k], 1, 0) for k in ks}

    def my_row(r: Any) -> tuple[Any, ...]:
        """Whom this node hears: configured, not suspected (and itself)."""
        return tuple(Or(k == r.me, And(r.configured[k], Not(r.suspects[k]))) for k in ks)

    def ranks_above_me(r: Any, k: Any) -> Any:
        """Node k comes before this node as a coordinator: a newer installed epoch, or the same and a lower id.
        A node coming back with an older epoch (it was cut off, or down) never coordinates the nodes that went
        on without it: it would prune the set from itself and could leave out a member of the current
        membership whose status it has not heard yet (a TCP link still reconnecting), halting a healthy
        majority's node (issue 15)."""
        return Or(Select(r.epochs, k) > r.epoch, And(Select(r.epochs, k) == r.epoch, k < r.me))

    def coordinator_is_me(r: Any) -> Any:
        """No node that ranks above this one answered that this node and it both hear (their rows of the round): a
        node that hears nobody, or that nobody hears, cannot coordinate the others (it could not form a set with
        them)."""
        return ForAll(ks, lambda k: Implies(And(r.heard[k], Select(r.conn, r.me + k * n), Select(r.conn, r.me * n + k)),
                                            Not(ranks_above_me(r, k))))

    def pruned(r: Any) -> tuple[Any, ...]:
        """Greedy fully connected set from this node: first the nodes at its epoch (the current membership, as
        the coordinator has the newest epoch it hears), then the others, each pass in id order."""
        chosen: list[Any] = [k == r.me for k in ks]

        def connected_to_chosen(k: int) -> Any:
            return ForAll(ks, lambda j: Implies(chosen[j], And(r.conn[j * n + k], r.conn[k * n + j])))

        for current in (True, False):
            for k in ks:
                at_my_epoch = r.epochs[k] >= r.epoch
                candidate = And(r.heard[k], at_my_epoch if current else Not(at_my_epoch))
                chosen[k] = Or(chosen[k], And(candidate, connected_to_chosen(k)))
        return tuple(chosen)

    def sponsor_of(r: Any, members: tuple[Any, ...]) -> tuple[Any, Any]:
        """The member with the newest installed epoch (lowest id among equals) and that epoch: its database
        holds every update committed so far, and members installed at an older epoch load it."""
        best_k: Any = r.me
        best_e: Any = r.epoch
        for k in ks:
            take = And(members[k], Or(r.epochs[k] > best_e, And(r.epochs[k] == best_e, k < best_k)))
            best_k, best_e = If(take, k, best_k), If(take, r.epochs[k], best_e)
        return best_k, best_e

    def proposing(r: Any) -> dict[str, Any]:
        sponsor, base = sponsor_of(r, pruned(r))
        return {"proposal": pruned(r), "sponsor": sponsor, "base": base}

    def may_survive(r: Any, members: tuple[Any, ...]) -> Any:
        return quorum.survives(r.kind, members, r.configured, r.disk_at)

    def committed(r: Any, acks: tuple[Any, ...]) -> Any:
        """MNS: a majority acknowledged; disk: the disk holder acknowledged."""
        return quorum.survives(r.kind, acks, r.configured, r.disk_at)

    def alone(r: Any) -> tuple[Any, ...]:
        return tuple(k == r.me for k in ks)

    # --- updates ------------------------------------------------------------
    def start_round(r: Any, number: Any) -> dict[str, Any]:
        row = my_row(r)
        return {
            "round": number,
            "heard": alone(r),
            "conn": tuple(If(j == r.me, row[k], False) for j in ks for k in ks),
            "disk_at": tuple(And(k == r.me, r.holds_disk) for k in ks),
            "epochs": tuple(If(k == r.me, r.epoch, 0) for k in ks),
            "attempts": r.attempts + 1,
        }

    def record_status(r: Any, e: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
        heard = (base or {}).get("heard", r.heard)
        conn = (base or {}).get("conn", r.conn)
        disk_at = (base or {}).get("disk_at", r.disk_at)
        epochs = (base or {}).get("epochs", r.epochs)
        row = vec(e, "alive")
        return {
            "heard": Store(heard, e.src, True),
            "conn": tuple(If(e.src == j, Or(row[k], conn[j * n + k]), conn[j * n + k]) for j in ks for k in ks),
            "disk_at": Store(disk_at, e.src, e.disk == 1),
            "epochs": Store(epochs, e.src, e.epoch),
        }

    def join_round(r: Any, e: Any) -> dict[str, Any]:
        base = start_round(r, e.round)
        return {**base, **record_status(r, e, base)}

    def hearing_again(r: Any, e: Any) -> dict[str, Any]:
        """Not suspected any more: this node's row of the round hears it again."""
        suspects = Store(r.suspects, e.node, False)
        row = my_row(r.replace(suspects=suspects))
        return {"suspects": suspects, "conn": tuple(If(j == r.me, row[k], r.conn[j * n + k]) for j in ks for k in ks)}

    def suspecting(r: Any, node: Any) -> dict[str, Any]:
        """Start the next round without ``node``."""
        r1 = r.replace(suspects=Store(r.suspects, node, True))
        return {**start_round(r1, r.round + 1), "suspects": r1.suspects, "attempts": 1}

    def status_effect() -> Effect:
        return Effect("send", "status", lambda r, e, r2: {"to": -1, "round": r2.round, "disk": If(r2.holds_disk, 1, 0),
                                                          "epoch": r2.epoch, **fields_of("alive", my_row(r2))})

    COLLECT = (status_effect(), Effect("start_timer", "collect_elapsed", lambda r, e, r2: {"ms": r.stage_ms}))
    REGROUP = (Effect("report", "regroup_started"), *COLLECT)  # leaving Stable: updates wait

    # --- guards ---------------------------------------------------------------
    def newer_round(r: Any, e: Any) -> Any:
        return e.round > r.round

    def same_round(r: Any, e: Any) -> Any:
        return e.round == r.round

    def older_round(r: Any, e: Any) -> Any:
        return e.round < r.round

    def beyond_epoch(r: Any, e: Any) -> Any:
        return e.round > r.epoch

    def not_beyond_epoch(r: Any, e: Any) -> Any:
        return e.round <= r.epoch

    def from_member(r: Any, e: Any) -> Any:
        return Exists(ks, lambda k: And(k == e.src, r.members[k]))

    def coordinator_commits_alone(r: Any, e: Any) -> Any:
        return And(coordinator_is_me(r), may_survive(r, pruned(r)), committed(r, alone(r)))

    def coordinator_survives(r: Any, e: Any) -> Any:
        return And(coordinator_is_me(r), may_survive(r, pruned(r)), Not(committed(r, alone(r))))

    def coordinator_without_quorum(r: Any, e: Any) -> Any:
        return And(coordinator_is_me(r), Not(may_survive(r, pruned(r))), r.attempts >= r.max_rounds)

    def coordinator_retries(r: Any, e: Any) -> Any:
        return And(coordinator_is_me(r), Not(may_survive(r, pruned(r))), r.attempts < r.max_rounds)

    def another_coordinates(r: Any, e: Any) -> Any:
        return Not(coordinator_is_me(r))

    def acceptable(r: Any, e: Any) -> Any:
        """A proposal of this round or a newer one, not acknowledged yet, from a coordinator that ranks at or above
        this node: its epoch (the proposal's base: the coordinator has the newest epoch of its set) is newer, or
        the same and its id is not higher."""
        return And(e.round >= r.round, e.round > r.acked, e.round > r.epoch,
                   Or(e.base > r.epoch, And(e.base == r.epoch, e.src <= r.me)))

    def includes_me(r: Any, e: Any) -> Any:
        return Exists(ks, lambda k: And(k == r.me, getattr(e, f"m{k}") == 1))

    def accept_includes_me(r: Any, e: Any) -> Any:
        return And(acceptable(r, e), includes_me(r, e))

    def accept_excludes_me(r: Any, e: Any) -> Any:
        return And(acceptable(r, e), Not(includes_me(r, e)))

    def not_acceptable(r: Any, e: Any) -> Any:
        return Not(acceptable(r, e))

    def ack_commits(r: Any, e: Any) -> Any:
        acks = Store(r.acks, e.src, True)
        return And(e.round == r.round, committed(r, acks))

    def ack_counts(r: Any, e: Any) -> Any:
        return And(e.round == r.round, Not(committed(r, Store(r.acks, e.src, True))))

    def ack_stale(r: Any, e: Any) -> Any:
        return e.round != r.round

    def commit_matches(r: Any, e: Any) -> Any:
        return And(e.round == r.acked, e.src == r.proposer)

    def commit_stale(r: Any, e: Any) -> Any:
        return Not(commit_matches(r, e))

    def suspect_is_member(r: Any, e: Any) -> Any:
        return Exists(ks, lambda k: And(k == e.node, r.members[k]))

    def suspect_is_outsider(r: Any, e: Any) -> Any:
        return Not(suspect_is_member(r, e))

    def suspect_in_proposal(r: Any, e: Any) -> Any:
        return Exists(ks, lambda k: And(k == e.node, r.proposal[k]))

    def wants_disk(r: Any, e: Any) -> Any:
        return And(r.kind == DISK, Not(r.holds_disk))

    def rounds_left(r: Any, e: Any) -> Any:
        return r.attempts < r.max_rounds

    def rounds_exhausted(r: Any, e: Any) -> Any:
        return r.attempts >= r.max_rounds

    def log_is_newer(r: Any, e: Any) -> Any:
        """Disk quorum, and the quorum log this node just replayed records a newer epoch than its own."""
        return And(r.kind == DISK, e.epoch > r.epoch)

    def caught_up(r: Any, e: Any) -> dict[str, Any]:
        """After the quorum log's replay (disk quorum: ``disk_epoch`` follows a won disk), this node's database
        holds every update committed up to the newest epoch recorded on the disk: in a round, its epoch (the
        one its statuses carry, by which the round picks its coordinator and its sponsor) is that one, if newer.
        Its installed membership, and the epoch its heartbeats carry, stay as they are until the round installs
        one."""
        newer = log_is_newer(r, e)
        return {"epoch": If(newer, e.epoch, r.epoch), "acked": If(And(newer, e.epoch > r.acked), e.epoch, r.acked)}

    def round_after_replay(r: Any, e: Any, number: Any) -> dict[str, Any]:
        """Start round ``number`` caught up with the quorum log (not a fruitless round: it does not count)."""
        up = caught_up(r, e)
        return {**start_round(r.replace(**up), number), **up, "attempts": r.attempts}

    def late_ack_of_my_install(r: Any, e: Any) -> Any:
        """An acknowledgement, from a member, of the membership this node coordinated and installed."""
        return And(e.round == r.epoch, r.proposer == r.me, Exists(ks, lambda k: And(k == e.src, r.members[k])))

    def install(r: Any, members: tuple[Any, ...], epoch: Any) -> dict[str, Any]:
        return {"members": members, "epoch": epoch, "attempts": 0}

    installed = Effect("report", "installed", lambda r, e, r2: {"epoch": r2.epoch, **fields_of("m", r2.members)})
    # installed under disk quorum without holding the disk: another member holds it, so a challenge this node
    # started in a round before the holder's status reached it is given up (it would end W later, lost)
    disk_not_needed = Effect("report", "disk_not_needed", when=lambda r, e: And(r.kind == DISK, Not(r.holds_disk)))
    # under disk quorum the holder of the disk writes the epoch of a round it takes part in on the disk before it
    # acknowledges or proposes it (so before any commit of it): a node that wins the disk later starts its rounds
    # above it (``disk_epoch``), and epochs never repeat although the disk's holders change
    def record_epoch(epoch: Any) -> Effect:
        return Effect("command", "record_epoch", lambda r, e, r2: {"epoch": epoch(r, e)},
                      when=lambda r, e: And(r.kind == DISK, r.holds_disk))

    # a member installed at an older epoch than the sponsor's loads the sponsor's database first (before the
    # report that tells GUM the new membership): a joiner, a node back from a crash, or one left behind
    load = Effect("command", "load_database", lambda r, e, r2: {"sponsor": r2.sponsor},
                  when=lambda r, e: r.epoch < r.base)
    load_now = Effect("command", "load_database", lambda r, e, r2: {"sponsor": r2.sponsor},
                      when=lambda r, e: r.epoch < sponsor_of(r, pruned(r))[1])

    def install_message(r2: Any) -> dict[str, Any]:
        return {"to": -1, "round": r2.round, "sponsor": r2.sponsor, "base": r2.base, **fields_of("m", r2.proposal)}

    halt = Effect("report", "halted")
    cancel_collect = Effect("cancel_timer", "collect_elapsed")
    cancel_wait = Effect("cancel_timer", "install_wait_elapsed")
    wait = Effect("start_timer", "install_wait_elapsed", lambda r, e, r2: {"ms": r.stage_ms * 2})
    halt_update = {"members": (False,) * n}

    rows = [
        Transition("boot", (DOWN,), COLLECTING, update=lambda r, e: start_round(r, r.round + 1), effects=REGROUP,
                   doc="start (form or join): a regroup round past every round this node has seen"),
        Transition("suspect", (STABLE,), COLLECTING, guard=suspect_is_member,
                   update=lambda r, e: suspecting(r, e.node), effects=REGROUP,
                   doc="a member missed its heartbeats on every network: regroup"),
        Transition("suspect", (STABLE,), None, guard=suspect_is_outsider,
                   update=lambda r, e: {"suspects": Store(r.suspects, e.node, True)},
                   doc="not a member: nothing to regroup for"),
        Transition("suspect", (COLLECTING,), COLLECTING, update=lambda r, e: suspecting(r, e.node),
                   effects=(cancel_wait, *COLLECT),
                   doc="a node this node heard when the round began missed its beats: start the next round, whose "
                       "status says whom this node hears now (the rows of a round only ever gain links, so the old "
                       "round would be decided on the old row: a node whose heartbeats stop on every link at once "
                       "is suspected by each peer at its own tick, and a coordinator that suspected one peer first "
                       "kept the other in, halting a healthy majority's member; issue 15, a heartbeat-only cut)"),
        Transition("suspect", (PROPOSING, ACCEPTED), COLLECTING, guard=suspect_in_proposal,
                   update=lambda r, e: suspecting(r, e.node), effects=(cancel_wait, *COLLECT),
                   doc="a node of the proposal missed its beats: the proposal was built on rows that heard it; start "
                       "the next round (the others join it, and the proposal is not committed without this node)"),
        Transition("suspect", (PROPOSING, ACCEPTED), None, guard=negation("suspect_outside_proposal",
                                                                          suspect_in_proposal),
                   update=lambda r, e: {"suspects": Store(r.suspects, e.node, True)},
                   doc="not in the proposal: remember it for the next round"),
        Transition("peer_back", (COLLECTING,), None, update=hearing_again, effects=(status_effect(),),
                   doc="heartbeats from that node again while statuses are collected: tell the others whom this "
                       "node hears now (the rows of the round decide who is pruned, and a node that just came "
                       "back would be left out)"),
        Transition("peer_back", (PROPOSING, ACCEPTED, STABLE), None,
                   update=lambda r, e: {"suspects": Store(r.suspects, e.node, False)},
                   doc="heartbeats from that node again"),
        # statuses
        Transition("status", (STABLE,), COLLECTING, guard=beyond_epoch,
                   update=lambda r, e: {**join_round(r, e), "attempts": 1},
                   effects=REGROUP, doc="another node started a round (a join or a regroup): take part"),
        Transition("status", (STABLE,), None, guard=all_of("old_round_of_a_member", not_beyond_epoch, from_member),
                   doc="an old round (a late or duplicated status)"),
        Transition("status", (STABLE,), COLLECTING,
                   guard=all_of("old_round_of_an_outsider", not_beyond_epoch, negation("from_outsider", from_member)),
                   update=lambda r, e: {**start_round(r, r.round + 1), "attempts": 1}, effects=REGROUP,
                   doc="a node outside the membership asks to join in a round this node is past (it was away "
                       "while the epochs grew): start a round it can take part in"),
        Transition("status", IN_ROUND, COLLECTING, guard=newer_round, update=join_round,
                   effects=(cancel_wait, *COLLECT), doc="a newer round supersedes ours"),
        Transition("status", (COLLECTING,), None, guard=same_round, update=record_status,
                   doc="record who answered and whom it hears"),
        Transition("status", (PROPOSING, ACCEPTED), None, guard=same_round, doc="too late for this round"),
        Transition("status", IN_ROUND, None, guard=older_round, doc="an old round"),
        # the end of collection
        Transition("collect_elapsed", (COLLECTING,), STABLE, guard=coordinator_commits_alone,
                   update=lambda r, e: {**install(r, pruned(r), r.round), **proposing(r), "acks": alone(r),
                                        "acked": r.round, "proposer": r.me},
                   effects=(record_epoch(lambda r, e: r.round), load_now,
                            Effect("send", "install", lambda r, e, r2: install_message(r2)),
                            Effect("send", "commit", lambda r, e, r2: {"to": -1, "round": r2.epoch}), installed,
                            disk_not_needed),
                   doc="coordinator whose own vote is quorum (it holds the disk, or a 1-node cluster): install now"),
        Transition("collect_elapsed", (COLLECTING,), PROPOSING, guard=coordinator_survives,
                   update=lambda r, e: {**proposing(r), "acks": tuple(k == r.me for k in ks),
                                        "acked": r.round, "proposer": r.me},
                   effects=(record_epoch(lambda r, e: r.round),
                            Effect("send", "install", lambda r, e, r2: install_message(r2)), wait),
                   doc="coordinator: propose the fully connected set that may survive"),
        Transition("collect_elapsed", (COLLECTING,), COLLECTING, guard=coordinator_retries,
                   update=lambda r, e: start_round(r, r.round + 1),
                   effects=(*COLLECT, Effect("report", "arbitrate", when=wants_disk)),
                   doc="coordinator without quorum: try another round (nodes may still be booting)"),
        Transition("collect_elapsed", (COLLECTING,), HALTED, guard=coordinator_without_quorum,
                   update=lambda r, e: halt_update, effects=(halt,),
                   doc="coordinator: no quorum after the last round: halt (the minority stops, Q2)"),
        Transition("collect_elapsed", (COLLECTING,), None, guard=another_coordinates, effects=(wait,),
                   doc="wait for the coordinator's proposal"),
        # proposals
        Transition("install", (*IN_ROUND, STABLE), ACCEPTED, guard=accept_includes_me,
                   update=lambda r, e: {"acked": e.round, "round": e.round, "proposer": e.src,
                                        "proposal": vec(e, "m"), "sponsor": e.sponsor, "base": e.base},
                   effects=(cancel_collect, record_epoch(lambda r, e: e.round),
                            Effect("send", "ack", lambda r, e, r2: {"to": e.src, "round": e.round}), wait),
                   doc="accept the proposal (at most one per round) and acknowledge it"),
        Transition("install", (*IN_ROUND, STABLE), HALTED, guard=accept_excludes_me,
                   update=lambda r, e: halt_update, effects=(cancel_collect, cancel_wait, halt),
                   doc="the surviving set leaves this node out: halt (pruned, N4)"),
        Transition("install", (*IN_ROUND, STABLE), None, guard=not_acceptable,
                   doc="an old proposal, a second one for a round, or one from a node that cannot coordinate us"),
        Transition("ack", (PROPOSING,), STABLE, guard=ack_commits,
                   update=lambda r, e: install(r, r.proposal, r.round),
                   effects=(cancel_wait, load, Effect("send", "commit", lambda r, e, r2: {"to": -1, "round": r2.epoch}),
                            installed, disk_not_needed),
                   doc="quorum reached: commit and install the new membership"),
        Transition("ack", (PROPOSING,), None, guard=ack_counts,
                   update=lambda r, e: {"acks": Store(r.acks, e.src, True)}, doc="one more acknowledgement"),
        Transition("ack", (PROPOSING,), None, guard=ack_stale, doc="for another round"),
        Transition("ack", (STABLE,), None, guard=late_ack_of_my_install,
                   effects=(Effect("send", "commit", lambda r, e, r2: {"to": e.src, "round": r.epoch}),),
                   doc="a member acknowledges the membership this node coordinated and has installed: its commit "
                       "may have reached that member before the proposal did (a coordinator that commits alone "
                       "sends both at once) or been lost, and the member waits for it: send the commit again to "
                       "it (found by the whole-cluster test, where the member's wait ran out and it halted)"),
        Transition("ack", (STABLE,), None, guard=negation("not_a_late_ack_of_my_install", late_ack_of_my_install),
                   doc="an acknowledgement of another round, or of a membership this node did not coordinate"),
        Transition("commit", (ACCEPTED,), STABLE, guard=commit_matches,
                   update=lambda r, e: install(r, r.proposal, r.acked),
                   effects=(cancel_wait, load, installed, disk_not_needed),
                   doc="the proposal this node accepted is committed: install it"),
        Transition("commit", (ACCEPTED,), None, guard=commit_stale, doc="not the proposal this node accepted"),
        Transition("commit", (PROPOSING,), COLLECTING,
                   guard=named("a_rival_committed", lambda r, e: And(e.round >= r.round, e.src != r.me)),
                   update=lambda r, e: {**start_round(r, If(e.round > r.round, e.round, r.round) + 1), "attempts": 1},
                   effects=(cancel_wait, *COLLECT),
                   doc="another coordinator of this round (one that did not hear this node, decision 21) committed "
                       "its proposal: a node accepts one proposal per round, so this node's cannot be committed, "
                       "and the committed set may well include this node; start the next round at once, which the "
                       "members join, instead of waiting out the proposal and halting (found by the whole-cluster "
                       "test's check that a healthy majority never halts itself)"),
        Transition("commit", (PROPOSING,), None,
                   guard=named("an_old_commit", lambda r, e: Or(e.round < r.round, e.src == r.me)),
                   doc="the commit of an older round"),
        # nothing heard in time
        Transition("install_wait_elapsed", (COLLECTING, PROPOSING, ACCEPTED), COLLECTING, guard=rounds_left,
                   update=lambda r, e: start_round(r, r.round + 1), effects=REGROUP,
                   doc="no proposal or no quorum of acknowledgements in time: next round"),
        Transition("install_wait_elapsed", (COLLECTING, PROPOSING, ACCEPTED), HALTED, guard=rounds_exhausted,
                   update=lambda r, e: halt_update, effects=(halt,),
                   doc="too many fruitless rounds: halt rather than risk a split"),
        # quorum disk and administration
        Transition("disk_won", RUNNING, None, update=lambda r, e: {"holds_disk": True},
                   doc="the arbitration machine owns the quorum disk"),
        Transition("disk_epoch", IN_ROUND, COLLECTING, guard=named("round_recorded_on_the_disk", lambda r, e: And(
            r.kind == DISK, r.round <= e.epoch)),
                   update=lambda r, e: round_after_replay(r, e, e.epoch + 1),
                   effects=(cancel_wait, *COLLECT),
                   doc="the quorum disk records a membership at this round or later (its holders changed while "
                       "this node was away): start a round above it, so that no epoch is installed twice (not a "
                       "fruitless round: it does not count), with the disk's epoch as this node's (below)"),
        Transition("disk_epoch", (PROPOSING, ACCEPTED), COLLECTING, guard=named("log_newer_than_the_proposal",
                                                                                lambda r, e: And(
            log_is_newer(r, e), r.round > e.epoch)),
                   update=lambda r, e: round_after_replay(r, e, r.round + 1),
                   effects=(cancel_wait, *COLLECT),
                   doc="the quorum log just brought this node's database past the epoch the proposal of this round "
                       "was built on (its sponsor may lack updates the log holds): start the next round, whose "
                       "statuses carry the disk's epoch for this node, so that it sponsors the others' databases "
                       "(under disk quorum only the disk's holder commits, so the old proposal could not be "
                       "committed anyway)"),
        Transition("disk_epoch", (COLLECTING,), None, guard=named("log_newer_than_this_round", lambda r, e: And(
            log_is_newer(r, e), r.round > e.epoch)),
                   update=lambda r, e: {**caught_up(r, e), "epochs": Store(r.epochs, r.me, e.epoch)},
                   effects=(status_effect(),),
                   doc="the quorum log just brought this node's database to the newest epoch recorded on the disk, "
                       "past the epoch it installed: a member installed before that epoch may miss updates the "
                       "log holds (a membership it was not in committed them), so this node counts as at the "
                       "disk's epoch, as the sponsor it now is, and says so in a new status of this round (the "
                       "coordinator and the sponsor are chosen by epoch); found by the whole-cluster test with "
                       "a stall, where a node at the old epoch sponsored the join and kept an orphan"),
        Transition("disk_epoch", (*IN_ROUND, STABLE), None, guard=named("rounds_above_the_disk", lambda r, e: Or(
            r.kind != DISK, r.is_(STABLE), And(r.round > e.epoch, Not(log_is_newer(r, e))))),
                   update=lambda r, e: {"round": If(And(r.kind == DISK, e.epoch > r.round), e.epoch, r.round)},
                   doc="the next round goes above the newest epoch recorded on the quorum disk"),
        Transition("disk_lost", IN_ROUND, HALTED, guard=named("lost_the_challenge", lambda r, e: r.kind == DISK),
                   update=lambda r, e: {"holds_disk": False, **halt_update},
                   effects=(cancel_collect, cancel_wait,
                            Effect("send", "install", lambda r, e, r2: {"to": -1, "round": r.round, "sponsor": r.me,
                                                                        "base": r.epoch,
                                                                        **fields_of("m", (False,) * n)}),
                            halt),
                   doc="disk quorum and the challenge is lost (another partition holds the disk) or the disk "
                       "failed: halt, and propose the empty set to this round so that nobody here waits on"),
        Transition("disk_lost", IN_ROUND, None, guard=named("disk_unused", lambda r, e: r.kind != DISK),
                   update=lambda r, e: {"holds_disk": False}, doc="Majority Node Set does not use the disk"),
        Transition("disk_lost", (DOWN, HALTED), None, update=lambda r, e: {"holds_disk": False},
                   doc="the quorum disk is gone"),
        Transition("disk_lost", (STABLE,), HALTED, guard=named("held_the_disk", lambda r, e: And(
            r.kind == DISK, r.holds_disk)), update=lambda r, e: {"holds_disk": False, **halt_update}, effects=(halt,),
                   doc="disk quorum and the reservation is lost: halt (self-fencing)"),
        Transition("disk_lost", (STABLE,), None, guard=named("challenged_a_holder", lambda r, e: And(
            r.kind == DISK, Not(r.holds_disk))),
                   doc="a challenge this node started in a round (before the holder's status reached it) is lost "
                       "after it joined the holder's membership: the disk is held by a member, nothing to stop"),
        Transition("disk_lost", (STABLE,), None, guard=named("node_majority", lambda r, e: r.kind != DISK),
                   update=lambda r, e: {"holds_disk": False}, doc="Majority Node Set does not use the disk"),
        Transition("shutdown", (*RUNNING, HALTED), DOWN,
                   update=lambda r, e: {**halt_update, "holds_disk": False, "attempts": 0,
                                        "suspects": (False,) * n},
                   effects=(Effect("send", "exit", lambda r, e, r2: {"to": -1}), halt),
                   doc="planned stop (ClusterExit): tell the others, stop everything"),
        Transition("database_unavailable", (STABLE,), HALTED,
                   update=lambda r, e: {**halt_update,
                                        "epoch": If(r.epoch >= r.base, If(r.base >= 1, r.base - 1, 0), r.epoch)},
                   effects=(halt,),
                   doc="the sponsor's database could not be loaded (the sponsor died or did not answer): this node's "
                       "database is behind the membership it installed and may hold orphans under committed "
                       "numbers: halt, and count as installed before the sponsor's epoch, so that at the next join "
                       "it loads a database rather than offering its own"),
        Transition("peer_ahead", (STABLE,), HALTED, guard=named("peer_is_ahead", lambda r, e: e.epoch > r.epoch),
                   update=lambda r, e: halt_update, effects=(halt,),
                   doc="a node's heartbeats carry a newer epoch than the one installed here: a membership was "
                       "committed without this node hearing of it (a Stable node sent no status for that round, so "
                       "it is not in its proposal), and the others take its groups over after the take-over wait: "
                       "halt at once (N4); the heartbeat thread has revoked the lease already if the heartbeat's "
                       "members leave this node out"),
        Transition("peer_ahead", (STABLE,), None,
                   guard=named("installed_since", lambda r, e: e.epoch <= r.epoch),
                   doc="the report is about an epoch this node has installed since: the heartbeat that carried it "
                       "arrived while this node was still in the round (in the daemon the report crosses from the "
                       "timer thread to the node's loop, which may install the epoch in between): nothing to do"),
        Transition("clock_gap", RUNNING, HALTED, update=lambda r, e: halt_update,
                   effects=(cancel_collect, cancel_wait, halt),
                   doc="this node's own clock jumped further than the suspicion bound between two of its steps: it "
                       "was stalled (stopped, a paused VM, starved), the others may have left it out and taken its "
                       "groups: halt before handling anything that waited (its lease has lapsed already, and its "
                       "monitors stopped its resources)"),
        Transition("exit", (STABLE,), COLLECTING, update=lambda r, e: suspecting(r, e.src), effects=REGROUP,
                   doc="a member left on purpose: install the membership without it at once"),
        Transition("exit", IN_ROUND, None, update=lambda r, e: {"suspects": Store(r.suspects, e.src, True)},
                   doc="leave it out of this round"),
    ]

    ignored = (
        Ignore("boot", (*RUNNING,), "already running"),
        Ignore("boot", (HALTED,), "a halted node must be shut down (or restarted) before it boots again",
               reject=True),
        Ignore("suspect", (DOWN, HALTED), "not a member"),
        Ignore("peer_back", (DOWN, HALTED), "not a member"),
        Ignore("status", (DOWN, HALTED), "not taking part"),
        Ignore("collect_elapsed", (DOWN, PROPOSING, ACCEPTED, STABLE, HALTED), "a late timer"),
        Ignore("install", (DOWN, HALTED), "not taking part"),
        Ignore("ack", (DOWN, COLLECTING, ACCEPTED, HALTED), "not proposing"),
        Ignore("commit", (DOWN, COLLECTING, STABLE, HALTED), "not waiting for a commit"),
        Ignore("install_wait_elapsed", (DOWN, STABLE, HALTED), "a late timer"),
        Ignore("disk_won", (DOWN, HALTED), "not taking part"),
        Ignore("disk_epoch", (DOWN, HALTED), "not taking part: the next boot reads the disk again"),
        Ignore("shutdown", (DOWN,), "already down"),
        Ignore("exit", (DOWN, HALTED), "not a member"),
        Ignore("database_unavailable", (*IN_ROUND, DOWN, HALTED), "a later round, or a halt, came first"),
        Ignore("clock_gap", (DOWN, HALTED), "out of the cluster: nothing to stop"),
        Ignore("peer_ahead", (*IN_ROUND, DOWN, HALTED), "in a round, or out: the round (or the next join) settles it "
               "(a node in a round may be in the newer membership without having accepted it yet: a commit needs a "
               "quorum's acknowledgements, not all); the heartbeat thread revokes the lease if the heartbeat's "
               "members leave this node out"),
    )

    node_arg = Arg("node", 0, n, "node id", hi_max=n)
    src = Arg("src", 0, n, "sender's node id", hi_max=n)
    rnd = Arg("round", 0, None, "regroup round (proposed epoch)", hi_max=8)
    alive = tuple(Arg(f"alive{k}", 0, 2, f"1 if the sender hears node {k}", hi_max=2) for k in ks)
    members = tuple(Arg(f"m{k}", 0, 2, f"1 if node {k} is in the proposed set", hi_max=2) for k in ks)
    events = (
        Event("boot", "the cluster service starts: form or join"),
        Event("suspect", "heartbeats say a node missed its beats on every network", (node_arg,)),
        Event("peer_back", "heartbeats from a node again", (node_arg,)),
        Event("status", "message: a node's answer in a round, whom it hears, whether it holds the disk, its "
              "installed epoch", (src, rnd, Arg("disk", 0, 2, "1 if the sender holds the quorum disk", hi_max=2),
                                  Arg("epoch", 0, None, "the sender's installed epoch", hi_max=3), *alive)),
        Event("collect_elapsed", "timer: the collection time of a round is over"),
        Event("install", "message: the coordinator's proposal, with the sponsor whose database members installed "
              "at an older epoch load", (src, rnd, Arg("sponsor", 0, n, "the sponsor's node id", hi_max=n),
                                         Arg("base", 0, None, "the sponsor's installed epoch", hi_max=3), *members)),
        Event("ack", "message: a node accepted our proposal", (src, rnd)),
        Event("commit", "message: the proposal reached quorum", (src, rnd)),
        Event("install_wait_elapsed", "timer: no proposal or commit in time"),
        Event("disk_won", "the arbitration machine holds the quorum disk"),
        Event("disk_lost", "the arbitration machine lost the quorum disk"),
        Event("disk_epoch", "the shell read the quorum disk this node won: the newest membership epoch recorded "
              "there", (Arg("epoch", 0, None, "the newest epoch recorded on the disk", hi_max=3),)),
        Event("shutdown", "planned stop of this node"),
        Event("exit", "message: a member leaves on purpose (ClusterExit)", (src,)),
        Event("database_unavailable", "the shell could not load the sponsor's database that load_database asked for"),
        Event("clock_gap", "the node's clock jumped past the suspicion bound since its last step (it was stalled)"),
        Event("peer_ahead", "heartbeats from a node that installed a newer epoch than this node",
              (node_arg, Arg("epoch", 0, None, "the epoch the node's heartbeats carry", hi_max=3))),
    )
    fields = (
        Field("me", int, 0, "this node's id", lo=0, hi=n - 1, param=True),
        Field("kind", int, MNS, "quorum kind: 0 Majority Node Set, 1 disk", lo=0, hi=1, param=True),
        Field("configured", bool, (True,) * n, "configured nodes", param=True, length=n),
        Field("stage_ms", int, d.REGROUP_STAGE_MS, "collection time of a round", lo=1, param=True),
        Field("max_rounds", int, d.REGROUP_MAX_ROUNDS, "fruitless rounds before halting", lo=1, param=True),
        Field("epoch", int, 0, "epoch of the installed membership", lo=0),
        Field("members", bool, (False,) * n, "installed membership", length=n),
        Field("round", int, 0, "current round number", lo=0),
        Field("attempts", int, 0, "rounds tried since the last install", lo=0),
        Field("heard", bool, (False,) * n, "nodes that answered in this round", length=n),
        Field("conn", bool, (False,) * (n * n), "conn[j*n+k]: node j reported hearing k", length=n * n),
        Field("suspects", bool, (False,) * n, "nodes the heartbeats say are gone", length=n),
        Field("acked", int, 0, "highest round whose proposal this node accepted", lo=0),
        Field("proposer", int, 0, "who proposed the accepted set", lo=0, hi=n - 1),
        Field("proposal", bool, (False,) * n, "the proposed (or accepted) set", length=n),
        Field("acks", bool, (False,) * n, "coordinator: who acknowledged", length=n),
        Field("holds_disk", bool, False, "the quorum disk is ours"),
        Field("disk_at", bool, (False,) * n, "who reported holding the quorum disk in this round", length=n),
        Field("epochs", int, (0,) * n, "the installed epoch each node reported in this round", lo=0, length=n),
        Field("sponsor", int, 0, "the proposal's sponsor: the member with the newest installed epoch", lo=0,
              hi=n - 1),
        Field("base", int, 0, "the sponsor's installed epoch", lo=0),
    )

    def stable_member(r: Any) -> Any:
        return Implies(r.is_(STABLE), Exists(ks, lambda k: And(k == r.me, r.members[k])))

    invariants = (
        Invariant("stable_node_is_a_member", stable_member, "a node with an installed membership is in it"),
        Invariant("epochs_follow_rounds", lambda r: And(r.epoch <= r.acked, r.acked <= r.round),
                  "installed epoch <= accepted round <= current round: epochs only grow"),
        Invariant("out_of_cluster_has_no_members", lambda r: Implies(r.is_(DOWN, HALTED),
                                                                     ForAll(ks, lambda k: Not(r.members[k]))),
                  "a node that is down or halted keeps no membership (it runs nothing)"),
        Invariant("proposer_includes_itself",
                  lambda r: Implies(r.is_(PROPOSING), Exists(ks, lambda k: And(k == r.me, r.proposal[k], r.acks[k]))),
                  "a coordinator proposes a set that contains itself and counts its own acknowledgement"),
    )
    return Spec(
        name="membership",
        doc=__doc__ or "",
        states=STATES,
        initial=DOWN,
        fields=fields,
        events=events,
        transitions=tuple(rows),
        ignored=ignored,
        invariants=invariants,
        domain=(Invariant("me_configured", lambda r: Exists(ks, lambda k: And(k == r.me, r.configured[k])),
                          "a node is one of the configured nodes"),),
        state_docs={
            DOWN: "the cluster service is not running",
            COLLECTING: "in a regroup round: collecting statuses",
            PROPOSING: "coordinator: proposed a set, collecting acknowledgements",
            ACCEPTED: "accepted a proposal, waiting for its commit",
            STABLE: "membership installed",
            HALTED: "left out or without quorum: every resource stopped",
        },
    )


#: The machine drawn in diagrams and checked by default (3 nodes).
SPEC = make_membership_spec(3)
