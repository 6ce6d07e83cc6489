"""The membership machine run by the simulator: form, regroup, split brain."""

from __future__ import annotations

from typing import Any

from wolfpack.machines import LiveMachine
from wolfpack.runtime.sim.cluster import SimCluster
from wolfpack.runtime.sim.network import LinkPolicy
from wolfpack.spec.membership import DISK, MNS, make_membership_spec


def cluster(n: int, kind: int = MNS, seed: int = 1) -> SimCluster:
    spec = make_membership_spec(n)
    c = SimCluster(lambda i: {"membership": LiveMachine(spec, me=i, kind=kind)}, n, seed=seed,
                   policy=LinkPolicy(min_delay_ms=1, max_delay_ms=8))
    for i in range(n):
        c.nodes[i].feed("membership", "boot")
    return c


def view(c: SimCluster) -> dict[int, tuple[str, int, tuple[int, ...]]]:
    out = {}
    for i, node in c.nodes.items():
        r = node.machines["membership"].record
        out[i] = (r.state, r.epoch, tuple(k for k, m in enumerate(r.members) if m))
    return out


def suspect_everywhere(c: SimCluster, lost: set[int]) -> None:
    for i, node in c.nodes.items():
        for p in lost - {i}:
            node.feed("membership", "suspect", node=p)


def test_three_nodes_form_one_membership() -> None:
    c = cluster(3)
    c.run_for(2000)
    assert set(view(c).values()) == {("Stable", 1, (0, 1, 2))}


def test_crash_of_the_coordinator_leaves_the_others_agreeing() -> None:
    c = cluster(3)
    c.run_for(2000)
    c.nodes[0].crash()
    suspect_everywhere(c, {0})
    c.run_for(3000)
    v = view(c)
    assert v[1] == v[2] and v[1][0] == "Stable" and v[1][2] == (1, 2) and v[1][1] > 1


def test_mns_minority_halts_and_majority_survives() -> None:
    c = cluster(5)
    c.run_for(2000)
    c.network.partition({0, 1}, {2, 3, 4})
    for a in (0, 1):
        for b in (2, 3, 4):
            c.nodes[a].feed("membership", "suspect", node=b)
            c.nodes[b].feed("membership", "suspect", node=a)
    c.run_for(5000)
    v = view(c)
    assert {v[0][0], v[1][0]} == {"Halted"}
    assert {v[k] for k in (2, 3, 4)} == {("Stable", v[2][1], (2, 3, 4))}


def test_mns_even_split_halts_both_halves() -> None:
    c = cluster(4)
    c.run_for(2000)
    c.network.partition({0, 1}, {2, 3})
    for a in (0, 1):
        for b in (2, 3):
            c.nodes[a].feed("membership", "suspect", node=b)
            c.nodes[b].feed("membership", "suspect", node=a)
    c.run_for(5000)
    assert {s for s, _, _ in view(c).values()} == {"Halted"}


def test_disk_quorum_single_node_with_the_disk_survives() -> None:
    c = cluster(3, kind=DISK)
    c.nodes[2].feed("membership", "disk_won")
    c.run_for(3000)
    assert set(view(c).values()) == {("Stable", view(c)[0][1], (0, 1, 2))}
    c.network.partition({2}, {0, 1})
    for a in (0, 1):
        c.nodes[a].feed("membership", "suspect", node=2)
        c.nodes[2].feed("membership", "suspect", node=a)
    c.run_for(5000)
    v = view(c)
    assert v[2][0] == "Stable" and v[2][2] == (2,)
    assert v[0][0] == "Halted" and v[1][0] == "Halted"


def test_same_seed_same_trace() -> None:
    a, b = cluster(3, seed=9), cluster(3, seed=9)
    for c in (a, b):
        c.run_for(1500)
        c.nodes[1].crash()
        suspect_everywhere(c, {1})
        c.run_for(2000)
    assert a.ndjson() == b.ndjson()


