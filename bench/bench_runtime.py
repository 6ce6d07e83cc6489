"""Figures of the runtime on lab nodes: three wolfpackd in network namespaces (root), or on loopback.

    sudo .venv/bin/python bench/bench_runtime.py failover --trials 20
    sudo .venv/bin/python bench/bench_runtime.py failover --trials 20 --disk    # quorum disk (tgtd), SCSI-3
    sudo .venv/bin/python bench/bench_runtime.py updates --seconds 10
    sudo .venv/bin/python bench/bench_runtime.py idle --seconds 60
    sudo .venv/bin/python bench/bench_runtime.py saturated --seconds 600
    sudo .venv/bin/python bench/bench_runtime.py stall --trials 20 --freeze 5
    sudo .venv/bin/python bench/bench_runtime.py linkfaults --trials 20 [--faults cut,tcp_only,...]

``failover``: kill -9 of the group's owner, then from the survivors' transition logs: the time to the first
suspicion, to the new membership, and to the group Online on another node (p50, p99, max); the killed node is
started again between trials.  With ``--disk`` the nodes use disk quorum on a tgtd LUN (on the test network's
switch namespace) and the time to a survivor winning the quorum disk is reported too.  ``updates``: durable
global updates per second committed on 3 nodes (every one fsync'd to each node's quorum log and committed to its
hive), submitted by concurrent clients on every node.
``idle``: CPU and RSS of each node's daemon and resource monitor with one group online.  ``saturated``: both
cores busy with spinning processes for the given time; counts false suspicions (a node suspected while it runs).
``stall``: Debian's redis-server as the group's application, a PING probe every 20 ms inside each node's namespace;
the owner's daemon is frozen (SIGSTOP) for ``--freeze`` seconds, then woken: the time from SIGSTOP to the frozen
copy's last answer (its monitor's lease lapsed), to the new owner's first answer, and the time two copies answered
at once (judged from the probes, not from the daemons).
``linkfaults`` (issue 15): each fault of :data:`FAULTS` on the owner's link, ``--trials`` times, beside kill -9 in
the same run: the time from the fault to the group Online on another node (p50, p99, max, and the ratio of the p99
to kill -9's), the trials in which the group did not move (the fault left the owner in the cluster), and every halt
of a node that was in the surviving majority (the goal is none).

Figures are printed, never asserted; these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from netns import Network, formed
from probe import last_answer, overlaps, redis_group, start_probers, stop_probers

from wolfpack.hw.tgtd import Tgtd
from wolfpack.runtime.daemon.lab import LabCluster

SETTINGS = {"monitor.looks_alive_ms": 500, "monitor.is_alive_ms": 5000}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<34} n={len(values):3d}  p50 {percentile(values, 50):7.0f} ms  "
            f"p99 {percentile(values, 99):7.0f} ms  max {max(values):7.0f} ms")


@contextlib.contextmanager
def cluster(loopback: bool, extra: dict[str, str] | None = None, disk: bool = False) -> Any:
    root = Path(tempfile.mkdtemp(prefix="wolfpack-bench-"))
    network = None if loopback else Network(3, tag=f"wb{os.getpid() % 10000}")
    target = None
    try:
        hosts = ["127.0.0.1"] * 3 if network is None else [network.address(i) for i in range(3)]
        prefixes = [] if network is None else [network.prefix(i) for i in range(3)]
        settings: dict[str, Any] = {**SETTINGS}
        if disk:
            target = Tgtd(root / "tgt") if network is None else Tgtd(
                root / "tgt", host=network.switch_address(), prefix=["ip", "netns", "exec", network.switch])
            target.start()
            settings.update({"cluster.quorum": "disk", "cluster.quorum_disk": target.url})
        settings.update(extra or {})
        with LabCluster(root, hosts, loopback=network is None, prefixes=prefixes, settings=settings) as lab:
            lab.start_all()
            for i in range(3):
                lab.wait_api(i)
            formed(lab, [0, 1, 2])
            lab.network = network  # type: ignore[attr-defined]
            yield lab
            lab.stop_all()
    finally:
        if target is not None:
            target.stop()
        if network is not None:
            network.close()


def group_online(lab: LabCluster, api_node: int) -> None:
    api = lab.client(api_node)
    api.post("/v1/groups", {"name": "web", "preferred": [0, 1, 2]})
    api.post("/v1/resources", {"group": "web", "name": "app", "type": "Generic Application",
                               "properties": {"command": ["sleep", "100000"]}})
    api.post("/v1/groups/web/online")
    lab.wait_for("web online", lambda: lab.group(api_node, "web")["state"] == "Online", 30)


def first(records: list[dict[str, Any]], since: int, match: Any) -> int | None:
    times = [r["t"] for r in records if r.get("kind") == "step" and r["t"] >= since and "dest" in r and match(r)]
    return min(times) - since if times else None


def failover(args: argparse.Namespace) -> None:
    suspected, installed, online, observed, won = [], [], [], [], []
    with cluster(args.loopback, args.set, args.disk) as lab:
        group_online(lab, 0)
        for trial in range(args.trials):
            owner = int(lab.group(0 if lab.nodes[0].running else 1, "web")["owner"])
            survivors = [i for i in range(3) if i != owner]
            killed = time.time_ns() // 1_000_000
            t0 = time.monotonic()
            lab.kill(owner)
            lab.wait_for("failover", lambda: (g := lab.group(survivors[0], "web"))["state"] == "Online"
                         and g["owner"] != owner, 30, every_s=0.01)
            observed.append((time.monotonic() - t0) * 1000)
            records = [r for i in survivors for r in lab.trace(i)]
            s = first(records, killed, lambda r: r["machine"] == "membership" and r["trigger"] == "suspect"
                      and r["args"].get("node") == owner)
            m = first(records, killed, lambda r: r["machine"] == "membership" and r["dest"] == "Stable"
                      and r["source"] != "Stable")
            o = first(records, killed, lambda r: r["machine"].startswith("group") and r["dest"] == "Online")
            d = first(records, killed, lambda r: r["machine"] == "arbitration"
                      and any(e.get("name") == "won" for e in r.get("effects", [])))
            for series, value in ((suspected, s), (installed, m), (online, o), (won, d)):
                if value is not None:
                    series.append(float(value))
            disk_text = f"quorum disk won after {d} ms, " if args.disk else ""
            print(f"trial {trial + 1:2d}: node {owner} killed; suspected after {s} ms, {disk_text}membership after "
                  f"{m} ms, web online after {o} ms (client saw it after {observed[-1]:.0f} ms)", flush=True)
            lab.start(owner)
            lab.wait_api(owner)
            formed(lab, [0, 1, 2], 60)
    print()
    print(summary("kill -> suspicion", suspected))
    if won:
        print(summary("kill -> a survivor owns the disk", won))
    print(summary("kill -> new membership", installed))
    print(summary("kill -> group online elsewhere", online))
    print(summary("kill -> online, as a client polls", observed))


def updates(args: argparse.Namespace) -> None:
    with cluster(args.loopback) as lab:
        api = lab.client(0)
        api.post("/v1/groups", {"name": "g", "preferred": [0, 1, 2]})
        clients = [lab.client(i % 3) for i in range(args.clients)]
        deadline = time.monotonic() + args.seconds
        committed = [0] * args.clients
        waits: list[list[float]] = [[] for _ in range(3)]  # each commit's wait, by the node its client asks

        def work(k: int) -> None:
            value = 0
            while time.monotonic() < deadline:
                value += 1
                asked = time.monotonic()
                clients[k].post("/v1/groups/g/configure", {"failback_window": [value % 24, -1]})
                waits[k % 3].append((time.monotonic() - asked) * 1000)
                committed[k] += 1

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(work, range(args.clients)))
        took = time.monotonic() - start
        seqs = [lab.client(i).get("/v1/local")["gum"]["last_seq"] for i in range(3)]
    total = sum(committed)
    print(f"{total} durable global updates committed in {took:.1f} s by {args.clients} clients on 3 nodes: "
          f"{total / took:.0f} updates/s; every node applied {seqs} (each update fsync'd to the quorum log and "
          "committed to the hive, synchronous=FULL, on every node)")
    for i in range(3):  # fairness: the locker (node 0) takes the lock for its own updates without a message
        print(summary(f"commit wait, node {i} clients{' (locker)' if i == 0 else ''}", waits[i]))


def _proc(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS KiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss


def idle(args: argparse.Namespace) -> None:
    with cluster(args.loopback) as lab:
        group_online(lab, 0)
        pids = {}
        for i in range(3):
            node = lab.nodes[i]
            assert node.process is not None
            monitor = lab.client(i).get("/v1/local")["monitors"]["default"]["pid"]
            pids[i] = (node.process.pid, monitor)
        time.sleep(5)
        before = {i: (_proc(d), _proc(m)) for i, (d, m) in pids.items()}
        time.sleep(args.seconds)
        after = {i: (_proc(d), _proc(m)) for i, (d, m) in pids.items()}
    for i in range(3):
        (d0, m0), (d1, m1) = before[i], after[i]
        cpu = (d1[0] - d0[0] + m1[0] - m0[0]) / args.seconds * 100
        print(f"node {i}: CPU {cpu:.2f} % of one core (daemon {(d1[0] - d0[0]) / args.seconds * 100:.2f} %, "
              f"monitor {(m1[0] - m0[0]) / args.seconds * 100:.2f} %); RSS daemon {d1[1] / 1024:.1f} MiB + monitor "
              f"{m1[1] / 1024:.1f} MiB = {(d1[1] + m1[1]) / 1024:.1f} MiB")


def saturated(args: argparse.Namespace) -> None:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        with cluster(args.loopback) as lab:
            group_online(lab, 0)
            start_ms = time.time_ns() // 1_000_000
            time.sleep(args.seconds)
            suspicions = [(i, r["args"]["node"], r["t"] - start_ms) for i in range(3) for r in lab.trace(i)
                          if r.get("kind") == "step" and r["t"] >= start_ms and r["machine"] == "membership"
                          and r["trigger"] == "suspect"]
            epochs = {lab.client(i).get("/v1/local")["membership"]["epoch"] for i in range(3)}
            owner = lab.group(0, "web")
    finally:
        for b in burners:
            b.kill()
    print(f"{len(burners)} spinning processes for {args.seconds} s: {len(suspicions)} suspicion(s) {suspicions[:10]}; "
          f"epochs at the end {sorted(epochs)}; web {owner['state']} on node {owner['owner']}")


def stall(args: argparse.Namespace) -> None:
    stopped_ms, answered_ms, both_ms = [], [], []
    with cluster(False, args.set) as lab:
        network = lab.network
        redis_group(lab, 0)
        for trial in range(args.trials):
            asked = next(i for i in range(3) if lab.nodes[i].running)
            owner = int(lab.group(asked, "cache")["owner"])
            others = [i for i in range(3) if i != owner]
            probers = start_probers(network)
            try:
                time.sleep(0.5)
                daemon = lab.nodes[owner].process
                frozen = time.monotonic_ns()
                daemon.send_signal(signal.SIGSTOP)
                time.sleep(args.freeze)
                daemon.send_signal(signal.SIGCONT)
                lab.wait_for("cache online elsewhere", lambda: (g := lab.group(others[0], "cache"))["state"]
                             == "Online" and g["owner"] in others, 30, every_s=0.02)
                time.sleep(0.5)
            finally:
                stop_probers(probers)
            new = int(lab.group(others[0], "cache")["owner"])
            last = last_answer(probers[owner])
            first_new = min((t for t, ok in probers[new].samples if ok and t > frozen), default=None)
            both = sum(ms for _, _, ms in overlaps(probers))
            both_ms.append(both)
            if last is not None:
                stopped_ms.append((last - frozen) / 1e6)
            if first_new is not None:
                answered_ms.append((first_new - frozen) / 1e6)
            print(f"trial {trial + 1:2d}: node {owner}'s daemon frozen {args.freeze:g} s; its copy last answered "
                  f"{stopped_ms[-1] if last is not None else float('nan'):.0f} ms after SIGSTOP, node {new}'s first "
                  f"{answered_ms[-1] if first_new is not None else float('nan'):.0f} ms after; two copies answered "
                  f"for {both:.0f} ms", flush=True)
            formed(lab, [0, 1, 2], 60)
    print()
    print(summary("SIGSTOP -> frozen copy stopped", stopped_ms))
    print(summary("SIGSTOP -> new owner answers", answered_ms))
    print(summary("two copies answering at once", both_ms))


def _drop(rules: list[tuple[str, str]]) -> Any:
    return lambda net, i: net.drop(i, rules)


#: the link faults: name -> (apply(network, node), heal(network, node)); every rule only on the node's eth0 (its
#: admin socket and loopback stay up)
FAULTS: dict[str, tuple[Any, Any]] = {
    "cut": (lambda net, i: net.cut(i), lambda net, i: net.heal(i)),
    "one_way_in": (_drop([("input", "iifname eth0")]), lambda net, i: net.undrop(i)),
    "one_way_out": (_drop([("output", "oifname eth0")]), lambda net, i: net.undrop(i)),
    "tcp_only": (_drop([("input", "iifname eth0 meta l4proto tcp"), ("output", "oifname eth0 meta l4proto tcp")]),
                 lambda net, i: net.undrop(i)),
    "heartbeat_only": (_drop([("input", "iifname eth0 meta l4proto udp"),
                              ("output", "oifname eth0 meta l4proto udp")]), lambda net, i: net.undrop(i)),
    "flap": (None, None),  # 5 times: down 300 ms, up 300 ms
    "loss30": (_drop([("input", "iifname eth0 numgen random mod 100 lt 30"),
                      ("output", "oifname eth0 numgen random mod 100 lt 30")]), lambda net, i: net.undrop(i)),
}


def _flap(net: Network, i: int) -> None:
    for _ in range(5):
        net.cut(i)
        time.sleep(0.3)
        net.heal(i)
        time.sleep(0.3)


def linkfaults(args: argparse.Namespace) -> None:
    chosen = ["kill", *(args.faults.split(",") if args.faults else FAULTS)]
    results: dict[str, list[float]] = {f: [] for f in chosen}
    stayed: dict[str, int] = dict.fromkeys(chosen, 0)
    majority_halts: dict[str, list[str]] = {f: [] for f in chosen}
    with cluster(False, args.set) as lab:
        network = lab.network
        group_online(lab, 0)
        for fault in chosen:
            for trial in range(args.trials):
                asked = next(i for i in range(3) if lab.nodes[i].running)
                owner = int(lab.group(asked, "web")["owner"])
                survivors = [i for i in range(3) if i != owner]
                since = time.time_ns() // 1_000_000
                t0 = time.monotonic()
                if fault == "kill":
                    lab.kill(owner)
                elif fault == "flap":
                    _flap(network, owner)
                else:
                    FAULTS[fault][0](network, owner)
                try:
                    lab.wait_for("failover", lambda: (g := lab.group(survivors[0], "web"))["state"] == "Online"
                                 and g["owner"] != owner, args.wait, every_s=0.01)
                    took = (time.monotonic() - t0) * 1000
                    results[fault].append(took)
                    moved = f"web online elsewhere after {took:.0f} ms"
                except Exception:
                    stayed[fault] += 1
                    moved = f"web did not move within {args.wait:g} s"
                finally:
                    if fault == "kill":
                        lab.start(owner)
                    elif fault != "flap":
                        FAULTS[fault][1](network, owner)
                formed(lab, [0, 1, 2], 90)
                halts = [f"node {i} at +{r['t'] - since} ms ({r['trigger']})" for i in survivors for r in lab.trace(i)
                         if r.get("kind") == "step" and r["t"] >= since and r.get("machine") == "membership"
                         and r.get("dest") == "Halted" and r.get("source") != "Halted"]
                majority_halts[fault] += halts
                print(f"{fault} trial {trial + 1:2d}: node {owner}; {moved}; majority halts: {halts or 'none'}",
                      flush=True)
    print()
    kill_p99 = percentile(results["kill"], 99) if results["kill"] else None
    for fault in chosen:
        values = results[fault]
        ratio = f"  p99/kill p99 {percentile(values, 99) / kill_p99:4.2f}" if values and kill_p99 else ""
        line = summary(f"{fault} -> group online elsewhere", values) if values else f"{fault:<34} n=  0"
        print(f"{line}{ratio}  did not move: {stayed[fault]}  majority halts: {len(majority_halts[fault])}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["failover", "updates", "idle", "saturated", "stall", "linkfaults"])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--freeze", type=float, default=5.0, help="stall: seconds the owner's daemon stays frozen")
    p.add_argument("--faults", default="", help=f"linkfaults: a comma-separated choice of {', '.join(FAULTS)}")
    p.add_argument("--wait", type=float, default=15.0, help="linkfaults: seconds to wait for the group to move")
    p.add_argument("--disk", action="store_true", help="disk quorum on a private tgtd LUN (SCSI-3 arbitration)")
    p.add_argument("--loopback", action="store_true", help="run on 127.0.0.1 (no root) instead of namespaces")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a setting for every node, e.g. timing.takeover_wait_ms=400 (checked like the daemon does)")
    args = p.parse_args()
    args.set = dict(item.split("=", 1) for item in args.set)
    {"failover": failover, "updates": updates, "idle": idle, "saturated": saturated, "stall": stall,
     "linkfaults": linkfaults}[args.what](args)


if __name__ == "__main__":
    main()