def test_heartbeats_detect_a_crash_and_the_survivors_regroup() -> None:
    from wolfpack.runtime.sim.cluster import spec_wiring
    from wolfpack.spec.heartbeat import make_heartbeat_spec

    n = 3
    mspec, hspec = make_membership_spec(n), make_heartbeat_spec(n)
    c = SimCluster(lambda i: {"membership": LiveMachine(mspec, me=i), "heartbeat": LiveMachine(hspec, me=i)},
                   n, seed=3, wiring=spec_wiring, policy=LinkPolicy(min_delay_ms=1, max_delay_ms=3))
    for i in range(n):
        c.nodes[i].feed("heartbeat", "start")
        c.nodes[i].feed("membership", "boot")
    c.run_for(3000)
    assert set(view(c).values()) == {("Stable", 1, (0, 1, 2))}
    crash_at = c.clock.now
    c.nodes[0].crash()
    c.run_for(3000)
    v = view(c)
    assert v[1] == v[2] and v[1][0] == "Stable" and v[1][2] == (1, 2)
    installs = [r for r in c.trace if r.get("machine") == "membership" and r.get("dest") == "Stable"
                and r["t"] > crash_at]
    suspicions = [r for r in c.trace if r.get("machine") == "membership" and r.get("trigger") == "suspect"
                  and r["t"] > crash_at]
    detect = suspicions[0]["t"] - crash_at
    regroup = installs[-1]["t"] - crash_at
    # 5 missed 100 ms periods, then one 200 ms collection round and the acknowledgements
    assert 400 <= detect <= 600 and detect < regroup <= detect + 400


def status(src: int, rnd: int, epoch: int, hears: tuple[int, ...], n: int = 3) -> dict[str, int]:
    return {"src": src, "round": rnd, "disk": 0, "epoch": epoch,
            **{f"alive{k}": int(k in hears) for k in range(n)}}


def test_heartbeats_back_during_a_round_are_told_and_kept() -> None:
    """Node 0 joins node 2's round still suspecting node 2 (its heartbeat comes a moment after its status):
    peer_back sends node 0's status again with its new row, and a late copy of the old row does not take the
    hearing back (rows only gain within a round), so the coordinator keeps node 2 in the proposal.  (All three are at
    epoch 0: node 0, the lowest id, coordinates.)"""
    m = LiveMachine(make_membership_spec(3), me=0)
    m.step("boot")
    m.step("suspect", node=2)  # remembered for the next round
    m.step("status", **status(2, 5, 0, (0, 1, 2)))  # a newer round: node 0 joins it, hearing 0 and 1 only
    assert not m.record.conn[0 * 3 + 2]
    effects = m.step("peer_back", node=2)
    assert [(e.name, e.args["round"], e.args["alive2"]) for e in effects] == [("status", 5, 1)]
    assert m.record.conn[0 * 3 + 2]
    m.step("status", **status(1, 5, 0, (0, 1, 2)))  # node 1's second status, after its own peer_back ...
    m.step("status", **status(1, 5, 0, (0, 1)))  # ... overtaken by its first one
    effects = m.step("collect_elapsed")
    install = next(e for e in effects if e.name == "install")
    assert (install.args["m0"], install.args["m1"], install.args["m2"]) == (1, 1, 1)


def test_a_stable_node_that_hears_an_outsider_in_an_old_round_starts_a_round_it_can_join() -> None:
    """A node back after the others went through several epochs asks in a round they are past: a member starts
    the next round (the newcomer joins it as a newer round); a late status of a member is still ignored."""
    c = cluster(3)
    c.run_for(2000)
    m = c.nodes[1].machines["membership"]
    epoch = m.record.epoch
    m.record = m.record.replace(members=(True, True, False))
    assert m.step("status", **status(0, epoch, epoch, (0, 1, 2))) == [] and m.state == "Stable"
    effects = m.step("status", **status(2, epoch, 0, (0, 1, 2)))
    assert m.state == "Collecting" and m.record.round == epoch + 1
    assert [e.name for e in effects if e.kind == "send"] == ["status"]
    assert ("report", "regroup_started") in [(e.kind, e.name) for e in effects]


def test_boot_blocks_global_updates_until_a_membership_is_installed() -> None:
    """Booting is the start of a regroup round: GUM refuses updates until the membership is installed."""
    m = LiveMachine(make_membership_spec(3), me=0)
    effects = m.step("boot")
    assert ("report", "regroup_started") in [(e.kind, e.name) for e in effects]


def test_a_member_without_the_disk_gives_up_its_challenge_and_a_lost_one_does_not_halt_it() -> None:
    """Disk quorum: a returning node coordinates its first round before the holder's status reaches it and
    challenges for the disk.  When it installs the holder's membership it reports disk_not_needed (wired to the
    arbitration machine's release); a challenge that still ends lost leaves it in the membership.  The holder
    never gives its disk up at an install, and a holder that loses its reservation halts."""
    m = LiveMachine(make_membership_spec(3), me=2, kind=DISK, max_rounds=4)
    m.step("boot")
    effects = m.step("collect_elapsed")  # nobody answered yet: no holder in the round
    assert ("report", "arbitrate") in [(e.kind, e.name) for e in effects]
    holder = {"src": 1, "round": m.record.round, "disk": 1, "epoch": 5, "alive0": 0, "alive1": 1, "alive2": 1}
    m.step("status", **holder)
    install = {"src": 1, "round": m.record.round, "sponsor": 1, "base": 5, "m0": 0, "m1": 1, "m2": 1}
    m.step("install", **install)
    effects = m.step("commit", src=1, round=m.record.round)
    assert m.state == "Stable"
    assert ("report", "disk_not_needed") in [(e.kind, e.name) for e in effects]
    assert m.step("disk_lost") == [] and m.state == "Stable"  # the lost challenge: nothing to stop

    owner = LiveMachine(make_membership_spec(3), me=0, kind=DISK)
    owner.step("boot")
    owner.step("disk_won")
    effects = owner.step("collect_elapsed")  # a round that started before the win: the next one counts it
    effects += owner.step("collect_elapsed")
    assert owner.state == "Stable" and "disk_not_needed" not in [e.name for e in effects]
    owner.step("disk_lost")
    assert owner.state == "Halted"


def test_the_disk_holder_records_each_round_before_it_counts_and_a_winner_rounds_above_the_record() -> None:
    """Disk quorum: the holder writes the epoch of a round it proposes or acknowledges on the disk (record_epoch,
    before its install or ack goes out); a node that reads an epoch recorded there (disk_epoch) leaves a round at
    or below it for one above it, so no epoch is installed twice when the disk changes hands.  A node without the
    disk records nothing, and Majority Node Set never does."""
    def names(effects: list[Any]) -> list[str]:
        return [e.name for e in effects if e.kind in ("command", "send")]

    winner = LiveMachine(make_membership_spec(3), me=2, kind=DISK)
    winner.step("boot")
    assert winner.record.round == 1
    effects = winner.step("disk_epoch", epoch=206)
    assert winner.state == "Collecting" and winner.record.round == 207 and "status" in names(effects)
    winner.step("disk_won")
    effects = winner.step("collect_elapsed")  # a round that started before the win: the next one counts it
    assert winner.state == "Collecting" and winner.record.attempts == 2, "the round above the disk did not count"
    effects = winner.step("collect_elapsed")  # alone with the disk: it commits
    assert winner.state == "Stable" and winner.record.epoch == 208
    assert names(effects).index("record_epoch") < names(effects).index("install")
    assert [e.args for e in effects if e.name == "record_epoch"] == [{"epoch": 208}]
    winner.step("disk_epoch", epoch=300)  # Stable: the next round goes above it
    assert winner.state == "Stable" and winner.record.round == 300

    holder = LiveMachine(make_membership_spec(3), me=1, kind=DISK)
    holder.step("boot")
    holder.step("disk_epoch", epoch=0)
    holder.step("disk_won")
    proposal = {"src": 0, "round": 4, "sponsor": 1, "base": 0, "m0": 1, "m1": 1, "m2": 0}
    effects = holder.step("install", **proposal)
    assert names(effects)[:2] == ["record_epoch", "ack"] and effects[1].args == {"epoch": 4}

    for kind, won in ((DISK, False), (MNS, True)):
        other = LiveMachine(make_membership_spec(3), me=1, kind=kind)
        other.step("boot")
        if won:
            other.step("disk_won")
        assert "record_epoch" not in names(other.step("install", **proposal))
        if kind == MNS:
            assert other.step("disk_epoch", epoch=9) == [] and other.record.round == 4


def test_the_quorum_logs_replay_makes_the_winner_the_rounds_sponsor() -> None:
    """Disk quorum: two nodes installed epoch 103; node 2 wins the disk, whose log records epoch 104 (a membership
    without them committed updates there), and replays it.  In the round node 2 now counts as at epoch 104: it
    says so in a new status, coordinates ahead of node 1 (a lower id at 103) and sponsors the install, so node 1
    loads its database; node 1 would otherwise have sponsored the round with the orphan it held.  Node 2's
    installed membership is unchanged, and Majority Node Set ignores the disk's epoch."""
    node2 = LiveMachine(make_membership_spec(3), me=2, kind=DISK, epoch=103, acked=103, round=103,
                        members=(False, True, True))
    node2.step("boot")
    peer = {"src": 1, "round": node2.record.round, "disk": 0, "epoch": 103, "alive0": 0, "alive1": 1, "alive2": 1}
    node2.step("status", **peer)
    effects = node2.step("disk_epoch", epoch=104)
    assert node2.state == "Collecting" and node2.record.epoch == 104
    assert [e.args["epoch"] for e in effects if e.name == "status"] == [104]
    assert node2.record.members == (False, True, True)
    node2.step("disk_won")
    effects = node2.step("collect_elapsed")  # a round that started before the win: the next one counts it
    assert [e.args["epoch"] for e in effects if e.name == "status"] == [104]
    node2.step("status", **{**peer, "round": node2.record.round})
    effects = node2.step("collect_elapsed")
    installs = [e.args for e in effects if e.name == "install"]
    assert node2.state == "Stable" and installs and (installs[0]["sponsor"], installs[0]["base"]) == (2, 104)
    assert "load_database" not in [e.name for e in effects]

    node1 = LiveMachine(make_membership_spec(3), me=1, kind=DISK, epoch=103, acked=103, round=103,
                        members=(False, True, True))
    node1.step("boot")
    node1.step("status", src=2, round=node1.record.round, disk=1, epoch=104, alive0=0, alive1=1, alive2=1)
    node1.step("collect_elapsed")  # node 2 ranks above it: it waits
    proposal = {k: v for k, v in installs[0].items() if k != "to"}
    node1.step("install", **{**proposal, "src": 2, "round": node1.record.round})
    effects = node1.step("commit", src=2, round=node1.record.round)
    assert node1.state == "Stable" and [e.args for e in effects if e.name == "load_database"] == [{"sponsor": 2}]

    mns = LiveMachine(make_membership_spec(3), me=2, kind=MNS, epoch=103, acked=103, round=103)
    mns.step("boot")
    assert mns.step("disk_epoch", epoch=104) == [] and mns.record.epoch == 103


def test_a_commit_that_overtook_its_proposal_is_sent_again_when_the_member_acknowledges() -> None:
    """A coordinator that commits alone (it holds the disk) sends its proposal and its commit at once; a member
    that gets the commit first ignores it (it has accepted nothing) and then accepts the proposal.  When its
    acknowledgement reaches the coordinator, now Stable, the coordinator sends it the commit again, and it
    installs instead of waiting out the round and halting.  Found by the whole-cluster test under disk quorum."""
    holder = LiveMachine(make_membership_spec(3), me=0, kind=DISK)
    holder.step("boot")
    holder.step("disk_won")
    holder.step("collect_elapsed")  # a round that started before the win: the next one counts it
    holder.step("status", src=2, round=2, disk=0, epoch=0, alive0=1, alive1=0, alive2=1)
    effects = holder.step("collect_elapsed")
    assert holder.state == "Stable" and holder.record.members == (True, False, True)
    install = next(e.args for e in effects if e.name == "install")
    member = LiveMachine(make_membership_spec(3), me=2, kind=DISK)
    member.step("boot")
    member.step("status", src=0, round=2, disk=1, epoch=0, alive0=1, alive1=0, alive2=1)
    assert member.step("commit", src=0, round=2) == [] and member.state == "Collecting"
    member.step("install", src=0, **{k: v for k, v in install.items() if k != "to"})
    assert member.state == "Accepted"
    again = holder.step("ack", src=2, round=2)
    assert [(e.name, e.args) for e in again] == [("commit", {"to": 2, "round": 2})]
    member.step("commit", src=0, round=2)
    assert member.state == "Stable" and member.record.epoch == 2
    assert holder.step("ack", src=1, round=2) == [], "a node outside the membership got a commit"
    assert holder.step("ack", src=2, round=1) == [], "an acknowledgement of another round got a commit"


def test_a_suspicion_during_a_round_starts_the_next_round_with_the_new_row() -> None:
    """Issue 15, a heartbeat-only cut of node 0: node 0 coordinates a round whose statuses say every node hears
    every other, then suspects node 1.  The round's rows only gain links, so deciding it would still propose node
    1; instead node 0 starts the next round at once, saying it no longer hears node 1, and its next proposal
    leaves node 1 out.  A suspicion during a proposal does the same if the suspected node is in it, and is only
    remembered if it is not."""
    m = LiveMachine(make_membership_spec(3), me=0)
    m.step("boot")
    m.step("status", **status(1, 1, 0, (0, 1, 2)))
    m.step("status", **status(2, 1, 0, (0, 1, 2)))
    effects = m.step("suspect", node=1)
    assert m.state == "Collecting" and m.record.round == 2
    sent = [e.args for e in effects if e.name == "status"]
    assert [(s["round"], s["alive0"], s["alive1"], s["alive2"]) for s in sent] == [(2, 1, 0, 1)]
    assert ("start_timer", "collect_elapsed") in [(e.kind, e.name) for e in effects]
    m.step("status", **status(2, 2, 0, (0, 1, 2)))
    m.step("status", **status(1, 2, 0, (0, 1, 2)))  # node 1 still hears node 0: one-way is not enough
    install = next(e.args for e in m.step("collect_elapsed") if e.name == "install")
    assert (install["m0"], install["m1"], install["m2"]) == (1, 0, 1)
    assert m.state == "Proposing"
    assert m.step("suspect", node=1) == [] and m.state == "Proposing"  # not in the proposal: remembered
    effects = m.step("suspect", node=2)
    assert m.state == "Collecting" and m.record.round == 3
    assert ("cancel_timer", "install_wait_elapsed") in [(e.kind, e.name) for e in effects]

    member = LiveMachine(make_membership_spec(3), me=2)
    member.step("boot")
    member.step("install", src=0, round=1, sponsor=0, base=0, m0=1, m1=0, m2=1)
    assert member.state == "Accepted"
    assert member.step("suspect", node=1) == [] and member.state == "Accepted"
    member.step("suspect", node=0)
    assert member.state == "Collecting" and member.record.round == 2
